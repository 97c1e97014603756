"""Helpers for the listener, prefork, accept and demand tests.

- Connections: connect/echo helpers with timeouts stretched like every
  other deadline (SLOW), and silent() for "nothing arrives" checks.
- The kernel's view: a process's descriptors and environment (/proc), the
  sockets on a port and their inodes (ss, which the kernel filters: fast
  even with thousands of sockets on the machine), and which processes hold
  a socket. A connection still waiting in a listen backlog has inode 0
  (ss -e): nobody has accepted it yet.
- pidfd_getfd(): a duplicate of another process's descriptor, so a test can
  ask the kernel about the very socket a service got (getsockname,
  getsockopt). Closed again at once.
- Small Python programs for services (written into the test directory).
"""
import ctypes
import os
import socket
import subprocess
from pathlib import Path

from conftest import BUILD, SLOW

ECHO = BUILD / "examples" / "echo-worker"
HELLO = BUILD / "examples" / "hello-worker"
PY = "/usr/bin/python3"

# --- connections -----------------------------------------------------------


def connect(addr, family=socket.AF_INET, timeout=10, source=None):
    """A connected stream socket (addr: (host, port) or a unix path, or
    "\\0name" for an abstract one). source: bind to this address first."""
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout * SLOW)
    if source is not None:
        s.bind(source)
    s.connect(addr)
    return s


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        b = s.recv(n - len(data))
        if not b:
            raise AssertionError(f"connection closed after {data!r}, expected {n} bytes")
        data += b
    return data


def echo_once(s, data):
    """Sends data and returns exactly as many bytes back."""
    s.sendall(data)
    return recv_exact(s, len(data))


def read_to_eof(s):
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def silent(s, window=0.5):
    """True when nothing arrives on s (and it is not closed) within the
    window: for "this connection waits" checks, which can only be shown
    over some time. The window is the longest wait on a negative."""
    old = s.gettimeout()
    s.settimeout(window * SLOW)
    try:
        s.recv(1, socket.MSG_PEEK)
    except socket.timeout:
        return True
    finally:
        s.settimeout(old)
    return False


def udp_ask(addr, data, family=socket.AF_INET, timeout=10):
    """One datagram to addr, one answer back."""
    with socket.socket(family, socket.SOCK_DGRAM) as u:
        u.settimeout(timeout * SLOW)
        u.sendto(data, addr)
        reply, _ = u.recvfrom(65536)
        return reply




# --- /proc -----------------------------------------------------------------


def fds_of(pid):
    """{fd: readlink target} of a process."""
    out = {}
    base = f"/proc/{pid}/fd"
    for name in os.listdir(base):
        try:
            out[int(name)] = os.readlink(f"{base}/{name}")
        except FileNotFoundError:
            pass
    return out


def environ_of(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        items = [x.decode() for x in f.read().split(b"\0") if x]
    return dict(x.split("=", 1) for x in items)




def inode_of(target):
    """'socket:[1234]' -> 1234."""
    assert target.startswith("socket:["), target
    return int(target[len("socket:["):-1])


def _ss(*args):
    """Rows of `ss -H ARGS` (the kernel filters: fast even with many
    sockets on the machine)."""
    cp = subprocess.run(["ss", "-H", *args], capture_output=True, text=True, check=True)
    return [line.split() for line in cp.stdout.splitlines() if line.strip()]


def _ino(row):
    return next(int(x[4:]) for x in row if x.startswith("ino:"))


def _ss_host(host):
    return f"[{host}]" if ":" in host else host


def unix_sockets():
    """/proc/net/unix: {inode: path} ('@name' for abstract, '' unnamed)."""
    out = {}
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            p = line.split()
            out[int(p[6])] = p[7] if len(p) > 7 else ""
    return out


def tcp_states(port, host="127.0.0.1"):
    """States (ss spelling: LISTEN, ESTAB, ...) of every TCP socket whose
    local end is host:port."""
    return [r[0] for r in _ss("-tna", "state", "all", "src", f"{_ss_host(host)}:{port}")]


def tcp_listening(port):
    """True when any socket listens on TCP port (any address)."""
    return bool(_ss("-ltn", "sport", "=", f":{port}"))


def server_side(client):
    """The server's end of a connected TCP client socket: {"state",
    "inode"} (inode 0 while it waits in a backlog: nobody accepted it)."""
    mine = client.getsockname()[:2]
    peer = client.getpeername()[:2]
    rows = _ss("-tne", "state", "all", "src", f"{_ss_host(peer[0])}:{peer[1]}",
               "dst", f"{_ss_host(mine[0])}:{mine[1]}")
    assert len(rows) == 1, rows
    return {"state": rows[0][0], "inode": _ino(rows[0])}


def holders_of(inode, candidates=None):
    """PIDs of the processes (among candidates, default all) that have
    socket inode open."""
    want = f"socket:[{inode}]"
    pids = set()
    for d in (candidates if candidates is not None else [x for x in os.listdir("/proc") if x.isdigit()]):
        try:
            if want in fds_of(d).values():
                pids.add(int(d))
        except OSError:
            pass
    return pids


def accepted_by(client, candidates=None):
    """PIDs holding the server's end of the connection (empty: not
    accepted)."""
    e = server_side(client)
    return holders_of(e["inode"], candidates) if e["inode"] else set()


_libc = ctypes.CDLL(None, use_errno=True)
SYS_pidfd_getfd = 438


class ForeignFd:
    """A duplicate of descriptor fd of process pid (pidfd_getfd), as a
    socket object; a context manager that closes it."""

    def __init__(self, pid, fd):
        pidfd = os.pidfd_open(pid)
        try:
            n = _libc.syscall(SYS_pidfd_getfd, pidfd, fd, 0)
            if n < 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
        finally:
            os.close(pidfd)
        self.sock = socket.socket(fileno=n)

    def __enter__(self):
        return self.sock

    def __exit__(self, *exc):
        self.sock.close()


def describe_fd(pid, fd):
    """What socket descriptor fd of pid is bound to: 'tcp 127.0.0.1:80',
    'tcp6 [::1]:80', 'udp 127.0.0.1:53', 'unix /path', 'unix @name'."""
    with ForeignFd(pid, fd) as s:
        name = s.getsockname()
        kind = "tcp" if s.type == socket.SOCK_STREAM else "udp"
        if s.family == socket.AF_UNIX:
            if isinstance(name, bytes):
                name = name.decode()
            return "unix " + ("@" + name[1:] if name.startswith("\0") else name)
        if s.family == socket.AF_INET6:
            return f"{kind}6 [{name[0]}]:{name[1]}"
        return f"{kind} {name[0]}:{name[1]}"


def listen_queue_max(port, v6=False):
    """Send-Q of a listening TCP socket in `ss -ltn`: its backlog."""
    rows = _ss("-ltn", "-6" if v6 else "-4", "sport", "=", f":{port}")
    assert len(rows) == 1, rows
    return int(rows[0][2])


# --- programs for services ---------------------------------------------------

# UDP echo on descriptor 3 (whatever its family), answering "echo:" + data.
# argv[1] == "once": answer one datagram, then exit 0.
UDP_ECHO = r'''
import socket, sys
s = socket.socket(fileno=3)
while True:
    data, addr = s.recvfrom(65536)
    s.sendto(b"echo:" + data, addr)
    if len(sys.argv) > 1 and sys.argv[1] == "once":
        break
'''


def write_program(directory, name, text):
    path = Path(directory) / name
    path.write_text(text)
    return path
