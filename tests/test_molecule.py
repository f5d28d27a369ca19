"""Each molecule scenario on real lab hosts: create, converge, idempotence (the second converge
changes nothing), verify, destroy. Scenarios are found from molecule/*/molecule.yml. They run on this test run's
own lab (tests/integration/lab.py), never on the default one."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))
import lab  # noqa: E402  (this run's own lab: molecule's create and destroy drive it)

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = sorted(p.parent.name for p in REPO.glob("molecule/*/molecule.yml"))


@pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario, tmp_path):
    log = tmp_path / "molecule.log"
    with open(log, "w") as out:
        proc = subprocess.run(["molecule", "test", "-s", scenario], cwd=REPO, stdout=out,
                              stderr=subprocess.STDOUT, timeout=2400,
                              env=lab.lab_env(ANSIBLE_FORCE_COLOR="0", NO_COLOR="1", PY_COLORS="0",
                                              LAB_MIRROR_URL=lab.MIRROR_URL))
    text = log.read_text()
    assert proc.returncode == 0, "\n".join(text.splitlines()[-150:])
    for step in ("converge", "idempotence", "verify"):
        assert re.search(rf"{scenario}\W+{step}: Executed: Successful", text), f"{step} did not run"
    assert re.search(rf"^{scenario} +: actions=\d+ .* failed=0$", text, re.M)
