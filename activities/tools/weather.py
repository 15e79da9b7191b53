"""The ``get_weather`` tool activity, on an Open-Meteo-compatible API.

Two GETs: the geocoding API turns the place name into coordinates, the forecast API
gives the current conditions there.
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity

from activities.tools._common import HttpTool, parse_arguments
from durable_agent.activity_models import ToolCall, ToolResult
from durable_agent.tools.registry import GET_WEATHER, GetWeatherArgs

CURRENT_VARIABLES = "temperature_2m,relative_humidity_2m,wind_speed_10m,weather_code"

WMO_WEATHER_CODES: dict[int, str] = {
    0: "clear sky",
    1: "mainly clear",
    2: "partly cloudy",
    3: "overcast",
    45: "fog",
    48: "depositing rime fog",
    51: "light drizzle",
    53: "moderate drizzle",
    55: "dense drizzle",
    56: "light freezing drizzle",
    57: "dense freezing drizzle",
    61: "slight rain",
    63: "moderate rain",
    65: "heavy rain",
    66: "light freezing rain",
    67: "heavy freezing rain",
    71: "slight snowfall",
    73: "moderate snowfall",
    75: "heavy snowfall",
    77: "snow grains",
    80: "slight rain showers",
    81: "moderate rain showers",
    82: "violent rain showers",
    85: "slight snow showers",
    86: "heavy snow showers",
    95: "thunderstorm",
    96: "thunderstorm with slight hail",
    99: "thunderstorm with heavy hail",
}
"""WMO weather interpretation codes, as Open-Meteo documents them."""


class _Place(BaseModel):
    name: str
    latitude: float
    longitude: float
    country: str | None = None
    country_code: str | None = None
    admin1: str | None = None

    def matches(self, qualifier: str) -> bool:
        wanted = qualifier.casefold()
        return any(
            part is not None and part.casefold() == wanted
            for part in (self.country, self.country_code, self.admin1)
        )


class _Geocoding(BaseModel):
    results: list[_Place] = []  # Open-Meteo omits the key when nothing matches


class _Current(BaseModel):
    temperature_2m: float
    relative_humidity_2m: float
    wind_speed_10m: float
    weather_code: int


class _Forecast(BaseModel):
    current: _Current
    current_units: dict[str, str] = {}


class WeatherTool(HttpTool):
    """Current weather for a place name."""

    @activity.defn(name=GET_WEATHER.activity_name)
    async def get_weather(self, call: ToolCall) -> ToolResult:
        """``Paris, France: 14.2 °C, wind 11.0 km/h, humidity 70%, partly cloudy``."""
        args = parse_arguments(GetWeatherArgs, call)
        if isinstance(args, ToolResult):
            return args
        place = await self._geocode(args.location, call)
        if isinstance(place, ToolResult):
            return place
        forecast = await self._get(
            self._settings.weather_url,
            "/v1/forecast",
            params={
                "latitude": place.latitude,
                "longitude": place.longitude,
                "current": CURRENT_VARIABLES,
            },
            call=call,
            service="weather service",
            response_model=_Forecast,
        )
        if isinstance(forecast, ToolResult):
            return forecast
        return ToolResult(outcome="ok", content=_describe(place, forecast))

    async def _geocode(self, location: str, call: ToolCall) -> _Place | ToolResult:
        # Geocoding searches names only: "Lima, Peru" asks for "Lima" and keeps the
        # first candidate whose country, country code or region is "Peru".
        name, _, qualifier = (part.strip() for part in location.partition(","))
        found = await self._get(
            self._settings.geocoding_url,
            "/v1/search",
            params={"name": name, "count": 10 if qualifier else 1, "format": "json"},
            call=call,
            service="geocoding service",
            response_model=_Geocoding,
        )
        if isinstance(found, ToolResult):
            return found
        candidates = [p for p in found.results if not qualifier or p.matches(qualifier)]
        if not candidates:
            return ToolResult(outcome="error", content=f"no place named {location!r}")
        return candidates[0]


def _describe(place: _Place, forecast: _Forecast) -> str:
    now, units = forecast.current, forecast.current_units
    where = f"{place.name}, {place.country}" if place.country else place.name
    sky = WMO_WEATHER_CODES.get(now.weather_code, f"weather code {now.weather_code}")
    return (
        f"{where}: {now.temperature_2m:.1f} {units.get('temperature_2m', '°C')}, "
        f"wind {now.wind_speed_10m:.1f} {units.get('wind_speed_10m', 'km/h')}, "
        f"humidity {now.relative_humidity_2m:.0f}{units.get('relative_humidity_2m', '%')}, "
        f"{sky}"
    )
