"""The machinery the loopback fakes share: an HTTP server on 127.0.0.1 in a daemon thread.

:class:`LoopbackServer` starts and stops it (cutting every open connection on stop, so a
stopped fake looks like an outage), records requests under a lock and holds the
:class:`~durable_agent.testing.faults.FaultScript`. :class:`LoopbackHandler` is the
request handler's base: ``/health``, recording, fault application (delay, drop, status
with ``retry-after``) and JSON responses. A fake supplies what it records, what it
serves and what its error bodies look like.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Generic, Self, TypeVar, cast
from urllib.parse import SplitResult, urlsplit

from durable_agent.testing.faults import Fault, FaultScript

R = TypeVar("R")
"""What a fake records per request."""
F = TypeVar("F", bound="LoopbackServer[Any]")
"""The fake a handler serves for."""

_REASONS = {529: "Overloaded"}  # http.server knows the standard reason phrases


def retry_after_header(seconds: float) -> str:
    """``retry-after`` as the real APIs send it: whole seconds as an integer; the
    clients parse any float, so fractions are kept."""
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # open (streaming) responses must not keep the process alive
    request_queue_size = 128  # load scripts open many connections at once

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        fake: LoopbackServer[Any],
    ) -> None:
        super().__init__(address, handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hang up on timeouts and stop() cuts connections: not a fake bug.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class LoopbackServer(Generic[R]):
    """A fake HTTP API on ``127.0.0.1``, served from a daemon thread.

    Each request takes at most one fault from ``faults``; ``requests`` records what came
    in. After ``stop()``, ``start()`` serves again on the same port (an outage and back).
    Subclasses name their ``handler`` (a :class:`LoopbackHandler`).
    """

    handler: ClassVar[type[LoopbackHandler[Any]]]
    """Serves each request."""
    thread_name: ClassVar[str] = "fake"
    """Prefix of the serving thread's name."""

    def __init__(
        self, faults: FaultScript | None = None, *, port: int = 0, verbose: bool = False
    ) -> None:
        self.faults = faults if faults is not None else FaultScript()
        """What goes wrong, one fault per request."""
        self.verbose = verbose
        """Log each request to stderr."""
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[R] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def requests(self) -> list[R]:
        """A snapshot of the recorded requests, oldest first."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget recorded requests and every fault."""
        with self._lock:
            self._requests.clear()
        self.faults.clear()

    def start(self) -> Self:
        """Bind and serve; returns self. A no-op if already serving."""
        if self._httpd is None:
            self._stopping.clear()
            self._httpd = _HTTPServer(("127.0.0.1", self._port), self.handler, self)
            self._port = self._httpd.server_address[1]
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.01},  # stop() waits for this loop to notice
                name=f"{self.thread_name}-{self._port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut every open connection (kept-alive ones and streams too);
        delayed and slow responses are cut short. Returns fast."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _record(self, request: R) -> None:
        with self._lock:
            self._requests.append(request)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if not add:
                self._connections.discard(conn)
            elif self._stopping.is_set():  # accepted just as stop() ran
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            else:
                self._connections.add(conn)


class LoopbackHandler(BaseHTTPRequestHandler, Generic[F]):
    """Request handler base: ``/health`` (never recorded nor faulted), then
    :meth:`recorded`, one fault from the script, then :meth:`serve`.

    A fake's ``do_GET`` / ``do_POST`` call :meth:`handle_request`.
    """

    protocol_version = "HTTP/1.1"  # keep-alive, as pooled HTTP clients expect
    disable_nagle_algorithm = True  # headers and body go out separately: no 40 ms stalls
    content_type: ClassVar[str] = "application/json"
    """``content-type`` of JSON responses."""

    @property
    def fake(self) -> F:
        """The fake server this request came to."""
        return cast(F, cast(_HTTPServer, self.server).fake)

    def recorded(self, url: SplitResult) -> Any:
        """What to record of this request (its body may be read here)."""
        raise NotImplementedError

    def serve(self, url: SplitResult, fault: Fault) -> None:
        """Answer a request no fault has answered; ``fault`` may still shape a stream."""
        raise NotImplementedError

    def error_body(self, status: int, message: str, error_type: str | None) -> dict[str, Any]:
        """The API's JSON body for an error response."""
        raise NotImplementedError

    def extra_headers(self) -> Mapping[str, str]:
        """Headers sent with every response."""
        return {}

    def setup(self) -> None:
        super().setup()
        self.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.fake._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        if self.fake.verbose:
            super().log_message(format, *args)

    def handle_request(self) -> None:
        """Health, record, apply the next fault, serve."""
        url = urlsplit(self.path)
        try:
            if url.path == "/health":
                return self.send_json(200, {"ok": True})
            self.fake._record(self.recorded(url))
            fault = self.fake.faults.take(url.path) or Fault()
            if self.pause(fault.delay) or fault.drop:
                return self.abort()  # stop() during the delay cuts it short too
            if fault.status is not None:
                message = f"Injected fault: HTTP {fault.status}"
                if fault.message is not None:
                    auth = self.headers.get("x-api-key") or self.headers.get("authorization") or ""
                    message = fault.message.replace("{auth}", auth)
                return self.send_error_json(
                    fault.status, message, fault.error_type, fault.retry_after
                )
            self.serve(url, fault)
        except OSError:  # the client hung up, or stop() shut the socket
            self.close_connection = True

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds``; True when ``stop()`` cut the wait short (or had been called)."""
        return self.fake._stopping.wait(seconds)

    def send_head(self, status: int, headers: Mapping[str, str]) -> None:
        """Status line and headers (the fake's ``extra_headers`` first)."""
        self.send_response(status, _REASONS.get(status))
        for name, value in {**self.extra_headers(), **headers}.items():
            self.send_header(name, value)
        self.end_headers()

    def send_json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        """A complete JSON response."""
        data = json.dumps(obj).encode()
        self.send_head(
            status,
            {
                "content-type": self.content_type,
                "content-length": str(len(data)),
                **(headers or {}),
            },
        )
        self.wfile.write(data)

    def send_error_json(
        self,
        status: int,
        message: str,
        error_type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """An error response in the fake API's format, with ``retry-after`` if given."""
        headers = {} if retry_after is None else {"retry-after": retry_after_header(retry_after)}
        self.send_json(status, self.error_body(status, message, error_type), headers)

    def abort(self) -> None:
        """Close the connection at once, mid-response or before any."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def serve_until_interrupted(
    fake: type[LoopbackServer[Any]], label: str, default_port: int, argv: list[str] | None
) -> None:
    """A fake's command line: ``--port P``, serve until Ctrl-C, printing its base URL."""
    parser = argparse.ArgumentParser(description=f"{label} on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=default_port, help="0 picks a free port")
    args = parser.parse_args(argv)
    # Ctrl-C stops it however it was started: a shell starts a background job (``&``)
    # with SIGINT ignored, which a child inherits and Python then keeps ignoring.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with fake(port=args.port, verbose=True) as srv:
        try:
            print(f"{label} at {srv.base_url} (Ctrl-C to stop)", flush=True)
            while True:
                # Short sleeps, not one long one: CPython runs a signal's handler between
                # bytecodes, so a Ctrl-C that lands after the last check but before the
                # sleep starts (the GIL handed to a request thread in between) would wait
                # for the whole sleep.
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
