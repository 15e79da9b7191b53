"""The benchmark suite, CI-sized: every measurement reports its figures as numbers.

Whether the targets are met is the benchmark's output (``make bench``), not a test
failure: this checks that the suite runs and measures what it says.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from bench.harness import QUICK
from bench.markdown import render
from bench.suite import MEASUREMENTS, run_suite, write_charts

EXPECTED = {
    "step_overhead": ["turn latency p50", "worker CPU per turn", "workflow tasks per turn"],
    "throughput": [f"throughput @{n}" for n in QUICK.concurrency],
    "one_tenant": [
        f"one tenant @{QUICK.one_tenant}: failed or degraded turns",
        f"one tenant @{QUICK.one_tenant}: server update rejections",
        f"one tenant @{QUICK.one_tenant}: throughput",
    ],
    "memory": [
        f"worker RSS, {QUICK.idle_conversations} idle conversations",
        "RSS per cached conversation",
        "heap per cached conversation (tracemalloc)",
    ],
    "history": [
        *(f"history bytes/turn @{n}" for n in QUICK.history_checkpoints),
        *(f"history events/turn @{n}" for n in QUICK.history_checkpoints),
        "largest turn vs median",
        "replay time per turn",
    ],
    "caching": ["input tokens read from cache, turn ≥ 2", "conversation cost"],
}
"""Figures each measurement must report (it may report more)."""


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_quick_suite_reports_every_measurement_with_numbers(tmp_path: Path) -> None:
    # A server of its own: the suite opens its metrics port to count update rejections.
    report = await run_suite(QUICK, seed=3, workdir=tmp_path)
    print(report.table())  # shown with -s, and on failure
    document = json.loads(json.dumps(report.as_json(), default=str))  # what --json writes

    measurements = document["measurements"]
    assert list(measurements) == list(MEASUREMENTS)
    for key, measurement in measurements.items():
        assert measurement["problems"] == [], key
        assert measurement["complete"], key
        figures = {f["name"]: f for f in measurement["figures"]}
        assert set(EXPECTED[key]) <= set(figures), key
        for figure in figures.values():
            assert isinstance(figure["value"], int | float), figure
            assert math.isfinite(figure["value"]), figure
            if figure["baseline"] is not None:
                assert figure["baseline"] > 0, figure
            if figure["target"]:
                assert figure["met"] in (True, False), figure
    step = {f["name"]: f for f in measurements["step_overhead"]["figures"]}
    assert step["turn latency p50"]["baseline_name"] == "bare"
    assert step["turn latency p50"]["ratio"] > 0
    per_turn = measurements["step_overhead"]["details"]["history_per_turn"]
    assert {"agent", "bare"} <= set(per_turn)
    for kind in ("agent", "bare"):  # the breakdown: tasks, activities, model time
        assert per_turn[kind]["workflow_tasks"] >= 1, per_turn[kind]
        assert per_turn[kind]["activities"] + per_turn[kind]["local_activities"] >= 2
        assert per_turn[kind]["ms:activity model.invoke"] > 0
    history = measurements["history"]["details"]  # quick crosses continue-as-new too
    assert len(history["turns_after_continue_as_new"]) >= 1, history
    bare_replay = history["bare"]
    assert bare_replay["turns"] == QUICK.history_checkpoints[-1] and bare_replay["replay_seconds"]
    assert any(f["target"] for f in measurements["history"]["figures"] if "replay" in f["name"])

    # per-turn samples, and the charts drawn from them beside the JSON
    samples = measurements["step_overhead"]["details"]["samples_ms"]
    assert {"agent", "bare", "asyncio"} <= set(samples) and all(samples.values())
    for level in QUICK.concurrency:
        for kind in ("agent", "bare"):
            kept = measurements["throughput"]["details"][f"level_{level}"][kind]["samples"]
            assert len(kept["latency_ms"]) == len(kept["finished_s"]) > 0
    page = render(document)  # bench.md: every figure, and the breakdown side by side
    assert all(f"| {figure} |" in page for figures in EXPECTED.values() for figure in figures)
    assert "## Per turn, one turn at a time" in page and "| workflow tasks (completed) |" in page

    charts = write_charts(report, tmp_path / "results" / "bench.json")
    assert [c.name for c in charts] == ["bench_latency.png", "bench_throughput.png"]
    for chart in charts:
        with Image.open(chart) as image:
            assert image.format == "PNG"
            image.verify()
