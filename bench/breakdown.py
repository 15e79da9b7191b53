"""What a turn costs in history: the per-turn breakdown of recorded histories.

From the events alone (so it reads any workflow, the agent's or the bare baseline's,
whatever the product does on the inside): per turn, the events, workflow tasks,
activities (scheduled; local activities are ``MarkerRecorded`` events and are counted
apart), signals sent and received, timers, search-attribute and memo upserts, bytes,
and the milliseconds spent waiting on each activity type (a local activity's time is
part of its workflow task's). Turns are counted by completed updates (one
``send_message`` or ``turn`` update per message).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from statistics import median

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory

LOCAL_ACTIVITY_MARKER = "core_local_activity"
"""The marker name the SDK records a local activity's result under."""
SUMMARY = {
    "events": "events",
    "bytes": "history bytes",
    "workflow_tasks": "workflow tasks (completed)",
    "activities": "activities (scheduled)",
    "local_activities": "local activities (markers)",
    "signals_sent": "signals sent",
    "signals_received": "signals received",
    "timers": "timers",
    "upserts_search_attributes": "search-attribute upserts",
    "upserts_memo": "memo upserts",
    "children": "child workflows",
}
"""The breakdown's headline keys, in the order tables show them, with their labels."""
PREFIXES = (("activity:", "  activity "), ("local:", "  local activity "), ("ms:", "ms "))
"""Keys by type, and the labels tables give them."""
_SUMMARY_EVENTS = {
    "workflow_tasks": EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    "activities": EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    "signals_sent": EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
    "signals_received": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    "timers": EventType.EVENT_TYPE_TIMER_STARTED,
    "upserts_search_attributes": EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    "upserts_memo": EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
    "children": EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
}
_CLOSES = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled_event_attributes",
}


async def history_profile(client: Client, workflow_ids: Sequence[str]) -> dict[str, float]:
    """The per-turn profile (``profile``) of the latest run of each workflow."""
    histories = [await client.get_workflow_handle(w).fetch_history() for w in workflow_ids]
    return profile(histories)


def profile(histories: Iterable[WorkflowHistory]) -> dict[str, float]:
    """What the histories hold per turn: the ``SUMMARY`` keys, events by type
    (``WORKFLOW_TASK_COMPLETED``), activities by type (``activity:model.invoke``,
    ``local:tool.calculator``) and their attempts (``attempts:governor.acquire``; more
    than scheduled means retries), and milliseconds by what the workflow waited on
    (``ms:…``, see ``waits``)."""
    counts: Counter[str] = Counter(dict.fromkeys([*SUMMARY, "local_activities"], 0))
    waited: defaultdict[str, float] = defaultdict(float)
    size = 0
    for history in histories:
        size += sum(e.ByteSize() for e in history.events)
        scheduled: dict[int, str] = {}
        for event in history.events:
            counts[EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")] += 1
            for key, kind in _SUMMARY_EVENTS.items():
                counts[key] += event.event_type == kind
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                name = event.activity_task_scheduled_event_attributes.activity_type.name
                scheduled[event.event_id] = name
                counts[f"activity:{name}"] += 1
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started = event.activity_task_started_event_attributes
                counts[f"attempts:{scheduled[started.scheduled_event_id]}"] += started.attempt
            elif (local := local_activity(event)) is not None:
                counts["local_activities"] += 1
                counts[f"local:{local}"] += 1
        for name, ms in waits(history.events).items():
            waited[name] += ms
    turns = counts["WORKFLOW_EXECUTION_UPDATE_COMPLETED"] or 1
    found = {name: round(n / turns, 2) for name, n in sorted(counts.items())}
    found |= {f"ms:{name}": round(ms / turns, 1) for name, ms in sorted(waited.items())}
    found["events"] = round(sum(n for k, n in counts.items() if k.isupper()) / turns, 2)
    found["bytes"] = round(size / turns)
    found["turns"] = turns
    return found


def local_activity(event: HistoryEvent) -> str | None:
    """A local activity's type, from its marker; None for any other event. (Its
    duration is not there: the marker's ``complete_time`` is workflow time, which can
    precede the schedule time. A local activity runs inside a workflow task, so its
    time counts in ``workflow task running``.)"""
    if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
        return None
    marker = event.marker_recorded_event_attributes
    if marker.marker_name != LOCAL_ACTIVITY_MARKER or "data" not in marker.details:
        return None
    payloads = marker.details["data"].payloads
    data = json.loads(payloads[0].data) if payloads else {}
    return str(data.get("activity_type", "?"))


def waits(events: Sequence[HistoryEvent]) -> dict[str, float]:
    """Milliseconds a workflow spent, by what it waited on: each activity type (from
    scheduled to closed, retries included), workflow tasks queued (scheduled to
    started: waiting for a worker) and running (started to completed: local activities
    run in there), and signals to other workflows (initiated to delivered). Concurrent
    waits are summed."""
    spent: defaultdict[str, float] = defaultdict(float)
    opened: dict[int, tuple[str, float]] = {}
    task_scheduled = task_started = 0.0
    for event in events:
        at = event.event_time.ToMicroseconds() / 1000
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            opened[event.event_id] = (f"activity {name}", at)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            # The last attempt's start (the event is written when the activity closes).
            name, since = opened[event.activity_task_started_event_attributes.scheduled_event_id]
            spent[f"{name} until started"] += at - since
        elif kind in _CLOSES:
            name, since = opened.pop(getattr(event, _CLOSES[kind]).scheduled_event_id)
            spent[name] += at - since
        elif kind == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
            opened[event.event_id] = ("signal to another workflow", at)
        elif kind == EventType.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED:
            attributes = event.external_workflow_execution_signaled_event_attributes
            name, since = opened.pop(attributes.initiated_event_id)
            spent[name] += at - since
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            task_scheduled = at
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            task_started = at
            spent["workflow task queued"] += at - task_scheduled
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            spent["workflow task running"] += at - task_started
    return spent


def turn_bytes(histories: Iterable[WorkflowHistory]) -> list[int]:
    """Bytes of each turn, in order, over every run of a conversation (oldest first).

    A turn is everything from the previous update's completion to its own, so the
    turn right after a continue-as-new carries the old run's last events (the
    continued-as-new event) and the new run's start (its input). An update's
    acceptance counts for its own turn, wherever it falls (messages queued together
    are accepted together). Events after the last completion belong to no turn."""
    sizes: list[int] = []
    accepted: dict[str, int] = {}
    pending = 0
    for event in (e for history in histories for e in history.events):
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            meta = event.workflow_execution_update_accepted_event_attributes.accepted_request.meta
            accepted[meta.update_id] = event.ByteSize()
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            update_id = event.workflow_execution_update_completed_event_attributes.meta.update_id
            sizes.append(pending + event.ByteSize() + accepted.pop(update_id, 0))
            pending = 0
        else:
            pending += event.ByteSize()
    return sizes


def spread(sizes: Sequence[int]) -> dict[str, float]:
    """The largest turn against the median one, and which turn it was (1-based)."""
    if not sizes:
        return {"median": 0.0, "largest": 0.0, "largest_turn": 0}
    largest = max(range(len(sizes)), key=sizes.__getitem__)
    return {"median": float(median(sizes)), "largest": sizes[largest], "largest_turn": largest + 1}


def rows(profiles: Mapping[str, Mapping[str, float]]) -> list[tuple[str, ...]]:
    """The breakdown as table rows: a label, then one column per profile (e.g. agent,
    bare): the ``SUMMARY`` keys, then activities by type, then milliseconds by wait."""
    keys = set().union(*(p.keys() for p in profiles.values()))
    ordered = list(SUMMARY.items())
    for prefix, label in PREFIXES:
        ordered += [(k, label + k[len(prefix) :]) for k in sorted(keys) if k.startswith(prefix)]
    return [(label, *(_cell(p.get(key, 0)) for p in profiles.values())) for key, label in ordered]


def _cell(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:g}"
