"""host_state's comparisons on real files, directories and links in a temporary directory, and its reading of
systemctl's output. Owner and group are compared by name: the tests ask for the names this process's files get."""
from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import subprocess
import time

import pytest

from ansible_collections.laddr.kafka.plugins.modules import host_state as module

OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "etc").mkdir(mode=0o750)
    os.chmod(tmp_path / "etc", 0o750)
    config = tmp_path / "etc" / "server.properties"
    config.write_text("broker.id=1\n")
    os.chmod(config, 0o640)
    os.symlink(tmp_path / "release-1", tmp_path / "current")
    return tmp_path


def wanted_file(tree, **more):
    return {"path": str(tree / "etc" / "server.properties"), "state": "file", "owner": OWNER, "group": GROUP,
            "mode": "0640", "checksum": sha1("broker.id=1\n"), **more}


def test_a_file_as_wanted_differs_in_nothing(tree):
    assert module.path_differs(wanted_file(tree)) == []


def test_content_mode_owner_and_group_are_each_named(tree):
    assert module.path_differs(wanted_file(tree, checksum=sha1("broker.id=2\n"))) == ["content"]
    assert module.path_differs(wanted_file(tree, mode="0644")) == ["mode"]
    assert module.path_differs(wanted_file(tree, owner="no-such-owner", group="no-such-group")) == ["owner", "group"]


def test_what_is_not_asked_is_not_compared(tree):
    assert module.path_differs({"path": str(tree / "etc" / "server.properties")}) == []


def test_a_missing_path_and_the_wrong_kind_of_path(tree):
    assert module.path_differs({"path": str(tree / "nothing"), "state": "exists"}) == ["missing"]
    assert module.path_differs({"path": str(tree / "etc"), "state": "file"}) == ["not a file"]
    assert module.path_differs({"path": str(tree / "etc"), "state": "directory", "mode": "0750"}) == []
    # A link is compared as a link, not as what it points at (which does not even exist here).
    assert module.path_differs({"path": str(tree / "current"), "state": "directory"}) == ["not a directory"]


def test_a_tree_names_each_file_that_is_missing_changed_or_open_to_others(tree):
    project = tree / "project"
    (project / "agents").mkdir(parents=True)
    (project / "agents" / "writer.py").write_text("WRITER = 1\n")
    (project / "main.py").write_text("print('hi')\n")
    (project / "extra.txt").write_text("not listed: does not count\n")
    for path in (project / "agents" / "writer.py", project / "main.py"):
        os.chmod(path, 0o640)
    wanted = {"path": str(project), "owner": OWNER, "group": GROUP, "private": True,
              "files": [f"agents/writer.py {sha1('WRITER = 1' + chr(10))}", f"main.py {sha1('print(' + repr('hi') + ')' + chr(10))}"]}
    assert module.tree_differs(wanted) == []
    os.chmod(project / "main.py", 0o644)
    (project / "agents" / "writer.py").write_text("WRITER = 2\n")
    assert module.tree_differs(dict(wanted, files=wanted["files"] + [f"agents/gone.py {sha1('')}"])) == [
        f"{project}/agents/writer.py: content", f"{project}/main.py: mode", f"{project}/agents/gone.py: missing"]
    assert module.tree_differs(dict(wanted, private=False, owner="no-such-owner")) == [
        f"{project}/agents/writer.py: owner, content", f"{project}/main.py: owner"]


def test_a_link_must_point_at_its_target(tree):
    link = {"path": str(tree / "current"), "state": "link", "src": str(tree / "release-1")}
    assert module.path_differs(link) == []
    assert module.path_differs(dict(link, src=str(tree / "release-2"))) == ["target"]


def test_the_newest_change_counts_links_by_their_own_time_and_directories_by_what_is_under_them(tree):
    old = time.time() - 1000
    for path in (tree / "etc" / "server.properties", tree / "etc"):
        os.utime(path, (old, old))
    os.utime(tree / "current", (old - 500, old - 500), follow_symlinks=False)
    assert module.newest_change([str(tree / "current")]) == pytest.approx(old - 500)
    assert module.newest_change([str(tree / "etc"), str(tree / "missing")]) == pytest.approx(old)
    (tree / "etc" / "__pycache__").mkdir()
    (tree / "etc" / "__pycache__" / "x.pyc").write_text("")
    os.utime(tree / "etc", (old, old))
    assert module.newest_change([str(tree / "etc")]) == pytest.approx(old)  # byte-code caches aside
    (tree / "etc" / "log4j.properties").write_text("")
    assert module.newest_change([str(tree / "etc")]) > old + 900
    assert module.newest_change([]) == 0


SHOWN = """ActiveState=active
UnitFileState=enabled
ExecMainStartTimestamp=@1796600000

ActiveState=activating
UnitFileState=enabled
ExecMainStartTimestamp=@1796600100

ActiveState=inactive
UnitFileState=
ExecMainStartTimestamp=
"""


def test_units_tell_whether_they_run_and_owe_a_restart():
    names = ["kafka.service", "zookeeper.service", "kafka-ui.service"]
    units = module.parse_units(names, SHOWN, newest=1796599999.5)
    assert units["kafka.service"] == {"active_state": "active", "unit_file_state": "enabled", "started": 1796600000.0,
                                      "restart": "current"}
    # Between two starts that systemd makes after failures the unit is "activating": it does not run.
    assert units["zookeeper.service"]["restart"] == "stopped" and units["zookeeper.service"]["started"] is None
    assert units["kafka-ui.service"]["restart"] == "stopped"
    # Started before the newest change (whole seconds: a change within the second after the start does not count).
    assert module.parse_units(names, SHOWN, newest=1796600001.0)["kafka.service"]["restart"] == "owed"
    assert module.parse_units(names, SHOWN, newest=1796600000.9)["kafka.service"]["restart"] == "current"


def test_an_environment_without_the_pinned_packages_differs(tmp_path):
    import sys
    assert module.pins_differ(sys.executable, ["pytest==%s" % pytest.__version__]) == []
    assert module.pins_differ(sys.executable, ["pytest==0.0.1", "no-such-distribution==1.0"]) == [
        "pytest==0.0.1", "no-such-distribution==1.0"]
    assert module.pins_differ(str(tmp_path / "no-python"), ["pytest==%s" % pytest.__version__]) == [
        "pytest==%s" % pytest.__version__]


def test_a_missing_account_differs():
    assert module.account_differs({"name": "no-such-account-here", "home": "/nonexistent"}) == ["missing"]


def test_an_account_is_compared_by_its_group_home_and_shell():
    root = pwd.getpwnam("root")
    assert module.account_differs({"name": "root", "home": root.pw_dir, "shell": root.pw_shell}) == []
    assert module.account_differs({"name": "root", "home": "/elsewhere", "shell": "/usr/sbin/nologin"}) == (
        ["home"] if root.pw_shell == "/usr/sbin/nologin" else ["home", "shell"])


@pytest.mark.skipif(not shutil.which("dpkg-query"), reason="dpkg-query is Debian's; this machine has none")
def test_packages_that_dpkg_does_not_list_as_installed_are_missing():
    def run(argv):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return done.returncode, done.stdout, done.stderr
    assert module.packages_missing(["dpkg", "no-such-package-of-laddr-kafka"], run) == ["no-such-package-of-laddr-kafka"]


def test_in_place_only_when_nothing_differs_and_every_unit_is_enabled_and_running():
    running = {"active_state": "active", "unit_file_state": "enabled"}
    assert module.in_place([], {"kafka.service": running})
    assert module.in_place([], {})
    assert not module.in_place(["/etc/kafka/server.properties: mode"], {"kafka.service": running})
    assert not module.in_place([], {"kafka.service": dict(running, unit_file_state="disabled")})
    assert not module.in_place([], {"kafka.service": dict(running, active_state="activating")})


def test_settled_only_when_in_place_and_no_unit_owes_a_restart():
    running = {"active_state": "active", "unit_file_state": "enabled", "started": 1796600000, "restart": "current"}
    assert module.settled([], {"kafka.service": running})
    assert not module.settled([], {"kafka.service": dict(running, restart="owed")})
    assert not module.settled(["/etc/kafka/server.properties: content"], {"kafka.service": running})
    assert not module.settled([], {"kafka.service": dict(running, active_state="failed", restart="stopped")})
