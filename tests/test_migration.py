"""The whole story on three lab hosts (ZooKeeper and Kafka on all three, the application beside them),
driven by the playbooks as a user runs them, under a steady load through the API that records every
task the API accepted:
  the Redis state; migrate.yml's first phases (preflight, kafka, topics); a broker made to fail and
  migrate.yml run whole, which must stop with Laddr still answering on Redis; the broker mended and
  migrate.yml re-run, which must complete; its second re-run; verify.yml failing, saying what is
  wrong, on a stopped worker, too few partitions, a group short of members and a missing topic;
  scale.yml up (more workers than partitions), again, and down; rollback.yml and its re-run.
Then every accepted task must have been answered with what was sent, every second run must have
changed nothing, and the story must end on Redis with Kafka kept. Figures (wall times, refusals,
longest stretch without an answer in each cutover) are printed."""
import json
import shutil
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "scripts" / "lab"
INVENTORY = REPO / "inventories" / "lab"
LOAD = REPO / "tests" / "integration" / "laddr_load.py"
HOSTS = ["lab1", "lab2", "lab3"]
AGENTS = ["analyzer", "coordinator", "researcher", "validator", "writer"]
SCALED = {"coordinator": 1, "researcher": 3, "analyzer": 1, "writer": 0, "validator": 1}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


def playbook(name, *args, check=True):
    started = time.monotonic()
    began = time.time()
    proc = subprocess.run(["ansible-playbook", "-i", str(INVENTORY), f"playbooks/{name}", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=2400,
                          env=dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1"))
    proc.seconds = time.monotonic() - started
    proc.window = (began, time.time())
    if check and proc.returncode != 0:
        pytest.fail(f"{name} {' '.join(args)} failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-3000:]}")
    return proc


def changed(proc):
    """Changed count per host from the PLAY RECAP."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", proc.stdout, re.M)}


def on_host(host, command, stdin=None, check=True):
    proc = subprocess.run([str(LAB), "ssh", host, command], input=stdin, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        pytest.fail(f"{host}: {command} failed: {proc.stdout}\n{proc.stderr}")
    return proc


def addresses():
    hosts = yaml.safe_load((INVENTORY / "hosts.yml").read_text())["all"]["hosts"]
    return {name: hosts[name]["ansible_host"] for name in HOSTS}


def counts(per_agent):
    return ["-e", json.dumps({"laddr_worker_counts": per_agent})]


def longest_gap(times, start, end):
    """Longest stretch between answers within [start, end], the window's ends included."""
    bounds = [start, *[t for t in times if start <= t <= end], end]
    return round(max(b - a for a, b in zip(bounds, bounds[1:])), 2)


class LoadRun:
    """laddr_load.py running on the API host under systemd-run, until stop()."""

    def __init__(self):
        address = addresses()
        password = yaml.safe_load((INVENTORY / "group_vars" / "all.yml").read_text())["redis_password"]
        on_host("lab3", "cat > /root/laddr_load.py; rm -f /root/load.json /root/load.stop", stdin=LOAD.read_text())
        on_host("lab3", " ".join([
            "systemd-run --unit laddr-load --collect /opt/laddr/venv/bin/python /root/laddr_load.py",
            f"--api http://{address['lab3']}:8000", "--agents", ",".join(AGENTS), "--rate 4",
            f"--redis-url redis://:{password}@{address['lab3']}:6379/0",
            "--kafka-bootstrap", ",".join(f"{address[h]}:9092" for h in HOSTS),
            "--out /root/load.json --stop-file /root/load.stop --settle 120"]))

    def stop(self):
        on_host("lab3", "touch /root/load.stop")
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            found = on_host("lab3", "cat /root/load.json", check=False)
            if found.returncode == 0 and found.stdout.strip():
                return json.loads(found.stdout)
            time.sleep(5)
        pytest.fail("the load generator wrote no result: " + on_host("lab3", "journalctl -u laddr-load -n 30", check=False).stdout)


@pytest.fixture(scope="module")
def story(figures, tmp_path_factory):
    subprocess.run([str(LAB), "down"], check=True, capture_output=True, timeout=600)
    subprocess.run([str(LAB), "up", "3"], check=True, capture_output=True, timeout=600)
    runs = {"redis_state": playbook("redis_state.yml")}
    load = LoadRun()
    checks = {}
    runs["migrate: preflight, kafka, topics (fresh hosts)"] = playbook("migrate.yml", "--tags", "preflight,kafka,topics")

    # A broker that cannot start (a drop-in the roles do not manage makes its unit fail) stops the migration.
    on_host("lab2", "systemctl stop kafka && mkdir -p /etc/systemd/system/kafka.service.d && "
                    "printf '[Service]\\nExecStartPre=/bin/false\\n' > /etc/systemd/system/kafka.service.d/broken.conf && "
                    "systemctl daemon-reload")
    runs["migrate interrupted"] = playbook("migrate.yml", "-e", "kafka_health_timeout=60", check=False)
    checks["buses after the interrupted run"] = {
        host: on_host(host, "sed -n 's/^QUEUE_BACKEND=//p' /etc/laddr/laddr.env").stdout.strip() for host in HOSTS}
    checks["verify after the interrupted run"] = playbook("verify.yml", check=False)
    on_host("lab2", "rm -r /etc/systemd/system/kafka.service.d && systemctl daemon-reload")
    runs["migrate"] = playbook("migrate.yml")
    runs["migrate again"] = playbook("migrate.yml")

    checks["verify"] = verify_failures(tmp_path_factory.mktemp("project"))

    runs["scale up"] = playbook("scale.yml", *counts(SCALED))
    runs["scale up again"] = playbook("scale.yml", *counts(SCALED))
    runs["scale down"] = playbook("scale.yml")
    runs["rollback"] = playbook("rollback.yml", "-e", "laddr_rollback_confirm=true")
    runs["rollback again"] = playbook("rollback.yml", "-e", "laddr_rollback_confirm=true")
    time.sleep(20)
    result = load.stop()
    for name, run in runs.items():
        figures.append((f"migration story: {name} (s)", round(run.seconds, 1)))
    for name in ("migrate", "rollback"):
        figures.append((f"migration story: longest stretch without an answer during {name} (s)",
                        longest_gap(result["answer_times"], *runs[name].window)))
    for key in ("accepted", "answered", "refused_attempts", "longest_refusal_s", "longest_gap_without_answer_s",
                "answers_by_bus"):
        figures.append((f"migration story load: {key}", result.get(key)))
    for key in ("lost", "wrong", "duplicates"):
        figures.append((f"migration story load: {key}", result[key]["count"]))
    yield runs, result, checks
    subprocess.run([str(LAB), "down"], capture_output=True, timeout=600)


def verify_failures(project):
    """verify.yml on Kafka, under the load, with one thing wrong at a time: {case: the run}."""
    failures = {}
    on_host("lab2", "systemctl stop laddr-worker@writer-1")
    failures["stopped worker"] = playbook("verify.yml", "-e", "laddr_verify_wait=5", check=False)
    on_host("lab2", "systemctl start laddr-worker@writer-1")
    failures["too few partitions"] = playbook("verify.yml", "-e", "laddr_verify_wait=5", "-e", "laddr_topic_partitions=8",
                                              check=False)
    failures["group short of members"] = playbook("verify.yml", "-e", "laddr_verify_wait=5", *counts({"writer": 2}),
                                                  check=False)
    # A project with one more agent, which has no topic yet (the hosts run the example project).
    shutil.copytree(REPO / "examples" / "laddr-project", project, dirs_exist_ok=True)
    (project / "agents" / "auditor.py").write_text((project / "agents" / "writer.py").read_text().replace("writer", "auditor"))
    failures["missing topic"] = playbook("verify.yml", "-e", "laddr_verify_wait=5", "-e", f"laddr_project_src={project}",
                                         check=False)
    return failures


def test_every_accepted_task_is_answered_as_sent(story):
    _, result, _ = story
    assert result["accepted"] >= 200, result
    assert result["lost"]["count"] == 0, result["lost"]
    assert result["wrong"]["count"] == 0, result["wrong"]
    assert result["answers_by_bus"]["redis"] > 0 and result["answers_by_bus"]["kafka"] > 0, result


def test_second_runs_change_nothing(story):
    runs, _, _ = story
    for name in ("migrate again", "scale up again", "rollback again"):
        assert set(changed(runs[name]).values()) == {0}, f"{name}: {changed(runs[name])}\n{runs[name].stdout[-4000:]}"


def test_an_interrupted_migration_leaves_redis_serving_and_a_rerun_completes(story):
    runs, _, checks = story
    assert runs["migrate interrupted"].returncode != 0
    assert set(checks["buses after the interrupted run"].values()) == {"redis"}, checks["buses after the interrupted run"]
    assert checks["verify after the interrupted run"].returncode == 0, checks["verify after the interrupted run"].stdout[-4000:]
    assert "Laddr runs on kafka." in runs["migrate"].stdout


def test_verify_names_what_is_wrong_on_kafka(story):
    _, _, checks = story
    expected = {
        "stopped worker": "writer-1: inactive",
        "too few partitions": "Topic laddr.tasks.writer is not as planned (would need: add_partitions)",
        "group short of members": "laddr-writer-workers",
        "missing topic": "Topic laddr.tasks.auditor is not as planned (would need: create)",
    }
    for case, message in expected.items():
        run = checks["verify"][case]
        assert run.returncode != 0 and message in run.stdout, f"{case}:\n{run.stdout[-4000:]}"


def test_the_story_ends_on_redis_with_kafka_kept(story):
    for host in HOSTS:
        env = on_host(host, "grep -E '^(# )?(QUEUE_BACKEND|KAFKA_BOOTSTRAP)=' /etc/laddr/laddr.env").stdout
        assert re.search(r"^QUEUE_BACKEND=redis$", env, re.M) and re.search(r"^# KAFKA_BOOTSTRAP=", env, re.M), env
        assert on_host(host, "systemctl is-active kafka zookeeper").stdout.split() == ["active", "active"]
        assert on_host(host, "ls /etc/laddr/drain.env", check=False).returncode != 0


def test_rollback_refuses_without_confirmation():
    """Before any host is contacted: the lab need not be up."""
    refused = playbook("rollback.yml", check=False)
    assert refused.returncode != 0
    assert "rollback.yml moves Laddr from Kafka back to Redis. Nothing was changed." in refused.stdout, refused.stdout
    assert not re.search(r"^lab\d\s+:", refused.stdout, re.M), refused.stdout
