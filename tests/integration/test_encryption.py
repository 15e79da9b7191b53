"""Payload encryption end to end: with ``AGENT_ENCRYPTION_KEYS`` set, what a user
writes (and what an exception says) never reaches the Temporal server's database in
clear, while the codec server lets the stock CLI and the web UI read it back.

The evidence is the dev server's own SQLite file (and its write-ahead log): a unique
canary is searched for in its bytes. A control conversation without encryption shows
that the search does find what is stored in clear.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx
from google.protobuf import json_format
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from durable_agent.client import connect_with, start_conversation
from durable_agent.codec import ENCODING, KEY_ID, EncryptionCodec, data_converter, new_key
from durable_agent.codec_server import CodecService, serve_codec
from durable_agent.config import Settings
from durable_agent.contract import QUERY_STREAM, ConversationInput, StreamPage, StreamRequest
from durable_agent.devserver import DevServer, free_port
from durable_agent.testing.fake_tools import FakeToolServer
from tests.conftest import make_settings
from tests.helpers import ROOT, eventually, run_command, running_worker
from workflows.replay import replayer

KEYS = f"{new_key('k-new')},{new_key('k-old')}"
UI_ORIGIN = "http://localhost:8233"


def _canary(kind: str) -> str:
    return f"canary-{kind}-{uuid.uuid4().hex}"


def stored_bytes(server: DevServer) -> bytes:
    """Everything the dev server has written: its SQLite file and write-ahead log."""
    assert server.db_file is not None
    files = [server.db_file, server.db_file.with_name(server.db_file.name + "-wal")]
    return b"".join(path.read_bytes() for path in files if path.exists())


async def stored(server: DevServer, text: str) -> bool:
    return text.encode() in stored_bytes(server)


def isolated_settings(
    tmp_path: Path, tools: FakeToolServer, server: DevServer, **overrides: object
) -> Settings:
    """Offline-model settings with a governor queue of its own: governors are shared
    per tenant, and one started by a worker with another data converter could not
    read this worker's payloads."""
    return make_settings(
        tmp_path,
        tools,
        temporal_address=server.address,
        governor_task_queue=f"governor-{uuid.uuid4().hex[:10]}",
        **overrides,
    )


@asynccontextmanager
async def conversation_worker(client: Client, settings: Settings) -> AsyncIterator[str]:
    queue = f"encryption-{uuid.uuid4().hex[:10]}"
    async with running_worker(client, settings, queue):
        yield queue


async def converse(client: Client, queue: str, text: str) -> str:
    """One conversation of one message on ``queue``; its workflow id."""
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    conversation = await start_conversation(
        client, ConversationInput(tenant=tenant), task_queue=queue
    )
    async with asyncio.timeout(30):
        await conversation.send_message(text)
        transcript = await conversation.transcript()
        assert text in transcript.messages[0].text()  # decrypted on the way back
        await conversation.end()
        await conversation.result()
    return conversation.id


async def test_conversation_is_stored_encrypted_and_the_codec_server_reads_it(
    client: Client, temporal_server: DevServer, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    secret, in_clear = _canary("encrypted"), _canary("control")
    settings = isolated_settings(tmp_path, tool_server, temporal_server, encryption_keys=KEYS)
    encrypting = await connect_with(settings)  # what worker.py and starter.py build
    async with conversation_worker(encrypting, settings) as queue:
        encrypted_id = await converse(encrypting, queue, f"Remember that the code is {secret}")

    plain_settings = isolated_settings(tmp_path / "plain", tool_server, temporal_server)
    async with conversation_worker(client, plain_settings) as queue:
        await converse(client, queue, f"Remember that the code is {in_clear}")

    # The control is written in clear; the encrypted conversation is stored (its id is
    # there) but its content is not.
    await eventually(lambda: stored(temporal_server, in_clear), timeout=10)
    assert await stored(temporal_server, encrypted_id)
    assert not await stored(temporal_server, secret)

    # Raw history (no codec) holds only ciphertext, under the current key's id.
    history = await client.get_workflow_handle(encrypted_id).fetch_history()
    accepted = next(
        e.workflow_execution_update_accepted_event_attributes
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    )
    sealed = accepted.accepted_request.input.args
    assert sealed.payloads[0].metadata["encoding"] == ENCODING
    assert sealed.payloads[0].metadata[KEY_ID] == b"k-new"
    # It replays (the upgrade check) with the workers' converter.
    await replayer(data_converter(settings)).replay_workflow(history)

    codec = EncryptionCodec.from_config(KEYS)
    async with serve_codec(CodecService(codec, [UI_ORIGIN]), "127.0.0.1", 0) as port:
        endpoint = f"http://127.0.0.1:{port}"
        shown = await show_history(temporal_server, encrypted_id, endpoint)
        assert secret in shown
        assert secret not in await show_history(temporal_server, encrypted_id, None)

        async with httpx.AsyncClient(base_url=endpoint, timeout=10, trust_env=False) as http:
            # The web UI's preflight, then its decode call.
            preflight = await http.options(
                "/decode",
                headers={
                    "Origin": UI_ORIGIN,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type,x-namespace",
                },
            )
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == UI_ORIGIN
            assert "POST" in preflight.headers["access-control-allow-methods"]
            allowed = preflight.headers["access-control-allow-headers"].lower().split(",")
            assert {"content-type", "x-namespace"} <= set(allowed)

            decoded = await http.post(
                "/decode",
                content=json_format.MessageToJson(sealed),
                headers={
                    "Origin": UI_ORIGIN,
                    "Content-Type": "application/json",
                    "X-Namespace": "default",
                },
            )
            assert decoded.status_code == 200, decoded.text
            assert decoded.headers["access-control-allow-origin"] == UI_ORIGIN
            (payload,) = decoded.json()["payloads"]
            assert base64.b64decode(payload["metadata"]["encoding"]) == b"json/plain"
            assert secret in base64.b64decode(payload["data"]).decode()


async def show_history(server: DevServer, workflow_id: str, codec_endpoint: str | None) -> str:
    """The payloads of ``temporal workflow show -o json`` (the stock CLI, through the
    codec server if given), each decoded from base64, one per line."""
    temporal = str(Path(sys.executable).parent / "temporal")
    codec = ["--codec-endpoint", codec_endpoint] if codec_endpoint else []
    code, out, err = await run_command(
        temporal, "workflow", "show", "--workflow-id", workflow_id,
        "--address", server.address, *codec, "-o", "json", timeout=30,
    )  # fmt: skip
    assert code == 0, err
    return "\n".join(_payload_data(json.loads(out)))


def _payload_data(node: object) -> list[str]:
    """The ``data`` of every payload (``{"metadata": …, "data": base64}``) in ``node``."""
    if isinstance(node, list):
        return [text for item in node for text in _payload_data(item)]
    if not isinstance(node, dict):
        return []
    if "metadata" in node and "data" in node:
        return [base64.b64decode(node["data"]).decode("utf-8", "replace")]
    return [text for value in node.values() for text in _payload_data(value)]


async def test_starter_cli_encrypts_with_the_configured_keys(
    temporal_server: DevServer, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    secret = _canary("cli")
    settings = isolated_settings(tmp_path, tool_server, temporal_server, encryption_keys=KEYS)
    env = {**os.environ, "AGENT_ENCRYPTION_KEYS": KEYS}
    conversation = f"encrypted-cli-{uuid.uuid4().hex[:10]}"

    async def starter(*args: str) -> str:
        command, *rest = args
        code, out, err = await run_command(
            sys.executable, "starter.py", command, "--server", temporal_server.address,
            *rest, env=env, timeout=30,
        )  # fmt: skip
        assert code == 0, err
        return out

    async with conversation_worker(await connect_with(settings), settings) as queue:
        await starter("start", "--task-queue", queue, "-c", conversation, "--tenant", conversation)
        reply = await starter("send", "-c", conversation, f"Remember that the code is {secret}")
        assert "save_note" in reply  # the worker read the message; the CLI read the reply
        transcript = await starter("transcript", "--json", "-c", conversation)
        assert secret in transcript
        await starter("end", "-c", conversation)
    assert await stored(temporal_server, conversation)
    assert not await stored(temporal_server, secret)


# --- failures -----------------------------------------------------------------------


@activity.defn(name="test.refuse")
async def refuse(reason: str) -> None:
    """Fails the way a tool refusing user input could: the input in the message."""
    raise ApplicationError(f"refused: {reason}", type="Refused", non_retryable=True)


@workflow.defn(name="EncryptionFailureWorkflow")
class FailingWorkflow:
    """Runs ``refuse`` and fails with its error."""

    @workflow.run
    async def run(self, reason: str) -> None:
        await workflow.execute_activity(
            refuse, reason, start_to_close_timeout=timedelta(seconds=10)
        )


async def fail_with(client: Client, reason: str) -> str:
    """Run ``FailingWorkflow`` to its failure; check the caller still reads the
    message; return the workflow id."""
    queue = f"encryption-failure-{uuid.uuid4().hex[:10]}"
    workflow_id = f"failure-{uuid.uuid4().hex[:10]}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[FailingWorkflow],
        activities=[refuse],
        workflow_runner=UnsandboxedWorkflowRunner(),  # defined in a test module
    ):
        handle = await client.start_workflow(
            FailingWorkflow.run, reason, id=workflow_id, task_queue=queue
        )
        try:
            async with asyncio.timeout(30):
                await handle.result()
        except WorkflowFailureError as e:
            assert isinstance(e.cause, ActivityError)
            assert isinstance(e.cause.cause, ApplicationError)
            assert e.cause.cause.message == f"refused: {reason}"
        else:
            raise AssertionError("the workflow did not fail")
    return workflow_id


async def test_failure_messages_are_stored_encrypted(
    client: Client, temporal_server: DevServer
) -> None:
    secret, in_clear = _canary("failure-encrypted"), _canary("failure-control")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, temporal_address=temporal_server.address, encryption_keys=KEYS
    )
    encrypted_id = await fail_with(await connect_with(settings), secret)
    await fail_with(client, in_clear)

    await eventually(lambda: stored(temporal_server, in_clear), timeout=10)
    assert await stored(temporal_server, encrypted_id)
    assert not await stored(temporal_server, secret)


# --- the codec server's edges -------------------------------------------------------


async def test_codec_server_refuses_foreign_origins_and_bad_requests() -> None:
    old = EncryptionCodec.from_config(new_key("k-gone"))
    (unknown,) = await old.encode([Payload(data=b"{}")])
    service = CodecService(EncryptionCodec.from_config(KEYS), [UI_ORIGIN])
    async with (
        serve_codec(service, "127.0.0.1", 0) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as http,
    ):
        json_headers = {"Content-Type": "application/json"}
        foreign = await http.post(
            "/decode", content="{}", headers={**json_headers, "Origin": "https://evil.test"}
        )
        assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers
        assert (
            await http.options("/decode", headers={"Origin": "https://evil.test"})
        ).status_code == 403

        # No Origin (the CLI, curl): served, without CORS headers.
        empty = await http.post("/decode", content="{}", headers=json_headers)
        assert empty.status_code == 200 and empty.json() == {"payloads": []}
        assert "access-control-allow-origin" not in empty.headers

        document = json_format.MessageToJson(Payloads(payloads=[unknown]))
        refused = await http.post("/decode", content=document, headers=json_headers)
        assert refused.status_code == 400 and "'k-gone'" in refused.json()["error"]

        assert (await http.post("/decode", content="[", headers=json_headers)).status_code == 400
        assert (await http.post("/decode", content="{}")).status_code == 415
        assert (await http.get("/decode")).status_code == 405
        assert (await http.get("/nope")).status_code == 404
        assert (await http.get("/health")).json() == {"status": "ok"}

        # /encode, then /decode, gives back what went in.
        plain = '{"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "IngiCg=="}]}'
        encoded = await http.post("/encode", content=plain, headers=json_headers)
        assert base64.b64decode(encoded.json()["payloads"][0]["metadata"]["encoding"]) == ENCODING
        decoded = await http.post("/decode", content=encoded.content, headers=json_headers)
        assert decoded.json() == json.loads(plain)


async def test_codec_server_runs_as_a_module_and_stops_on_sigterm() -> None:
    port = free_port()
    env = {
        **os.environ,
        "AGENT_ENCRYPTION_KEYS": KEYS,
        "AGENT_CODEC_HOST": "127.0.0.1",
        "AGENT_CODEC_PORT": str(port),
        "AGENT_LOG_FORMAT": "text",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "durable_agent.codec_server",
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(timeout=2, trust_env=False) as http:

            async def health() -> int:
                try:
                    return (await http.get(f"http://127.0.0.1:{port}/health")).status_code
                except httpx.TransportError:
                    return 0

            await eventually(health, until=lambda status: status == 200, timeout=20)
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, output.decode()
    assert "encrypting with key 'k-new'" in output.decode()
    assert KEYS.split(",")[0].partition(":")[2] not in output.decode()


async def test_codec_server_refuses_bad_keys_without_echoing_them() -> None:
    bad = "k1:" + base64.b64encode(b"twenty-byte-key-oops").decode()
    env = {**os.environ, "AGENT_ENCRYPTION_KEYS": bad, "AGENT_CODEC_PORT": str(free_port())}
    code, out, err = await run_command(
        sys.executable, "-m", "durable_agent.codec_server", env=env, timeout=30
    )
    assert code == 1 and "encryption_keys" in err and "entry 1: the key has 20 bytes" in err
    assert bad.partition(":")[2] not in err + out


def base64_forms(text: str) -> list[bytes]:
    """``text`` as it reads inside base64 at each of the three alignments (a stream
    item is stored as the base64 of its serialized payload, inside the publish signal's
    JSON): the characters that depend on ``text`` alone."""
    forms = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + text.encode()).rstrip(b"=")
        start = -(-8 * shift // 6)
        end = 8 * (shift + len(text.encode())) // 6
        forms.append(encoded[start:end])
    return forms


def stored_in_base64(server: DevServer, text: str) -> bool:
    stored = stored_bytes(server)
    return any(form in stored for form in base64_forms(text))


async def stream_a_turn(client: Client, queue: str, text: str) -> str:
    """A conversation that streams its turns, read by the ``stream`` query after the
    first, then continues as new after the second (so the stream is carried in a run's
    input too); the text of the first turn's deltas."""
    conversation = await start_conversation(
        client,
        ConversationInput(
            tenant=f"tenant-{uuid.uuid4().hex[:8]}", stream=True, continue_as_new_after_turns=2
        ),
        task_queue=queue,
    )
    async with asyncio.timeout(60):
        await conversation.send_message(text)
        page = await conversation.handle.query(
            QUERY_STREAM, StreamRequest(), result_type=StreamPage
        )
        await conversation.send_message("What is 6 * 7?")
        await conversation.end()
        await conversation.result()
    return "".join(i.delta.text for i in page.items if i.delta is not None)


async def test_streamed_model_output_is_stored_encrypted(
    client: Client, temporal_server: DevServer, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    secret, in_clear = _canary("streamed"), _canary("streamed-control")
    settings = isolated_settings(
        tmp_path, tool_server, temporal_server, encryption_keys=KEYS, offline_stream_pace_seconds=0
    )
    encrypting = await connect_with(settings)
    async with conversation_worker(encrypting, settings) as queue:
        streamed = await stream_a_turn(encrypting, queue, f"Search the web for {secret}")
    assert secret in streamed  # it went through the stream (and came back decrypted)

    plain_settings = isolated_settings(
        tmp_path / "plain", tool_server, temporal_server, offline_stream_pace_seconds=0
    )
    async with conversation_worker(client, plain_settings) as queue:
        control = await stream_a_turn(client, queue, f"Search the web for {in_clear}")
    assert in_clear in control

    # Without the codec, the streamed text is in the database (in the publish signals,
    # as base64, and in the tail a call's result carries); with it, in no form at all.
    async def control_stored() -> bool:
        return stored_in_base64(temporal_server, in_clear) or await stored(
            temporal_server, in_clear
        )

    await eventually(control_stored, timeout=10)
    assert not stored_in_base64(temporal_server, secret)
    assert not await stored(temporal_server, secret)
