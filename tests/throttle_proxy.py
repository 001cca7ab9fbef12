"""A throttling TCP proxy on 127.0.0.1 for tests: a slow uplink in front of a local server.

Bytes from clients to the server are paced to `rate` bytes per second, shared by every
connection (one uplink, as a Colab VM's); replies flow back unthrottled. Pure stdlib: one thread
accepts, two threads per connection copy bytes. `rate` may be changed while it runs (a link that
gets faster or slower), and `close()` cuts every connection at once.

    with ThrottleProxy(target_port=emulator.port, rate=1_000_000) as proxy:
        env = {"STORAGE_EMULATOR_HOST": proxy.url}
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType


class Pacer:
    """Paces chunks to `rate` bytes/s: each chunk reserves the next slot on one shared clock, so
    concurrent connections share the rate and a small request waits at most a chunk or two."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def wait(self, size: int) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(self._next, now)  # an idle link saves up no burst
            self._next = start + size / self.rate if self.rate > 0 else now
        delay = start - now
        if delay > 0:
            time.sleep(delay)


class ThrottleProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to `target_host:target_port`."""

    def __init__(self, target_port: int, rate: float, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.pacer = Pacer(rate)
        self.port = 0
        self.bytes_up = 0  # client → server bytes forwarded, for tests that want to see traffic
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()

    @property
    def rate(self) -> float:
        return self.pacer.rate

    @rate.setter
    def rate(self, value: float) -> None:
        """Takes effect from the next chunk on, also for transfers already under way."""
        self.pacer.rate = value

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _chunk(self) -> int:
        # ~50 slots a second keep pacing smooth; never below 1 KiB nor above 64 KiB
        return int(min(64 * 1024, max(1024, self.pacer.rate / 50)))

    def start(self) -> ThrottleProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept_loop)
        return self

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        try:
            sock.close()
        except OSError:
            pass

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._track(sock)
            done = threading.Barrier(2, action=lambda c=client, u=upstream: (self._forget(c), self._forget(u)))
            self._spawn(self._pump, client, upstream, True, done)
            self._spawn(self._pump, upstream, client, False, done)

    def _pump(self, source: socket.socket, sink: socket.socket, throttled: bool, done: threading.Barrier) -> None:
        """Copy one direction until EOF, then pass the half-close on; the last of the pair closes both."""
        try:
            while not self._closed.is_set():
                size = self._chunk() if throttled else 256 * 1024
                try:
                    data = source.recv(size)
                except OSError:
                    break
                if not data:
                    break
                if throttled:
                    self.pacer.wait(len(data))
                    with self._lock:
                        self.bytes_up += len(data)
                try:
                    sink.sendall(data)
                except OSError:
                    break
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        finally:
            try:
                done.wait()  # the other direction ends too: at its EOF, or when close() cuts it
            except threading.BrokenBarrierError:
                self._forget(source)
                self._forget(sink)

    def close(self) -> None:
        """Stop accepting and cut every open connection."""
        self._closed.set()
        if self._listener is not None:
            try:
                self._listener.close()
            except OSError:
                pass
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._forget(sock)
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> ThrottleProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
