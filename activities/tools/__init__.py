"""The built-in tools' activities, one module per tool, assembled by ``ToolActivities``.

The worker builds one ``ToolActivities`` with its clients and registers
``activities()``; the workflow calls each by its spec's ``activity_name``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from activities.tools._offload import Offloader
from activities.tools.calculator import calculator
from activities.tools.functions import FunctionTools
from activities.tools.notes import NoteTools
from activities.tools.search import TOOL_NOT_CONFIGURED, SearchTool
from activities.tools.weather import WeatherTool
from durable_agent.config import Settings
from durable_agent.stores.blobs import BlobStore
from durable_agent.stores.notes import NoteStore

if TYPE_CHECKING:
    import httpx

__all__ = ["TOOL_NOT_CONFIGURED", "ToolActivities"]


class ToolActivities:
    """Every built-in tool activity, sharing the worker's injected dependencies.

    ``http`` returns the client the HTTP tools share, called when one runs (the worker
    passes a ``LazyHttpClient``, which makes the client then, and owns and closes it);
    tools pass their own per-request timeout and never follow redirects.
    """

    def __init__(
        self,
        settings: Settings,
        notes: NoteStore,
        http: Callable[[], httpx.AsyncClient],
        blobs: BlobStore,
    ) -> None:
        self.functions = FunctionTools([calculator])
        self.notes = NoteTools(notes, Offloader(blobs, settings.tool_result_inline_bytes))
        self.weather = WeatherTool(settings, http)
        self.search = SearchTool(settings, http)

    def activities(self) -> list[Callable[..., Any]]:
        """The bound activity methods, for ``Worker(activities=...)``."""
        return [
            *self.functions.activities(),
            self.notes.save_note,
            self.notes.list_notes,
            self.weather.get_weather,
            self.search.web_search,
        ]
