"""Helpers for test_upgrade.py: a droverd that can replace its own binary.

droverd upgrades to the binary now at its own path, so every test runs its
own copy (TESTDIR/bin/droverd) and puts a new binary there the way a
package manager does: written beside it, then renamed over it (writing into
a running binary fails with "Text file busy").

- udroverd: like conftest's droverd fixture (sanitizer check of the log,
  no stray process at the end), for that copy; it can run droverd under a
  prefix (unshare, systemd-socket-activate) and knows about the droverd a
  handover started (a child of the old one, ours once the old one exits).
- loads: clients that send HTTP requests to hello-worker without a pause,
  in threads, and count every connection that was refused, reset, timed
  out or got a truncated answer.
- listen_inode(), socket_inodes(): which listening socket is which, to show
  a listener is the very same open socket before and after.
"""
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (BUILD, DROVERD, SLOW, Droverd, _known_children, check_no_strays, children_of,
                      process_exists, wait_for)
from helpers_control import call

HELLO = BUILD / "examples" / "hello-worker"
PY = "/usr/bin/python3"


def droverd_version():
    out = subprocess.run([str(DROVERD), "--version"], capture_output=True, text=True, check=True).stdout
    m = re.fullmatch(r"droverd (\S+)\n", out)
    assert m, out
    return m.group(1)


def install(dst, src=None, text=None, mode=0o755):
    """A new file at dst, written beside it and renamed over it; returns its inode."""
    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".new")
    if src is not None:
        shutil.copy2(src, tmp)
    else:
        tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, dst)
    return os.stat(dst).st_ino


# The "new binary": passes its check with the real droverd; when executed
# to take the state over, gives the real droverd a truncated copy of the
# state and, as the old image to fall back to, this script again. Executed
# so (DROVER_UPGRADE_ERROR set), it restores the good state and executes
# the real old image, which must resume from that state alone.
FALL_BACK = """#!@PY@
import os, sys
real, exe = "@REAL@", "@EXE@"
env = dict(os.environ)
if "-t" in sys.argv[1:]:
    os.execve(real, [exe] + sys.argv[1:], env)
if "T_GOOD_STATE" not in env:
    good, old = int(env["DROVER_STATE_FD"]), int(env["DROVER_OLD_EXE_FD"])
    data = os.pread(good, 1 << 26, 0)
    bad = os.memfd_create("truncated", 0)
    os.write(bad, data[:len(data) // 2])
    me = os.open(__file__, os.O_PATH)
    os.set_inheritable(bad, True)
    os.set_inheritable(me, True)
    env.update(DROVER_STATE_FD=str(bad), DROVER_OLD_EXE_FD=str(me), T_GOOD_STATE=str(good),
               T_OLD_EXE=str(old))
    os.execve(real, [exe] + sys.argv[1:], env)
good, old = env.pop("T_GOOD_STATE"), int(env.pop("T_OLD_EXE"))
os.close(int(env["DROVER_STATE_FD"]))
if sys.argv[0].startswith("/dev/fd/"):
    os.close(int(sys.argv[0][8:]))      # this script, as the new image's old image
env["DROVER_STATE_FD"] = good
os.execve(f"/proc/self/fd/{old}", [exe] + sys.argv[1:], env)
"""



def fall_back_binary(d):
    """Puts FALL_BACK at d's path, with a copy of droverd beside it."""
    real = d.bindir / "droverd.real"
    install(real, src=DROVERD)
    return install(d.exe, text=FALL_BACK.replace("@PY@", PY).replace("@REAL@", str(real))
                   .replace("@EXE@", str(d.exe)))


def exe_inode(pid):
    """Inode of the image a process runs (even if its file was replaced)."""
    return os.stat(f"/proc/{pid}/exe").st_ino


def version_pid(sock):
    """The pid field of droverd's answer to `version`."""
    r = call(sock, "version")
    assert r.status == 0, r
    return r.records[0]["pid"]


def parent_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def listen_inodes(port):
    """Inodes of the TCP sockets listening on 127.0.0.1:port."""
    want = f"0100007F:{port:04X}"
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[1] == want and f[3] == "0A":
            found.append(int(f[9]))
    return found


def listen_inode(port):
    """Inode of the one TCP socket listening on 127.0.0.1:port."""
    found = listen_inodes(port)
    assert len(found) == 1, f"sockets listening on 127.0.0.1:{port}: {found}"
    return found[0]


def socket_inodes(pid):
    """Inodes of the sockets a process holds open."""
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            continue
        if m:
            out.add(int(m.group(1)))
    return out


def wait_gone(pid, timeout=20):
    """Wait until pid has exited; reap it if it is our child. Returns its
    wait status when we reaped it, else None."""
    got = {}

    def gone():
        try:
            r, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return not process_exists(pid)     # someone else's: its parent reaps it
        if r == pid:
            got["status"] = status
            return True
        return False
    wait_for(gone, timeout, what=f"pid {pid} to exit")
    return got.get("status")


class UDroverd(Droverd):
    """A droverd running its own copy of the binary, TESTDIR/bin/droverd."""

    def __init__(self, tmp, config="", name="d"):
        super().__init__(tmp, config, name=name)
        self.bindir = self.dir / "bin"
        self.bindir.mkdir(exist_ok=True)
        self.exe = self.bindir / "droverd"
        self.exe_ino = install(self.exe, src=DROVERD)
        self.nested = False
        self._main = None
        self.successors = []

    def start(self, args=(), env=None, wait=True, prefix=(), nested=False, pass_fds=(), argv=None):
        """prefix: a command droverd runs under; nested: droverd is that
        command's child (unshare --fork), not the same process after exec.
        argv replaces the whole command line."""
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
                    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
        if env:
            full_env.update(env)
        self.nested = nested
        self.log_fh = open(self.logfile, "ab")
        cmd = argv or [*prefix, str(self.exe), "-c", str(self.conf), "-S", str(self.sock), *args]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log_fh,
                                     stderr=subprocess.STDOUT, env=full_env, cwd=self.dir,
                                     pass_fds=pass_fds)
        _known_children.add(self.proc.pid)
        if wait:
            self.wait_answering()
        return self

    def wait_answering(self):
        wait_for(lambda: self.running() and self.drover("version").rc == 0,
                 what=f"droverd to answer on its control socket\n--- log:\n{self.log()}")

    @property
    def pid(self):
        """The droverd process (under unshare --fork: unshare's child)."""
        if not self.nested:
            return self.proc.pid
        if self._main is None:
            kids = wait_for(lambda: children_of(self.proc.pid), what="droverd under unshare")
            assert len(kids) == 1, kids
            self._main = kids.pop()
        return self._main

    def send_signal(self, sig):
        os.kill(self.pid, sig)

    def upgrade(self, *args):
        return self.drover("upgrade", *args, timeout=60)

    def adopt_successor(self, pid):
        """The droverd a handover started: ours once the old one exits."""
        _known_children.add(pid)
        self.successors.append(pid)

    def stop_successors(self, timeout=20):
        for pid in self.successors:
            if process_exists(pid):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            wait_gone(pid, timeout)
            _known_children.discard(pid)
        self.successors = []
        self.check_log()

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.running():
            self.send_signal(sig)
        code = self.wait_exit(timeout)
        self.stop_successors(timeout)
        check_no_strays()
        return code

    def kill_everything(self):
        for pid in self.successors:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.running():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()
            _known_children.discard(self.proc.pid)
        for pid in self.successors:
            try:
                wait_gone(pid, 5)
            except AssertionError:
                pass
            _known_children.discard(pid)
        self.successors = []


@pytest.fixture
def udroverd(tmp_path):
    """Factory: udroverd(config_text, start=True, name='d', **start_kwargs)."""
    made = []

    def make(config="", start=True, name="d", **kw):
        d = UDroverd(tmp_path, config, name=name)
        made.append(d)
        if start:
            d.start(**kw)
        return d

    yield make
    failures = []
    for d in made:
        try:
            if d.running():
                d.stop()
            else:
                if d.proc is not None and d.exit_code is None:
                    d.proc.wait()
                    _known_children.discard(d.proc.pid)
                    d.log_fh.close()
                    d.check_log()
                d.stop_successors()
        except AssertionError as e:
            failures.append(str(e))
            d.kill_everything()
    try:
        check_no_strays()
    except AssertionError as e:
        failures.append(str(e))
    if failures:
        pytest.fail("\n".join(failures))


# --- clients ------------------------------------------------------------------

REQUEST = b"GET / HTTP/1.1\r\nHost: test\r\n%s\r\n"
BODY = b"Hello, world!\n"


class Truncated(Exception):
    pass


def read_response(s, buf=b""):
    """One HTTP response from s (after what buf holds already); returns
    (headers, rest of buf). Raises Truncated if the peer closes early."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise Truncated(f"connection closed after {buf!r}")
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200 OK\r\n"):
        raise Truncated(f"bad status line: {head!r}")
    m = re.search(rb"\r\nContent-Length: (\d+)", head)
    if not m:
        raise Truncated(f"no Content-Length: {head!r}")
    n = int(m.group(1))
    while len(buf) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise Truncated(f"body cut after {len(buf)} of {n} bytes")
        buf += chunk
    if buf[:n] != BODY:
        raise Truncated(f"bad body {buf[:n]!r}")
    return head, buf[n:]


def get(port, timeout=10):
    """One request on a fresh connection; raises on any failure."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW) as s:
        s.sendall(REQUEST % b"Connection: close\r\n")
        read_response(s)


def classify(e):
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if isinstance(e, Truncated):
        return "truncated"
    if isinstance(e, socket.timeout):
        return "timeout"
    return "error"


class Load:
    """Threads sending requests to 127.0.0.1:port without a pause: `fresh`
    of them open a connection per request, `keepalive` of them keep theirs
    open (and open another when the server answers Connection: close)."""

    def __init__(self, port, fresh=2, keepalive=1):
        self.port = port
        self.ok = 0
        self.failures = []
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self._fresh, daemon=True) for _ in range(fresh)]
        self.threads += [threading.Thread(target=self._keepalive, daemon=True) for _ in range(keepalive)]

    def start(self):
        for t in self.threads:
            t.start()
        self.more(5)
        return self

    def _count(self, failure=None):
        with self.lock:
            if failure is None:
                self.ok += 1
            else:
                self.failures.append(failure)

    def _fresh(self):
        while not self.halt.is_set():
            try:
                get(self.port)
            except (OSError, Truncated) as e:
                self._count((classify(e), repr(e)))
            else:
                self._count()

    def _keepalive(self):
        while not self.halt.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10 * SLOW) as s:
                    buf = b""
                    while not self.halt.is_set():
                        s.sendall(REQUEST % b"")
                        head, buf = read_response(s, buf)
                        self._count()
                        if b"\r\nConnection: close" in head:
                            break
            except (OSError, Truncated) as e:
                self._count((classify(e), repr(e)))

    def more(self, n=20):
        """Wait until n more requests have been answered."""
        start = self.ok
        wait_for(lambda: self.ok >= start + n or self.failures,
                 what=f"{n} more answers from 127.0.0.1:{self.port}")

    def stop(self):
        self.halt.set()
        for t in self.threads:
            t.join(timeout=30 * SLOW)

    def check(self):
        """More answers still come; then stop; not one connection failed."""
        self.more()
        self.stop()
        assert not self.failures, (f"{len(self.failures)} of {self.ok + len(self.failures)} "
                                   f"requests failed: {self.failures[:10]}")
        assert self.ok > 0


@pytest.fixture
def loads():
    """Factory: loads(port, fresh=2, keepalive=1) -> a started Load; all
    are stopped at the end (before droverd is, when requested after it)."""
    made = []

    def make(port, **kw):
        load = Load(port, **kw)
        made.append(load)
        return load.start()

    yield make
    for load in made:
        load.stop()


def hold_connection(port):
    """A keep-alive connection that got one answer and stays open: the
    worker that took it waits for the next request on it, busy."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
    s.sendall(REQUEST % b"")
    read_response(s)
    return s




class NotifySink:
    """The test playing systemd: the datagram socket NOTIFY_SOCKET names.
    take() returns what arrived as (sender pid, message, [descriptors])."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.got = []

    def take(self, wait=0.0):
        """What has arrived, waiting up to wait seconds for the first one."""
        timeout = wait
        while select.select([self.sock], [], [], timeout)[0]:
            timeout = 0
            msg, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(64 * 4))
            pid, fds = None, []
            for level, typ, data in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid = int.from_bytes(data[:4], "little")
                elif level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    fds += [int.from_bytes(data[i:i + 4], "little")
                            for i in range(0, len(data) - len(data) % 4, 4)]
            self.got.append((pid, msg.decode(), fds))
        return self.got

    def wait(self, pred, what, timeout=10):
        """The first (pid, message, fds) for which pred is true."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            for m in self.got:
                if pred(m):
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what}; systemd was told {[m[:2] for m in self.got]}")
            self.take(min(left, 0.5))

    def close(self):
        for _, _, fds in self.got:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.got = []
        self.sock.close()


@pytest.fixture
def systemd(tmp_path):
    sink = NotifySink(tmp_path / "notify.sock")
    yield sink
    sink.close()
