"""Large tool results leave history: the whole result goes to the blob store under the
call's idempotency key, and the workflow gets a preview and the key.

Temporal refuses payloads over 2 MB and every byte in history is replayed; a
``list_notes`` of 100 long notes is 400 KB. The model activity puts the whole result
back when it builds the model's request (``activities/transcripts.py``), so the model
sees exactly what the tool returned.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from durable_agent.activity_models import ToolCall, ToolResult
from durable_agent.injection import InjectionDetector
from durable_agent.safety import untrusted
from durable_agent.stores.blobs import BlobStore, BlobStoreError
from durable_agent.tools.registry import TOOL_TRANSIENT_ERROR

PREVIEW_CHARS = 2000
"""How much of an offloaded result the workflow (and its transcript query) shows."""


def result_key(call: ToolCall) -> str:
    return f"tool-result/{call.idempotency_key}"


class Offloader:
    """Moves results over ``limit_bytes`` to ``blobs``."""

    def __init__(self, blobs: BlobStore, limit_bytes: int) -> None:
        self._blobs = blobs
        self._limit = limit_bytes

    async def __call__(self, call: ToolCall, result: ToolResult) -> ToolResult:
        data = result.content.encode()
        if len(data) <= self._limit:
            return result
        key = result_key(call)
        flags: list[str] = []
        if call.injection_patterns is not None:
            # Screened here, whole: the workflow only ever sees the preview.
            screening = InjectionDetector.create(call.injection_patterns).screen(result.content)
            if screening.flagged:
                flags = screening.categories
                data = untrusted(call.tool, result.content, screening).encode()
        try:
            await self._blobs.put(key, data)
        except BlobStoreError as e:
            raise ApplicationError(str(e), type=TOOL_TRANSIENT_ERROR) from e
        preview = result.content[:PREVIEW_CHARS]
        rest = len(result.content) - len(preview)
        return result.model_copy(
            update={
                "content": f"{preview}\n[… {rest:,} more characters; the model receives the "
                f"whole result, stored as {key}]",
                "ref": key,
                "flags": flags,
            }
        )
