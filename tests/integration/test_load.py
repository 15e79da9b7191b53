"""The load test, tiny: three conversations for a few seconds through the Temporal
client, then through the HTTP gateway, on a worker on the Claude path with faults on
15 % of the model requests (six in a row, which would exhaust a model call's six
attempts, is then a one-in-100,000 event per call). It reports its figures, loses no
turn, and draws its charts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from bench.load import LoadConfig, run_load, write_report
from bench.load_report import check_conversation
from durable_agent.devserver import DevServer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_a_tiny_load_run_reports_its_figures_and_loses_no_turn(
    temporal_server: DevServer, tmp_path: Path
) -> None:
    config = LoadConfig(
        conversations=3, duration=4.0, fault_rate=0.15, via=("client", "gateway"), drain=30
    )

    report = await run_load(config, tmp_path, server=temporal_server)
    charts = write_report(report, tmp_path / "results" / "load.json")

    print(report.table())  # shown with -s, and on failure
    assert report.passed, report.table()
    document = json.loads((tmp_path / "results" / "load.json").read_text())
    assert document["passed"] is True
    assert list(document["phases"]) == ["client", "gateway"]
    for phase in document["phases"].values():
        assert (phase["conversations"], phase["tenants"]) == (3, 1)
        assert phase["sent"] >= 3 and phase["replied"] == phase["sent"] == phase["ok"]
        assert phase["throughput_turns_per_s"] > 0
        latency = phase["latency_ms"]
        assert all(math.isfinite(latency[q]) and latency[q] > 0 for q in ("p50", "p95", "p99"))
        assert latency["p50"] <= latency["p95"] <= latency["p99"]
        assert phase["error_rate"] == 0 and phase["error_rates"] == {}
        assert [phase[f"{kind}_turns"] for kind in ("lost", "duplicated", "unreplied")] == [0] * 3
        assert sum(phase["replies_per_second"]) == phase["replied"]
        assert len(phase["samples"]) == phase["sent"]
        # the faults were real: the worker retried them through the SDK
        injected = sum(phase["faults_injected"].values())
        assert set(phase["faults_injected"]) <= {"429", "529", "500"}
        assert phase["model_requests"] >= 2 * phase["replied"] + injected
    assert sum(sum(p["faults_injected"].values()) for p in document["phases"].values()) > 0

    assert [p.name for p in charts] == ["load_latency.png", "load_throughput.png"]
    for chart in charts:
        assert chart.parent == tmp_path / "results"
        assert chart.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(chart) as image:
            image.verify()
            assert image.size[0] > 300 and image.size[1] > 200

    # the check that passed can fail: forget one reply and it is a lost turn
    turns = [t for t in report.phases[0].turns if t.conversation == 0]
    said = [t.text for t in turns]
    assert check_conversation("c0", turns, said, len(turns)) == []
    assert [v.kind for v in check_conversation("c0", turns, said[:-1], len(turns) - 1)] == ["lost"]
