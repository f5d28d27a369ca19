"""The lab command on this machine, for real: refusals that leave nothing behind, a 3-host lab
that Ansible reaches, idempotent up, grow and shrink, and a down that leaves no trace.

The lab under test has its own bridge, subnet and state directory, so it does not disturb
a lab a developer has up (the default one that molecule and the demo use)."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "scripts" / "lab"
BRIDGE = "laddrtest0"
SUBNET_PREFIX = "10.78.0"
STATE = Path("/var/lib/laddr-lab-test")

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]


@pytest.fixture(scope="module")
def lab_env(tmp_path_factory):
    env = dict(os.environ,
               LAB_BRIDGE=BRIDGE, LAB_SUBNET=f"{SUBNET_PREFIX}.0/24", LAB_STATE_DIR=str(STATE),
               LAB_MIRROR_PORT="8098",
               LAB_INVENTORY=str(tmp_path_factory.mktemp("lab") / "hosts.yml"))
    yield env
    subprocess.run([str(LAB), "down"], env=env, capture_output=True)


def lab(env, *args, check=True, **kw):
    proc = subprocess.run([str(LAB), *args], env=env, capture_output=True, text=True, timeout=600, **kw)
    if check and proc.returncode != 0:
        pytest.fail(f"lab {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def nspawn_pids():
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if args[0].endswith(b"systemd-nspawn") and state != "Z" \
                and any(a.startswith(f"--directory={STATE}/".encode()) for a in args):
            pids.append(int(entry.name))
    return pids


def traces():
    """Everything of the test lab that must be gone after a refusal or a down."""
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout)
    rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout \
        + subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout
    return {
        "processes": nspawn_pids(),
        "bridge": [link["ifname"] for link in links if link["ifname"] == BRIDGE],
        # host ends of the veth pairs that systemd-nspawn makes are named vb-<machine>
        "veths": [link["ifname"] for link in links if link["ifname"].startswith(f"vb-{BRIDGE[:8]}-")
                  or link.get("master") == BRIDGE],
        "iptables": [line for line in rules.splitlines() if f"laddr-lab:{BRIDGE}" in line],
        "host_trees": sorted(p.name for p in (STATE / "hosts").glob("*")) if (STATE / "hosts").exists() else [],
        # the hosts' cgroups (scripts/lab gives each host one, under laddr-lab-<bridge> in each hierarchy)
        "cgroups": sorted(str(p) for pattern in (f"laddr-lab-{BRIDGE}", f"*/laddr-lab-{BRIDGE}")
                          for p in Path("/sys/fs/cgroup").glob(pattern)),
    }


NOTHING = {"processes": [], "bridge": [], "veths": [], "iptables": [], "host_trees": [], "cgroups": []}


@pytest.mark.parametrize("count", ["0", "-1", "abc", "2.5", "6"])
def test_up_refuses_a_host_count_that_is_not_sensible(lab_env, count):
    proc = lab(lab_env, "up", count, check=False)
    assert proc.returncode == 1
    assert "host count must be" in proc.stderr
    assert count in proc.stderr
    assert traces() == NOTHING


def test_up_refuses_when_not_root(lab_env):
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(LAB), "up", "1"],
                          env=lab_env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "must run as root" in proc.stderr
    assert traces() == NOTHING


def test_up_refuses_when_a_tool_is_missing_and_names_the_package(lab_env, tmp_path):
    # A PATH with every tool the lab uses except debootstrap.
    for tool in ["python3", "systemd-nspawn", "iptables", "ip", "ssh", "ssh-keygen", "chroot", "cp"]:
        (tmp_path / tool).symlink_to(shutil.which(tool))
    proc = lab(dict(lab_env, PATH=str(tmp_path)), "up", "1", check=False)
    assert proc.returncode == 1
    assert "missing tools: debootstrap" in proc.stderr
    assert "apt-get install -y debootstrap" in proc.stderr
    assert traces() == NOTHING


def test_up_refuses_a_subnet_that_is_taken(lab_env):
    subprocess.run(["ip", "link", "add", "labtaken0", "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{SUBNET_PREFIX}.200/24", "dev", "labtaken0"], check=True)
        proc = lab(lab_env, "up", "1", check=False)
        assert proc.returncode == 1
        assert "already in use" in proc.stderr and "labtaken0" in proc.stderr
        assert "LAB_SUBNET=" in proc.stderr
        assert traces() == NOTHING
    finally:
        subprocess.run(["ip", "link", "del", "labtaken0"])


def status(env):
    return json.loads(lab(env, "status", "--json", check=False).stdout)


def on_host(env, host, command):
    return lab(env, "ssh", host, command, check=False)


def test_lab_lifecycle(lab_env):
    forward_before = Path("/proc/sys/net/ipv4/ip_forward").read_text()

    lab(lab_env, "up", "3")
    first = status(lab_env)
    assert first["up"] is True
    assert [h["name"] for h in first["hosts"]] == ["lab1", "lab2", "lab3"]
    assert all(h["systemd"] == "running" for h in first["hosts"])
    assert [h["address"] for h in first["hosts"]] == [f"{SUBNET_PREFIX}.{i}" for i in (11, 12, 13)]

    # Ansible reaches every host with the inventory the lab wrote.
    ping = subprocess.run(["ansible", "all", "-i", lab_env["LAB_INVENTORY"], "-m", "ansible.builtin.ping"],
                          capture_output=True, text=True, cwd=REPO)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert ping.stdout.count("SUCCESS") == 3

    # Hosts reach each other, and the artifact mirror on the bridge.
    assert on_host(lab_env, "lab1", f"timeout 3 bash -c '</dev/tcp/{SUBNET_PREFIX}.13/22'").returncode == 0
    mirror = on_host(lab_env, "lab2", f"python3 -c \"import urllib.request; "
                     f"print(urllib.request.urlopen('http://{SUBNET_PREFIX}.1:8098/').status)\"")
    assert mirror.stdout.strip() == "200", mirror.stderr
    # Each host has its own identity, and its own cgroup: no unit of one host shares a cgroup with another's.
    ids = {on_host(lab_env, h, "cat /etc/machine-id").stdout for h in ("lab1", "lab2", "lab3")}
    assert len(ids) == 3
    inits = [h["pid"] for h in first["hosts"]]
    cgroups = {Path(f"/proc/{pid}/cgroup").read_text() for pid in inits}
    assert len(cgroups) == 3 and all(f"/laddr-lab-{BRIDGE}/lab" in found for found in cgroups), cgroups

    # A second up changes nothing: same processes.
    again = lab(lab_env, "up", "3")
    assert "nothing changed" in again.stdout
    assert [h["pid"] for h in status(lab_env)["hosts"]] == [h["pid"] for h in first["hosts"]]

    # Shrink to 2, then grow back to 3: lab1 and lab2 keep running throughout.
    lab(lab_env, "up", "2")
    shrunk = status(lab_env)
    assert [h["name"] for h in shrunk["hosts"]] == ["lab1", "lab2"]
    assert [h["pid"] for h in shrunk["hosts"]] == [h["pid"] for h in first["hosts"][:2]]
    assert len(traces()["processes"]) == 2
    lab(lab_env, "up", "3")
    assert status(lab_env)["up"] is True

    # A reboot: the host's systemd goes down and the same tree boots again, files and enabled units kept.
    on_host(lab_env, "lab2", "touch /root/kept")
    booted = on_host(lab_env, "lab2", "ps -o lstart= -p 1").stdout
    lab(lab_env, "reboot", "lab2")
    assert on_host(lab_env, "lab2", "ls /root/kept").returncode == 0
    assert on_host(lab_env, "lab2", "ps -o lstart= -p 1").stdout not in ("", booted)
    assert status(lab_env)["up"] is True

    # A snapshot keeps the hosts as they are; restoring it brings them back so, whatever changed since.
    on_host(lab_env, "lab1", "touch /root/before-snapshot")
    lab(lab_env, "snapshot", "save", "kept")
    assert status(lab_env)["up"] is True and on_host(lab_env, "lab1", "ls /root/before-snapshot").returncode == 0
    on_host(lab_env, "lab1", "rm /root/before-snapshot && touch /root/after-snapshot")
    lab(lab_env, "up", "2")
    restored = lab(lab_env, "snapshot", "restore", "kept")
    assert "3 hosts restored" in restored.stdout
    assert status(lab_env)["up"] is True and [h["name"] for h in status(lab_env)["hosts"]] == ["lab1", "lab2", "lab3"]
    assert on_host(lab_env, "lab1", "ls /root/before-snapshot").returncode == 0
    assert on_host(lab_env, "lab1", "ls /root/after-snapshot").returncode != 0
    assert on_host(lab_env, "lab2", "ls /root/kept").returncode == 0
    assert "kept" in lab(lab_env, "snapshot", "list").stdout
    missing = lab(lab_env, "snapshot", "restore", "nosuch", check=False)
    assert missing.returncode != 0 and "no snapshot named 'nosuch'" in missing.stderr

    lab(lab_env, "down")
    assert traces() == NOTHING
    assert not (STATE / "snapshots").exists()
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == forward_before
    assert not Path(lab_env["LAB_INVENTORY"]).exists()
    assert status(lab_env)["hosts"] == []
