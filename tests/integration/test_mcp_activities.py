"""The MCP activities against real MCP servers (``tests/mcp_servers``, written with the
``mcp`` SDK) over stdio and streamable HTTP on 127.0.0.1: in an ``ActivityEnvironment``
for the mapping of results and errors, and on the dev server (a small probe workflow
that fetches the catalog and calls a tool with its spec's policy) for retries."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.mcp import McpActivities, McpConfigError
from activities.tools._offload import Offloader
from durable_agent.activity_models import ToolCall, ToolResult
from durable_agent.stores.blobs import SqliteBlobStore
from durable_agent.toolsets import (
    MCP_LIST_TOOLS,
    MCP_PROTOCOL_ERROR,
    MCP_TRANSIENT_ERROR,
    MCP_UNKNOWN_SERVER,
    HttpServer,
    McpListRequest,
    McpServerConfig,
    McpToolCall,
    McpToolset,
    StdioServer,
    toolset_specs,
)
from tests.helpers import eventually, history_events
from tests.mcp_servers.process import ROOT, McpHttpServer, server_command


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """Where ``crash_once`` leaves its markers."""
    path = tmp_path / "desk-state"
    path.mkdir()
    return path


def stdio_desk(state: Path, **policy: Any) -> StdioServer:
    command, *args = server_command()
    return StdioServer(
        command=command,
        args=args,
        cwd=str(ROOT),
        env={"SUPPORT_DESK_STATE": str(state), "PYTHONPATH": str(ROOT)},
        **policy,
    )


@pytest.fixture
def http_desk(state: Path) -> Iterator[McpHttpServer]:
    with McpHttpServer(state) as server:
        yield server


@pytest.fixture
async def blobs(tmp_path: Path) -> AsyncIterator[SqliteBlobStore]:
    store = SqliteBlobStore(tmp_path / "blobs.sqlite3")
    yield store
    await store.close()


def activities(
    blobs: SqliteBlobStore, servers: dict[str, McpServerConfig], **environ: str
) -> McpActivities:
    return McpActivities(servers, Offloader(blobs, 4096), environ=environ)


def mcp_call(server: str, tool: str, key: str = "wf-1/1/0", **arguments: Any) -> McpToolCall:
    return McpToolCall(
        tool=f"{server}__{tool}",
        arguments=arguments,
        idempotency_key=key,
        conversation_id="wf-1",
        server=server,
        remote_name=tool,
    )


async def listing(mcp: McpActivities, server: str) -> McpToolset:
    toolset: McpToolset = await ActivityEnvironment().run(
        mcp.list_tools, McpListRequest(server=server)
    )
    return toolset


async def calling(mcp: McpActivities, call: McpToolCall) -> ToolResult:
    result: ToolResult = await ActivityEnvironment().run(mcp.call_tool, call)
    return result


async def test_list_tools_namespaces_and_maps_permissions(
    blobs: SqliteBlobStore, state: Path
) -> None:
    mcp = activities(blobs, {"desk": stdio_desk(state, deny=["report"])})
    toolset = await listing(mcp, "desk")
    tools = {t.remote_name: t for t in toolset.tools}
    assert "report" not in tools
    assert tools["lookup_order"].name == "desk__lookup_order"
    assert tools["lookup_order"].permission == "read"
    assert tools["refund_order"].permission == "write"  # destructiveHint
    assert tools["add_comment"].permission == "write"  # no hints
    assert tools["lookup_order"].input_schema["required"] == ["order_id"]
    specs = {s.remote_name: s for s in toolset_specs(toolset)}
    assert specs["lookup_order"].retry_policy.maximum_attempts == 3  # read-only: retried
    assert specs["refund_order"].retry_policy.maximum_attempts == 1  # may not repeat
    assert specs["lookup_order"].dependency == "mcp:desk"


async def test_overrides_and_allow_list(blobs: SqliteBlobStore, state: Path) -> None:
    desk = stdio_desk(
        state,
        allow=["lookup_order", "refund_order"],
        permission="execute",
        permissions={"refund_order": "admin"},
    )
    toolset = await listing(activities(blobs, {"desk": desk}), "desk")
    assert {t.remote_name: t.permission for t in toolset.tools} == {
        "lookup_order": "execute",
        "refund_order": "admin",
    }


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_call_results_errors_and_invalid_params(
    blobs: SqliteBlobStore, state: Path, transport: str, request: pytest.FixtureRequest
) -> None:
    if transport == "stdio":
        config: McpServerConfig = stdio_desk(state)
    else:
        config = HttpServer(url=request.getfixturevalue("http_desk").url)
    mcp = activities(blobs, {"desk": config})
    ok = await calling(mcp, mcp_call("desk", "lookup_order", order_id="A-1"))
    assert ok == ToolResult(outcome="ok", content="order A-1: shipped")
    failed = await calling(mcp, mcp_call("desk", "broken", reason="x"))
    assert failed.outcome == "error" and "broken" in failed.content
    invalid = await calling(mcp, mcp_call("desk", "strict", code="zz"))
    assert invalid == ToolResult(
        outcome="invalid_arguments", content="code 'zz' is not a valid code"
    )
    with pytest.raises(ApplicationError) as raised:
        await calling(mcp, mcp_call("desk", "misconfigured"))
    assert raised.value.type == MCP_PROTOCOL_ERROR and raised.value.non_retryable


async def test_large_results_go_to_the_blob_store(blobs: SqliteBlobStore, state: Path) -> None:
    mcp = activities(blobs, {"desk": stdio_desk(state)})
    result = await calling(mcp, mcp_call("desk", "report", key="wf-9/2/1", lines=500))
    assert result.ref == "tool-result/wf-9/2/1"
    assert len(result.content) < 2200
    assert len((await blobs.get(result.ref)).decode()) == 500 * 101 - 1


async def test_a_server_that_is_down_is_a_retryable_failure(blobs: SqliteBlobStore) -> None:
    mcp = activities(blobs, {"gone": HttpServer(url="http://127.0.0.1:9/mcp")})
    with pytest.raises(ApplicationError) as raised:
        await calling(mcp, mcp_call("gone", "lookup_order", order_id="A-1"))
    assert raised.value.type == MCP_TRANSIENT_ERROR and not raised.value.non_retryable


async def test_unknown_server_and_missing_credentials(blobs: SqliteBlobStore) -> None:
    mcp = activities(blobs, {})
    with pytest.raises(ApplicationError) as raised:
        await calling(mcp, mcp_call("nowhere", "x"))
    assert raised.value.type == MCP_UNKNOWN_SERVER and raised.value.non_retryable
    config = HttpServer(
        url="http://127.0.0.1:9/mcp", headers_from_env={"Authorization": "DESK_AUTH"}
    )
    with pytest.raises(McpConfigError, match=r"'desk'.*DESK_AUTH"):
        activities(blobs, {"desk": config})
    held = activities(blobs, {"desk": config}, DESK_AUTH="Bearer s3cret").held_secrets()
    assert held == ["Bearer s3cret", "s3cret"]  # a log line may quote the token alone


# --- on the dev server: retry policies ---------------------------------------------------


class Probe(BaseModel):
    server: str
    tool: str
    arguments: dict[str, Any]


@workflow.defn(sandboxed=False)
class McpProbeWorkflow:
    """What the agent does with a toolset: fetch the catalog, build the specs, call one
    tool with its spec's activity, input, timeouts and retry policy."""

    @workflow.run
    async def run(self, probe: Probe) -> ToolResult:
        toolset = await workflow.execute_activity(
            MCP_LIST_TOOLS,
            McpListRequest(server=probe.server),
            result_type=McpToolset,
            start_to_close_timeout=timedelta(seconds=30),
        )
        spec = next(s for s in toolset_specs(toolset) if s.remote_name == probe.tool)
        spec.validate(probe.arguments)
        call = ToolCall(
            tool=spec.name,
            arguments=probe.arguments,
            idempotency_key=f"{workflow.info().workflow_id}/1/0",
            conversation_id=workflow.info().workflow_id,
        )
        result: ToolResult = await workflow.execute_activity(
            spec.activity_name,
            spec.activity_input(call),
            result_type=ToolResult,
            start_to_close_timeout=spec.start_to_close_timeout,
            heartbeat_timeout=spec.heartbeat_timeout,
            retry_policy=spec.retry_policy,
        )
        return result


async def probe(
    client: Client, mcp: McpActivities, server: str, tool: str, **arguments: Any
) -> tuple[ToolResult, Any]:
    queue = f"mcp-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[McpProbeWorkflow],
        activities=mcp.activities(),
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            McpProbeWorkflow.run,
            Probe(server=server, tool=tool, arguments=arguments),
            id=f"mcp-probe-{uuid.uuid4()}",
            task_queue=queue,
        )
        try:
            return await handle.result(), handle
        except WorkflowFailureError as e:
            return ToolResult(outcome="error", content=repr(e.cause)), handle


async def attempts(handle: Any) -> int:
    return (await history_events(handle)).count("ACTIVITY_TASK_STARTED")


async def test_protocol_errors_are_tried_once(
    client: Client, blobs: SqliteBlobStore, state: Path
) -> None:
    mcp = activities(blobs, {"desk": stdio_desk(state)})
    result, handle = await probe(client, mcp, "desk", "misconfigured")
    assert result.outcome == "error"
    history = await handle.fetch_history()
    failures = [
        e.activity_task_failed_event_attributes.failure
        for e in history.events
        if e.HasField("activity_task_failed_event_attributes")
    ]
    assert len(failures) == 1  # the call's one attempt; listing the tools succeeded
    assert failures[0].application_failure_info.type == MCP_PROTOCOL_ERROR
    assert failures[0].application_failure_info.non_retryable


async def test_a_stdio_server_that_dies_mid_call_is_retried(
    client: Client, blobs: SqliteBlobStore, state: Path
) -> None:
    mcp = activities(blobs, {"desk": stdio_desk(state)})
    result, _ = await probe(client, mcp, "desk", "crash_once", key="k1")
    assert result == ToolResult(outcome="ok", content="survived k1")
    assert (state / "k1").exists()


async def _exists(path: Path) -> bool:
    return path.exists()


async def test_an_http_server_killed_mid_call_is_retried_once_back(
    client: Client, blobs: SqliteBlobStore, state: Path, http_desk: McpHttpServer
) -> None:
    mcp = activities(blobs, {"desk": HttpServer(url=http_desk.url, heartbeat_seconds=2)})

    async def kill_and_restart() -> None:
        await eventually(lambda: _exists(state / "slow-started"))  # the call is in flight
        http_desk.kill()
        http_desk.start()

    restarter = asyncio.create_task(kill_and_restart())
    result, handle = await probe(client, mcp, "desk", "slow", seconds=2.5)
    await restarter
    assert result == ToolResult(outcome="ok", content="slept 2.5")
    history = await handle.fetch_history()
    call = [e for e in history.events if e.HasField("activity_task_started_event_attributes")][-1]
    assert call.activity_task_started_event_attributes.attempt >= 2
