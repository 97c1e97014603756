"""Signals to droverd (SPEC section 1).

HUP reloads, TERM and INT shut down gracefully (reverse dependency order,
each service's stop_signal, exit 0), QUIT shuts down fast (SIGKILL, exit 0),
USR1 reopens log files. Signals are read in the event loop: a storm of them
changes nothing it should not.
"""
import os
import re
import signal
import threading
from pathlib import Path

import pytest

from conftest import wait_for


def the_pid(d, name):
    st = d.wait_state(name, "ready")
    assert len(st["pids"]) == 1, st
    return st["pids"][0]


def process_alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_sighup_reloads(droverd):
    d = droverd("""
[service a]
command = sleep 1000
""")
    a = the_pid(d, "a")
    d.write_config("""
[service a]
command = sleep 1000

[service b]
command = sleep 1001
""")
    d.send_signal(signal.SIGHUP)
    d.wait_log(rf"(?m)^droverd: SIGHUP: reloading {re.escape(str(d.conf))}$")
    d.wait_log(r"(?m)^droverd: reloaded: 1 added, 0 removed, 0 replaced, 0 updated, 1 unchanged$")
    d.wait_state("b", "ready")
    assert d.pids("a") == [a]
    assert d.running()


DEPS = """
[service db]
command = sleep 1000

[service app]
command = sleep 1001
requires = db
stop_signal = INT

[service web]
command = sleep 1002
requires = app
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown(droverd, sig):
    d = droverd(DEPS)
    pids = {n: the_pid(d, n) for n in ("db", "app", "web")}
    assert d.stop(sig) == 0
    log = d.log()
    assert "droverd: shutting down: stopping every service\n" in log
    # Each with its own stop_signal, in reverse dependency order.
    lines = {
        "web": f"droverd: web: pid {pids['web']} killed by signal 15 (TERM)\n",
        "app": f"droverd: app: pid {pids['app']} killed by signal 2 (INT)\n",
        "db": f"droverd: db: pid {pids['db']} killed by signal 15 (TERM)\n",
    }
    for n, line in lines.items():
        assert line in log, (n, log)
    assert log.index(lines["web"]) < log.index(lines["app"]) < log.index(lines["db"])
    assert log.rstrip("\n").endswith("droverd: every process has stopped; exiting with status 0")
    assert "did not stop within" not in log
    assert not any(process_alive(p) for p in pids.values())
    assert not d.sock.exists()


def test_graceful_shutdown_waits_for_stop_timeout(droverd):
    d = droverd("""
[service stubborn]
command = /bin/sh -c 'trap "" TERM; echo armed; exec sleep 1000'
stop_timeout = 1s
""")
    pid = the_pid(d, "stubborn")
    d.wait_log(rf"(?m)^stubborn\[{pid}\]: armed$")
    assert d.stop(signal.SIGTERM) == 0
    log = d.log()
    assert (f"droverd: warning: stubborn: pid {pid} did not stop within 1000ms: "
            "killing its process group\n") in log
    assert f"droverd: stubborn: pid {pid} killed by signal 9 (KILL)\n" in log


def test_sigquit_is_fast(droverd):
    # stop_timeout is far longer than the test may wait: only SIGKILL at
    # once lets droverd exit in time.
    d = droverd("""
[service stubborn]
command = /bin/sh -c 'trap "" TERM INT; echo armed; exec sleep 1000'
stop_timeout = 5m

[service plain]
command = sleep 1000
""")
    pid = the_pid(d, "stubborn")
    plain = the_pid(d, "plain")
    d.wait_log(rf"(?m)^stubborn\[{pid}\]: armed$")
    assert d.stop(signal.SIGQUIT, timeout=10) == 0
    log = d.log()
    assert "droverd: shutting down fast: killing every process\n" in log
    assert f"droverd: stubborn: pid {pid} killed by signal 9 (KILL)\n" in log
    assert f"droverd: plain: pid {plain} killed by signal 9 (KILL)\n" in log
    assert "did not stop within" not in log


def stop_or_rescue(d, sig, pid):
    """Stop droverd with sig; if it does not exit, kill pid so teardown can go on."""
    try:
        return d.stop(sig, timeout=5)
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        raise


STUBBORN = """
[service stubborn]
command = /bin/sh -c 'trap "" TERM; echo armed; exec sleep 1000'
stop_timeout = 5m
"""


def test_second_sigterm_stops_fast(droverd):
    d = droverd(STUBBORN)
    pid = the_pid(d, "stubborn")
    d.wait_log(rf"(?m)^stubborn\[{pid}\]: armed$")
    d.send_signal(signal.SIGTERM)
    d.wait_log(r"(?m)^droverd: shutting down: stopping every service$")
    assert d.running() and process_alive(pid)
    assert stop_or_rescue(d, signal.SIGTERM, pid) == 0
    log = d.log()
    assert "droverd: SIGTERM again: stopping fast\n" in log
    assert f"droverd: stubborn: pid {pid} killed by signal 9 (KILL)\n" in log


def test_sigquit_kills_a_service_that_is_already_stopping(droverd):
    d = droverd(STUBBORN)
    pid = the_pid(d, "stubborn")
    d.wait_log(rf"(?m)^stubborn\[{pid}\]: armed$")
    r = d.drover("stop", "stubborn", "--no-wait")
    assert r.rc == 0, r
    d.wait_state("stubborn", "stopping")
    assert stop_or_rescue(d, signal.SIGQUIT, pid) == 0
    log = d.log()
    assert "droverd: shutting down fast: killing every process\n" in log
    assert f"droverd: stubborn: pid {pid} killed by signal 9 (KILL)\n" in log


def test_sigusr1_reopens_droverds_own_log_file(droverd, tmp_path):
    d = droverd("""
[drover]
log = file:@DIR@/droverd.log

[service a]
command = sleep 1000
""")
    own = tmp_path / "droverd.log"
    moved = tmp_path / "droverd.log.1"
    wait_for(lambda: "every auto service has started" in own.read_text(), what="own log file")
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4} "
    first = own.read_text().splitlines()[0]
    assert re.fullmatch(stamp + r"droverd: .*", first), first
    own.rename(moved)
    d.send_signal(signal.SIGUSR1)
    wait_for(lambda: own.exists() and "log reopened" in own.read_text(), what="log reopened")
    assert re.fullmatch(stamp + "droverd: log reopened", own.read_text().splitlines()[0])
    # New messages go to the new file, none to the moved one.
    d.send_signal(signal.SIGHUP)
    wait_for(lambda: "reloaded: 0 added" in own.read_text(), what="the reload in the new file")
    old = moved.read_text()
    assert "log reopened" not in old and "reloaded" not in old
    assert "every auto service has started" in old


def test_sigusr1_with_log_on_stderr_changes_nothing(droverd):
    d = droverd("""
[service a]
command = sleep 1000
""")
    a = the_pid(d, "a")
    d.send_signal(signal.SIGUSR1)
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"(?m)^droverd: reloaded: ")
    assert d.pids("a") == [a]


# Services that log, to droverd's own log file and a file of their own.
STORM = """
[drover]
log = file:@DIR@/droverd.log

[service a]
command = sleep 1000

[service b]
command = /bin/sh -c 'while :; do echo tick; sleep 0.05; done'
log = file:@DIR@/b.log
"""


def test_signal_storm(droverd, tmp_path):
    d = droverd(STORM + """
[service c]
command = sleep 1002
requires = a
""")
    before = {n: the_pid(d, n) for n in ("a", "b", "c")}
    storm = [signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD]
    for i in range(2000):
        os.kill(d.pid, storm[i % 3])
    assert d.running()
    # droverd answers and nothing changed.
    r = d.drover("status", timeout=10)
    assert r.rc == 0, r
    wait_for(lambda: d.drover("status").rc == 0, what="status after the storm")
    st = d.status()
    for n, pid in before.items():
        assert st[n]["pids"] == [pid], (n, st[n])
        assert st[n]["state"] == "ready" and st[n]["generation"] == 1, st[n]
    # Its logs are still written, and a reload still works.
    own = tmp_path / "droverd.log"
    b_log = tmp_path / "b.log"
    size = b_log.stat().st_size
    wait_for(lambda: b_log.exists() and b_log.stat().st_size > size, what="b.log to grow")
    d.write_config(STORM + """
[service c]
command = sleep 1002
requires = a

[service z]
command = sleep 1003
""")
    r = d.drover("reload")
    assert r.rc == 0 and r.out.startswith("reloaded: 1 added, 0 removed, 0 replaced, 0 updated, 3 unchanged"), r
    d.wait_state("z", "ready")
    assert "reloaded: 1 added" in own.read_text()
    assert d.stop() == 0
    assert " droverd: error: " not in own.read_text()


def test_signal_storm_during_reloads(droverd, tmp_path):
    """HUP, USR1 and CHLD arrive without pause while `drover reload` runs
    again and again, adding and removing a service: every reload answers
    with the right plan, nothing unchanged is touched, droverd lives."""
    extra = "\n[service z]\ncommand = sleep 1003\n"
    d = droverd(STORM)
    before = {n: the_pid(d, n) for n in ("a", "b")}
    stop = threading.Event()
    sent = [0]

    def storm():
        sigs = [signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD]
        while not stop.is_set() and sent[0] < 200000:
            os.kill(d.pid, sigs[sent[0] % 3])
            sent[0] += 1

    t = threading.Thread(target=storm)
    t.start()
    try:
        for i in range(6):
            # Atomically: a HUP of the storm must never read half a file
            # (it would remove the services not yet written).
            new = d.conf.with_suffix(".new")
            new.write_text((STORM + (extra if i % 2 == 0 else "")).replace("@DIR@", str(d.dir)))
            new.chmod(0o644)
            os.replace(new, d.conf)
            r = d.drover("reload", timeout=20)
            # A HUP of the storm may have read the new file first: then this
            # reload finds nothing to do. Either way it succeeds.
            assert r.rc == 0 and r.out.startswith("reloaded: "), r
            wait_for(lambda: ("z" in d.status()) == (i % 2 == 0), 10,
                     what="the new configuration in force")
    finally:
        stop.set()
        t.join()
    assert sent[0] > 100, sent
    assert d.running()
    st = d.status()
    for n, pid in before.items():
        assert st[n]["pids"] == [pid] and st[n]["state"] == "ready", st[n]
    assert d.stop() == 0
    own = (tmp_path / "droverd.log").read_text()
    assert " droverd: error: " not in own, own
