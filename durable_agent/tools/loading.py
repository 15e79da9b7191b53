"""Loading user tools at process start: modules named in settings, and entry points.

A worker calls ``load_tools`` before it polls, so every workflow it runs (and every
replay in a process that loaded the same modules) resolves the same tool names. A tool
module exposes its tools as module-level ``Tool`` objects (what ``@tool`` returns); an
entry point in the ``durable_agent.tools`` group names a module, a ``Tool`` or a list
of them::

    [project.entry-points."durable_agent.tools"]
    orders = "acme_tools.orders"

Anything wrong stops the process with a ``ToolLoadError`` naming the module and tool:

    ToolLoadError (ValueError)
    ├── ToolModuleError       the module failed to import, or exposes no tools
    ├── InvalidToolError      a declaration that cannot work (``InvalidToolDeclaration``)
    └── DuplicateToolError    two tools (or a tool and a built-in) share a name
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType

from durable_agent.tools.api import InvalidToolDeclaration, Tool, check_spec
from durable_agent.tools.registry import BUILTIN_TOOLS, register_tool

ENTRY_POINT_GROUP = "durable_agent.tools"


class ToolLoadError(ValueError):
    """User tools could not be loaded; the worker must not start."""


class ToolModuleError(ToolLoadError):
    """A tool module failed to import or has no tools."""


class InvalidToolError(ToolLoadError):
    """A tool's declaration cannot work."""


class DuplicateToolError(ToolLoadError):
    """Two tools share a name."""


@dataclass(frozen=True)
class LoadedTool:
    """A tool and where it came from (for messages and the worker's log)."""

    tool: Tool
    origin: str


def parse_module_list(value: str) -> list[str]:
    """``AGENT_TOOL_MODULES``: a JSON list or comma-separated module names."""
    text = value.strip()
    if text.startswith("["):
        parsed = json.loads(text)
        if not isinstance(parsed, list) or not all(isinstance(m, str) for m in parsed):
            raise ValueError("expected a JSON list of module names")
        return [m.strip() for m in parsed if m.strip()]
    return [m.strip() for m in text.split(",") if m.strip()]


def discover_tools(modules: Iterable[str], *, use_entry_points: bool = True) -> list[LoadedTool]:
    """Import the tool modules (and entry points) and check every tool; nothing is
    registered yet, so a failure leaves the process as it was."""
    found: list[LoadedTool] = []
    for name in modules:
        found += [LoadedTool(t, f"module {name}") for t in _tools_of(_import(name), name)]
    if use_entry_points:
        for point in entry_points(group=ENTRY_POINT_GROUP):
            origin = f"entry point {point.name} ({point.value})"
            try:
                target = point.load()
            except Exception as e:  # an import runs arbitrary code: any error stops us
                raise ToolModuleError(f"{origin} failed to load: {_brief(e)}") from e
            found += [LoadedTool(t, origin) for t in _tools_of(target, origin)]
    return _checked(found)


def load_tools(modules: Iterable[str], *, use_entry_points: bool = True) -> list[LoadedTool]:
    """Discover the user tools and register them for this process (see
    ``registry.known_tools``); returns them. Call once, before any worker polls."""
    loaded = discover_tools(modules, use_entry_points=use_entry_points)
    for item in loaded:
        try:
            register_tool(item.tool.spec)
        except ValueError as e:  # e.g. a different process-wide tool under that name
            raise DuplicateToolError(f"{item.origin}: {e}") from e
    return loaded


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except InvalidToolDeclaration as e:
        raise InvalidToolError(f"tool module {name!r}: {e}") from e
    except Exception as e:  # an import runs arbitrary code: any error stops us
        raise ToolModuleError(f"tool module {name!r} failed to import: {_brief(e)}") from e


def _tools_of(target: object, origin: str) -> list[Tool]:
    if isinstance(target, Tool):
        return [target]
    if isinstance(target, ModuleType):
        tools = list({id(v): v for v in vars(target).values() if isinstance(v, Tool)}.values())
    elif isinstance(target, list | tuple):
        tools = [t for t in target if isinstance(t, Tool)]
        if len(tools) != len(target):
            raise ToolModuleError(f"{origin}: the list holds something that is not a Tool")
    else:
        raise ToolModuleError(f"{origin}: expected a module, a Tool or a list of Tools")
    if not tools:
        raise ToolModuleError(f"{origin} defines no tools (decorate a function with @tool)")
    return tools


def _checked(found: list[LoadedTool]) -> list[LoadedTool]:
    seen: dict[str, LoadedTool] = {}
    for item in found:
        try:
            check_spec(item.tool.spec)  # a Tool built by hand skipped the decorator's check
        except InvalidToolDeclaration as e:
            raise InvalidToolError(f"{item.origin}: {e}") from e
        name = item.tool.name
        if name in BUILTIN_TOOLS:
            raise DuplicateToolError(f"{item.origin}: tool {name!r} has a built-in tool's name")
        first = seen.get(name)
        if first is not None and first.tool is not item.tool:
            raise DuplicateToolError(
                f"tool {name!r} is declared twice: in {first.origin} and in {item.origin}"
            )
        seen.setdefault(name, item)
    return list(seen.values())


def _brief(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
