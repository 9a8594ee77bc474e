"""The sandbox's HTTP face: LinkedIn's paths, over real HTTP/1.1 with keep-alive."""

from __future__ import annotations

import json
import random
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox.state import Response, SandboxState


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each answer waits ~40 ms.
    disable_nagle_algorithm = True
    server: SandboxServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        pass  # the state keeps a call log; per-request lines would drown the tests' output

    def _send(self, answer: Response) -> None:
        status, body, headers = answer
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _fault(self, kind: str, state: SandboxState) -> bool:
        """Play fault ``kind``; True when the answer has been given (or refused)."""
        if kind in ("timeout", "slow"):
            time.sleep(state.config.fault_timeout_seconds if kind == "timeout"
                       else state.config.fault_slow_seconds)
            return False
        if kind == "revoke":
            state.revoke(self.headers.get("Authorization"))
            return False
        self.close_connection = True
        if kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        elif kind == "error_5xx":
            self._send((random.choice((500, 502, 503, 504)),
                        {"message": "Internal Server Error", "status": 500}, {}))
        elif kind == "throttle":
            self._send((429, {"message": "Too many requests", "status": 429},
                        {"Retry-After": "1"}))
        elif kind == "malformed":
            self._send_raw(200, b'{"results": {"urn:li:simpleJobPostingTask:')
        elif kind == "truncated":
            self._send_raw(200, b'{"results": {}, "errors": {}}', declared_extra=200)
        return True

    def _send_raw(self, status: int, payload: bytes, declared_extra: int = 0) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload) + declared_extra))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 - stdlib's name
        parts = urlsplit(self.path)
        state = self.server.state
        if parts.path == "/v2/simpleJobPostingTasks":
            fault = state.pick_fault()
            if fault and self._fault(fault, state):
                return
            self._send(state.task_status(parts.query, self.headers.get("Authorization")))
        elif parts.path == "/_sandbox/calls":
            calls = state.status_calls()
            self._send((200, {"status_calls": len(calls),
                              "token_requests": state.token_requests}, {}))
        else:
            self._send((404, {"message": f"no such path {parts.path}", "status": 404}, {}))

    def do_POST(self) -> None:  # noqa: N802 - stdlib's name
        parts = urlsplit(self.path)
        state = self.server.state
        raw = self._body()
        if parts.path == "/oauth/v2/accessToken":
            self._send(state.issue_token(parse_qs(raw.decode(errors="replace"))))
        elif parts.path == "/v2/simpleJobPostings":
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                self._send((400, {"message": "body is not JSON", "status": 400}, {}))
                return
            self._send(state.post_jobs(body, self.headers.get("Authorization"),
                                       self.headers.get("x-restli-method")))
        else:
            self._send((404, {"message": f"no such path {parts.path}", "status": 404}, {}))


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, state: SandboxState, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        super().__init__((host, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out or was killed mid-answer is normal here, not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="sandbox", daemon=True)
        thread.start()
        return thread
