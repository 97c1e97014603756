"""A small TCP/HTTP server on 127.0.0.1 for the health probe tests.

ProbeServer listens on a port of its own (conftest.free_port()) in a thread
and answers each connection as its current mode says; a test switches the
mode at run time (server.mode = "error"):

  ok       read the request, answer "HTTP/1.0 200 OK"
  error    read the request, answer "HTTP/1.0 500 Internal Server Error"
  hang     accept, read the request, never answer (until the client or the
           server closes)
  trickle  read the request, send "HTTP/1.0 200 OK\\r\\n" one byte a second
  reset    read the request, then reset the connection (SO_LINGER 0: RST)
  garbage  read the request, answer bytes that are not HTTP, terminal
           escapes included, then close
  close    accept and send FIN at once (no byte ever), then drain the
           request and close

stop_listening() closes the listening socket (a connect is refused),
listen_again() binds the same port again. Every connection is served by a
thread that ends by itself within CONN_LIMIT seconds, and stop() ends them
all at once: no thread, socket or connection outlives the fixture.

The server counts the connections it accepted and keeps each request's
first line and headers (what droverd sends: GET PATH HTTP/1.0, Host).
"""
import select
import socket
import struct
import threading
import time

from conftest import free_port

MODES = ("ok", "error", "hang", "trickle", "reset", "garbage", "close")
GARBAGE = b"\x1b[2J\x1b]0;owned\x07SSH-2.0-OpenSSH_9.2\r\n"
CONN_LIMIT = 30.0	# seconds a connection may last, whatever the mode
REQ_MAX = 8192


class ProbeServer:
    def __init__(self, mode="ok", port=None):
        assert mode in MODES, mode
        self.mode = mode
        self.port = port or free_port()
        self.addr = ("127.0.0.1", self.port)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self._conns = set()
        self._lis = None
        self._lis_thread = None
        self.accepted = 0
        self.times = []	# time.monotonic() of each accept
        self.requests = []	# (request line, {header: value}) in arrival order
        self.listen_again()

    # --- what it saw ---------------------------------------------------------
    def count(self):
        with self._lock:
            return self.accepted

    def accept_times(self):
        with self._lock:
            return list(self.times)

    def request_lines(self):
        with self._lock:
            return [r[0] for r in self.requests]

    def last_request(self):
        with self._lock:
            return self.requests[-1] if self.requests else None

    def open_connections(self):
        with self._lock:
            return len(self._conns)

    # --- listening -----------------------------------------------------------
    def listen_again(self):
        assert self._lis is None, "already listening"
        lis = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lis.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lis.bind(self.addr)
        lis.listen(64)
        self._lis = lis
        self._lis_stop = threading.Event()
        self._lis_thread = self._spawn(self._accept_loop, lis, self._lis_stop)

    def stop_listening(self):
        """Close the listening socket: a connect is refused from now on.
        Connections already accepted go on as their mode says."""
        if self._lis is None:
            return
        self._lis_stop.set()
        self._lis_thread.join(5)
        assert not self._lis_thread.is_alive(), "the accept thread did not end"
        self._lis.close()
        self._lis = None

    def stop(self):
        self.stop_listening()
        self._stop.set()
        for t in list(self._threads):
            t.join(5)
            assert not t.is_alive(), "a connection thread did not end"

    # --- inside --------------------------------------------------------------
    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        self._threads.append(t)
        t.start()
        return t

    def _accept_loop(self, lis, lis_stop):
        while not lis_stop.is_set() and not self._stop.is_set():
            r, _, _ = select.select([lis], [], [], 0.05)
            if not r:
                continue
            try:
                c, _ = lis.accept()
            except OSError:
                continue
            with self._lock:
                self.accepted += 1
                self.times.append(time.monotonic())
                self._conns.add(c)
            self._spawn(self._serve, c, self.mode)

    def _ended(self, deadline):
        return self._stop.is_set() or time.monotonic() >= deadline

    def _read_request(self, c, deadline):
        """The request head, up to the blank line (or EOF, or REQ_MAX)."""
        data = b""
        while b"\r\n\r\n" not in data and len(data) < REQ_MAX and not self._ended(deadline):
            r, _, _ = select.select([c], [], [], 0.05)
            if not r:
                continue
            try:
                b = c.recv(REQ_MAX - len(data))
            except OSError:
                break
            if not b:
                break
            data += b
        if data:
            head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            headers = {}
            for h in head[1:]:
                k, _, v = h.partition(":")
                headers[k.strip().lower()] = v.strip()
            with self._lock:
                self.requests.append((head[0], headers))
        return data

    def _until_peer_closes(self, c, deadline):
        """Wait (reading what comes) until EOF, the deadline or stop."""
        while not self._ended(deadline):
            r, _, _ = select.select([c], [], [], 0.05)
            if not r:
                continue
            try:
                if not c.recv(4096):
                    return
            except OSError:
                return

    def _serve(self, c, mode):
        deadline = time.monotonic() + CONN_LIMIT
        try:
            c.setblocking(False)
            if mode == "close":
                c.shutdown(socket.SHUT_WR)
                self._until_peer_closes(c, deadline)
                return
            self._read_request(c, deadline)
            if mode == "ok":
                c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            elif mode == "error":
                c.sendall(b"HTTP/1.0 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
            elif mode == "garbage":
                c.sendall(GARBAGE)
            elif mode == "reset":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif mode == "hang":
                self._until_peer_closes(c, deadline)
            elif mode == "trickle":
                self._trickle(c, deadline)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(c)
            c.close()

    def _trickle(self, c, deadline):
        for byte in b"HTTP/1.0 200 OK\r\n\r\n":
            c.send(bytes([byte]))
            # a second per byte, ending early when the peer goes away
            until = time.monotonic() + 1.0
            while time.monotonic() < until and not self._ended(deadline):
                r, _, _ = select.select([c], [], [], 0.05)
                if r:
                    try:
                        if not c.recv(4096):
                            return
                    except OSError:
                        return
