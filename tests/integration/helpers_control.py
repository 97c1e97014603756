"""Helpers shared by test_config.py and test_control.py.

- run(): the drover and droverd binaries (or anything else) as a plain
  command, optionally as an unprivileged user (setpriv), with the same
  sanitizer options the harness gives droverd.
- world_dir(): a directory under conftest's TEMP_ROOT that uid 65534 can
  reach, because pytest's own tmp_path lives under a 0700 directory.
- The control protocol of src/lib/proto.h, encoded and decoded here
  independently of the C code, so that the tests can send what the drover
  client never would and check every byte of the answer.
"""
import contextlib
import os
import shutil
import socket
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import SLOW, TEMP_ROOT, Result, wait_for

NOBODY = 65534
NOGROUP = 65534

SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}


def base_env(**extra):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **SAN_ENV}
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def as_user(uid=NOBODY, gid=NOGROUP, groups=None):
    """argv prefix that runs a command as uid/gid, with exactly `groups` as
    supplementary groups (none when not given)."""
    prefix = ["setpriv", f"--reuid={uid}", f"--regid={gid}"]
    if groups:
        prefix.append("--groups=" + ",".join(str(g) for g in groups))
    else:
        prefix.append("--clear-groups")
    return prefix + ["--"]


def run(argv, env=None, timeout=30, user=False, groups=None, cwd=None):
    """Runs argv; user=True runs it as nobody (uid/gid 65534)."""
    argv = [str(a) for a in argv]
    if user:
        argv = as_user(groups=groups) + argv
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout * SLOW,
                        env=base_env() if env is None else env,
                        stdin=subprocess.DEVNULL, cwd=cwd)
    return Result(cp)


@contextlib.contextmanager
def world_dir():
    """A fresh 0755 directory under TEMP_ROOT (every path component
    reachable by any user, none writable by anyone but root), removed
    afterwards."""
    d = Path(tempfile.mkdtemp(prefix="drover-ta-", dir=TEMP_ROOT))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def line_of(text, needle):
    """1-based number of the only line of text that contains needle."""
    hits = [i + 1 for i, line in enumerate(text.split("\n")) if needle in line]
    assert len(hits) == 1, f"{needle!r} is on lines {hits}"
    return hits[0]


# --- the control protocol (src/lib/proto.h) ---------------------------------

PROTO_VERSION = 1
PK_REQUEST, PK_REPLY, PK_PART = 1, 2, 3


def p_str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">I", len(b)) + b


def frame(kind, payload, version=PROTO_VERSION, length=None):
    """A frame: u32 big-endian length of what follows, u8 version, u8 kind,
    payload. length overrides the length field."""
    body = bytes([version, kind]) + payload
    return struct.pack(">I", len(body) if length is None else length) + body


def request(*args, version=PROTO_VERSION, kind=PK_REQUEST, argc=None, extra=b""):
    payload = struct.pack(">H", len(args) if argc is None else argc)
    payload += b"".join(p_str(a) for a in args) + extra
    return frame(kind, payload, version=version)


class Reply:
    def __init__(self, kind, status, message, records):
        self.kind = kind
        self.status = status
        self.message = message
        self.records = records

    def __repr__(self):
        return (f"Reply(kind={self.kind}, status={self.status}, message={self.message!r}, "
                f"records={self.records!r})")


class _Cursor:
    def __init__(self, data):
        self.data = data
        self.at = 0

    def take(self, n):
        assert self.at + n <= len(self.data), f"reply truncated: {self.data!r}"
        b = self.data[self.at:self.at + n]
        self.at += n
        return b

    def u(self, n):
        return int.from_bytes(self.take(n), "big")

    def s(self):
        b = self.take(self.u(4))
        assert b"\0" not in b, f"NUL in a reply string: {b!r}"
        return b.decode()


def decode_frames(data):
    """Every frame in data, strictly: version 1, kind reply or part, every
    byte of each frame consumed, nothing left over."""
    replies = []
    at = 0
    while at < len(data):
        assert len(data) - at >= 4, f"partial frame header at the end: {data[at:]!r}"
        n = int.from_bytes(data[at:at + 4], "big")
        assert n >= 2 and at + 4 + n <= len(data), f"bad or partial frame: {data[at:]!r}"
        c = _Cursor(data[at + 4:at + 4 + n])
        version, kind = c.u(1), c.u(1)
        assert version == PROTO_VERSION, f"reply has version {version}"
        assert kind in (PK_REPLY, PK_PART), f"reply has kind {kind}"
        status = c.u(1)
        message = c.s()
        records = []
        for _ in range(c.u(4)):
            rec = {}
            for _ in range(c.u(2)):
                key = c.s()
                t = chr(c.u(1))
                if t == "s":
                    rec[key] = c.s()
                elif t == "i":
                    rec[key] = int.from_bytes(c.take(8), "big", signed=True)
                elif t == "l":
                    rec[key] = [c.s() for _ in range(c.u(2))]
                else:
                    raise AssertionError(f"unknown field type {t!r}")
            records.append(rec)
        assert c.at == len(c.data), f"trailing bytes inside a reply frame: {c.data[c.at:]!r}"
        replies.append(Reply(kind, status, message, records))
        at += 4 + n
    return replies


def _try_connect(path, timeout):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout * SLOW)
    try:
        s.connect(str(path))
    except BlockingIOError:
        s.close()       # the listen backlog is full: droverd has not caught up yet
        raise
    return s


def connect(path, timeout=10):
    return wait_for(lambda: _try_connect(path, timeout), timeout,
                    what=f"a free slot in the listen backlog of {path}")


def read_to_eof(s):
    """Everything the peer sends until it closes (socket timeout applies)."""
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def exchange(path, data, half_close=False, timeout=10):
    """Connects, sends data, reads until droverd closes; returns the bytes."""
    with connect(path, timeout) as s:
        if data:
            s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        return read_to_eof(s)


def call(path, *args, timeout=10):
    """One well-formed request; the decoded final reply."""
    replies = decode_frames(exchange(path, request(*args), timeout=timeout))
    assert replies and replies[-1].kind == PK_REPLY, replies
    return replies[-1]


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")[:-1]


@pytest.fixture
def pubdir():
    """A directory that uid 65534 can reach (see world_dir)."""
    with world_dir() as d:
        yield d
