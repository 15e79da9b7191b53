"""Agent profiles through the public contract: a conversation started from a profile
keeps the profile it was started with (its start input records it), so editing the file
changes new conversations only; an unknown name is a typed error."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client

from durable_agent.client import start_agent
from durable_agent.profiles import UnknownProfile, load_profiles
from durable_agent.testing.fake_anthropic import FakeAnthropicServer
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.testing.responders import offline_responder
from tests.conftest import claude_worker

PROFILES = """
profiles:
  support:
    system_prompt: You are Acme's support agent.
    tools: [calculator]
"""


async def test_editing_the_profile_file_leaves_a_running_conversation_as_it_was(
    client: Client, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text(PROFILES)
    systems: list[str] = []

    def recording(body: dict[str, object]) -> dict[str, object]:
        system = body.get("system")
        systems.append(str(system))
        return offline_responder(body)  # type: ignore[arg-type]

    with FakeAnthropicServer() as claude:
        claude.responder = recording
        async with claude_worker(client, tmp_path, tool_server, claude) as queue:
            running = await start_agent(client, load_profiles(path), "support", task_queue=queue)
            assert (await running.send_message("What is 1 + 1?")).status == "ok"
            path.write_text(PROFILES.replace("Acme's support agent", "a pirate"))
            assert (await running.send_message("What is 2 + 2?")).status == "ok"
            assert all("Acme's support agent" in s for s in systems) and systems
            fresh = await start_agent(client, load_profiles(path), "support", task_queue=queue)
            assert (await fresh.send_message("What is 3 + 3?")).status == "ok"
            assert "a pirate" in systems[-1]
            assert (await running.transcript()).system_prompt == "You are Acme's support agent."
            with pytest.raises(UnknownProfile, match="support"):
                await start_agent(client, load_profiles(path), "sales", task_queue=queue)
