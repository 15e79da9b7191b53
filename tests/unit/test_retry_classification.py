"""Which model failures retry, and after how long."""

from __future__ import annotations

import pytest

from durable_agent.retry_classification import (
    AUTH_ERROR,
    CONNECTION_ERROR,
    MAX_RETRY_AFTER_SECONDS,
    NON_RETRYABLE_TYPES,
    OVERLOADED,
    RATE_LIMITED,
    REQUEST_INVALID,
    SERVER_ERROR,
    TIMEOUT,
    classify_status,
    classify_transport,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("status", "error_type", "expected"),
    [
        (429, "rate_limit_error", RATE_LIMITED),
        (529, "overloaded_error", OVERLOADED),
        (200, "overloaded_error", OVERLOADED),  # an error event inside a stream
        (500, "api_error", SERVER_ERROR),
        (502, None, SERVER_ERROR),
        (503, None, SERVER_ERROR),
        (504, None, SERVER_ERROR),
        (408, None, SERVER_ERROR),
        (409, None, SERVER_ERROR),
    ],
)
def test_transient_statuses_retry(status: int, error_type: str | None, expected: str) -> None:
    c = classify_status(status, error_type=error_type)
    assert c.retryable and c.error_type == expected
    assert c.error_type not in NON_RETRYABLE_TYPES


@pytest.mark.parametrize(
    ("status", "expected", "fix"),
    [
        (400, REQUEST_INVALID, "check the model name, max_tokens and message shapes"),
        (401, AUTH_ERROR, "check ANTHROPIC_API_KEY"),
        (403, AUTH_ERROR, "may not use this model"),
        (404, REQUEST_INVALID, "check the model name and the API base URL"),
        (413, REQUEST_INVALID, "shorten the conversation"),
        (422, REQUEST_INVALID, "check its parameters"),
        (418, REQUEST_INVALID, "unexpected response status 418"),
    ],
)
def test_client_errors_do_not_retry_and_say_what_to_fix(
    status: int, expected: str, fix: str
) -> None:
    c = classify_status(status, error_type="invalid_request_error", detail="bad field x")
    assert not c.retryable and c.error_type == expected
    assert c.error_type in NON_RETRYABLE_TYPES
    assert fix in c.message and "bad field x" in c.message


def test_retry_after_becomes_the_next_delay() -> None:
    assert classify_status(429, retry_after="7").next_retry_delay == 7.0
    assert classify_status(529, retry_after="0.5").next_retry_delay == 0.5
    assert classify_status(503, retry_after="2").next_retry_delay == 2.0
    assert classify_status(429).next_retry_delay is None
    assert classify_status(400, retry_after="5").next_retry_delay is None


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 1.25 ", 1.25),
        ("0", 0.0),
        ("-1", None),
        ("nan", None),
        ("inf", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ("", None),
        (None, None),
        ("100000", MAX_RETRY_AFTER_SECONDS),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_transport_failures_retry() -> None:
    assert classify_transport("timeout").error_type == TIMEOUT
    assert classify_transport("connection").error_type == CONNECTION_ERROR
    cut = classify_transport("stream_cut", "RemoteProtocolError")
    assert (
        cut.retryable and "stream was cut" in cut.message and "RemoteProtocolError" in cut.message
    )
