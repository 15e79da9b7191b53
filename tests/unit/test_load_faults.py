"""Faults at a rate (``FaultMix``), as the load test injects them into the fake API."""

from __future__ import annotations

import pytest

from durable_agent.testing.faults import Fault, FaultMix, FaultScript

MIX = (Fault(status=429, retry_after=1), Fault(status=529, retry_after=1), Fault(status=500))


def draws(script: FaultScript, requests: int, path: str = "/v1/messages") -> list[str]:
    return [(f.kind if (f := script.take(path)) else "-") for _ in range(requests)]


def test_a_mix_faults_about_its_rate_of_requests_with_every_kind() -> None:
    script = FaultScript(mix=FaultMix(0.2, MIX, seed=1))

    seen = draws(script, 5000)

    faulted = [kind for kind in seen if kind != "-"]
    assert 0.17 < len(faulted) / len(seen) < 0.23
    assert set(faulted) == {"429", "529", "500"}
    assert script.injected() == {k: faulted.count(k) for k in ("429", "529", "500")}


def test_the_same_seed_draws_the_same_faults() -> None:
    first = draws(FaultScript(mix=FaultMix(0.3, MIX, seed="s")), 200)
    again = draws(FaultScript(mix=FaultMix(0.3, MIX, seed="s")), 200)
    other = draws(FaultScript(mix=FaultMix(0.3, MIX, seed="t")), 200)

    assert first == again
    assert first != other


def test_queued_faults_come_first_and_other_paths_are_left_alone() -> None:
    script = FaultScript(Fault(drop=True), mix=FaultMix(1.0, MIX, path="/v1/messages"))

    assert draws(script, 1) == ["drop"]
    assert draws(script, 1, "/v1/models") == ["-"]
    assert draws(script, 3) != ["-", "-", "-"]
    assert sum(script.injected().values()) == 3


def test_a_zero_rate_never_faults_and_clear_drops_the_mix() -> None:
    assert draws(FaultScript(mix=FaultMix(0.0, MIX)), 100) == ["-"] * 100
    script = FaultScript(mix=FaultMix(1.0, MIX))
    script.clear()
    assert script.mix is None and draws(script, 10) == ["-"] * 10


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_a_rate_outside_0_to_1_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultMix(rate, MIX)


def test_fault_kinds_name_what_they_do() -> None:
    kinds = [
        Fault(status=529),
        Fault(drop=True),
        Fault(cut_stream_after=3),
        Fault(stream_error="overloaded_error"),
        Fault(delay=0.1),
        Fault(),
    ]
    assert [f.kind for f in kinds] == ["529", "drop", "cut", "stream_error", "delay", "none"]
