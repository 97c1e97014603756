"""Listeners (SPEC section 4): every address kind and option, what a process
gets (descriptors 3.. in listen order, LISTEN_FDS, LISTEN_PID,
LISTEN_FDNAMES, nothing else of droverd's), binding before the process
starts (a privileged port for a plain user), listeners that cannot be bound
(only their service fails, with the exact message, and is tried again),
sockets kept open across a reload, closed on removal, a real
sd_listen_fds program (systemd-socket-proxyd), and bad listen lines.

Sockets are identified through the kernel: /proc/PID/fd gives a socket's
inode, pidfd_getfd a duplicate of the very descriptor a service holds (to
read its address and options), ss the sockets on a port and their backlog.
"""
import os
import re
import shutil
import socket
import stat
import subprocess
import uuid

import pytest

from conftest import DROVER, free_port, wait_for
from helpers_control import line_of, world_dir
from helpers_net import (ECHO, PY, UDP_ECHO, ForeignFd, accepted_by, connect, describe_fd,
                         echo_once, environ_of, fds_of, inode_of, listen_queue_max, server_side,
                         tcp_listening, tcp_states, udp_ask, unix_sockets, write_program)

PROXYD = "/lib/systemd/systemd-socket-proxyd"
NOT_HERE_V4 = "203.0.113.9"       # TEST-NET-3: on no interface of this machine
NOT_HERE_V6 = "2001:db8::9"       # documentation prefix
IP_FREEBIND = 15
IPV6_FREEBIND = 78


def the_pid(d, name):
    st = d.wait_state(name, "ready")
    assert len(st["pids"]) == 1, st
    return st["pids"][0]


def reload_ok(d):
    r = d.drover("reload")
    assert (r.rc, r.err) == (0, ""), r
    return r.out


def socket_inode(pid, fd):
    return inode_of(fds_of(pid)[fd])


def fd_flags(pid, fd):
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("flags:"):
                return int(line.split()[1], 8)
    raise AssertionError("no flags in fdinfo")


# --- every address kind ------------------------------------------------------

def test_tcp_host_port(droverd):
    port = free_port()
    d = droverd(f"[service e]\ncommand = {ECHO}\nlisten = tcp:127.0.0.1:{port}\n")
    pid = the_pid(d, "e")
    assert d.status("e")["listen"] == f"tcp:127.0.0.1:{port}"
    assert f"droverd: e: listening on tcp:127.0.0.1:{port}\n" in d.log()
    with connect(("127.0.0.1", port)) as c:
        assert echo_once(c, b"hello over tcp") == b"hello over tcp"
        # The service's process accepted it, not droverd.
        assert accepted_by(c) == {pid}
    with ForeignFd(pid, 3) as s:
        assert s.family == socket.AF_INET and s.type == socket.SOCK_STREAM
        assert s.getsockname() == ("127.0.0.1", port)
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1


@pytest.mark.parametrize("host,bound", [("localhost", "127.0.0.1"), ("*", "0.0.0.0")])
def test_tcp_host_spellings(droverd, host, bound):
    port = free_port()
    d = droverd(f"[service e]\ncommand = {ECHO}\nlisten = tcp:{host}:{port}\n")
    pid = the_pid(d, "e")
    assert d.status("e")["listen"] == f"tcp:{host}:{port}"
    assert describe_fd(pid, 3) == f"tcp {bound}:{port}"
    with connect(("127.0.0.1", port)) as c:
        assert echo_once(c, b"spelled") == b"spelled"


def test_tcp_port_alone_is_dual_stack(droverd):
    port = free_port()
    d = droverd(f"[service e]\ncommand = {ECHO}\nlisten = tcp:{port}\n")
    pid = the_pid(d, "e")
    assert d.status("e")["listen"] == f"tcp:{port}"
    with connect(("127.0.0.1", port)) as c:
        assert echo_once(c, b"over IPv4") == b"over IPv4"
    with connect(("::1", port), family=socket.AF_INET6) as c:
        assert echo_once(c, b"over IPv6") == b"over IPv6"
    with ForeignFd(pid, 3) as s:
        assert s.family == socket.AF_INET6
        assert s.getsockname()[:2] == ("::", port)
        assert s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0


def test_tcp6_is_ipv6_only(droverd):
    port = free_port()
    d = droverd(f"[service e]\ncommand = {ECHO}\nlisten = tcp6:[::1]:{port}\n")
    pid = the_pid(d, "e")
    assert d.status("e")["listen"] == f"tcp6:[::1]:{port}"
    with connect(("::1", port), family=socket.AF_INET6) as c:
        assert echo_once(c, b"six") == b"six"
    with ForeignFd(pid, 3) as s:
        assert s.getsockname()[:2] == ("::1", port)
        assert s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1


@pytest.mark.parametrize("family", ["udp", "udp6", "udp-any"])
def test_udp_daemon_answers_datagrams_on_fd_3(droverd, tmp_path, family):
    if family == "udp":
        port = free_port(socket.SOCK_DGRAM)
        bound, fam, text = ("127.0.0.1", port), socket.AF_INET, f"udp:127.0.0.1:{port}"
    elif family == "udp6":
        port = free_port(socket.SOCK_DGRAM)
        bound, fam, text = ("::1", port), socket.AF_INET6, f"udp6:[::1]:{port}"
    else:       # udp:PORT: every address, IPv4 and IPv6
        port = free_port(socket.SOCK_DGRAM)
        bound, fam, text = ("::", port), socket.AF_INET6, f"udp:{port}"
    prog = write_program(tmp_path, "udp_echo.py", UDP_ECHO)
    d = droverd(f"[service u]\ncommand = {PY} {prog}\nlisten = {text}\n")
    pid = the_pid(d, "u")
    assert d.status("u")["listen"] == text
    targets = [(("127.0.0.1", port), socket.AF_INET), (("::1", port), socket.AF_INET6)] \
        if family == "udp-any" else [(bound, fam)]
    for addr, f in targets:
        assert udp_ask(addr, b"ping", f) == b"echo:ping"
        assert udp_ask(addr, b"again", f) == b"echo:again"
    with ForeignFd(pid, 3) as s:
        assert s.type == socket.SOCK_DGRAM and s.family == fam
        assert s.getsockname()[:2] == bound
        if family == "udp-any":
            assert s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0


def test_unix_path_with_mode_owner_group(droverd):
    with world_dir() as pub:
        path = pub / "echo.sock"
        plain = pub / "plain.sock"
        d = droverd(f"""
[service e]
command = {ECHO}
listen = unix:{path} mode=0660 owner=nobody group=nogroup

[service p]
command = {ECHO}
listen = unix:{plain}
""")
        pid = the_pid(d, "e")
        the_pid(d, "p")
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert (st.st_uid, st.st_gid) == (65534, 65534)
        # Without options: a socket anyone may connect to, owned by droverd.
        st = os.lstat(plain)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o666
        assert (st.st_uid, st.st_gid) == (0, 0)
        with connect(str(path), family=socket.AF_UNIX) as c:
            assert echo_once(c, b"local") == b"local"
        # The mode is the access control: nobody (the owner) may connect,
        # uid 1 (daemon, not in nogroup) may not.
        probe = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
                 "try:\n s.connect(sys.argv[1]); print('connected')\n"
                 "except OSError as e:\n print(e.strerror)\n")
        for uid, gid, want in ((65534, 65534, "connected"), (1, 1, "Permission denied")):
            cp = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                                 "--", PY, "-c", probe, str(path)],
                                capture_output=True, text=True, timeout=30)
            assert cp.stdout == want + "\n", (uid, cp)
        assert unix_sockets()[socket_inode(pid, 3)] == str(path)
        d.stop()
        # Closing its listener removes the file droverd made.
        assert not os.path.lexists(path) and not os.path.lexists(plain)


def test_unix_abstract(droverd):
    name = f"drover-td-{uuid.uuid4().hex[:12]}"
    d = droverd(f"[service e]\ncommand = {ECHO}\nlisten = unix:@{name}\n")
    pid = the_pid(d, "e")
    assert d.status("e")["listen"] == f"unix:@{name}"
    assert unix_sockets()[socket_inode(pid, 3)] == "@" + name
    with connect("\0" + name, family=socket.AF_UNIX) as c:
        assert echo_once(c, b"abstract") == b"abstract"


# --- what the process gets ---------------------------------------------------

def test_descriptors_in_listen_order_and_nothing_else(droverd, tmp_path):
    tport, uport = free_port(), free_port(socket.SOCK_DGRAM)
    sock = tmp_path / "ctl.sock"
    abstract = f"drover-td-{uuid.uuid4().hex[:12]}"
    d = droverd(f"""
[service svc]
command = sleep 1000
listen = web=tcp:127.0.0.1:{tport}
listen = udp:127.0.0.1:{uport}
listen = ctl=unix:{sock}
listen = abs=unix:@{abstract}
""")
    pid = the_pid(d, "svc")
    env = environ_of(pid)
    assert env["LISTEN_FDS"] == "4"
    assert env["LISTEN_PID"] == str(pid)
    assert env["LISTEN_FDNAMES"] == "web:svc:ctl:abs"
    assert "NOTIFY_SOCKET" not in env
    fds = fds_of(pid)
    assert sorted(fds) == [0, 1, 2, 3, 4, 5, 6], fds
    assert fds[0] == "/dev/null"
    assert fds[1].startswith("pipe:") and fds[2] == fds[1]
    assert [describe_fd(pid, i) for i in (3, 4, 5, 6)] == [
        f"tcp 127.0.0.1:{tport}", f"udp 127.0.0.1:{uport}", f"unix {sock}", f"unix @{abstract}"]
    # Passed on blocking, as programs expect of inherited listeners.
    for fd in (3, 4, 5, 6):
        assert fd_flags(pid, fd) & os.O_NONBLOCK == 0, fd
    # Beyond its output pipe and the listeners, none of droverd's own
    # descriptors (control socket, notify socket, epoll, pidfds, log).
    ours = set(fds_of(d.pid).values())
    assert {fds[i] for i in (3, 4, 5, 6)} <= ours          # droverd keeps its listeners
    assert "anon_inode:[eventpoll]" in ours and str(d.logfile) in ours
    assert not {t for t in fds.values() if t.startswith("anon_inode:") or t == str(d.logfile)}


def test_listen_pid_is_the_process_own_pid_each_start(droverd):
    port = free_port()
    d = droverd(f"[service s]\ncommand = sleep 1000\nlisten = tcp:127.0.0.1:{port}\n")
    first = the_pid(d, "s")
    assert environ_of(first)["LISTEN_PID"] == str(first)
    assert d.drover("restart", "s").rc == 0
    second = wait_for(lambda: (p := d.status("s")["pids"]) and p[0] != first and p[0],
                      what="a new process")
    assert environ_of(second)["LISTEN_PID"] == str(second)
    assert environ_of(second)["LISTEN_FDS"] == "1"
    assert environ_of(second)["LISTEN_FDNAMES"] == "s"


def test_plain_user_serves_a_privileged_port(droverd):
    assert int(open("/proc/sys/net/ipv4/ip_unprivileged_port_start").read()) > 99
    port = next(p for p in range(81, 100) if _bindable(p))
    # On its own, nobody may not bind it.
    cp = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", PY, "-c",
                         f"import socket\ntry:\n socket.socket().bind(('127.0.0.1',{port}))\n"
                         "except OSError as e:\n print(e.strerror)\n"],
                        capture_output=True, text=True, timeout=30)
    assert cp.stdout == "Permission denied\n", cp
    # The checkout may sit under a 0700 directory (a CI clone in mktemp -d):
    # run a copy that nobody can reach.
    with world_dir() as pub:
        echo = pub / "echo-worker"
        shutil.copy(ECHO, echo)
        d = droverd(f"[service low]\ncommand = {echo}\nuser = nobody\nlisten = tcp:127.0.0.1:{port}\n")
        _serves_as_nobody(d, port)


def _serves_as_nobody(d, port):
    pid = the_pid(d, "low")
    with open(f"/proc/{pid}/status") as f:
        ids = {k: v.split() for k, v in (line.split(":", 1) for line in f) if k in ("Uid", "Gid")}
    assert ids == {"Uid": ["65534"] * 4, "Gid": ["65534"] * 4}
    with connect(("127.0.0.1", port)) as c:
        assert echo_once(c, b"port below 1024") == b"port below 1024"
        assert accepted_by(c) == {pid}


def _bindable(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# --- options -------------------------------------------------------------------

def test_backlog_sets_the_listen_queue(droverd):
    small, default = free_port(), free_port()
    d = droverd(f"""
[service s]
command = sleep 1000
listen = tcp:127.0.0.1:{small} backlog=7
listen = tcp:127.0.0.1:{default}
""")
    the_pid(d, "s")
    somaxconn = int(open("/proc/sys/net/core/somaxconn").read())
    assert listen_queue_max(small) == 7
    assert listen_queue_max(default) == min(4096, somaxconn)
    # With nobody accepting (sleep), the queue really is that deep: the
    # kernel completes backlog+1 handshakes, then leaves the rest unanswered.
    held = []
    try:
        for _ in range(8):
            held.append(connect(("127.0.0.1", small)))
        extra = socket.socket()
        extra.setblocking(False)
        held.append(extra)
        assert extra.connect_ex(("127.0.0.1", small)) == 115       # EINPROGRESS
        wait_for(lambda: tcp_states(small).count("ESTAB") == 8, what="8 queued connections")
        assert tcp_states(small).count("LISTEN") == 1
    finally:
        for s in held:
            s.close()


def test_reuseport(droverd):
    with_opt, without = free_port(), free_port()
    d = droverd(f"""
[service s]
command = sleep 1000
listen = tcp:127.0.0.1:{with_opt} reuseport
listen = tcp:127.0.0.1:{without}
""")
    pid = the_pid(d, "s")
    with ForeignFd(pid, 3) as s:
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
    with ForeignFd(pid, 4) as s:
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
    # Another socket of the same user can share the port only with reuseport.
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", with_opt))
        other.listen()
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with pytest.raises(OSError) as e:
            other.bind(("127.0.0.1", without))
        assert e.value.errno == 98       # EADDRINUSE


def test_freebind_binds_an_address_not_on_this_machine(droverd):
    assert open("/proc/sys/net/ipv4/ip_nonlocal_bind").read().strip() == "0"
    with socket.socket() as probe:          # not an address of this machine
        with pytest.raises(OSError) as e:
            probe.bind((NOT_HERE_V4, 0))
        assert e.value.errno == 99          # EADDRNOTAVAIL
    p4, p6, p_fail = free_port(), free_port(), free_port()
    d = droverd(f"""
[service free]
command = sleep 1000
listen = tcp:{NOT_HERE_V4}:{p4} freebind
listen = tcp6:[{NOT_HERE_V6}]:{p6} freebind

[service strict]
command = sleep 1000
listen = tcp:{NOT_HERE_V4}:{p_fail}
""")
    pid = the_pid(d, "free")
    assert describe_fd(pid, 3) == f"tcp {NOT_HERE_V4}:{p4}"
    assert describe_fd(pid, 4) == f"tcp6 [{NOT_HERE_V6}]:{p6}"
    assert tcp_states(p4, NOT_HERE_V4) == ["LISTEN"]
    with ForeignFd(pid, 3) as s:
        assert s.getsockopt(socket.IPPROTO_IP, IP_FREEBIND) == 1
    with ForeignFd(pid, 4) as s:
        assert s.getsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND) == 1
    msg = f"cannot listen on tcp:{NOT_HERE_V4}:{p_fail}: bind: Cannot assign requested address"
    st = d.wait_state("strict", "failed")
    assert st["reason"] == msg and st["pids"] == []
    assert f"droverd: error: strict: {msg}\n" in d.log()
    assert d.status("free")["pids"] == [pid]


# --- listeners that cannot be bound -------------------------------------------

def test_port_in_use_fails_only_that_service_and_start_retries(droverd):
    port = free_port()
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen()
    try:
        d = droverd(f"""
[service blocked]
command = {ECHO}
listen = tcp:127.0.0.1:{port}

[service other]
command = sleep 1000
""")
        msg = f"cannot listen on tcp:127.0.0.1:{port}: bind: Address already in use"
        st = d.wait_state("blocked", "failed")
        assert (st["reason"], st["pids"]) == (msg, [])
        other = the_pid(d, "other")
        assert d.log().count(f"droverd: error: blocked: {msg}\n") == 1
        assert "blocked: started" not in d.log()
        # Still in the way: start fails the same way.
        r = d.drover("start", "blocked")
        assert (r.rc, r.out, r.err) == (1, "", f"drover: blocked is failed: {msg}\n"), r
        assert d.log().count(f"droverd: error: blocked: {msg}\n") == 2
        assert d.status("blocked")["reason"] == msg
    finally:
        holder.close()
    r = d.drover("start", "blocked")
    assert r.rc == 0, r
    pid = the_pid(d, "blocked")
    with connect(("127.0.0.1", port)) as c:
        assert echo_once(c, b"now mine") == b"now mine"
        assert accepted_by(c) == {pid}
    assert d.status("other")["pids"] == [other]


def test_unix_path_in_missing_directory_then_reload_retries(droverd, tmp_path):
    path = tmp_path / "missing" / "e.sock"
    conf = f"""
[service e]
command = {ECHO}
listen = unix:{path}

[service other]
command = sleep 1000
"""
    d = droverd(conf)
    msg = f"cannot listen on unix:{path}: bind: No such file or directory"
    st = d.wait_state("e", "failed")
    assert (st["reason"], st["pids"]) == (msg, [])
    other = the_pid(d, "other")
    assert f"droverd: error: e: {msg}\n" in d.log()
    path.parent.mkdir()
    assert reload_ok(d) == "reloaded: 0 added, 0 removed, 0 replaced, 0 updated, 2 unchanged\n"
    d.wait_log(r"(?m)^droverd: e: trying its listeners again$")
    pid = the_pid(d, "e")
    with connect(str(path), family=socket.AF_UNIX) as c:
        assert echo_once(c, b"found") == b"found"
    assert socket_inode(pid, 3) in unix_sockets()
    assert d.status("other")["pids"] == [other]


def test_regular_file_at_unix_path_is_not_removed(droverd, tmp_path):
    path = tmp_path / "data.sock"
    path.write_text("precious\n")
    d = droverd(f"""
[service e]
command = {ECHO}
listen = unix:{path}

[service other]
command = sleep 1000
""")
    msg = f"cannot listen on unix:{path}: the path exists and is not a socket (not removed)"
    st = d.wait_state("e", "failed")
    assert (st["reason"], st["pids"]) == (msg, [])
    assert f"droverd: error: e: {msg}\n" in d.log()
    other = the_pid(d, "other")
    assert path.read_text() == "precious\n"
    path.unlink()
    assert d.drover("start", "e").rc == 0
    the_pid(d, "e")
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    with connect(str(path), family=socket.AF_UNIX) as c:
        assert echo_once(c, b"x") == b"x"
    assert d.status("other")["pids"] == [other]


def test_live_unix_socket_of_another_process_is_left_alone(droverd, tmp_path):
    path = tmp_path / "taken.sock"
    theirs = socket.socket(socket.AF_UNIX)
    theirs.bind(str(path))
    theirs.listen()
    os.chmod(path, 0o600)           # droverd would make it 0666: tells them apart
    inode = os.lstat(path).st_ino
    try:
        d = droverd(f"[service e]\ncommand = {ECHO}\nlisten = unix:{path}\n")
        msg = f"cannot listen on unix:{path}: another process is listening on it"
        st = d.wait_state("e", "failed")
        assert (st["reason"], st["pids"]) == (msg, [])
        assert f"droverd: error: e: {msg}\n" in d.log()
        # Their socket is intact and still theirs.
        st = os.lstat(path)
        assert (st.st_ino, stat.S_IMODE(st.st_mode)) == (inode, 0o600)
        with connect(str(path), family=socket.AF_UNIX):
            theirs.settimeout(5)
            conn, _ = theirs.accept()
            conn.close()
    finally:
        theirs.close()
    # Gone (the file is left, stale): now droverd may take the path.
    assert d.drover("start", "e").rc == 0
    pid = the_pid(d, "e")
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o666
    assert unix_sockets()[socket_inode(pid, 3)] == str(path)
    with connect(str(path), family=socket.AF_UNIX) as c:
        assert echo_once(c, b"mine now") == b"mine now"


def test_stale_unix_socket_file_is_replaced(droverd, tmp_path):
    path = tmp_path / "stale.sock"
    subprocess.run([PY, "-c", "import os,socket,sys\nos.umask(0o077)\ns=socket.socket(socket.AF_UNIX)\n"
                    "s.bind(sys.argv[1]); s.listen()\n", str(path)], check=True, timeout=30)
    old = os.lstat(path)
    assert stat.S_ISSOCK(old.st_mode) and stat.S_IMODE(old.st_mode) == 0o700
    d = droverd(f"[service e]\ncommand = {ECHO}\nlisten = unix:{path}\n")
    pid = the_pid(d, "e")
    # A new socket file (inode numbers may be reused: the mode tells).
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o666
    assert unix_sockets()[socket_inode(pid, 3)] == str(path)
    with connect(str(path), family=socket.AF_UNIX) as c:
        assert echo_once(c, b"fresh") == b"fresh"


# --- reload and removal ------------------------------------------------------

ACCEPT_ECHO = r'''
import socket
s = socket.socket(fileno=3)
while True:
    c, _ = s.accept()
    while (b := c.recv(65536)):
        c.sendall(b)
    c.close()
'''


def test_unchanged_listener_is_the_same_socket_across_a_reload(droverd, tmp_path):
    keep, backlog, option = free_port(), free_port(), free_port()
    prog = write_program(tmp_path, "accept_echo.py", ACCEPT_ECHO)
    d = droverd(f"""
[service s]
command = sleep 1000
listen = tcp:127.0.0.1:{keep}
listen = tcp:127.0.0.1:{backlog} backlog=16
listen = tcp:127.0.0.1:{option}
""")
    old = the_pid(d, "s")
    inodes = [socket_inode(old, fd) for fd in (3, 4, 5)]
    # Nobody accepts yet: this connection waits in the backlog.
    waiting = connect(("127.0.0.1", keep))
    try:
        waiting.sendall(b"queued before the reload")
        assert server_side(waiting)["inode"] == 0
        d.write_config(f"""
[service s]
command = {PY} {prog}
listen = tcp:127.0.0.1:{keep}
listen = tcp:127.0.0.1:{backlog} backlog=32
listen = tcp:127.0.0.1:{option} reuseport
""")
        assert reload_ok(d) == ("reloaded: 0 added, 0 removed, 1 replaced, 0 updated, 0 unchanged\n"
                                "  replaced  s\n")
        new = wait_for(lambda: (p := d.status("s")["pids"]) and p != [old] and d.state("s") == "ready"
                       and p[0], what="the new process")
        # Unchanged: the same socket. Only the backlog changed: the same
        # socket, listening with the new backlog. Another option changed: a
        # new socket.
        assert socket_inode(new, 3) == inodes[0]
        assert socket_inode(new, 4) == inodes[1]
        assert listen_queue_max(backlog) == 32
        assert socket_inode(new, 5) != inodes[2]
        with ForeignFd(new, 5) as sock:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        assert f"socket:[{inodes[2]}]" not in fds_of(d.pid).values()
        assert tcp_states(option) == ["LISTEN"]
        # The connection made before the reload is served by the new process.
        assert recv_all(waiting, 24) == b"queued before the reload"
        assert accepted_by(waiting) == {new}
    finally:
        waiting.close()


def recv_all(s, n):
    data = b""
    while len(data) < n:
        b = s.recv(n - len(data))
        assert b, data
        data += b
    return data


def test_removed_service_closes_its_listeners(droverd, tmp_path):
    port = free_port()
    path = tmp_path / "gone.sock"
    d = droverd(f"""
[service s]
command = {ECHO}
listen = tcp:127.0.0.1:{port}
listen = unix:{path}

[service keep]
command = sleep 1000
""")
    pid = the_pid(d, "s")
    keep = the_pid(d, "keep")
    inodes = {socket_inode(pid, 3), socket_inode(pid, 4)}
    d.write_config("[service keep]\ncommand = sleep 1000\n")
    assert reload_ok(d).endswith("  removed   s\n")
    d.wait_log(r"(?m)^droverd: s: removed$")
    with socket.socket() as c:
        with pytest.raises(ConnectionRefusedError):
            c.connect(("127.0.0.1", port))
    assert not os.path.lexists(path)
    assert not tcp_listening(port)
    assert not inodes & set(unix_sockets())
    assert not {f"socket:[{i}]" for i in inodes} & set(fds_of(d.pid).values())
    assert d.status("keep")["pids"] == [keep]


def test_service_added_by_reload_with_a_port_in_use_fails_alone(droverd):
    port, busy = free_port(), free_port()
    d = droverd(f"[service keep]\ncommand = {ECHO}\nlisten = tcp:127.0.0.1:{port}\n")
    keep = the_pid(d, "keep")
    holder = socket.socket()
    holder.bind(("127.0.0.1", busy))
    holder.listen()
    try:
        d.write_config(f"""
[service keep]
command = {ECHO}
listen = tcp:127.0.0.1:{port}

[service new]
command = {ECHO}
listen = tcp:127.0.0.1:{busy}
""")
        assert reload_ok(d) == ("reloaded: 1 added, 0 removed, 0 replaced, 0 updated, 1 unchanged\n"
                                "  added     new\n")
        msg = f"cannot listen on tcp:127.0.0.1:{busy}: bind: Address already in use"
        assert d.wait_state("new", "failed")["reason"] == msg
        d.wait_log(rf"(?m)^droverd: error: new: {re.escape(msg)}$")
    finally:
        holder.close()
    assert d.status("keep")["pids"] == [keep]
    # Nothing changed in the file: the next reload tries its listener again.
    assert reload_ok(d) == "reloaded: 0 added, 0 removed, 0 replaced, 0 updated, 2 unchanged\n"
    pid = the_pid(d, "new")
    with connect(("127.0.0.1", busy)) as c:
        assert echo_once(c, b"retried") == b"retried"
        assert accepted_by(c, [pid]) == {pid}
    assert d.status("keep")["pids"] == [keep]


def test_listener_moved_to_a_renamed_service_in_one_reload(droverd):
    """An administrator renames a service (old name removed, new one added
    with the same listen line): the new one ends up serving the port. The
    old one's socket is busy only while it drains."""
    port = free_port()
    d = droverd(f"[service old]\ncommand = {ECHO}\nlisten = tcp:127.0.0.1:{port}\n")
    the_pid(d, "old")
    d.write_config(f"[service new]\ncommand = {ECHO}\nlisten = tcp:127.0.0.1:{port}\n")
    assert reload_ok(d) == ("reloaded: 1 added, 1 removed, 0 replaced, 0 updated, 0 unchanged\n"
                            "  removed   old\n"
                            "  added     new\n")
    wait_for(lambda: "old" not in d.status(), what="old to be gone")
    d.wait_state("new", "ready", timeout=3)
    with connect(("127.0.0.1", port)) as c:
        assert echo_once(c, b"renamed") == b"renamed"


# --- a real sd_listen_fds program --------------------------------------------

def test_systemd_socket_proxyd_runs_unchanged(droverd):
    echo_port, proxy_port = free_port(), free_port()
    d = droverd(f"""
[service echo]
command = {ECHO}
listen = tcp:127.0.0.1:{echo_port}

[service proxy]
command = {PROXYD} 127.0.0.1:{echo_port}
listen = tcp:127.0.0.1:{proxy_port}
requires = echo
""")
    proxy = the_pid(d, "proxy")
    echo = the_pid(d, "echo")
    with connect(("127.0.0.1", proxy_port)) as c:
        payload = os.urandom(200000)
        c.sendall(payload)
        assert recv_all(c, len(payload)) == payload
        assert accepted_by(c) == {proxy}
    with connect(("127.0.0.1", proxy_port)) as c:
        assert echo_once(c, b"second") == b"second"
    assert d.status("proxy")["pids"] == [proxy]
    assert d.status("echo")["pids"] == [echo]


# --- bad listen lines ------------------------------------------------------------

def check(conf):
    return subprocess.run([str(DROVER), "check", "-c", str(conf)], capture_output=True, text=True,
                          timeout=30)


def test_check_reports_each_bad_listen_line_once(tmp_path):
    """Every bad line, one error each: the half-parsed listeners of bad
    lines are not compared with each other as if they were addresses (and
    never printed as "(null)")."""
    conf = tmp_path / "bad.conf"
    conf.write_text("[service a]\ncommand = sleep 1\n"
                    "listen = tcp:127.0.0.1:0\n"
                    "listen = tcp:127.0.0.1:70000\n"
                    "[service b]\ncommand = sleep 1\n"
                    "listen = sctp:81\n"
                    "listen = =tcp:81\n"
                    "listen = x=tcp:81 mode=0600\n")
    cp = check(conf)
    assert (cp.returncode, cp.stdout) == (1, "")
    assert cp.stderr == (
        f'{conf}:3: bad listen in [service a]: "tcp:127.0.0.1:0" has a bad port (use 1 to 65535)\n'
        f'{conf}:4: bad listen in [service a]: "tcp:127.0.0.1:70000" has a bad port (use 1 to 65535)\n'
        f'{conf}:7: bad listen in [service b]: "sctp:81" is not an address (use tcp:HOST:PORT, tcp:PORT, '
        "tcp6:[ADDR]:PORT, udp:HOST:PORT, udp6:[ADDR]:PORT, unix:/PATH or unix:@NAME)\n"
        f'{conf}:8: bad listen in [service b]: "=tcp:81" has a bad FDNAME (1 to 255 printable characters, '
        "no ':')\n"
        f'{conf}:9: bad listen in [service b]: "x=tcp:81 mode=0600" has mode=, owner= or group=, which are '
        "only for unix:/PATH\n"
        f"{conf}: 5 errors\n")


BAD = """\
[service web]
command = sleep 1000
listen = tcp:127.0.0.1:99999
listen = tcp6:[::1]:80x
[service sock]
command = sleep 1000
listen = unix:/run/td.sock owner=no-such-user-td
[service dns]
mode = accept
command = cat
listen = udp:127.0.0.1:53
[service pool]
mode = prefork
command = sleep 1000
listen = tcp:127.0.0.1:8099
procs = 8
max_procs = 4
[service bare]
mode=prefork
command = sleep 1000
[service dgram]
command = sleep 1000
listen = udp6:::1:53
"""


def bad_errors(conf):
    def at(needle):
        return f"{conf}:{line_of(BAD, needle)}: "
    return [
        at("99999") + 'bad listen in [service web]: "tcp:127.0.0.1:99999" has a bad port (use 1 to 65535)',
        at("80x") + 'bad listen in [service web]: "tcp6:[::1]:80x" has a bad port (use 1 to 65535)',
        at("no-such-user") + 'bad listen in [service sock]: "unix:/run/td.sock owner=no-such-user-td" has '
        "an owner that is not a user on this system",
        at("udp:127.0.0.1:53") + "mode accept cannot use datagram listener udp:127.0.0.1:53 in [service dns] "
        "(accept needs a stream: tcp or unix)",
        at("procs = 8") + "procs (8) is above max_procs (4) in [service pool]",
        at("mode=prefork") + 'mode prefork needs at least one "listen" in [service bare]',
        at("udp6:") + 'bad listen in [service dgram]: "udp6:::1:53" is not [ADDRESS]:PORT',
    ]


def test_check_bad_listener_settings(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text(BAD)
    cp = check(conf)
    errors = bad_errors(conf)
    assert (cp.returncode, cp.stdout) == (1, "")
    assert cp.stderr == "".join(e + "\n" for e in errors) + f"{conf}: {len(errors)} errors\n"


def test_reload_onto_bad_listeners_changes_nothing(droverd):
    port, uport = free_port(), free_port(socket.SOCK_DGRAM)
    good = f"""
[service e]
command = {ECHO}
listen = tcp:127.0.0.1:{port}

[service s]
command = sleep 1000
listen = udp:127.0.0.1:{uport}
"""
    d = droverd(good)
    e, s = the_pid(d, "e"), the_pid(d, "s")
    inodes = (socket_inode(e, 3), socket_inode(s, 3))
    before = {n: (r["state"], r["pids"], r["generation"], r["listen"]) for n, r in d.status().items()}
    d.write_config(BAD)
    r = d.drover("reload")
    errors = bad_errors(d.conf)
    assert (r.rc, r.out) == (1, ""), r
    assert r.err == (f"drover: the configuration has {len(errors)} errors; still running the old one\n"
                     + "".join(x + "\n" for x in errors)), r
    after = {n: (r["state"], r["pids"], r["generation"], r["listen"]) for n, r in d.status().items()}
    assert after == before
    assert (socket_inode(e, 3), socket_inode(s, 3)) == inodes
    with connect(("127.0.0.1", port)) as c:
        assert echo_once(c, b"still here") == b"still here"
    assert "listening on" not in d.log().split("reload: the new configuration")[-1]
    assert silent_log_after(d, "reload: the new configuration")


def silent_log_after(d, marker):
    """Nothing was started or stopped after the marker in the log."""
    tail = d.log().split(marker)[-1]
    return not re.search(r"(started|stopping|removed|added|listening)", tail)
