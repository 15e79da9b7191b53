"""Imports run one way. Every module's imports are read with ``ast`` (nothing is
imported) and checked against these layers, lowest first; a module may import its own
layer and the layers it lists, never one above:

=============  ==========================================================  ==============
layer          modules                                                     may import
=============  ==========================================================  ==============
core           the contract and the pure policy: exactly the               core
               ``durable_agent`` modules the workflow sandbox passes
               through (``workflows.PASSTHROUGH_MODULES``): breaker,
               budget, pricing, usage, governor, token_bucket,
               retry_classification, injection, safety, provenance,
               dependencies, contract, activity_models, api_keys,
               search_attributes, tools, toolsets, models (the offline
               model)
platform       settings and process plumbing: config, profiles, codec,     core
               logs, process, imports, telemetry, metrics, devserver,
               stores
testing        test fakes: ``durable_agent.testing``                       core, platform
servers        clients and HTTP servers: client, health, codec_server,     core, platform
               gateway
workflows      workflow code (sandboxed): ``workflows`` except replay      core
activities     I/O the workflows ask for: ``activities``                   core, platform,
                                                                           workflows
apps           entry points: worker, starter, demo, ``workflows.replay``   all of the above
tools          bench, evals, deploy, tests                                 anything
=============  ==========================================================  ==============

Besides, the core imports only the standard library (no sockets, subprocesses, files
or clocks of its own), pydantic and ``temporalio.common`` (``RetryPolicy``,
``SearchAttributeKey``: plain data); workflow code imports no client, worker, HTTP
library, database driver or telemetry SDK. There are no import cycles (imports under
``if TYPE_CHECKING:`` do not run and are not counted as cycles; they are checked
against the layers all the same). A new module needs a layer here.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from workflows import PASSTHROUGH_MODULES

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("durable_agent", "workflows", "activities", "bench", "evals", "deploy", "tests")
TOP_MODULES = ("worker", "starter", "demo")

CORE = "core"
PLATFORM = "platform"
TESTING = "testing"
SERVERS = "servers"
WORKFLOWS = "workflows"
ACTIVITIES = "activities"
APPS = "apps"
TOOLS = "tools"

MAY_IMPORT: dict[str, set[str]] = {
    CORE: {CORE},
    PLATFORM: {CORE, PLATFORM},
    TESTING: {CORE, PLATFORM, TESTING},
    SERVERS: {CORE, PLATFORM, SERVERS},
    WORKFLOWS: {CORE, WORKFLOWS},
    ACTIVITIES: {CORE, PLATFORM, WORKFLOWS, ACTIVITIES},
    APPS: {CORE, PLATFORM, TESTING, SERVERS, WORKFLOWS, ACTIVITIES, APPS},
    TOOLS: {CORE, PLATFORM, TESTING, SERVERS, WORKFLOWS, ACTIVITIES, APPS, TOOLS},
}

CORE_PREFIXES = tuple(m for m in PASSTHROUGH_MODULES if m.startswith("durable_agent."))
"""The pure core is declared once: what the sandbox passes through."""

PREFIXES: dict[str, str] = {
    "durable_agent": CORE,  # the package itself (empty), not its modules
    **dict.fromkeys(CORE_PREFIXES, CORE),
    "durable_agent.config": PLATFORM,
    "durable_agent.profiles": PLATFORM,
    "durable_agent.codec": PLATFORM,
    "durable_agent.converter": PLATFORM,
    "durable_agent.logs": PLATFORM,
    "durable_agent.process": PLATFORM,
    "durable_agent.imports": PLATFORM,
    "durable_agent.telemetry": PLATFORM,
    "durable_agent.metrics": PLATFORM,
    "durable_agent.devserver": PLATFORM,
    "durable_agent.stream_batching": PLATFORM,
    "durable_agent.stores": PLATFORM,
    "durable_agent.testing": TESTING,
    "durable_agent.client": SERVERS,
    "durable_agent.streaming": SERVERS,
    "durable_agent.health": SERVERS,
    "durable_agent.codec_server": SERVERS,
    "durable_agent.gateway": SERVERS,
    "durable_agent._http": SERVERS,
    "workflows": WORKFLOWS,
    "workflows.replay": APPS,
    "activities": ACTIVITIES,
    "worker": APPS,
    "starter": APPS,
    "demo": APPS,
    "bench": TOOLS,
    "evals": TOOLS,
    "deploy": TOOLS,
    "tests": TOOLS,
}
"""Module (or package) → layer; the longest matching prefix wins."""

CORE_MAY_USE = {"pydantic", "temporalio.common"}
"""Third-party imports the core may make; everything else of the core is stdlib."""
CORE_NO_STDLIB = {
    "asyncio", "http", "os", "random", "shutil", "socket", "sqlite3", "ssl",
    "subprocess", "tempfile", "threading", "time", "urllib",
}  # fmt: skip
"""Standard-library modules the core does without: time and I/O are the caller's."""
WORKFLOW_MUST_NOT_USE = {
    "activities", "anthropic", "asyncpg", "cryptography", "fastapi", "httpx", "httpx2",
    "opentelemetry", "random", "socket", "starlette", "subprocess", "temporalio.client",
    "temporalio.service", "temporalio.testing", "time", "urllib", "uvicorn",
}  # fmt: skip
"""What workflow code never imports (the sandbox would refuse most at run time)."""


@dataclass(frozen=True)
class Import:
    """One import statement's target, resolved to a module name."""

    source: str
    target: str
    line: int
    type_only: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    found = {name: ROOT / f"{name}.py" for name in TOP_MODULES if (ROOT / f"{name}.py").exists()}
    for source in SOURCES:
        for path in sorted((ROOT / source).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, type_only: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        yield child, type_only
        inner = type_only or (isinstance(child, ast.If) and _is_type_checking(child))
        yield from _walk(child, inner)


@cache
def _imports(name: str) -> tuple[Import, ...]:
    path = _modules()[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node, type_only in _walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(name, a.name, node.lineno, type_only) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:  # ``from package import module`` imports the module
                sub = f"{module}.{alias.name}"
                target = sub if sub in _modules() else module
                found.append(Import(name, target, node.lineno, type_only))
    return tuple(found)


def _ours(target: str) -> str | None:
    """The module of ours ``target`` names (itself or the package it is in), if any."""
    while target and target not in _modules():
        target = target.rpartition(".")[0]
    return target or None


def layer_of(module: str) -> str | None:
    """The layer of ``module``: its longest prefix in ``PREFIXES`` (``durable_agent``
    names only the package, so a new module of it has no layer until given one)."""
    candidates = [
        p for p in PREFIXES if module == p or (module.startswith(p + ".") and p != "durable_agent")
    ]
    return PREFIXES[max(candidates, key=len)] if candidates else None


def _matches(target: str, names: set[str]) -> bool:
    return any(target == n or target.startswith(n + ".") for n in names)


def _third_party(target: str) -> bool:
    return _ours(target) is None and target.split(".")[0] not in sys.stdlib_module_names


def _all_imports() -> Iterator[Import]:
    for name in _modules():
        yield from _imports(name)


def _where(i: Import) -> str:
    return f"{_modules()[i.source].relative_to(ROOT)}:{i.line} imports {i.target}"


def test_every_module_has_a_layer() -> None:
    assert [m for m in _modules() if layer_of(m) is None] == []


def test_the_core_is_what_the_sandbox_passes_through() -> None:
    assert "durable_agent" not in PASSTHROUGH_MODULES  # not the whole package
    core = {m for m in _modules() if layer_of(m) == CORE} - {"durable_agent"}
    assert {"durable_agent.contract", "durable_agent.breaker"} <= core


def test_no_import_runs_up_a_layer() -> None:
    upward = []
    for i in _all_imports():
        target = _ours(i.target)
        if target is None or target == i.source:
            continue
        source_layer, target_layer = layer_of(i.source), layer_of(target)
        assert source_layer is not None and target_layer is not None
        if target_layer not in MAY_IMPORT[source_layer]:
            upward.append(f"{_where(i)} ({source_layer} -> {target_layer})")
    assert upward == []


def test_the_core_imports_only_the_standard_library_pydantic_and_temporalio_common() -> None:
    bad = [
        _where(i)
        for i in _all_imports()
        if layer_of(i.source) == CORE
        and (
            (_third_party(i.target) and not _matches(i.target, CORE_MAY_USE))
            or _matches(i.target, CORE_NO_STDLIB)
        )
    ]
    assert bad == []


def test_workflow_code_imports_no_io() -> None:
    bad = [
        _where(i)
        for i in _all_imports()
        if layer_of(i.source) == WORKFLOWS and _matches(i.target, WORKFLOW_MUST_NOT_USE)
    ]
    assert bad == []


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), runtime imports."""
    graph: dict[str, set[str]] = {m: set() for m in _modules()}
    for i in _all_imports():
        target = _ours(i.target)
        if target is not None and target != i.source and not i.type_only:
            graph[i.source].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def _package_cycle(component: list[str]) -> bool:
    """A package and the submodules its ``__init__`` re-exports import each other only
    through the package's name: Python allows that and so do we."""
    packages = [m for m in component if _modules()[m].name == "__init__.py"]
    return len(packages) == 1 and all(m.startswith(packages[0]) for m in component)


def test_there_are_no_import_cycles() -> None:
    assert [c for c in _cycles() if not _package_cycle(c)] == []


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        ("durable_agent.breaker", "durable_agent.stores.notes", False),
        ("durable_agent.config", "durable_agent.gateway.keys", False),
        ("workflows.agent", "durable_agent.config", False),
        ("workflows.agent", "activities.llm", False),
        ("durable_agent.client", "workflows", False),
        ("activities.llm", "durable_agent.contract", True),
        ("worker", "activities.llm", True),
    ],
)
def test_the_rule_itself(source: str, target: str, expected: bool) -> None:
    """The check would catch the upward imports issue 15 found."""
    source_layer, target_layer = layer_of(source), layer_of(target)
    assert source_layer is not None and target_layer is not None
    assert (target_layer in MAY_IMPORT[source_layer]) is expected
