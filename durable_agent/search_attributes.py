"""Custom search attributes a conversation keeps up to date, so runs can be filtered
in the Temporal UI (``AgentTenant = "acme" and AgentCostUsd > 1``) and with
``temporal workflow list --query``.

A server must have them registered (``make demo``/``make server``, the test suite and
the docker-compose stack do); upserting an unregistered one would fail every workflow
task, so conversations only upsert when their start input says the server has them.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

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
