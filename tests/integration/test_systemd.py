"""droverd under systemd: what it tells the service manager (SPEC section 7).

The test plays systemd: it owns the datagram socket NOTIFY_SOCKET names (a
path, or an abstract "@name") and reads what droverd sends: READY=1 once its
auto services are up, STATUS= lines, RELOADING=1 with MONOTONIC_USEC then
READY=1 around a reload, STOPPING=1 at shutdown. Services never see
droverd's own NOTIFY_SOCKET.
"""
import os
import re
import select
import signal
import socket
import time
import uuid
from pathlib import Path

import pytest

from conftest import SLOW, wait_for

# A service that becomes ready (READY=1 on its own NOTIFY_SOCKET) only when
# the test writes a line to its FIFO.
GATE = r'''
import os, socket, sys
name = os.environ["NOTIFY_SOCKET"]
addr = "\0" + name[1:] if name.startswith("@") else name
print("gate up", flush=True)
ctl = os.open(sys.argv[1], os.O_RDWR)
os.read(ctl, 100)
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"READY=1", addr)
print("gate open", flush=True)
os.read(ctl, 100)
'''


class Systemd:
    """The test's side of NOTIFY_SOCKET."""

    def __init__(self, tmp_path, kind):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if kind == "path":
            path = tmp_path / "systemd-notify.sock"
            self.sock.bind(str(path))
            self.name = str(path)
        else:
            name = f"drover-test/{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.name = "@" + name
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.got = []       # (message, sender pid)

    def pump(self, timeout=0.0):
        """Take what has arrived, waiting up to timeout for the first one."""
        r, _, _ = select.select([self.sock], [], [], timeout)
        while r:
            msg, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(12))
            pid = None
            for level, typ, data in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid = int.from_bytes(data[:4], "little")
            self.got.append((msg.decode(), pid))
            r, _, _ = select.select([self.sock], [], [], 0)
        return self.messages()

    def messages(self):
        return [m for m, _ in self.got]

    def wait(self, pred, what, timeout=10):
        deadline = time.monotonic() + timeout * SLOW
        while True:
            for i, m in enumerate(self.messages()):
                if pred(m):
                    return i, m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} from droverd; it sent {self.messages()!r}")
            self.pump(min(left, 0.5))

    def close(self):
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def systemd(request, tmp_path):
    s = Systemd(tmp_path, request.param)
    yield s
    s.close()


def environ(pid):
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(kv.decode().split("=", 1) for kv in raw.split(b"\0") if kv)


GATED = """
[service gate]
command = /usr/bin/python3 -u @DIR@/gate.py @DIR@/gate.fifo
ready = notify

[service after]
command = sleep 1000
requires = gate
"""


@pytest.fixture
def gate(tmp_path):
    (tmp_path / "gate.py").write_text(GATE)
    os.mkfifo(tmp_path / "gate.fifo")
    fd = os.open(tmp_path / "gate.fifo", os.O_RDWR)
    yield lambda: os.write(fd, b"go\n")
    os.close(fd)


def test_ready_once_auto_services_are_up_and_not_before(droverd, systemd, gate):
    d = droverd(GATED, env={"NOTIFY_SOCKET": systemd.name})
    gate_pid = wait_for(lambda: d.status("gate")["pids"], what="gate's process")[0]
    d.wait_log(rf"(?m)^gate\[{gate_pid}\]: gate up$")
    # droverd has told its status, and the services are not up yet: no READY=1.
    systemd.wait(lambda m: m == "STATUS=2 services: 0 up, 0 failing", "first STATUS")
    assert d.state("gate") == "starting" and d.state("after") == "starting"
    systemd.pump(0)
    assert "READY=1" not in systemd.messages(), systemd.messages()
    assert "every auto service has started" not in d.log()
    gate()
    d.wait_state("after", "ready")
    i, _ = systemd.wait(lambda m: m == "READY=1", "READY=1")
    j, _ = systemd.wait(lambda m: m == "STATUS=2 services: 2 up, 0 failing", "the final STATUS")
    assert i < j
    d.wait_log(r"(?m)^droverd: every auto service has started$")
    # Every datagram comes from droverd itself, and READY=1 only once.
    systemd.pump(0)
    assert {pid for _, pid in systemd.got} == {d.pid}
    assert systemd.messages().count("READY=1") == 1


def test_status_lines_follow_the_services(droverd, systemd):
    d = droverd("""
[service a]
command = sleep 1000

[service b]
command = sleep 1001

[service m]
command = sleep 1002
start = manual
""", env={"NOTIFY_SOCKET": systemd.name})
    systemd.wait(lambda m: m == "READY=1", "READY=1")
    systemd.wait(lambda m: m == "STATUS=3 services: 2 up, 0 failing", "STATUS with 2 up")
    assert d.drover("start", "--no-wait", "m").rc == 0
    systemd.wait(lambda m: m == "STATUS=3 services: 3 up, 0 failing", "STATUS with 3 up")
    # A failing service shows as failing.
    b = d.pids("b")[0]
    d.write_config("""
[service a]
command = sleep 1000

[service b]
command = sleep 1001
restart_delay = 30s

[service m]
command = sleep 1002
start = manual
""")
    assert d.drover("reload").rc == 0
    os.kill(b, signal.SIGKILL)
    d.wait_state("b", "backoff")
    systemd.wait(lambda m: m == "STATUS=3 services: 2 up, 1 failing", "STATUS with 1 failing")
    # Only changes are told: no two identical STATUS= in a row.
    statuses = [m for m in systemd.pump(0) if m.startswith("STATUS=")]
    assert all(x != y for x, y in zip(statuses, statuses[1:])), statuses


def mono_usec():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def check_reload_messages(systemd, start, before, after):
    """After index start: RELOADING=1 with a MONOTONIC_USEC in [before, after], then READY=1."""
    i, m = systemd.wait(lambda x: x.startswith("RELOADING=1"), "RELOADING=1")
    assert i >= start
    match = re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=(\d+)", m)
    assert match, repr(m)
    usec = int(match.group(1))
    assert before <= usec <= after, (before, usec, after)
    wait_for(lambda: "READY=1" in systemd.pump(0.1)[i + 1:], what="READY=1 after RELOADING=1")
    later = systemd.messages()[i + 1:]
    # Nothing but status lines between the two.
    between = later[:later.index("READY=1")]
    assert all(x.startswith("STATUS=") for x in between), between


def test_reload_is_bracketed_by_reloading_and_ready(droverd, systemd):
    d = droverd("""
[service a]
command = sleep 1000
""", env={"NOTIFY_SOCKET": systemd.name})
    systemd.wait(lambda m: m == "READY=1", "READY=1")
    systemd.pump(0)
    start = len(systemd.messages())
    before = mono_usec()
    r = d.drover("reload")
    after = mono_usec()
    assert r.rc == 0, r
    systemd.pump(0)
    check_reload_messages(systemd, start, before, after)
    msgs = systemd.messages()[start:]
    assert msgs.count("READY=1") == 1 and sum(m.startswith("RELOADING=1") for m in msgs) == 1


def test_sighup_reload_is_bracketed_too(droverd, systemd):
    d = droverd("""
[service a]
command = sleep 1000
""", env={"NOTIFY_SOCKET": systemd.name})
    systemd.wait(lambda m: m == "READY=1", "READY=1")
    d.write_config("""
[service a]
command = sleep 1000

[service b]
command = sleep 1001
""")
    systemd.pump(0)
    start = len(systemd.messages())
    before = mono_usec()
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"(?m)^droverd: reloaded: 1 added, ")
    after = mono_usec()
    check_reload_messages(systemd, start, before, after)
    d.wait_state("b", "ready")
    systemd.wait(lambda m: m == "STATUS=2 services: 2 up, 0 failing", "STATUS with b")


def test_failed_reload_still_ends_with_ready(droverd, systemd):
    d = droverd("""
[service a]
command = sleep 1000
""", env={"NOTIFY_SOCKET": systemd.name})
    systemd.wait(lambda m: m == "READY=1", "READY=1")
    d.write_config("[service a]\nbogus = 1\n")
    systemd.pump(0)
    start = len(systemd.messages())
    before = mono_usec()
    r = d.drover("reload")
    after = mono_usec()
    assert r.rc == 1, r
    systemd.pump(0)
    check_reload_messages(systemd, start, before, after)


def test_stopping_at_shutdown(droverd, systemd):
    d = droverd("""
[service a]
command = sleep 1000
""", env={"NOTIFY_SOCKET": systemd.name})
    systemd.wait(lambda m: m == "READY=1", "READY=1")
    assert not any(m.startswith("STOPPING=1") for m in systemd.pump(0))
    assert d.stop() == 0
    systemd.pump(0)
    stopping = [m for m in systemd.messages() if m.startswith("STOPPING=1")]
    assert stopping == ["STOPPING=1\nSTATUS=stopping every service"], systemd.messages()


def test_services_do_not_inherit_droverds_notify_socket(droverd, systemd, gate):
    d = droverd(GATED + """
[service plain]
command = sleep 1000

[service inherits]
command = sleep 1001
env_inherit = yes
""", env={"NOTIFY_SOCKET": systemd.name, "DROVER_TEST_MARK": "passed-on"})
    gate()
    for n in ("gate", "after", "plain", "inherits"):
        d.wait_state(n, "ready")
    for n in ("after", "plain"):
        assert "NOTIFY_SOCKET" not in environ(d.pids(n)[0]), n
    env = environ(d.pids("inherits")[0])
    assert env.get("DROVER_TEST_MARK") == "passed-on"   # its environment is passed on...
    assert "NOTIFY_SOCKET" not in env                     # ...but not systemd's socket
    # A notify service gets droverd's own socket, not systemd's.
    own = environ(d.pids("gate")[0])["NOTIFY_SOCKET"]
    assert own != systemd.name
    assert re.fullmatch(rf"@drover/{d.pid}/[0-9a-f]{{8}}/notify", own), own


def test_no_notify_socket_sends_nothing(droverd, tmp_path):
    # Without NOTIFY_SOCKET (or with a value that is not a socket address)
    # droverd runs as usual.
    d = droverd("""
[service a]
command = sleep 1000
""", env={"NOTIFY_SOCKET": "relative/path"})
    d.wait_state("a", "ready")
    assert d.drover("reload").rc == 0
    assert "NOTIFY_SOCKET" not in environ(d.pids("a")[0])
