"""Property-based fuzzing of the gateway from its own OpenAPI schema (schemathesis):
valid and invalid requests to every operation, with a real key and a real conversation
id as well as generated ones, over real HTTP. None may answer 5xx."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from durable_agent.config import Settings
from tests.gateway_support import key_entries, serving, tenants
from tests.integration.test_gateway import gateway_settings

EXAMPLES = 12
"""Examples per operation and mode: about 300 requests in all, ~30 s on 2 cores."""


def fuzz(base_url: str, key: str, conversation: str) -> tuple[list[str], Counter[int]]:
    """Run every operation's strategies; return the failures and the status counts."""
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda op: (op.method.upper() == "DELETE" or op.path.endswith("/end"), op.path),
    )
    for operation in operations:
        real = "{conversation_id}" in operation.path
        kwargs = {"path_parameters": {"conversation_id": conversation}} if real else {}
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(mode, **kwargs)
            found = _run(strategy, base_url, {"Authorization": f"Bearer {key}"}, statuses)
            failures += [f"{mode.value} {failure}" for failure in found]
    return failures, statuses


def _run(
    strategy: Any, base_url: str, headers: dict[str, str], statuses: Counter[int]
) -> list[str]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable

    failures: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: Any) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            failures.append(
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
            )
            raise AssertionError(failures[-1])

    # A failure is recorded above (hypothesis shrinks it first); an operation without
    # inputs has no invalid variant (Unsatisfiable).
    with contextlib.suppress(AssertionError, Unsatisfiable):
        check()
    return failures


@pytest.mark.timeout(300)
async def test_fuzzed_requests_never_get_a_server_error(
    client: Client, task_queue: str, settings: Settings
) -> None:
    found = tenants(1)
    config = gateway_settings(
        settings,
        task_queue,
        found,
        gateway_keys=key_entries(found, requests_per_second=1000, burst=1000),
        gateway_wait_seconds=5.0,
        gateway_stream_seconds=0.5,
    )

    async with serving(config, client) as url:
        async with httpx.AsyncClient(base_url=url, headers=found[0].headers) as http:
            created = await http.post("/v1/conversations", json={})
            conversation = created.json()["id"]
        # The fuzzer is synchronous; in a thread, the worker and the gateway (on this
        # loop) keep serving it.
        failures, statuses = await asyncio.to_thread(fuzz, url, found[0].key, conversation)
    assert failures == []
    assert sum(statuses.values()) >= EXAMPLES * 10  # every operation was exercised
    # Requests got through to the conversation, and invalid ones were refused as such.
    assert statuses[200] > 0 and statuses[201] > 0 and statuses[422] > 0, statuses
