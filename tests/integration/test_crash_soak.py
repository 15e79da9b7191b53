"""The crash soak, CI-sized: ten ``kill -9``s of the worker under busy conversations."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.crash_soak import SoakConfig, run_soak
from durable_agent.devserver import DevServer


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_ten_kills_lose_no_turn_and_duplicate_no_note(
    temporal_server: DevServer, tmp_path: Path
) -> None:
    report = await run_soak(SoakConfig(iterations=10, seed=7), tmp_path, temporal_server)
    print(report.table())  # shown with -s, and on failure

    assert report.violations == []
    assert report.kills == 10
    assert report.kills_mid_activity >= 1  # at least one kill landed in a running activity
    assert report.turns == report.messages > 0
