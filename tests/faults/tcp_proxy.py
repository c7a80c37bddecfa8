"""A TCP fault proxy for tests: put it between the code under test and a real service (PostgreSQL,
Redis, ...) and break the path on demand, without touching the service other tests use.

    with TcpFaultProxy("127.0.0.1", 5432) as proxy:
        url = f"postgres://postgres@127.0.0.1:{proxy.port}/test_db"   # hand this to the app
        proxy.cut()          # every live connection is reset at once (the server "went away")
        proxy.refuse()       # new connections are reset as soon as they arrive (server down)
        proxy.restore()      # new connections reach the server again
        proxy.stall()        # new connections are accepted and never answered (a host that hangs)
        proxy.cut_on(b'INSERT INTO "audit_accesslog"')  # reset the one connection that sends this

The proxy listens on 127.0.0.1 on a free port and serves each connection with two daemon threads
(one per direction). "Reset" closes both sockets with SO_LINGER 0, so the client sees ECONNRESET at
once, as when a server process dies, rather than waiting for a timeout.
"""

from __future__ import annotations

import socket
import struct
import threading

_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST instead of FIN


def _arm_reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        # close() alone neither wakes a pump thread blocked in recv() on this socket nor releases it (the
        # blocked call holds it open); shutting the read side does both, and the RST follows the close.
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass


def _reset(sock: socket.socket) -> None:
    _arm_reset(sock)
    try:
        sock.close()
    except OSError:
        pass


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes the other direction's pump (see _reset)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Link:
    """One client connection and its upstream connection, and the two threads pumping between them."""

    def __init__(self, client: socket.socket, upstream: socket.socket):
        self.client = client
        self.upstream = upstream
        self.pumps: list[threading.Thread] = []
        self._closed = threading.Event()

    def close(self, *, reset: bool) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if reset:
            # The reset is sent when the socket is released, and a pump blocked in recv() holds it until it
            # wakes (see _reset): wait for the pumps, so the peer has its reset when this returns. Without the
            # wait, a busy machine could let the next request find its connection still quiet (a flaky gate).
            for sock in (self.client, self.upstream):
                _arm_reset(sock)
            current = threading.current_thread()
            for pump in self.pumps:
                if pump is not current and pump.is_alive():
                    pump.join(timeout=5)
        for sock in (self.client, self.upstream):
            (_reset if reset else _close)(sock)


class TcpFaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._refusing = False
        self._stalling = False
        self._held: list[socket.socket] = []  # connections accepted while stalling, never answered
        self._triggers: list[bytes] = []  # one-shot: the connection that sends one of these is reset
        self.accepted = 0  # connections accepted (refused ones included)
        self.refused = 0  # connections reset on arrival while refusing
        self.stalled = 0  # connections held unanswered while stalling
        self.cut_connections = 0  # live connections reset by cut() or a trigger
        self._listener = socket.create_server((host, 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-fault-proxy", daemon=True)

    # --- faults ----------------------------------------------------------------------------------
    def cut(self) -> int:
        """Reset every live connection; returns how many there were. New connections still pass."""
        with self._lock:
            links, self._links = list(self._links), set()
            self.cut_connections += len(links)
        for link in links:
            link.close(reset=True)
        return len(links)

    def refuse(self) -> None:
        """Reset every new connection on arrival (the service is down). Live ones are left alone: call
        cut() too for a full outage."""
        with self._lock:
            self._refusing = True

    def stall(self) -> None:
        """Accept new connections and never answer them (a host that hangs rather than refuses); they are
        reset on restore(). Live ones are left alone: call cut() too."""
        with self._lock:
            self._stalling = True

    def restore(self) -> None:
        """New connections reach the service again; pending triggers are dropped, stalled connections reset."""
        with self._lock:
            self._refusing = False
            self._stalling = False
            self._triggers.clear()
            held, self._held = self._held, []
        for sock in held:
            _reset(sock)

    def outage(self) -> int:
        """refuse() then cut(): nothing gets through until restore()."""
        self.refuse()
        return self.cut()

    def cut_on(self, pattern: bytes) -> None:
        """Reset the first connection whose client sends `pattern`, before those bytes reach the server
        (so the statement is never executed). One-shot; the proxy keeps serving everything else."""
        with self._lock:
            self._triggers.append(pattern)

    @property
    def live_connections(self) -> int:
        with self._lock:
            return len(self._links)

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> TcpFaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        try:
            self._listener.close()
        except OSError:
            pass
        self.cut()
        self.restore()  # resets held connections
        self._thread.join(timeout=5)

    def __enter__(self) -> TcpFaultProxy:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- plumbing --------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        self._listener.settimeout(0.2)  # so stop() is noticed
        while not self._stopped.is_set():
            try:
                client, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self._lock:
                self.accepted += 1
                refusing, stalling = self._refusing, self._stalling
                if refusing:
                    self.refused += 1
                elif stalling:
                    self.stalled += 1
                    self._held.append(client)
            if refusing:
                _reset(client)
                continue
            if stalling:
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            link = _Link(client, upstream)
            with self._lock:
                self._links.add(link)
            for source, target, inspect in ((client, upstream, True), (upstream, client, False)):
                pump = threading.Thread(
                    target=self._pump, args=(link, source, target, inspect), name="tcp-fault-proxy-pump", daemon=True
                )
                link.pumps.append(pump)
                pump.start()

    def _triggered(self, tail: bytes, chunk: bytes) -> bool:
        window = tail + chunk  # a pattern split across two reads is still seen
        with self._lock:
            for pattern in self._triggers:
                if pattern in window:
                    self._triggers.remove(pattern)
                    return True
        return False

    def _pump(self, link: _Link, source: socket.socket, target: socket.socket, inspect: bool) -> None:
        tail = b""
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                if inspect and self._triggers and self._triggered(tail, chunk):
                    with self._lock:
                        self._links.discard(link)
                        self.cut_connections += 1
                    link.close(reset=True)
                    return
                target.sendall(chunk)
                tail = chunk[-256:]
        except OSError:
            pass
        with self._lock:
            self._links.discard(link)
        link.close(reset=False)
