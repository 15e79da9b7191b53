"""durable-agent CLI: start conversations, talk to them, watch and stop them.

    python starter.py start                       # prints the new conversation id
    python starter.py send -c ID "what is 6*7?"   # one turn, prints the reply
    python starter.py send --stream -c ID "…"     # prints the answer as it is written
    python starter.py chat [-c ID]                # interactive (streams on a terminal)
    python starter.py status -c ID | transcript -c ID | end -c ID | cancel -c ID
    python starter.py pending -c ID               # tool calls waiting for approval
    python starter.py approve -c ID CALL_ID [--args JSON] | reject -c ID CALL_ID --reason R
    python starter.py approvals -c ID             # the audit list of decisions
    python starter.py clear -c ID --reason R      # vouch for the untrusted content in it
    python starter.py history export ID > h.json  # then: python starter.py replay h.json

Common flags: ``--server HOST:PORT``, ``--namespace``, ``--task-queue``, ``--json``.
Exit status: 0 ok, 1 the conversation refused or failed the request, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel
from temporalio.client import Client

from durable_agent.client import (
    ApprovalRefused,
    Conversation,
    ConversationError,
    ConversationNotFound,
    MessageRejected,
    StreamInterrupted,
    TurnStream,
    connect_with,
    get_conversation,
    start_conversation,
)
from durable_agent.config import Settings
from durable_agent.contract import (
    ApprovalRecord,
    ConversationInput,
    PendingApproval,
    Reply,
    SafetyPolicy,
    Transcript,
)
from durable_agent.process import exit_now
from durable_agent.profiles import ProfileError, Profiles, load_profiles
from durable_agent.stores.blobs import (
    BlobNotFound,
    BlobStoreError,
    open_blob_store,
    whole_transcript,
)
from durable_agent.tools.loading import load_tools


def _print(model: BaseModel, as_json: bool, human: str) -> None:
    print(model.model_dump_json(indent=2) if as_json else human)


def format_reply(reply: Reply, *, answer: bool = True) -> str:
    """A reply for people: tool calls, the answer (unless it was shown as it was
    written), and what it cost."""
    lines = [
        f"  · {call.name}({json.dumps(call.arguments)}) → {call.outcome}: {call.result}"
        + (f" [{call.approval.decision} by {call.approval.by}]" if call.approval else "")
        + (f" [flagged: {', '.join(call.flags)}]" if call.flags else "")
        for call in reply.tool_calls
    ]
    if answer:
        lines.append(f"assistant: {reply.text}")
    u = reply.usage
    lines.append(
        f"  [turn {reply.turn} · {reply.backend}:{reply.model} · {u.input_tokens} in / "
        f"{u.output_tokens} out tokens · {reply.model_calls} model calls · ${reply.cost_usd:.4f}"
        + ("" if reply.status == "ok" else f" · {reply.status}: {reply.detail}")
        + "]"
    )
    return "\n".join(lines)


def format_pending(pending: PendingApproval) -> str:
    """A waiting tool call for people: what, why, and until when."""
    return (
        f"{pending.call_id}  {pending.tool}({json.dumps(pending.arguments)})  "
        f"[{pending.permission}] {pending.reason}; expires {pending.expires_at:%Y-%m-%d %H:%M:%S}Z"
    )


def format_decision(record: ApprovalRecord) -> str:
    """One audit entry for people."""
    edited = f" with {json.dumps(record.arguments)}" if record.arguments is not None else ""
    why = f": {record.reason}" if record.reason else ""
    return (
        f"{record.decided_at:%Y-%m-%d %H:%M:%S}Z {record.call_id} {record.tool} "
        f"{record.decision} by {record.by}{edited}{why}"
    )


async def expanded(transcript: Transcript) -> Transcript:
    """The whole transcript: earlier runs' messages read back from the blob store
    (``AGENT_BLOB_DB``, as the workers use it). If it cannot be read, the transcript as
    the conversation answered it (``archived`` names where the rest is)."""
    if transcript.archived is None:
        return transcript
    store = open_blob_store(Settings().blob_db)
    try:
        messages = await whole_transcript(store, transcript)
    except (BlobNotFound, BlobStoreError) as e:
        print(f"(earlier messages not read from the blob store: {e})", file=sys.stderr)
        return transcript
    finally:
        await store.close()
    return transcript.model_copy(update={"messages": messages, "archived": None})


def default_approver(settings: Settings | None = None) -> str:
    """Who the audit list names when ``--by`` is not given: the configured identity
    (``AGENT_APPROVER``), else the operating-system user as ``user@host``. Whoever runs
    the CLI holds access to the Temporal namespace and could claim any name: the
    identity is recorded, not verified (the gateway's is verified by its API key)."""
    if settings is not None and settings.approver:
        return settings.approver
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _safety(args: argparse.Namespace) -> SafetyPolicy:
    """``AGENT_SAFETY`` (or the defaults), with what the flags say instead."""
    fields = {
        "approval_levels": _split(args.approval_levels),
        "approval_tools": _split(args.approval_tools),
        "approval_timeout_seconds": args.approval_timeout,
        "blocked_patterns": args.blocked_pattern,
    }
    given = {k: v for k, v in fields.items() if v is not None}
    return SafetyPolicy.model_validate(Settings().safety.model_dump() | given)


def _load_tools() -> None:
    settings = Settings()
    load_tools(settings.tool_modules, use_entry_points=settings.tool_entry_points)


def _profiles() -> Profiles:
    path = Settings().profiles_file
    if path is None:
        raise ProfileError("--agent needs a profiles file: set AGENT_PROFILES_FILE")
    return load_profiles(path)


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v for v in value.split(",") if v]


async def _start(client: Client, args: argparse.Namespace) -> Conversation:
    fields = {
        "system_prompt": args.system,
        "model": args.model,
        "tools": args.tools.split(",") if args.tools is not None else None,
        "tenant": args.tenant,
        "max_tokens": args.max_tokens,
    }
    given = {k: v for k, v in fields.items() if v is not None}
    if args.agent:
        # The profile, with the flags given in its place; its own safety policy if it
        # declares one.
        profile = _profiles().get(args.agent)
        safety = {} if profile.safety else {"safety": _safety(args)}
        config = profile.conversation_input(args.agent, **given, **safety)
    else:
        config = ConversationInput(**given, safety=_safety(args))
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
    # On a terminal the answer appears as it is written; piped, one line per reply.
    stream = sys.stdout.isatty() if args.stream is None else args.stream
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
            print((await expanded(await conversation.transcript())).model_dump_json(indent=2))
        elif command == "/end":
            await conversation.end()
            print("conversation ended")
            return 0
        elif command:
            try:
                print(await _send_asking(conversation, line, args.by, stream))
            except MessageRejected as e:
                print(f"rejected ({e.type}): {e.reason}")


async def _send_asking(conversation: Conversation, text: str, by: str, stream: bool) -> str:
    """Send ``text``; while the turn runs, show the answer as it is written (with
    ``stream``) and ask the user about each tool call that waits for approval (y:
    approve, e: approve with edited arguments, anything else: reject). Returns the reply
    for people."""
    typist = Typist()
    typing: asyncio.Future[str] | None = None
    turn: TurnStream | None = None
    if stream:
        turn = await conversation.send_streaming(text)
        typing = asyncio.ensure_future(typist.follow(turn))
        reply = asyncio.ensure_future(turn.reply())
    else:
        reply = asyncio.ensure_future(conversation.send_message(text))
    asked: set[str] = set()
    try:
        while not reply.done():
            await asyncio.wait([reply], timeout=0.3)
            if reply.done():
                break
            for pending in (await conversation.status()).pending_approvals:
                if pending.call_id not in asked:
                    asked.add(pending.call_id)
                    if turn is not None:  # show what the model wrote before it asked
                        await turn.shown_before(pending.call_id)
                    typist.break_line()
                    await _ask_approval(conversation, pending, by)
        answer = await reply
        typed = await typing if typing is not None else None
        return format_reply(answer, answer=typed != answer.text)
    finally:
        reply.cancel()
        if typing is not None:
            typing.cancel()


class Typist:
    """Writes a turn's reply to stdout as it is written (``assistant: …``). A model call
    after tool calls starts the text again on a new line; so does a restarted attempt
    of a call, saying so. The stream is a convenience: if it fails, the reply still
    comes (``shown`` is then what was shown)."""

    def __init__(self) -> None:
        self.shown = ""
        self._line_open = False
        self._call = (0, 0)

    async def follow(self, turn: TurnStream) -> str:
        """Show ``turn``'s text until its reply; returns what was shown last."""
        try:
            async for text in turn:
                self._show(text, turn.text.model_call, turn.text.restarts)
        except StreamInterrupted as e:
            self.break_line()
            print(f"(stopped streaming: {e})", file=sys.stderr)
        self.break_line()
        return self.shown

    def break_line(self) -> None:
        """End the line being written (before something else is printed)."""
        if self._line_open:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self._line_open = False

    def _show(self, text: str, model_call: int, restarts: int) -> None:
        call = (model_call, restarts)
        if call != self._call or not text.startswith(self.shown):
            self.break_line()
            if restarts and model_call == self._call[0]:
                sys.stdout.write("  (the model call failed and started again)\n")
            self.shown, self._call = "", call
        if text == self.shown:
            return
        if not self._line_open:
            sys.stdout.write("assistant: ")
            self._line_open = True
        sys.stdout.write(text[len(self.shown) :])
        sys.stdout.flush()
        self.shown = text


async def _ask_approval(conversation: Conversation, pending: PendingApproval, by: str) -> None:
    print(f"approval needed: {pending.tool}({json.dumps(pending.arguments)})")
    print(f"  why: {pending.reason}")
    answer = (await asyncio.to_thread(input, "approve? [y]es / [e]dit / [n]o: ")).strip().lower()
    try:
        if answer in ("y", "yes"):
            record = await conversation.approve(pending.call_id, by=by)
        elif answer in ("e", "edit"):
            edited = await asyncio.to_thread(input, "arguments (JSON): ")
            record = await conversation.approve(
                pending.call_id, by=by, arguments=json.loads(edited)
            )
        else:
            reason = (await asyncio.to_thread(input, "reason: ")).strip() or "declined in chat"
            record = await conversation.reject(pending.call_id, by=by, reason=reason)
        print(f"  {format_decision(record)}")
    except (ApprovalRefused, json.JSONDecodeError) as e:
        print(f"  not accepted: {e}; the call still waits (`pending`, `approve`, `reject`)")


async def run(args: argparse.Namespace) -> int:
    if args.command == "replay":
        from durable_agent.codec import data_converter
        from workflows.replay import replay_file

        converter = data_converter(Settings())  # decrypts histories of encrypted runs
        _load_tools()  # histories name user tools: resolve them as the worker did
        for path in args.files:
            await replay_file(Path(path), converter)
            print(f"replayed {path}: ok")
        return 0

    settings = Settings().model_copy(
        update={"temporal_address": args.server, "temporal_namespace": args.namespace}
    )
    if args.command in ("start", "chat"):
        _load_tools()  # to check user tool names before a conversation starts
    client = await connect_with(settings)
    if args.command == "start":
        conversation = await _start(client, args)
        print(conversation.id)
        return 0
    if args.command == "chat":
        return await _chat(client, args)
    if args.command == "history":
        from workflows.replay import export_history

        print(await export_history(client, args.id))
        return 0

    conversation = get_conversation(client, args.conversation)
    if args.command == "send":
        if args.stream and not args.json:
            turn = await conversation.send_streaming(" ".join(args.text))
            typed = await Typist().follow(turn)
            reply = await turn.reply()
            print(format_reply(reply, answer=typed != reply.text))
        else:
            reply = await conversation.send_message(" ".join(args.text), stream=args.stream)
            _print(reply, args.json, format_reply(reply))
    elif args.command == "status":
        status = await conversation.status()
        _print(status, args.json, status.model_dump_json(indent=2))
    elif args.command == "transcript":
        transcript = await expanded(await conversation.transcript())
        _print(transcript, args.json, transcript.model_dump_json(indent=2))
    elif args.command == "end":
        await conversation.end()
        print(f"end signalled to {conversation.id}")
    elif args.command == "cancel":
        await conversation.cancel()
        print(f"cancel requested for {conversation.id}")
    elif args.command == "pending":
        waiting = (await conversation.approvals()).pending
        if args.json:
            print(json.dumps([p.model_dump(mode="json") for p in waiting], indent=2))
        else:
            print("\n".join(map(format_pending, waiting)) or "no tool call is waiting")
    elif args.command == "approvals":
        approvals = await conversation.approvals()
        _print(approvals, args.json, "\n".join(map(format_decision, approvals.decisions)))
    elif args.command == "approve":
        arguments = json.loads(args.args) if args.args is not None else None
        record = await conversation.approve(
            args.call_id, by=args.by, arguments=arguments, reason=args.reason
        )
        _print(record, args.json, format_decision(record))
    elif args.command == "reject":
        record = await conversation.reject(args.call_id, by=args.by, reason=args.reason)
        _print(record, args.json, format_decision(record))
    elif args.command == "clear":
        clearance = await conversation.clear_untrusted(by=args.by, reason=args.reason)
        sources = ", ".join(u.source for u in clearance.cleared)
        _print(clearance, args.json, f"cleared by {clearance.by}: {sources}")
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
    new.add_argument("--agent", help="start from this agent profile (AGENT_PROFILES_FILE)")
    new.add_argument("--tenant")
    new.add_argument("--max-tokens", type=int)
    new.add_argument(
        "--approval-levels", help="permission levels that need approval (default: execute,admin)"
    )
    new.add_argument("--approval-tools", help="tools whose every call needs approval")
    new.add_argument("--approval-timeout", type=float, help="seconds until a call is rejected")
    new.add_argument(
        "--blocked-pattern", action="append", help="refuse messages matching this regex"
    )
    approver = argparse.ArgumentParser(add_help=False)
    approver.add_argument(
        "--by",
        default=default_approver(settings),
        help="who decides, for the audit list (default: AGENT_APPROVER, else user@host)",
    )

    # Common flags go after the subcommand (`send --server … -c ID text`): argparse
    # would let a subcommand's defaults overwrite flags given before it.
    parser = argparse.ArgumentParser(prog="starter.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("start", parents=[common, new], help="start a conversation")
    send = sub.add_parser("send", parents=[common, needs_id], help="send one message")
    send.add_argument("text", nargs="+")
    send.add_argument(
        "--stream",
        action="store_true",
        default=None,
        help="print the answer as it is written (with --json: the turn streams, the reply prints)",
    )
    chat = sub.add_parser("chat", parents=[common, new, approver], help="chat interactively")
    chat.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        help="print answers as they are written (default: when stdout is a terminal)",
    )
    for name in ("status", "transcript", "end", "cancel"):
        sub.add_parser(name, parents=[common, needs_id], help=f"{name} a conversation")
    sub.add_parser("pending", parents=[common, needs_id], help="tool calls waiting for approval")
    sub.add_parser("approvals", parents=[common, needs_id], help="the audit list of decisions")
    approve = sub.add_parser(
        "approve", parents=[common, needs_id, approver], help="approve a waiting tool call"
    )
    approve.add_argument("call_id")
    approve.add_argument("--args", help="run with these arguments instead (JSON object)")
    approve.add_argument("--reason")
    reject = sub.add_parser(
        "reject", parents=[common, needs_id, approver], help="reject a waiting tool call"
    )
    reject.add_argument("call_id")
    reject.add_argument("--reason", required=True, help="told to the model")
    clear = sub.add_parser(
        "clear",
        parents=[common, needs_id, approver],
        help="vouch for the untrusted content in the context (calls stop waiting for it)",
    )
    clear.add_argument("--reason", help="why it is safe to act on (kept in the audit record)")
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
    except (MessageRejected, ApprovalRefused) as e:
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
