"""A TCP proxy in front of Redis that can lose a reply: it lets a command through, waits
for Redis to answer it, and closes the client's connection instead of passing the answer
on — a connection that died after the write and before the reply."""

from __future__ import annotations

import contextlib
import select
import socket
import threading

from jobops.dev.processes import free_port

CHUNK_BYTES = 65536


class ReplyLosingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self._cuts: list[bytes] = []
        self.cut_count = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="reply-losing-proxy", daemon=True).start()

    def lose_reply_to(self, marker: bytes) -> None:
        """Lose the reply to the next command holding ``marker`` (once per call)."""
        with self._lock:
            self._cuts.append(marker)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _armed(self, data: bytes) -> bool:
        with self._lock:
            for marker in self._cuts:
                if marker in data:
                    self._cuts.remove(marker)
                    return True
        return False

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        cutting = False
        with contextlib.closing(client), contextlib.closing(upstream):
            while not self._closed.is_set():
                readable, _, _ = select.select([client, upstream], [], [], 0.5)
                for sock in readable:
                    data = sock.recv(CHUNK_BYTES)
                    if not data:
                        return
                    if sock is client:
                        cutting = cutting or self._armed(data)
                        upstream.sendall(data)
                    elif cutting:
                        # Redis has run the command: its answer goes nowhere.
                        with self._lock:
                            self.cut_count += 1
                        return
                    else:
                        client.sendall(data)
