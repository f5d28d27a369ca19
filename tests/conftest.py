"""Shared pytest fixtures for laddr.kafka tests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kafka_local  # noqa: E402  (needs the path above)


@pytest.fixture(scope="session")
def kafka_mirror() -> kafka_local.Mirror:
    """The artifact mirror, built by scripts/kafka-dist if missing or stale."""
    return kafka_local.ensure_mirror()


@pytest.fixture(scope="session")
def kafka_broker(
    kafka_mirror: kafka_local.Mirror, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[kafka_local.KafkaBroker]:
    """A real ZooKeeper-mode Kafka broker on 127.0.0.1, shared by the whole session.

    Yields an object with .bootstrap ("127.0.0.1:PORT"), .zookeeper (connect
    string), .home (the unpacked kafka_2.13-<v> directory) and .version.
    Topics are never auto-created, so each test creates what it uses.
    """
    with kafka_local.running_kafka(
        kafka_mirror, tmp_path_factory.mktemp("kafka")
    ) as broker:
        yield broker


_FIGURES: list = []


@pytest.fixture(scope="session")
def figures() -> list:
    """Measured figures, as (label, value) pairs, printed at the end of the run."""
    return _FIGURES


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if _FIGURES:
        terminalreporter.section("figures measured in this run")
        for label, value in _FIGURES:
            terminalreporter.write_line(f"{label}: {value}")
