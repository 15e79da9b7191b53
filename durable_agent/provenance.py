"""Provenance: which content in the context is untrusted, and what it may not do.

The rule (docs/security.md, "Provenance"): while content someone else wrote is in the
context the model sees, the model may have been steered by it, whether or not the
detector noticed. So from the tool result that brought it in until a person clears it:

- every ``write``/``execute``/``admin`` call waits for approval (or is refused, by
  policy), flagged or not;
- an *outbound* call (its arguments leave the worker, e.g. a search query) waits when
  its arguments carry untrusted text or name a destination no trusted content named
  (the exfiltration guard, ``outbound_reason``);
- a detector flag raises the severity the approver sees, and ``flagged_context="block"``
  refuses such calls outright.

Compaction does not clear it: a summary written from untrusted content is itself
untrusted (it can repeat the instructions in other words).

``Provenance`` (the contract model) is the state: ``record`` adds to it, ``clear`` empties
it, ``gate`` decides a call. No Temporal, no I/O: deterministic inside workflow code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from durable_agent.contract import (
    Clearance,
    Message,
    Permission,
    Provenance,
    SafetyPolicy,
    Severity,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    Trust,
    UntrustedSource,
)
from durable_agent.injection import normalise
from durable_agent.safety import quotes

KEPT = 32
"""Untrusted sources listed at most (the oldest unflagged ones go first); the context
stays untrusted however many there were."""

_HOST = re.compile(r"(?<![\w.-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}(?![\w-])")


@dataclass(frozen=True)
class Gate:
    """What a call must go through before it runs."""

    action: Literal["approve", "block"]
    reason: str
    severity: Severity
    untrusted: list[str] = field(default_factory=list)
    """The untrusted content in the context, described for the approver."""


@dataclass(frozen=True)
class ContextTexts:
    """The context's texts by provenance, for the exfiltration guard."""

    trusted: list[str]
    """The system prompt, user messages, results of trusted tools."""
    untrusted: list[str]
    """Results of untrusted tools (and the compaction summary while the context is
    untrusted)."""


def result_trust(tool: str, trust: Trust, policy: SafetyPolicy) -> Trust:
    """Whether ``tool``'s results are trusted: its spec's ``trust``, unless the policy
    lists it in ``trusted_sources``."""
    return "trusted" if tool in policy.trusted_sources else trust


def record(
    provenance: Provenance,
    source: str,
    turn: int,
    tool_use_id: str | None = None,
    flagged: Sequence[str] = (),
) -> UntrustedSource:
    """Untrusted content entered the context; keeps at most ``KEPT`` entries."""
    entry = UntrustedSource(
        source=source, turn=turn, tool_use_id=tool_use_id, flagged=list(flagged)
    )
    provenance.untrusted.append(entry)
    if len(provenance.untrusted) > KEPT:
        listed = provenance.untrusted
        oldest = next((i for i, u in enumerate(listed) if not u.flagged), 0)
        del listed[oldest]
    return entry


def clear(
    provenance: Provenance, by: str, reason: str | None, at: datetime, turn: int
) -> Clearance:
    """A person vouches for the context: it holds no untrusted content any more."""
    clearance = Clearance(
        by=by, reason=reason, at=at, turn=turn, cleared=list(provenance.untrusted)
    )
    provenance.untrusted.clear()
    provenance.clearances.append(clearance)
    return clearance


def describe(sources: Iterable[UntrustedSource]) -> list[str]:
    """``tool:web_search in turn 2``, once each, flagged ones with their categories."""
    described = []
    for u in sources:
        flags = f", flagged {'/'.join(u.flagged)}" if u.flagged else ""
        described.append(f"{u.source} in turn {u.turn}{flags}")
    return list(dict.fromkeys(described))


def gate(
    tool: str,
    permission: Permission,
    arguments: dict[str, Any],
    policy: SafetyPolicy,
    provenance: Provenance,
    *,
    outbound: bool = False,
    system_prompt: str = "",
    texts: ContextTexts | None = None,
) -> Gate | None:
    """What the call must go through: approval, a refusal, or nothing (``None``).

    ``texts`` (``context_texts``) is needed for the exfiltration guard of ``outbound``
    tools while the context is untrusted; without it the guard is skipped."""
    untrusted = provenance.untrusted
    flagged = [u for u in untrusted if u.flagged]
    guarded = (
        bool(untrusted)
        and policy.untrusted_context != "off"
        and tool not in policy.untrusted_allowed_tools
    )
    blocks = False
    reasons: list[str] = []
    severity: Severity = "high" if flagged else ("elevated" if untrusted else "normal")
    if permission != "read" and flagged:
        reasons.append(
            f"the context holds text flagged as a possible prompt injection "
            f"({'; '.join(describe(flagged))}); {permission} tools need approval"
        )
        blocks = policy.flagged_context == "block"
    elif permission != "read" and guarded:
        reasons.append(
            f"the context holds untrusted content ({'; '.join(describe(untrusted))}); "
            f"{permission} tools need approval while it does"
        )
        blocks = policy.untrusted_context == "block"
    if tool in policy.approval_tools:
        reasons.append(f"policy: every {tool} call needs approval")
    elif permission in policy.approval_levels:
        reasons.append(f"policy: {permission} tools need approval")
    if policy.protect_system_prompt and quotes(
        json.dumps(arguments, ensure_ascii=False), system_prompt
    ):
        reasons.append("the arguments quote the system prompt")
        severity = "high"
    if outbound and guarded and texts is not None:
        why = outbound_reason(arguments, texts, policy.exfiltration_min_chars)
        if why:
            reasons.append(f"{why}, while the context holds untrusted content")
            blocks = blocks or policy.untrusted_context == "block"
            blocks = blocks or (bool(flagged) and policy.flagged_context == "block")
    if not reasons:
        return None
    return Gate(
        action="block" if blocks else "approve",
        reason="; ".join(reasons),
        severity=severity,
        untrusted=describe(untrusted),
    )


def context_texts(
    messages: Sequence[Message],
    system_prompt: str,
    untrusted_tools: Iterable[str],
    provenance: Provenance,
    *,
    summarised: bool = False,
) -> ContextTexts:
    """Split the context by where each text came from. A tool result is untrusted when
    its tool is (``untrusted_tools``) or it was recorded as untrusted (a flag); the
    compaction summary (``summarised``: ``messages[0]`` is one) is untrusted while
    the context is, since untrusted content may have been folded into it."""
    hostile_tools = set(untrusted_tools)
    hostile_ids = {u.tool_use_id for u in provenance.untrusted if u.tool_use_id}
    names = {b.id: b.name for m in messages for b in m.content if isinstance(b, ToolUseBlock)}
    trusted, untrusted = [system_prompt], list[str]()
    for index, message in enumerate(messages):
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                hostile = (
                    block.tool_use_id in hostile_ids
                    or names.get(block.tool_use_id) in hostile_tools
                )
                (untrusted if hostile else trusted).append(block.content)
            elif isinstance(block, TextBlock) and message.role == "user":
                summary = summarised and index == 0 and bool(provenance.untrusted)
                (untrusted if summary else trusted).append(block.text)
    return ContextTexts(trusted=trusted, untrusted=untrusted)


def outbound_reason(
    arguments: dict[str, Any], texts: ContextTexts, min_chars: int = 20
) -> str | None:
    """Why an outbound call looks like it carries something out, or ``None``:

    - it names a host (a URL, an e-mail address, ``site:evil.example``) that no trusted
      text names — a destination only untrusted content could have suggested;
    - it carries ``min_chars`` consecutive characters (normalised) that appear in
      untrusted content and in no trusted text — words dictated by untrusted content.

    What the user typed is trusted, so a query the user asked for never matches."""
    values = " ".join(_strings(arguments))
    trusted_lower = "\n".join(texts.trusted).lower()
    new = sorted({h for h in _HOST.findall(values.lower()) if h not in trusted_lower})
    if new:
        return f"the arguments name a destination no trusted content named ({', '.join(new)})"
    carried = _carried(values, texts, min_chars)
    if carried:
        return f"the arguments carry text that only untrusted content holds ({carried!r})"
    return None


def _carried(values: str, texts: ContextTexts, n: int) -> str | None:
    """A run of ``n`` characters of ``values`` found in untrusted texts and not in
    trusted ones (all normalised), or ``None``."""
    seen = _flat(values)
    grams = {seen[i : i + n] for i in range(len(seen) - n + 1)}
    for text in texts.trusted:
        grams -= _found(_flat(text), grams, n)
        if not grams:
            return None
    for text in texts.untrusted:
        found = _found(_flat(text), grams, n)
        if found:
            return min(found)
    return None


def _found(text: str, grams: set[str], n: int) -> set[str]:
    """The ``grams`` (of length ``n``) that occur in ``text``; linear in ``text``."""
    return {text[i : i + n] for i in range(len(text) - n + 1)} & grams if grams else set()


def _flat(text: str) -> str:
    return " ".join(normalise(text).split())


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON-like value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
