"""A real HTTP server on 127.0.0.1 (stdlib, in a thread) that plays a webhook receiver.

Each request takes the next scripted behaviour (the last one repeats): `ok` (200), an HTTP
status as an int, `slow` (answers 200 after `slow_s`), `hang` (answers only once the test
ends, so the client times out). Every request is recorded with its headers and body.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    script: list[Any]
    slow_s: float = 0.3
    requests: list[Received] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_behaviour(self) -> Any:
        with self.lock:
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def keys(self) -> list[str]:
        return [r.headers.get("Idempotency-Key", "") for r in self.requests]


@contextmanager
def http_receiver(*script: Any, slow_s: float = 0.3) -> Iterator[Receiver]:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.requests.append(Received(self.path, dict(self.headers), body))
            behaviour = receiver.next_behaviour()
            if behaviour == "hang":
                # Held until the test ends: the client's timeout must fire first.
                receiver.released.wait(30)
                status = 200
            elif behaviour == "slow":
                receiver.released.wait(receiver.slow_s)
                status = 200
            else:
                status = 200 if behaviour == "ok" else int(behaviour)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
            except OSError:
                pass  # the client gave up (timeout) and closed the connection

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    receiver = Receiver(f"http://{host}:{port}/hook", list(script) or ["ok"], slow_s)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.released.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
