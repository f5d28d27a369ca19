"""The collection as users get it: lint-clean, argument specs that match the defaults,
and a built artifact that installs and runs its playbooks without this repository."""
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
ROLES = sorted(p.parent.parent.name for p in REPO.glob("roles/*/defaults/main.yml"))


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


@pytest.mark.lint
def test_yamllint_is_clean():
    proc = run(["yamllint", "--strict", "."], cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.lint
def test_ansible_lint_production_profile_is_clean():
    proc = run(["ansible-lint", "--profile", "production", "--nocolor"], cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in proc.stderr + proc.stdout


@pytest.mark.unit
@pytest.mark.parametrize("role", ROLES)
def test_every_public_default_is_in_the_argument_spec(role):
    """Every role default is an option of an entry point, and every entry point that declares it gives the
    same default: what ansible-doc shows is what the role does."""
    defaults = yaml.safe_load((REPO / "roles" / role / "defaults/main.yml").read_text()) or {}
    specs = yaml.safe_load((REPO / "roles" / role / "meta/argument_specs.yml").read_text())["argument_specs"]
    declared = {name for spec in specs.values() for name in spec.get("options", {})}
    assert sorted(set(defaults) - declared) == []
    for entry, spec in specs.items():
        options = spec.get("options", {})
        undeclared = sorted(k for k in options if "default" in options[k] and k not in defaults)
        assert undeclared == [], f"{role} {entry}: defaults in the spec but not in defaults/main.yml: {undeclared}"
        for name in set(options) & set(defaults):
            assert options[name].get("default") == defaults[name], f"{role} {entry}: {name} default differs from the spec"
            assert options[name].get("description"), f"{role} {entry}: {name} has no description"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    proc = run(["ansible-galaxy", "collection", "build", "--output-path", str(out)], cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    artifact = out / f"laddr-kafka-{version}.tar.gz"
    assert artifact.exists()
    return artifact


@pytest.mark.unit
def test_built_collection_leaves_out_tests_ci_and_caches(built):
    with tarfile.open(built) as tar:
        names = tar.getnames()
    assert "roles/base/tasks/main.yml" in names and "playbooks/base.yml" in names
    for unwanted in ("tests/", "molecule/", "scripts/", ".ci/", ".venv/", ".collections/", ".git/", "tools/"):
        assert not [n for n in names if n.startswith(unwanted)], unwanted
    # The lab's inventory carries its passwords; benchmark runs are the team's, not a user's.
    for unwanted in ("inventories/lab/", "docs/benchmark/", "pytest.ini"):
        assert not [n for n in names if n.startswith(unwanted)], unwanted
    with tarfile.open(built) as tar:
        for member in tar.getmembers():
            if member.isfile():
                text = tar.extractfile(member).read()
                assert b"laddr-lab-redis-only" not in text and b"laddr-lab-only" not in text, member.name
    assert "LICENSE" in names and "LICENSES/GPL-3.0-or-later.txt" in names and "LICENSES/Apache-2.0.txt" in names
    manifest = json.loads(tarfile.open(built).extractfile("MANIFEST.json").read())
    assert manifest["collection_info"]["license"] == ["GPL-3.0-or-later", "Apache-2.0"]
    assert manifest["collection_info"]["namespace"] == "laddr"
    assert manifest["collection_info"]["name"] == "kafka"


@pytest.mark.unit
def test_installed_collection_runs_its_playbook_by_fqcn(built, tmp_path):
    install = tmp_path / "collections"
    proc = run(["ansible-galaxy", "collection", "install", "-p", str(install), str(built)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Run outside the repository, so that neither its ansible.cfg nor its link can help.
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}
    env["ANSIBLE_COLLECTIONS_PATH"] = str(install)
    listed = run(["ansible-playbook", "-i", "localhost,", "--list-tasks", "laddr.kafka.base"], cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    # The role's tasks are included once per host and values (roles/base/tasks/main.yml): the include is what lists.
    assert "laddr.kafka.base : Host base is in place" in listed.stdout
    doc = run(["ansible-doc", "-t", "role", "laddr.kafka.base"], cwd=tmp_path, env=env)
    assert doc.returncode == 0, doc.stderr
    assert "base_service_accounts" in doc.stdout


@pytest.mark.unit
def test_playbooks_fall_back_to_the_declared_defaults_of_their_options():
    """The playbooks' options are declared once (laddr's entry point playbook_options); where a playbook
    spells a fallback for one, it is the declared default."""
    spec = yaml.safe_load((REPO / "roles/laddr/meta/argument_specs.yml").read_text())["argument_specs"]
    declared = spec["playbook_options"]["options"]
    seen = 0
    for playbook in sorted((REPO / "playbooks").glob("*.yml")):
        for name, fallback in re.findall(r"(laddr_\w+) \| default\(([^)]*)\)", playbook.read_text()):
            if name in declared:
                seen += 1
                assert yaml.safe_load(fallback) == declared[name]["default"], f"{playbook.name}: {name} | default({fallback})"
    assert seen >= 5


def listed_tasks(playbook, *args):
    """{play name: [(task, tags)]} as ansible-playbook --list-tasks shows PLAYBOOK on the staging inventory."""
    proc = run(["ansible-playbook", "-i", "inventories/staging", f"playbooks/{playbook}", "--list-tasks", *args],
               cwd=REPO, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plays, play = {}, None
    for line in proc.stdout.splitlines():
        found = re.match(r"\s+play #\d+ \([^)]*\): (.*?)\tTAGS", line)
        if found:
            play = plays.setdefault(found.group(1), [])
        elif play is not None and "\tTAGS: [" in line:
            task, tags = line.strip().rsplit("\tTAGS: [", 1)
            play.append((task, set(tags.rstrip("]").split(", "))))
    return plays


@pytest.mark.unit
def test_every_task_of_a_role_carries_the_role_tag():
    """--tags <role> runs that role's tasks and none of another's (the roles' main entry points tag every phase)."""
    seen = set()
    for playbook in ("kafka_cluster.yml", "kafka_ui.yml", "redis_state.yml"):
        for play, tasks in listed_tasks(playbook).items():
            for task, tags in tasks:
                role = re.match(r"laddr\.kafka\.(\w+) : ", task)
                if role and not task.split(" : ", 1)[1].startswith("Validating arguments"):
                    assert role.group(1) in tags, f"{playbook}, {play}: {task} has tags {tags}"
                    seen.add(role.group(1))
    assert seen == {"base", "zookeeper", "kafka", "kafka_ui", "redis", "laddr_worker", "laddr_api"}, seen


@pytest.mark.unit
def test_tags_select_one_role_of_a_playbook():
    plays = listed_tasks("kafka_cluster.yml", "--tags", "zookeeper")
    ran = {task.split(" : ")[0] for tasks in plays.values() for task, tags in tasks if "always" not in tags}
    assert "laddr.kafka.zookeeper" in ran and "laddr.kafka.kafka" not in ran and "laddr.kafka.base" not in ran, plays
    assert plays["Preflight of the Kafka brokers"] == [], plays
    plays = listed_tasks("kafka_cluster.yml", "--tags", "kafka")
    assert plays["ZooKeeper ensemble is installed and serving"] == [
        (task, tags) for task, tags in plays["ZooKeeper ensemble is installed and serving"] if "always" in tags], plays
    assert any(task.startswith("laddr.kafka.kafka : ") for task, _ in plays["Kafka brokers are installed and in the cluster"])


@pytest.mark.unit
def test_role_tags_reach_the_tasks_of_dynamic_includes():
    """--tags <role> runs what a role includes dynamically too: Ansible gives an include's own tags to the include
    alone, not to the tasks it loads, so that zookeeper's Install under --tags zookeeper ran no task and a fresh host
    got no ZooKeeper. Each include in a role that carries tags passes them on with apply (tags of a play, a block or
    an import reach included tasks by themselves)."""
    missing = []
    for path in sorted(REPO.glob("roles/*/tasks/*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            action = next((key for key in task if key.startswith("ansible.builtin.include_")), None)
            if action is None or "tags" not in task:
                continue
            args = task[action] if isinstance(task[action], dict) else {}
            applied = set((args.get("apply") or {}).get("tags") or [])
            if not set(task["tags"]) <= applied:
                missing.append(f"{path.relative_to(REPO)}: {task.get('name')}")
    assert not missing, missing
