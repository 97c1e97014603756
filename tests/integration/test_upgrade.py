"""Upgrading droverd itself (SPEC section 6, with sections 5, 7 and 9).

In place (`drover upgrade`, SIGUSR2): the binary now at droverd's path is
checked in a child, then executed with the same PID; listeners stay the very
same open sockets, service processes keep their PIDs and are still
supervised, and no client connection is refused, reset or cut. The new
image takes the configuration in force with the state: one on disk not yet
reloaded waits for `drover reload` (test_upgrade_faults.py: a broken one).
Whatever goes wrong (a binary that cannot run, fails, hangs, cannot take
the state over; a second upgrade at once) changes nothing, droverd keeps
serving, and `drover upgrade` exits 1 with the reason.

Handover (`drover upgrade --handover`): a new droverd beside the old one,
listeners inherited; the old one drains and exits. Its new droverd reads
the configuration on disk, which must be the running one. A daemon without
listeners never runs twice at once, a finished oneshot does not run again;
a new droverd that fails, is not ready in time or dies while the old one
drains leaves the old one running as before; an old droverd killed while
draining leaves nothing unsupervised.

Also: droverd as PID 1 of a PID namespace, and the sockets systemd passes
(socket activation, and the fdstore that keeps a listener and its queued
connections across a crash).

Every test runs its own copy of droverd (helpers_upgrade.py says why).
"""
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import DROVER, DROVERD, SLOW, children_of, free_port, process_exists, wait_for
from helpers_upgrade import (HELLO, PY, REQUEST, droverd_version, exe_inode, fall_back_binary, get,
                             hold_connection, install, listen_inode, listen_inodes, loads, parent_of, read_response,
                             socket_inodes, systemd, udroverd, version_pid, wait_gone)

assert loads and udroverd and systemd      # fixtures, used by name

VERSION = droverd_version()


def web(port, procs=3, extra=""):
    return f"""
[service web]
mode = prefork
command = {HELLO}
listen = tcp:127.0.0.1:{port}
procs = {procs}
{extra}
"""


DMN = """
[service dmn]
command = /bin/sleep 1000
restart_delay = 300ms
"""

# Prints "up" at start and "ping" at each SIGUSR1.
ECHO = """
import signal
signal.signal(signal.SIGUSR1, lambda *a: print("ping", flush=True))
print("up", flush=True)
while True:
    signal.pause()
"""

# A daemon that must never run twice at once: it takes a lock file (and
# fails if it exists), notes its start and stop, and takes its time to stop.
LOCKD = """
import os, select, signal, sys
lock, notes = sys.argv[1], sys.argv[2]
def note(s):
    with open(notes, "a") as f:
        f.write(s + "\\n")
try:
    os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
except FileExistsError:
    note(f"overlap {os.getpid()}")
    sys.exit(9)
note(f"start {os.getpid()}")
def term(*a):
    select.select([], [], [], 0.5)
    note(f"stop {os.getpid()}")
    os.unlink(lock)
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
while True:
    signal.pause()
"""

# ready = notify: READY=1 unless the file argv[1] exists; then never.
GATE = """
import os, signal, socket, sys
if os.path.exists(sys.argv[1]):
    print("blocked", flush=True)
else:
    name = os.environ["NOTIFY_SOCKET"]
    addr = "\\0" + name[1:] if name.startswith("@") else name
    socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"READY=1", addr)
    print("ready", flush=True)
while True:
    signal.pause()
"""


def script(d, body):
    """A shell script standing in for droverd; REAL is a real droverd."""
    real = d.bindir / "droverd.real"
    if not real.exists():
        install(real, src=DROVERD)
    return "#!/bin/sh\n" + body.replace("REAL", str(real)).replace("DIR", str(d.dir))


# Passes the check (droverd -t), then does what follows.
CHECKS_OK = 'case " $* " in *" -t "*) exec REAL "$@";; esac\n'


def upgraded_ok(d, r, pid=None):
    pid = d.pid if pid is None else pid
    assert (r.rc, r.out, r.err) == (0, f"upgraded: running droverd {VERSION} (pid {pid})\n", ""), \
        f"{r}\n--- log:\n{d.log()}"


def refused(r, message):
    assert (r.rc, r.out, r.err) == (1, "", f"drover: {message}\n"), r


def services(d):
    """Every service's state and pids: what must not change."""
    return {n: (s["state"], sorted(s["pids"])) for n, s in d.status().items()}


def ready(d, *names):
    for n in names:
        d.wait_state(n, "ready")
    return services(d)


def unchanged(d, before, exe, port=None, lis=None):
    """droverd runs the same image with the same pid and the same services."""
    assert d.running(), d.log()
    assert exe_inode(d.pid) == exe
    assert version_pid(d.sock) == d.pid
    assert services(d) == before
    if port is not None:
        assert listen_inode(port) == lis
        assert lis in socket_inodes(d.pid)


def count_lines(path):
    try:
        return len(Path(path).read_text().splitlines())
    except FileNotFoundError:
        return 0


def a_good_upgrade_still_works(d):
    ino = install(d.exe, src=DROVERD)
    upgraded_ok(d, d.upgrade())
    assert exe_inode(d.pid) == ino


# --- in place: what it keeps --------------------------------------------------------

def test_upgrade_keeps_pid_services_listener_and_every_connection(udroverd, loads):
    port = free_port()
    d = udroverd(web(port) + DMN)
    before = ready(d, "web", "dmn")
    assert len(before["web"][1]) == 3
    lis = listen_inode(port)
    assert lis in socket_inodes(d.pid)
    load = loads(port)
    new = install(d.exe, src=DROVERD)
    assert new != d.exe_ino

    upgraded_ok(d, d.upgrade())
    unchanged(d, before, new, port, lis)
    for name in ("web", "dmn"):
        for pid in before[name][1]:
            assert parent_of(pid) == d.pid
    d.wait_log(rf"droverd: upgrade complete: running droverd {re.escape(VERSION)} \(pid {d.pid}\)")
    load.check()


def test_services_are_still_supervised_after_an_upgrade(udroverd, tmp_path):
    port = free_port()
    d = udroverd(web(port, procs=2) + DMN + f"""
[service tick]
mode = timer
every = 200ms
command = /bin/sh -c 'echo tick >> {tmp_path}/ticks'
""")
    before = ready(d, "web", "dmn")
    upgraded_ok(d, d.upgrade())
    assert services(d)["web"] == before["web"]

    # A worker killed: replaced, and reaped.
    worker = before["web"][1][0]
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: (lambda p: len(p) == 2 and worker not in p)(d.pids("web")),
             what=f"the killed worker to be replaced\n{d.log()}")
    wait_for(lambda: not Path(f"/proc/{worker}").exists(), what="the killed worker to be reaped")

    # The daemon killed: restarts after its delay, and is reaped.
    dmn = before["dmn"][1][0]
    os.kill(dmn, signal.SIGKILL)
    d.wait_log(r"droverd: warning: dmn: killed by signal 9 \(KILL\); restarting in 300ms")
    st = wait_for(lambda: (lambda s: s["state"] == "ready" and s["pids"] != [dmn] and s)(d.status("dmn")),
                  what=f"dmn to restart\n{d.log()}")
    assert st["restarts"] == 1
    assert not Path(f"/proc/{dmn}").exists()

    # The timer keeps firing.
    n = count_lines(tmp_path / "ticks")
    wait_for(lambda: count_lines(tmp_path / "ticks") >= n + 2, what=f"the timer to fire again\n{d.log()}")


def test_service_output_and_drover_logs_after_an_upgrade(udroverd, tmp_path):
    (tmp_path / "echo.py").write_text(ECHO)
    d = udroverd(f"[service echo]\ncommand = {PY} -u {tmp_path}/echo.py\n")
    pid = ready(d, "echo")["echo"][1][0]
    d.wait_log(rf"(?m)^echo\[{pid}\]: up$")
    upgraded_ok(d, d.upgrade())

    # The output pipe came along: what the process writes now still arrives.
    r = d.drover("signal", "echo", "USR1")
    assert r.rc == 0, r
    d.wait_log(rf"(?m)^echo\[{pid}\]: ping$")
    r = d.drover("logs", "echo")
    assert r.rc == 0 and r.err == "", r
    assert re.search(rf"(?m) echo\[{pid}\]: ping$", r.out), r
    # And the recent output from before the upgrade is still there.
    assert re.search(rf"(?m) echo\[{pid}\]: up$", r.out), \
        f"`drover logs echo` lost the output from before the upgrade: {r.out!r}"


def test_a_service_in_backoff_keeps_its_next_attempt(udroverd, tmp_path):
    d = udroverd(f"""
[service bad]
command = /bin/sh -c 'echo attempt >> {tmp_path}/attempts; exit 3'
restart_delay = 2s
""")

    def next_attempt():
        t0 = time.monotonic()
        st = d.status("bad")
        t1 = time.monotonic()
        assert st["state"] == "backoff" and st["next_ms"] >= 0, st
        return t0 + st["next_ms"] / 1000, t1 + st["next_ms"] / 1000

    d.wait_state("bad", "backoff")
    lo, hi = next_attempt()
    upgraded_ok(d, d.upgrade())
    assert d.status("bad")["reason"] == "exited with status 3; restarting in 2s"
    lo2, hi2 = next_attempt()
    assert lo2 <= hi + 0.1 and lo - 0.1 <= hi2, "the next attempt moved"
    assert count_lines(tmp_path / "attempts") == 1
    wait_for(lambda: count_lines(tmp_path / "attempts") == 2, what="the next attempt")
    assert time.monotonic() >= lo - 0.1, "the next attempt came early"


def test_a_stopping_service_is_still_killed_after_its_stop_timeout(udroverd):
    d = udroverd("""
[service stub]
command = /bin/sh -c 'trap "" TERM; exec sleep 1000'
stop_timeout = 2s
""")
    pid = ready(d, "stub")["stub"][1][0]
    asked = time.monotonic()
    stop = subprocess.Popen([str(DROVER), "-S", str(d.sock), "stop", "stub"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        d.wait_state("stub", "stopping")
        upgraded_ok(d, d.upgrade())
        assert d.status("stub")["pids"] == [pid]
        d.wait_log(rf"droverd: warning: stub: pid {pid} did not stop within 2000ms: killing its process group")
        assert time.monotonic() >= asked + 2.0 - 0.05, "killed before its stop_timeout"
        d.wait_log(rf"droverd: stub: pid {pid} killed by signal 9 \(KILL\)")
        d.wait_state("stub", "stopped")
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), what="the killed process to be reaped")
    finally:
        stop.communicate(timeout=30 * SLOW)


def test_a_process_that_exits_during_the_exec_is_still_collected(udroverd):
    """The new binary (a wrapper, same PID) kills dmn and waits until it is a
    zombie before the real droverd runs: its exit happened between the two
    images. The new image must collect it and restart it."""
    d = udroverd(DMN)
    victim = ready(d, "dmn")["dmn"][1][0]
    (d.dir / "victim").write_text(f"{victim}\n")
    # Builtins only after the kill: a shell that waits for a child of its
    # own could reap the victim itself.
    install(d.exe, text=script(d, CHECKS_OK + """
read victim < DIR/victim
kill -KILL "$victim"
while :; do
    read stat < /proc/$victim/stat
    case "$stat" in *") Z "*) break;; esac
done
exec REAL "$@"
"""))
    upgraded_ok(d, d.upgrade())
    d.wait_log(r"droverd: warning: dmn: killed by signal 9 \(KILL\); restarting in 300ms")
    st = wait_for(lambda: (lambda s: s["state"] == "ready" and s["pids"] != [victim] and s)(d.status("dmn")),
                  what=f"dmn to restart\n{d.log()}")
    assert st["restarts"] == 1
    wait_for(lambda: not Path(f"/proc/{victim}").exists(), what=f"pid {victim} to be reaped")


def test_sigusr2_upgrades_in_place(udroverd, loads):
    port = free_port()
    d = udroverd(web(port) + DMN)
    before = ready(d, "web", "dmn")
    lis = listen_inode(port)
    load = loads(port)
    new = install(d.exe, src=DROVERD)
    d.send_signal(signal.SIGUSR2)
    d.wait_log(r"droverd: SIGUSR2: upgrading droverd in place")
    d.wait_log(rf"droverd: upgrade complete: running droverd {re.escape(VERSION)} \(pid {d.pid}\)")
    unchanged(d, before, new, port, lis)
    load.check()


def test_two_upgrades_in_a_row(udroverd, loads):
    port = free_port()
    d = udroverd(web(port) + DMN)
    before = ready(d, "web", "dmn")
    lis = listen_inode(port)
    load = loads(port)
    for _ in range(2):
        new = install(d.exe, src=DROVERD)
        upgraded_ok(d, d.upgrade())
        unchanged(d, before, new, port, lis)
        load.more()
    assert len(re.findall(r"upgrade complete: running droverd", d.log())) == 2
    load.check()


# --- in place: what goes wrong changes nothing -----------------------------------

BAD_BINARIES = {
    "not executable": (dict(src=DROVERD, mode=0o644),
                       "cannot check the new binary: cannot exec {exe}: Permission denied"),
    "not a program": (dict(text="this is not a program\n"),
                      "cannot check the new binary: cannot exec {exe}: Exec format error"),
    "exits 1": (dict(text="#!/bin/sh\necho 'droverd: this build is broken' >&2\nexit 1\n"),
                "the new binary {exe} failed its check (exited with status 1): "
                "droverd: this build is broken; nothing changed"),
}


@pytest.mark.parametrize("case", BAD_BINARIES)
def test_a_binary_that_cannot_run_changes_nothing(udroverd, loads, case):
    port = free_port()
    d = udroverd(web(port) + DMN)
    before = ready(d, "web", "dmn")
    lis = listen_inode(port)
    load = loads(port)
    how, message = BAD_BINARIES[case]
    install(d.exe, **how)
    refused(d.upgrade(), message.format(exe=d.exe))
    unchanged(d, before, d.exe_ino, port, lis)
    d.wait_log(r"droverd: error: upgrade: " + re.escape(message.format(exe=d.exe)))
    a_good_upgrade_still_works(d)
    assert services(d) == before
    load.check()


def test_a_binary_that_is_gone_changes_nothing(udroverd):
    d = udroverd(DMN)
    before = ready(d, "dmn")
    os.unlink(d.exe)
    refused(d.upgrade(), f"cannot check the new binary: cannot exec {d.exe}: No such file or directory")
    unchanged(d, before, d.exe_ino)
    a_good_upgrade_still_works(d)


def test_a_binary_that_hangs_in_its_check_changes_nothing(udroverd, loads):
    port = free_port()
    d = udroverd(web(port) + DMN)
    before = ready(d, "web", "dmn")
    lis = listen_inode(port)
    load = loads(port, fresh=1)
    install(d.exe, text="#!/bin/sh\nsleep 1000\n")
    refused(d.upgrade(), f"the new binary {d.exe} failed its check (killed by signal 9 (KILL)): "
                         "no answer within 15 seconds; nothing changed")
    unchanged(d, before, d.exe_ino, port, lis)
    # Nothing of the check is left running: droverd's children are its services'.
    service_pids = {p for _, pids in services(d).values() for p in pids}
    wait_for(lambda: children_of(d.pid) == service_pids,
             what=f"droverd's children to be only its services' ({service_pids}), "
                  f"not {children_of(d.pid)}")
    a_good_upgrade_still_works(d)
    load.check()


def test_a_new_image_that_cannot_take_the_state_over_runs_the_old_one_again(udroverd, loads):
    port = free_port()
    d = udroverd(web(port) + DMN)
    before = ready(d, "web", "dmn")
    lis = listen_inode(port)
    load = loads(port)
    fall_back_binary(d)     # hands the new image a truncated state
    r = d.upgrade()
    m = re.fullmatch(r"drover: the new binary could not take over \((state line \d+: truncated: [^)]*)\); "
                     rf"still running droverd {re.escape(VERSION)}\n", r.err)
    assert r.rc == 1 and r.out == "" and m, f"{r}\n--- log:\n{d.log()}"
    unchanged(d, before, d.exe_ino, port, lis)
    d.wait_log(r"droverd: the new image cannot take the state over: " + re.escape(m.group(1)) +
               r"; running the old one again")
    d.wait_log(r"droverd: error: upgrade failed: the new binary could not take over \(" + re.escape(m.group(1)) +
               rf"\); still running droverd {re.escape(VERSION)}")
    load.check()
    # Still supervising: a killed worker is replaced (no load now: its
    # connection would be cut by the test's own SIGKILL).
    worker = before["web"][1][0]
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: (lambda p: len(p) == 3 and worker not in p)(d.pids("web")),
             what=f"the killed worker to be replaced\n{d.log()}")


DISK_CHANGES = {
    "changed": (lambda c: c.replace("/bin/sleep 1000", "/bin/sleep 2000"),
                "the configuration on disk differs from the running one (service dmn); "
                "run `drover reload` first"),
    "added": (lambda c: c + "\n[service extra]\ncommand = /bin/sleep 1000\n",
              "the configuration on disk differs from the running one; run `drover reload` first"),
    "removed": (lambda c: c.split("[service dmn]")[0],
                "the configuration on disk differs from the running one (service dmn); "
                "run `drover reload` first"),
}


@pytest.mark.parametrize("case", DISK_CHANGES)
def test_a_configuration_on_disk_not_yet_reloaded_refuses_a_handover(udroverd, case):
    port = free_port()
    conf = web(port) + DMN
    d = udroverd(conf)
    before = ready(d, "web", "dmn")
    lis = listen_inode(port)
    change, message = DISK_CHANGES[case]
    d.write_config(change(conf))
    install(d.exe, src=DROVERD)
    refused(d.upgrade("--handover"), message)
    unchanged(d, before, d.exe_ino, port, lis)


@pytest.mark.parametrize("case", DISK_CHANGES)
def test_an_upgrade_in_place_keeps_the_configuration_in_force_until_a_reload(udroverd, case):
    port = free_port()
    conf = web(port) + DMN
    d = udroverd(conf)
    before = ready(d, "web", "dmn")
    lis = listen_inode(port)
    change, _ = DISK_CHANGES[case]
    d.write_config(change(conf))
    a_good_upgrade_still_works(d)
    assert services(d) == before
    assert listen_inode(port) == lis
    r = d.drover("reload")
    assert r.rc == 0, r
    assert ("extra" in d.status()) == (case == "added")
    assert ("dmn" in d.status()) == (case != "removed")


def test_an_invalid_configuration_on_disk_refuses_a_handover(udroverd):
    conf = DMN
    d = udroverd(conf)
    before = ready(d, "dmn")
    bad = conf + "bogus = 1\n"
    d.write_config(bad)
    first = f'{d.conf}:{bad.count(chr(10))}: unknown key "bogus" in [service dmn]'
    r = d.drover("check", "-c", d.conf)
    assert r.err.startswith(first + "\n"), r
    install(d.exe, src=DROVERD)
    refused(d.upgrade("--handover"), f"the configuration on disk is invalid ({first}); fix it first")
    unchanged(d, before, d.exe_ino)
    d.write_config(conf)
    a_good_upgrade_still_works(d)


def test_a_removed_service_still_stopping_refuses_the_upgrade(udroverd):
    stub = """
[service stub]
command = /bin/sh -c 'trap "" TERM; exec sleep 1000'
stop_timeout = 60s
"""
    d = udroverd(DMN + stub)
    pid = ready(d, "dmn", "stub")["stub"][1][0]
    d.write_config(DMN)
    r = d.drover("reload")
    assert r.rc == 0, r
    before = services(d)
    assert process_exists(pid)
    install(d.exe, src=DROVERD)
    refused(d.upgrade(), "service stub was removed and is still stopping; try again when it has")
    unchanged(d, before, d.exe_ino)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), what="the removed service's process to be reaped")
    a_good_upgrade_still_works(d)


def test_one_upgrade_at_a_time(udroverd):
    d = udroverd(DMN)
    before = ready(d, "dmn")
    os.mkfifo(d.dir / "gate")
    # Its check waits until the test opens the gate.
    install(d.exe, text=script(d, """
case " $* " in *" -t "*) : > DIR/checking; read x < DIR/gate; exec REAL "$@";; esac
exec REAL "$@"
"""))
    first = subprocess.Popen([str(DROVER), "-S", str(d.sock), "upgrade"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        wait_for(lambda: (d.dir / "checking").exists(), what="the check to start")
        refused(d.upgrade(), "an upgrade is already in progress")
        refused(d.upgrade("--handover"), "an upgrade is already in progress")
        d.send_signal(signal.SIGUSR2)
        d.wait_log(r"droverd: warning: upgrade: one is already in progress; this request is ignored")
        assert services(d) == before
    finally:
        gate = os.open(d.dir / "gate", os.O_RDWR)     # never blocks; keeps the pipe until read
        os.write(gate, b"go\n")
        try:
            out, err = first.communicate(timeout=60 * SLOW)
        finally:
            os.close(gate)
    assert (first.returncode, out, err) == (0, f"upgraded: running droverd {VERSION} (pid {d.pid})\n", "")
    assert services(d) == before
    assert exe_inode(d.pid) == os.stat(d.bindir / "droverd.real").st_ino
    assert len(re.findall(r"upgrade complete", d.log())) == 1


# --- handover ---------------------------------------------------------------------------

HANDED = re.compile(r"the new droverd \(pid (\d+)\) runs now; this one \(pid (\d+)\) lets its processes "
                    r"finish and exits\n")


def handover(d):
    """`drover upgrade --handover`, successful: the new droverd's pid."""
    r = d.upgrade("--handover")
    m = HANDED.fullmatch(r.out)
    assert r.rc == 0 and r.err == "" and m and int(m.group(2)) == d.pid, f"{r}\n--- log:\n{d.log()}"
    new = int(m.group(1))
    assert new != d.pid
    d.adopt_successor(new)
    return new


def test_handover_replaces_droverd_without_losing_a_connection(udroverd, loads):
    port = free_port()
    d = udroverd(web(port) + DMN)
    before = ready(d, "web", "dmn")
    lis = listen_inode(port)
    load = loads(port)
    ino = install(d.exe, src=DROVERD)
    old = d.pid

    new = handover(d)
    assert d.wait_exit() == 0
    assert wait_for(lambda: version_pid(d.sock) == new, what="the new droverd to answer")
    r = d.drover("version")
    assert (r.rc, r.out) == (0, f"drover {VERSION}\ndroverd {VERSION} (pid {new})\n"), r
    assert parent_of(new) == os.getpid()     # the old one is gone: its child is ours now
    assert exe_inode(new) == ino
    assert not process_exists(old)
    assert listen_inode(port) == lis and lis in socket_inodes(new)
    after = ready(d, "web", "dmn")
    for name in ("web", "dmn"):
        assert not set(after[name][1]) & set(before[name][1]), (before, after)
        for pid in before[name][1]:
            assert not process_exists(pid)
        for pid in after[name][1]:
            assert parent_of(pid) == new
    d.wait_log(rf"droverd: handover: every process of this droverd has stopped; pid {new} carries on")
    load.check()


def test_handover_never_runs_a_daemon_twice_nor_a_finished_oneshot_again(udroverd, tmp_path):
    (tmp_path / "lockd.py").write_text(LOCKD)
    d = udroverd(f"""
[service lockd]
command = {PY} {tmp_path}/lockd.py {tmp_path}/lock {tmp_path}/notes

[service once]
mode = oneshot
command = /bin/sh -c 'echo ran >> {tmp_path}/ran'
""")
    first = ready(d, "lockd")["lockd"][1][0]
    wait_for(lambda: (tmp_path / "notes").read_text() == f"start {first}\n", what="lockd to take its lock")
    d.wait_state("once", "done")
    assert (tmp_path / "ran").read_text() == "ran\n"

    new = handover(d)
    assert d.wait_exit() == 0
    st = wait_for(lambda: (lambda s: s["state"] == "ready" and s["pids"] and s)(d.status("lockd")),
                  what=f"lockd to run in the new droverd\n{d.log()}")
    second = st["pids"][0]
    assert parent_of(second) == new
    assert st["restarts"] == 0
    wait_for(lambda: count_lines(tmp_path / "notes") >= 3, what="lockd to start in the new droverd")
    assert (tmp_path / "notes").read_text() == f"start {first}\nstop {first}\nstart {second}\n"
    d.wait_log(r"droverd: handover: lockd stopped in the previous droverd: starting it")
    assert d.state("once") == "done"
    assert (tmp_path / "ran").read_text() == "ran\n"


def test_handover_to_a_droverd_that_exits_at_start_changes_nothing(udroverd, loads):
    port = free_port()
    d = udroverd(web(port) + DMN)
    before = ready(d, "web", "dmn")
    lis = listen_inode(port)
    load = loads(port)
    install(d.exe, text=script(d, CHECKS_OK + "exit 1\n"))
    r = d.upgrade("--handover")
    m = re.fullmatch(rf"drover: the new droverd \(pid (\d+)\) exited with status 1 before it was ready; "
                     rf"nothing changed, this droverd \(pid {d.pid}\) carries on\n", r.err)
    assert r.rc == 1 and r.out == "" and m, f"{r}\n--- log:\n{d.log()}"
    assert not process_exists(int(m.group(1)))
    unchanged(d, before, d.exe_ino, port, lis)
    # The old one can still hand over.
    install(d.exe, src=DROVERD)
    handover(d)
    assert d.wait_exit() == 0
    load.check()


def test_handover_to_a_droverd_not_ready_in_time_stops_it(udroverd, loads, tmp_path):
    (tmp_path / "gate.py").write_text(GATE)
    port, gate_port = free_port(), free_port()
    d = udroverd(f"""
[drover]
upgrade_timeout = 3s
{web(port)}
[service gate]
command = {PY} -u {tmp_path}/gate.py {tmp_path}/block
listen = tcp:127.0.0.1:{gate_port}
ready = notify
""")
    before = ready(d, "web", "gate")
    lis = listen_inode(port)
    load = loads(port)
    install(d.exe, src=DROVERD)
    (tmp_path / "block").touch()    # the new droverd's gate never gets ready
    r = d.upgrade("--handover")
    m = re.fullmatch(rf"drover: the new droverd \(pid (\d+)\) was not ready within 3s; nothing changed, "
                     rf"this droverd \(pid {d.pid}\) carries on\n", r.err)
    assert r.rc == 1 and r.out == "" and m, f"{r}\n--- log:\n{d.log()}"
    new = int(m.group(1))
    # The new droverd's gate, from its own log line: on a slow machine the
    # gate may not even have printed "blocked" before it was stopped.
    blocked = int(d.wait_log(rf"\(pid {new}\) taking over from pid {d.pid}\n(?:.*\n)*?"
                             r"droverd: gate: started, pid (\d+)\n").group(1))
    wait_for(lambda: not process_exists(new), what=f"the new droverd {new} to be stopped")
    wait_for(lambda: not process_exists(blocked), what=f"the new droverd's gate {blocked} to be stopped")
    unchanged(d, before, d.exe_ino, port, lis)
    assert children_of(d.pid) == {p for _, pids in before.values() for p in pids}
    load.check()


def test_handover_under_systemd_sends_mainpid_and_not_stopping(udroverd, systemd):
    """systemd must follow the new main process and must not hear that
    droverd is stopping: STOPPING=1 (NotifyAccess=all) would make it stop
    the unit and, after TimeoutStopSec, kill the new droverd too."""
    d = udroverd(DMN, env={"NOTIFY_SOCKET": systemd.path})
    ready(d, "dmn")
    old = d.pid
    systemd.wait(lambda m: m[1] == "READY=1", "READY=1")
    install(d.exe, src=DROVERD)
    new = handover(d)
    assert d.wait_exit() == 0
    systemd.wait(lambda m: m[0] == old and m[1] == f"MAINPID={new}\nSTATUS=handed over to pid {new}",
                 "MAINPID= of the new droverd from the old one")
    wait_for(lambda: version_pid(d.sock) == new, what="the new droverd to answer")
    ready(d, "dmn")
    told = systemd.take()
    assert not [m for m in told if "STOPPING=1" in m[1]], f"systemd was told {[m[:2] for m in told]}"


def test_a_failed_handover_does_not_tell_systemd_droverd_is_stopping(udroverd, systemd, tmp_path):
    """The new droverd inherits NOTIFY_SOCKET: when it is stopped for not
    being ready, systemd must not hear STOPPING=1 from it."""
    (tmp_path / "gate.py").write_text(GATE)
    d = udroverd(f"""
[drover]
upgrade_timeout = 3s

[service gate]
command = {PY} -u {tmp_path}/gate.py {tmp_path}/block
listen = tcp:127.0.0.1:{free_port()}
ready = notify
""", env={"NOTIFY_SOCKET": systemd.path})
    d.wait_state("gate", "ready")
    install(d.exe, src=DROVERD)
    (tmp_path / "block").touch()
    r = d.upgrade("--handover")
    m = re.fullmatch(rf"drover: the new droverd \(pid (\d+)\) was not ready within 3s; nothing changed, "
                     rf"this droverd \(pid {d.pid}\) carries on\n", r.err)
    assert r.rc == 1 and m, f"{r}\n--- log:\n{d.log()}"
    d.wait_log(rf"droverd: handover: the new droverd \(pid {m.group(1)}\) exited with status 0")
    told = systemd.take()
    assert not [t for t in told if "STOPPING=1" in t[1]], f"systemd was told {[t[:2] for t in told]}"


def test_handover_new_droverd_dying_while_the_old_one_drains_gives_everything_back(udroverd, loads):
    port = free_port()
    d = udroverd(web(port, procs=3, extra="stop_timeout = 60s") + DMN)
    ready(d, "web", "dmn")
    lis = listen_inode(port)
    held = hold_connection(port)     # an old worker stays busy: the old droverd drains
    load = loads(port)
    install(d.exe, src=DROVERD)
    r = d.upgrade("--handover")
    m = HANDED.fullmatch(r.out)
    assert r.rc == 0 and m, f"{r}\n--- log:\n{d.log()}"
    new = int(m.group(1))
    wait_for(lambda: version_pid(d.sock) == new, what="the new droverd to answer")
    theirs = wait_for(lambda: (lambda s: s["web"]["state"] == "ready" and s["dmn"]["state"] == "ready"
                               and s["dmn"]["pids"] and s)(d.status()),
                      what=f"the new droverd's services\n{d.log()}")
    their_pids = set(theirs["web"]["pids"]) | set(theirs["dmn"]["pids"])
    assert d.running(), "the old droverd should still drain"

    os.kill(new, signal.SIGKILL)
    d.wait_log(rf"droverd: error: handover: the new droverd \(pid {new}\) killed by signal 9 \(KILL\) while "
               r"this droverd was stopping its processes: taking everything back")
    wait_for(lambda: version_pid(d.sock) == d.pid, what="the old droverd to answer again")
    for pid in their_pids | {new}:
        wait_for(lambda: not process_exists(pid), what=f"pid {pid} of the new droverd to be gone")
    # The held connection is still served (and its worker, told to stop, then exits).
    held.sendall(REQUEST % b"")
    head, _ = read_response(held)
    assert b"\r\nConnection: close" in head, head
    held.close()
    after = wait_for(lambda: (lambda s: s["web"][0] == "ready" and len(s["web"][1]) == 3
                              and s["dmn"][0] == "ready" and s["dmn"][1] and s)(services(d)),
                     what=f"the old droverd's services to run again\n{d.log()}")
    for pid in after["web"][1] + after["dmn"][1]:
        assert parent_of(pid) == d.pid
        assert pid not in their_pids
    assert listen_inode(port) == lis and lis in socket_inodes(d.pid)
    load.check()


def test_handover_old_droverd_killed_while_draining(udroverd, loads):
    port = free_port()
    d = udroverd(web(port, procs=3, extra="stop_timeout = 3s"))
    before = ready(d, "web")
    lis = listen_inode(port)
    held = hold_connection(port)
    load = loads(port)
    install(d.exe, src=DROVERD)
    old = d.pid
    new = handover(d)
    wait_for(lambda: version_pid(d.sock) == new, what="the new droverd to answer")
    # The old workers stop, but for the one busy with the held connection;
    # and the old droverd has reaped them (a zombie of the old droverd would
    # be re-parented to pytest when it is killed below).
    left = wait_for(lambda: (lambda p: len(p) == 1 and p)([w for w in before["web"][1]
                                                           if os.path.exists(f"/proc/{w}")]),
                    what="the old workers to stop but one, and be reaped")
    busy = left[0]

    d.proc.kill()
    d.proc.wait()
    d.wait_log(rf"droverd: error: handover: the previous droverd \(pid {old}\) is gone without finishing")
    d.wait_log(rf"droverd: warning: handover: watching pid {busy} of the previous droverd until it stops")
    watched = time.monotonic()
    assert parent_of(new) == os.getpid() and parent_of(busy) == os.getpid()
    assert version_pid(d.sock) == new
    load.more()
    d.wait_log(rf"droverd: warning: handover: pid {busy} of the previous droverd did not finish: "
               r"killing its process group")
    assert time.monotonic() >= watched + 3.0 - 0.5 * SLOW, "killed before its stop timeout"
    wait_gone(busy)     # pytest is the subreaper here: it collects it
    held.close()
    after = ready(d, "web")
    assert len(after["web"][1]) == 3
    for pid in after["web"][1]:
        assert parent_of(pid) == new
    assert listen_inode(port) == lis and lis in socket_inodes(new)
    load.check()


# --- PID 1 ------------------------------------------------------------------------------

def test_in_place_upgrade_as_pid_1_of_a_pid_namespace(udroverd, loads):
    port = free_port()
    d = udroverd(web(port) + DMN, prefix=["unshare", "--pid", "--fork", "--mount-proc"], nested=True)
    assert version_pid(d.sock) == 1
    before = ready(d, "web", "dmn")
    host_children = children_of(d.pid)
    assert len(host_children) == 4
    lis = listen_inode(port)
    load = loads(port)
    new = install(d.exe, src=DROVERD)
    upgraded_ok(d, d.upgrade(), pid=1)
    assert version_pid(d.sock) == 1
    assert exe_inode(d.pid) == new
    assert services(d) == before
    assert children_of(d.pid) == host_children
    assert listen_inode(port) == lis and lis in socket_inodes(d.pid)
    load.check()


# --- sockets from systemd ---------------------------------------------------------------

def test_socket_passed_by_systemd_is_adopted(udroverd, loads):
    port = free_port()
    d = udroverd(web(port, procs=2).replace("listen = ", "listen = http="), start=False)
    d.start(prefix=["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--fdname=http"], wait=False)
    lis = wait_for(lambda: (lambda f: len(f) == 1 and f[0])(listen_inodes(port)),
                   what="systemd-socket-activate to listen")
    # droverd starts at the first connection; that one is served too.
    with socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW) as first:
        first.sendall(REQUEST % b"Connection: close\r\n")
        d.wait_answering()
        read_response(first)
    d.wait_log(rf"droverd: web: listening on tcp:127.0.0.1:{port} \(passed by systemd\)")
    assert version_pid(d.sock) == d.proc.pid
    assert listen_inode(port) == lis and lis in socket_inodes(d.pid)
    worker = ready(d, "web")["web"][1][0]
    env = dict(kv.split("=", 1) for kv in Path(f"/proc/{worker}/environ").read_text().split("\0") if kv)
    assert (env["LISTEN_FDS"], env["LISTEN_FDNAMES"]) == ("1", "http")
    loads(port).check()


# Puts the descriptor argv[1] at 3, sets LISTEN_PID to its own pid and
# executes argv[2:] (what systemd does when it passes stored descriptors).
PASS_AT_3 = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_fdstore_keeps_the_listener_and_its_queued_connections_across_a_crash(udroverd, systemd):
    port = free_port()
    d = udroverd("[drover]\nfdstore = yes\n" + web(port, procs=2), env={"NOTIFY_SOCKET": systemd.path})
    workers = ready(d, "web")["web"][1]
    got = systemd.wait(lambda m: "FDSTORE=1" in m[1], "a descriptor to store")
    systemd.got.remove(got)     # its descriptor is ours now
    pid, msg, fds = got
    assert (pid, msg, len(fds)) == (d.pid, "FDSTORE=1\nFDNAME=web.0", 1), got
    stored = socket.socket(fileno=fds[0])
    try:
        assert (stored.family, stored.type) == (socket.AF_INET, socket.SOCK_STREAM)
        assert stored.getsockname() == ("127.0.0.1", port)
        assert stored.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        lis = listen_inode(port)
        assert os.fstat(stored.fileno()).st_ino == lis

        # droverd crashes; its workers go too (systemd would kill them).
        d.kill()
        for w in workers:
            os.kill(w, signal.SIGKILL)
            wait_gone(w)
        # Clients come while no droverd runs: they wait in the backlog.
        waiting = []
        for _ in range(3):
            c = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
            c.sendall(REQUEST % b"Connection: close\r\n")
            waiting.append(c)

        # systemd starts droverd again and passes the stored socket back.
        d.start(argv=[PY, "-c", PASS_AT_3, str(stored.fileno()), str(d.exe), "-c", str(d.conf),
                      "-S", str(d.sock)],
                pass_fds=(stored.fileno(),),
                env={"LISTEN_FDS": "1", "LISTEN_FDNAMES": "web.0", "NOTIFY_SOCKET": systemd.path})
        d.wait_log(rf"droverd: web: listening on tcp:127.0.0.1:{port} \(passed by systemd\)")
        for c in waiting:
            read_response(c)
            c.close()
        assert listen_inode(port) == lis and lis in socket_inodes(d.pid)
        get(port)
    finally:
        stored.close()
