"""Worker tuning settings become ``Worker`` options the SDK knows."""

from __future__ import annotations

import inspect

from temporalio.worker import Worker

from durable_agent.config import Settings


def test_tuning_settings_are_worker_options() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        max_cached_workflows=50,
        workflow_task_slots=20,
        activity_slots=400,
        local_activity_slots=30,
        workflow_task_pollers=8,
        activity_task_pollers=16,
    )
    options = settings.worker_tuning()
    assert options == {
        "max_cached_workflows": 50,
        "max_concurrent_workflow_tasks": 20,
        "max_concurrent_activities": 400,
        "max_concurrent_local_activities": 30,
        "max_concurrent_workflow_task_polls": 8,
        "max_concurrent_activity_task_polls": 16,
    }
    assert set(options) <= set(inspect.signature(Worker).parameters)


def test_unset_tuning_leaves_the_sdk_defaults() -> None:
    assert Settings(_env_file=None).worker_tuning() == {"max_cached_workflows": 1000}  # type: ignore[call-arg]
