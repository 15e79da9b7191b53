"""durable-agent CLI: start conversations, talk to them, watch and stop them.

    python starter.py start                       # prints the new conversation id
    python starter.py send -c ID "what is 6*7?"   # one turn, prints the reply
    python starter.py chat [-c ID]                # interactive
    python starter.py status -c ID | transcript -c ID | end -c ID | cancel -c ID
    python starter.py history export ID > h.json  # then: python starter.py replay h.json

Common flags: ``--server HOST:PORT``, ``--namespace``, ``--task-queue``, ``--json``.
Exit status: 0 ok, 1 the conversation refused or failed the request, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel
from temporalio.client import Client

from durable_agent.client import (
    Conversation,
    ConversationError,
    ConversationNotFound,
    MessageRejected,
    connect_with,
    get_conversation,
    start_conversation,
)
from durable_agent.config import Settings
from durable_agent.contract import ConversationInput, Reply
from durable_agent.process import exit_now


def _print(model: BaseModel, as_json: bool, human: str) -> None:
    print(model.model_dump_json(indent=2) if as_json else human)


def format_reply(reply: Reply) -> str:
    """A reply for people: tool calls, the answer, and what it cost."""
    lines = [
        f"  · {call.name}({json.dumps(call.arguments)}) → {call.outcome}: {call.result}"
        for call in reply.tool_calls
    ]
    lines.append(f"assistant: {reply.text}")
    u = reply.usage
    lines.append(
        f"  [turn {reply.turn} · {reply.backend}:{reply.model} · {u.input_tokens} in / "
        f"{u.output_tokens} out tokens · {reply.model_calls} model calls · ${reply.cost_usd:.4f}"
        + ("" if reply.status == "ok" else f" · {reply.status}: {reply.detail}")
        + "]"
    )
    return "\n".join(lines)


async def _start(client: Client, args: argparse.Namespace) -> Conversation:
    fields = {
        "system_prompt": args.system,
        "model": args.model,
        "tools": args.tools.split(",") if args.tools is not None else None,
        "tenant": args.tenant,
        "max_tokens": args.max_tokens,
    }
    config = ConversationInput(**{k: v for k, v in fields.items() if v is not None})
    return await start_conversation(
        client, config, conversation_id=args.conversation, task_queue=args.task_queue
    )


async def _resume_or_start(client: Client, args: argparse.Namespace) -> Conversation:
    """The conversation named by ``-c`` if it exists, else a new one (under that id)."""
    if args.conversation:
        conversation = get_conversation(client, args.conversation)
        try:
            await conversation.status()
            return conversation
        except ConversationNotFound:
            pass
    return await _start(client, args)


async def _chat(client: Client, args: argparse.Namespace) -> int:
    conversation = await _resume_or_start(client, args)
    print(f"conversation {conversation.id} — /status, /transcript, /end, /quit")
    while True:
        try:
            line = await asyncio.to_thread(input, "you: ")
        except EOFError:
            return 0
        command = line.strip()
        if command in ("/quit", "/exit"):
            return 0
        if command == "/status":
            print((await conversation.status()).model_dump_json(indent=2))
        elif command == "/transcript":
            print((await conversation.transcript()).model_dump_json(indent=2))
        elif command == "/end":
            await conversation.end()
            print("conversation ended")
            return 0
        elif command:
            try:
                print(format_reply(await conversation.send_message(line)))
            except MessageRejected as e:
                print(f"rejected ({e.type}): {e.reason}")


async def run(args: argparse.Namespace) -> int:
    if args.command == "replay":
        from durable_agent.replay import replay_file

        for path in args.files:
            await replay_file(Path(path))
            print(f"replayed {path}: ok")
        return 0

    settings = Settings().model_copy(
        update={"temporal_address": args.server, "temporal_namespace": args.namespace}
    )
    client = await connect_with(settings)
    if args.command == "start":
        conversation = await _start(client, args)
        print(conversation.id)
        return 0
    if args.command == "chat":
        return await _chat(client, args)
    if args.command == "history":
        from durable_agent.replay import export_history

        print(await export_history(client, args.id))
        return 0

    conversation = get_conversation(client, args.conversation)
    if args.command == "send":
        reply = await conversation.send_message(" ".join(args.text))
        _print(reply, args.json, format_reply(reply))
    elif args.command == "status":
        status = await conversation.status()
        _print(status, args.json, status.model_dump_json(indent=2))
    elif args.command == "transcript":
        transcript = await conversation.transcript()
        _print(transcript, args.json, transcript.model_dump_json(indent=2))
    elif args.command == "end":
        await conversation.end()
        print(f"end signalled to {conversation.id}")
    elif args.command == "cancel":
        await conversation.cancel()
        print(f"cancel requested for {conversation.id}")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    settings = Settings()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", default=settings.temporal_address, help="host:port")
    common.add_argument("--namespace", default=settings.temporal_namespace)
    common.add_argument("--task-queue", default=settings.task_queue)
    common.add_argument("--json", action="store_true", help="print JSON")
    needs_id = argparse.ArgumentParser(add_help=False)
    needs_id.add_argument("-c", "--conversation", required=True, help="conversation id")
    new = argparse.ArgumentParser(add_help=False)
    new.add_argument("-c", "--conversation", help="id for the new conversation")
    new.add_argument("--system", help="system prompt")
    new.add_argument("--model", help="model name (default: the worker's)")
    new.add_argument("--tools", help="comma-separated tool names (default: all)")
    new.add_argument("--tenant")
    new.add_argument("--max-tokens", type=int)

    # Common flags go after the subcommand (`send --server … -c ID text`): argparse
    # would let a subcommand's defaults overwrite flags given before it.
    parser = argparse.ArgumentParser(prog="starter.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("start", parents=[common, new], help="start a conversation")
    send = sub.add_parser("send", parents=[common, needs_id], help="send one message")
    send.add_argument("text", nargs="+")
    sub.add_parser("chat", parents=[common, new], help="chat interactively")
    for name in ("status", "transcript", "end", "cancel"):
        sub.add_parser(name, parents=[common, needs_id], help=f"{name} a conversation")
    history = sub.add_parser("history", parents=[common], help="export a history")
    history_sub = history.add_subparsers(dest="history_command", required=True)
    history_sub.add_parser("export", parents=[common]).add_argument("id")
    sub.add_parser("replay", parents=[common], help="replay exported histories").add_argument(
        "files", nargs="+"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        code = asyncio.run(run(args))
    except MessageRejected as e:
        print(f"rejected ({e.type}): {e.reason}", file=sys.stderr)
        code = 1
    except (ConversationError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        code = 1
    except RuntimeError as e:  # e.g. cannot connect to Temporal
        print(f"error: {e}", file=sys.stderr)
        code = 1
    exit_now(code)


if __name__ == "__main__":
    main()
