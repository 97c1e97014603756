"""Harness for drover's integration tests.

Each test starts the real droverd in its own temporary directory, with its
own configuration and control socket, and drives it the way a user does:
the drover client, signals, real connections on 127.0.0.1.

Guarantees every test gets for free:
- wait_for() polls a condition until a deadline; no test sleeps a fixed time.
- When a droverd is stopped (explicitly or at teardown), its log must hold
  no sanitizer report (AddressSanitizer, LeakSanitizer, UBSan).
- pytest is a child subreaper: a process droverd leaves behind is re-parented
  here and fails the test (no leaked helper, no unreaped zombie).

- Run as root, every temporary directory (pytest's tmp_path too) lives
  under TEMP_ROOT, a root-owned 0755 directory: droverd running as root
  refuses a configuration file when any directory on its path, from /, is
  writable by others (drover.conf(5)), and /tmp is 1777.

Environment: DROVER_BUILD (the build directory, default build/),
DROVER_SANITIZED=1 (an ASan+UBSan build: deadlines are stretched).
"""
import ctypes
import json
import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("DROVER_BUILD", REPO / "build"))
DROVERD = BUILD / "droverd"
DROVER = BUILD / "drover"
SANITIZED = os.environ.get("DROVER_SANITIZED") == "1"
SLOW = 3.0 if SANITIZED else 1.0

SANITIZER_PATTERNS = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    r"SUMMARY: UndefinedBehaviorSanitizer|SUMMARY: AddressSanitizer")
# What droverd logs when its own rules are broken: a state change its
# transition table does not allow (service_state.c).
INTERNAL_ERROR = re.compile(r"droverd: error: internal error: .*")



def _temp_root():
    """/run/drover-tests for root (made root's, 0755), where pytest's
    tmp_path goes too (PYTEST_DEBUG_TEMPROOT, read when tmp_path is first
    used); the usual temporary directory for anyone else."""
    if os.geteuid() != 0:
        return Path(tempfile.gettempdir())
    root = Path("/run/drover-tests")
    root.mkdir(mode=0o755, exist_ok=True)
    os.chown(root, 0, 0, follow_symlinks=False)
    os.chmod(root, 0o755, follow_symlinks=False)
    os.environ["PYTEST_DEBUG_TEMPROOT"] = str(root)
    return root


TEMP_ROOT = _temp_root()

PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def wait_for(cond, timeout=10.0, interval=0.02, what="condition"):
    """Poll cond() until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout * SLOW
    last = None
    while True:
        try:
            last = cond()
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
            last = None
            err = e
        else:
            err = None
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout * SLOW:.1f}s waiting for {what}"
                                 + (f" (last error: {err!r})" if err else ""))
        time.sleep(interval)


def children_of(pid):
    """Direct children of pid, from /proc (all threads)."""
    kids = set()
    task = Path(f"/proc/{pid}/task")
    for t in task.iterdir():
        try:
            kids.update(int(x) for x in (t / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            pass
    return kids


def process_exists(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except FileNotFoundError:
        return False


def reap_strays():
    """Reap zombies re-parented to us; return pids of strays (alive or not)."""
    strays = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        strays.append(pid)
    return strays


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port, kind):
    """True when PORT can be bound on every IPv4 and IPv6 address."""
    tries = [(socket.AF_INET, "0.0.0.0")]
    if socket.has_ipv6:
        tries.append((socket.AF_INET6, "::"))
    for family, host in tries:
        s = socket.socket(family, kind)
        try:
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((host, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port(kind=socket.SOCK_STREAM):
    """A port free on every address, outside the kernel's ephemeral range.

    A port the kernel hands out for bind(0) is one it also hands to
    outgoing connections: between this check and droverd's bind, any
    client socket on the machine could take it (and did, in CI: "bind:
    Address already in use" for a wildcard listener). Ports below the
    ephemeral range are never chosen by the kernel, so only an explicit
    bind can take one.
    """
    lo, _hi = _ephemeral_range()
    floor = 10000 if lo > 12000 else 1024
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(floor, lo)
        if _bindable(port, kind):
            return port
    raise RuntimeError("no free port below the ephemeral range")


class Result:
    def __init__(self, cp):
        self.rc = cp.returncode
        self.out = cp.stdout
        self.err = cp.stderr

    def __repr__(self):
        return f"Result(rc={self.rc}, out={self.out!r}, err={self.err!r})"


class Droverd:
    """One droverd under test."""

    def __init__(self, tmp, config="", name="d"):
        self.dir = Path(tmp)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / f"{name}.conf"
        self.sock = self.dir / f"{name}.sock"
        self.logfile = self.dir / f"{name}.log"
        self.proc = None
        self.exit_code = None
        self.write_config(config)

    # --- configuration -------------------------------------------------
    def write_config(self, text):
        """Write the config; @DIR@ becomes the test directory."""
        self.conf.write_text(text.replace("@DIR@", str(self.dir)))
        os.chmod(self.conf, 0o644)

    # --- life ------------------------------------------------------------
    def start(self, args=(), env=None, wait=True, stdout=None, prefix=()):
        """stdout: where droverd's stdout and stderr go instead of its log
        file (a pipe a test reads, or never reads). prefix: a command that
        execs droverd (its argv follows) in the same process."""
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
                    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
        if env:
            full_env.update(env)
        self.log_fh = open(self.logfile, "ab")
        out = self.log_fh if stdout is None else stdout
        self.proc = subprocess.Popen(
            [*map(str, prefix), str(DROVERD), "-c", str(self.conf), "-S", str(self.sock), *args],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=full_env, cwd=self.dir)
        _known_children.add(self.proc.pid)
        if wait:
            wait_for(lambda: self.running() and self.drover("version").rc == 0,
                     what="droverd to answer on its control socket")
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=20):
        try:
            self.exit_code = self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"droverd did not exit within {timeout * SLOW}s\n{self.log()}")
        _known_children.discard(self.proc.pid)
        self.log_fh.close()
        self.check_log()
        return self.exit_code

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stop droverd and check it left nothing behind."""
        if self.running():
            self.proc.send_signal(sig)
        code = self.wait_exit(timeout)
        check_no_strays()
        return code

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait()
            self.log_fh.close()
        _known_children.discard(self.proc.pid)

    # --- observation -----------------------------------------------------
    def log(self):
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def check_log(self):
        m = SANITIZER_PATTERNS.search(self.log())
        if m:
            raise AssertionError(f"sanitizer report in droverd's log:\n{self.log()}")
        m = INTERNAL_ERROR.search(self.log())
        if m:
            raise AssertionError(f"droverd broke its own rules: {m.group(0)}\n--- log:\n{self.log()}")

    def wait_log(self, pattern, timeout=10):
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.log()), timeout,
                        what=f"droverd log to match {pattern!r}\n--- log:\n{self.log()}")

    def drover(self, *args, timeout=30, env=None, input=None):
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DROVER_SOCKET": str(self.sock)}
        if env is not None:
            e = env
        cp = subprocess.run([str(DROVER), *map(str, args)], capture_output=True, text=True,
                            timeout=timeout * SLOW, env=e, input=input,
                            stdin=None if input is not None else subprocess.DEVNULL)
        return Result(cp)

    def status(self, name=None):
        """Status records as dicts, by name (or one dict for name)."""
        r = self.drover("status", "--json")
        assert r.rc == 0, r
        recs = {x["name"]: x for x in json.loads(r.out)}
        return recs[name] if name else recs

    def state(self, name):
        return self.status(name)["state"]

    def pids(self, name):
        return self.status(name)["pids"]

    def wait_state(self, name, state, timeout=10):
        states = {state} if isinstance(state, str) else set(state)
        return wait_for(lambda: self.state(name) in states and self.status(name), timeout,
                        what=f"{name} to be {state} (it is "
                             f"{self._safe_state(name)})\n--- log:\n{self.log()}")

    def _safe_state(self, name):
        try:
            return self.status(name)
        except Exception as e:  # noqa: BLE001 - only for a message
            return repr(e)


def check_no_strays():
    """No process may be left re-parented to pytest once droverd is gone."""
    me = os.getpid()
    strays = [p for p in children_of(me) if p not in _known_children]
    alive = [p for p in strays if process_exists(p)]
    for p in alive:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # Wait until what was killed has exited and is reaped, so that it cannot
    # show up as a stray of the next test.
    deadline = time.monotonic() + 5
    zombies = []
    while True:
        zombies += reap_strays()
        if not any(process_exists(p) for p in alive) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    zombies += reap_strays()
    left = sorted(set(alive) | {z for z in zombies if z not in _known_children})
    assert not left, f"processes left behind by droverd: {left}"


_known_children = set()


@pytest.fixture
def droverd(tmp_path):
    """Factory: droverd(config_text, start=True, args=(), env=None, name='d')."""
    made = []

    def make(config="", start=True, args=(), env=None, name="d"):
        d = Droverd(tmp_path, config, name=name)
        made.append(d)
        if start:
            d.start(args=args, env=env)
        return d

    yield make
    failures = []
    for d in made:
        if d.running():
            try:
                d.stop()
            except AssertionError as e:
                failures.append(str(e))
                d.kill()
        elif d.proc is not None and d.exit_code is None:
            d.proc.wait()
            _known_children.discard(d.proc.pid)
            d.log_fh.close()
            try:
                d.check_log()
            except AssertionError as e:
                failures.append(str(e))
    try:
        check_no_strays()
    except AssertionError as e:
        failures.append(str(e))
    if failures:
        pytest.fail("\n".join(failures))
