"""A loopback fake of the tool APIs: Open-Meteo geocoding and forecast, SearXNG search.

One server on 127.0.0.1 serves all three, so its ``base_url`` works as
``weather_url``, ``geocoding_url`` and ``search_url``. Answers are deterministic: a
small table of real cities, weather derived from a hash of the coordinates, a small
search corpus. A :class:`~durable_agent.testing.faults.FaultScript` decides what goes
wrong (status with ``retry-after``, delay, dropped connection)::

    with FakeToolServer(FaultScript(Fault(status=503, path="/v1/forecast"))) as srv:
        settings = Settings(weather_url=srv.base_url, geocoding_url=srv.base_url, ...)

Run it alone with ``python -m durable_agent.testing.fake_tools --port 8766``.
"""

from __future__ import annotations

import hashlib
import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, parse_qs

from durable_agent.testing._loopback import LoopbackHandler, LoopbackServer, serve_until_interrupted
from durable_agent.testing.faults import Fault

# name, country, country code, region (admin1), latitude, longitude; most populous first,
# so a bare "Paris" or "Lima" finds the capital, as the real API does.
CITIES: tuple[tuple[str, str, str, str, float, float], ...] = (
    ("Tokyo", "Japan", "JP", "Tokyo", 35.6895, 139.69171),
    ("São Paulo", "Brazil", "BR", "São Paulo", -23.5475, -46.63611),
    ("New York", "United States", "US", "New York", 40.71427, -74.00597),
    ("Lima", "Peru", "PE", "Lima", -12.04318, -77.02824),
    ("London", "United Kingdom", "GB", "England", 51.50853, -0.12574),
    ("Nairobi", "Kenya", "KE", "Nairobi County", -1.28333, 36.81667),
    ("Sydney", "Australia", "AU", "New South Wales", -33.86785, 151.20732),
    ("Berlin", "Germany", "DE", "Land Berlin", 52.52437, 13.41053),
    ("Paris", "France", "FR", "Île-de-France", 48.85341, 2.3488),
    ("Reykjavík", "Iceland", "IS", "Capital Region", 64.13548, -21.89541),
    ("Lima", "United States", "US", "Ohio", 40.74255, -84.10523),
    ("Paris", "United States", "US", "Texas", 33.66094, -95.55551),
)

CORPUS: tuple[tuple[str, str, str], ...] = (
    (
        "Temporal: durable execution",
        "https://temporal.io/",
        "Temporal is a durable execution platform: workflows survive crashes and resume.",
    ),
    (
        "Temporal Python SDK",
        "https://github.com/temporalio/sdk-python",
        "The Temporal Python SDK runs workflows and activities with asyncio.",
    ),
    (
        "Python (programming language)",
        "https://en.wikipedia.org/wiki/Python_(programming_language)",
        "Python is a high-level, general-purpose programming language.",
    ),
    (
        "Paris",
        "https://en.wikipedia.org/wiki/Paris",
        "Paris is the capital and largest city of France.",
    ),
    (
        "Open-Meteo: free weather API",
        "https://open-meteo.com/",
        "Open-Meteo offers weather forecasts and geocoding through an open API.",
    ),
    (
        "SearXNG",
        "https://docs.searxng.org/",
        "SearXNG is a free metasearch engine that aggregates results of search services.",
    ),
    (
        "Claude (language model)",
        "https://www.anthropic.com/claude",
        "Claude is a family of large language models made by Anthropic.",
    ),
    (
        "Eiffel Tower",
        "https://en.wikipedia.org/wiki/Eiffel_Tower",
        "The Eiffel Tower is a wrought-iron lattice tower in Paris, France, built in 1889.",
    ),
)

FORECAST_UNITS: dict[str, str] = {
    "temperature_2m": "°C",
    "relative_humidity_2m": "%",
    "wind_speed_10m": "km/h",
    "wind_direction_10m": "°",
    "weather_code": "wmo code",
}
"""The ``current`` variables the fake forecast knows, with Open-Meteo's default units."""
_WEATHER_CODES = (0, 1, 2, 3, 45, 51, 61, 63, 71, 80, 95)


@dataclass(frozen=True)
class RecordedToolRequest:
    """One request the fake received (``/health`` excluded)."""

    path: str
    """Path without the query string."""
    query: dict[str, str]
    """Query parameters (the last value of a repeated one)."""
    headers: dict[str, str]
    """Header names in lower case."""
    received_at: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` when the request was read."""


def _fold(text: str) -> str:
    """Case- and accent-insensitive form: "sao paulo" finds "São Paulo"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def geocode(query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """``GET /v1/search``: cities whose name starts with ``name``."""
    name = _fold(query.get("name", "").strip())
    try:
        count = min(max(int(query.get("count") or 10), 1), 100)
    except ValueError:
        return 400, {"error": True, "reason": "Parameter 'count' must be an integer"}
    matches = [
        {
            "id": index + 1,
            "name": city,
            "latitude": lat,
            "longitude": lon,
            "country": country,
            "country_code": code,
            "admin1": region,
            "timezone": "GMT",
        }
        for index, (city, country, code, region, lat, lon) in enumerate(CITIES)
        if len(name) >= 2 and _fold(city).startswith(name)  # short names find nothing
    ]
    body: dict[str, Any] = {"generationtime_ms": 0.1}
    if matches:  # the real API omits "results" when nothing matches
        body["results"] = matches[:count]
    return 200, body


def forecast(query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """``GET /v1/forecast``: current conditions derived from a hash of the coordinates."""
    try:
        lat, lon = float(query["latitude"]), float(query["longitude"])
    except (KeyError, ValueError):
        return 400, {"error": True, "reason": "Parameter 'latitude' and 'longitude' required"}
    wanted = [v for v in query.get("current", "").split(",") if v]
    unknown = [v for v in wanted if v not in FORECAST_UNITS]
    if unknown:
        return 400, {"error": True, "reason": f"Cannot initialize from invalid value {unknown[0]}"}
    seed = hashlib.sha256(f"{lat:.2f},{lon:.2f}".encode()).digest()
    values: dict[str, float | int] = {
        "temperature_2m": round(-10 + seed[0] / 255 * 45, 1),
        "relative_humidity_2m": 20 + seed[1] % 80,
        "wind_speed_10m": round(seed[2] / 255 * 40, 1),
        "wind_direction_10m": seed[3] * 360 // 256,
        "weather_code": _WEATHER_CODES[seed[4] % len(_WEATHER_CODES)],
    }
    return 200, {
        "latitude": lat,
        "longitude": lon,
        "generationtime_ms": 0.05,
        "utc_offset_seconds": 0,
        "timezone": "GMT",
        "timezone_abbreviation": "GMT",
        "elevation": float(seed[5]),
        "current_units": {"time": "iso8601", "interval": "seconds"}
        | {v: FORECAST_UNITS[v] for v in wanted},
        "current": {"time": "2026-01-01T12:00", "interval": 900} | {v: values[v] for v in wanted},
    }


def search(
    query: dict[str, str], corpus: Sequence[tuple[str, str, str]] = CORPUS
) -> tuple[int, dict[str, Any]]:
    """``GET /search``: corpus entries sharing words with ``q``, best first."""
    if query.get("format") != "json":
        return 403, {"error": "format not allowed"}  # SearXNG's answer too
    q = query.get("q", "")
    words = set(re.findall(r"\w+", _fold(q)))
    scored = []
    for index, (title, url, content) in enumerate(corpus):
        score = len(words & set(re.findall(r"\w+", _fold(f"{title} {content}"))))
        if score:
            scored.append((-score, index, title, url, content))
    results = [
        {
            "title": title,
            "url": url,
            "content": content,
            "engine": "fake",
            "engines": ["fake"],
            "positions": [position],
            "score": float(-negative),
            "category": "general",
        }
        for position, (negative, _, title, url, content) in enumerate(sorted(scored), 1)
    ]
    return 200, {
        "query": q,
        "number_of_results": len(results),
        "results": results,
        "answers": [],
        "corrections": [],
        "infoboxes": [],
        "suggestions": [],
        "unresponsive_engines": [],
    }


def _query(url: SplitResult) -> dict[str, str]:
    """Query parameters, the last value of a repeated one."""
    return {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}


_ROUTES = {"/v1/search": geocode, "/v1/forecast": forecast, "/search": search}


class _Handler(LoopbackHandler["FakeToolServer"]):
    content_type = "application/json; charset=utf-8"

    def do_GET(self) -> None:
        self.handle_request()

    def error_body(self, status: int, message: str, error_type: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"error": True, "reason": message}
        if error_type:
            body["type"] = error_type
        return body

    def recorded(self, url: SplitResult) -> RecordedToolRequest:
        headers = {k.lower(): v for k, v in self.headers.items()}
        return RecordedToolRequest(url.path, _query(url), headers)

    def serve(self, url: SplitResult, fault: Fault) -> None:
        if url.path == "/search":
            return self.send_json(*search(_query(url), (*self.fake.pages, *CORPUS)))
        route = _ROUTES.get(url.path)
        if route is None:
            return self.send_error_json(404, f"Not found: {url.path}")
        self.send_json(*route(_query(url)))


class FakeToolServer(LoopbackServer[RecordedToolRequest]):
    """The fake tool APIs on ``127.0.0.1``, served from a daemon thread. Each request
    takes at most one fault from ``faults``; ``requests`` records what came in.
    ``base_url`` is the weather, geocoding and search base URL."""

    handler = _Handler
    thread_name = "fake-tools"

    pages: list[tuple[str, str, str]]
    """Extra search results ``(title, url, content)`` served before the built-in corpus
    (e.g. a hostile page for injection tests); ``reset()`` forgets them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pages = []

    def reset(self) -> None:
        """Forget recorded requests, faults and extra pages."""
        super().reset()
        self.pages = []


def main(argv: list[str] | None = None) -> None:
    """Serve the fake until Ctrl-C, printing its base URL."""
    serve_until_interrupted(FakeToolServer, "Fake weather, geocoding and search APIs", 8766, argv)


if __name__ == "__main__":
    main()
