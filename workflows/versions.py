"""Every ``workflow.patched`` id of ``AgentWorkflow``: what it guards, since when, and
when it can go.

A change to the commands a workflow issues keeps old runs on the old path behind a patch
id; their recordings stay in ``tests/histories/pre_*`` and must keep replaying. An id
can be deprecated (``workflow.deprecate_patch``) once no run recorded before it can
still be running or replayed: after the retention of every namespace that ran it.

Runs since ``lean-turn-v1`` take every older id as given (``ConversationBase._patched``):
one marker per run instead of one per id; runs since ``lean-turn-v2`` take the ids between
the two as given as well. Ids newer than ``lean-turn-v2`` are asked for themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

RESILIENCE_PATCH = "resilience-v1"
"""Runs recorded before breakers, budgets, the tenant governor and the turn deadline
replay without the governor's activity and the deadline's timer."""

SEARCH_ATTRIBUTES_PATCH = "search-attributes-v1"
"""Runs recorded before conversations kept their search attributes up to date."""

SAFETY_PATCH = "safety-v1"
"""Runs recorded before screening, approvals and the approval-aware turn deadline."""

CONTINUE_AS_NEW_PATCH = "continue-as-new-v1"
"""Runs recorded before conversations continued as new between turns."""

COMPACTION_PATCH = "compaction-v1"
"""Runs recorded before old turns were compacted near the context window."""

ASYNC_SETTLE_PATCH = "async-settle-v1"
"""Runs recorded before model calls stopped waiting for their settlement signal (asked
in ``workflows.permits``)."""

LEAN_TURN_PATCH = "lean-turn-v1"
"""Runs since: tenant leases instead of a permit per model call, fast tools as local
activities, search attributes upserted only when they change. A run that has it takes
every older patch above as given (one marker per run instead of six)."""

PROVENANCE_PATCH = "provenance-v1"
"""Runs since: untrusted content in the context (not only a detector flag in the turn)
makes write/execute/admin calls wait for approval, and guards outbound calls."""

FLAT_CONTINUE_PATCH = "flat-continue-v1"
"""Runs since: at continue-as-new the transcript goes to the blob store
(``transcript.archive``) and the next run names it, instead of carrying it through
history (the continued-as-new event and the new run's input each held a copy)."""


DELEGATION_PATCH = "delegation-v1"
"""Runs since: sub-agents offered as ``delegate_to_<name>`` tools and run as child
workflows, and a sub-agent's task queued as its one message (``workflows.delegation``).
Asked only by conversations that have sub-agents or are one."""

LEAN_TURN_V2_PATCH = "lean-turn-v2"
"""Runs since: take ``lean-turn-v1``, ``provenance-v1``, ``flat-continue-v1`` and
``delegation-v1`` as given, so a run records one marker (and one ``TemporalChangeVersion``
upsert) instead of up to four: at its start, at its first turn, at continue-as-new and,
with sub-agents, at delegation. Changes no other command."""

MARKERLESS_REVISION = 3
"""Runs whose input names this revision or a newer one (``ConversationInput.revision``,
written by the client API and at continue-as-new) take ``lean-turn-v2`` and every older
patch as given without asking: no marker, and no ``TemporalChangeVersion`` upsert, in
their history. The two cost a new conversation two events and ~10 KiB of the SDK core's
memory for as long as a worker caches it. Runs from older clients (revision 0) still
ask, so they record the marker as before; their recordings:
``tests/histories/pre_revision/``."""

TIMERLESS_REVISION = 4
"""Runs whose input names this revision or a newer one keep a turn's deadline without a
timer (``workflows.deadline``): every activity of the turn gets a schedule-to-close
timeout of at most the time left, and only a wait no timeout can bound (an approval, a
sub-agent, the tenant's rate limit) starts the deadline's timer. Older runs start and
cancel a timer every turn (two events, and the SDK core's memory for them while cached);
their recordings: ``tests/histories/pre_timerless/``. Runs of this revision also read the
``Agent*`` search attributes their start request set (the client API's, the gateway's, a
parent's for its sub-agent) instead of upserting them in their first workflow task."""

PACED_REVISION = 5
"""Runs whose input names this revision or a newer one upsert the search attributes'
counters (turns, tokens, cost) about once per ``search_attributes_interval_seconds``
while the status stays the same (``durable_agent.search_attributes.hold_back``), where
older runs upsert them after every turn; a timer upserts the last ones held back, and a
status change, continue-as-new, the end and cancellation upsert at once. Their recordings:
``tests/histories/pre_paced/``."""


def revision_to_write(revision: int) -> int:
    """The revision a run writes into the runs it starts (its next run, its sub-agents):
    its own, at least ``MARKERLESS_REVISION``, which every worker since that revision
    runs, and never one newer than its own. Writing this worker's newest revision instead
    would fail those runs (a revision newer than the worker: ``InvalidConversationInput``)
    on workers not yet upgraded during a rolling upgrade. A conversation takes a newer
    revision when a client (upgraded after the workers) starts it with one."""
    return max(revision, MARKERLESS_REVISION)


@dataclass(frozen=True)
class Version:
    """One patch id, as a row of the table below."""

    patch_id: str
    guards: str
    since: str
    recordings: str
    """Where the recordings of runs from before it are kept."""


VERSIONS: tuple[Version, ...] = (
    Version(RESILIENCE_PATCH, "breakers, budgets, the governor, the turn deadline",
            "2026-11 (session 1)", "tests/histories/pre_resilience/"),
    Version(SEARCH_ATTRIBUTES_PATCH, "Agent* search attributes", "2026-11 (session 1)",
            "tests/histories/pre_resilience/"),
    Version(SAFETY_PATCH, "screening, approvals, approval-aware deadline",
            "2026-11 (session 2)", "tests/histories/pre_safety/"),
    Version(CONTINUE_AS_NEW_PATCH, "windowed model calls, continue-as-new",
            "2026-11 (session 2)", "tests/histories/pre_safety/"),
    Version(COMPACTION_PATCH, "compaction near the context window", "2026-11 (session 2)",
            "tests/histories/pre_safety/"),
    Version(ASYNC_SETTLE_PATCH, "settlement signals not awaited", "2026-11 (session 2)",
            "tests/histories/pre_async_settle/"),
    Version(LEAN_TURN_PATCH, "leases, local fast tools, upserts only on change, one marker",
            "2026-12 (session 4)", "tests/histories/pre_lean/"),
    Version(PROVENANCE_PATCH, "provenance gates side effects", "2026-12 (session 4)",
            "tests/histories/pre_provenance/"),
    Version(FLAT_CONTINUE_PATCH, "the transcript crosses continue-as-new by reference",
            "2026-12 (session 4)", "tests/histories/pre_flat/"),
    Version(DELEGATION_PATCH, "sub-agents as child workflows", "2026-12 (session 5)",
            "none needed: no earlier run has sub-agents"),
    Version(LEAN_TURN_V2_PATCH, "one marker per run for the four ids above it",
            "2026-12 (session 7)", "tests/histories/pre_lean2/"),
)  # fmt: skip
"""Every patch id, oldest first. None can be deprecated yet: conversations recorded
before each may still be running (a conversation lives as long as its users talk)."""
