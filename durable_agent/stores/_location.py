"""Where a store lives: a SQLite file (one machine) or a PostgreSQL database (many).

One setting names it (``AGENT_NOTES_DB``, ``AGENT_BLOB_DB``): a path or
``sqlite:///path`` for SQLite, a ``postgresql://user:password@host:5432/db`` URL for
PostgreSQL. The URL is kept as given (``Path`` would fold its ``//``) and its password
is a secret: ``url_passwords`` finds it for the redactor.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")


def store_location(url_or_path: str | Path, what: str = "store") -> Path | str:
    """The SQLite file ``url_or_path`` names, or the PostgreSQL URL itself; raises
    ``ValueError`` (naming the scheme, never the URL) for anything else."""
    if isinstance(url_or_path, Path):
        return url_or_path
    scheme, sep, rest = url_or_path.partition("://")
    if not sep:
        return Path(url_or_path)
    if scheme == "sqlite" and rest.startswith("/") and len(rest) > 1:
        return Path(rest[1:])  # sqlite:///rel/path, sqlite:////abs/path
    if scheme in POSTGRES_SCHEMES:
        try:
            _ = urlsplit(url_or_path).port  # reading it raises on a bad port
        except ValueError:
            raise ValueError(f"{what}: the PostgreSQL URL has an invalid port") from None
        return url_or_path
    raise ValueError(f"unsupported {what} {scheme!r}: use a path, sqlite:///path or postgresql://…")


def url_passwords(url: str) -> list[str]:
    """The password in a database URL (in its authority or a ``password=`` query
    parameter), as written and percent-decoded: what a log line could contain."""
    if "://" not in url:
        return []
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    for pair in parts.query.split("&"):
        name, _, value = pair.partition("=")
        if unquote(name) == "password" and value:
            found.append(value)
    return list(dict.fromkeys(text for raw in found for text in (raw, unquote(raw))))
