"""droverd, running as root, against a less privileged user who owns the
directory it writes in (SPEC section 9: never write, create or follow a
link to a file that such a user chose).

The user is uid 65534 (nobody): it owns a service's log directory or a
socket's directory, under a 0755 directory in /tmp it can reach, and plants
its links there itself (setpriv). Victims are root's files and directories
in pytest's own tmp_path: after each attack they must be exactly as they
were, while droverd goes on running, and so do its services.

Two attacks are races a test cannot win on demand: a socket file swapped
for a link between droverd's bind() and its chown. A small LD_PRELOAD shim
(built here, never part of droverd) plays the user who wins it: right after
droverd's bind() of one path it puts a link there.
"""
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import DROVERD, SANITIZED, wait_for
from helpers_control import NOBODY, NOGROUP, base_env, run, world_dir
from helpers_net import ECHO

# A sanitizer build's child prints this notice into its own output.
ASAN_NOTICE = re.compile(r"==\d+==WARNING: ASan is ignoring requested __asan_handle_no_return|"
                         r"False positive error reports may follow$|"
                         r"For details see https://github.com/google/sanitizers/issues/189$")
REOPEN = "; dropping its output until it is reopened (SIGUSR1 or drover reload)"

OTHER = """
[service other]
command = sleep 1000
"""


def as_app(*argv):
    """What the service's user (uid 65534) does in its own directory."""
    r = run(argv, user=True)
    assert r.rc == 0, (argv, r)


def precious(path, mode=0o600):
    """A root file that nobody but root may change."""
    path.write_text("precious\n")
    os.chmod(path, mode)
    return path


def fingerprint(path):
    """Everything a write, chown, chmod, rename or unlink would change."""
    st = os.lstat(path)
    if stat.S_ISREG(st.st_mode):
        content = Path(path).read_bytes()
    elif stat.S_ISDIR(st.st_mode):
        content = sorted(os.listdir(path))
    else:
        content = None
    return (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size, st.st_mtime_ns,
            st.st_ctime_ns, content)


class Feeder:
    """A FIFO the service reads (`cat <> FIFO`) and uid 65534 may open."""

    def __init__(self, path):
        self.path = path
        os.mkfifo(path)
        os.chmod(path, 0o666)
        self.fd = os.open(path, os.O_RDWR)

    def say(self, *lines):
        os.write(self.fd, "".join(line + "\n" for line in lines).encode())


class App:
    """A world-reachable directory holding `app`, owned by uid 65534."""

    def __init__(self, top):
        self.top = top
        self.dir = top / "app"
        self.dir.mkdir()
        os.chown(self.dir, NOBODY, NOGROUP)
        self.feeders = []

    def feeder(self, name):
        f = Feeder(self.top / f"{name}.fifo")
        self.feeders.append(f)
        return f


@pytest.fixture
def app():
    with world_dir() as top:
        a = App(top)
        yield a
        for f in a.feeders:
            os.close(f.fd)


def service(name, feeder, log, extra=""):
    return f"""
[service {name}]
command = /bin/sh -c 'exec cat <> {feeder.path}'
user = nobody
log = file:{log}
{extra}
"""


def file_texts(path):
    """The texts of a log file's lines (no stamp, no NAME[PID])."""
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [x.split("]: ", 1)[1] for x in lines if not (SANITIZED and ASAN_NOTICE.search(x))]


def ring_has(d, name, text):
    r = d.drover("logs", name, "-n", "1")
    return r.rc == 0 and r.out.rstrip("\n").endswith(f": {text}")


def refusal(name, path, why):
    return f"droverd: error: {name}: log file {path}: refusing: {why}{REOPEN}\n"


def up(d, *names):
    pids = {}
    for n in names:
        st = d.wait_state(n, "ready")
        assert len(st["pids"]) == 1, st
        pids[n] = st["pids"][0]
    return pids


def still_up(d, pids):
    st = d.status()
    assert {n: (st[n]["state"], st[n]["pids"]) for n in pids} == {n: ("ready", [p]) for n, p in pids.items()}


# --- a service's log = file:PATH ------------------------------------------------

def test_symlink_at_log_path_before_start(droverd, tmp_path, app):
    victim = precious(tmp_path / "victim")
    before = fingerprint(victim)
    created = tmp_path / "created-by-droverd"
    a_log, b_log = app.dir / "a.log", app.dir / "b.log"
    as_app("ln", "-s", victim, a_log)
    as_app("ln", "-s", created, b_log)      # a file droverd would create, as root
    fa, fb = app.feeder("a"), app.feeder("b")
    d = droverd(service("a", fa, a_log) + service("b", fb, b_log) + OTHER)
    pids = up(d, "a", "b", "other")
    fa.say("one")
    fb.say("one")
    wait_for(lambda: ring_has(d, "a", "one") and ring_has(d, "b", "one"), what="both lines read")
    assert fingerprint(victim) == before
    assert not os.path.lexists(created)
    d.wait_log(re.escape(refusal("a", a_log, "is a symbolic link")))
    d.wait_log(re.escape(refusal("b", b_log, "is a symbolic link")))
    assert d.log().count("refusing") == 2
    still_up(d, pids)
    # The admin removes the links: a reload opens the files again.
    a_log.unlink()
    b_log.unlink()
    r = d.drover("reload")
    assert r.rc == 0, r
    fa.say("two")
    wait_for(lambda: file_texts(a_log) == ["two"], what="two in a.log")
    d.wait_log(rf"(?m)^droverd: a: writing log file {re.escape(str(a_log))} again \(1 lines were dropped\)$")
    assert fingerprint(victim) == before
    still_up(d, pids)


def test_links_planted_between_rotations(droverd, tmp_path, app):
    v1, v2 = precious(tmp_path / "v1"), precious(tmp_path / "v2")
    b1, b2 = fingerprint(v1), fingerprint(v2)
    log = app.dir / "app.log"
    f = app.feeder("in")
    d = droverd(service("web", f, log, "log_max_size = 1K\nlog_keep = 2") + OTHER)
    pids = up(d, "web", "other")
    f.say("first")
    wait_for(lambda: file_texts(log) == ["first"], what="first in app.log")
    # At PATH.1: the rotation renames the link itself (renameat never
    # follows), to PATH.2, and writes nothing through it.
    as_app("ln", "-s", v1, f"{log}.1")
    # About 1.5K of lines: one rotation, not two.
    f.say(*(f"line {i:02d} " + "x" * 40 for i in range(16)))
    wait_for(lambda: (t := file_texts(log)) and t[-1].startswith("line 15"), what="line 15")
    assert os.readlink(f"{log}.2") == str(v1)
    assert fingerprint(v1) == b1
    # At PATH, with PATH.1 made a directory so that the rotation cannot move
    # the link away: the file reopened after the rotation is not followed.
    as_app("mv", log, f"{log}.old")
    as_app("ln", "-s", v2, log)
    as_app("rm", "-rf", f"{log}.1")
    as_app("mkdir", f"{log}.1")
    as_app("touch", f"{log}.1/x")
    f.say(*(f"more {i:02d} " + "x" * 40 for i in range(20)))
    wait_for(lambda: ring_has(d, "web", "more 19 " + "x" * 40), what="more 19 read")
    assert fingerprint(v2) == b2
    assert fingerprint(v1) == b1
    d.wait_log(re.escape(refusal("web", log, "is a symbolic link")))
    still_up(d, pids)


def test_hard_link_at_log_path_is_refused(droverd, tmp_path, app):
    # With fs.protected_hardlinks = 0 the user can make this link to a
    # root file itself; the test makes it as root.
    victim = precious(tmp_path / "shadow", 0o640)
    log = app.dir / "app.log"
    os.link(victim, log)
    before = fingerprint(victim)
    f = app.feeder("in")
    d = droverd(service("web", f, log) + OTHER)
    pids = up(d, "web", "other")
    f.say("secret")
    wait_for(lambda: ring_has(d, "web", "secret"), what="the line read")
    assert fingerprint(victim) == before
    d.wait_log(re.escape(refusal("web", log, "has 2 links")))
    still_up(d, pids)


def test_log_file_owner_rule(droverd, app):
    """A file droverd appends to is root's or the service's user's; one it
    creates is the service's user's and group's, mode 0640."""
    logs = {n: app.dir / f"{n}.log" for n in ("theirs", "users", "roots", "new")}
    for n, uid in (("theirs", 1234), ("users", NOBODY), ("roots", 0)):
        logs[n].write_text("")
        os.chown(logs[n], uid, uid)
    before = fingerprint(logs["theirs"])
    feeders = {n: app.feeder(n) for n in logs}
    d = droverd("".join(service(n, feeders[n], logs[n]) for n in logs))
    pids = up(d, *logs)
    for n in logs:
        feeders[n].say(f"to {n}")
    for n in ("users", "roots", "new"):
        wait_for(lambda n=n: file_texts(logs[n]) == [f"to {n}"], what=f"the line in {n}.log")
    wait_for(lambda: ring_has(d, "theirs", "to theirs"), what="the line read")
    assert fingerprint(logs["theirs"]) == before
    d.wait_log(re.escape(refusal("theirs", logs["theirs"], "owned by uid 1234, expected root or nobody")))
    st = os.stat(logs["new"])
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOGROUP, 0o640)
    assert d.log().count("refusing") == 1
    still_up(d, pids)


def test_symlink_as_a_directory_of_the_log_path(droverd, tmp_path, app):
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    before = fingerprint(elsewhere)
    as_app("ln", "-s", elsewhere, app.dir / "logs")
    log = app.dir / "logs" / "app.log"
    f = app.feeder("in")
    d = droverd(service("web", f, log) + OTHER)
    pids = up(d, "web", "other")
    f.say("hello")
    wait_for(lambda: ring_has(d, "web", "hello"), what="the line read")
    assert fingerprint(elsewhere) == before
    assert os.listdir(elsewhere) == []
    d.wait_log(re.escape(refusal("web", log, f"{app.dir}/logs is a symbolic link")))
    still_up(d, pids)


def test_sigusr1_reopen_refuses_a_planted_link_until_it_is_gone(droverd, tmp_path, app):
    victim = precious(tmp_path / "victim")
    before = fingerprint(victim)
    log = app.dir / "app.log"
    f = app.feeder("in")
    d = droverd(service("web", f, log) + OTHER)
    pids = up(d, "web", "other")
    f.say("one")
    wait_for(lambda: file_texts(log) == ["one"], what="one in app.log")
    # The user "rotates" its log into a link to root's file.
    as_app("mv", log, f"{log}.old")
    as_app("ln", "-s", victim, log)
    d.send_signal(signal.SIGUSR1)
    f.say("two")
    wait_for(lambda: ring_has(d, "web", "two"), what="two read")
    assert fingerprint(victim) == before
    d.wait_log(re.escape(refusal("web", log, "is a symbolic link")))
    assert file_texts(f"{log}.old") == ["one"]
    # The admin removes the link: no line is written until the next reopen.
    log.unlink()
    f.say("three")
    wait_for(lambda: ring_has(d, "web", "three"), what="three read")
    assert not os.path.lexists(log)
    d.send_signal(signal.SIGUSR1)
    f.say("four")
    wait_for(lambda: file_texts(log) == ["four"], what="four in a new app.log")
    d.wait_log(rf"(?m)^droverd: web: writing log file {re.escape(str(log))} again \(2 lines were dropped\)$")
    assert (os.stat(log).st_uid, fingerprint(victim)) == (NOBODY, before)
    assert d.log().count("refusing") == 1
    still_up(d, pids)


# --- sockets: the control socket and unix listeners ----------------------------------

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* After a successful bind() of $SWAP_PATH: a link to $SWAP_TO in its place. */
int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	int (*real)(int, const struct sockaddr *, socklen_t) =
		(int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
	const char *path = getenv("SWAP_PATH"), *to = getenv("SWAP_TO");
	int rc = real(fd, sa, len);

	if (rc == 0 && path && to && sa->sa_family == AF_UNIX &&
	    strcmp(((const struct sockaddr_un *)sa)->sun_path, path) == 0) {
		unlink(path);
		symlink(to, path);
	}
	return rc;
}
"""


@pytest.fixture(scope="module")
def shim():
    d = Path(tempfile.mkdtemp(prefix="drover-shim-"))
    (d / "shim.c").write_text(SHIM)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", d / "shim.so", d / "shim.c", "-ldl"], check=True, timeout=60)
    yield d / "shim.so"
    shutil.rmtree(d)


def shim_env(shim, path, to):
    return {"LD_PRELOAD": str(shim), "SWAP_PATH": str(path), "SWAP_TO": str(to),
            "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99:verify_asan_link_order=0"}


def droverd_fails(conf, sock, env=None):
    """Runs droverd that must refuse to start; its exit status and stderr
    (None when it ran on: killed at the deadline)."""
    try:
        r = run([DROVERD, "-c", conf, "-S", sock], env=env, timeout=10)
    except subprocess.TimeoutExpired:
        return None, None
    return r.rc, r.err


def test_control_socket_directory_replaced_by_a_link(tmp_path, app):
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    before = fingerprint(elsewhere)
    as_app("ln", "-s", elsewhere, app.dir / "run")
    sock = app.dir / "run" / "control.sock"
    conf = tmp_path / "c.conf"
    conf.write_text(f"[drover]\ncontrol_group = nogroup\n\n[service other]\n"
                    f"command = /bin/sh -c 'touch {tmp_path}/other-started; exec sleep 1000'\n")
    rc, err = droverd_fails(conf, sock)
    assert fingerprint(elsewhere) == before
    assert (rc, err) == (1, f"droverd: control socket {sock}: refusing: {app.dir}/run is a symbolic link\n")
    assert not (tmp_path / "other-started").exists()


def test_control_group_is_not_given_to_what_a_link_points_to(tmp_path, shim):
    victim = precious(tmp_path / "victim")
    before = fingerprint(victim)
    sock = tmp_path / "control.sock"
    conf = tmp_path / "c.conf"
    conf.write_text(f"[drover]\ncontrol_group = nogroup\n\n[service other]\n"
                    f"command = /bin/sh -c 'touch {tmp_path}/other-started; exec sleep 1000'\n")
    rc, err = droverd_fails(conf, sock, env=base_env(**shim_env(shim, sock, victim)))
    assert fingerprint(victim) == before
    assert (rc, err) == (1, f"droverd: control socket {sock}: a symbolic link took the socket file's place\n")
    assert os.readlink(sock) == str(victim)      # the user's link: not droverd's to remove
    assert not (tmp_path / "other-started").exists()


def test_unix_listener_directory_replaced_by_a_link(droverd, tmp_path, app):
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    # A stale socket of someone else's in the directory the link leads to.
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(elsewhere / "e.sock"))
    stale.close()
    os.chmod(elsewhere / "e.sock", 0o600)
    before = fingerprint(elsewhere), fingerprint(elsewhere / "e.sock")
    as_app("ln", "-s", elsewhere, app.dir / "run")
    path = app.dir / "run" / "e.sock"
    d = droverd(f"""
[service e]
command = {ECHO}
listen = unix:{path} mode=0666 owner=nobody group=nogroup
""" + OTHER)
    pids = up(d, "other")
    msg = f"cannot listen on unix:{path}: refusing: {app.dir}/run is a symbolic link"
    st = d.wait_state("e", ("failed", "ready"))
    assert (fingerprint(elsewhere), fingerprint(elsewhere / "e.sock")) == before
    assert (st["state"], st["reason"], st["pids"]) == ("failed", msg, [])
    assert f"droverd: error: e: {msg}\n" in d.log()
    still_up(d, pids)


def test_unix_listener_owner_is_not_given_through_a_swapped_link(droverd, tmp_path, app, shim):
    victim = precious(tmp_path / "victim")
    before = fingerprint(victim)
    path = app.dir / "e.sock"
    d = droverd(f"""
[service e]
command = {ECHO}
listen = unix:{path} mode=0666 owner=nobody group=nogroup
""" + OTHER, env=shim_env(shim, path, victim))
    pids = up(d, "other")
    msg = f"cannot listen on unix:{path}: a symbolic link took the socket file's place"
    st = d.wait_state("e", ("failed", "ready"))
    assert fingerprint(victim) == before
    assert (st["state"], st["reason"], st["pids"]) == ("failed", msg, [])
    assert f"droverd: error: e: {msg}\n" in d.log()
    assert os.readlink(path) == str(victim)
    still_up(d, pids)
    d.stop()
    assert os.readlink(path) == str(victim) and fingerprint(victim) == before
