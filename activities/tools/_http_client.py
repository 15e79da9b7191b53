"""The HTTP client the built-in tools share, made when a tool first needs it.

httpx is 2-3 MiB resident once imported (~6 where ``rich`` and ``pygments`` are
installed: it then imports its command-line interface too), and a worker whose
conversations call no HTTP tool never needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


class LazyHttpClient:
    """Calling it returns one ``httpx.AsyncClient``, made (and httpx imported) on the
    first call; ``aclose`` closes it if it was made. Redirects are not followed."""

    def __init__(self, *, timeout_seconds: float) -> None:
        self._timeout_seconds = timeout_seconds
        self._client: httpx.AsyncClient | None = None

    @property
    def made(self) -> bool:
        """Whether a call has made the client yet."""
        return self._client is not None

    def __call__(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(timeout=self._timeout_seconds, follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        """Close the client, if made (for ``contextlib.aclosing``)."""
        if self._client is not None:
            await self._client.aclose()
