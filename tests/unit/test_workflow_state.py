"""A cached conversation is light: the workflow instance keeps few enough attributes of
its own for CPython to share their keys between instances (``workflows.base.RunFacts``)."""

from __future__ import annotations

import ast
import inspect
import sys

from durable_agent.contract import ConversationInput
from workflows.agent import AgentWorkflow
from workflows.base import InFacts, RunFacts

SHARED_KEYS_MAX = 30
"""CPython's ``SHARED_KEYS_MAX_SIZE``: instance dicts share one keys table up to this
many attribute names per class; the instance dict of a 30th is a table of its own."""


def _assigned_attributes() -> set[str]:
    """Every ``self.<name>`` the classes of ``AgentWorkflow`` assign, in any method."""
    names: set[str] = set()
    for cls in AgentWorkflow.__mro__:
        if cls is object:
            continue
        tree = ast.parse(inspect.getsource(sys.modules[cls.__module__]))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ClassDef) and node.name == cls.__name__):
                continue
            for inner in ast.walk(node):
                targets: list[ast.expr] = []
                if isinstance(inner, ast.Assign):
                    targets = inner.targets
                elif isinstance(inner, ast.AnnAssign | ast.AugAssign):
                    targets = [inner.target]
                for target in targets:
                    names.update(_names_set(target))
    return names


def _names_set(target: ast.expr) -> set[str]:
    """``self.<name> = ...`` (also in a tuple), or ``self.__dict__["<name>"] = ...``."""
    if isinstance(target, ast.Tuple):
        return {name for element in target.elts for name in _names_set(element)}
    if _is_self(target):
        return {target.attr}  # type: ignore[attr-defined]
    if (
        isinstance(target, ast.Subscript)
        and _is_self(target.value)
        and target.value.attr == "__dict__"  # type: ignore[attr-defined]
        and isinstance(target.slice, ast.Constant)
    ):
        return {str(target.slice.value)}
    return set()


def _is_self(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def _in_facts() -> set[str]:
    return {
        name
        for cls in AgentWorkflow.__mro__
        for name, value in vars(cls).items()
        if isinstance(value, InFacts)
    }


def test_the_workflow_keeps_fewer_attributes_than_cpython_shares_keys_for() -> None:
    own = _assigned_attributes() - _in_facts()
    assert "_facts" in own and "_journal" in own  # the walk sees __init__ and _set_up
    # Margin for two more; past it, move rarely read state into RunFacts.
    assert len(own) <= SHARED_KEYS_MAX - 3, sorted(own)


def test_a_set_up_run_has_only_those_attributes_and_its_facts() -> None:
    workflow = AgentWorkflow.__new__(AgentWorkflow)
    workflow._set_up(ConversationInput(tools=["calculator"]))
    assert set(vars(workflow)) <= _assigned_attributes() - _in_facts()
    assert isinstance(workflow._facts, RunFacts)
    assert (workflow._runs, workflow._compactions, workflow._archive) == (1, 0, None)
    assert workflow._input_error is None and workflow._toolsets_down == set()
    workflow._runs += 1
    assert workflow._facts.runs == 2 and "_runs" not in vars(workflow)


def test_every_fact_is_a_field_of_run_facts() -> None:
    fields = set(RunFacts.__dataclass_fields__)
    assert {name.removeprefix("_") for name in _in_facts()} == fields
