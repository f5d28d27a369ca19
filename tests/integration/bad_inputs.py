"""Bad inputs that migrate.yml must refuse in its preflight, before any host changes.

CASES maps a case name to (change, extra_args, expected_message):
  change          None, or change(hosts_yml, group_vars_all, host_vars) that mutates the parsed YAML of a copy
                  of the lab inventory (hosts.yml, group_vars/all.yml, {host: host_vars/<host>.yml})
  extra_args      more ansible-playbook arguments (-e values; JSON for structured ones)
  expected_message a piece of the refusal, found in the run's output with white space collapsed

inventory_with() writes such a copy; host_state() reads, with one ssh per host, what a run must not change
(configuration, environment and unit files, /opt, MainPIDs, the worker units), never what changes by itself
under load (data files, logs). The lab's layout is scripts/lab's: lab1..lab3, ZooKeeper and Kafka on all
three, workers on all three, Kafka UI, Redis and the API on lab3.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import yaml

# An address of the lab's subnet that no lab host uses (scripts/lab numbers hosts from .11).
SILENT_HOST_OFFSET = 250


def _children(hosts_yml):
    return hosts_yml["all"]["children"]


def drop_from_group(group, host):
    def change(hosts_yml, group_vars, host_vars):
        del _children(hosts_yml)[group]["hosts"][host]
    return change


def _add_to_group(group, host):
    def change(hosts_yml, group_vars, host_vars):
        _children(hosts_yml)[group]["hosts"][host] = None
    return change


def host_var(host, name, value):
    def change(hosts_yml, group_vars, host_vars):
        host_vars.setdefault(host, {})[name] = value
    return change


def without_host_var(host, name):
    def change(hosts_yml, group_vars, host_vars):
        host_vars.get(host, {}).pop(name, None)
    return change


def _without_group_var(name):
    def change(hosts_yml, group_vars, host_vars):
        group_vars.pop(name, None)
    return change


def _silent_worker_host(hosts_yml, group_vars, host_vars):
    """A worker host in the inventory at an address of the lab's subnet that nobody answers on."""
    hosts = hosts_yml["all"]["hosts"]
    address = hosts["lab1"]["ansible_host"].rsplit(".", 1)[0] + f".{SILENT_HOST_OFFSET}"
    hosts["lab9"] = {"ansible_host": address, "ansible_connection": "ssh", "ansible_timeout": 5}
    _children(hosts_yml)["laddr_workers"]["hosts"]["lab9"] = None


def _counts(counts):
    return ["-e", json.dumps({"laddr_worker_counts": counts})]


_GOOD_COUNTS = {"coordinator": 1, "researcher": 1, "analyzer": 1, "writer": 1, "validator": 1}

CASES = {
    "even ZooKeeper ensemble": (
        drop_from_group("zookeeper", "lab3"), [],
        "Inventory group 'zookeeper' has 2 hosts (lab1, lab2); a ZooKeeper ensemble needs 1, 3 or 5"),
    "missing zookeeper_id": (
        without_host_var("lab2", "zookeeper_id"), [],
        "Host lab2: zookeeper_id is not set; set a host variable zookeeper_id"),
    "zookeeper_id out of range": (
        host_var("lab2", "zookeeper_id", 300), [],
        "Host lab2: zookeeper_id is 300; set a host variable zookeeper_id, a whole number from 1 to 255"),
    "duplicate zookeeper_id": (
        host_var("lab2", "zookeeper_id", 1), [],
        "zookeeper_id values repeat in group 'zookeeper': lab1=1 lab2=1 lab3=3"),
    "missing kafka_broker_id": (
        without_host_var("lab3", "kafka_broker_id"), [],
        "Host lab3: kafka_broker_id is not set; set a host variable kafka_broker_id"),
    "duplicate kafka_broker_id": (
        host_var("lab3", "kafka_broker_id", 2), [],
        "kafka_broker_id values repeat in group 'kafka': lab1=1 lab2=2 lab3=2"),
    "Kafka heap larger than memory": (
        None, ["-e", "kafka_heap_mb=99999999"],
        "kafka_heap_mb is 99999999 MiB and the host has"),
    "ZooKeeper heap larger than memory": (
        None, ["-e", "zookeeper_heap_mb=99999999"],
        "zookeeper_heap_mb is 99999999 MiB and the host has"),
    "Kafka heap that is not a number": (
        None, ["-e", "kafka_heap_mb=40G"],
        "argument 'kafka_heap_mb' is of type str and we were unable to convert to int"),
    "ZooKeeper port that is not a number": (
        None, ["-e", "zookeeper_client_port=2181x"],
        "argument 'zookeeper_client_port' is of type str and we were unable to convert to int"),
    "topic retention that is not a number": (
        None, ["-e", "laddr_topic_retention_ms=abc"],
        "argument 'laddr_topic_retention_ms' is of type str and we were unable to convert to int"),
    "negative topic retention": (
        None, ["-e", "laddr_topic_retention_ms=-5"],
        "laddr_topic_retention_ms is -5 (milliseconds, at least 1, or -1 for no limit)"),
    "drain timeout that is not a number": (
        None, ["-e", "laddr_cutover_drain_timeout=10m"],
        "argument 'laddr_cutover_drain_timeout' is of type str and we were unable to convert to int"),
    "two services on one port": (
        None, ["-e", "kafka_jmx_port=2181"],
        "two services would use one port: kafka_client_port=9092 kafka_internal_port=29092 kafka_jmx_port=2181"),
    "wheel directory that does not answer": (
        None, ["-e", "laddr_pip_wheels_url={{ lab_mirror_url }}/no-wheels/"],
        "/no-wheels/', which does not answer from this host"),
    "Kafka UI port in use by sshd": (
        None, ["-e", "kafka_ui_port=22"],
        "Host lab3: port 22 (kafka_ui_port) is in use by sshd"),
    "API port in use by sshd": (
        None, ["-e", "laddr_api_port=22"],
        "Host lab3: port 22 (laddr_api_port) is in use by sshd"),
    "replication factor above broker count": (
        None, ["-e", "kafka_default_replication_factor=4"],
        "kafka_default_replication_factor is 4 and kafka_min_insync_replicas is 2 with 3 brokers"),
    "topic replication factor above broker count": (
        None, ["-e", "laddr_topic_replication_factor=4"],
        "laddr_topic_replication_factor is '4' with 3 brokers in group 'kafka'"),
    "unknown agent": (
        None, _counts(dict(_GOOD_COUNTS, planner=1)),
        "laddr_worker_counts names agents that the project does not define: planner"),
    "non-numeric worker count": (
        None, _counts(dict(_GOOD_COUNTS, writer="two")),
        "laddr_worker_counts.writer is 'two'; give a whole number of workers, 0 or more"),
    "negative worker count": (
        None, _counts(dict(_GOOD_COUNTS, writer=-1)),
        "laddr_worker_counts.writer is '-1'; give a whole number of workers, 0 or more"),
    "fewer partitions than workers": (
        None, ["-e", "laddr_topic_partitions=2"],
        "laddr.tasks.analyzer would have 2 partitions for 3 workers of analyzer"),
    "unreachable host": (
        _silent_worker_host, [],
        "These hosts did not answer: lab9"),
    "empty redis_password": (
        None, ["-e", "redis_password="],
        "redis_password is empty, shorter than 8 characters or holds white space"),
    "unset redis_password": (
        _without_group_var("redis_password"), [],
        "redis_password is empty, shorter than 8 characters or holds white space"),
    "unknown Kafka version": (
        None, ["-e", "kafka_version=3.9.9"],
        "kafka_archive_url (from kafka_version 3.9.9 and kafka_mirror_url):"),
    "unknown ZooKeeper version": (
        None, ["-e", "zookeeper_version=3.8.99"],
        "zookeeper_archive_url (from zookeeper_version 3.8.99 and zookeeper_mirror_url):"),
    "malformed Kafka checksum": (
        None, ["-e", "kafka_archive_checksum=sha512:0123abc"],
        "kafka_archive_checksum is 'sha512:0123abc'"),
    "wrong Kafka checksum": (
        None, ["-e", "kafka_archive_checksum=sha512:" + "0" * 128],
        "kafka_archive_checksum does not match the checksum published"),
    "malformed Kafka UI checksum": (
        None, ["-e", "kafka_ui_jar_checksum=sha256:nothex"],
        "kafka_ui_jar_checksum is 'sha256:nothex'"),
    "two Redis hosts": (
        _add_to_group("redis", "lab2"), [],
        "Group redis has 2 hosts (lab3, lab2); Laddr's Redis bus is one host"),
    "unknown bus": (
        None, ["-e", "laddr_queue_backend=rabbitmq"],
        "value of laddr_queue_backend must be one of: redis, kafka, got: rabbitmq"),
    "noop probe with a real LLM backend": (
        None, ["-e", "laddr_llm_backend=openai", "-e", "laddr_api_probe_noop=true"],
        "laddr_api_probe_noop is true but laddr_llm_backend is 'openai'"),
    "project path that is not a directory": (
        None, ["-e", "laddr_project_src=/nonexistent/project"],
        "laddr_project_src is '/nonexistent/project', which is not a directory on the controller"),
}


# The cases that the settings checks refuse: migrate.yml checks the variables and facts of every role before it
# reads anything on a host, so their runs stop before its first read of a host, the listening ports (in a run on
# the lab, 4 to 105 tasks against 119 to 184 for the cases below that need the hosts).
FIRST_HOST_READ = "Read the listening TCP ports with their processes and systemd units"
NOT_SETTINGS = {"wheel directory that does not answer", "Kafka UI port in use by sshd", "API port in use by sshd",
                "unreachable host", "unknown Kafka version", "unknown ZooKeeper version", "malformed Kafka checksum",
                "wrong Kafka checksum", "malformed Kafka UI checksum"}
SETTINGS_CASES = [case for case in CASES if case not in NOT_SETTINGS]

def inventory_with(source: Path, target: Path, change) -> Path:
    """A copy of the inventory directory SOURCE at TARGET, changed by CHANGE (see CASES); returns TARGET."""
    source, target = Path(source), Path(target)
    if target.exists():
        shutil.rmtree(target)
    (target / "group_vars").mkdir(parents=True)
    (target / "host_vars").mkdir()
    hosts_yml = yaml.safe_load((source / "hosts.yml").read_text())
    group_vars = yaml.safe_load((source / "group_vars" / "all.yml").read_text()) or {}
    host_vars = {path.stem: yaml.safe_load(path.read_text()) or {}
                 for path in sorted((source / "host_vars").glob("*.yml"))}
    if change is not None:
        change(hosts_yml, group_vars, host_vars)
    (target / "hosts.yml").write_text(yaml.safe_dump(hosts_yml, sort_keys=False))
    (target / "group_vars" / "all.yml").write_text(yaml.safe_dump(group_vars, sort_keys=False))
    for host, data in host_vars.items():
        (target / "host_vars" / f"{host}.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return target


# What a run must leave alone, read in one shell command per host. Sections start with "## name".
_SERVICES = "redis-server zookeeper kafka kafka-ui laddr-api"
_STATE_COMMAND = " ".join([
    "echo '## files';",
    "for f in /etc/laddr/* /etc/redis/* /etc/kafka/* /etc/zookeeper/* /etc/kafka-ui/*",
    "/etc/systemd/system/zookeeper* /etc/systemd/system/kafka* /etc/systemd/system/redis*",
    "/etc/systemd/system/laddr-* /etc/systemd/system/*.d/*;",
    "do [ -f \"$f\" ] && sha256sum \"$f\"; done;",
    "echo '## opt'; ls -1 /opt /opt/* 2>/dev/null;",
    "echo '## enabled'; ls -1 /etc/systemd/system/*.wants 2>/dev/null;",
    "echo '## pids';",
    f"systemctl show --property Id,MainPID,ActiveState {_SERVICES} 'laddr-worker@*' 'laddr-drain@*' 2>/dev/null;",
    "echo '## workers';",
    "systemctl list-units --all --plain --no-legend 'laddr-worker@*' 'laddr-drain@*' | awk '{print $1, $3}'",
])


def _parse_state(text):
    sections, name = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            name = line[3:].strip()
            sections[name] = []
        elif name and line.strip():
            sections[name].append(line.rstrip())
    files = {}
    for line in sections.get("files", []):
        digest, _, path = line.partition("  ")
        files[path] = digest
    units, unit = {}, {}
    for line in sections.get("pids", []) + [""]:
        if not line.strip():
            continue
        key, _, value = line.partition("=")
        unit[key] = value
        if {"Id", "MainPID", "ActiveState"} <= unit.keys():
            if unit["ActiveState"] != "inactive" or unit["MainPID"] != "0":
                units[unit["Id"]] = f"{unit['ActiveState']} {unit['MainPID']}"
            unit = {}
    return {"files": files, "opt": sections.get("opt", []), "enabled": sections.get("enabled", []), "units": units,
            "workers": sorted(sections.get("workers", []))}


def host_state(on_host, hosts) -> dict:
    """{host: {files: {path: sha256}, opt: [...], enabled: [...], units: {unit: 'ActiveState MainPID'}, workers: [...]}}.

    on_host(host, command) runs COMMAND on HOST (scripts/lab ssh) and returns a CompletedProcess."""
    state = {}
    for host in hosts:
        proc = on_host(host, _STATE_COMMAND)
        # A host that could not be read would compare equal to itself: that must fail, not pass.
        if [line for line in proc.stdout.splitlines() if line.startswith("## ")] != [
                "## files", "## opt", "## enabled", "## pids", "## workers"]:
            raise AssertionError(f"the state of {host} could not be read (exit {proc.returncode}): {proc.stderr[-2000:]}")
        state[host] = _parse_state(proc.stdout)
    return state


def collapsed(text: str) -> str:
    """TEXT with every run of white space made one space: how expected messages are searched for."""
    return re.sub(r"\s+", " ", text)
