"""Filter role_options: the option names of a role's entry point, as the laddr role digests its variables."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.laddr.kafka.plugins.filter.role_options import role_options

ROLES = Path(__file__).resolve().parents[4] / "roles"


def test_the_options_of_each_entry_point_of_the_roles():
    for spec_file in sorted(ROLES.glob("*/meta/argument_specs.yml")):
        specs = yaml.safe_load(spec_file.read_text())["argument_specs"]
        for entry, spec in specs.items():
            assert role_options(str(spec_file), entry) == sorted(spec.get("options") or {}), (spec_file, entry)
    assert "laddr_queue_backend" in role_options(str(ROLES / "laddr" / "meta" / "argument_specs.yml"))


def test_a_missing_file_or_entry_point_is_named(tmp_path):
    with pytest.raises(AnsibleFilterError, match="cannot read the argument spec .*nothing.yml"):
        role_options(str(tmp_path / "nothing.yml"))
    with pytest.raises(AnsibleFilterError, match="has no entry point 'upgrade'"):
        role_options(str(ROLES / "laddr" / "meta" / "argument_specs.yml"), "upgrade")
