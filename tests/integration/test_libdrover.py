"""libdrover (SPEC section 7, drover.h): drover_listen_fds() counts the
passed listeners only when LISTEN_PID is the caller's pid and marks them
close-on-exec, drover_listen_fd() finds one by FDNAME, drover_notify()
sends to a path or an abstract NOTIFY_SOCKET, and the documented return
values: 1 sent, 0 no NOTIFY_SOCKET, -errno on failure. No call keeps a
descriptor open.

The library is exercised by a small C program (libdrover_client.c) linked
against BUILD/libdrover.a, run by droverd and directly.
"""
import errno
import os
import re
import socket
import subprocess
import uuid

import pytest

from conftest import BUILD, REPO, SANITIZED, free_port

SRC = REPO / "tests" / "integration" / "libdrover_client.c"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    out = tmp_path_factory.mktemp("libdrover") / "libdrover_client"
    flags = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"] if SANITIZED else []
    cp = subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", *flags,
                         "-I", str(REPO / "src" / "libdrover"), "-o", str(out), str(SRC),
                         str(BUILD / "libdrover.a")], capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr
    return out


def run(client, *args, env=None):
    e = {"PATH": "/usr/bin:/bin"}
    e.update(env or {})
    cp = subprocess.run([str(client), *args], capture_output=True, text=True, env=e, timeout=30)
    assert cp.returncode == 0 and cp.stderr == "", cp
    return dict(line.split("=", 1) for line in cp.stdout.splitlines())


def results(d, name, pid=None):
    """The key=value lines a service printed (its log lines), once it
    printed its last one."""
    num = str(pid) if pid else r"\d+"
    who = rf"{name}\[{num}\]"
    d.wait_log(rf"(?m)^{who}: open-fds-delta=")
    lines = re.findall(rf"(?m)^{who}: (.*)$", d.log())
    return dict(line.split("=", 1) for line in lines)


# --- listeners ---------------------------------------------------------------------

def test_listen_fds_and_names_under_droverd(droverd, client):
    port = free_port()
    abstract = f"drover-td-{uuid.uuid4().hex[:10]}"
    d = droverd(f"""
[service lib]
command = {client} fds web lib ctl we nosuch
restart = no
listen = web=tcp:127.0.0.1:{port}
listen = udp:127.0.0.1:{port}
listen = ctl=unix:@{abstract}
""")
    got = results(d, "lib")
    assert got == {"cloexec-before": "0,0,0", "fds": "3", "cloexec-after": "1,1,1",
                   "fd[web]": "3", "fd[lib]": "4", "fd[ctl]": "5", "fd[we]": "-1", "fd[nosuch]": "-1",
                   "open-fds-delta": "0"}


def test_listen_fds_is_zero_when_listen_pid_is_another_process(droverd, client):
    """The listeners were meant for the shell, not for its child: the
    child must not take them (nor touch their flags)."""
    port = free_port()
    d = droverd(f"""
[service lib]
command = /bin/sh -c '{client} fds lib; true'
restart = no
listen = tcp:127.0.0.1:{port}
""")
    got = results(d, "lib")
    assert got == {"cloexec-before": "0", "fds": "0", "cloexec-after": "0", "fd[lib]": "-1",
                   "open-fds-delta": "0"}


@pytest.mark.parametrize("env", [{}, {"LISTEN_FDS": "2"}, {"LISTEN_FDS": "2", "LISTEN_PID": "1"},
                                 {"LISTEN_FDS": "0", "LISTEN_PID": "self"},
                                 {"LISTEN_FDS": "x", "LISTEN_PID": "self"}],
                         ids=["none", "no-pid", "other-pid", "zero", "not-a-number"])
def test_listen_fds_without_usable_environment(client, env):
    if env.get("LISTEN_PID") == "self":
        # sh sets LISTEN_PID to its own pid, then becomes the client.
        argv = ["/bin/sh", "-c", f'LISTEN_PID=$$ exec {client} fds x']
        e = {"PATH": "/usr/bin:/bin", "LISTEN_FDS": env["LISTEN_FDS"]}
        cp = subprocess.run(argv, capture_output=True, text=True, env=e, timeout=30)
        assert cp.returncode == 0, cp
        got = dict(line.split("=", 1) for line in cp.stdout.splitlines())
    else:
        got = run(client, "fds", "x", env=env)
    assert (got["fds"], got["fd[x]"]) == ("0", "-1")


# --- notify ---------------------------------------------------------------------------

@pytest.fixture
def receiver(tmp_path):
    """Datagram sockets to receive on: a path and an abstract name."""
    path = tmp_path / "notify.sock"
    name = f"drover-td-{uuid.uuid4().hex[:10]}"
    a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.bind(str(path))
    b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    b.bind("\0" + name)
    for s in (a, b):
        s.settimeout(10)
    yield {str(path): a, "@" + name: b}
    a.close()
    b.close()


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_notify_sends_to_path_and_abstract_sockets(client, receiver, kind):
    addr = [k for k in receiver if k.startswith("/" if kind == "path" else "@")][0]
    sock = receiver[addr]
    env = {"NOTIFY_SOCKET": addr}
    assert run(client, "notify", "STATUS=hello\nX=1", env=env) == {"notify": "1", "open-fds-delta": "0"}
    assert sock.recv(4096) == b"STATUS=hello\nX=1"
    for call, msg in (("ready", b"READY=1"), ("busy", b"X_DROVER=busy"), ("idle", b"X_DROVER=idle")):
        assert run(client, call, env=env) == {call: "1", "open-fds-delta": "0"}
        assert sock.recv(4096) == msg


def test_notify_return_values(client, tmp_path):
    def notify(env, *args):
        return run(client, *(args or ("notify", "READY=1")), env=env)

    assert notify({}) == {"notify": "0", "open-fds-delta": "0"}
    assert notify({"NOTIFY_SOCKET": ""}) == {"notify": "0", "open-fds-delta": "0"}
    assert notify({"NOTIFY_SOCKET": "relative.sock"})["notify"] == str(-errno.EINVAL)
    assert notify({"NOTIFY_SOCKET": "/" + "x" * 120})["notify"] == str(-errno.EINVAL)
    assert notify({"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})["notify"] == str(-errno.ENOENT)
    # A socket file nobody reads from any more.
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(stale))
    s.close()
    got = notify({"NOTIFY_SOCKET": str(stale)})
    assert got == {"notify": str(-errno.ECONNREFUSED), "open-fds-delta": "0"}
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as r:
        path = tmp_path / "big.sock"
        r.bind(str(path))
        assert notify({"NOTIFY_SOCKET": str(path)}, "big") == {"notify": str(-errno.EMSGSIZE),
                                                               "open-fds-delta": "0"}
        r.setblocking(False)
        with pytest.raises(BlockingIOError):
            r.recv(8192)            # nothing was sent


def test_ready_and_status_reach_droverd(droverd, client):
    d = droverd(f"""
[service lib]
command = {client} status "all systems go"
ready = notify
""")
    st = d.wait_state("lib", "ready")
    pid = st["pids"][0]
    assert st["status"] == "all systems go"
    got = results(d, "lib", pid)
    assert got == {"notify": "1", "ready": "1", "open-fds-delta": "0"}
    assert os.path.exists(f"/proc/{pid}")
