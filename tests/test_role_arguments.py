"""laddr.kafka.role_arguments on the controller: the options of migrate, verify, scale and rollback (the laddr
role's entry point playbook_options) checked before any host is touched, as playbooks/options.yml does."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PLAY = """
- name: Options
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Playbook options
      ansible.builtin.include_role:
        name: laddr.kafka.laddr
        tasks_from: playbook_options.yml
"""


def options_run(tmp_path, *extra):
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "hosts.yml").write_text(
        f"all:\n  hosts:\n    localhost: {{ansible_connection: local, ansible_python_interpreter: {sys.executable}}}\n")
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
           str(tmp_path / "play.yml"), *extra]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"))


@pytest.mark.unit
def test_sound_options_pass(tmp_path):
    run = options_run(tmp_path, "-e", "laddr_verify_wait=45")
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.unit
def test_every_wrong_option_is_named_in_one_message(tmp_path):
    run = options_run(tmp_path, "-e", "laddr_verify_wait=abc", "-e", "laddr_cutover_drain_timeout=10m")
    out = " ".join((run.stdout + run.stderr).split())
    assert run.returncode != 0
    assert "Host localhost: argument 'laddr_verify_wait' is of type str and we were unable to convert to int" in out, out
    assert "argument 'laddr_cutover_drain_timeout' is of type str" in out, out
    assert "Correct these variables of role laddr.kafka.laddr (entry point playbook_options)" in out, out
    assert "ansible-doc -t role laddr.kafka.laddr" in out, out
