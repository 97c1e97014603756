"""The control socket and its protocol: who may connect and who may
control droverd, drover's exit codes (0 ok, 1 failed or refused, 2 usage,
3 no daemon), where drover looks for the socket, malformed requests sent
byte by byte from Python (each gets a clean error reply or a closed
connection, and droverd goes on unchanged), and the output of status,
version and shutdown.

The protocol is decoded here from src/lib/proto.h, independently of the C
codec (helpers_control.py).
"""
import grp
import json
import os
import re
import socket
import stat
import struct

import pytest

from conftest import DROVER, DROVERD, REPO, children_of, process_exists, wait_for
from helpers_control import (PK_PART, PK_REPLY, base_env, call, connect, decode_frames, exchange, frame,
                             open_fds, read_to_eof, request, run)
from helpers_control import pubdir  # noqa: F401 (fixture)

USERS = "users"
USERS_GID = grp.getgrnam(USERS).gr_gid
VERSION = re.search(r"^VERSION\s*:=\s*(\S+)", (REPO / "Makefile").read_text(), re.M).group(1)

SERVICES = """\
[service web]
command = sleep 1000

[service db]
command = sleep 1001

[service spare]
command = sleep 1002
start = manual
"""


def snapshot(d):
    """What must not change: state, pids, generation, restarts of each."""
    return {n: (r["state"], r["pids"], r["generation"], r["restarts"]) for n, r in d.status().items()}


def up(d):
    for name in ("web", "db"):
        st = d.wait_state(name, "ready")
        assert len(st["pids"]) == 1, st      # so that "pids unchanged" means something
    return snapshot(d)


def start_public(droverd, pubdir, config=SERVICES):
    """droverd with its socket in a directory uid 65534 can reach."""
    d = droverd(config, start=False)
    d.sock = pubdir / "control.sock"
    d.start()
    return d, up(d)


def nobody(d, *args, groups=None):
    return run([DROVER, "-S", d.sock, *args], user=True, groups=groups)


def usage_text():
    r = run([DROVER, "--help"])
    assert r.rc == 0 and r.out.startswith("usage: drover [-S SOCKET] COMMAND [ARGS]\n"), r
    return r.out


# --- the socket and who may use it -----------------------------------------

def test_socket_mode_0600(droverd):
    d = droverd(SERVICES)
    st = os.lstat(d.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 0, 0)


def test_socket_mode_0660_with_control_group(droverd):
    d = droverd(f"[drover]\ncontrol_group = {USERS}\n" + SERVICES)
    st = os.lstat(d.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o660, 0, USERS_GID)


def test_unprivileged_user_cannot_connect(pubdir, droverd):
    d, before = start_public(droverd, pubdir)
    for args in (["status"], ["stop", "web"], ["shutdown"]):
        r = nobody(d, *args)
        assert (r.rc, r.out, r.err) == (1, "", f"drover: permission denied: cannot connect to {d.sock}\n"), r
    assert snapshot(d) == before


REFUSED = "drover: permission denied: uid 65534 may not control droverd (root, uid 0 may)\n"


def test_unprivileged_user_refused_by_credentials(pubdir, droverd):
    """The socket opened to everyone by mistake: droverd still checks the
    peer's credentials and refuses every request, changing nothing."""
    d, before = start_public(droverd, pubdir)
    os.chmod(d.sock, 0o666)
    # Repeated: the refusal must not depend on who is faster, the client
    # sending its request or droverd answering at accept time.
    for args in (["status"], ["stop", "web"], ["signal", "db", "KILL"], ["reload"], ["shutdown"]) * 4:
        r = nobody(d, *args)
        assert (r.rc, r.out, r.err) == (1, "", REFUSED), r
    d.wait_log(r"droverd: warning: control: uid 65534 \(pid \d+\) was refused\n")
    assert d.running()
    assert snapshot(d) == before


def test_control_group_non_member_cannot_connect(pubdir, droverd):
    d, before = start_public(droverd, pubdir, f"[drover]\ncontrol_group = {USERS}\n" + SERVICES)
    r = nobody(d, "stop", "web")
    assert (r.rc, r.out, r.err) == (1, "", f"drover: permission denied: cannot connect to {d.sock}\n"), r
    assert snapshot(d) == before


def test_control_group_non_member_refused_by_credentials(pubdir, droverd):
    d, before = start_public(droverd, pubdir, f"[drover]\ncontrol_group = {USERS}\n" + SERVICES)
    os.chmod(d.sock, 0o666)
    for _ in range(10):
        r = nobody(d, "stop", "web")
        assert (r.rc, r.out, r.err) == (1, "", "drover: permission denied: uid 65534 may not control droverd "
                                               f"(root, uid 0 and members of group {USERS} may)\n"), r
    assert snapshot(d) == before


def test_control_group_supplementary_member_allowed(pubdir, droverd):
    d, before = start_public(droverd, pubdir, f"[drover]\ncontrol_group = {USERS}\n" + SERVICES)
    r = nobody(d, "status", "--json", groups=[USERS_GID])
    assert (r.rc, r.err) == (0, ""), r
    assert sorted(x["name"] for x in json.loads(r.out)) == ["db", "spare", "web"]
    r = nobody(d, "stop", "web", groups=[USERS_GID])
    assert (r.rc, r.out, r.err) == (0, "", ""), r
    assert d.state("web") == "stopped"
    assert snapshot(d)["db"] == before["db"]
    r = nobody(d, "start", "web", groups=[USERS_GID])
    assert (r.rc, r.out, r.err) == (0, "", ""), r
    assert d.state("web") == "ready"


def test_control_group_member_with_many_groups_allowed(pubdir, droverd):
    """More supplementary groups than droverd's first buffer holds (64):
    the group that matters comes last, and is still found."""
    d, before = start_public(droverd, pubdir, f"[drover]\ncontrol_group = {USERS}\n" + SERVICES)
    many = [g for g in range(61000, 61300) if g != USERS_GID]
    r = nobody(d, "stop", "web", groups=many + [USERS_GID])
    assert (r.rc, r.out, r.err) == (0, "", ""), r
    assert d.state("web") == "stopped"
    assert snapshot(d)["db"] == before["db"]
    os.chmod(d.sock, 0o666)
    r = nobody(d, "start", "web", groups=many)
    assert (r.rc, r.out) == (1, ""), r
    assert r.err.startswith("drover: permission denied: uid 65534 may not control droverd"), r
    assert d.state("web") == "stopped"


def test_control_group_primary_group_allowed(pubdir, droverd):
    d, _ = start_public(droverd, pubdir, "[drover]\ncontrol_group = nogroup\n" + SERVICES)
    r = nobody(d, "status", "db", "--json")
    assert (r.rc, r.err) == (0, ""), r
    assert [x["name"] for x in json.loads(r.out)] == ["db"]


# --- exit codes ------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("status", "nosuch"), ("status", "web", "nosuch"), ("start", "nosuch"), ("stop", "nosuch"),
    ("restart", "nosuch"), ("reload", "nosuch"), ("signal", "nosuch", "TERM"), ("logs", "nosuch"),
    ("wait", "nosuch"), ("stop", "web", "nosuch"), ("start", "spare", "nosuch"),
    ("restart", "db", "nosuch", "web"), ("stop", "--no-wait", "web", "db", "nosuch"),
], ids=lambda a: "-".join(a))
def test_unknown_service(droverd, args):
    """One unknown name fails the whole request before anything is done."""
    d = droverd(SERVICES)
    before = up(d)
    r = d.drover(*args)
    assert (r.rc, r.out, r.err) == (1, "", 'drover: unknown service "nosuch"\n'), r
    assert snapshot(d) == before


USAGE_ERRORS = [
    (("frobnicate",), 'unknown command "frobnicate"'),
    ((), "which command?"),
    (("start",), "start: which service?"),
    (("stop",), "stop: which service?"),
    (("restart", "--no-wait"), "restart: which service?"),
    (("stop", "--force", "web"), "unknown option --force"),
    (("status", "--yaml"), "status: unknown option --yaml"),
    (("signal", "web"), "usage: signal NAME SIGNAL"),
    (("signal", "web", "TERM", "db"), "usage: signal NAME SIGNAL"),
    (("signal", "web", "notasignal"),
     'signal: "notasignal" is not a signal (use a name like TERM, HUP, USR1, or a number)'),
    (("signal", "web", "0"), 'signal: "0" is not a signal (use a name like TERM, HUP, USR1, or a number)'),
    (("logs", "web", "-n", "abc"), "logs: -n needs a number of lines"),
    (("logs", "web", "-n"), "logs: -n needs a number of lines"),
    (("logs", "web", "-n", "-5"), "logs: -n needs a number of lines"),
    (("logs",), "logs: which service?"),
    (("logs", "web", "db"), "logs: unexpected argument db"),
    (("logs", "web", "--tail"), "logs: unexpected argument --tail"),
    (("wait",), "wait: which service?"),
    (("wait", "web", "--timeout", "soon"), "wait: --timeout needs a duration (like 30s, 500ms, 2m)"),
    (("wait", "web", "--timeout"), "wait: --timeout needs a duration (like 30s, 500ms, 2m)"),
    (("reload", "web", "db"), "reload takes at most one service name"),
    (("reload", "--all"), "reload: unknown option --all"),
    (("deps", "--svg"), "deps: unexpected argument --svg"),
    (("shutdown", "now"), "shutdown takes no arguments"),
    (("version", "--short"), "version takes no arguments"),
    (("check", "extra"), "check: unexpected argument extra"),
]


@pytest.mark.parametrize("args,msg", USAGE_ERRORS, ids=lambda x: "-".join(x) if isinstance(x, tuple) else "")
def test_usage_error(droverd, args, msg):
    """Exit 2 with the reason and the usage, whether or not a daemon runs,
    and nothing reaches the daemon."""
    want = f"drover: {msg}\n\n{usage_text()}"
    d = droverd(SERVICES)
    before = up(d)
    r = d.drover(*args)
    assert (r.rc, r.out, r.err) == (2, "", want), r
    assert snapshot(d) == before
    r = run([DROVER, "-S", d.dir / "nothere.sock", *args])
    assert (r.rc, r.out, r.err) == (2, "", want), r


@pytest.mark.parametrize("args,opt", [(("--bogus", "status"), "unrecognized option '--bogus'"),
                                      (("-S",), "option requires an argument -- 'S'"),
                                      (("check", "-x"), "check: unknown option -x"),
                                      (("check", "-c"), "check: -c needs a configuration file")],
                         ids=["global-option", "S-without-value", "check-option", "check-c-without-value"])
def test_bad_option(tmp_path, args, opt):
    """getopt's message (drover's own for check's options), under drover's
    name, then the usage; exit 2."""
    r = run([DROVER, *args], env=base_env(DROVER_SOCKET=str(tmp_path / "nothere.sock")))
    assert (r.rc, r.out) == (2, ""), r
    first, rest = r.err.split("\n", 1)
    prog, _, text = first.partition(": ")
    assert os.path.basename(prog) == "drover" and text == opt, r
    assert rest.endswith(usage_text()), r


NEEDS_DAEMON = [("status",), ("status", "--json"), ("start", "web"), ("stop", "web"), ("restart", "web"),
                ("reload",), ("reload", "web"), ("signal", "web", "HUP"), ("logs", "web"), ("deps",),
                ("wait", "web"), ("shutdown",), ("version",)]


def test_no_daemon_socket_missing(tmp_path):
    path = tmp_path / "nothere.sock"
    for args in NEEDS_DAEMON:
        r = run([DROVER, "-S", path, *args])
        assert (r.rc, r.out, r.err) == (3, "", f"drover: no daemon answering on {path}: "
                                               "No such file or directory\n"), (args, r)


def test_no_daemon_socket_without_listener(tmp_path):
    path = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))       # bound, never listening: what a crashed daemon leaves
    try:
        for args in NEEDS_DAEMON:
            r = run([DROVER, "-S", path, *args])
            assert (r.rc, r.out, r.err) == (3, "", f"drover: no daemon answering on {path}: "
                                                   "Connection refused\n"), (args, r)
    finally:
        s.close()


def test_no_daemon_after_droverd_was_killed(droverd):
    """SIGKILL leaves the socket file behind: drover says no daemon (3), and
    a new droverd takes the stale path over."""
    d = droverd("")
    d.kill()
    assert os.path.lexists(d.sock)
    r = d.drover("status")
    assert (r.rc, r.out, r.err) == (3, "", f"drover: no daemon answering on {d.sock}: Connection refused\n"), r
    d2 = droverd("[service web]\ncommand = sleep 1000\n")
    assert d2.sock == d.sock
    d2.wait_state("web", "ready")


def test_second_droverd_on_the_same_socket(droverd, tmp_path):
    d = droverd(SERVICES)
    before = up(d)
    conf = tmp_path / "second.conf"
    conf.write_text(f"[service other]\ncommand = /bin/sh -c 'touch {tmp_path}/other-started; exec sleep 1000'\n")
    r = run([DROVERD, "-c", conf, "-S", d.sock], timeout=15)
    assert (r.rc, r.out, r.err) == (1, "", f"droverd: another droverd is already listening on {d.sock}\n"), r
    assert not (tmp_path / "other-started").exists()
    assert stat.S_ISSOCK(os.lstat(d.sock).st_mode)
    assert snapshot(d) == before


def test_control_path_is_not_a_socket(tmp_path):
    path = tmp_path / "control.sock"
    path.write_text("precious\n")
    conf = tmp_path / "c.conf"
    conf.write_text(f"[service other]\ncommand = /bin/sh -c 'touch {tmp_path}/other-started; exec sleep 1000'\n")
    r = run([DROVERD, "-c", conf, "-S", path], timeout=15)
    assert (r.rc, r.out, r.err) == (1, "", f"droverd: {path} exists and is not a socket\n"), r
    assert path.read_text() == "precious\n"
    assert not (tmp_path / "other-started").exists()


def names_via(d, *args, env):
    r = d.drover(*args, "status", "--json", env=env)
    assert (r.rc, r.err) == (0, ""), r
    return [x["name"] for x in json.loads(r.out)]


def test_socket_precedence(droverd, pubdir):
    """-S (or --socket) over $DROVER_SOCKET over the default."""
    a = droverd("[service only-a]\ncommand = sleep 1000\n", name="a")
    b = droverd("[service only-b]\ncommand = sleep 1000\n", name="b")
    env_b = base_env(DROVER_SOCKET=str(b.sock))
    assert names_via(a, env=env_b) == ["only-b"]
    assert names_via(a, "-S", a.sock, env=env_b) == ["only-a"]
    assert names_via(a, f"--socket={a.sock}", env=env_b) == ["only-a"]
    assert names_via(a, "-S", a.sock, env=base_env()) == ["only-a"]

    # -S wins even when it leads nowhere: no fallback to $DROVER_SOCKET.
    missing = pubdir / "missing.sock"
    r = a.drover("-S", missing, "status", env=env_b)
    assert (r.rc, r.out, r.err) == (3, "", f"drover: no daemon answering on {missing}: "
                                           "No such file or directory\n"), r

    # Neither, as root: /run/drover/control.sock (no system droverd here).
    for env in (base_env(), base_env(DROVER_SOCKET="")):
        r = a.drover("status", env=env)
        assert (r.rc, r.out, r.err) == (3, "", "drover: no daemon answering on /run/drover/control.sock: "
                                               "No such file or directory\n"), r

    # Neither, as a user: $XDG_RUNTIME_DIR/drover/control.sock, or no socket at all.
    xdg = pubdir / "xdg"
    r = run([DROVER, "status"], env=base_env(XDG_RUNTIME_DIR=str(xdg)), user=True)
    assert (r.rc, r.out, r.err) == (3, "", f"drover: no daemon answering on {xdg}/drover/control.sock: "
                                           "No such file or directory\n"), r
    r = run([DROVER, "status"], user=True)
    assert (r.rc, r.out, r.err) == (3, "", "drover: no control socket: use -S SOCKET, set DROVER_SOCKET, "
                                           "or set XDG_RUNTIME_DIR\n"), r
    # Nobody's $DROVER_SOCKET still comes before the default.
    r = run([DROVER, "status"], env=base_env(DROVER_SOCKET=str(missing), XDG_RUNTIME_DIR=str(xdg)), user=True)
    assert (r.rc, r.err) == (3, f"drover: no daemon answering on {missing}: No such file or directory\n"), r


# --- the raw protocol --------------------------------------------------------

def test_raw_request_and_reply(droverd):
    """The protocol as documented in proto.h, checked byte by byte."""
    d = droverd(SERVICES)
    up(d)
    v = call(d.sock, "version")
    assert (v.kind, v.status, v.message) == (PK_REPLY, 0, f"droverd {VERSION} (pid {d.pid})")
    assert len(v.records) == 1
    rec = v.records[0]
    assert (rec["version"], rec["protocol"], rec["pid"]) == (VERSION, 1, d.pid)
    st = call(d.sock, "status", "db")
    assert (st.status, st.message, [r["name"] for r in st.records]) == (0, "", ["db"])
    assert st.records[0]["pids"] == [str(p) for p in d.pids("db")]


MALFORMED = {
    # name: (bytes to send, exact error message)
    "wrong-version": (request("status", version=2), "bad request: unsupported protocol version"),
    "version-zero": (request("status", version=0), "bad request: unsupported protocol version"),
    "huge-length": (b"\xff\xff\xff\xff\x01\x01", "bad request: bad frame length"),
    "length-over-limit": (struct.pack(">I", (64 << 10) + 1) + b"\x01\x01", "bad request: bad frame length"),
    "length-zero": (b"\0\0\0\0", "bad request: bad frame length"),
    "length-one": (b"\0\0\0\1\1", "bad request: bad frame length"),
    "trailing-bytes-after-frame": (request("status") + b"junk",
                                   "bad request: trailing bytes after the request"),
    "two-requests-at-once": (request("status") + request("shutdown"),
                             "bad request: trailing bytes after the request"),
    "trailing-bytes-inside-frame": (request("status", extra=b"junk"),
                                    "bad request: trailing bytes after message"),
    "nul-in-string": (request("stat\0us"), "bad request: string contains a NUL byte"),
    "nul-in-name": (request("stop", "web\0db"), "bad request: string contains a NUL byte"),
    "kind-reply": (request("status", kind=PK_REPLY), "bad request: unexpected message kind"),
    "kind-part": (request("status", kind=PK_PART), "bad request: unexpected message kind"),
    "kind-zero": (request("status", kind=0), "bad request: unexpected message kind"),
    "kind-255": (request("status", kind=255), "bad request: unexpected message kind"),
    "no-arguments": (request(), "bad request: bad argument count"),
    "too-many-arguments": (request(*(["status"] * 257)), "bad request: bad argument count"),
    "argc-beyond-data": (request("status", argc=3), "bad request: truncated message"),
    "header-only": (frame(1, b""), "bad request: truncated message"),
    "string-past-end": (frame(1, b"\0\1" + struct.pack(">I", 100) + b"status"),
                        "bad request: truncated message"),
    "string-too-long": (frame(1, b"\0\1" + struct.pack(">I", 0xFFFFFFF0) + b"status"),
                        "bad request: string too long"),
    "empty-command": (request(""), 'unknown command ""'),
    "unknown-command": (request("frobnicate"), 'unknown command "frobnicate"'),
    "long-unknown-command": (request("x" * 1000), f'unknown command "{"x" * 64}"'),
    # body = version, kind, argc, length, string: exactly the 64 KiB droverd accepts
    "largest-request": (request("y" * ((64 << 10) - 8)), f'unknown command "{"y" * 64}"'),
    "not-utf8": (request(b"\xff\xfe"), 'unknown command "\ufffd\ufffd"'),
    "logs-missing-args": (request("logs", "web"), "bad request: usage: logs NAME LINES FOLLOW"),
    "logs-bad-lines": (request("logs", "web", "abc", "no"), "bad request: usage: logs NAME LINES FOLLOW"),
    "logs-bad-follow": (request("logs", "web", "10", "maybe"), "bad request: usage: logs NAME LINES FOLLOW"),
    "wait-missing-timeout": (request("wait", "web"), "bad request: usage: wait NAME TIMEOUT"),
    "wait-bad-timeout": (request("wait", "web", "soon"), "bad request: usage: wait NAME TIMEOUT"),
    "start-no-name": (request("start"), "bad request: usage: start [--no-wait] NAME..."),
    "stop-no-wait-only": (request("stop", "--no-wait"), "bad request: usage: stop [--no-wait] NAME..."),
    "signal-not-a-signal": (request("signal", "web", "NOPE"),
                            '"NOPE" is not a signal (use a name like TERM, HUP, USR1, or a number)'),
    "signal-missing": (request("signal", "web"), "bad request: usage: signal NAME SIGNAL"),
    "reload-two-names": (request("reload", "web", "db"), "bad request: usage: reload [NAME | --dry-run]"),
    "deps-argument": (request("deps", "x"), "bad request: usage: deps"),
    "shutdown-argument": (request("shutdown", "now"), "bad request: usage: shutdown"),
}


def assert_error_reply(data, msg):
    """Exactly one final reply, status 1, the message, no records; then EOF."""
    replies = decode_frames(data)
    assert [(r.kind, r.status, r.message, r.records) for r in replies] == [(PK_REPLY, 1, msg, [])], replies


def assert_still_working(d, before, fds=None):
    r = d.drover("status")
    assert r.rc == 0, r
    assert d.running()
    assert snapshot(d) == before
    if fds is not None:
        # No descriptor leaked. (At most as many as before: droverd may
        # have held a short-lived one when the count was taken.)
        wait_for(lambda: open_fds(d.pid) <= fds, what=f"droverd back to {fds} open descriptors "
                                                       f"(has {open_fds(d.pid)})")


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_request(droverd, case):
    data, msg = MALFORMED[case]
    d = droverd(SERVICES)
    before = up(d)
    fds = open_fds(d.pid)
    got = exchange(d.sock, data)
    if case == "not-utf8":
        replies = decode_frames(got.replace(b"\xff\xfe", b"??"))
        assert [(x.status, x.message) for x in replies] == [(1, 'unknown command "??"')], got
    else:
        assert_error_reply(got, msg)
    assert_still_working(d, before, fds)


def test_truncated_frame_then_close(droverd):
    d = droverd(SERVICES)
    before = up(d)
    fds = open_fds(d.pid)
    whole = request("shutdown")
    for cut in (1, 3, 4, 5, 6, 8, len(whole) - 1):
        # Half-closed: droverd may answer with an error or just close.
        got = exchange(d.sock, whole[:cut], half_close=True)
        if got:
            (r,) = decode_frames(got)
            assert r.status == 1 and r.message.startswith("bad request: "), r
        # Fully closed at once: nothing to answer to.
        s = connect(d.sock)
        s.sendall(whole[:cut])
        s.close()
    assert_still_working(d, before, fds)


def test_hang_up_while_waiting_for_an_answer(droverd):
    """start waits for readiness; the client going away meanwhile is no
    error: the service starts, droverd goes on."""
    d = droverd(SERVICES)
    before = up(d)
    s = connect(d.sock)
    s.sendall(request("start", "spare"))
    s.close()
    d.wait_state("spare", "ready")
    del before["spare"]
    now = snapshot(d)
    del now["spare"]
    assert now == before


def test_hundred_idle_connections(droverd):
    """100 clients that connect and say nothing must not lock the
    administrator out: a normal request is still answered."""
    d = droverd(SERVICES)
    before = up(d)
    fds = open_fds(d.pid)
    idle = [connect(d.sock) for _ in range(100)]
    try:
        r = d.drover("status", "--json")
        assert (r.rc, r.err) == (0, ""), r
        assert sorted(x["name"] for x in json.loads(r.out)) == ["db", "spare", "web"]
        v = call(d.sock, "version")
        assert v.status == 0, v
    finally:
        for s in idle:
            s.close()
    assert_still_working(d, before, fds)


def test_slow_client_one_byte_at_a_time(droverd):
    """Each byte is sent on its own, and another client is served before the
    next one (so droverd sees the request in pieces): the request is
    assembled and answered, and the slow client holds nobody up."""
    d = droverd(SERVICES)
    before = up(d)
    data = request("status", "db")
    with connect(d.sock) as s:
        for i in range(len(data)):
            s.sendall(data[i:i + 1])
            assert call(d.sock, "version").status == 0
        got = read_to_eof(s)
    (r,) = decode_frames(got)
    assert (r.kind, r.status, [x["name"] for x in r.records]) == (PK_REPLY, 0, ["db"]), r
    assert_still_working(d, before)


def test_idle_connection_is_dropped(droverd):
    """A client that never completes its request is answered and dropped
    after droverd's idle limit (10 s), with or without a partial frame."""
    d = droverd(SERVICES)
    before = up(d)
    silent = connect(d.sock, timeout=30)
    partial = connect(d.sock, timeout=30)
    partial.sendall(request("status")[:5])
    for s in (silent, partial):
        (r,) = decode_frames(read_to_eof(s))
        assert (r.kind, r.status, r.message) == (PK_REPLY, 1, "no complete request within 10 seconds"), r
        s.close()
    assert_still_working(d, before)


# --- output ----------------------------------------------------------------

NOTIFY = ("/usr/bin/python3 -c \"import os,socket,time; a=os.environ['NOTIFY_SOCKET']; "
          "a='\\0'+a[1:] if a[0]=='@' else a; s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); "
          "s.sendto(b'READY=1\\nSTATUS={status}',a); time.sleep(1000)\"")

TABLE = f"""\
[service a]
command = sleep 1000

[service a-rather-long-service-name]
command = sleep 1000
start = manual

[service notifier]
command = {NOTIFY.format(status="serving 3 clients")}
ready = notify

[service prep]
mode = oneshot
command = /bin/true
"""

COLUMNS = ["NAME", "MODE", "STATE", "PIDS", "UPTIME", "RESTARTS", "STATUS"]


def test_status_table_is_aligned(droverd):
    d = droverd(TABLE)
    d.wait_state("a", "ready")
    d.wait_state("notifier", "ready")
    d.wait_state("prep", "done")
    r = d.drover("status")
    assert (r.rc, r.err) == (0, ""), r
    lines = r.out.rstrip("\n").split("\n")
    header = lines[0]
    # CPU, MEM, TASKS: where droverd tracks the services in cgroups
    columns = COLUMNS[:6] + [c for c in header.split() if c in ("CPU", "MEM", "TASKS")] + COLUMNS[6:]
    last = len(columns) - 1
    starts = [header.index(c) for c in columns]
    assert header.split() == columns, header
    assert starts[0] == 0

    def cells(line):
        return [line[s:e].rstrip() for s, e in zip(starts, starts[1:] + [len(line)])]

    rows = {}
    for line in lines[1:]:
        c = cells(line)
        for i, s in enumerate(starts[1:], 1):
            # every cell starts exactly at its header, after two blanks
            assert line[s - 2:s] == "  ", (line, columns[i])
            assert line[s:s + 1] not in ("", " ") or (i == last and line[s:] == ""), (line, columns[i])
        rows[c[0]] = c
    assert sorted(rows) == ["a", "a-rather-long-service-name", "notifier", "prep"]
    # Each column is as wide as its widest cell: two blanks and no more.
    for i in range(last):
        assert any(len(line) > starts[i + 1] - 3 and line[starts[i + 1] - 3] != " " for line in lines), columns[i]
    st = d.status()
    for name, c in rows.items():
        pids = ",".join(str(p) for p in st[name]["pids"]) or "-"
        assert c[1:4] == [st[name]["mode"], st[name]["state"], pids], c
        assert c[5] == str(st[name]["restarts"]), c
    assert rows["notifier"][last] == "serving 3 clients"
    assert rows["a-rather-long-service-name"][2] == "stopped"
    assert rows["a-rather-long-service-name"][3] == "-"


def test_status_json(droverd):
    d = droverd(TABLE)
    d.wait_state("a", "ready")
    d.wait_state("notifier", "ready")
    d.wait_state("prep", "done")
    r = d.drover("status", "--json")
    assert (r.rc, r.err) == (0, ""), r
    recs = json.loads(r.out)
    assert isinstance(recs, list)
    assert [x["name"] for x in recs] == ["a", "a-rather-long-service-name", "notifier", "prep"]
    kids = children_of(d.pid)
    for x in recs:
        assert isinstance(x["name"], str) and isinstance(x["mode"], str) and isinstance(x["state"], str)
        assert isinstance(x["uptime_ms"], int) and x["uptime_ms"] >= 0
        assert isinstance(x["restarts"], int) and isinstance(x["status"], str)
        assert all(isinstance(p, int) for p in x["pids"])
        assert set(x["pids"]) <= kids, (x, kids)
    by = {x["name"]: x for x in recs}
    assert [(by[n]["mode"], by[n]["state"], len(by[n]["pids"])) for n in sorted(by)] == [
        ("daemon", "ready", 1), ("daemon", "stopped", 0), ("daemon", "ready", 1), ("oneshot", "done", 0)]
    assert by["notifier"]["status"] == "serving 3 clients"
    r = d.drover("status", "prep", "a", "--json")
    assert [x["name"] for x in json.loads(r.out)] == ["prep", "a"]


def test_status_json_escapes_what_a_service_says(droverd):
    """STATUS= text is the service's own: quotes, backslashes, tabs and
    control characters must come out as valid JSON holding the same text."""
    said = r'say \"hi\" \\\\ \there\x01'
    d = droverd(f"[service talker]\ncommand = {NOTIFY.format(status=said)}\nready = notify\n")
    d.wait_state("talker", "ready")
    r = d.drover("status", "--json")
    assert (r.rc, r.err) == (0, ""), r
    assert json.loads(r.out)[0]["status"] == 'say "hi" \\ \there\x01'


def test_status_of_nothing(droverd):
    d = droverd("")
    r = d.drover("status", "--json")
    assert (r.rc, r.out, r.err) == (0, "[]\n", ""), r
    r = d.drover("status")
    assert (r.rc, r.out.split(), r.err) == (0, COLUMNS, ""), r


def test_version(droverd, tmp_path):
    d = droverd("")
    r = d.drover("version")
    assert (r.rc, r.out, r.err) == (0, f"drover {VERSION}\ndroverd {VERSION} (pid {d.pid})\n", ""), r
    r = run([DROVER, "--version"], env=base_env(DROVER_SOCKET=str(tmp_path / "nothere.sock")))
    assert (r.rc, r.out, r.err) == (0, f"drover {VERSION}\n", ""), r
    r = run([DROVERD, "--version"])
    assert (r.rc, r.out, r.err) == (0, f"droverd {VERSION}\n", ""), r


def test_shutdown(droverd):
    d = droverd(SERVICES)
    before = up(d)
    pids = [int(p) for n in ("web", "db") for p in before[n][1]]
    r = d.drover("shutdown")
    assert (r.rc, r.out, r.err) == (0, "droverd stopped every service and is exiting\n", ""), r
    assert d.wait_exit() == 0
    assert not any(process_exists(p) for p in pids)
    assert not os.path.lexists(d.sock)
    r = d.drover("status")
    assert (r.rc, r.out, r.err) == (3, "", f"drover: no daemon answering on {d.sock}: "
                                           "No such file or directory\n"), r
