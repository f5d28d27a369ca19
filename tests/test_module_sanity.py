"""The modules as ansible-test and ansible-doc see them: sanity clean without ignore files, docs that render."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lint

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))


def run(cmd, **kw):
    env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}", ANSIBLE_NOCOLOR="1")
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, **kw)


def test_ansible_test_sanity_is_clean_without_ignore_files():
    assert not list((REPO / "tests").glob("sanity/ignore-*.txt")), "sanity ignore files are not allowed"
    proc = run([str(REPO / "tests" / "integration" / "ansible-test-tree"), "sanity"], timeout=1500)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-8000:]
    for test in ("ansible-doc", "compile", "import", "pep8", "pylint", "validate-modules", "yamllint",
                 "changelog", "runtime-metadata"):
        assert f'Running sanity test "{test}"' in output, test


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_the_module_with_examples(module):
    fqcn = f"laddr.kafka.{module}"
    text = run([str(BIN / "ansible-doc"), fqcn], timeout=120)
    assert text.returncode == 0, text.stderr
    assert "EXAMPLES:" in text.stdout and f"{fqcn}:" in text.stdout.split("EXAMPLES:", 1)[1]
    assert "RETURN VALUES:" in text.stdout

    data = run([str(BIN / "ansible-doc"), "--json", fqcn], timeout=120)
    assert data.returncode == 0, data.stderr
    doc = json.loads(data.stdout)[fqcn]
    assert doc["examples"].strip() and doc["return"]
    attributes = doc["doc"]["attributes"]
    assert attributes["check_mode"]["support"] == "full"
    assert "diff_mode" in attributes


def test_ansible_test_units_finds_and_passes_the_pure_tests():
    """tests/unit is where ansible-test units looks: it runs every test there (as many as pytest collects), all pass."""
    collected = run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/unit"])
    expected = sum(1 for line in collected.stdout.splitlines() if "::" in line)
    proc = run([str(REPO / "tests" / "integration" / "ansible-test-tree"), "units"], timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    passed = sum(int(count) for count in re.findall(r"=+ (\d+) passed in ", output))
    assert expected > 0 and passed == expected, (expected, output[-3000:])
