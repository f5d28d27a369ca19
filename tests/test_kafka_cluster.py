"""ZooKeeper and Kafka on three lab hosts, driven by playbooks/kafka_cluster.yml as a user would:
fresh install, an unchanged re-run, check mode, preflight refusals that change no host, and a
rolling restart under an acks=all producer that must lose nothing and never take down more
than one broker at a time. Timings are printed at the end of the run."""
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))
import lab  # noqa: E402
from acks_all import Load, make_topic, read_all  # noqa: E402
from bad_inputs import FIRST_HOST_READ, collapsed, drop_from_group, host_state, host_var, inventory_with, without_host_var  # noqa: E402
from lab import HOSTS, INVENTORY, bootstrap  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PLAYBOOK = "playbooks/kafka_cluster.yml"

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]


def playbook(*args, inventory=INVENTORY, check=True):
    proc = lab.run_playbook(PLAYBOOK, *args, inventory=inventory, timeout=1800)
    if check and proc.returncode != 0:
        pytest.fail(f"ansible-playbook {' '.join(args)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}")
    return proc


def on_host(host, command):
    return lab.ssh(host, command, timeout=60)


def hosts_as_they_are():
    """What a failed preflight must leave as it was: configuration and unit files, installed releases, processes."""
    return host_state(on_host, HOSTS)


@pytest.fixture(scope="module")
def cluster(figures):
    # Fresh hosts, so that the first run is a fresh install.
    lab.lab("down")
    lab.lab("up", "3")
    before = hosts_as_they_are()
    check = playbook("--check", "--diff", check=False)
    after_check = hosts_as_they_are()
    fresh = playbook()
    fresh.check_mode_run, fresh.check_mode_left_hosts_alone = check, after_check == before
    figures.append(("kafka_cluster.yml --check --diff on fresh hosts (s)", round(check.seconds, 1)))
    figures.append(("kafka_cluster.yml fresh install, 3 hosts (s)", round(fresh.seconds, 1)))
    yield fresh
    lab.lab("down", check=False)


def test_check_mode_on_fresh_hosts_shows_the_install_and_changes_nothing(cluster):
    proc = cluster.check_mode_run
    assert proc.returncode == 0, proc.stdout[-4000:]
    out = collapsed(proc.stdout)
    for unit in ("zookeeper", "kafka"):
        assert f"Check mode: {unit}.service is new; a real run would enable and start it." in out, out[-3000:]
    assert proc.stdout.count("+broker.id=") == 3, proc.stdout[-4000:]
    assert cluster.check_mode_left_hosts_alone


def task_results(output):
    """{task name: set of 'status: [host]' words} from ansible-playbook's OUTPUT (the last run of each name)."""
    results, task = {}, None
    for line in output.splitlines():
        header = re.match(r"^TASK \[(?:[\w.]+ : )?(.*?)\] \**$", line)
        if header:
            task = header.group(1)
            results[task] = set()
        elif task and re.match(r"^(ok|changed|skipping|fatal): \[", line):
            results[task].add(line.split(" =>")[0].split(" (item")[0].strip())
    return results


# What install.yml and configure.yml of both roles put in place, one task each: on an unchanged host the roles
# read it all at once (laddr.kafka.host_state) and skip these (most are not even included).
PUT_IN_PLACE = ("Ensemble configuration is in place", "Server id file names this member", "Broker configuration is in place",
                "Launcher of the command-line tools is in place", "Systemd unit file is in place: kafka",
                "Systemd unit file is in place: zookeeper", "Current release link points at kafka_2.13-3.9.2",
                "Kafka starts at boot", "ZooKeeper is running")


def test_fresh_install_then_a_rerun_changes_nothing(cluster, figures):
    assert set(lab.changed(cluster.stdout)) >= set(HOSTS)
    again = playbook()
    figures.append(("kafka_cluster.yml unchanged re-run (s)", round(again.seconds, 1)))
    figures.append(("kafka_cluster.yml unchanged re-run (tasks)", again.stdout.count("\nTASK [")))
    assert lab.changed(again.stdout) == {host: 0 for host in HOSTS}, again.stdout[-3000:]
    # One read per role and host, not one per file: the tasks that put things in place were skipped on every host.
    results = task_results(again.stdout)
    for task in PUT_IN_PLACE:
        assert task in task_results(cluster.stdout), f"the fresh install has no task {task!r}"
        assert results.get(task, set()) <= {f"skipping: [{host}]" for host in HOSTS}, (task, results.get(task))


def test_what_drifted_on_a_host_is_put_back_and_nothing_else_changes(cluster):
    """A file's mode, a command-line tool's link and a unit's start at boot changed by hand, each on another host:
    the one read per role sees each, and the run puts back exactly those."""
    on_host("lab1", "chmod 0644 /etc/kafka/server.properties")
    on_host("lab2", "rm /usr/local/bin/kafka-topics")
    on_host("lab3", "systemctl disable --quiet zookeeper")
    mended = playbook()
    assert lab.changed(mended.stdout) == {"lab1": 1, "lab2": 1, "lab3": 1}, mended.stdout[-4000:]
    results = task_results(mended.stdout)
    assert "changed: [lab1]" in results["Broker configuration is in place"], results["Broker configuration is in place"]
    assert "changed: [lab2]" in results["Command-line tools are installed"], results["Command-line tools are installed"]
    assert "changed: [lab3]" in results["ZooKeeper starts at boot"], results["ZooKeeper starts at boot"]
    assert on_host("lab1", "stat -c %a /etc/kafka/server.properties").stdout.strip() == "640"
    assert on_host("lab2", "readlink /usr/local/bin/kafka-topics").stdout.strip() == "/usr/local/lib/laddr-kafka-tool"
    assert on_host("lab3", "systemctl is-enabled zookeeper").stdout.strip() == "enabled"


def test_a_client_sees_three_brokers_replicating_every_partition_three_times(cluster):
    """As a client outside the cluster sees it (molecule/kafka/files/cluster_check.py, the check the kafka molecule
    scenario runs on its single broker): brokers 1 to 3, each with replication 3, 2 replicas in sync required, no
    topic made on first use, brokers talking on their own listener; a new topic in sync on all three, and 200
    messages produced with acks=all all read back."""
    check = subprocess.run([sys.executable, str(REPO / "molecule/kafka/files/cluster_check.py"), bootstrap()],
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    seen = json.loads(check.stdout)
    settings = list(seen["settings"].values())
    assert seen["brokers"] == [1, 2, 3], seen
    assert {s["default_replication_factor"] for s in settings} == {"3"}, seen
    assert {s["min_insync_replicas"] for s in settings} == {"2"}, seen
    assert {s["auto_create_topics_enable"] for s in settings} == {"false"}, seen
    assert {s["inter_broker_listener_name"] for s in settings} == {"INTERNAL"}, seen
    assert seen["isr_sizes"] == [3, 3, 3], seen
    assert seen["acked"] == 200 and seen["all_received"], seen


def until(read, done, seconds):
    """READ again (a command on a host) until DONE(result) or SECONDS have passed; the last result."""
    deadline = time.monotonic() + seconds
    result = read()
    while not done(result) and time.monotonic() < deadline:
        time.sleep(2)
        result = read()
    return result


def test_hosts_without_pypi_install_the_admin_environment_from_the_wheels(cluster):
    """The lab boots its hosts with PyPI closed (LAB_PYPI=closed) and the inventory points pip at the mirror's
    wheels: the fresh install above got confluent-kafka from there."""
    closed = lab.ssh("lab1", "python3 -c \"import urllib.request; urllib.request.urlopen('https://pypi.org/simple/', timeout=10)\"")
    assert closed.returncode != 0 and "Connection refused" in closed.stderr, closed.stdout + closed.stderr
    version = lab.ssh("lab2", "/opt/kafka/admin-venv/bin/python -m pip show confluent-kafka | sed -n 's/^Version: //p'")
    assert version.stdout.strip() == "2.16.1", version.stdout + version.stderr


def test_the_guides_checks_run_on_a_broker_as_written(cluster):
    """The migration guide's `kafka-topics --list --bootstrap-server localhost:9092`, and the other usual tools,
    typed on a broker: the launchers the role installs run the release's own classes. Each tool is a JVM that
    starts in seconds; on a fresh cluster the first consumer group also waits for Kafka to create its offsets
    topic, so reads are repeated until what they show has arrived, within generous limits."""
    topic = f"guide-{uuid.uuid4().hex[:6]}"
    created = lab.ssh("lab1", f"kafka-topics --create --topic {topic} --partitions 3 --replication-factor 3", timeout=120)
    assert created.returncode == 0, created.stdout + created.stderr
    listed = until(lambda: lab.ssh("lab1", "kafka-topics --list --bootstrap-server localhost:9092", timeout=120),
                   lambda r: r.returncode == 0 and topic in r.stdout.split(), 60)
    assert listed.returncode == 0 and topic in listed.stdout.split(), listed.stdout + listed.stderr
    produced = lab.ssh("lab2", f"kafka-console-producer --topic {topic}", stdin="one\ntwo\nthree\n", timeout=120)
    assert produced.returncode == 0, produced.stderr
    consumed = lab.ssh("lab3", f"kafka-console-consumer --topic {topic} --group guide-check --from-beginning "
                               "--max-messages 3 --timeout-ms 90000", timeout=180)
    assert sorted(consumed.stdout.split()) == ["one", "three", "two"], consumed.stdout + consumed.stderr

    def rows(result):
        return [line.split() for line in result.stdout.splitlines() if line.startswith("guide-check")]
    # The console producer puts keyless messages on one partition (sticky partitioning), and the group shows
    # offsets for the partitions it committed on: what must hold is that its commits cover the 3 messages.
    def committed(result):
        return sum(int(row[3]) for row in rows(result) if row[1] == topic and row[3].isdigit())
    described = until(lambda: lab.ssh("lab1", "kafka-consumer-groups --describe --group guide-check", timeout=120),
                      lambda r: committed(r) == 3, 60)
    assert committed(described) == 3, described.stdout + described.stderr
    assert all(row[5] == "0" for row in rows(described)), described.stdout  # LAG: nothing left unread
    brokers = lab.ssh("lab2", "zookeeper-shell ls /brokers/ids", timeout=120)
    assert "[1, 2, 3]" in brokers.stdout, brokers.stdout + brokers.stderr


def test_check_mode_on_the_converged_cluster_reports_no_change(cluster):
    proc = playbook("--check", "--diff")
    assert lab.changed(proc.stdout) == {host: 0 for host in HOSTS}, proc.stdout[-3000:]


def test_check_mode_shows_the_changed_file_and_restarts_nothing(cluster):
    before = hosts_as_they_are()
    proc = playbook("--check", "--diff", "-e", "kafka_log_retention_hours=100")
    assert proc.stdout.count("-log.retention.hours=168") == 3, proc.stdout[-4000:]
    assert proc.stdout.count("+log.retention.hours=100") == 3
    assert "/etc/kafka/server.properties" in proc.stdout
    assert "/etc/zookeeper/zoo.cfg" not in proc.stdout
    assert all(changed >= 1 for changed in lab.changed(proc.stdout).values())
    assert "Broker is restarted" not in proc.stdout
    plan = re.search(r"Check mode: would restart 3 broker\(s\) one at a time.*? in this order: (lab\d), (lab\d), (lab\d)", collapsed(proc.stdout))
    assert plan and sorted(plan.groups()) == HOSTS, proc.stdout[-4000:]
    assert hosts_as_they_are() == before


BAD_INPUTS = {
    "even ensemble": (drop_from_group("zookeeper", "lab3"), [], "has 2 hosts (lab1, lab2); a ZooKeeper ensemble needs 1, 3 or 5"),
    "missing zookeeper_id": (without_host_var("lab2", "zookeeper_id"), [], "Host lab2: zookeeper_id is not set"),
    "duplicate broker id": (host_var("lab3", "kafka_broker_id", 1), [], "kafka_broker_id values repeat in group 'kafka': lab1=1 lab2=2 lab3=1"),
    "heap larger than memory": (None, ["-e", "kafka_heap_mb=99999999"], "kafka_heap_mb is 99999999 MiB and the host has"),
    "two services on one port": (None, ["-e", "kafka_jmx_port=2181"], "two services would use one port"),
    "heap that is not a number": (None, ["-e", "kafka_heap_mb=40G"],
                                  "Host lab1: argument 'kafka_heap_mb' is of type str and we were unable to convert to int"),
    "wrong pinned checksum of the installed release": (
        None, ["-e", "kafka_archive_checksum=sha512:" + "0" * 128],
        "Host lab1: kafka_archive_checksum is 'sha512:" + "0" * 128 + "', but the release in place (kafka_2.13-3.9.2.tgz) "
        "was installed from a download whose digest is"),
    "wheel directory that does not answer": (None, ["-e", "kafka_admin_pip_wheels_url={{ lab_mirror_url }}/no-wheels/"],
                                             "/no-wheels/', which does not answer from this host"),
    "wheel directory without a package": (
        None, ["-e", json.dumps({"kafka_admin_pip_packages": ["confluent-kafka==2.16.1", "kafka-python==2.0.2"]})],
        "/wheels/', which holds no wheel of kafka-python"),
    "replication above broker count": (None, ["-e", "kafka_default_replication_factor=4"],
                                       "kafka_default_replication_factor is 4 and kafka_min_insync_replicas is 2 with 3 brokers"),
}

# Refused by the settings checks of both roles, which run before anything is read on a host.
SETTINGS_CASES = {"even ensemble", "missing zookeeper_id", "duplicate broker id", "heap larger than memory",
                  "two services on one port", "heap that is not a number", "replication above broker count"}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_preflight_rejects_bad_input_before_any_host_changes(cluster, case, tmp_path):
    change, extra, message = BAD_INPUTS[case]
    inventory = inventory_with(INVENTORY, tmp_path / "inventory", change) if change else INVENTORY
    before = hosts_as_they_are()
    # A change that would otherwise roll through the cluster proves that nothing ran past preflight.
    proc = playbook("-e", "kafka_log_retention_hours=99", *extra, inventory=inventory, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert message in collapsed(output), output[-3000:]
    assert hosts_as_they_are() == before
    if case in SETTINGS_CASES:
        assert FIRST_HOST_READ not in proc.stdout, proc.stdout[-3000:]


def main_pids():
    return {h: on_host(h, "systemctl show -p MainPID --value kafka").stdout.strip() for h in HOSTS}


def test_rolling_restart_under_load_loses_nothing_and_keeps_two_brokers_up(cluster, figures):
    servers = bootstrap()
    topic = f"drill-{uuid.uuid4().hex[:6]}"
    make_topic(servers, topic)
    pids_before = main_pids()
    with Load(servers, topic) as load:
        time.sleep(3)
        proc = playbook("-e", json.dumps({"kafka_properties": {"log.cleaner.threads": 2}}))
        time.sleep(3)
    pids_after = main_pids()

    restarts = re.findall(r"Broker is restarted: (lab\d)", proc.stdout)
    assert sorted(restarts) == HOSTS, proc.stdout[-4000:]
    assert all(pids_after[h] != pids_before[h] for h in HOSTS), (pids_before, pids_after)
    worst = load.most_out()
    assert worst <= 1, f"{worst} brokers were out of the cluster at once"
    assert worst == 1, "the watcher never saw a broker out: it cannot tell a rolling restart from none"
    assert load.acked, f"nothing was acknowledged; errors: {load.errors[:5]}"
    seen = read_all(servers, topic, len(set(load.acked)))
    lost = set(load.acked) - set(seen)
    assert not lost, f"{len(lost)} acknowledged messages were not read back, e.g. {sorted(lost)[:10]}"
    out = [at for at, missing in load.missing if missing]
    figures.append(("kafka_cluster.yml run with the rolling restart of 3 brokers (s)", round(proc.seconds, 1)))
    figures.append(("rolling restart, first broker out to last broker back (s)", round(out[-1] - out[0], 1) if out else 0))
    samples = load.missing
    outage = sum(later[0] - earlier[0] for earlier, later in zip(samples, samples[1:]) if earlier[1])
    figures.append(("time a broker was out of the cluster, mean of 3 (s)", round(outage / 3, 1)))
    figures.append(("messages acknowledged during the restart", len(set(load.acked))))
    figures.append(("acknowledged messages lost", len(lost)))
    figures.append(("delivery errors reported to the producer", len(load.errors)))
    figures.append(("most brokers out of the cluster at once", worst))
    figures.append(("metadata reads that failed or came from an uninformed broker (of all reads)",
                    f"{load.failed_reads} of {len(load.missing)}"))


def test_restarts_a_failed_gate_left_owed_are_made_by_the_next_run_one_at_a_time(cluster):
    """The gate after the first broker's restart fails (a 1 s health timeout: no broker is back that soon),
    which stops the play with two brokers on the old configuration. The next run changes no file, and must
    still restart exactly those two, each behind the gate, and leave the first one alone."""
    setting = {"kafka_properties": {"log.cleaner.threads": 3}}
    pids_before = main_pids()
    failed = playbook("-e", json.dumps({**setting, "kafka_health_timeout": 1}), check=False)
    assert failed.returncode != 0, failed.stdout[-3000:]
    first = re.findall(r"Broker is restarted: (lab\d)", failed.stdout)
    assert len(first) == 1, failed.stdout[-4000:]
    pids_between = main_pids()
    assert [h for h in HOSTS if pids_between[h] != pids_before[h]] == first, (pids_before, pids_between)
    for host in HOSTS:
        assert "log.cleaner.threads=3" in on_host(host, "cat /etc/kafka/server.properties").stdout

    rerun = playbook("-e", json.dumps(setting))
    # No file changes: each broker's one read (host_state) finds its configuration in place, so the tasks that write
    # it are not even included on any of the three; the restarts owed come from the same read (main processes older
    # than the files).
    results = task_results(rerun.stdout)
    assert results["Configure"] == {f"skipping: [{host}]" for host in HOSTS}, results["Configure"]
    assert "Broker configuration is in place" not in results, rerun.stdout[-4000:]
    restarted = re.findall(r"Broker is restarted: (lab\d)", rerun.stdout)
    assert sorted(restarted) == sorted(set(HOSTS) - set(first)), rerun.stdout[-4000:]
    # One at a time: each restart is followed by its own gate before the next restart.
    steps = re.findall(r"TASK \[laddr\.kafka\.kafka : (Broker is restarted|Cluster is whole and fully replicated "
                       r"again after restarting) ?:? ?(lab\d)\]", rerun.stdout)
    assert steps == [step for host in restarted for step in
                     (("Broker is restarted", host), ("Cluster is whole and fully replicated again after restarting", host))], steps
    pids_after = main_pids()
    assert pids_after[first[0]] == pids_between[first[0]]
    assert all(pids_after[h] != pids_between[h] for h in restarted), (pids_between, pids_after)
    again = playbook("-e", json.dumps(setting))
    assert lab.changed(again.stdout) == {host: 0 for host in HOSTS}, again.stdout[-3000:]
