"""The laddr role's one read of the installed Laddr code (roles/laddr/files/laddr_code_state.py), run as the role runs
it: `python -c <its text>` with the patches as JSON on stdin, against a release installed as pip lays one out (a
dist-info directory beside the package) and real GNU patch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = (Path(__file__).resolve().parents[3] / "roles" / "laddr" / "files" / "laddr_code_state.py").read_text()

STOCK = "def answer(task):\n    return task\n\n\ndef topics():\n    return []\n"
PATCHES = {
    "0001-answer-carries-id.patch": (
        "--- a/laddr/core.py\n+++ b/laddr/core.py\n@@ -1,3 +1,3 @@\n def answer(task):\n-    return task\n"
        "+    return {'task_id': task['id'], 'result': task}\n \n"),
    "0002-topics-cached.patch": (
        "--- a/laddr/core.py\n+++ b/laddr/core.py\n@@ -5,2 +5,2 @@\n def topics():\n-    return []\n"
        "+    return CACHE\n"),
}


@pytest.fixture
def site(tmp_path):
    """A site-packages with laddr 0.9.6 in it as pip installs it."""
    site = tmp_path / "site-packages"
    (site / "laddr").mkdir(parents=True)
    (site / "laddr" / "core.py").write_text(STOCK)
    info = site / "laddr-0.9.6.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: laddr\nVersion: 0.9.6\n")
    return site


def read(site, *args, patches=None, release="0.9.6"):
    texts = {f"laddr-{release}/{name}": text for name, text in (PATCHES if patches is None else patches).items()}
    # -S: the interpreter's own site-packages stay out, so SITE (on PYTHONPATH) is the only place Laddr can be found.
    proc = subprocess.run([sys.executable, "-S", "-c", SCRIPT, *args], input=json.dumps(texts), capture_output=True,
                          text=True, check=False, env=dict(os.environ, PYTHONPATH=str(site)))
    return proc


def state(site, **kw):
    proc = read(site, **kw)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def apply(site, name):
    subprocess.run(["patch", "--silent", "--fuzz=0", "-p1", "-d", str(site)], input=PATCHES[name], text=True, check=True)


def test_stock_code_holds_no_patch_and_takes_every_one(site):
    found = state(site)
    assert (found["release"], found["site"]) == ("0.9.6", str(site))
    assert found["held"] == [] and found["fits"] == sorted(PATCHES)


def test_code_with_one_patch_holds_it_and_takes_the_other(site):
    apply(site, "0002-topics-cached.patch")
    found = state(site)
    assert found["held"] == ["0002-topics-cached.patch"] and found["fits"] == ["0001-answer-carries-id.patch"]


def test_fully_patched_code_holds_every_patch(site):
    for name in sorted(PATCHES):
        apply(site, name)
    assert state(site)["held"] == sorted(PATCHES) and state(site)["fits"] == []


def test_an_edited_line_in_a_patch_s_hunk_neither_holds_nor_takes_that_patch(site):
    core = site / "laddr" / "core.py"
    core.write_text(core.read_text().replace("    return task\n", "    return task  # edited here\n"))
    found = state(site)
    assert found["held"] == [] and found["fits"] == ["0002-topics-cached.patch"]


def test_only_the_installed_release_s_patches_are_tried(site):
    found = state(site, patches=PATCHES, release="0.9.7")
    assert found["release"] == "0.9.6" and found["held"] == [] and found["fits"] == []


def test_a_virtualenv_without_laddr_is_an_error_unless_missing_is_allowed(tmp_path):
    missing = read(tmp_path)
    assert missing.returncode == 1 and "laddr is not installed" in missing.stderr
    allowed = read(tmp_path, "missing-ok")
    assert allowed.returncode == 0 and json.loads(allowed.stdout) == {"release": "", "site": "", "held": [], "fits": []}


def test_the_read_changes_nothing(site):
    before = (site / "laddr" / "core.py").read_text()
    state(site)
    assert (site / "laddr" / "core.py").read_text() == before
    assert sorted(p.name for p in (site / "laddr").iterdir()) == ["core.py"]
