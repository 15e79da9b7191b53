"""The two ways the load test talks to conversations, behind one small interface.

* ``ClientDriver``: the Temporal client API (``durable_agent.client``):
  ``start_conversation`` and the ``send_message`` update;
* ``GatewayDriver``: the HTTP gateway (``python -m durable_agent.gateway``):
  ``POST /v1/conversations`` and ``POST /v1/conversations/{id}/messages`` with a bearer
  key per tenant, through ``httpx.AsyncClient``.

A ``Session`` sends one message and returns the ``Reply``, or raises ``SendFailed``
naming what went wrong the way a report counts it (``http 429``,
``MessageRejected:InvalidMessage``, ``RPCError``) and, when the other side said so,
how long to wait before the next message (``Retry-After``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import pydantic
from temporalio.client import (
    Client,
)

from bench.processes import ROOT, stop
from durable_agent.client import (
    SEND_FAILURES,
    Conversation,
    MessageRejected,
    start_conversation,
)
from durable_agent.contract import ConversationInput, Reply
from durable_agent.devserver import DevServer, free_port

GATEWAY_MODULE = "durable_agent.gateway"
PROBLEM_JSON = "application/problem+json"
MAX_POLLS = 10
"""Polls of a message's ``Location`` after a 202 before giving up on its reply."""
POLL_WAIT = 30.0
"""Seconds each poll asks the gateway to wait for the reply."""


class SendFailed(Exception):
    """A message got no reply. ``kind`` is how the report counts it; ``retry_after``
    is the seconds the other side asked to wait (None: it did not say)."""

    def __init__(self, kind: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.retry_after = retry_after


class Session(Protocol):
    """One conversation as the load test drives it."""

    @property
    def id(self) -> str:
        """The conversation's workflow id (the no-lost-turn check reads it directly)."""
        ...

    async def send(self, text: str) -> Reply:
        """Send ``text``, return its reply; raise ``SendFailed`` when none comes."""
        ...


class Driver(Protocol):
    """Opens conversations of a tenant."""

    name: str

    async def open(self, tenant: int) -> Session:
        """A new conversation of the run's ``tenant``-th tenant."""
        ...


# --- the Temporal client ---------------------------------------------------------------


@dataclass
class ClientSession:
    """A conversation through ``durable_agent.client``."""

    conversation: Conversation

    @property
    def id(self) -> str:
        return self.conversation.id

    async def send(self, text: str) -> Reply:
        try:
            return await self.conversation.send_message(text)
        except MessageRejected as e:
            raise SendFailed(f"MessageRejected:{e.type}", e.reason) from e
        except SEND_FAILURES as e:
            raise SendFailed(type(e).__name__, str(e)[:200]) from e


class ClientDriver:
    """Conversations started and driven through the Temporal client API; the run's
    ``i``-th tenant is ``tenants[i]``."""

    name = "client"

    def __init__(self, client: Client, task_queue: str, tenants: Sequence[str]) -> None:
        self.client = client
        self.task_queue = task_queue
        self.tenants = list(tenants)

    async def open(self, tenant: int) -> Session:
        conversation = await start_conversation(
            self.client,
            ConversationInput(tenant=self.tenants[tenant]),
            task_queue=self.task_queue,
        )
        return ClientSession(conversation)


# --- the HTTP gateway ------------------------------------------------------------------


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds form), or None when absent or a date."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def problem_kind(response: httpx.Response) -> str:
    """``http <status>``, plus the problem's ``type`` (its last path segment) when the
    body is ``application/problem+json`` with one."""
    kind = f"http {response.status_code}"
    if _is_problem(response):
        try:
            problem = response.json()
        except ValueError:
            return kind
        if isinstance(problem, dict) and isinstance(problem.get("type"), str):
            name = problem["type"].rstrip("/").rsplit("/", 1)[-1]
            if name and name != "about:blank":
                kind += f" {name}"
    return kind


@dataclass
class GatewaySession:
    """A conversation through the gateway's HTTP API.

    ``POST …/messages`` answers 200 with the reply; 202 with a ``Location`` when the
    turn outlasts the gateway's wait (then the reply is fetched from there); or a
    problem document — one that carries a ``reply`` (a turn that ended over a budget or
    the tenant's rate limit) still is the turn's reply."""

    conversation_id: str
    key: str
    http: httpx.AsyncClient
    polls: int = MAX_POLLS

    @property
    def id(self) -> str:
        return self.conversation_id

    async def send(self, text: str) -> Reply:
        response = await self._request(
            "POST", f"/v1/conversations/{self.conversation_id}/messages", {"text": text}
        )
        for _ in range(self.polls):
            if response.status_code != 202:
                return _reply_of(response)
            location = response.headers.get("location")
            if not location:
                raise SendFailed("http 202", "no Location to poll")
            response = await self._request("GET", location, params={"wait": POLL_WAIT})
        raise SendFailed("http 202", f"no reply after {self.polls} polls")

    async def _request(
        self,
        method: str,
        url: str,
        body: object = None,
        params: Mapping[str, float] | None = None,
    ) -> httpx.Response:
        try:
            return await self.http.request(
                method,
                url,
                json=body,
                params=params,
                headers={"authorization": f"Bearer {self.key}"},
            )
        except httpx.TimeoutException as e:
            raise SendFailed("http timeout", str(e)) from e
        except httpx.HTTPError as e:
            raise SendFailed(type(e).__name__, str(e)) from e


def _reply_of(response: httpx.Response) -> Reply:
    """The reply in a 200, or in a problem document that carries one; else ``SendFailed``."""
    try:
        if response.status_code == 200:
            return Reply.model_validate_json(response.content)
        document = response.json() if _is_problem(response) else None
        if isinstance(document, dict) and isinstance(document.get("reply"), dict):
            return Reply.model_validate(document["reply"])
    except (ValueError, pydantic.ValidationError) as e:
        raise SendFailed("invalid reply", str(e)[:200]) from e
    wait = retry_after(response.headers.get("retry-after"))
    raise SendFailed(problem_kind(response), response.text[:200], wait)


def _is_problem(response: httpx.Response) -> bool:
    return str(response.headers.get("content-type", "")).startswith(PROBLEM_JSON)


class GatewayDriver:
    """Conversations created and driven through the HTTP gateway. ``keys[i]`` is the
    bearer key of the run's ``i``-th tenant."""

    name = "gateway"

    def __init__(self, http: httpx.AsyncClient, keys: Sequence[str]) -> None:
        self.http = http
        self.keys = list(keys)

    async def open(self, tenant: int) -> Session:
        key = self.keys[tenant]
        try:
            response = await self.http.post(
                "/v1/conversations", json={}, headers={"authorization": f"Bearer {key}"}
            )
        except httpx.HTTPError as e:
            raise RuntimeError(f"gateway: POST /v1/conversations failed: {e!r}") from e
        if response.status_code != 201:
            raise RuntimeError(
                f"gateway: POST /v1/conversations answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        return GatewaySession(str(response.json()["id"]), key, self.http)


def gateway_keys(tenants: Sequence[str]) -> tuple[list[str], str]:
    """A bearer key per tenant, and the ``AGENT_GATEWAY_KEYS`` value that lists each
    key's SHA-256 (hex) with its tenant. The keys keep the gateway's default request
    rate (``AGENT_GATEWAY_REQUESTS_PER_SECOND``): 8 conversations a key stay under it,
    and a run past it shows as ``http 429`` errors."""
    keys = [f"load-{secrets.token_urlsafe(24)}" for _ in tenants]
    entries = [
        {
            "name": f"load-{i}",
            "tenant": tenant,
            "sha256": hashlib.sha256(key.encode()).hexdigest(),
        }
        for i, (key, tenant) in enumerate(zip(keys, tenants, strict=True))
    ]
    return keys, json.dumps(entries)


def gateway_available() -> bool:
    """Whether ``durable_agent.gateway`` is installed beside us."""
    return (ROOT / "durable_agent" / "gateway").is_dir() or (
        ROOT / "durable_agent" / "gateway.py"
    ).is_file()


@asynccontextmanager
async def gateway_process(
    server: DevServer,
    task_queue: str,
    governor_queue: str,
    keys_json: str,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> AsyncIterator[str]:
    """``python -m durable_agent.gateway`` on a free loopback port, starting
    conversations on ``task_queue``; yields its base URL once it answers HTTP.
    Stopped with SIGTERM (killed after a grace) on exit."""
    port = free_port()
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "ANTHROPIC_"))
    }
    environment.update(
        {
            "AGENT_TEMPORAL_ADDRESS": server.address,
            "AGENT_TASK_QUEUE": task_queue,
            "AGENT_GOVERNOR_TASK_QUEUE": governor_queue,
            "AGENT_GATEWAY_KEYS": keys_json,
            "AGENT_GATEWAY_HOST": "127.0.0.1",
            "AGENT_GATEWAY_PORT": str(port),
            "AGENT_GATEWAY_METRICS_PORT": "0",
            "AGENT_LOG_LEVEL": "ERROR",
            "AGENT_METRICS_PORT": "0",
            "AGENT_HEALTH_PORT": "0",
            **(env or {}),
        }
    )
    base_url = f"http://127.0.0.1:{port}"
    with log_file.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", GATEWAY_MODULE,
            cwd=ROOT, env=environment, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
        try:
            await _wait_answering(base_url, process, timeout)
            yield base_url
        finally:
            await stop(process)


async def _wait_answering(
    base_url: str, process: asyncio.subprocess.Process, timeout: float
) -> None:
    """Until any HTTP answer comes from ``base_url`` (even 404: it is up)."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as http:
        while asyncio.get_running_loop().time() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"gateway exited with {process.returncode} (see its log)")
            try:
                await http.get("/health/live")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise TimeoutError(f"gateway not answering at {base_url} after {timeout:.0f}s")
