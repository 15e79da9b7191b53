"""Which model-call failures are worth retrying, and when.

Pure decision logic (no Temporal, no HTTP client): the model activity describes a
failure (an HTTP status with its error type and ``retry-after`` header, or a transport
problem) and gets back a ``Classification`` it turns into an ``ApplicationError``.
Temporal's retry policy then does the waiting, so every attempt is visible in history.

    retryable       429 rate limited, 529 / overloaded_error, 408, 409, 5xx,
                    connection errors, timeouts, streams cut mid-response
    non-retryable   400, 404, 413, 422 (ModelRequestInvalid); 401, 403 (ModelAuthError)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

RATE_LIMITED = "ModelRateLimited"
OVERLOADED = "ModelOverloaded"
SERVER_ERROR = "ModelServerError"
CONNECTION_ERROR = "ModelConnectionError"
TIMEOUT = "ModelTimeout"
REQUEST_INVALID = "ModelRequestInvalid"
AUTH_ERROR = "ModelAuthError"

NON_RETRYABLE_TYPES = (REQUEST_INVALID, AUTH_ERROR)
MAX_RETRY_AFTER_SECONDS = 300.0
"""A server asking for a longer pause than this gets this; the schedule-to-close timeout
still bounds the whole call."""

_FIXES = {
    400: "the request is invalid; check the model name, max_tokens and message shapes",
    401: "authentication failed; check ANTHROPIC_API_KEY",
    403: "permission denied; the API key may not use this model or feature",
    404: "not found; check the model name and the API base URL",
    413: "the request is too large; shorten the conversation or the tool results",
    422: "the request could not be processed; check its parameters",
}


@dataclass(frozen=True)
class Classification:
    """How to fail an attempt."""

    error_type: str
    """``ApplicationError.type``; listed in the retry policy's non-retryable types if needed."""
    retryable: bool
    message: str
    next_retry_delay: float | None = None
    """Seconds the server asked us to wait (``retry-after``), if it did."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``retry-after`` header (delta-seconds, fractions allowed), capped.
    HTTP-dates are ignored: they would need a clock, and the backoff covers them."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_SECONDS)


def classify_status(
    status: int, *, error_type: str | None = None, retry_after: str | None = None, detail: str = ""
) -> Classification:
    """Classify an error response (or an in-stream ``error`` event, whose HTTP status
    was 200 and whose ``error_type`` says what happened)."""
    suffix = f": {detail}" if detail else ""
    delay = parse_retry_after(retry_after)
    if status == 429 or error_type == "rate_limit_error":
        return Classification(RATE_LIMITED, True, f"rate limited (429){suffix}", delay)
    if status == 529 or error_type == "overloaded_error":
        return Classification(OVERLOADED, True, f"overloaded ({status}){suffix}", delay)
    if status in (401, 403):
        return Classification(AUTH_ERROR, False, f"{_FIXES[status]} ({status}){suffix}")
    if status in _FIXES:
        return Classification(REQUEST_INVALID, False, f"{_FIXES[status]} ({status}){suffix}")
    if status in (408, 409) or status >= 500 or error_type == "api_error":
        return Classification(SERVER_ERROR, True, f"server error ({status}){suffix}", delay)
    return Classification(
        REQUEST_INVALID, False, f"unexpected response status {status}{suffix}", None
    )


def classify_transport(
    kind: Literal["connection", "timeout", "stream_cut"], detail: str = ""
) -> Classification:
    """Classify a failure with no HTTP response: all are worth another attempt."""
    suffix = f": {detail}" if detail else ""
    if kind == "timeout":
        return Classification(TIMEOUT, True, f"the model call timed out{suffix}")
    if kind == "stream_cut":
        return Classification(CONNECTION_ERROR, True, f"the response stream was cut{suffix}")
    return Classification(CONNECTION_ERROR, True, f"could not reach the model API{suffix}")
