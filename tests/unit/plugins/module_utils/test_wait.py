"""module_utils/wait.py, the polling loop every waiting module uses: called directly, no broker or lab."""

from __future__ import annotations

import pytest

from ansible_collections.laddr.kafka.plugins.module_utils.wait import wait_until


class Flaky(Exception):
    pass


def reader(answers):
    calls = []

    def read():
        calls.append(len(calls))
        answer = answers[min(len(calls) - 1, len(answers) - 1)]
        if isinstance(answer, Exception):
            raise answer
        return answer
    return read, calls


def test_reads_again_until_nothing_is_missing_and_returns_the_last_observation():
    read, calls = reader([("a", ["one missing"]), ("b", ["one missing"]), ("c", [])])
    observed, problems, waited = wait_until(read, True, 30, interval=0.01)
    assert (observed, problems, len(calls)) == ("c", [], 3)
    assert waited < 30


def test_without_waiting_it_reads_once_and_reports_what_is_missing():
    read, calls = reader([("a", ["one missing"]), ("b", [])])
    assert wait_until(read, False, 30, interval=0.01)[:2] == ("a", ["one missing"]) and len(calls) == 1


def test_gives_up_at_the_timeout_with_what_it_saw_last():
    read, calls = reader([("a", ["never there"])])
    observed, problems, waited = wait_until(read, True, 0.05, interval=0.01)
    assert (observed, problems) == ("a", ["never there"]) and len(calls) >= 2


def test_a_transient_error_is_a_problem_while_waiting_and_raised_otherwise():
    read, calls = reader([Flaky("broker away"), ("up", [])])
    assert wait_until(read, True, 30, interval=0.01, transient=(Flaky,))[:2] == ("up", [])
    read, calls = reader([Flaky("broker away")])
    assert wait_until(read, True, 0.05, interval=0.01, transient=(Flaky,))[:2] == (None, ["broker away"])
    with pytest.raises(Flaky):
        wait_until(reader([Flaky("broker away")])[0], False, 30, interval=0.01, transient=(Flaky,))


def test_a_permanent_error_is_raised_even_while_waiting():
    error = Flaky("unknown topic")
    error.permanent = True
    read, calls = reader([error, ("up", [])])
    with pytest.raises(Flaky):
        wait_until(read, True, 30, interval=0.01, transient=(Flaky,))
    assert len(calls) == 1
