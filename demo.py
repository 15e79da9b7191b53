"""``make demo``: a scripted conversation, end to end, on the embedded dev server.

Starts ``temporal server start-dev`` on 127.0.0.1:7233 (UI on http://localhost:8233,
SQLite under ``.data/``) unless one is already serving, runs a worker in this process,
and talks to one conversation through the public client API. The server keeps running
afterwards so the conversation can be inspected in the UI (``make stop`` stops it).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from durable_agent.client import connect_with, start_conversation
from durable_agent.config import Settings
from durable_agent.contract import ConversationInput
from durable_agent.devserver import DevServer, is_serving
from durable_agent.process import exit_now
from durable_agent.testing.fake_tools import FakeToolServer

DATA = Path(".data")
SCRIPT = [
    "Hi! What is 12 * (3 + 4) - 5?",
    "Remember that the launch review is on Friday at 10:00.",
    "What's the weather in Paris and what is 2 ** 10?",
    "Search for durable execution",
    "What did I note?",
]


async def ensure_server(address: str) -> None:
    if await is_serving(address):
        print(f"Temporal: using the server already at {address}")
        return
    host, _, port = address.rpartition(":")
    if host not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"no Temporal server at {address}, and it is not local to start one")
    server = DevServer(
        port=int(port),
        ui_port=8233,
        db_file=DATA / "temporal.sqlite3",
        headless=False,
        log_file=DATA / "temporal.log",
    )
    await server.start(detach=True)
    assert server.process is not None
    (DATA / "temporal.pid").write_text(str(server.process.pid))
    print(f"Temporal: started a dev server at {address} (UI http://localhost:8233)")


async def main() -> None:
    # Imported here: they import the worker's activities, which the docs above don't need.
    from starter import format_reply
    from worker import serving, worker_resources

    settings = Settings()
    DATA.mkdir(exist_ok=True)
    await ensure_server(settings.temporal_address)
    with FakeToolServer() as tools:
        # No internet here: weather and search come from local demo servers unless
        # their URLs are configured (AGENT_WEATHER_URL, AGENT_SEARCH_URL, ...).
        local = {
            key: tools.base_url
            for key, env in (
                ("weather_url", "AGENT_WEATHER_URL"),
                ("geocoding_url", "AGENT_GEOCODING_URL"),
                ("search_url", "AGENT_SEARCH_URL"),
            )
            if env not in os.environ
        }
        settings = settings.model_copy(update=local)
        if local:
            print(
                f"Tools: {', '.join(sorted(local))} served by a local demo server at "
                f"{tools.base_url}"
            )
        client = await connect_with(settings)
        async with worker_resources(settings, client) as resources:
            if resources.backend.name == "claude":
                print(f"Model: Claude ({settings.model}) via the Messages API")
            else:
                print(
                    "Model: offline-planner — a deterministic offline model, not Claude "
                    "(set ANTHROPIC_API_KEY to use Claude)"
                )
            async with serving(
                client, resources, settings.task_queue, settings.governor_task_queue
            ):
                # Summaries: each model and tool call readable at a glance in the UI.
                conversation = await start_conversation(
                    client, ConversationInput(summaries=True), task_queue=settings.task_queue
                )
                print(f"Conversation: {conversation.id}\n")
                for text in SCRIPT:
                    print(f"you: {text}")
                    print(format_reply(await conversation.send_message(text)) + "\n")
                status = await conversation.status()
                await conversation.end()
                await conversation.result()
    u = status.usage
    print(
        f"Done: {status.turns} turns, {status.model_calls} model calls, {status.tool_calls} "
        f"tool calls, {u.input_tokens} input / {u.output_tokens} output tokens, "
        f"${status.cost_usd:.4f}."
    )
    print(
        "Open it in the Temporal UI: http://localhost:8233/namespaces/"
        f"{settings.temporal_namespace}/workflows/{conversation.id}"
    )
    print("The dev server keeps running; `make worker` + `make chat` to talk, `make stop` to stop.")


if __name__ == "__main__":
    asyncio.run(main())
    exit_now(0)
