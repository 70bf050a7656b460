"""A real local HTTP server for download tests: byte ranges, redirects, and fault knobs.

Serves in-memory files by path (GET and HEAD), answers ``Range: bytes=N-`` with 206 (honouring
``If-Range``), and records every request. Knobs: drop the connection after some bytes, serve
corrupted bytes, ignore Range requests.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Resource:
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    redirect: str | None = None  # answer 302 to this URL (with ``headers``)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class LocalServer:
    def __init__(self) -> None:
        self.resources: dict[str, Resource] = {}
        self.requests: list[Seen] = []
        self.drops: dict[str, list[int]] = {}  # path -> bytes sent before each next drop
        self.corrupt: set[str] = set()
        self.ranges = True
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, path: str, body: bytes, **headers: str) -> None:
        self.resources[path] = Resource(body, dict(headers))

    def gets(self, path: str | None = None) -> list[Seen]:
        return [r for r in self.requests if r.method == "GET" and path in (None, r.path)]

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def serving() -> Iterator[LocalServer]:
    server = LocalServer().start()
    try:
        yield server
    finally:
        server.stop()


def validator(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


def corrupted(body: bytes) -> bytes:
    middle = len(body) // 2
    return body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]


def _handler(server: LocalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: object) -> None:
            return None

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def _answer(self, send_body: bool) -> None:
            path = self.path.split("?")[0]
            server.requests.append(Seen(self.command, path, dict(self.headers.items())))
            resource = server.resources.get(path)
            if resource is None:
                self._reply(404, {}, b"not found", send_body)
                return
            if resource.redirect is not None:
                self._reply(302, {"Location": resource.redirect, **resource.headers}, b"", False)
                return
            body = corrupted(resource.body) if path in server.corrupt else resource.body
            headers = {"ETag": validator(resource.body), **resource.headers}
            start = self._range_start(headers["ETag"])
            if start is not None and start >= len(body):
                self._reply(416, {"Content-Range": f"bytes */{len(body)}"}, b"", send_body)
                return
            if start is None:
                status, part = 200, body
            else:
                status, part = 206, body[start:]
                headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
            drops = server.drops.get(path)
            cut = drops.pop(0) if send_body and drops else None
            self._reply(status, headers, part, send_body, cut)

        def _range_start(self, etag: str) -> int | None:
            wanted = self.headers.get("Range", "")
            if not server.ranges or not wanted.startswith("bytes="):
                return None
            if self.headers.get("If-Range") not in (None, etag):
                return None  # the file changed: send all of it
            return int(wanted.removeprefix("bytes=").split("-")[0])

        def _reply(
            self,
            status: int,
            headers: dict[str, str],
            body: bytes,
            send_body: bool,
            cut: int | None = None,
        ) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            if cut is not None:
                self.send_header("Connection", "close")
            self.end_headers()
            if send_body:
                self.wfile.write(body if cut is None else body[:cut])
                self.wfile.flush()
            if cut is not None:
                self.close_connection = True

    return Handler
