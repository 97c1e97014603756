"""Readiness and status from services: sd_notify datagrams (SPEC section 7).

droverd gives a service NOTIFY_SOCKET (an abstract socket "@drover/...") and
identifies each datagram's sender by its credentials. Only its own processes
are heard; anything else (a stranger, an oversized or malformed datagram) is
ignored with a rate-limited warning, and descriptors passed along are never
kept.
"""
import array
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import SLOW, wait_for

# The service: a Python program that sends what the test writes to its FIFO,
# from its own (main) process. One command per line:
#   send TEXT     send TEXT, with "\n" written as a backslash and n
#   big N         send an N-byte datagram that starts with READY=1
#   fds N TEXT    send TEXT with N descriptors of /dev/null attached
#   ping on|off   send WATCHDOG=1 every 100ms, or stop
#   child TEXT    send TEXT from a child process (prints its pid)
# Options: --ready sends READY=1 at start, --ping starts pinging.
NOTIFIER = r'''
import array, os, select, socket, sys
name = os.environ["NOTIFY_SOCKET"]
addr = "\0" + name[1:] if name.startswith("@") else name
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
ctl = os.open(sys.argv[1], os.O_RDWR)
pinging = "--ping" in sys.argv
if "--ready" in sys.argv:
    sock.sendto(b"READY=1", addr)
print("notifier up", flush=True)
buf = b""
while True:
    r, _, _ = select.select([ctl], [], [], 0.1 if pinging else None)
    if pinging:
        sock.sendto(b"WATCHDOG=1", addr)
    if not r:
        continue
    buf += os.read(ctl, 65536)
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        cmd, _, arg = line.decode().partition(" ")
        if cmd == "send":
            sock.sendto(arg.replace("\\n", "\n").encode(), addr)
        elif cmd == "big":
            n = int(arg)
            head = b"READY=1\nX="
            sock.sendto(head + b"a" * (n - len(head)), addr)
        elif cmd == "fds":
            count, _, text = arg.partition(" ")
            fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(int(count))]
            sock.sendmsg([text.encode()],
                         [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))], 0, addr)
            for fd in fds:
                os.close(fd)
        elif cmd == "ping":
            pinging = arg == "on"
        elif cmd == "child":
            pid = os.fork()
            if pid == 0:
                sock.sendto(arg.replace("\\n", "\n").encode(), addr)
                os._exit(0)
            os.waitpid(pid, 0)
            cmd += " " + str(pid)
        print("did " + cmd, flush=True)
'''


class Ctl:
    def __init__(self, path):
        os.mkfifo(path)
        self.fd = os.open(path, os.O_RDWR)

    def __call__(self, line):
        os.write(self.fd, (line + "\n").encode())

    def close(self):
        os.close(self.fd)


@pytest.fixture
def ctl(tmp_path):
    (tmp_path / "notifier.py").write_text(NOTIFIER)
    c = Ctl(tmp_path / "ctl.fifo")
    yield c
    c.close()


def notifier(name="a", options="", extra="ready = notify"):
    return f"""
[service {name}]
command = /usr/bin/python3 -u @DIR@/notifier.py @DIR@/ctl.fifo {options}
{extra}
"""


def environ(pid):
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(kv.decode().split("=", 1) for kv in raw.split(b"\0") if kv)


def notify_address(pid):
    name = environ(pid)["NOTIFY_SOCKET"]
    assert re.fullmatch(r"@drover/\d+/[0-9a-f]{8}/notify", name), name
    return "\0" + name[1:]


def started_pid(d, name="a"):
    """The pid of a service that is up (starting or ready) and said hello."""
    st = wait_for(lambda: d.status(name)["pids"] and d.status(name),
                  what=f"{name} to have a process\n{d.log()}")
    pid = st["pids"][0]
    d.wait_log(rf"(?m)^{name}\[{pid}\]: notifier up$")
    return pid


def stranger_socket():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.settimeout(20 * SLOW)
    return s


STRANGER = ("droverd: warning: notify: message from pid {pid}, which is not a process "
            "droverd started: ignored")


# --- readiness and status -----------------------------------------------------

def test_ready_1_from_the_main_process_makes_it_ready(droverd, ctl):
    d = droverd(notifier())
    pid = started_pid(d)
    st = d.status("a")
    assert st["state"] == "starting" and st["reason"] == "waiting for READY=1", st
    # Other keys do not make it ready; READY=0 neither.
    ctl("send READY=0\\nFOO=bar")
    d.wait_log(rf"(?m)^a\[{pid}\]: did send$")
    ctl("send STATUS=warming up")
    wait_for(lambda: d.status("a")["status"] == "warming up", what="STATUS to show")
    assert d.state("a") == "starting"
    ctl("send READY=1")
    st = d.wait_state("a", "ready")
    assert st["pids"] == [pid] and st["reason"] == "", st
    d.wait_log(r"(?m)^droverd: a: ready$")
    assert "notify:" not in d.log()


def test_ready_and_status_in_one_datagram(droverd, ctl):
    d = droverd(notifier())
    started_pid(d)
    ctl("send READY=1\\nSTATUS=serving 3 clients\\n")
    st = d.wait_state("a", "ready")
    assert st["status"] == "serving 3 clients", st


def test_status_text_shows_in_table_and_json(droverd, ctl):
    d = droverd(notifier(options="--ready"))
    pid = started_pid(d)
    d.wait_state("a", "ready")
    ctl("send STATUS=idle: 0 requests")
    wait_for(lambda: d.status("a")["status"] == "idle: 0 requests", what="STATUS in json")
    r = d.drover("status")
    assert r.rc == 0, r
    header, row = r.out.splitlines()
    # CPU, MEM, TASKS: where droverd tracks the service in a cgroup
    cgroup = [c for c in header.split() if c in ("CPU", "MEM", "TASKS")]
    assert header.split() == ["NAME", "MODE", "STATE", "PIDS", "UPTIME", "RESTARTS"] + cgroup + ["STATUS"]
    figures = " +\\S+" * len(cgroup)
    assert re.fullmatch(rf"a +daemon +ready +{pid} +\S+ +0{figures} +idle: 0 requests", row), row
    # A new STATUS= replaces the old one.
    ctl("send STATUS=busy")
    wait_for(lambda: d.status("a")["status"] == "busy", what="the new STATUS")
    r = d.drover("status", "a")
    assert r.out.splitlines()[1].endswith("  busy"), r


def test_notify_socket_is_given_only_to_those_that_need_it(droverd, ctl):
    d = droverd(notifier(options="--ready") + """
[service plain]
command = sleep 1000
""")
    pid = started_pid(d)
    plain = d.wait_state("plain", "ready")["pids"][0]
    env = environ(pid)
    assert "WATCHDOG_USEC" not in env
    notify_address(pid)
    assert "NOTIFY_SOCKET" not in environ(plain)


def test_ready_timeout_counts_as_a_failed_start(droverd, ctl):
    d = droverd(notifier(extra="ready = notify\nready_timeout = 1s\nrestart_delay = 30s"))
    pid = started_pid(d)
    st = d.wait_state("a", "backoff", timeout=10)
    assert st["reason"].startswith("not ready within 1s"), st
    d.wait_log(r"(?m)^droverd: warning: a: not ready within 1s: stopping it$")
    d.wait_log(rf"(?m)^droverd: a: pid {pid} killed by signal 15 \(TERM\)$")


# --- watchdog -------------------------------------------------------------------

def test_watchdog_pings_keep_it_alive_and_silence_gets_it_aborted(droverd, ctl):
    d = droverd(notifier(options="--ready --ping",
                         extra="ready = notify\nwatchdog = 1s\nlimit_core = 0\nrestart_delay = 100ms"))
    pid = started_pid(d)
    d.wait_state("a", "ready")
    assert environ(pid)["WATCHDOG_USEC"] == "1000000"
    # Three watchdog periods with pings: still the same process.
    st = wait_for(lambda: d.status("a")["uptime_ms"] >= 3000 and d.status("a"),
                  what="a to live three watchdog periods")
    assert st["pids"] == [pid] and st["restarts"] == 0 and st["state"] == "ready", st
    assert "WATCHDOG" not in d.log()
    # Silence: aborted, then restarted.
    ctl("ping off")
    d.wait_log(rf"(?m)^droverd: warning: a: no WATCHDOG=1 from pid {pid} within 1s: aborting it$")
    d.wait_log(rf"(?m)^droverd: a: pid {pid} killed by signal 6 \(ABRT\)$")
    st = wait_for(lambda: d.status("a")["restarts"] == 1 and d.status("a")["pids"]
                  and d.status("a"), what="a to be restarted")
    assert st["pids"] != [pid]
    d.wait_state("a", "ready")
    # The reason it was restarted names the watchdog.
    assert re.search(r"(?m)^droverd: warning: a: watchdog: no sign of life within 1s; "
                     r"restarting in 100ms$", d.log()), d.log()


def test_watchdog_without_pings_after_ready(droverd, ctl):
    d = droverd(notifier(extra="ready = notify\nwatchdog = 1s\nlimit_core = 0\nrestart_delay = 30s"))
    pid = started_pid(d)
    ctl("send READY=1")
    d.wait_state("a", "ready")
    st = d.wait_state("a", "backoff", timeout=10)
    assert st["reason"] == "watchdog: no sign of life within 1s; restarting in 30s", st
    d.wait_log(rf"(?m)^droverd: a: pid {pid} killed by signal 6 \(ABRT\)$")


# --- what is ignored ------------------------------------------------------------

def test_stranger_is_ignored_with_a_warning_naming_its_pid(droverd, ctl):
    d = droverd(notifier())
    pid = started_pid(d)
    before = d.status("a")
    with stranger_socket() as s:
        s.sendto(b"READY=1\nSTATUS=forged", notify_address(pid))
    d.wait_log(rf"(?m)^{re.escape(STRANGER.format(pid=os.getpid()))}$")
    st = d.status("a")
    assert st["state"] == "starting" and st["status"] == "" and st["pids"] == before["pids"], st
    assert st["reason"] == "waiting for READY=1"
    # The service itself is still heard.
    ctl("send READY=1")
    d.wait_state("a", "ready")


def test_child_of_the_service_is_not_heard(droverd, ctl):
    # A process the service forks is not one droverd started.
    d = droverd(notifier())
    pid = started_pid(d)
    ctl("child READY=1")
    m = d.wait_log(rf"(?m)^a\[{pid}\]: did child (\d+)$")
    child = int(m.group(1))
    d.wait_log(rf"(?m)^{re.escape(STRANGER.format(pid=child))}$")
    st = d.status("a")
    assert st["state"] == "starting" and st["pids"] == [pid], st


def test_oversized_datagram_is_ignored(droverd, ctl):
    d = droverd(notifier())
    pid = started_pid(d)
    ctl("big 5000")
    d.wait_log(r"(?m)^droverd: warning: notify: datagram of 5000 bytes is too large "
               r"\(4096 at most\): ignored$")
    assert d.state("a") == "starting"
    assert d.pids("a") == [pid]
    # 4096 bytes is not too large.
    ctl("big 4096")
    d.wait_state("a", "ready")
    assert d.log().count("too large") == 1


def test_malformed_datagram_is_ignored(droverd, ctl):
    d = droverd(notifier())
    pid = started_pid(d)
    ctl("send READY")
    d.wait_log(rf"(?m)^droverd: warning: notify: malformed message from pid {pid} "
               r"\(not KEY=VALUE lines\): ignored$")
    st = d.status("a")
    assert st["state"] == "starting" and st["pids"] == [pid], st
    ctl("send READY=1")
    d.wait_state("a", "ready")


def test_flood_from_a_stranger(droverd, ctl):
    count = 100000
    d = droverd(notifier(extra="ready = notify\nready_timeout = 10m"))
    pid = started_pid(d)
    addr = notify_address(pid)
    sent = 0
    failure = []

    def flood():
        nonlocal sent
        try:
            with stranger_socket() as s:
                for _ in range(count):
                    s.sendto(b"READY=1", addr)
                    sent += 1
        except OSError as e:     # pragma: no cover - reported below
            failure.append(e)
    t = threading.Thread(target=flood)
    t.start()
    answered = 0
    try:
        # droverd keeps answering while the flood goes on.
        while t.is_alive() and answered < 20:
            r = d.drover("status", "--json", timeout=10)
            assert r.rc == 0, r
            answered += 1
    finally:
        t.join(timeout=120 * SLOW)
    assert not failure and sent == count, (failure, sent)
    assert answered > 0
    st = d.status("a")
    assert st["state"] == "starting" and st["pids"] == [pid], st
    warn = re.compile(rf"(?m)^{re.escape(STRANGER.format(pid=os.getpid()))}"
                      r"(?: \(and (\d+) more ignored\))?$")
    assert len(warn.findall(d.log())) < 100, "warnings are not rate-limited"
    # Every ignored datagram is accounted for: each warning stands for itself
    # and the ones it says were left out. Once the log has been quiet for
    # longer than the one-second window, one more stranger datagram gets a
    # warning that carries the count of everything since the last one.
    quiet = {"n": -1, "since": 0.0}

    def log_quiet():
        n, now = len(warn.findall(d.log())), time.monotonic()
        if n != quiet["n"]:
            quiet.update(n=n, since=now)
        return now - quiet["since"] > 1.3
    wait_for(log_quiet, timeout=10, interval=0.05, what="the warnings to stop")
    with stranger_socket() as s:
        s.sendto(b"READY=1", addr)
    wait_for(lambda: len(warn.findall(d.log())) > quiet["n"], what="a warning for the last datagram")
    found = warn.findall(d.log())
    total = sum(1 + int(n or 0) for n in found)
    assert total == count + 1, (total, found)
    assert d.state("a") == "starting"


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_passed_descriptors_are_not_kept(droverd, ctl):
    d = droverd(notifier())
    pid = started_pid(d)
    addr = notify_address(pid)
    d.drover("status")
    base = wait_for(lambda: fd_count(d.pid), what="droverd's descriptors")
    # From a stranger: 100 descriptors, more than droverd has room for, plus
    # the read end of a pipe whose fate the test can watch.
    r, w = os.pipe()
    extra = [os.open("/dev/null", os.O_RDONLY) for _ in range(99)]
    with stranger_socket() as s:
        s.sendmsg([b"READY=1"],
                  [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r] + extra))], 0, addr)
    os.close(r)
    for fd in extra:
        os.close(fd)
    d.wait_log(rf"(?m)^{re.escape(STRANGER.format(pid=os.getpid()))}$")

    def pipe_closed():
        try:
            os.write(w, b"x")
        except BrokenPipeError:
            return True
        return False
    try:
        wait_for(pipe_closed, what="droverd to close the passed pipe")
    finally:
        os.close(w)
    # From the service itself, with a message it acts on.
    ctl("fds 10 READY=1")
    d.wait_state("a", "ready")
    wait_for(lambda: fd_count(d.pid) == base,
             what=f"droverd to hold {base} descriptors again (it holds {fd_count(d.pid)}: "
                  f"{sorted(os.listdir(f'/proc/{d.pid}/fd'))})")
    # Descriptors passed with a datagram that is ignored anyway.
    ctl("fds 5 READY")
    d.wait_log(r"(?m)^a\[\d+\]: did fds$")
    d.drover("status")
    wait_for(lambda: fd_count(d.pid) == base, what="no descriptor kept")
