"""Handler, query and signal names are declared once, in ``durable_agent.contract``:
the workflows answer exactly the names the contract declares, and the clients, the
gateway and the tests call them by those constants."""

from __future__ import annotations

from temporalio import workflow

from durable_agent import activity_models, contract
from workflows import AgentWorkflow, TenantGovernorWorkflow


def _declared(prefixes: tuple[str, ...]) -> set[str]:
    return {
        value
        for name, value in vars(contract).items()
        if name.startswith(prefixes) and isinstance(value, str)
    }


def _answered(cls: type) -> tuple[str, set[str]]:
    definition = workflow._Definition.must_from_class(cls)
    handlers = {*definition.updates, *definition.signals, *definition.queries}
    return str(definition.name), {name for name in handlers if name is not None}


def test_the_conversation_answers_the_contract_names() -> None:
    name, handlers = _answered(AgentWorkflow)
    assert name == contract.WORKFLOW_TYPE
    internal = {activity_models.QUERY_TRANSCRIPT_PREFIX}  # the activities' own query
    assert handlers == _declared(("UPDATE_", "QUERY_", "SIGNAL_")) | internal


def test_the_governor_answers_the_contract_names() -> None:
    name, handlers = _answered(TenantGovernorWorkflow)
    assert name == contract.GOVERNOR_WORKFLOW_TYPE
    assert handlers == _declared(("GOVERNOR_UPDATE_", "GOVERNOR_QUERY_", "GOVERNOR_SIGNAL_"))
