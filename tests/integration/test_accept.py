"""Accept mode (SPEC section 3, inetd's nowait): droverd accepts each
connection and runs the command with it on standard input and output, with
REMOTE_ADDR, REMOTE_PORT, LOCAL_ADDR, LOCAL_PORT. At max_procs handlers
it stops accepting (the backlog holds the rest, none is refused);
max_rate bounds new connections per second; per_source closes what is
beyond that many at once from one address. A real inetd program (git
daemon --inetd) serves a clone.

A connection that droverd has not accepted yet has inode 0 on the server
side (ss -e): it waits in the backlog.
"""
import os
import re
import selectors
import socket
import subprocess
import time

import pytest

from conftest import free_port, wait_for
from helpers_net import (ECHO, accepted_by, connect, echo_once, environ_of, fds_of, read_to_eof,
                         recv_exact, server_side, silent)

GIT_DAEMON = "/usr/lib/git-core/git-daemon"


def handler_conf(command, listen, extra=""):
    return f"""
[service acc]
mode = accept
command = {command}
listen = {listen}
{extra}
"""


def env_lines(data):
    return dict(line.split("=", 1) for line in data.decode().splitlines())


def served(d, name="acc"):
    st = d.status(name)
    return st["busy"], st["total"], st["served"]


# --- one process per connection -----------------------------------------------

def test_each_connection_runs_the_command_on_stdin_and_stdout(droverd):
    port = free_port()
    d = droverd(handler_conf(ECHO, f"tcp:127.0.0.1:{port}"))
    st = d.wait_state("acc", "ready")
    assert (st["mode"], st["pids"], st["busy"], st["total"], st["served"]) == ("accept", [], 0, 0, 0)
    with connect(("127.0.0.1", port)) as a, connect(("127.0.0.1", port)) as b:
        assert echo_once(a, b"first") == b"first"
        assert echo_once(b, b"second") == b"second"
        st = wait_for(lambda: len((s := d.status("acc"))["pids"]) == 2 and s, what="two handlers")
        assert (st["busy"], st["total"], st["served"]) == (2, 2, 2)
        # Each connection is held by its own handler only: droverd handed
        # it over and closed its copy.
        ha, hb = accepted_by(a, st["pids"] + [d.pid]), accepted_by(b, st["pids"] + [d.pid])
        assert len(ha) == 1 and len(hb) == 1 and ha | hb == set(st["pids"])
        for pid in st["pids"]:
            fds = fds_of(pid)
            assert sorted(fds) == [0, 1, 2], fds
            assert fds[0] == fds[1] and fds[0].startswith("socket:[")
            assert fds[2].startswith("pipe:[")
            # droverd's listener is non-blocking; the connection a handler
            # gets is an ordinary blocking one.
            with open(f"/proc/{pid}/fdinfo/0") as f:
                flags = int(next(x for x in f if x.startswith("flags:")).split()[1], 8)
            assert flags & os.O_NONBLOCK == 0
            env = environ_of(pid)
            assert "LISTEN_FDS" not in env and "NOTIFY_SOCKET" not in env
    st = wait_for(lambda: (s := d.status("acc"))["pids"] == [] and s, what="the handlers to end")
    assert (st["busy"], st["total"], st["served"], st["state"]) == (0, 0, 2, "ready")
    r = d.drover("status", "acc")
    assert r.rc == 0 and "0 running, 2 served" in r.out, r


def test_handler_environment_tcp(droverd):
    port = free_port()
    d = droverd(handler_conf("/usr/bin/env", f"tcp:127.0.0.1:{port}"))
    d.wait_state("acc", "ready")
    with connect(("127.0.0.1", port)) as c:
        mine = c.getsockname()[1]
        env = env_lines(read_to_eof(c))
    assert env == {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "DROVER_SERVICE": "acc", "DROVER_GENERATION": "1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": str(mine),
        "LOCAL_ADDR": "127.0.0.1", "LOCAL_PORT": str(port),
    }


def handler_env(addr, **kw):
    """Connect to a /usr/bin/env handler: (our port, its environment)."""
    with connect(addr, **kw) as c:
        return c.getsockname()[1], env_lines(read_to_eof(c))


def remote_local(env):
    return (env["REMOTE_ADDR"], env["REMOTE_PORT"], env["LOCAL_ADDR"], env["LOCAL_PORT"])


def test_handler_environment_tcp6_and_another_source(droverd):
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", 0))
    port = s.getsockname()[1]
    s.close()
    d = droverd(handler_conf("/usr/bin/env", f"tcp:{port}"))
    d.wait_state("acc", "ready")
    mine, env = handler_env(("::1", port), family=socket.AF_INET6)
    assert remote_local(env) == ("::1", str(mine), "::1", str(port))
    # Over IPv4 on the dual-stack socket, from 127.0.0.2.
    mine, env = handler_env(("127.0.0.1", port), source=("127.0.0.2", 0))
    # An IPv4 client of a dual-stack socket shows as IPv4, as under systemd.
    assert remote_local(env) == ("127.0.0.2", str(mine), "127.0.0.1", str(port))


def test_handler_environment_tcp6_one_address(droverd):
    # Bound to one address, droverd knows the local end without asking the
    # kernel: it must still say exactly what getsockname would.
    port = free_port()
    d = droverd(handler_conf("/usr/bin/env", f"tcp6:[::1]:{port}"))
    d.wait_state("acc", "ready")
    mine, env = handler_env(("::1", port), family=socket.AF_INET6)
    assert remote_local(env) == ("::1", str(mine), "::1", str(port))


def test_unix_listener(droverd, tmp_path):
    path = tmp_path / "accept.sock"
    assert len(str(path)) > 45      # longer than an IPv6 address
    d = droverd(handler_conf("/usr/bin/env", f"unix:{path}") + f"""
[service echo]
mode = accept
command = {ECHO}
listen = unix:@drover-td-accept-{os.getpid()}
""")
    d.wait_state("acc", "ready")
    d.wait_state("echo", "ready")
    with connect(str(path), family=socket.AF_UNIX) as c:
        env = env_lines(read_to_eof(c))
    assert env["LOCAL_ADDR"] == str(path)
    assert env["REMOTE_ADDR"] == ""           # an unnamed client socket
    with connect(f"\0drover-td-accept-{os.getpid()}", family=socket.AF_UNIX) as c:
        assert echo_once(c, b"abstract") == b"abstract"
    assert d.status("echo")["served"] == 1


@pytest.mark.parametrize("change", ["unchanged", "max_procs"])
def test_still_accepting_after_a_reload(droverd, change):
    port = free_port()
    conf = handler_conf(ECHO, f"tcp:127.0.0.1:{port}")
    d = droverd(conf)
    d.wait_state("acc", "ready")
    with connect(("127.0.0.1", port)) as c:
        assert echo_once(c, b"before") == b"before"
    if change == "max_procs":
        d.write_config(conf + "max_procs = 5\n")
    r = d.drover("reload")
    want = {"unchanged": "reloaded: 0 added, 0 removed, 0 replaced, 0 updated, 1 unchanged\n",
            "max_procs": "reloaded: 0 added, 0 removed, 0 replaced, 1 updated, 0 unchanged\n"
                         "  updated   acc\n"}[change]
    assert (r.rc, r.out) == (0, want), r
    with connect(("127.0.0.1", port)) as c:
        c.sendall(b"after")
        assert not silent(c), f"not accepted after the reload\n{d.log()}"
        assert recv_exact(c, 5) == b"after"
    assert wait_for(lambda: served(d) == (0, 0, 2), what="2 served")


# --- limits ----------------------------------------------------------------------

def test_at_max_procs_connections_wait_in_the_backlog(droverd):
    port = free_port()
    d = droverd(handler_conf(ECHO, f"tcp:127.0.0.1:{port}", "max_procs = 2"))
    d.wait_state("acc", "ready")
    held = []
    try:
        for n in (1, 2):
            c = connect(("127.0.0.1", port))
            held.append(c)
            assert echo_once(c, b"c%d" % n) == b"c%d" % n
        wait_for(lambda: served(d) == (2, 2, 2), what="two handlers")
        # Two more: the handshake completes (the kernel queues them), but
        # droverd does not accept them.
        for n in (3, 4):
            c = connect(("127.0.0.1", port))
            held.append(c)
            c.sendall(b"c%d" % n)
        for c in held[2:]:
            assert silent(c)
            assert server_side(c) == {"state": "ESTAB", "inode": 0}
        assert served(d) == (2, 2, 2)
        assert len(d.status("acc")["pids"]) == 2
        # One ends: the next one is accepted and handled; then the last.
        held[0].close()
        assert recv_exact(held[2], 2) == b"c3"
        assert served(d)[2] == 3
        held[1].close()
        assert recv_exact(held[3], 2) == b"c4"
        assert wait_for(lambda: served(d) == (2, 2, 4), what="4 served")
    finally:
        for c in held:
            c.close()
    wait_for(lambda: served(d) == (0, 0, 4), what="all handlers to end")
    assert "refus" not in d.log() and "reset" not in d.log()


def test_max_rate_spreads_connections_over_seconds(droverd):
    port = free_port()
    d = droverd(handler_conf("/bin/echo hi", f"tcp:127.0.0.1:{port}", "max_rate = 5"))
    d.wait_state("acc", "ready")
    conns = [connect(("127.0.0.1", port)) for _ in range(15)]
    times = {}
    sel = selectors.DefaultSelector()
    try:
        for c in conns:
            c.setblocking(False)
            sel.register(c, selectors.EVENT_READ, [])
        deadline = time.monotonic() + 20
        while len(times) < len(conns) and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                c, got = key.fileobj, key.data
                b = c.recv(100)
                if not got:
                    times.setdefault(c, time.monotonic())
                if b:
                    got.append(b)
                else:
                    sel.unregister(c)
                    assert b"".join(got) == b"hi\n"
        assert len(times) == 15, f"{len(times)} of 15 answered\n{d.log()}"
    finally:
        sel.close()
        for c in conns:
            c.close()
    t = sorted(times.values())
    # Five a second: three bursts about a second apart.
    assert t[-1] - t[0] >= 1.8, t
    for i, start in enumerate(t):
        assert sum(1 for x in t[i:] if x < start + 0.8) <= 5, t
    assert wait_for(lambda: served(d) == (0, 0, 15), what="15 served")


def test_per_source_closes_the_excess_from_one_address(droverd):
    port = free_port()
    d = droverd(handler_conf(ECHO, f"tcp:127.0.0.1:{port}", "per_source = 2"))
    d.wait_state("acc", "ready")
    a = connect(("127.0.0.1", port))
    b = connect(("127.0.0.1", port))
    try:
        assert echo_once(a, b"a") == b"a"
        assert echo_once(b, b"b") == b"b"
        # A third at once from 127.0.0.1: closed without a handler.
        with connect(("127.0.0.1", port)) as c:
            assert read_to_eof(c) == b""
        # Another source address is not limited by 127.0.0.1's count.
        with connect(("127.0.0.1", port), source=("127.0.0.2", 0)) as e:
            assert echo_once(e, b"e") == b"e"
            assert served(d) == (3, 3, 3)
        wait_for(lambda: served(d)[0] == 2, what="e's handler to end")
        # One of 127.0.0.1's ends: it may have another.
        a.close()
        wait_for(lambda: served(d)[0] == 1, what="a's handler to end")
        with connect(("127.0.0.1", port)) as f:
            assert echo_once(f, b"f") == b"f"
    finally:
        a.close()
        b.close()
    wait_for(lambda: served(d) == (0, 0, 4), what="all handlers to end")


# --- real programs, and failures ------------------------------------------------------

def git(*args, cwd=None, env=None):
    cp = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp
    return cp


def test_git_daemon_inetd_serves_a_clone(droverd, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    base = tmp_path / "git"
    base.mkdir()
    git("init", "-q", "--bare", "-b", "main", str(base / "repo.git"), env=env)
    work = tmp_path / "work"
    git("init", "-q", "-b", "main", str(work), env=env)
    (work / "README").write_text("served by git daemon under droverd\n")
    git("add", "README", cwd=work, env=env)
    git("commit", "-q", "-m", "first", cwd=work, env=env)
    git("push", "-q", str(base / "repo.git"), "main", cwd=work, env=env)
    port = free_port()
    d = droverd(handler_conf(f"{GIT_DAEMON} --inetd --export-all --base-path={base}",
                             f"tcp:127.0.0.1:{port}"))
    d.wait_state("acc", "ready")
    git("clone", "-q", "-b", "main", f"git://127.0.0.1:{port}/repo.git", str(tmp_path / "out"), env=env)
    assert (tmp_path / "out" / "README").read_text() == "served by git daemon under droverd\n"
    head = git("rev-parse", "HEAD", cwd=work, env=env).stdout
    assert git("rev-parse", "HEAD", cwd=tmp_path / "out", env=env).stdout == head
    st = wait_for(lambda: (s := d.status("acc"))["pids"] == [] and s, what="git daemon to end")
    assert st["served"] == 1 and st["state"] == "ready"


def test_handler_that_cannot_be_executed(droverd, tmp_path):
    port = free_port()
    handler = tmp_path / "handler.sh"
    d = droverd(handler_conf(handler, f"tcp:127.0.0.1:{port}") + "\n[service other]\ncommand = sleep 1000\n")
    d.wait_state("acc", "ready")
    other = d.wait_state("other", "ready")["pids"]
    msg = f"cannot exec {handler}: No such file or directory"
    for _ in range(2):
        with connect(("127.0.0.1", port)) as c:
            c.sendall(b"hello?")
            try:
                assert read_to_eof(c) == b""       # closed, nothing sent
            except ConnectionResetError:
                pass                               # closed with our bytes unread
    d.wait_log(rf"(?m)^droverd: error: acc: {re.escape(msg)}$")
    # Handlers start without droverd waiting for their exec: the failure is
    # known from the child's report, its exit a moment later.
    st = wait_for(lambda: (s := d.status("acc"))["pids"] == [] and s, what="the handlers to be reaped")
    assert (st["state"], st["reason"], st["served"]) == ("ready", msg, 0)
    # droverd goes on: once the handler exists, connections are served.
    tmp = handler.with_suffix(".tmp")
    tmp.write_text("#!/bin/sh\necho now here\n")
    os.chmod(tmp, 0o755)
    os.rename(tmp, handler)
    with connect(("127.0.0.1", port)) as c:
        assert read_to_eof(c) == b"now here\n"
    assert d.status("other")["pids"] == other
    assert wait_for(lambda: d.status("acc")["served"] == 1, what="one served")


def vm_size_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmSize:")).split()[1])


def test_handlers_leave_no_descriptor_or_memory_behind(droverd, tmp_path):
    """Each handler starts without droverd waiting for its exec, on a block
    of memory droverd takes back once the exec (or the exit) is known, and
    keeps (up to 32 blocks of 80 KB) for the next handlers: after many
    handlers, some failing, some at once, droverd holds the same
    descriptors, and its address space has grown by no more than those
    kept blocks, however many handlers ran."""
    good, bad = free_port(), free_port()
    d = droverd(handler_conf("/bin/echo served", f"tcp:127.0.0.1:{good}") +
                f"\n[service nox]\nmode = accept\ncommand = {tmp_path / 'missing'}\n"
                f"listen = tcp:127.0.0.1:{bad}\n")
    d.wait_state("acc", "ready")
    d.wait_state("nox", "ready")

    def burst(n):
        conns = [connect(("127.0.0.1", port)) for _ in range(n) for port in (good, bad)]
        for c in conns:
            with c:
                try:
                    data = read_to_eof(c)
                except ConnectionResetError:
                    data = b""
                assert data in (b"served\n", b"")
        wait_for(lambda: d.status("acc")["pids"] == [] and d.status("nox")["pids"] == [],
                 what="every handler to be reaped")

    burst(5)        # the heap and the tables reach their working size
    fds, vm = fds_of(d.pid), vm_size_kb(d.pid)
    for _ in range(8):
        burst(10)
    assert d.status("acc")["served"] == 85
    assert d.status("nox")["served"] == 0
    assert fds_of(d.pid) == fds
    # At most the 32 kept blocks (2.5 MB); 160 handlers' blocks left
    # mapped would be 12 MB and more.
    assert vm_size_kb(d.pid) - vm < 3 * 1024
