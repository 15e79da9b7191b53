"""``python -m examples.support_team`` (``make example``) end to end against the test
session's dev server: the user tool, the MCP tool and a built-in are each called once,
by the offline planner told which tool to use (no API key here). Its history replays
from the CLI (``starter.py replay``) in a process that loads the same tool modules."""

from __future__ import annotations

import os
import re
import sys
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from durable_agent.devserver import DevServer
from tests.helpers import run_command


async def test_the_support_team_example_runs_end_to_end(
    client: Client, temporal_server: DevServer, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"} | {
        "AGENT_TEMPORAL_ADDRESS": temporal_server.address,
        "AGENT_MODEL_BACKEND": "offline",
        "AGENT_TASK_QUEUE": f"example-{uuid.uuid4().hex[:10]}",
        "AGENT_NOTES_DB": str(tmp_path / "notes.sqlite3"),
        "AGENT_BLOB_DB": str(tmp_path / "blobs.sqlite3"),
    }
    code, out, err = await run_command(
        sys.executable, "-m", "examples.support_team", env=env, timeout=120
    )
    assert code == 0, err
    assert "offline-planner" in out and "not Claude" in out
    assert "lookup_customer" in out and "AGENT_MCP_SERVERS=" in out
    assert '· lookup_customer({"email": "ada@example.com"}) → ok: Ada Lovelace' in out
    assert '· kb__search_articles({"query": "refunds"}) → ok: KB-1: Refunds' in out
    assert "· calculator(" in out and "→ ok" in out
    assert "flagged" not in out + err  # telling the planner which tool is no injection
    # The billing sub-agent answered its task as a child workflow (docs/delegation.md).
    assert '· delegate_to_billing({"task": ' in out and "}) → ok: The result of 1200" in out

    (conversation_id,) = re.findall(r"Conversation: (\S+) \(agent 'support'\)", out)
    history = await client.get_workflow_handle(conversation_id).fetch_history()
    activities = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert activities.count("mcp.list_tools") == 1
    assert activities.count("mcp.call_tool") == 1
    assert activities.count("tool.lookup_customer") == 1
    children = [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]
    assert len(children) == 1 and children[0].startswith(f"{conversation_id}/4/")
    described = await client.get_workflow_handle(children[0]).describe()
    assert described.parent_id == conversation_id

    # The CLI replays it when it loads the worker's tool modules, and says what is
    # missing when it does not.
    history = tmp_path / "history.json"
    code, out, err = await run_command(
        sys.executable, "starter.py", "history", "export", conversation_id, env=env
    )
    assert code == 0, err
    history.write_text(out)
    code, out, err = await run_command(
        sys.executable, "starter.py", "replay", str(history),
        env=env | {"AGENT_TOOL_MODULES": "examples.support_team.tools"},
    )  # fmt: skip
    assert (code, out.strip()) == (0, f"replayed {history}: ok"), err
    code, out, err = await run_command(
        sys.executable, "starter.py", "replay", str(history), env=env | {"AGENT_TOOL_MODULES": ""}
    )
    assert code == 1
    assert "names tools this process has not loaded: lookup_customer" in err
    assert "AGENT_TOOL_MODULES" in err
