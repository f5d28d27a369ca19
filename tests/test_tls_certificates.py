"""laddr.kafka.tls_certificates on the controller: a private CA and the certificates it signs, kept in a directory.
Real keys and certificates (the cryptography library), checked with openssl as a broker's peer would check them."""
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.unit


def run(tmp_path, certificates, *extra, **options):
    args = dict(path=str(tmp_path / "pki"), certificates=certificates, **options)
    play = [{"name": "Certificates", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Certificates are in place", "laddr.kafka.tls_certificates": args, "register": "pki"},
        {"name": "Keep the result for the test", "check_mode": False,
         "ansible.builtin.copy": {"content": "{{ pki | to_json }}", "dest": str(tmp_path / "result.json")}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    (tmp_path / "hosts.yml").write_text(
        f"all:\n  hosts:\n    localhost: {{ansible_connection: local, ansible_python_interpreter: {sys.executable}}}\n")
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
           str(tmp_path / "play.yml"), *extra]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"))
    proc.result = json.loads((tmp_path / "result.json").read_text()) if proc.returncode == 0 else None
    return proc


def openssl(*args):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)


BROKERS = [{"name": "lab1", "dns_names": ["lab1"], "ip_addresses": ["10.77.0.11"]},
           {"name": "lab2", "dns_names": ["lab2", "lab2.example.org"], "ip_addresses": ["10.77.0.12"]}]


def test_a_ca_and_a_certificate_per_host_are_made_once_and_verify(tmp_path):
    first = run(tmp_path, BROKERS)
    assert first.returncode == 0, first.stdout + first.stderr
    pki = tmp_path / "pki"
    assert first.result["changed"] and first.result["ca"]["made"]
    assert first.result["certificates"]["lab1"]["issued"] == ["missing"]
    # Keys only for their owner; the directory too.
    assert stat.S_IMODE(pki.stat().st_mode) == 0o700
    for key in ("ca.key", "lab1.key", "lab2.key"):
        assert stat.S_IMODE((pki / key).stat().st_mode) == 0o600, key
        assert (pki / key).read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, as Kafka's PEM store reads
        assert (pki / key).read_text() not in first.stdout + first.stderr
    # A peer that trusts the CA accepts each certificate, for the names and the address asked.
    for name, host, address in (("lab1", "lab1", "10.77.0.11"), ("lab2", "lab2.example.org", "10.77.0.12")):
        checked = openssl("verify", "-CAfile", str(pki / "ca.crt"), "-verify_hostname", host, "-purpose", "sslserver",
                          str(pki / f"{name}.crt"))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        checked = openssl("verify", "-CAfile", str(pki / "ca.crt"), "-verify_ip", address, "-purpose", "sslclient",
                          str(pki / f"{name}.crt"))
        assert checked.returncode == 0, checked.stdout + checked.stderr
    wrong = openssl("verify", "-CAfile", str(pki / "ca.crt"), "-verify_hostname", "lab2", str(pki / "lab1.crt"))
    assert wrong.returncode != 0
    serials = {name: item["serial"] for name, item in first.result["certificates"].items()}

    again = run(tmp_path, BROKERS)
    assert again.returncode == 0 and not again.result["changed"], again.stdout
    assert {name: item["serial"] for name, item in again.result["certificates"].items()} == serials


def test_only_the_certificate_whose_names_changed_is_issued_again_with_its_key_kept(tmp_path):
    assert run(tmp_path, BROKERS).returncode == 0
    key_before = (tmp_path / "pki" / "lab1.key").read_bytes()
    moved = [dict(BROKERS[0], ip_addresses=["10.77.0.21"]), BROKERS[1]]
    proc = run(tmp_path, moved)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.result["certificates"]["lab1"]["issued"] == ["names differ"]
    assert proc.result["certificates"]["lab2"]["issued"] == []
    assert (tmp_path / "pki" / "lab1.key").read_bytes() == key_before
    assert openssl("verify", "-CAfile", str(tmp_path / "pki" / "ca.crt"), "-verify_ip", "10.77.0.21",
                   str(tmp_path / "pki" / "lab1.crt")).returncode == 0


def test_check_mode_reports_and_writes_nothing_and_diff_shows_the_serials(tmp_path):
    proc = run(tmp_path, BROKERS, "--check", "--diff")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.result["changed"] and not (tmp_path / "pki").exists()
    assert run(tmp_path, BROKERS).returncode == 0
    rotated = run(tmp_path, BROKERS, "--check", "--diff", renew_days=900, valid_days=1000)
    assert rotated.returncode == 0, rotated.stdout
    assert rotated.result["certificates"]["lab1"]["issued"] == ["expires within 900 days"]
    assert "serial" in rotated.stdout and "BEGIN PRIVATE KEY" not in rotated.stdout


def test_a_certificate_from_another_ca_is_issued_again(tmp_path):
    assert run(tmp_path, BROKERS).returncode == 0
    other = tmp_path / "other"
    other.mkdir()
    assert run(other, BROKERS[:1]).returncode == 0
    os.replace(other / "pki" / "lab1.crt", tmp_path / "pki" / "lab1.crt")
    os.replace(other / "pki" / "lab1.key", tmp_path / "pki" / "lab1.key")
    proc = run(tmp_path, BROKERS)
    assert proc.result["certificates"]["lab1"]["issued"] == ["not signed by the CA"], proc.stdout


def test_a_ca_certificate_without_its_key_is_refused_naming_the_file(tmp_path):
    assert run(tmp_path, BROKERS).returncode == 0
    (tmp_path / "pki" / "ca.key").unlink()
    lab1 = (tmp_path / "pki" / "lab1.crt").read_bytes()
    proc = run(tmp_path, BROKERS)
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0
    assert f"{tmp_path / 'pki' / 'ca.key'} is missing beside {tmp_path / 'pki' / 'ca.crt'}" in out, out
    assert (tmp_path / "pki" / "lab1.crt").read_bytes() == lab1


def test_bad_names_and_addresses_are_refused_before_anything_is_written(tmp_path):
    proc = run(tmp_path, [{"name": "../lab1"}])
    assert proc.returncode != 0 and "name '../lab1' may hold only" in proc.stdout, proc.stdout
    proc = run(tmp_path, [{"name": "lab1", "ip_addresses": ["10.77.0.300"]}])
    assert proc.returncode != 0 and "certificates: lab1:" in proc.stdout, proc.stdout
    assert not (tmp_path / "pki").exists()
