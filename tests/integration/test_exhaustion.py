"""When the system says no (SPEC section 9): droverd out of descriptors
(EMFILE, made real with prlimit --pid on the running droverd), out of
processes (a v1 pids cgroup whose pids.max is what it holds), told EPERM
when it kills. It never spins and never exits: what needed the resource
waits or fails that one thing, it is retried on a timer (at most every
second), and the episode is logged once, not per retry. Connections are
never closed for it: they wait in the backlog, or (one, accepted already)
in droverd, until a handler can start.

Descriptors are counted, not assumed: a sanitizer build holds more.
"""
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import Droverd, check_no_strays, free_port, process_exists, wait_for
from helpers_net import ECHO, connect, echo_once, read_to_eof, silent

PIDS_ROOT = Path("/sys/fs/cgroup/pids")


# --- the process under test, as the kernel sees it ---------------------------

def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def nofile(pid):
    """(soft, hard) RLIMIT_NOFILE of pid."""
    with open(f"/proc/{pid}/limits") as f:
        line = next(x for x in f if x.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


def set_nofile(pid, soft):
    """The soft limit is what EMFILE is about; the hard one stays (raising
    it back would need CAP_SYS_RESOURCE, which a container may not give)."""
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={soft}:{nofile(pid)[1]}"], check=True)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])    # utime + stime


def cpu_share(pid, seconds=2.0):
    """droverd's CPU time over a window of wall time, as a fraction. A
    window, not a wait: spinning can only be seen over some time."""
    hz = os.sysconf("SC_CLK_TCK")
    t0, w0 = cpu_ticks(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_ticks(pid) - t0) / hz / (time.monotonic() - w0)


def lines_matching(d, pattern):
    return len(re.findall(pattern, d.log(), re.M))


class Exhausted:
    """droverd's open-files limit lowered to what it holds plus `spare`,
    and put back (with what the test holds closed) at the end."""

    def __init__(self, d, spare):
        self.d = d
        self.saved = nofile(d.pid)[0]
        self.held = []
        set_nofile(d.pid, fd_count(d.pid) + spare)

    def restore(self):
        for s in self.held:
            s.close()
        self.held.clear()
        if self.d.running():
            set_nofile(self.d.pid, self.saved)


@pytest.fixture
def exhaust():
    made = []

    def make(d, spare):
        e = Exhausted(d, spare)
        made.append(e)
        return e

    yield make
    for e in made:
        e.restore()


def assert_quiet(d, pattern, most=3):
    """droverd idles while it waits for the resource: little CPU, and the
    episode said a bounded number of times."""
    share = cpu_share(d.pid)
    assert share < 0.3, f"droverd used {share:.0%} of a CPU while out of a resource\n{d.log()}"
    n = lines_matching(d, pattern)
    assert 1 <= n <= most, f"{n} log lines match {pattern!r}\n{d.log()}"


# --- descriptors: the control socket ------------------------------------------

def test_control_socket_out_of_descriptors_waits_without_spinning(droverd, exhaust):
    d = droverd("")
    e = exhaust(d, 3)
    # More clients than droverd has descriptors: the first few are
    # accepted, the rest wait in the backlog.
    for _ in range(12):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(d.sock))
        e.held.append(s)
    d.wait_log(r"control: cannot accept a connection: Too many open files")
    assert_quiet(d, r"control: cannot accept a connection", most=1)
    assert ("control: cannot accept a connection: Too many open files; clients wait in the "
            "backlog; retrying every 100ms to 1s until it works") in d.log()
    assert d.running()
    e.restore()
    wait_for(lambda: d.drover("status").rc == 0, what="drover status to answer")
    d.wait_log(r"control: accepting connections again, after [0-9.]+m?s \(\d+ failed attempts\)")


# --- descriptors: accept mode -------------------------------------------------

ACC = """
[service acc]
mode = accept
command = {echo}
listen = tcp:127.0.0.1:{port}
max_procs = 16
"""


@pytest.mark.parametrize("spare,message", [
    (0, r"acc: cannot accept a connection: Too many open files; connections wait in the backlog"),
    (1, r"acc: cannot start a connection handler: cannot create an output pipe: Too many open "
        r"files; the connection is kept for it, new ones wait in the backlog"),
], ids=["at-accept", "at-handler-start"])
def test_accept_mode_out_of_descriptors_serves_everyone_once_they_return(droverd, exhaust, spare,
                                                                         message):
    port = free_port()
    d = droverd(ACC.format(echo=ECHO, port=port))
    d.wait_state("acc", "ready")
    e = exhaust(d, spare)
    clients = [connect(("127.0.0.1", port)) for _ in range(4)]
    try:
        d.wait_log(r"acc: .*Too many open files")
        assert_quiet(d, r"acc: .*Too many open files", most=1)
        # Not one is closed or reset: each waits (in the backlog, or the
        # one droverd took, in droverd).
        for c in clients:
            assert silent(c, 0.2)
        assert re.search(message, d.log()), d.log()
        e.restore()
        for i, c in enumerate(clients):
            assert echo_once(c, b"hello %d" % i) == b"hello %d" % i
        d.wait_log(r"acc: accepting connections and starting handlers again, after")
        assert d.status("acc")["reason"] == ""
    finally:
        for c in clients:
            c.close()


# --- descriptors: a daemon's start ---------------------------------------------

DMN = """
[service dmn]
command = sleep 1000
{listen}
start = manual
restart_delay = 100ms
restart_delay_max = 1s
"""


def test_daemon_started_out_of_descriptors_backs_off_and_runs_once_they_return(droverd, exhaust):
    port = free_port()
    d = droverd(DMN.format(listen=f"listen = tcp:127.0.0.1:{port}"))
    # One spare: the control connection that asks for the start, and
    # waits. Its listener then cannot be made (socket), nor, once the
    # client has gone, its output pipe.
    e = exhaust(d, 1)
    r = d.drover("start", "dmn")
    assert (r.rc, r.out) == (1, ""), r
    assert r.err == (f"drover: dmn is backoff: cannot listen on tcp:127.0.0.1:{port}: socket: Too many "
                     f"open files; restarting in 100ms\n"), r
    d.wait_log(r"dmn: cannot (listen on .*: socket|create an output pipe): Too many open files; "
               r"restarting in 200ms")
    # Backing off: a few attempts in these seconds, not a loop.
    assert_quiet(d, r"dmn: cannot .*; restarting in", most=6)
    assert d.running()
    e.restore()
    st = d.wait_state("dmn", "ready")
    assert len(st["pids"]) == 1


# --- processes: fork fails (EAGAIN) ----------------------------------------------

class PidsCgroup:
    """A v1 pids cgroup holding droverd (and what it starts), no room for
    one more process. Everything is moved back and the group removed."""

    def __init__(self, pid):
        self.dir = PIDS_ROOT / f"drover-test-{os.getpid()}-{pid}"
        self.dir.mkdir()
        (self.dir / "cgroup.procs").write_text(str(pid))
        (self.dir / "pids.max").write_text((self.dir / "pids.current").read_text().strip())

    def open_up(self):
        (self.dir / "pids.max").write_text("max")

    def remove(self):
        self.open_up()
        for p in (self.dir / "cgroup.procs").read_text().split():
            try:
                (PIDS_ROOT / "cgroup.procs").write_text(p)
            except ProcessLookupError:
                pass
        wait_for(lambda: not (self.dir / "cgroup.procs").read_text().strip(),
                 what="the test cgroup to be empty")
        self.dir.rmdir()


@pytest.mark.skipif(not (PIDS_ROOT / "cgroup.procs").exists(), reason="no v1 pids cgroup")
def test_fork_failure_keeps_connections_and_backs_off_starts(droverd):
    port = free_port()
    d = droverd(ACC.format(echo=ECHO, port=port) + DMN.format(listen=""))
    d.wait_state("acc", "ready")
    cg = PidsCgroup(d.pid)
    clients = []
    try:
        clients = [connect(("127.0.0.1", port)) for _ in range(3)]
        d.wait_log(r"acc: .*cannot create a process: Resource temporarily unavailable")
        r = d.drover("start", "--no-wait", "dmn")
        assert r.rc == 0, r
        d.wait_log(r"dmn: cannot create a process: Resource temporarily unavailable; "
                   r"restarting in 100ms")
        assert_quiet(d, r"acc: .*cannot create a process", most=1)
        assert d.state("dmn") == "backoff"
        for c in clients:
            assert silent(c, 0.2)
        assert ("acc: cannot start a connection handler: cannot create a process: Resource "
                "temporarily unavailable; the connection is kept for it, new ones wait in the "
                "backlog; retrying every 100ms to 1s until it works") in d.log()
        cg.open_up()
        for i, c in enumerate(clients):
            assert echo_once(c, b"fork %d" % i) == b"fork %d" % i
        d.wait_state("dmn", "ready")
    finally:
        for c in clients:
            c.close()
        cg.remove()


# --- per_source: more addresses than the old fixed table ------------------------------

def test_per_source_holds_for_more_than_256_addresses(droverd):
    port = free_port()
    d = droverd(ACC.format(echo=ECHO, port=port).replace("max_procs = 16", "max_procs = 400")
                + "per_source = 1\n")
    d.wait_state("acc", "ready")
    sources = [f"127.0.{1 + i // 200}.{1 + i % 200}" for i in range(300)]
    clients = []
    try:
        for i, src in enumerate(sources):
            c = connect(("127.0.0.1", port), source=(src, 0))
            clients.append(c)
            assert echo_once(c, b"%d" % i) == b"%d" % i, src
        assert d.status("acc")["busy"] == 300
        # The limit holds for every one of them, early and late.
        for src in (sources[0], sources[255], sources[256], sources[299]):
            with connect(("127.0.0.1", port), source=(src, 0)) as extra:
                assert read_to_eof(extra) == b"", src
    finally:
        for c in clients:
            c.close()
    wait_for(lambda: d.status("acc")["busy"] == 0, timeout=30, what="the handlers to end")
    # Addresses leave the table with their last connection.
    with connect(("127.0.0.1", port), source=(sources[299], 0)) as again:
        assert echo_once(again, b"again") == b"again"


# --- EPERM: a service droverd may not kill ---------------------------------------------

NOBODY = pwd.getpwnam("nobody")


def test_unkillable_service_is_said_once_and_waited_for(tmp_path):
    # droverd as nobody; the service runs a setuid-root program that makes
    # itself root for good (a copy of setpriv, setuid root): droverd may
    # signal it no more.
    top = Path(tempfile.mkdtemp(prefix="drover-eperm-", dir="/tmp"))
    os.chmod(top, 0o755)
    os.chown(top, NOBODY.pw_uid, NOBODY.pw_gid)
    su = top / "su-helper"
    shutil.copy("/usr/bin/setpriv", su)
    os.chown(su, 0, 0)
    os.chmod(su, 0o4755)
    d = Droverd(top, f"""
[service hold]
command = {su} --reuid=0 --regid=0 --clear-groups -- sleep 1000
stop_timeout = 200ms
""")
    pid = None
    try:
        d.start(prefix=("setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}",
                        "--clear-groups"))
        st = d.wait_state("hold", "ready")
        pid = st["pids"][0]
        wait_for(lambda: os.stat(f"/proc/{pid}").st_uid == 0, what="the service to become root")
        r = d.drover("stop", "--no-wait", "hold")
        assert r.rc == 0, r
        d.wait_log(rf"cannot kill pid {pid}")
        assert_quiet(d, r"cannot kill pid", most=1)
        assert (f"hold: cannot kill pid {pid} (process group {pid}): Operation not permitted: "
                f"droverd runs as uid {NOBODY.pw_uid} and the process as uid 0 (a setuid "
                f"program, or one that changed its uid); the service stays stopping until it "
                f"exits (checked every 5s at most)") in d.log()
        st = d.status("hold")
        assert st["state"] == "stopping", st
        assert st["reason"] == (f"cannot kill pid {pid} (it runs as uid 0): Operation not "
                                f"permitted; waiting for it to exit"), st
        os.kill(pid, 9)    # root can
        d.wait_state("hold", "stopped", timeout=15)
        assert d.running()
    finally:
        if pid is not None and process_exists(pid):
            os.kill(pid, 9)    # what droverd cannot end, even when the test failed
        if d.proc is not None:
            try:
                d.stop()
            finally:
                d.kill()
                check_no_strays()
                shutil.rmtree(top, ignore_errors=True)
