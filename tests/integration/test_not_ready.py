"""A conversation whose workflow task keeps timing out (a worker killed while holding it,
and again) is refused by Temporal: from the task's third attempt the server answers
updates and queries at once with ``FAILED_PRECONDITION`` "... Workflow Task in failed
state". The client rides through it while it lasts (retrying under one update id, so the
message is sent once), and gives up with ``ConversationUnavailable`` after
``not_ready_seconds`` having sent nothing.

Here the dead workers are two raw polls that take the workflow task and never answer it,
on a conversation started with a 2 s task timeout (production's is 10 s)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import PollWorkflowTaskQueueRequest
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowUpdateInput,
    WorkflowUpdateHandle,
)
from temporalio.service import RPCError

from durable_agent.client import (
    Conversation,
    ConversationUnavailable,
    connect,
    conversation_not_ready,
    get_conversation,
)
from durable_agent.config import Settings
from durable_agent.contract import WORKFLOW_TYPE, ConversationInput, Reply
from durable_agent.devserver import DevServer
from tests.helpers import eventually, running_worker


class _CountUpdates(Interceptor):
    """Counts the update requests this client sends, by update id."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        counts = self.sent

        class Outbound(OutboundInterceptor):
            async def start_workflow_update(
                self, input: StartWorkflowUpdateInput
            ) -> WorkflowUpdateHandle[Any]:
                counts[input.update_id or ""] += 1
                return await super().start_workflow_update(input)

        return Outbound(next)


async def _hold_and_drop(client: Client, task_queue: str) -> None:
    """Take the next workflow task of ``task_queue`` as a worker would, and never answer:
    the task times out, as when its worker is killed."""
    await client.workflow_service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            identity="a worker about to be killed",
        )
    )


async def _refused(conversation: Conversation) -> bool:
    try:
        await conversation.handle.query("status", rpc_timeout=timedelta(seconds=2))
    except RPCError as e:
        return conversation_not_ready(e)
    return False


async def test_a_message_rides_through_a_workflow_task_in_failed_state(
    temporal_server: DevServer, settings: Settings
) -> None:
    counting = _CountUpdates()
    client = await connect(temporal_server.address, interceptors=[counting])
    task_queue = f"not-ready-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        ConversationInput(),
        id=f"conversation-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue,
        task_timeout=timedelta(seconds=2),
    )
    conversation = get_conversation(client, handle.id)
    for _ in range(2):  # attempts 1 and 2 of its first workflow task time out
        await _hold_and_drop(client, task_queue)
    await eventually(lambda: _refused(conversation), timeout=30)

    impatient = Conversation(conversation.handle, not_ready_seconds=0.5)
    try:
        await impatient.send_message("never sent")
        raise AssertionError("a conversation refusing updates answered")
    except ConversationUnavailable as e:
        assert "nothing was sent" in str(e)

    sending = asyncio.ensure_future(conversation.send_message("What is 6 * 7?"))
    # At least one refusal has been retried before a worker comes back.
    await eventually(lambda: _retried(counting.sent, exclude=1), timeout=30)
    assert not sending.done()
    async with running_worker(client, settings, task_queue):
        reply: Reply = await asyncio.wait_for(sending, 60)
        assert "42" in reply.text and reply.turn == 1
        status = await conversation.status()
        transcript = (await conversation.transcript()).model_dump_json()
    assert status.turns == 1
    assert transcript.count("What is 6 * 7?") == 1
    assert "never sent" not in transcript
    # Two messages, two update ids: the impatient one's, and the one sent repeatedly.
    assert len(counting.sent) == 2 and max(counting.sent.values()) >= 2


async def _retried(sent: Counter[str], *, exclude: int) -> bool:
    """Whether the newest update id has been sent more than once (the first ``exclude``
    ids belong to earlier messages)."""
    ids = list(sent)
    return len(ids) > exclude and sent[ids[-1]] >= 2
