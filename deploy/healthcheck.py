"""Container health probe: ``python healthcheck.py [PATH | URL]``.

A PATH is on the worker's health server, ``http://<AGENT_HEALTH_HOST>:<AGENT_HEALTH_PORT>``
(a wildcard bind address is probed on loopback); it defaults to ``/health/live``. A full
URL is probed as given: the gateway serves its health endpoints on its own port
(``http://127.0.0.1:8000/health/ready``). Exits 0 when the endpoint answers 2xx, 1
otherwise (refused, timed out, or any other status, e.g. 503 while not ready).

Standard library only: the slim image has no curl or wget. Used by the Dockerfile's
``HEALTHCHECK`` (liveness) and by docker-compose.yml (readiness of the worker and the
gateway).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

DEFAULT_PATH = "/health/live"
DEFAULT_PORT = "8081"
TIMEOUT_SECONDS = 3.0
_WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


def probe_url(path: str, env: Mapping[str, str]) -> str:
    """The URL to probe for ``path``: a worker health path is resolved with the worker's
    own health settings; a full URL is taken as it is."""
    if path.startswith(("http://", "https://")):
        return path
    host = env.get("AGENT_HEALTH_HOST", "").strip()
    if host in _WILDCARDS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    port = env.get("AGENT_HEALTH_PORT", "").strip() or DEFAULT_PORT
    return f"http://{host}:{port}/{path.lstrip('/')}"


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Probe once; return the process exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    url = probe_url(args[0] if args else DEFAULT_PATH, os.environ if env is None else env)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as e:  # a non-2xx answer: alive but not healthy
        e.close()
        print(f"unhealthy: {url} answered {e.code}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as e:
        print(f"unhealthy: {url}: {e}", file=sys.stderr)
        return 1
    if not 200 <= status < 300:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
