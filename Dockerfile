# durable-agent worker image.
#
#   docker build -t durable-agent .
#   docker run --rm -e AGENT_TEMPORAL_ADDRESS=temporal:7233 durable-agent
#   docker run --rm durable-agent durable-agent --help      # the starter CLI
#
# Two stages: the first resolves and installs the project into a virtualenv, the
# second copies only that virtualenv onto a clean slim base (every dependency ships
# a binary wheel, so no compiler is needed in either stage, and none is in the image).
# Secrets (ANTHROPIC_API_KEY) come from the environment at run time, never from here.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when they
# change, not on every source edit.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
# Then the project itself, as a regular (not editable) install: the worker.py and
# starter.py modules plus the `durable-agent-worker` and `durable-agent` scripts.
COPY README.md worker.py starter.py ./
COPY durable_agent ./durable_agent
COPY workflows ./workflows
COPY activities ./activities
RUN pip install --no-deps . && pip check

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    AGENT_HEALTH_HOST=0.0.0.0 \
    AGENT_HEALTH_PORT=8081 \
    AGENT_METRICS_HOST=0.0.0.0 \
    AGENT_METRICS_PORT=9464 \
    AGENT_NOTES_DB=/data/notes.sqlite3 \
    AGENT_BLOB_DB=/data/blobs.sqlite3
# The stores default to SQLite files in /data (one host); set AGENT_NOTES_DB and
# AGENT_BLOB_DB to a postgresql:// URL for workers on several (asyncpg is installed).
# A fixed uid so files on shared volumes have one owner across rebuilds and replicas.
# /data is created here, owned by that user, so a new named volume mounted on it
# inherits the ownership.
RUN groupadd --gid 10001 agent \
    && useradd --uid 10001 --gid agent --no-create-home --home-dir /app \
        --shell /usr/sbin/nologin agent \
    && mkdir -p /app /data \
    && chown agent:agent /app /data
COPY --from=build /opt/venv /opt/venv
COPY deploy/healthcheck.py /opt/durable-agent/healthcheck.py
WORKDIR /app
USER 10001:10001
# 8081: /health/live, /health/ready, /health/deep; 9464: Prometheus /metrics.
EXPOSE 8081 9464
# Liveness only: readiness (Temporal reachable, polling) is the orchestrator's call,
# see the worker's healthcheck in docker-compose.yml.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/opt/durable-agent/healthcheck.py", "/health/live"]
# The worker stops polling on SIGTERM and lets in-flight activities finish (30 s grace).
STOPSIGNAL SIGTERM
CMD ["durable-agent-worker"]
