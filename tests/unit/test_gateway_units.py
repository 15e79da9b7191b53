"""The gateway's pure parts: API keys and tenants, rate limits, problem documents, and
the ``new-key`` command. No HTTP server and no Temporal (tests/integration has those)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError
from temporalio.service import RPCError, RPCStatusCode

from durable_agent.config import Settings
from durable_agent.contract import Reply, TurnStatus
from durable_agent.gateway import problems
from durable_agent.gateway.__main__ import main
from durable_agent.gateway.calls import rpc_problem
from durable_agent.gateway.keys import (
    KEY_PREFIX,
    TENANT_PATTERN,
    GatewayKey,
    KeyRing,
    RateLimits,
    TokenBucket,
    conversation_id,
    hash_key,
    new_key,
    owns,
)
from durable_agent.gateway.problems import ProblemError, field_errors, reply_problem

HEX64 = "a" * 64


def entry(tenant: str = "acme", key: str = "k", **extra: object) -> GatewayKey:
    return GatewayKey(name=f"{tenant}-svc", tenant=tenant, sha256=hash_key(key), **extra)


# --- keys ------------------------------------------------------------------------------


def test_hash_key_is_sha256_hex() -> None:
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    key = new_key()
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", hash_key(key))


def test_new_keys_are_prefixed_and_carry_256_random_bits() -> None:
    keys = [new_key() for _ in range(200)]
    assert len(set(keys)) == len(keys)
    for key in keys:
        assert key.startswith(KEY_PREFIX)
        body = key.removeprefix(KEY_PREFIX)
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", body), key  # URL-safe, no padding
        assert len(base64.urlsafe_b64decode(body + "=")) == 32


@pytest.mark.parametrize(
    "tenant", ["acme", "a", "acme-2", "acme_eu", "0day", "x" * 64], ids=lambda t: t[:8]
)
def test_tenants_that_are_accepted(tenant: str) -> None:
    assert GatewayKey(name="svc", tenant=tenant, sha256=HEX64).tenant == tenant


@pytest.mark.parametrize(
    "tenant", ["acme.eu", "Acme", "ACME", "", "-acme", "_acme", "ac me", "acmé", "x" * 65]
)
def test_tenants_that_are_refused(tenant: str) -> None:
    """No dots (ids are ``<tenant>.<id>``), lower case only, at most 64 characters."""
    with pytest.raises(ValidationError, match="tenant"):
        GatewayKey(name="svc", tenant=tenant, sha256=HEX64)
    assert not re.match(TENANT_PATTERN, tenant)


@pytest.mark.parametrize("sha256", ["a" * 63, "a" * 65, "g" * 64, "", "a" * 63 + " "])
def test_hashes_must_be_64_hex_digits(sha256: str) -> None:
    with pytest.raises(ValidationError, match="sha256"):
        GatewayKey(name="svc", tenant="acme", sha256=sha256)


def test_upper_case_hashes_are_normalised() -> None:
    digest = hash_key("k")
    assert GatewayKey(name="svc", tenant="acme", sha256=digest.upper()).sha256 == digest


def test_key_entries_refuse_unknown_fields_and_bad_limits() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        GatewayKey.model_validate({"name": "svc", "tenant": "acme", "sha256": HEX64, "key": "x"})
    for limits in ({"requests_per_second": 0}, {"burst": 0}, {"name": ""}):
        with pytest.raises(ValidationError):
            GatewayKey.model_validate({"name": "svc", "tenant": "acme", "sha256": HEX64, **limits})


def test_key_ring_finds_the_presented_key_and_nothing_else() -> None:
    acme, globex = entry("acme", "key-a"), entry("globex", "key-g")
    ring = KeyRing([acme, globex])
    assert len(ring) == 2
    assert ring.find("key-a") is acme
    assert ring.find("key-g") is globex
    for wrong in ("key-b", "", "key-a ", "KEY-A", acme.sha256):  # the hash is not a key
        assert ring.find(wrong) is None, wrong
    assert KeyRing([]).find("key-a") is None


def test_key_ring_refuses_the_same_key_twice() -> None:
    first = entry("acme", "shared")
    again = GatewayKey(name="other", tenant="globex", sha256=first.sha256.upper())
    with pytest.raises(ValueError, match="same key twice"):
        KeyRing([first, again])


# --- rate limits -----------------------------------------------------------------------


def test_bucket_grants_a_burst_then_says_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.5)  # one token at 2/s
    assert bucket.take(100.25) == pytest.approx(0.25)  # half a token came back
    assert bucket.take(100.5) == 0.0


def test_bucket_refills_over_time_but_never_beyond_the_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=2)
    assert bucket.take(10.0) == bucket.take(10.0) == 0.0
    assert bucket.take(11.0) == 0.0  # one second: one token
    assert bucket.take(11.0) == pytest.approx(1.0)
    # A long idle time refills the burst, no more.
    assert [bucket.take(1000.0) for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=0.1, max_value=50),
    st.integers(min_value=1, max_value=10),
    st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=80),
)
def test_bucket_grants_at_most_burst_plus_rate_times_elapsed(
    rate: float, burst: int, gaps: list[float]
) -> None:
    bucket = TokenBucket(rate=rate, burst=burst)
    now, granted = 1.0, 0
    for gap in gaps:
        now += gap
        wait = bucket.take(now)
        assert wait >= 0
        if wait == 0:
            granted += 1
    assert granted <= burst + rate * (now - 1.0 - gaps[0]) + 1e-9


def test_rate_limits_use_the_keys_own_rate_and_burst_over_the_default() -> None:
    limits = RateLimits(rate=10.0, burst=5)
    default, slow = entry("acme", "a"), entry("globex", "g", requests_per_second=1, burst=1)
    assert [limits.take(default, 50.0) for _ in range(5)] == [0.0] * 5
    assert limits.take(default, 50.0) == pytest.approx(0.1)
    assert limits.take(slow, 50.0) == 0.0  # its own bucket: the other's is empty
    assert limits.take(slow, 50.0) == pytest.approx(1.0)


def test_rate_limits_keep_at_most_max_keys_buckets() -> None:
    limits = RateLimits(rate=1.0, burst=1, max_keys=10)
    keys = [entry("acme", f"k{n}") for n in range(100)]
    for key in keys:
        assert limits.take(key, 5.0) == 0.0
    assert len(limits._buckets) <= 10
    # Forgetting a bucket only ever admits more: the latest key is still limited.
    assert limits.take(keys[-1], 5.0) == pytest.approx(1.0)


# --- tenants' conversation ids ---------------------------------------------------------


def test_a_tenant_owns_its_own_conversation_ids() -> None:
    assert conversation_id("acme", "conversation-1") == "acme.conversation-1"
    assert owns("acme", conversation_id("acme", "conversation-1"))
    assert owns("acme", "acme.A_b-9")


@pytest.mark.parametrize(
    "conversation",
    [
        "globex.conversation-1",  # another tenant's
        "acme2.conversation-1",  # a tenant whose name starts with "acme"
        "acm.conversation-1",
        "ACME.conversation-1",
        "acme.",  # no local part
        "acme",
        ".acme.x",
        "acme.x/y",
        "acme.x.y",
        "acme.x y",
        "acme..x",
        "acme.x\n",  # a trailing newline (a `$` anchor would let it through)
        "acme.../globex.x",
        "acme." + "x" * 101,
        "",
    ],
)
def test_a_tenant_owns_nothing_else(conversation: str) -> None:
    assert not owns("acme", conversation)


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(TENANT_PATTERN, fullmatch=True),
    st.from_regex(TENANT_PATTERN, fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_-]{1,100}", fullmatch=True),
)
def test_ids_belong_to_their_tenant_alone(tenant: str, other: str, local: str) -> None:
    assert owns(tenant, conversation_id(tenant, local))
    assert owns(other, conversation_id(tenant, local)) == (other == tenant)


# --- problems --------------------------------------------------------------------------


def reply(status: TurnStatus, **fields: object) -> Reply:
    return Reply.model_validate({"text": "stopped", "turn": 3, "status": status, **fields})


@pytest.mark.parametrize("scope", ["conversation", "turn"])
def test_a_spent_conversation_budget_is_402_without_retry_after(scope: str) -> None:
    answer = reply("budget_exceeded", budget_scope=scope, detail="spent 1.00 of 1.00 USD")
    error = reply_problem(answer, "acme.c1")
    assert error is not None
    assert error.kind is problems.BUDGET_EXCEEDED and error.kind.status == 402
    assert "Retry-After" not in error.response_headers()
    document = error.document("/v1/conversations/acme.c1/messages")
    assert document.type == "/problems/budget-exceeded" and document.status == 402
    assert document.detail == "spent 1.00 of 1.00 USD"
    assert document.conversation_id == "acme.c1" and document.reply == answer
    assert document.retry_after_seconds is None


def test_a_spent_tenant_budget_is_429_with_retry_after_rounded_up() -> None:
    answer = reply(
        "budget_exceeded", budget_scope="tenant", retry_after_seconds=3600.2, cost_usd=Decimal(0)
    )
    error = reply_problem(answer, "acme.c1")
    assert error is not None
    assert error.kind is problems.TENANT_BUDGET_EXCEEDED and error.kind.status == 429
    assert error.response_headers()["Retry-After"] == "3601"
    document = error.document(None)
    assert document.type == "/problems/tenant-budget-exceeded"
    assert document.retry_after_seconds == 3600.2 and document.detail == "a budget ran out"


@pytest.mark.parametrize(("after", "header"), [(2.5, "3"), (0.2, "1"), (None, "1")])
def test_a_rate_limited_turn_is_429_with_retry_after(after: float | None, header: str) -> None:
    error = reply_problem(reply("rate_limited", retry_after_seconds=after), "acme.c1")
    assert error is not None
    assert error.kind is problems.RATE_LIMITED and error.kind.status == 429
    assert error.response_headers()["Retry-After"] == header


@pytest.mark.parametrize("status", ["ok", "degraded", "timeout", "max_model_calls", "model_error"])
def test_other_turns_are_answers_not_problems(status: TurnStatus) -> None:
    assert reply_problem(reply(status), "acme.c1") is None


@pytest.mark.parametrize(("after", "header"), [(0, "1"), (0.001, "1"), (1.0, "1"), (59.1, "60")])
def test_retry_after_is_whole_seconds_and_at_least_one(after: float, header: str) -> None:
    error = ProblemError(problems.RATE_LIMITED, "slow down", retry_after_seconds=after)
    assert error.response_headers() == {"Retry-After": header}


def test_unauthorized_asks_for_a_bearer_key_and_nothing_else_does() -> None:
    unauthorized = ProblemError(problems.UNAUTHORIZED, "no key").response_headers()
    assert unauthorized["WWW-Authenticate"].startswith("Bearer ")
    for kind in problems.CATALOG:
        if kind is not problems.UNAUTHORIZED:
            assert "WWW-Authenticate" not in ProblemError(kind, "x").response_headers()


def test_extra_headers_are_kept_and_not_shared() -> None:
    error = ProblemError(problems.NOT_FOUND, "gone", headers={"Location": "/v1/x"})
    headers = error.response_headers()
    assert headers == {"Location": "/v1/x"}
    headers["Location"] = "/elsewhere"
    assert error.response_headers() == {"Location": "/v1/x"}


def test_the_catalog_lists_every_problem_type_once_with_an_error_status() -> None:
    slugs = [kind.slug for kind in problems.CATALOG]
    assert len(set(slugs)) == len(slugs), slugs
    for kind in problems.CATALOG:
        assert 400 <= kind.status < 600, kind
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", kind.slug), kind.slug
        assert kind.uri == f"/problems/{kind.slug}"
        assert kind.title and kind.description
    defined = [v for v in vars(problems).values() if isinstance(v, problems.ProblemType)]
    assert {id(kind) for kind in defined} == {id(kind) for kind in problems.CATALOG}


def test_field_errors_say_where_and_what_but_not_the_value() -> None:
    class Body(BaseModel):
        text: str = Field(max_length=3)
        wait: bool

    with pytest.raises(ValidationError) as raised:
        Body.model_validate({"text": "sk-secret-value", "wait": "maybe"})
    found = field_errors([dict(e) for e in raised.value.errors()])
    assert [e.location for e in found] == ["text", "wait"]
    assert all("sk-secret" not in e.model_dump_json() for e in found)
    nested = field_errors([{"loc": ("body", "tools", 0), "msg": "unknown tool"}])
    assert nested[0].location == "body.tools.0" and nested[0].message == "unknown tool"


# --- `python -m durable_agent.gateway new-key` -----------------------------------------


def test_new_key_prints_a_key_and_the_entry_that_admits_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["new-key", "--tenant", "acme", "--name", "ci"]) == 0
    out = capsys.readouterr().out.splitlines()
    key = out[0].rsplit(" ", 1)[-1]
    assert key.startswith(KEY_PREFIX) and "(shown once" in out[0]
    printed = GatewayKey.model_validate(json.loads(out[-1]))
    assert (printed.tenant, printed.name) == ("acme", "ci")
    assert printed.sha256 == hash_key(key)
    assert key not in out[-1]  # only the hash goes into the configuration
    # The entry, in a JSON list, is what AGENT_GATEWAY_KEYS takes.
    monkeypatch.setenv("AGENT_GATEWAY_KEYS", f"[{out[-1]}]")
    configured = Settings(_env_file=None).gateway_keys
    assert KeyRing(configured).find(key) == printed


def test_new_key_refuses_a_bad_tenant_and_prints_no_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["new-key", "--tenant", "Acme.Corp", "--name", "ci"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: tenant:") and "pattern" in err
    assert len(err.splitlines()) == 1  # one clear line, no traceback


def test_new_key_needs_a_tenant(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["new-key", "--name", "ci"])
    assert exited.value.code == 2
    assert "--tenant" in capsys.readouterr().err


@pytest.mark.parametrize("call", ["perform workflow execution update", "query workflow"])
def test_a_conversation_whose_workflow_task_keeps_failing_is_503_with_retry_after(
    call: str,
) -> None:
    refusal = RPCError(
        f"Unable to {call} due to Workflow Task in failed state.",
        RPCStatusCode.FAILED_PRECONDITION,
        b"",
    )
    error = rpc_problem(refusal, "conversation-1")
    assert error.kind is problems.CONVERSATION_UNAVAILABLE and error.kind.status == 503
    assert error.response_headers()["Retry-After"] == "2"
    # Another failed precondition is not this one.
    other = RPCError("something else", RPCStatusCode.FAILED_PRECONDITION, b"")
    assert rpc_problem(other, "conversation-1").kind is problems.INTERNAL
