"""A message far over the limit (2.5 MB) is a typed error in well under a second on
every path — the client API, the CLI and the raw Temporal API — and never a
``WorkflowTaskFailed`` in history.

Why the raw path needs the worker's help: the SDK core echoes a rejected update's whole
request in its rejection message, so a >2 MiB message made the worker's own payload
check fail the workflow task (PayloadsTooLarge) every 10 s, and the caller waited ~20 s
for "Workflow Task in failed state". The worker now leaves that check to the server,
which drops the speculative task at once."""

from __future__ import annotations

import sys
import time

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from durable_agent.client import MessageRejected, start_conversation
from durable_agent.contract import (
    INVALID_MESSAGE,
    MAX_MESSAGE_CHARS,
    UPDATE_SEND_MESSAGE,
    ConversationInput,
    UserMessage,
)
from durable_agent.devserver import DevServer
from tests.helpers import history_events, run_command

HUGE = "a" * 2_500_000


async def test_the_client_api_refuses_before_sending(client: Client, task_queue: str) -> None:
    conversation = await start_conversation(client, task_queue=task_queue)
    started = time.monotonic()
    with pytest.raises(MessageRejected) as refused:
        await conversation.send_message(HUGE)
    assert time.monotonic() - started < 1.0
    assert refused.value.type == INVALID_MESSAGE
    assert refused.value.reason == (
        f"message text has {len(HUGE)} characters; the limit is {MAX_MESSAGE_CHARS}"
    )
    with pytest.raises(MessageRejected, match="unpaired surrogate"):
        await conversation.send_message("hi \ud800 there")
    assert (await conversation.send_message("What is 6 * 7?")).turn == 1
    assert "WORKFLOW_TASK_FAILED" not in await history_events(conversation.handle)


async def test_a_policy_limit_below_the_ceiling_is_known_to_the_started_handle(
    client: Client, task_queue: str
) -> None:
    policy = ConversationInput().safety.model_copy(update={"max_message_chars": 10})
    conversation = await start_conversation(
        client, ConversationInput(safety=policy), task_queue=task_queue
    )
    with pytest.raises(MessageRejected, match="the limit is 10"):
        await conversation.send_message("eleven characters")
    assert "UPDATE" not in " ".join(await history_events(conversation.handle))


@pytest.mark.parametrize("size", [2_500_000, 1_000_000])
async def test_the_raw_temporal_api_gets_an_error_at_once_and_history_stays_clean(
    client: Client, task_queue: str, size: int
) -> None:
    conversation = await start_conversation(client, task_queue=task_queue)
    assert (await conversation.send_message("What is 6 * 7?")).turn == 1
    started = time.monotonic()
    with pytest.raises((WorkflowUpdateFailedError, RPCError)) as failed:
        await conversation.handle.execute_update(UPDATE_SEND_MESSAGE, UserMessage(text="a" * size))
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, elapsed
    error = failed.value
    if isinstance(error, WorkflowUpdateFailedError):  # under the server's 2 MiB blob limit
        assert isinstance(error.cause, ApplicationError)
        assert error.cause.type == INVALID_MESSAGE and len(error.cause.message) < 200
    else:  # over it: the server refuses the rejection that echoes the request
        assert isinstance(error, RPCError)
        assert error.status == RPCStatusCode.FAILED_PRECONDITION
        assert "aaaa" not in error.message
    events = await history_events(conversation.handle)
    assert "WORKFLOW_TASK_FAILED" not in events
    assert (await conversation.send_message("And 2 + 2?")).turn == 2
    assert "WORKFLOW_TASK_FAILED" not in await history_events(conversation.handle)


async def test_the_cli_refuses_before_sending(
    temporal_server: DevServer, client: Client, task_queue: str
) -> None:
    conversation = await start_conversation(client, task_queue=task_queue)
    text = "a" * (MAX_MESSAGE_CHARS + 1)  # an argv string may not exceed 128 KiB
    started = time.monotonic()
    code, out, err = await run_command(
        sys.executable, "starter.py", "send", "--server", temporal_server.address,
        "-c", conversation.id, text,
    )  # fmt: skip
    assert code == 1, (out, err)
    assert f"rejected (InvalidMessage): message text has {MAX_MESSAGE_CHARS + 1}" in err
    assert text not in err and time.monotonic() - started < 10
    assert "UPDATE" not in " ".join(await history_events(conversation.handle))
