"""kafka_acl's planning, without a broker."""

from __future__ import annotations

from ansible_collections.laddr.kafka.plugins.modules import kafka_acl as mod


def test_plan_creates_what_is_missing_and_removes_strays_only_of_owned_principals():
    mine = ("User:a", "*", "READ", "ALLOW", "TOPIC", "t", "LITERAL")
    stray = ("User:a", "*", "WRITE", "ALLOW", "TOPIC", "t", "LITERAL")
    other = ("User:b", "*", "WRITE", "ALLOW", "TOPIC", "t", "LITERAL")
    assert mod.plan({mine}, {stray, other}, "present", {"User:a"}) == ([mine], [stray])
    assert mod.plan({mine}, {stray, other}, "present", set()) == ([mine], [])
    assert mod.plan({mine, stray}, {stray, other}, "absent", {"User:a"}) == ([], [stray])


def test_wanted_key_names_what_is_wrong():
    base = {"principal": "User:a", "host": "*", "operation": "describe", "permission": "allow",
            "resource_type": "cluster", "resource_name": None, "pattern_type": "literal"}
    assert mod.wanted_key(base) == (("User:a", "*", "DESCRIBE", "ALLOW", "BROKER", "kafka-cluster", "LITERAL"), None)
    assert "a cluster ACL names no resource" in mod.wanted_key(dict(base, resource_name="x"))[1]
    assert "topic ACL without resource_name" in mod.wanted_key(dict(base, resource_type="topic"))[1]
    assert mod.acl_dict(mod.wanted_key(base)[0])["resource_type"] == "cluster"
