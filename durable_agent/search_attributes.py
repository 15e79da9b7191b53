"""Custom search attributes a conversation keeps up to date, so runs can be filtered
in the Temporal UI (``AgentTenant = "acme" and AgentCostUsd > 1``) and with
``temporal workflow list --query``.

A server must have them registered (``make demo``/``make server``, the test suite and
the docker-compose stack do); upserting an unregistered one would fail every workflow
task, so conversations only upsert when their start input says the server has them.
"""

from __future__ import annotations

from decimal import Decimal

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

TENANT = SearchAttributeKey.for_keyword("AgentTenant")
STATUS = SearchAttributeKey.for_keyword("AgentStatus")
"""``idle``/``thinking``/``running_tools``/``ended``, or the last turn's non-ok status."""
TURNS = SearchAttributeKey.for_int("AgentTurns")
TOKENS = SearchAttributeKey.for_int("AgentTokens")
COST_USD = SearchAttributeKey.for_float("AgentCostUsd")

ALL: dict[str, str] = {
    TENANT.name: "Keyword",
    STATUS.name: "Keyword",
    TURNS.name: "Int",
    TOKENS.name: "Int",
    COST_USD.name: "Double",
}
"""Name → type, as ``temporal operator search-attribute create`` and
``temporal server start-dev --search-attribute`` take them."""


def dev_server_args() -> list[str]:
    """``--search-attribute Name=Type`` flags registering them on a dev server."""
    return [arg for name, kind in ALL.items() for arg in ("--search-attribute", f"{name}={kind}")]


Values = tuple[str, str, int, int, Decimal]
"""A conversation's values of them: tenant, status, turns, tokens, cost."""


def hold_back(before: Values | None, values: Values, since: float, interval: float) -> float:
    """Seconds to hold ``values`` back from an upsert, 0 to upsert now. ``before`` is
    what was upserted last (``None``: unknown), ``since`` how long ago (``inf`` if not
    by this run), ``interval`` the least time between two upserts of the counters.

    A change of tenant or status goes at once, with the counters. A change of the
    counters alone (turns, tokens, cost) goes at once if the last upsert is at least
    ``interval`` old, else when it will be: each upsert is a history event and a write
    to the server's visibility store (a billed action on Temporal Cloud), the costliest
    part of a turn for the server (``make bench``: ~15 % of its CPU per turn at 200
    conversations). So a conversation upserts its counters about once per ``interval``
    while its status stays the same, however fast its turns (a new run's first change,
    or a timer started before a status change, may come sooner)."""
    if before is None or values[:2] != before[:2] or values == before:
        return 0.0
    wait = interval - since
    return wait if wait >= MIN_HOLD_SECONDS else 0.0


MIN_HOLD_SECONDS = 0.001
"""A shorter wait upserts at once: not worth a timer, and a timer's duration must be
positive however it is rounded."""


def at_start(tenant: str) -> TypedSearchAttributes:
    """What a new conversation shows before its first turn, as its start request sets it."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(TENANT, tenant),
            SearchAttributePair(STATUS, "idle"),
            SearchAttributePair(TURNS, 0),
            SearchAttributePair(TOKENS, 0),
            SearchAttributePair(COST_USD, 0.0),
        ]
    )


def values_of(attributes: TypedSearchAttributes) -> Values | None:
    """The values a run started with (``at_start``), if it started with all of them."""
    tenant, status = attributes.get(TENANT), attributes.get(STATUS)
    turns, tokens, usd = attributes.get(TURNS), attributes.get(TOKENS), attributes.get(COST_USD)
    if tenant is None or status is None or turns is None or tokens is None or usd is None:
        return None
    return (tenant, status, turns, tokens, Decimal(str(usd)))
