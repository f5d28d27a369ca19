"""kafka_scram_user's checks of its input and its choice of action, without a broker."""

from __future__ import annotations

from ansible_collections.laddr.kafka.plugins.modules import kafka_scram_user as mod

USER = {"name": "laddr-api", "password": "pw-of-the-api", "mechanism": "SCRAM-SHA-512", "iterations": 8192,
        "state": "present"}


def test_action_follows_the_credential_kept_and_the_login():
    assert mod.action_of(USER, {}, None) == "create"
    assert mod.action_of(USER, {"SCRAM-SHA-512": 8192}, True) == "none"
    assert mod.action_of(USER, {"SCRAM-SHA-512": 8192}, False) == "update"
    assert mod.action_of(USER, {"SCRAM-SHA-512": 4096}, True) == "update"
    assert mod.action_of(USER, {"SCRAM-SHA-256": 8192}, None) == "create"
    assert mod.action_of(dict(USER, state="absent"), {"SCRAM-SHA-512": 8192}, None) == "delete"
    assert mod.action_of(dict(USER, state="absent"), {}, None) == "none"


def test_problems_name_the_user_and_what_to_do():
    assert mod.problems_of([USER]) == []
    assert mod.problems_of([dict(USER, password=None)]) == ["user 'laddr-api': give a password (or state: absent)"]
    assert mod.problems_of([dict(USER, password=None, state="absent")]) == []
    assert mod.problems_of([USER, USER]) == ["user 'laddr-api' is listed twice for SCRAM-SHA-512"]
    assert "Kafka takes 4096 to 16384" in mod.problems_of([dict(USER, iterations=20000)])[0]
    assert "use letters" in mod.problems_of([dict(USER, name="a b")])[0]
