"""Stopping: stop_signal, stop_timeout and SIGKILL of the whole process
group, helpers and orphans of a service, and droverd's own shutdown
(graceful, fast, graceful turned fast).

Processes that must react to signals are a small Python program (sig.py)
that records each signal it handles in a file and reports READY=1 only
once its handlers are in place, so no signal can arrive too early.
"""
import os
import re
import signal
import time

from conftest import process_exists, wait_for

SIG_PY = r'''
import os, signal, socket, sys

# argv: OUTFILE SPEC...; SPEC is NAME (record "NAME" and exit 0) or
# ignore:NAME (ignore the signal).
out = sys.argv[1]

def handler(signum, frame):
    with open(out, "a") as f:
        f.write(signal.Signals(signum).name[3:] + "\n")
    os._exit(0)

for spec in sys.argv[2:]:
    if spec.startswith("ignore:"):
        signal.signal(getattr(signal, "SIG" + spec[7:]), signal.SIG_IGN)
    else:
        signal.signal(getattr(signal, "SIG" + spec), handler)
addr = os.environ.get("NOTIFY_SOCKET")
if addr:
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"READY=1", addr)
    s.close()
open(out + ".ready", "w").close()
while True:
    signal.pause()
'''


def start_with_sig_py(droverd, config, env=None):
    d = droverd(config, start=False)
    (d.dir / "sig.py").write_text(SIG_PY)
    d.start(env=env)
    return d


def events(d, name="events"):
    try:
        return (d.dir / name).read_text().split()
    except FileNotFoundError:
        return []


def children(pid):
    kids = set()
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            kids.update(int(x) for x in open(f"/proc/{pid}/task/{t}/children").read().split())
        except FileNotFoundError:
            pass
    return kids


def state_of(pid):
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def zombies_of(pid):
    return sorted(k for k in children(pid) if state_of(k) == "Z")


def gone(pid):
    """Not running and not a zombie: reaped."""
    return not os.path.exists(f"/proc/{pid}")


def main_pid(d, name, state="ready"):
    st = d.wait_state(name, state)
    assert len(st["pids"]) == 1, st
    return int(st["pids"][0])


def helpers_of(pid, n):
    return wait_for(lambda: len(k := children(pid)) >= n and sorted(k), what=f"{n} helpers of {pid}")


# --- stop_signal and stop_timeout ------------------------------------------------------

def test_stop_signal_is_sent(droverd):
    d = start_with_sig_py(droverd, """
[service svc]
command = /usr/bin/python3 @DIR@/sig.py @DIR@/events INT TERM
ready = notify
stop_signal = INT
stop_timeout = 1m
""")
    pid = main_pid(d, "svc")
    r = d.drover("stop", "svc")
    assert r.rc == 0, r
    assert events(d) == ["INT"]
    st = d.status("svc")
    assert (st["state"], st["pids"]) == ("stopped", [])
    assert st["last_exit"] == "exited with status 0"
    assert f"droverd: svc: pid {pid} exited with status 0\n" in d.log()
    assert "did not stop within" not in d.log()
    assert gone(pid)


def test_stop_timeout_then_sigkill_to_the_whole_group(droverd):
    d = droverd("""
[service stubborn]
command = /bin/sh -c 'trap "" TERM; sleep 1000 & sleep 1000 & wait'
stop_timeout = 500ms
""")
    pid = main_pid(d, "stubborn")
    helpers = helpers_of(pid, 2)        # spawned after the trap: TERM is ignored
    for h in helpers:
        ign = int(re.search(r"SigIgn:\s*(\w+)", open(f"/proc/{h}/status").read()).group(1), 16)
        assert ign & (1 << (signal.SIGTERM - 1)), h
    begin = time.monotonic()
    r = d.drover("stop", "stubborn")
    elapsed = time.monotonic() - begin
    assert r.rc == 0, r
    assert elapsed >= 0.5
    st = d.status("stubborn")
    assert (st["state"], st["pids"]) == ("stopped", [])
    log = d.log()
    assert (f"droverd: warning: stubborn: pid {pid} did not stop within 500ms: "
            "killing its process group\n") in log
    assert f"droverd: stubborn: pid {pid} killed by signal 9 (KILL)\n" in log
    # `drover stop` returned once the whole group was gone, helpers included.
    for p in [pid, *helpers]:
        assert gone(p), p
    assert zombies_of(d.pid) == []


def test_stop_reaches_helpers_in_the_process_group(droverd):
    d = droverd("""
[service forks]
command = /bin/sh -c 'sleep 1000 & sleep 1000 & wait'
stop_timeout = 1m
""")
    pid = main_pid(d, "forks")
    helpers = helpers_of(pid, 2)
    r = d.drover("stop", "forks")
    assert r.rc == 0, r
    for p in [pid, *helpers]:
        assert gone(p), p
    assert "did not stop within" not in d.log()
    assert zombies_of(d.pid) == []


def test_stopped_process_is_continued_to_see_the_stop_signal(droverd):
    d = droverd("""
[service frozen]
command = sleep 1000
stop_timeout = 1m
""")
    pid = main_pid(d, "frozen")
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: state_of(pid) == "T", what="the process to be stopped")
    r = d.drover("stop", "frozen")
    assert r.rc == 0, r
    assert gone(pid)
    assert f"droverd: frozen: pid {pid} killed by signal 15 (TERM)\n" in d.log()
    assert "did not stop within" not in d.log()


def test_stop_during_backoff(droverd):
    d = droverd("""
[service flap]
command = /bin/sh -c 'exit 1'
restart_delay = 20s
""")
    d.wait_state("flap", "backoff")
    r = d.drover("stop", "flap")
    assert r.rc == 0, r
    st = d.status("flap")
    assert (st["state"], st["want"], st["next_ms"]) == ("stopped", "down", -1)


# --- helpers and orphans ---------------------------------------------------------------

def test_helper_is_stopped_when_the_main_process_exits(droverd):
    d = start_with_sig_py(droverd, """
[service leaver]
command = /bin/sh -c '/usr/bin/python3 @DIR@/sig.py @DIR@/events TERM & echo $! > @DIR@/helper; while [ ! -e @DIR@/events.ready ]; do sleep 0.02; done; exit 0'
restart = no
stop_timeout = 1m
""")
    st = wait_for(lambda: (s := d.status("leaver"))["state"] == "stopped" and s, what="leaver to stop")
    assert st["last_exit"] == "exited with status 0"
    helper = int((d.dir / "helper").read_text())
    # The helper got stop_signal and is gone, reaped.
    wait_for(lambda: events(d) == ["TERM"], what="the helper to get TERM")
    wait_for(lambda: gone(helper), what=f"helper {helper} to be reaped")
    assert "did not stop within" not in d.log()
    assert d.status("leaver")["pids"] == []


def test_helper_ignoring_term_is_killed_after_the_main_process_exits(droverd):
    d = droverd("""
[service leaver]
command = /bin/sh -c 'trap "" TERM; sleep 1000 & echo $! > @DIR@/helper; exit 0'
restart = no
stop_timeout = 300ms
""")
    helper = int(wait_for(lambda: (d.dir / "helper").read_text(), what="the helper's pid"))
    wait_for(lambda: gone(helper), what=f"helper {helper} to be killed and reaped")
    d.wait_log(r"droverd: warning: leaver: pid \d+ did not stop within 300ms: killing its process group\n")
    assert d.state("leaver") == "stopped"


def test_orphans_are_reaped(droverd):
    d = droverd("""
[service parent]
command = /bin/sh -c '(sleep 0.3 & echo $! > @DIR@/orphan1); (setsid sleep 0.3 & echo $! > @DIR@/orphan2); exec sleep 1000'
""")
    pid = main_pid(d, "parent")
    orphans = [int(wait_for(lambda n=n: (d.dir / f"orphan{n}").read_text(), what="orphan pid"))
               for n in (1, 2)]
    for o in orphans:
        wait_for(lambda o=o: gone(o), what=f"orphan {o} to be reaped")
    assert zombies_of(d.pid) == []
    st = d.status("parent")
    assert st["state"] == "ready"
    assert st["pids"] == [pid]


# --- droverd's shutdown --------------------------------------------------------------

STUBBORN = """
[service stubborn{n}]
command = /bin/sh -c 'trap "" TERM; sleep 1000 & wait'
stop_timeout = 2m
"""


def exit_or_clean_up(d, pids, timeout=15):
    """droverd's exit status. If it does not exit in time, the test fails
    and the service processes are killed first, so that droverd can exit
    and nothing is left over for the next test."""
    try:
        return d.wait_exit(timeout=timeout)
    except AssertionError:
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        raise


def test_sigquit_kills_everything_at_once(droverd):
    d = droverd(STUBBORN.format(n=1) + STUBBORN.format(n=2))
    pids = [main_pid(d, f"stubborn{n}") for n in (1, 2)]
    helpers = [h for p in pids for h in helpers_of(p, 1)]
    d.send_signal(signal.SIGQUIT)
    assert exit_or_clean_up(d, pids + helpers) == 0
    log = d.log()
    assert "droverd: shutting down fast: killing every process\n" in log
    for p in pids:
        assert re.search(rf"droverd: stubborn\d: pid {p} killed by signal 9 \(KILL\)\n", log)
    assert "did not stop within" not in log
    assert "droverd: every process has stopped; exiting with status 0\n" in log
    for p in pids + helpers:
        assert gone(p), p


def test_second_sigterm_turns_a_slow_shutdown_into_a_fast_one(droverd):
    d = droverd(STUBBORN.format(n=1))
    pid = main_pid(d, "stubborn1")
    helpers = helpers_of(pid, 1)
    d.send_signal(signal.SIGTERM)
    d.wait_log(r"droverd: shutting down: stopping every service\n")
    d.wait_state("stubborn1", "stopping")
    assert d.running()
    d.send_signal(signal.SIGTERM)
    assert exit_or_clean_up(d, [pid, *helpers]) == 0
    log = d.log()
    assert "droverd: SIGTERM again: stopping fast\n" in log
    assert "droverd: shutting down fast: killing every process\n" in log
    assert f"droverd: stubborn1: pid {pid} killed by signal 9 (KILL)\n" in log


def test_sigquit_during_a_slow_shutdown(droverd):
    d = droverd(STUBBORN.format(n=1))
    pid = main_pid(d, "stubborn1")
    helpers = helpers_of(pid, 1)
    d.send_signal(signal.SIGTERM)
    d.wait_state("stubborn1", "stopping")
    d.send_signal(signal.SIGQUIT)
    assert exit_or_clean_up(d, [pid, *helpers]) == 0
    assert f"droverd: stubborn1: pid {pid} killed by signal 9 (KILL)\n" in d.log()


def test_graceful_shutdown_waits_for_stop_signal_handlers(droverd):
    d = start_with_sig_py(droverd, """
[service a]
command = /usr/bin/python3 @DIR@/sig.py @DIR@/events TERM
ready = notify

[service b]
command = /usr/bin/python3 @DIR@/sig.py @DIR@/events USR1
ready = notify
stop_signal = USR1
""")
    pids = [main_pid(d, "a"), main_pid(d, "b")]
    assert d.stop(signal.SIGTERM) == 0
    assert sorted(events(d)) == ["TERM", "USR1"]
    log = d.log()
    for name, pid in zip("ab", pids):
        assert f"droverd: {name}: pid {pid} exited with status 0\n" in log
    assert "did not stop within" not in log
    assert not any(process_exists(p) for p in pids)


def test_drover_shutdown(droverd):
    d = droverd("""
[service svc]
command = sleep 1000
""")
    pid = main_pid(d, "svc")
    r = d.drover("shutdown")
    assert r.rc == 0, r
    assert r.out == "droverd stopped every service and is exiting\n"
    assert gone(pid)
    assert d.wait_exit() == 0
    assert re.search(r"droverd: shutdown requested by uid 0 \(pid \d+\)\n", d.log())
