"""``python -m examples.support_team`` (``make example``): the support team's agent, end
to end, on the dev server.

Like ``make demo`` it uses the Temporal server at ``AGENT_TEMPORAL_ADDRESS`` or starts a
dev server on 127.0.0.1:7233 (left running; ``make stop`` stops it). It configures a
worker the way you would in production — the three settings below, printed at start —
runs it in this process on the ``support-team`` task queue, starts a conversation from
the ``support`` profile and sends a few messages; the last is handed to the ``billing``
sub-agent, which runs as a child workflow (docs/delegation.md).

With ``ANTHROPIC_API_KEY`` set, Claude answers the questions as written. Without it the
model is the offline planner, which is not Claude and cannot choose a tool it has no
phrases for: the script then names the tool and its JSON arguments in the message
(``use lookup_customer {...}``), and says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

CONFIG = {
    "AGENT_TOOL_MODULES": "examples.support_team.tools",
    "AGENT_MCP_SERVERS": json.dumps(
        {
            "kb": {
                "command": sys.executable,
                "args": ["-m", "examples.support_team.kb_server"],
                "cwd": str(ROOT),
            }
        }
    ),
    "AGENT_PROFILES_FILE": str(HERE / "agents.yaml"),
    "AGENT_TASK_QUEUE": "support-team",
}
"""The worker's settings for this team (environment variables set here win)."""

SCRIPT = [
    # (what Claude is asked, what the offline planner is told)
    (
        "What plan is ada@example.com on?",
        'Use lookup_customer {"email": "ada@example.com"}',
    ),
    (
        "What does our knowledge base say about refunds?",
        'Use kb__search_articles {"query": "refunds"}',
    ),
    ("What is 1200 * 30 / 365, rounded to cents?", "What is 1200 * 30 / 365?"),
    (
        "Ask billing: what is the prorated refund of a 1200 plan after 30 of 365 days?",
        'Use delegate_to_billing {"task": "What is 1200 * (365 - 30) / 365?"}',
    ),
]


async def main() -> None:
    for key, value in CONFIG.items():
        os.environ.setdefault(key, value)
        print(f"{key}={os.environ[key]}")
    # Imported after the environment is set: Settings reads it.
    from demo import ensure_server
    from durable_agent.client import connect_with, start_agent
    from durable_agent.config import Settings
    from durable_agent.profiles import load_profiles
    from starter import format_reply
    from worker import serving, worker_resources

    settings = Settings()
    assert settings.profiles_file is not None
    Path(".data").mkdir(exist_ok=True)
    await ensure_server(settings.temporal_address)
    client = await connect_with(settings)
    async with worker_resources(settings, client) as resources:
        claude = resources.backend.name == "claude"
        if claude:
            print(f"Model: Claude ({settings.model}) via the Messages API")
        else:
            print(
                "Model: offline-planner, a deterministic offline model, not Claude (set "
                "ANTHROPIC_API_KEY to use Claude). It cannot choose user or MCP tools by "
                "itself, so each message below names the tool to use."
            )
        async with serving(client, resources, settings.task_queue, settings.governor_task_queue):
            profiles = load_profiles(settings.profiles_file)
            conversation = await start_agent(
                client, profiles, "support", task_queue=settings.task_queue
            )
            print(f"Conversation: {conversation.id} (agent 'support')\n")
            for question, instruction in SCRIPT:
                text = question if claude else instruction
                print(f"you: {text}")
                print(format_reply(await conversation.send_message(text)) + "\n")
            await conversation.end()
            await conversation.result()
    print(
        "Open it in the Temporal UI: http://localhost:8233/namespaces/"
        f"{settings.temporal_namespace}/workflows/{conversation.id}"
    )


if __name__ == "__main__":
    from durable_agent.process import exit_now

    asyncio.run(main())
    exit_now(0)
