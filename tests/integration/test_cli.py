"""The public contract from the command line: our CLI (``starter.py``) and the stock
``temporal`` CLI, as subprocesses, against the real dev server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

from temporalio.client import Client

from durable_agent.client import start_conversation
from durable_agent.config import Settings
from durable_agent.contract import ConversationInput
from durable_agent.devserver import DevServer, temporal_binary
from tests.helpers import eventually, run_command, saved_notes


def _id() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


async def starter(server: DevServer, *args: str) -> tuple[int, str, str]:
    command, *rest = args
    return await run_command(
        sys.executable, "starter.py", command, "--server", server.address, *rest
    )


async def test_starter_cli_conversation(
    client: Client, temporal_server: DevServer, task_queue: str
) -> None:
    conversation = _id()
    code, out, err = await starter(
        temporal_server, "start", "--task-queue", task_queue, "-c", conversation
    )
    assert code == 0, err
    assert out.strip() == conversation

    code, out, err = await starter(temporal_server, "send", "-c", conversation, "What is 2 + 3?")
    assert code == 0, err
    assert "calculator" in out and "assistant:" in out and "5" in out

    code, out, err = await starter(
        temporal_server, "send", "--json", "-c", conversation, "Remember the CLI works"
    )
    assert code == 0, err
    reply = json.loads(out)
    assert reply["turn"] == 2 and reply["tool_calls"][0]["name"] == "save_note"

    code, out, err = await starter(temporal_server, "send", "-c", conversation, "  ")
    assert code == 1 and "rejected (InvalidMessage): message text is empty" in err

    code, out, err = await starter(temporal_server, "status", "--json", "-c", conversation)
    assert code == 0, err
    status = json.loads(out)
    assert status["turns"] == 2 and status["state"] == "idle"

    code, out, err = await starter(temporal_server, "transcript", "--json", "-c", conversation)
    assert code == 0 and len(json.loads(out)["messages"]) == 8

    code, _, err = await starter(temporal_server, "end", "-c", conversation)
    assert code == 0, err
    handle = client.get_workflow_handle(conversation)
    assert (await handle.result())["turns"] == 2

    code, _, err = await starter(temporal_server, "status", "-c", "no-such-conversation")
    assert code == 1 and "no conversation 'no-such-conversation'" in err


async def test_stock_temporal_cli_speaks_the_contract(
    temporal_server: DevServer, task_queue: str
) -> None:
    temporal = [str(temporal_binary()), "--address", temporal_server.address]
    wid = _id()

    async def cli(*args: str) -> str:
        code, out, err = await run_command(*temporal, "workflow", *args)
        assert code == 0, err
        return out

    await cli("start", "--type", "AgentWorkflow", "--task-queue", task_queue,
              "--workflow-id", wid, "--input", "{}")  # fmt: skip
    out = await cli("update", "execute", "--name", "send_message", "--workflow-id", wid,
                    "--input", '{"text": "What is 6 * 7?"}', "-o", "json")  # fmt: skip
    reply = json.loads(out)["result"]
    assert reply["turn"] == 1 and "42" in reply["text"]
    assert {"text", "turn", "tool_calls", "usage"} <= reply.keys()
    assert reply["tool_calls"][0]["name"] == "calculator"
    assert reply["usage"]["input_tokens"] > 0

    status = json.loads(await cli("query", "--name", "status", "--workflow-id", wid, "-o", "json"))
    assert status["queryResult"][0]["turns"] == 1

    transcript = json.loads(
        await cli("query", "--name", "transcript", "--workflow-id", wid, "-o", "json")
    )
    assert transcript["queryResult"][0]["messages"][0]["content"][0]["text"] == "What is 6 * 7?"

    await cli("signal", "--name", "end", "--workflow-id", wid)
    described = await eventually(
        lambda: cli("describe", "--workflow-id", wid, "-o", "json"),
        until=lambda out: "COMPLETED" in out,
    )
    assert "COMPLETED" in described

    other = _id()
    await cli("start", "--type", "AgentWorkflow", "--task-queue", task_queue,
              "--workflow-id", other, "--input", "{}")  # fmt: skip
    await cli("cancel", "--workflow-id", other)
    described = await eventually(
        lambda: cli("describe", "--workflow-id", other, "-o", "json"),
        until=lambda out: "CANCELED" in out,
    )
    assert "CANCELED" in described


async def test_interactive_chat(
    client: Client, temporal_server: DevServer, task_queue: str
) -> None:
    conversation = _id()
    code, out, err = await run_command(
        sys.executable, "starter.py", "chat", "--server", temporal_server.address,
        "--task-queue", task_queue, "-c", conversation,
        stdin="What is 6 * 7?\n\n   \n/status\nRemember the chat works\n/end\n",
    )  # fmt: skip
    assert code == 0, err
    assert f"conversation {conversation}" in out
    assert "assistant: The result of 6 * 7 is 42." in out
    assert '"turns": 1' in out  # /status between the turns
    assert "save_note" in out and "conversation ended" in out
    result = await client.get_workflow_handle(conversation).result()
    assert result["turns"] == 2


async def test_cli_approval_flow(
    temporal_server: DevServer, task_queue: str, settings: Settings
) -> None:
    conversation = _id()
    code, _, err = await starter(temporal_server, "start", "--task-queue", task_queue,
                                 "-c", conversation, "--approval-tools", "save_note")  # fmt: skip
    assert code == 0, err
    send = asyncio.ensure_future(
        starter(temporal_server, "send", "-c", conversation, "Remember that the CLI asks first")
    )
    code, out, err = await eventually(
        lambda: starter(temporal_server, "pending", "-c", conversation),
        until=lambda result: "save_note" in result[1],
    )
    assert "policy: every save_note call needs approval" in out
    code, out, err = await starter(temporal_server, "pending", "--json", "-c", conversation)
    (waiting,) = json.loads(out)

    code, out, err = await starter(temporal_server, "approve", "-c", conversation, "toolu_nope")
    assert code == 1 and "rejected (InvalidApproval): no tool call 'toolu_nope'" in err
    code, out, err = await starter(
        temporal_server, "approve", "-c", conversation, waiting["call_id"], "--by", "ops",
        "--args", '{"text": "the CLI asked first"}',
    )  # fmt: skip
    assert code == 0, err
    assert 'approved by ops with {"text": "the CLI asked first"}' in out
    code, out, err = await send
    assert code == 0 and "[approved by ops]" in out, err
    assert await saved_notes(settings) == ["the CLI asked first"]

    # The stock CLI rejects through the same update.
    temporal = [str(temporal_binary()), "--address", temporal_server.address, "workflow"]
    send = asyncio.ensure_future(
        starter(temporal_server, "send", "-c", conversation, "Remember that nobody agreed")
    )
    code, out, err = await eventually(
        lambda: starter(temporal_server, "pending", "--json", "-c", conversation),
        until=lambda result: result[1].strip() not in ("", "[]"),
    )
    (waiting,) = json.loads(out)
    decision = {"call_id": waiting["call_id"], "by": "sre", "reason": "not now"}
    code, out, err = await run_command(*temporal, "update", "execute", "--name", "reject",
                                       "--workflow-id", conversation,
                                       "--input", json.dumps(decision), "-o", "json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["result"]["decision"] == "rejected"
    code, out, err = await send
    assert code == 0 and "[rejected by sre]" in out and "not run: sre rejected" in out

    code, out, err = await starter(temporal_server, "approvals", "-c", conversation)
    lines = out.strip().splitlines()
    assert len(lines) == 2 and "save_note approved by ops" in lines[0]
    assert "save_note rejected by sre: not now" in lines[1]


async def test_chat_asks_before_a_call_that_needs_approval(
    temporal_server: DevServer, task_queue: str, settings: Settings
) -> None:
    code, out, err = await run_command(
        sys.executable, "starter.py", "chat", "--server", temporal_server.address,
        "--task-queue", task_queue, "--approval-tools", "save_note", "--by", "me",
        stdin="Remember that chat asks first\ny\nRemember that this is refused\nn\nnope\n/quit\n",
    )  # fmt: skip
    assert code == 0, err
    assert out.count("approval needed: save_note") == 2
    assert "approved by me" in out and "rejected by me: nope" in out
    assert await saved_notes(settings) == ["chat asks first"]


async def test_cli_clears_untrusted_content(temporal_server: DevServer, task_queue: str) -> None:
    conversation = _id()
    code, _, err = await starter(temporal_server, "start", "--task-queue", task_queue,
                                 "-c", conversation)  # fmt: skip
    assert code == 0, err
    code, out, err = await starter(temporal_server, "clear", "-c", conversation, "--by", "ops")
    assert code == 1 and "the context holds no untrusted content" in err
    code, out, err = await starter(
        temporal_server, "send", "-c", conversation, "What's the weather in Paris?"
    )
    assert code == 0, err
    code, out, err = await starter(
        temporal_server, "clear", "-c", conversation, "--by", "ops", "--reason", "a forecast"
    )
    assert code == 0, err
    assert "cleared by ops: tool:get_weather" in out


async def test_cli_transcript_is_whole_after_continue_as_new(
    client: Client, temporal_server: DevServer, task_queue: str, settings: Settings
) -> None:
    conversation = await start_conversation(
        client, ConversationInput(continue_as_new_after_turns=1), task_queue=task_queue
    )
    for n in range(3):
        assert (await conversation.send_message(f"What is {n} + 2?")).status == "ok"
    assert (await conversation.transcript()).archived is not None
    env = {**os.environ, "AGENT_BLOB_DB": str(settings.blob_db)}
    code, out, err = await run_command(
        sys.executable, "starter.py", "transcript", "--server", temporal_server.address,
        "-c", conversation.id, "--json", env=env,
    )  # fmt: skip
    assert code == 0, err
    transcript = json.loads(out)
    assert transcript["archived"] is None and len(transcript["messages"]) == 12
    assert transcript["messages"][0]["content"][0]["text"] == "What is 0 + 2?"


async def test_cli_agent_delegates_to_a_sub_agent(
    temporal_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    """A profile with a sub-agent, through the CLI: the reply shows the delegation,
    ``status`` lists it with its carve-out and spend."""
    profiles = tmp_path / "agents.yaml"
    profiles.write_text(
        "profiles:\n"
        "  triage:\n"
        "    tools: [calculator]\n"
        "    subagents: {maths: {budget: {usd: '0.10', model_calls: 3}}}\n"
        "  maths:\n"
        "    description: Does arithmetic.\n"
        "    tools: [calculator]\n"
    )
    env = os.environ | {"AGENT_PROFILES_FILE": str(profiles)}
    conversation = _id()
    code, _, err = await run_command(
        sys.executable, "starter.py", "start", "--server", temporal_server.address,
        "--task-queue", task_queue, "-c", conversation, "--agent", "triage", env=env,
    )  # fmt: skip
    assert code == 0, err
    task = json.dumps({"task": "What is 6 * 7?"})
    code, out, err = await starter(
        temporal_server, "send", "-c", conversation, f"use delegate_to_maths {task}"
    )
    assert code == 0, err
    assert "delegate_to_maths" in out and "→ ok" in out and "42" in out
    code, out, err = await starter(temporal_server, "status", "--json", "-c", conversation)
    assert code == 0, err
    (delegation,) = json.loads(out)["delegations"]
    assert delegation["agent"] == "maths" and delegation["outcome"] == "ok"
    assert delegation["budget"]["usd"] == "0.10" and delegation["spent"]["model_calls"] == 2
