"""What the Temporal server says it refused: update rejections from its metrics.

An update the server turns away (more than ``history.maxInFlightUpdates`` in flight on
one workflow, or any other resource limit) never reaches history, and the SDK's client
retries it quietly, so neither the histories nor the callers see it. The server counts
it: its Prometheus endpoint (``temporal server start-dev --metrics-port P``) has
``service_error_with_type`` by operation and error type. A rejected update counts as
``serviceerror_ResourceExhausted`` on ``UpdateWorkflowExecution``; a rejected
update-with-start as ``serviceerror_MultiOperationExecution`` on
``ExecuteMultiOperation``. Only the frontend's count is taken (the history service
counts the same calls again).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import httpx

REJECTED = ("serviceerror_ResourceExhausted", "serviceerror_MultiOperationExecution")
"""Error types that mean the server turned a call away."""
SERVER_LOG_REJECTION = "in-flight updates"
"""What the dev server's log says (at warn level) when it refuses an update-with-start."""
_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def rejections(metrics_text: str) -> Counter[str]:
    """Calls the server's frontend rejected, by ``operation/error type``."""
    found: Counter[str] = Counter()
    for line in metrics_text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match["name"] != "service_error_with_type":
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        if labels.get("service_name") == "frontend" and labels.get("error_type") in REJECTED:
            found[f"{labels.get('operation')}/{labels['error_type']}"] += int(float(match["value"]))
    return found


async def scrape(url: str) -> Counter[str]:
    """The server's rejections so far (``rejections`` of its ``/metrics``)."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.get(url)
        response.raise_for_status()
    return rejections(response.text)


def log_rejections(log_file: Path | None) -> int | None:
    """Lines of the dev server's log that report a refused update (None: no log)."""
    if log_file is None or not log_file.exists():
        return None
    with log_file.open(errors="replace") as lines:
        return sum(SERVER_LOG_REJECTION in line for line in lines)
