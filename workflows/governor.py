"""``TenantGovernorWorkflow``: one per tenant, holding its daily budget and model-call
rate limit durably. Conversations take leases from it (update ``lease``, a batch of
requests from one worker, through the ``governor.lease`` local activity, which starts it
on first use) and report them (in the next request, or signal ``release``). Older
conversations ask it before every model call (update ``acquire``) and settle (signal
``settle``) after. It continues-as-new itself, carrying its state.
"""

from __future__ import annotations

from datetime import UTC

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict

    from durable_agent.contract import (
        GOVERNOR_QUERY_STATE,
        GOVERNOR_SIGNAL_RELEASE,
        GOVERNOR_SIGNAL_SETTLE,
        GOVERNOR_UPDATE_ACQUIRE,
        GOVERNOR_UPDATE_LEASE,
        GOVERNOR_WORKFLOW_TYPE,
    )
    from durable_agent.governor import (
        GovernorState,
        LeaseBatch,
        LeaseBatchResult,
        LeaseReport,
        PermitDecision,
        PermitRequest,
        Settlement,
    )

MAX_REQUESTS_PER_RUN = 2_000
"""Continue-as-new after this many handled messages, if the server has not asked earlier."""


class GovernorInput(BaseModel):
    """Start input: the tenant, and the state carried over from the previous run."""

    model_config = ConfigDict(extra="forbid")

    tenant: str
    state: GovernorState | None = None
    max_requests_per_run: int = MAX_REQUESTS_PER_RUN
    """Continue-as-new after this many handled messages (or when the server suggests)."""


@workflow.defn(name=GOVERNOR_WORKFLOW_TYPE)
class TenantGovernorWorkflow:
    """Grants model calls for one tenant; never completes on its own."""

    @workflow.init
    def __init__(self, input: GovernorInput) -> None:
        self._state = input.state or GovernorState(tenant=input.tenant)
        self._handled = 0

    @workflow.run
    async def run(self, input: GovernorInput) -> None:
        await workflow.wait_condition(
            lambda: (
                self._handled >= input.max_requests_per_run
                or workflow.info().is_continue_as_new_suggested()
            )
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(input.model_copy(update={"state": self._state}))

    @workflow.update(name=GOVERNOR_UPDATE_ACQUIRE)
    def acquire(self, request: PermitRequest) -> PermitDecision:
        """Grant or refuse one model call."""
        self._handled += 1
        return self._state.acquire(request, workflow.now().astimezone(UTC))

    @workflow.update(name=GOVERNOR_UPDATE_LEASE)
    def lease(self, batch: LeaseBatch) -> LeaseBatchResult:
        """Grant or refuse a batch of leases (reporting the ones they replace)."""
        self._handled += len(batch.requests)
        now = workflow.now().astimezone(UTC)
        return LeaseBatchResult(leases=[self._state.lease(r, now) for r in batch.requests])

    @workflow.signal(name=GOVERNOR_SIGNAL_RELEASE)
    def release(self, report: LeaseReport) -> None:
        """A conversation is done with a lease (it expired, or the conversation ended)."""
        self._handled += 1
        self._state.report(report, workflow.now().astimezone(UTC))

    @workflow.signal(name=GOVERNOR_SIGNAL_SETTLE)
    def settle(self, settlement: Settlement) -> None:
        """Record what a granted call really cost."""
        self._handled += 1
        self._state.settle(settlement, workflow.now().astimezone(UTC))

    @workflow.query(name=GOVERNOR_QUERY_STATE)
    def state(self) -> GovernorState:
        """Limits, today's spend, open reservations, counters."""
        return self._state
