"""start = demand (SPEC sections 2 and 3): the service is not started until
a connection (or datagram) is pending on one of its listeners; the
connection waits in the backlog and is served by the process it starts,
not lost. A daemon that then exits cleanly waits for the next one. A
prefork pool started on demand starts the whole pool.
"""
import socket

from conftest import free_port, wait_for
from helpers_net import (ECHO, HELLO, PY, UDP_ECHO, accepted_by, connect, echo_once, environ_of,
                         recv_exact, silent, tcp_states, udp_ask, write_program)

# Accepts one connection on descriptor 3, echoes it to EOF, exits 0.
ONE_CONNECTION = r'''
import socket
s = socket.socket(fileno=3)
c, _ = s.accept()
while (b := c.recv(65536)):
    c.sendall(b)
c.close()
'''


def waiting(d, name):
    st = d.wait_state(name, "waiting")
    assert st["pids"] == [], st
    assert st["reason"] == "waiting for a first connection", st
    return st


def test_not_started_until_a_connection_is_pending(droverd):
    port = free_port()
    d = droverd(f"""
[service lazy]
command = {ECHO}
start = demand
listen = tcp:127.0.0.1:{port}

[service other]
command = sleep 1000
""")
    other = d.wait_state("other", "ready")["pids"]
    waiting(d, "lazy")
    # Bound and listening, nothing running.
    assert tcp_states(port) == ["LISTEN"]
    assert "lazy: started" not in d.log()
    with connect(("127.0.0.1", port)) as c:
        # The first bytes, sent before anything runs, are answered by the
        # process the connection starts.
        c.sendall(b"first bytes")
        assert recv_exact(c, 11) == b"first bytes"
        st = d.wait_state("lazy", "ready")
        assert len(st["pids"]) == 1
        pid = st["pids"][0]
        assert accepted_by(c, [pid, d.pid]) == {pid}
        assert environ_of(pid)["LISTEN_PID"] == str(pid)
        assert echo_once(c, b"more") == b"more"
    log = d.log()
    assert log.count("droverd: lazy: connection pending: starting it\n") == 1
    assert f"droverd: lazy: started, pid {pid}\n" in log
    assert log.index("lazy: connection pending") < log.index(f"lazy: started, pid {pid}")
    # It keeps running and serves the next connection itself.
    with connect(("127.0.0.1", port)) as c:
        assert echo_once(c, b"second") == b"second"
    assert d.status("lazy")["pids"] == [pid]
    assert d.status("other")["pids"] == other


def test_waits_again_after_a_clean_exit(droverd, tmp_path):
    port = free_port()
    prog = write_program(tmp_path, "one.py", ONE_CONNECTION)
    d = droverd(f"""
[service once]
command = {PY} {prog}
start = demand
listen = tcp:127.0.0.1:{port}
""")
    waiting(d, "once")
    pids = []
    for n in range(2):
        with connect(("127.0.0.1", port)) as c:
            c.sendall(b"round %d" % n)
            assert recv_exact(c, 7) == b"round %d" % n
            pids.append(d.wait_state("once", "ready")["pids"][0])
        d.wait_log(rf"(?m)^droverd: once: pid {pids[-1]} exited with status 0; waiting for the next "
                   r"connection$")
        st = waiting(d, "once")
        assert st["restarts"] == 0
    assert pids[0] != pids[1]
    assert d.log().count("droverd: once: connection pending: starting it\n") == 2
    # Still listening while it waits: the socket is droverd's.
    assert tcp_states(port) == ["LISTEN"]


def test_udp_demand_starts_on_the_first_datagram(droverd, tmp_path):
    port = free_port(socket.SOCK_DGRAM)
    prog = write_program(tmp_path, "udp_echo.py", UDP_ECHO)
    d = droverd(f"""
[service dns]
command = {PY} {prog} once
start = demand
listen = udp:127.0.0.1:{port}
""")
    waiting(d, "dns")
    assert udp_ask(("127.0.0.1", port), b"first datagram") == b"echo:first datagram"
    d.wait_log(r"(?m)^droverd: dns: pid \d+ exited with status 0; waiting for the next connection$")
    waiting(d, "dns")
    assert udp_ask(("127.0.0.1", port), b"second") == b"echo:second"
    assert d.log().count("droverd: dns: connection pending: starting it\n") == 2


def test_prefork_pool_starts_on_the_first_connection(droverd):
    port = free_port()
    d = droverd(f"""
[service web]
mode = prefork
command = {HELLO}
start = demand
listen = tcp:127.0.0.1:{port}
procs = 2
max_procs = 4
""")
    st = waiting(d, "web")
    assert (st["busy"], st["idle"], st["total"]) == (0, 0, 0)
    with connect(("127.0.0.1", port)) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while (b := c.recv(4096)):
            data += b
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"Hello, world!\n"), data
    st = wait_for(lambda: (s := d.status("web"))["total"] == 2 and s["idle"] == 2 and s,
                  what=f"the pool of 2\n{d.log()}")
    assert st["state"] == "ready" and len(st["pids"]) == 2 and st["served"] == 1
    assert sorted(environ_of(p)["DROVER_WORKER"] for p in st["pids"]) == ["0", "1"]
    assert d.log().count("droverd: web: connection pending: starting it\n") == 1


def test_connection_pending_when_the_process_exits_starts_it_again(droverd, tmp_path):
    port = free_port()
    prog = write_program(tmp_path, "one.py", ONE_CONNECTION)
    d = droverd(f"""
[service once]
command = {PY} {prog}
start = demand
listen = tcp:127.0.0.1:{port}
""")
    waiting(d, "once")
    first = connect(("127.0.0.1", port))
    try:
        assert echo_once(first, b"one") == b"one"
        pid = d.wait_state("once", "ready")["pids"][0]
        # A second client arrives while the process is busy with the first
        # (and will exit after it): it waits in the backlog ...
        with connect(("127.0.0.1", port)) as second:
            second.sendall(b"two")
            first.close()
            d.wait_log(rf"(?m)^droverd: once: pid {pid} exited with status 0; waiting for the next "
                       r"connection$")
            # ... and starts the next process, which serves it.
            assert recv_exact(second, 3) == b"two"
            new = d.status("once")["pids"]
            assert len(new) <= 1 and new != [pid]
    finally:
        first.close()
    assert d.log().count("droverd: once: connection pending: starting it\n") == 2


def test_stopped_demand_service_does_not_start_on_a_connection(droverd):
    port = free_port()
    d = droverd(f"""
[service lazy]
command = {ECHO}
start = demand
listen = tcp:127.0.0.1:{port}
""")
    waiting(d, "lazy")
    r = d.drover("stop", "lazy")
    assert r.rc == 0, r
    st = d.wait_state("lazy", "stopped")
    assert st["pids"] == []
    # Stopped: its listener is closed, nothing answers.
    wait_for(lambda: tcp_states(port) == [], what="the listener to close")
    with socket.socket() as c:
        assert c.connect_ex(("127.0.0.1", port)) == 111      # ECONNREFUSED
    assert "lazy: connection pending" not in d.log()
    # Started again: waiting for a connection, not running.
    assert d.drover("start", "lazy").rc == 0
    waiting(d, "lazy")
    with connect(("127.0.0.1", port)) as c:
        assert echo_once(c, b"back") == b"back"
    d.wait_state("lazy", "ready")


def test_reload_leaves_a_waiting_service_waiting(droverd):
    port = free_port()
    conf = f"""
[service lazy]
command = {ECHO}
start = demand
listen = tcp:127.0.0.1:{port}
"""
    d = droverd(conf)
    waiting(d, "lazy")
    r = d.drover("reload")
    assert (r.rc, r.out) == (0, "reloaded: 0 added, 0 removed, 0 replaced, 0 updated, 1 unchanged\n"), r
    # A change of what its process would be: still nothing to replace.
    d.write_config(conf + "env = X=1\n")
    r = d.drover("reload")
    assert (r.rc, r.out) == (0, "reloaded: 0 added, 0 removed, 1 replaced, 0 updated, 0 unchanged\n"
                                "  replaced  lazy\n"), r
    st = waiting(d, "lazy")
    assert st["generation"] == 2
    assert "lazy: started" not in d.log() and "connection pending" not in d.log()
    with connect(("127.0.0.1", port)) as c:
        c.sendall(b"late")
        assert not silent(c, 2), f"the connection did not start it\n{d.log()}"
        assert recv_exact(c, 4) == b"late"
        pid = d.wait_state("lazy", "ready")["pids"][0]
        assert environ_of(pid)["X"] == "1"
