"""A throwaway PostgreSQL server for tests, from the binaries of the ``pgserver`` wheel.

``pgserver`` (a test dependency) ships a PostgreSQL build inside its wheel, so nothing
is downloaded or installed by a system package manager. Only its binaries are used:
``initdb`` a cluster in a temporary directory (fsync off: it lives for one session),
``pg_ctl`` it up on 127.0.0.1 with password authentication, so the stores connect with
a ``postgresql://user:password@127.0.0.1:port/db`` URL as in production::

    with PostgresServer() as server:
        url = server.create_database()

PostgreSQL refuses to run as root; as root, the server runs as ``nobody`` (from a copy
of the build in the temporary directory when ``nobody`` cannot reach the installed one,
e.g. in a virtualenv under ``/root``).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from durable_agent.devserver import free_port

USER = "agent"
START_TIMEOUT_SECONDS = 30


class PostgresServerError(RuntimeError):
    """The server could not be found, started or used."""


def postgres_bin() -> Path:
    """The ``bin`` directory of the PostgreSQL build inside the ``pgserver`` package
    (found without importing it: its import has side effects we do not need)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresServerError("no PostgreSQL binaries: install the `pgserver` package")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _copy_build(bin_dir: Path, into: Path) -> Path:
    """Copy the build beside ``bin_dir`` (and ``pgserver.libs``, which its binaries'
    RPATH names relative to them) under ``into``; the copy's ``bin``."""
    package = bin_dir.parents[1]
    for part in ("bin", "lib", "share"):
        shutil.copytree(package / "pginstall" / part, into / "pgserver/pginstall" / part)
    if (package.parent / "pgserver.libs").exists():
        shutil.copytree(package.parent / "pgserver.libs", into / "pgserver.libs")
    return into / "pgserver/pginstall/bin"


def _others_can_reach(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


class PostgresServer:
    """One PostgreSQL server on 127.0.0.1 with a superuser ``agent``, in a temporary
    directory removed by ``stop``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.password = secrets.token_hex(12)
        self._bin = postgres_bin()
        self._root = Path(tempfile.mkdtemp(prefix="durable-agent-pg-"))
        self._data = self._root / "data"
        # As root, run as nobody: the temporary directory is made theirs.
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self._as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
            os.chown(self._root, nobody.pw_uid, nobody.pw_gid)
            if not _others_can_reach(self._bin):
                self._bin = _copy_build(self._bin, self._root / "build")

    def url(self, database: str = "postgres") -> str:
        """The URL of ``database``, credentials included."""
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Create the cluster and start the server; returns once it accepts connections."""
        password_file = self._root / "password"
        password_file.write_text(self.password)
        self._run(
            "initdb", "-D", str(self._data), "-U", USER, f"--pwfile={password_file}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        password_file.unlink()
        options = (
            f"-h 127.0.0.1 -p {self.port} -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self._data), "-o", options, "-l", str(self._root / "log"),
            "-w", "-t", str(START_TIMEOUT_SECONDS), "start",
        )  # fmt: skip

    def create_database(self, name: str | None = None) -> str:
        """A new empty database (named ``name``, or a fresh one); its URL."""
        name = name or f"test_{secrets.token_hex(6)}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def create_schema(self) -> str:
        """A new empty schema in the ``postgres`` database; the URL of connections that
        use it (``?search_path=``, which asyncpg sends as a server setting). Tests get
        tables of their own this way far faster than with a database each."""
        name = f"test_{secrets.token_hex(6)}"
        self.psql(f'CREATE SCHEMA "{name}"')
        return f"{self.url()}?search_path={name}"

    def psql(self, sql: str, database: str = "postgres") -> None:
        """Run ``sql`` as the superuser."""
        self._run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", database,
            "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql,
            env={**os.environ, "PGPASSWORD": self.password},
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory."""
        try:
            if (self._data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self._data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, program: str, *args: str, env: dict[str, str] | None = None) -> None:
        result = subprocess.run(
            [str(self._bin / program), *args],
            cwd=self._root,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_SECONDS + 10,
            check=False,
            **self._as,
        )
        if result.returncode != 0:
            log = self._root / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise PostgresServerError(
                f"{program} exited {result.returncode}: {result.stderr.strip()}\n{tail}"
            )
