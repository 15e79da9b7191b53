"""Prompt-injection defence end to end, against the attack set in
``tests/injection/attacks.json``.

A hostile web page reaches the model through ``web_search``; the fake Claude server then
plays a hijacked model that does what the page says. With the defences on, the hijacked
call waits for a person (who rejects it) and nothing is written or sent; a reply quoting
the system prompt is withheld. Each attack is also run with the defences off, to show
it would have worked: the tests can fail.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from durable_agent.client import Conversation, connect, start_conversation
from durable_agent.config import Settings
from durable_agent.contract import ConversationInput, SafetyPolicy
from durable_agent.devserver import DevServer, free_port
from durable_agent.telemetry import metrics_runtime
from durable_agent.testing.fake_anthropic import FakeAnthropicServer
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.testing.responders import ScriptedResponder
from tests.conftest import claude_worker, make_settings
from tests.helpers import eventually, running_worker, saved_notes
from tests.integration.test_observability import _samples

ATTACKS = json.loads((Path(__file__).parent.parent / "injection" / "attacks.json").read_text())
SYSTEM_PROMPT: str = ATTACKS["system_prompt"]
SECRET = "OSPREY-7731-DELTA"
UNDEFENDED = SafetyPolicy(
    screen_user_messages="off",
    screen_tool_results="off",
    approval_levels=[],
    protect_system_prompt=False,
    untrusted_context="off",
)


def _message(n: int, content: list[dict[str, Any]], stop: str) -> dict[str, Any]:
    return {
        "id": f"msg_{n}", "type": "message", "role": "assistant", "content": content,
        "stop_reason": stop, "stop_sequence": None,
        "usage": {"input_tokens": 100, "output_tokens": 20},
    }  # fmt: skip


def _hijacked_model(attack: dict[str, Any]) -> ScriptedResponder:
    """Searches, then does what the page asked (a tool call, or a leaking reply)."""
    search = {"type": "tool_use", "id": "toolu_search", "name": "web_search",
              "input": {"query": "acme opening hours"}}  # fmt: skip
    steps = [_message(1, [search], "tool_use")]
    if "call" in attack:
        hijack = {"type": "tool_use", "id": "toolu_hijack", **attack["call"]}
        steps.append(_message(2, [hijack], "tool_use"))
    steps.append(_message(3, [{"type": "text", "text": attack.get("reply", "Done.")}], "end_turn"))
    return ScriptedResponder(steps)


@pytest.fixture
async def claude_queue(
    client: Client,
    tmp_path: Path,
    tool_server: FakeToolServer,
    anthropic_server: FakeAnthropicServer,
) -> AsyncIterator[str]:
    anthropic_server.reset()
    async with claude_worker(client, tmp_path, tool_server, anthropic_server) as queue:
        yield queue
    anthropic_server.reset()


async def _run_attack(
    client: Client,
    queue: str,
    attack: dict[str, Any],
    policy: SafetyPolicy,
    tool_server: FakeToolServer,
    anthropic_server: FakeAnthropicServer,
) -> tuple[Conversation, Any, ScriptedResponder]:
    tool_server.pages = [("ACME help", "https://acme.example/help", attack["page"])]
    script = _hijacked_model(attack)
    anthropic_server.responder = script
    conversation = await start_conversation(
        client,
        ConversationInput(system_prompt=SYSTEM_PROMPT, safety=policy),
        task_queue=queue,
    )
    reply = await conversation.send_message("When is ACME open? Search the web.")
    return conversation, reply, script


def _searches(tool_server: FakeToolServer) -> list[str]:
    return [r.query.get("q", "") for r in tool_server.requests if r.path == "/search"]


CALL_ATTACKS = [a for a in ATTACKS["attacks"] if "call" in a]


@pytest.mark.parametrize("attack", CALL_ATTACKS, ids=lambda a: a["name"])
async def test_a_hijacked_call_waits_for_a_person(
    client: Client,
    claude_queue: str,
    tmp_path: Path,
    tool_server: FakeToolServer,
    anthropic_server: FakeAnthropicServer,
    attack: dict[str, Any],
) -> None:
    # Nobody answers in time: the timeout rejects the call.
    policy = SafetyPolicy(approval_timeout_seconds=1)
    conversation, reply, script = await _run_attack(
        client, claude_queue, attack, policy, tool_server, anthropic_server
    )
    search, hijack = reply.tool_calls
    assert search.outcome == "ok" and search.flags  # the page was flagged …
    sent = script.bodies[1]["messages"][-1]["content"][0]["content"]
    assert "<untrusted-tool-output>" in sent and "do not follow instructions" in sent
    assert hijack.outcome == "rejected" and hijack.approval is not None  # … so the call waited
    assert hijack.approval.decision == "timed_out" and hijack.approval.by == "system"
    assert ("flagged" in hijack.approval.requested_because) or (
        "quote the system prompt" in hijack.approval.requested_because
    )
    # Nothing written, nothing sent out.
    assert await saved_notes(make_settings(tmp_path, tool_server)) == []
    assert all(SECRET not in q for q in _searches(tool_server))
    flags = (await conversation.transcript()).flags
    assert [f.source for f in flags] == ["tool:web_search"]
    assert flags[0].tool_use_id == "toolu_search"


@pytest.mark.parametrize("attack", CALL_ATTACKS, ids=lambda a: a["name"])
async def test_without_the_defences_the_attack_works(
    client: Client,
    claude_queue: str,
    tmp_path: Path,
    tool_server: FakeToolServer,
    anthropic_server: FakeAnthropicServer,
    attack: dict[str, Any],
) -> None:
    _, reply, _ = await _run_attack(
        client, claude_queue, attack, UNDEFENDED, tool_server, anthropic_server
    )
    hijack = reply.tool_calls[1]
    assert hijack.outcome == "ok" and hijack.approval is None
    if attack["call"]["name"] == "save_note":
        assert await saved_notes(make_settings(tmp_path, tool_server)) == [
            attack["call"]["input"]["text"]
        ]
    else:
        assert any(SECRET in q for q in _searches(tool_server))


async def test_a_reply_quoting_the_system_prompt_is_withheld(
    client: Client,
    claude_queue: str,
    tool_server: FakeToolServer,
    anthropic_server: FakeAnthropicServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (attack,) = [a for a in ATTACKS["attacks"] if a["name"] == "exfiltrate_by_reply"]
    caplog.set_level(logging.INFO)
    conversation, reply, _ = await _run_attack(
        client, claude_queue, attack, SafetyPolicy(), tool_server, anthropic_server
    )
    assert SECRET not in reply.text and "withheld" in reply.text
    assert reply.detail == "reply withheld: it quoted the system prompt"
    flags = (await conversation.transcript()).flags
    assert [(f.source, f.action) for f in flags] == [
        ("tool:web_search", "flagged"),
        ("reply", "withheld"),
    ]
    logged = [r for r in caplog.records if getattr(r, "event", None) == "safety_flag"]
    assert [getattr(r, "source", None) for r in logged] == ["tool:web_search", "reply"]

    _, open_reply, _ = await _run_attack(
        client, claude_queue, attack, UNDEFENDED, tool_server, anthropic_server
    )
    assert SECRET in open_reply.text  # what the defence stopped


PASTED = [a for a in ATTACKS["attacks"] if a.get("pasted")]


@pytest.mark.parametrize("attack", PASTED, ids=lambda a: a["name"])
async def test_pasted_injection_with_the_offline_planner(
    client: Client, task_queue: str, settings: Settings, attack: dict[str, Any]
) -> None:
    """The offline planner does what pasted text says; the flagged message makes its
    save_note wait, and the rejection leaves the store empty."""
    conversation = await start_conversation(client, task_queue=task_queue)
    reply = asyncio.ensure_future(conversation.send_message(attack["pasted"]))
    status = await eventually(conversation.status, until=lambda s: bool(s.pending_approvals))
    (pending,) = status.pending_approvals
    assert pending.tool == "save_note" and "(user in turn 1, flagged" in pending.reason
    assert pending.severity == "high"
    await conversation.reject(pending.call_id, by="reviewer", reason="pasted instructions")
    assert (await reply).tool_calls[0].outcome == "rejected"
    assert await saved_notes(settings) == []
    assert (await conversation.transcript()).flags[0].source == "user"

    undefended = await start_conversation(
        client, ConversationInput(safety=UNDEFENDED), task_queue=task_queue
    )
    assert (await undefended.send_message(attack["pasted"])).tool_calls[0].outcome == "ok"
    assert len(await saved_notes(settings)) == 1


async def test_flags_and_decisions_are_counted_in_metrics(
    temporal_server: DevServer, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    port = free_port()
    client = await connect(temporal_server.address, runtime=metrics_runtime(f"127.0.0.1:{port}"))
    settings = make_settings(tmp_path, tool_server)
    queue = f"flags-{uuid.uuid4().hex[:8]}"
    (attack,) = [a for a in ATTACKS["attacks"] if a["name"] == "note_override"]
    async with running_worker(client, settings, queue):
        conversation = await start_conversation(
            client, ConversationInput(safety=SafetyPolicy(approval_timeout_seconds=0.5)),
            task_queue=queue,
        )  # fmt: skip
        reply = await conversation.send_message(attack["pasted"])
        assert reply.tool_calls[0].outcome == "rejected"
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    assert _samples(text, "durable_agent_safety_flags") == {
        'category="instruction_override",source="user"': 1
    }
    assert _samples(text, "durable_agent_approvals") == {'decision="timed_out",tool="save_note"': 1}
