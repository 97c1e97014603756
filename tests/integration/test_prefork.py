"""Prefork pools (SPEC sections 3 and 7): procs workers sharing the
listeners, each accepting for itself (droverd is never in the data path),
growing one worker per pending connection up to max_procs while none is
idle, shrinking back after idle_timeout, retiring at max_use, the throttle
of a pool whose workers die before serving, and the busy/idle protocol
(stale generations and strangers ignored).

Which process took a connection is read from the kernel (/proc/net/tcp
gives the inode of the server's end, /proc/PID/fd who holds it) and, for
the Python worker below, from its greeting line.
"""
import os
import re
import signal
import socket
import time

from conftest import free_port, wait_for
from helpers_net import (ECHO, HELLO, PY, accepted_by, connect, echo_once, environ_of, fds_of,
                         inode_of, recv_exact, server_side, silent, udp_ask, write_program)

# A prefork worker in Python. argv[1]:
#   talk  - READY=1, X_DROVER=busy / idle around each connection
#   quiet - never notifies
#   crash - talks, and dies of SIGSEGV after its first connection
#   linger- talks; on TERM stops accepting but stays alive; on USR1 sends
#           X_DROVER=busy and writes @DIR@/sent-<pid>
# Each connection gets "pid=P worker=W gen=G\n", then an echo until EOF.
WORKER = r'''
import os, signal, socket, sys
mode = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))

def notify(msg):
    addr = os.environ["NOTIFY_SOCKET"]
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(msg.encode(), addr)
    s.close()

class Stop(Exception):
    pass

def on_term(sig, frame):
    raise Stop()

def on_usr1(sig, frame):
    notify("X_DROVER=busy")
    with open(os.path.join(here, "sent-%d" % os.getpid()), "w"):
        pass

talk = mode != "quiet"
if mode == "linger":
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGUSR1, on_usr1)
lis = socket.socket(fileno=3)
if talk:
    notify("READY=1")
try:
    while True:
        c, _ = lis.accept()
        if talk:
            notify("X_DROVER=busy")
        c.sendall(("pid=%d worker=%s gen=%s\n" % (os.getpid(), os.environ.get("DROVER_WORKER"),
                                                  os.environ.get("DROVER_GENERATION"))).encode())
        while True:
            b = c.recv(65536)
            if not b:
                break
            c.sendall(b)
        c.close()
        if mode == "crash":
            signal.signal(signal.SIGSEGV, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGSEGV)
        if talk:
            notify("X_DROVER=idle")
except Stop:
    lis.close()
    with open(os.path.join(here, "stopped-%d" % os.getpid()), "w"):
        pass
    while True:
        signal.pause()
'''

# A UDP worker: answers one datagram with its pid and slot, then waits
# forever, so the next datagram must go to another worker.
UDP_WORKER = r'''
import os, signal, socket
s = socket.socket(fileno=3)
data, addr = s.recvfrom(65536)
s.sendto(("pid=%d worker=%s" % (os.getpid(), os.environ["DROVER_WORKER"])).encode(), addr)
while True:
    signal.pause()
'''


def worker_conf(tmp_path, mode, port, extra=""):
    prog = write_program(tmp_path, "worker.py", WORKER)
    return f"""
[service pool]
mode = prefork
command = {PY} {prog} {mode}
listen = tcp:127.0.0.1:{port}
{extra}
"""


def greeting(c):
    line = b""
    while not line.endswith(b"\n"):
        b = c.recv(1)
        assert b, line
        line += b
    m = re.fullmatch(rb"pid=(\d+) worker=(\S+) gen=(\d+)\n", line)
    assert m, line
    return int(m[1]), m[2].decode(), int(m[3])


def counts(d, name="pool"):
    st = d.status(name)
    return st["busy"], st["idle"], st["total"]


def wait_counts(d, busy, idle, total, name="pool"):
    return wait_for(lambda: counts(d, name) == (busy, idle, total) and d.status(name),
                    what=f"{name} at busy={busy} idle={idle} total={total} "
                         f"(it is {counts(d, name)})\n{d.log()}")


# --- a pool of workers ---------------------------------------------------------

def test_pool_of_procs_workers_each_with_a_slot_and_notify_socket(droverd):
    port = free_port()
    d = droverd(f"""
[service web]
mode = prefork
command = {HELLO}
listen = tcp:127.0.0.1:{port}
procs = 3
""")
    st = wait_counts(d, 0, 3, 3, "web")
    assert st["state"] == "ready" and st["mode"] == "prefork" and st["served"] == 0
    pids = st["pids"]
    assert len(pids) == 3
    envs = [environ_of(p) for p in pids]
    assert sorted(e["DROVER_WORKER"] for e in envs) == ["0", "1", "2"]
    for p, e in zip(pids, envs):
        assert re.fullmatch(rf"@drover/{d.pid}/[0-9a-f]{{8}}/notify", e["NOTIFY_SOCKET"]), e
        assert (e["LISTEN_FDS"], e["LISTEN_PID"], e["LISTEN_FDNAMES"]) == ("1", str(p), "web")
        assert e["DROVER_SERVICE"] == "web" and e["DROVER_GENERATION"] == "1"
    # All share the one listening socket droverd bound.
    assert len({fds_of(p)[3] for p in pids}) == 1
    with connect(("127.0.0.1", port)) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = c.recv(4096)
        while b"Hello, world!\n" not in head:
            more = c.recv(4096)
            assert more, head
            head += more
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"X-Generation: 1\r\n" in head
        # A worker accepted it; droverd holds no end of the connection.
        holders = accepted_by(c)
        assert len(holders) == 1 and holders <= set(pids), (holders, pids)
        inode = server_side(c)["inode"]
        assert f"socket:[{inode}]" not in fds_of(d.pid).values()
        st = wait_counts(d, 1, 2, 3, "web")
        assert st["served"] == 1
    st = wait_counts(d, 0, 3, 3, "web")
    assert st["served"] == 1 and st["pids"] == pids
    r = d.drover("status", "web")
    assert r.rc == 0 and "0 busy, 3 idle, 3 workers; 1 served" in r.out, r


def test_pool_grows_one_worker_per_pending_connection_up_to_max_procs(droverd):
    port = free_port()
    d = droverd(f"""
[service pool]
mode = prefork
command = {ECHO}
listen = tcp:127.0.0.1:{port}
procs = 1
max_procs = 3
""")
    wait_counts(d, 0, 1, 1)
    seen = set(d.status("pool")["pids"])
    held = []
    try:
        for n in (1, 2, 3):
            c = connect(("127.0.0.1", port))
            held.append(c)
            assert echo_once(c, b"conn %d" % n) == b"conn %d" % n
            # One pending connection, one more worker: exactly n, all busy.
            st = wait_counts(d, n, 0, n)
            assert len(st["pids"]) == n
            seen |= set(st["pids"])
            assert accepted_by(c) <= set(st["pids"])
        envs = sorted(environ_of(p)["DROVER_WORKER"] for p in d.status("pool")["pids"])
        assert envs == ["0", "1", "2"]
        # At max_procs: more connections are accepted by the kernel into
        # the backlog, and wait there.
        for n in (4, 5):
            c = connect(("127.0.0.1", port))
            held.append(c)
            c.sendall(b"conn %d" % n)
        for c in held[3:]:
            assert silent(c)
            assert server_side(c)["inode"] == 0
        st = d.status("pool")
        assert (st["busy"], st["idle"], st["total"], len(st["pids"])) == (3, 0, 3, 3)
        seen |= set(st["pids"])
        # A worker freed by the first client takes the fourth; then the fifth.
        held[0].close()
        assert recv_exact(held[3], 6) == b"conn 4"
        held[1].close()
        assert recv_exact(held[4], 6) == b"conn 5"
        st = d.status("pool")
        seen |= set(st["pids"])
        assert st["total"] == 3 and len(st["pids"]) == 3
        assert len(seen) == 3, seen          # never a fourth worker
    finally:
        for c in held:
            c.close()
    st = wait_counts(d, 0, 3, 3)
    assert st["served"] == 5


def test_pool_still_grows_after_a_reload_made_while_all_workers_are_busy(droverd):
    port = free_port()
    conf = f"""
[service pool]
mode = prefork
command = {ECHO}
listen = tcp:127.0.0.1:{port}
procs = 1
max_procs = 3
"""
    d = droverd(conf)
    wait_counts(d, 0, 1, 1)
    with connect(("127.0.0.1", port)) as first:
        assert echo_once(first, b"one") == b"one"
        wait_counts(d, 1, 0, 1)
        # droverd now watches the listener for a pending connection; a
        # reload (unchanged, then a live change) must not lose that.
        r = d.drover("reload")
        assert (r.rc, r.out) == (0, "reloaded: 0 added, 0 removed, 0 replaced, 0 updated, 1 unchanged\n")
        with connect(("127.0.0.1", port)) as second:
            second.sendall(b"two")
            assert not silent(second), f"the pool did not grow after the reload\n{d.log()}"
            assert recv_exact(second, 3) == b"two"
            wait_counts(d, 2, 0, 2)
            d.write_config(conf + "idle_timeout = 30s\n")
            r = d.drover("reload")
            assert (r.rc, r.out) == (0, "reloaded: 0 added, 0 removed, 0 replaced, 1 updated, 0 unchanged\n"
                                        "  updated   pool\n")
            with connect(("127.0.0.1", port)) as third:
                third.sendall(b"three")
                assert not silent(third), f"the pool did not grow after the reload\n{d.log()}"
                assert recv_exact(third, 5) == b"three"
                wait_counts(d, 3, 0, 3)


def test_idle_workers_above_procs_retire_after_idle_timeout(droverd):
    port = free_port()
    d = droverd(f"""
[service pool]
mode = prefork
command = {ECHO}
listen = tcp:127.0.0.1:{port}
procs = 1
max_procs = 3
idle_timeout = 1s
""")
    wait_counts(d, 0, 1, 1)
    held = []
    for n in range(3):
        c = connect(("127.0.0.1", port))
        held.append(c)
        assert echo_once(c, b"x") == b"x"
        wait_counts(d, n + 1, 0, n + 1)
    pids = set(d.status("pool")["pids"])
    closed_at = time.monotonic()        # before any worker can say it is idle
    for c in held:
        c.close()
    wait_counts(d, 0, 1, 1)
    # Not before they were idle for idle_timeout.
    assert time.monotonic() - closed_at >= 0.95
    # Counted out once told to go; listed until they have exited.
    st = wait_for(lambda: len((s := d.status("pool"))["pids"]) == 1 and s,
                  what=f"the retired workers to exit\n{d.log()}")
    left = set(st["pids"])
    assert left < pids
    retired = sorted(int(p) for p in re.findall(r"(?m)^droverd: pool: retiring worker pid (\d+) "
                                                  r"\(idle above procs\)$", d.log()))
    assert retired == sorted(pids - left)
    # Retired, not failed: no throttle, no restart counted.
    assert st["state"] == "ready" and st["restarts"] == 0
    assert "throttling" not in d.log()


def test_max_use_retires_a_worker_and_replaces_it(droverd, tmp_path):
    port = free_port()
    d = droverd(worker_conf(tmp_path, "talk", port, "max_use = 2"))
    wait_counts(d, 0, 1, 1)
    first = d.status("pool")["pids"][0]
    for _ in range(2):
        with connect(("127.0.0.1", port)) as c:
            pid, slot, gen = greeting(c)
            assert (pid, slot, gen) == (first, "0", 1)
            assert echo_once(c, b"use") == b"use"
    d.wait_log(rf"(?m)^droverd: pool: retiring worker pid {first} \(max_use reached\)$")
    st = wait_for(lambda: (s := d.status("pool"))["pids"] and first not in s["pids"] and s["idle"] == 1 and s,
                  what=f"a replacement worker\n{d.log()}")
    second = st["pids"][0]
    with connect(("127.0.0.1", port)) as c:
        pid, slot, gen = greeting(c)
        # The replacement is a worker like any other: it has a slot.
        assert (pid, gen) == (second, 1)
        assert slot.isdigit(), f"the replacement worker has no DROVER_WORKER (got {slot!r})"
    st = wait_counts(d, 0, 1, 1)
    assert st["served"] == 3 and st["restarts"] == 0 and st["state"] == "ready"


def test_every_worker_of_a_new_generation_has_a_slot(droverd):
    port = free_port()
    conf = f"""
[service web]
mode = prefork
command = {HELLO}
listen = tcp:127.0.0.1:{port}
procs = 2
"""
    d = droverd(conf)
    old = wait_counts(d, 0, 2, 2, "web")["pids"]
    d.write_config(conf + "env = GEN=2\n")
    r = d.drover("reload")
    assert (r.rc, r.out) == (0, "reloaded: 0 added, 0 removed, 1 replaced, 0 updated, 0 unchanged\n"
                                "  replaced  web\n"), r
    d.wait_log(r"(?m)^droverd: web: generation 2 is ready; the previous one finishes its work$")
    st = wait_for(lambda: (s := d.status("web"))["total"] == 2 and not set(s["pids"]) & set(old) and s,
                  what=f"the old generation to be gone\n{d.log()}")
    slots = [environ_of(p).get("DROVER_WORKER") for p in st["pids"]]
    assert all(x is not None and x.isdigit() for x in slots), slots
    assert len(set(slots)) == 2, slots


def test_worker_without_the_protocol_gives_a_fixed_pool(droverd, tmp_path):
    port = free_port()
    d = droverd(worker_conf(tmp_path, "quiet", port, "procs = 2\nmax_procs = 4"))
    st = d.wait_state("pool", "ready")
    pids = wait_for(lambda: len(p := d.status("pool")["pids"]) == 2 and p, what="2 workers")
    a, b = connect(("127.0.0.1", port)), connect(("127.0.0.1", port))
    try:
        served_by = {greeting(a)[0], greeting(b)[0]}
        assert served_by == set(pids)
        # Both busy, one more waits: a pool that does not report is not grown.
        with connect(("127.0.0.1", port)) as c:
            assert silent(c)
            st = d.status("pool")
            assert (st["pids"], st["total"], st["busy"], st["idle"]) == (pids, 2, 0, 0)
            a.close()
            pid, _, _ = greeting(c)
            assert pid in pids
        st = d.status("pool")
        assert st["pids"] == pids and st["state"] == "ready"
    finally:
        a.close()
        b.close()


# --- failures ----------------------------------------------------------------------

def test_worker_dying_at_once_throttles_the_pool(droverd, tmp_path):
    port = free_port()
    spawns = tmp_path / "spawns"
    d = droverd(f"""
[service pool]
mode = prefork
command = /bin/sh -c 'echo x >> {spawns}; exit 1'
listen = tcp:127.0.0.1:{port}
procs = 2
restart_delay = 100ms
restart_delay_max = 2s
""")
    d.wait_log(r"throttling the pool for 2s\n")
    # Three rounds of two workers: 100ms, 200ms, then 400ms, 800ms, then
    # 1.6s and the 2s cap: six processes in about a second, not a fork loop.
    delays = re.findall(r"(?m)^droverd: warning: pool: worker pid \d+ exited with status 1 before serving "
                        r"a connection; throttling the pool for (\S+)$", d.log())
    assert delays == ["100ms", "200ms", "400ms", "800ms", "1.6s", "2s"], d.log()
    assert len(spawns.read_text().split()) == 6
    st = d.status("pool")
    assert st["state"] == "backoff" and st["pids"] == []
    assert 0 < st["next_ms"] <= 2000
    assert st["reason"] == "worker exited with status 1 before serving a connection; throttled for 2s"
    assert st["restarts"] == 6
    # While throttled, a connection does not start anything.
    with connect(("127.0.0.1", port)) as c:
        c.sendall(b"anyone?")
        assert d.status("pool")["pids"] == []
    assert len(spawns.read_text().split()) <= 8


def test_worker_crashing_after_serving_is_replaced_without_backoff(droverd, tmp_path):
    port = free_port()
    d = droverd(worker_conf(tmp_path, "crash", port, "limit_core = 0\nrestart_delay = 20s\n"
                                                       "restart_delay_max = 20s"))
    wait_counts(d, 0, 1, 1)
    with connect(("127.0.0.1", port)) as c:
        first, _, _ = greeting(c)
        assert echo_once(c, b"last words") == b"last words"
    d.wait_log(rf"(?m)^droverd: warning: pool: worker pid {first} killed by signal 11 \(SEGV\)$")
    # Replaced at once (a backoff would wait restart_delay = 20s).
    st = wait_counts(d, 0, 1, 1, "pool")
    second = st["pids"][0]
    assert second != first
    with connect(("127.0.0.1", port)) as c:
        assert greeting(c)[0] == second
    assert "throttling" not in d.log()
    st = d.status("pool")
    assert st["restarts"] == 0 and st["state"] == "ready"


# --- the status protocol ------------------------------------------------------------

def notify_address(pid):
    name = environ_of(pid)["NOTIFY_SOCKET"]
    return "\0" + name[1:] if name.startswith("@") else name


def test_messages_from_a_stale_generation_and_from_strangers_are_ignored(droverd, tmp_path):
    port = free_port()
    d = droverd(worker_conf(tmp_path, "linger", port, "stop_timeout = 30s"))
    wait_counts(d, 0, 1, 1)
    old = d.status("pool")["pids"][0]
    with connect(("127.0.0.1", port)) as c:
        assert greeting(c)[0] == old
    wait_counts(d, 0, 1, 1)
    try:
        # A new command: a new generation beside the old one, which is then
        # asked to stop, stops accepting, and lingers.
        d.write_config(worker_conf(tmp_path, "talk", port, "stop_timeout = 30s"))
        r = d.drover("reload")
        assert (r.rc, r.out) == (0, "reloaded: 0 added, 0 removed, 1 replaced, 0 updated, 0 unchanged\n"
                                    "  replaced  pool\n"), r
        d.wait_log(r"(?m)^droverd: pool: generation 2 is ready; the previous one finishes its work$")
        wait_for(lambda: (tmp_path / f"stopped-{old}").exists(), what="the old worker to stop accepting")
        st = wait_counts(d, 0, 1, 1)
        assert st["generation"] == 2 and st["served"] == 1
        new = [p for p in st["pids"] if p != old]
        assert len(new) == 1 and old in st["pids"]
        # The old generation says it is busy: ignored.
        os.kill(old, signal.SIGUSR1)
        wait_for(lambda: (tmp_path / f"sent-{old}").exists(), what="the stale message to be sent")
        # A stranger (this test) says so too: ignored, with a warning.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"X_DROVER=busy", notify_address(new[0]))
        d.wait_log(rf"(?m)^droverd: warning: notify: message from pid {os.getpid()}, which is not a "
                   r"process droverd started: ignored$")
        # One real connection, after both: exactly one more served.
        with connect(("127.0.0.1", port)) as c:
            pid, _, gen = greeting(c)
            assert (pid, gen) == (new[0], 2)
            wait_counts(d, 1, 0, 1)
        st = wait_counts(d, 0, 1, 1)
        assert st["served"] == 2
    finally:
        os.kill(old, signal.SIGKILL)    # or it would hold up the shutdown for stop_timeout
    wait_for(lambda: old not in d.status("pool")["pids"], what="the old worker to be reaped")


def test_udp_prefork_workers_share_the_socket(droverd, tmp_path):
    prog = write_program(tmp_path, "udp_worker.py", UDP_WORKER)
    port = free_port(socket.SOCK_DGRAM)
    d = droverd(f"""
[service dns]
mode = prefork
command = {PY} {prog}
listen = udp:127.0.0.1:{port}
procs = 2
""")
    pids = wait_for(lambda: len(p := d.status("dns")["pids"]) == 2 and p, what="two workers")
    assert fds_of(pids[0])[3] == fds_of(pids[1])[3]
    assert inode_of(fds_of(pids[0])[3])
    answers = [udp_ask(("127.0.0.1", port), b"q1"), udp_ask(("127.0.0.1", port), b"q2")]
    got = {}
    for a in answers:
        m = re.fullmatch(rb"pid=(\d+) worker=(\d)", a)
        assert m, a
        got[int(m[1])] = m[2].decode()
    assert set(got) == set(pids)
    assert sorted(got.values()) == ["0", "1"]
    assert d.status("dns")["pids"] == pids
