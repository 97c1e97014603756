"""Service life cycles: modes, dependencies, readiness, restarts, backoff,
critical services, and the start/stop/restart/wait requests.

Services report what happened to them by appending lines to @DIR@/events
(O_APPEND writes of one short line are atomic), so the order in which
things happened is read from one file, not guessed from timing.
"""
import datetime
import os
import re
import signal
import socket
import subprocess
import time

from conftest import DROVER, SLOW, process_exists, wait_for

NOTIFY_PY = r'''
import os, signal, socket, sys

# Sends READY=1 (and STATUS=argv[1], if given) when it gets SIGUSR1.
def notify(msg):
    addr = os.environ["NOTIFY_SOCKET"]
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(msg.encode(), addr)
    s.close()

def ready(signum, frame):
    notify("READY=1" + ("\nSTATUS=" + sys.argv[1] if len(sys.argv) > 1 else ""))

signal.signal(signal.SIGUSR1, ready)
# Written once the handler is in place: from then on SIGUSR1 is safe.
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "notify.sock.tmp"), "w") as f:
    f.write(os.environ.get("NOTIFY_SOCKET", ""))
os.rename(os.path.join(here, "notify.sock.tmp"), os.path.join(here, "notify.sock"))
while True:
    signal.pause()
'''


def write_notify_script(d):
    path = d.dir / "notify.py"
    path.write_text(NOTIFY_PY)
    return path


def let_ready(d, name):
    """Tell the notify.py service `name` to send READY=1."""
    st = d.wait_state(name, "starting")
    wait_for(lambda: (d.dir / "notify.sock").exists(), what=f"{name} to set up its handler")
    os.kill(int(st["pids"][0]), signal.SIGUSR1)


def control_connections(d):
    with open("/proc/net/unix") as f:
        return sum(1 for line in f if line.rstrip().endswith(" " + str(d.sock)))


def events(d):
    try:
        return (d.dir / "events").read_text().split()
    except FileNotFoundError:
        return []


def touch(d, name):
    (d.dir / name).write_text("")


def install_executable(path, text):
    """Create an executable file atomically (never seen half-written)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o755)
    os.rename(tmp, path)


def log_lines(d, pattern):
    return re.findall(pattern, d.log(), re.M)


# --- daemon ------------------------------------------------------------------

def test_daemon_is_ready_once_started_with_its_pid(droverd):
    d = droverd("""
[service sleeper]
command = sleep 1000
""")
    st = d.wait_state("sleeper", "ready")
    assert st["mode"] == "daemon"
    assert st["want"] == "up"
    assert len(st["pids"]) == 1
    pid = int(st["pids"][0])
    assert os.readlink(f"/proc/{pid}/exe").endswith("/sleep")
    assert f"droverd: sleeper: started, pid {pid}\n" in d.log()
    assert st["restarts"] == 0
    assert st["last_exit"] == ""
    assert d.stop() == 0
    assert not process_exists(pid)


# --- oneshot -----------------------------------------------------------------

def test_oneshot_is_done_when_it_exits_zero(droverd):
    d = droverd("""
[service prep]
mode = oneshot
command = /bin/sh -c 'echo preparing; exit 0'
""")
    st = d.wait_state("prep", "done")
    assert st["mode"] == "oneshot"
    assert st["pids"] == []
    assert st["reason"] == "finished"
    assert st["last_exit"] == "exited with status 0"
    log = d.log()
    assert re.search(r"^prep\[\d+\]: preparing$", log, re.M)
    assert "droverd: prep: finished\n" in log


def test_oneshot_failure_is_not_retried_and_holds_back_dependents(droverd):
    d = droverd("""
[service prep]
mode = oneshot
command = /bin/sh -c 'echo ran >> @DIR@/events; exit 3'
restart_delay = 100ms

[service app]
command = sleep 1000
requires = prep
""")
    st = d.wait_state("prep", "failed")
    assert st["reason"] == "exited with status 3"
    assert st["last_exit"] == "exited with status 3"
    assert st["restarts"] == 0
    assert "droverd: warning: prep: exited with status 3; not restarting (restart = no)\n" in d.log()
    app = d.wait_state("app", "stopped")
    assert app["want"] == "down"
    assert app["pids"] == []
    assert app["reason"] == "stopped because prep stopped"
    assert "app: started" not in d.log()
    # Nothing scheduled: no next attempt.
    assert st["next_ms"] == -1
    assert events(d) == ["ran"]


def test_dependent_of_oneshot_starts_only_after_it_is_done(droverd):
    d = droverd("""
[service prep]
mode = oneshot
command = /bin/sh -c 'while [ ! -e @DIR@/go ]; do sleep 0.02; done; echo prep-done >> @DIR@/events'

[service app]
command = /bin/sh -c 'echo app-start >> @DIR@/events; exec sleep 1000'
requires = prep
""")
    prep = d.wait_state("prep", "starting")
    assert prep["reason"] == "running"
    assert len(prep["pids"]) == 1
    app = wait_for(lambda: (s := d.status("app"))["reason"] == "waiting for prep (starting)" and s,
                   what="app to wait for prep")
    assert app["state"] == "starting"
    assert app["pids"] == []
    assert events(d) == []
    touch(d, "go")
    d.wait_state("app", "ready")
    assert d.state("prep") == "done"
    assert events(d) == ["prep-done", "app-start"]
    log = d.log()
    assert log.index("droverd: prep: finished") < log.index("droverd: app: started")


# --- timer -------------------------------------------------------------------

def test_timer_every_runs_repeatedly_and_waits_between_runs(droverd):
    d = droverd("""
[service tick]
mode = timer
every = 1s
command = /bin/sh -c 'echo run >> @DIR@/events; echo ticked'
""")
    begin = time.monotonic()
    st = d.wait_state("tick", "waiting")
    assert st["mode"] == "timer"
    assert 0 <= st["next_ms"] <= 1000
    wait_for(lambda: len(events(d)) >= 3, timeout=10, what="three timer runs")
    elapsed = time.monotonic() - begin
    # Not more often than every second (a run at start, then one a second).
    assert len(events(d)) <= int(elapsed) + 1
    st = wait_for(lambda: (s := d.status("tick"))["state"] == "waiting" and s["last_exit"] and s,
                  what="the timer between runs")
    assert st["reason"] == "last run exited with status 0"
    assert st["pids"] == []
    assert 0 <= st["next_ms"] <= 1000
    assert len(log_lines(d, r"^droverd: tick: run started, pid \d+$")) >= 3
    assert len(log_lines(d, r"^droverd: tick: run exited with status 0$")) >= 3
    assert len(log_lines(d, r"^tick\[\d+\]: ticked$")) >= 3
    table = d.drover("status", "tick")
    assert table.rc == 0
    assert re.search(r"tick\s+timer\s+(waiting|running)\s", table.out), table.out


def test_timer_run_still_going_is_not_started_twice(droverd):
    d = droverd("""
[service slow]
mode = timer
every = 1s
command = /bin/sh -c 'echo run >> @DIR@/events; while [ ! -e @DIR@/go ]; do sleep 0.02; done'
""")
    st = d.wait_state("slow", "running")
    assert len(st["pids"]) == 1
    pid = int(st["pids"][0])
    d.wait_log(rf"droverd: warning: slow: previous run \(pid {pid}\) still going: this run is skipped")
    assert events(d) == ["run"]
    assert d.pids("slow") == [pid]
    touch(d, "go")
    st = wait_for(lambda: (s := d.status("slow"))["state"] == "waiting" and s["last_exit"] and s,
                  what="the run to end")
    assert st["reason"] == "last run exited with status 0"
    assert f"droverd: slow: run started, pid {pid}\n" in d.log()
    # The schedule goes on after the long run.
    wait_for(lambda: len(events(d)) >= 2, what="the next run")


def test_timer_at_shows_the_next_run(droverd):
    now = datetime.datetime.now()
    target = (now + datetime.timedelta(minutes=2)).replace(second=0, microsecond=0)
    later = target + datetime.timedelta(minutes=5)
    d = droverd(f"""
[service nightly]
mode = timer
at = {later:%H:%M}, {target:%H:%M}
command = /bin/sh -c 'echo run >> @DIR@/events'
""")
    st = d.wait_state("nightly", "waiting")
    expected_ms = (target - datetime.datetime.now()).total_seconds() * 1000
    assert 60000 - 3000 <= st["next_ms"] <= 120000 + 1000, st
    assert abs(st["next_ms"] - expected_ms) <= 2500, (st, expected_ms)
    assert st["pids"] == []
    table = d.drover("status")
    # (a CPU column where droverd tracks services in cgroups)
    assert re.search(r"nightly\s+timer\s+waiting\s+-\s+\S+\s+0\s+(\d+\.\ds\s+)?next run in (\d+s|[12]m\d+s)",
                     table.out), table.out
    assert events(d) == []


# --- requires / after ----------------------------------------------------------

def test_dependent_starts_only_after_requirement_is_ready(droverd):
    d = droverd("""
[service db]
command = /usr/bin/python3 @DIR@/notify.py
ready = notify

[service app]
command = /bin/sh -c 'echo app-start >> @DIR@/events; exec sleep 1000'
requires = db
""", start=False)
    write_notify_script(d)
    d.start()
    db = d.wait_state("db", "starting")
    assert db["reason"] == "waiting for READY=1"
    assert len(db["pids"]) == 1
    app = wait_for(lambda: (s := d.status("app"))["reason"] == "waiting for db (starting)" and s,
                   what="app to wait for db")
    assert app["state"] == "starting"
    assert app["pids"] == []
    let_ready(d, "db")
    d.wait_state("app", "ready")
    assert d.state("db") == "ready"
    assert events(d) == ["app-start"]
    log = d.log()
    assert log.index("droverd: db: ready") < log.index("droverd: app: started")


def test_after_orders_without_requiring(droverd):
    d = droverd("""
[service first]
mode = oneshot
command = /bin/sh -c 'while [ ! -e @DIR@/go ]; do sleep 0.02; done; echo first-end >> @DIR@/events; exit 1'

[service second]
command = /bin/sh -c 'echo second-start >> @DIR@/events; exec sleep 1000'
after = first
""")
    d.wait_state("first", "starting")
    second = wait_for(lambda: (s := d.status("second"))["reason"] == "waiting for first to start" and s,
                      what="second to wait for first")
    assert second["state"] == "starting"
    assert second["pids"] == []
    touch(d, "go")
    # `after` is order only: second starts even though first failed.
    d.wait_state("second", "ready")
    assert d.state("first") == "failed"
    assert events(d) == ["first-end", "second-start"]


def test_independent_services_start_in_parallel(droverd):
    # Each oneshot finishes only once it has seen the other one running:
    # started one after the other, neither would ever finish.
    d = droverd("""
[service left]
mode = oneshot
command = /bin/sh -c 'touch @DIR@/left.on; while [ ! -e @DIR@/right.on ]; do sleep 0.02; done'

[service right]
mode = oneshot
command = /bin/sh -c 'touch @DIR@/right.on; while [ ! -e @DIR@/left.on ]; do sleep 0.02; done'

[service top]
command = sleep 1000
requires = left
requires = right
""")
    d.wait_state("top", "ready")
    assert d.state("left") == "done"
    assert d.state("right") == "done"


# --- readiness -----------------------------------------------------------------

def test_ready_notify(droverd):
    d = droverd("""
[service svc]
command = /usr/bin/python3 @DIR@/notify.py "serving 3 clients"
ready = notify
""", start=False)
    write_notify_script(d)
    d.start()
    st = d.wait_state("svc", "starting")
    assert st["reason"] == "waiting for READY=1"
    pid = st["pids"][0]
    let_ready(d, "svc")
    st = d.wait_state("svc", "ready")
    assert st["pids"] == [pid]
    assert st["status"] == "serving 3 clients"
    assert st["reason"] == ""
    assert "droverd: svc: ready\n" in d.log()


def test_ready_from_a_process_droverd_did_not_start_is_ignored(droverd):
    d = droverd("""
[service svc]
command = /usr/bin/python3 @DIR@/notify.py
ready = notify
""", start=False)
    write_notify_script(d)
    d.start()
    d.wait_state("svc", "starting")
    name = wait_for(lambda: (d.dir / "notify.sock").read_text(), what="the service's NOTIFY_SOCKET")
    assert name.startswith("@")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"READY=1", "\0" + name[1:])
    s.close()
    d.wait_log(rf"droverd: warning: notify: message from pid {os.getpid()}, which is not a process "
               r"droverd started: ignored")
    st = d.status("svc")
    assert st["state"] == "starting"
    assert st["reason"] == "waiting for READY=1"
    let_ready(d, "svc")
    d.wait_state("svc", "ready")


def test_ready_timeout_stops_and_backs_off(droverd):
    d = droverd("""
[service mute]
command = /bin/sh -c 'echo start >> @DIR@/events; exec sleep 1000'
ready = notify
ready_timeout = 300ms
restart_delay = 2s
""")
    d.wait_log(r"droverd: warning: mute: not ready within 300ms: stopping it\n")
    # The backoff lasts restart_delay: long enough to be seen on a slow
    # machine (1s was missed once under ASan).
    st = d.wait_state("mute", "backoff")
    assert st["reason"] == "not ready within 300ms; restarting in 2s"
    assert 0 <= st["next_ms"] <= 2000
    assert st["pids"] == []
    log = d.log()
    assert "droverd: warning: mute: not ready within 300ms; restarting in 2s\n" in log
    assert re.search(r"droverd: mute: pid \d+ killed by signal 15 \(TERM\)\n", log)
    # It is tried again, and times out again.
    d.wait_log(r"droverd: warning: mute: not ready within 300ms; restarting in 4s\n")
    assert events(d) == ["start", "start"]
    assert "droverd: mute: ready" not in d.log()


# --- restart policies and backoff ---------------------------------------------------

def test_restart_always_restarts_a_clean_exit(droverd):
    d = droverd("""
[service loop]
command = /bin/sh -c 'echo run >> @DIR@/events; [ $(wc -l < @DIR@/events) -ge 3 ] && exec sleep 1000; exit 0'
restart_delay = 100ms
""")
    wait_for(lambda: len(events(d)) >= 3, what="three runs")
    st = d.wait_state("loop", "ready")
    assert st["restarts"] == 2
    assert len(log_lines(d, r"^droverd: warning: loop: exited with status 0; restarting in \S+$")) == 2


def test_restart_on_failure(droverd):
    d = droverd("""
[service job]
command = /bin/sh -c 'echo run >> @DIR@/events; [ $(wc -l < @DIR@/events) -ge 2 ] && exit 0; exit 1'
restart = on-failure
restart_delay = 100ms
""")
    st = wait_for(lambda: (s := d.status("job"))["state"] == "stopped" and s, what="job to stop")
    assert events(d) == ["run", "run"]
    assert st["reason"] == "exited with status 0"
    assert st["want"] == "down"
    log = d.log()
    assert "droverd: warning: job: exited with status 1; restarting in 100ms\n" in log
    assert "droverd: warning: job: exited with status 0; not restarting (restart = on-failure)\n" in log


def test_restart_no(droverd):
    d = droverd("""
[service bad]
command = /bin/sh -c 'exit 4'
restart = no

[service good]
command = /bin/sh -c 'exit 0'
restart = no
""")
    bad = d.wait_state("bad", "failed")
    good = d.wait_state("good", "stopped")
    assert bad["reason"] == "exited with status 4"
    assert good["reason"] == "exited with status 0"
    assert bad["restarts"] == good["restarts"] == 0
    log = d.log()
    assert "droverd: warning: bad: exited with status 4; not restarting (restart = no)\n" in log
    assert "droverd: warning: good: exited with status 0; not restarting (restart = no)\n" in log
    assert len(log_lines(d, r"^droverd: bad: started, pid \d+$")) == 1


def test_backoff_doubles_up_to_the_cap(droverd):
    d = droverd("""
[service flap]
command = /bin/sh -c 'exit 1'
restart_delay = 100ms
restart_delay_max = 800ms
""")
    pat = r"^droverd: warning: flap: exited with status 1; restarting in (\S+)$"
    wait_for(lambda: len(log_lines(d, pat)) >= 6, timeout=15, what="six failures")
    assert log_lines(d, pat)[:6] == ["100ms", "200ms", "400ms", "800ms", "800ms", "800ms"]
    st = wait_for(lambda: (s := d.status("flap"))["state"] == "backoff"
                  and s["reason"].endswith("restarting in 800ms") and s,
                  what="flap in backoff")
    assert st["reason"] == "exited with status 1; restarting in 800ms"
    assert 0 <= st["next_ms"] <= 800
    assert st["pids"] == []
    assert st["restarts"] >= 5
    table = d.drover("status", "flap")
    assert re.search(r"flap\s+daemon\s+(backoff|ready)\s", table.out), table.out


def test_backoff_resets_after_min_uptime(droverd):
    # Runs 1, 2 and 4 fail at once; run 3 lives longer than min_uptime.
    d = droverd("""
[service flap]
command = /bin/sh -c 'echo run >> @DIR@/events; n=$(wc -l < @DIR@/events); [ $n -eq 3 ] && sleep 0.6; [ $n -ge 5 ] && exec sleep 1000; exit 1'
restart_delay = 100ms
restart_delay_max = 10s
min_uptime = 300ms
""")
    # ready = none: each run is ready at once; the fifth one stays.
    wait_for(lambda: len(events(d)) >= 5, timeout=15, what="five runs")
    d.wait_state("flap", "ready")
    pat = r"^droverd: warning: flap: exited with status 1; restarting in (\S+)$"
    assert log_lines(d, pat) == ["100ms", "200ms", "100ms", "200ms"]


def test_missing_binary_is_retried_forever_and_starts_once_installed(droverd):
    d = droverd("""
[service late]
command = @DIR@/bin/late
restart_delay = 100ms
restart_delay_max = 200ms
""")
    binpath = d.dir / "bin" / "late"
    msg = f"cannot exec {binpath}: No such file or directory"
    pat = rf"^droverd: warning: late: {re.escape(msg)}; restarting in 200ms$"
    wait_for(lambda: len(log_lines(d, pat)) >= 6, timeout=15, what="many retries at the cap")
    assert f"droverd: error: late: {msg}\n" in d.log()
    assert d.state("late") == "backoff"
    assert "not restarting" not in d.log()
    binpath.parent.mkdir()
    install_executable(binpath, "#!/bin/sh\nexec sleep 1000\n")
    st = d.wait_state("late", "ready")
    assert len(st["pids"]) == 1


def test_start_retries_a_backing_off_service_at_once(droverd):
    d = droverd("""
[service late]
command = @DIR@/bin/late
restart_delay = 60s
restart_delay_max = 60s
""")
    binpath = d.dir / "bin" / "late"
    st = d.wait_state("late", "backoff")
    assert st["reason"] == f"cannot exec {binpath}: No such file or directory; restarting in 1m"
    assert 50000 <= st["next_ms"] <= 60000
    table = d.drover("status", "late")
    assert "(next attempt in " in table.out, table.out
    # Still missing: the retry happens at once and its failure is reported.
    r = d.drover("start", "late")
    assert r.rc == 1, r
    assert r.err == (f"drover: late is backoff: cannot exec {binpath}: No such file or directory; "
                     "restarting in 1m\n")
    binpath.parent.mkdir()
    install_executable(binpath, "#!/bin/sh\nexec sleep 1000\n")
    r = d.drover("start", "late")
    assert r.rc == 0, r
    st = d.status("late")
    assert st["state"] == "ready"
    assert len(st["pids"]) == 1


# --- start / stop / restart requests -----------------------------------------------

def test_start_pulls_in_requirements(droverd):
    d = droverd("""
[service db]
command = /bin/sh -c 'echo db-start >> @DIR@/events; exec sleep 1000'
start = manual

[service app]
command = /bin/sh -c 'echo app-start >> @DIR@/events; exec sleep 1000'
requires = db
start = manual

[service other]
command = sleep 1000
start = manual
""")
    for name in ("db", "app", "other"):
        st = d.status(name)
        assert (st["state"], st["want"], st["pids"]) == ("stopped", "down", [])
    r = d.drover("start", "app")
    assert r.rc == 0, r
    assert r.out == ""
    assert d.state("app") == "ready"
    assert d.state("db") == "ready"
    assert d.status("other")["state"] == "stopped"
    # ready = none: db is ready once started, so only the starts are ordered.
    assert sorted(events(d)) == ["app-start", "db-start"]
    log = d.log()
    assert log.index("droverd: db: started, pid") < log.index("droverd: app: started, pid")


def test_start_reports_a_requirement_that_fails(droverd):
    d = droverd("""
[service prep]
mode = oneshot
command = /bin/sh -c 'exit 1'
start = manual

[service app]
command = sleep 1000
requires = prep
start = manual
""")
    r = d.drover("start", "app")
    assert r.rc == 1, r
    assert r.err == "drover: app is stopped: stopped because prep stopped\n"
    assert d.state("prep") == "failed"
    assert d.state("app") == "stopped"


def test_start_unknown_service(droverd):
    d = droverd("""
[service a]
command = sleep 1000
""")
    r = d.drover("start", "nope")
    assert r.rc == 1
    assert r.err == 'drover: unknown service "nope"\n'


def test_stop_pushes_down_dependents_first(droverd):
    d = droverd("""
[service db]
command = /bin/sh -c 'trap "echo db-term >> @DIR@/events; exit 0" TERM; sleep 1000 & wait'

[service app]
command = /bin/sh -c 'trap "echo app-term >> @DIR@/events; sleep 0.3; echo app-exit >> @DIR@/events; exit 0" TERM; sleep 1000 & wait'
requires = db

[service bystander]
command = sleep 1000
""")
    d.wait_state("app", "ready")
    d.wait_state("bystander", "ready")
    r = d.drover("stop", "db")
    assert r.rc == 0, r
    db, app = d.status("db"), d.status("app")
    assert (db["state"], db["want"], db["pids"]) == ("stopped", "down", [])
    assert (app["state"], app["want"], app["pids"]) == ("stopped", "down", [])
    assert app["reason"] == "stopped because db stopped"
    assert db["reason"] == "stopped by request"
    assert events(d) == ["app-term", "app-exit", "db-term"]
    assert d.state("bystander") == "ready"


def test_stop_of_a_stopped_service_succeeds(droverd):
    d = droverd("""
[service idle]
command = sleep 1000
start = manual
""")
    r = d.drover("stop", "idle")
    assert r.rc == 0, r
    assert d.state("idle") == "stopped"


def test_graceful_shutdown_stops_in_reverse_dependency_order(droverd):
    slow_trap = ('trap "echo {n}-term >> @DIR@/events; sleep 0.2; echo {n}-exit >> @DIR@/events; exit 0" TERM; '
                 'sleep 1000 & wait')
    d = droverd(f"""
[service base]
command = /bin/sh -c '{slow_trap.format(n="base")}'

[service mid]
command = /bin/sh -c '{slow_trap.format(n="mid")}'
requires = base

[service top]
command = /bin/sh -c '{slow_trap.format(n="top")}'
after = mid
""")
    d.wait_state("top", "ready")
    assert d.stop(signal.SIGTERM) == 0
    assert events(d) == ["top-term", "top-exit", "mid-term", "mid-exit", "base-term", "base-exit"]
    log = d.log()
    assert "droverd: shutting down: stopping every service\n" in log
    assert "droverd: every process has stopped; exiting with status 0\n" in log


def test_requirement_restarting_after_a_crash_leaves_dependents_running(droverd):
    d = droverd("""
[service db]
command = sleep 1000
restart_delay = 100ms

[service app]
command = sleep 1000
requires = db
""")
    db = d.wait_state("db", "ready")
    app = d.wait_state("app", "ready")
    r = d.drover("signal", "db", "KILL")
    assert r.rc == 0, r
    d.wait_log(r"droverd: warning: db: killed by signal 9 \(KILL\); restarting in 100ms\n")
    db2 = wait_for(lambda: (s := d.status("db"))["state"] == "ready" and s["pids"] != db["pids"] and s,
                   what="db to be restarted")
    assert db2["restarts"] == 1
    assert d.status("app")["pids"] == app["pids"]
    assert d.status("app")["state"] == "ready"


def test_requirement_ending_for_good_stops_dependents(droverd):
    d = droverd("""
[service db]
command = sleep 1000
restart = no

[service app]
command = sleep 1000
requires = db
""")
    d.wait_state("db", "ready")
    app = d.wait_state("app", "ready")
    r = d.drover("signal", "db", "KILL")
    assert r.rc == 0, r
    db = d.wait_state("db", "failed")
    assert db["reason"] == "killed by signal 9 (KILL)"
    st = d.wait_state("app", "stopped")
    assert st["want"] == "down"
    assert st["reason"] == "stopped because db stopped"
    assert not process_exists(int(app["pids"][0]))


def test_restart_of_a_dependent_leaves_its_requirement_alone(droverd):
    d = droverd("""
[service db]
command = sleep 1000

[service app]
command = sleep 1000
requires = db
""")
    db = d.wait_state("db", "ready")
    app = d.wait_state("app", "ready")
    r = d.drover("restart", "app")
    assert r.rc == 0, r
    app2, db2 = d.status("app"), d.status("db")
    assert app2["state"] == "ready"
    assert app2["pids"] != app["pids"] and len(app2["pids"]) == 1
    assert app2["restarts"] == 1
    assert db2["pids"] == db["pids"]
    assert db2["restarts"] == 0
    assert db2["state"] == "ready"
    assert not process_exists(int(app["pids"][0]))


# --- critical ---------------------------------------------------------------------------

CRITICAL_BYSTANDER = """
[service other]
command = /bin/sh -c 'trap "echo other-term >> @DIR@/events; exit 0" TERM; sleep 1000 & wait'
"""


def test_critical_oneshot_failure_shuts_down_with_its_status(droverd):
    d = droverd(CRITICAL_BYSTANDER + """
[service job]
mode = oneshot
command = /bin/sh -c 'while [ ! -e @DIR@/go ]; do sleep 0.02; done; exit 7'
critical = yes
""")
    d.wait_state("other", "ready")
    d.wait_state("job", "starting")
    touch(d, "go")
    assert d.wait_exit() == 7
    log = d.log()
    assert "droverd: job: critical service ended (exited with status 7): shutting down\n" in log
    assert "droverd: every process has stopped; exiting with status 7\n" in log
    assert events(d) == ["other-term"]


def test_critical_oneshot_success_shuts_down_with_zero(droverd):
    d = droverd(CRITICAL_BYSTANDER + """
[service job]
mode = oneshot
command = /bin/sh -c 'while [ ! -e @DIR@/go ]; do sleep 0.02; done; exit 0'
critical = yes
""")
    d.wait_state("other", "ready")
    touch(d, "go")
    assert d.wait_exit() == 0
    assert "droverd: job: critical service ended (finished): shutting down\n" in d.log()
    assert events(d) == ["other-term"]


def test_critical_daemon_exit_status(droverd):
    d = droverd(CRITICAL_BYSTANDER + """
[service main]
command = /bin/sh -c 'while [ ! -e @DIR@/go ]; do sleep 0.02; done; exit 7'
critical = yes
restart = no
""")
    d.wait_state("main", "ready")
    d.wait_state("other", "ready")
    touch(d, "go")
    assert d.wait_exit() == 7
    assert "droverd: main: critical service ended (exited with status 7): shutting down\n" in d.log()
    assert events(d) == ["other-term"]


def test_critical_daemon_killed_by_signal(droverd):
    d = droverd(CRITICAL_BYSTANDER + """
[service main]
command = sleep 1000
critical = yes
restart = no
""")
    d.wait_state("main", "ready")
    d.wait_state("other", "ready")
    r = d.drover("signal", "main", "KILL")
    assert r.rc == 0, r
    assert d.wait_exit() == 128 + signal.SIGKILL
    assert ("droverd: main: critical service ended (killed by signal 9 (KILL)): shutting down\n"
            in d.log())
    assert events(d) == ["other-term"]


# --- drover wait ---------------------------------------------------------------------------

def test_wait_returns_when_ready(droverd):
    d = droverd("""
[service svc]
command = /usr/bin/python3 @DIR@/notify.py
ready = notify
""", start=False)
    write_notify_script(d)
    d.start()
    d.wait_state("svc", "starting")
    waiter = subprocess.Popen([str(DROVER), "wait", "svc", "--timeout", "20s"],
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                   "DROVER_SOCKET": str(d.sock)},
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        # droverd has accepted the waiter's connection: the listener and
        # the accepted socket both show the control socket's path.
        wait_for(lambda: control_connections(d) >= 2, what="the waiter to connect")
        assert waiter.poll() is None
        let_ready(d, "svc")
        out, err = waiter.communicate(timeout=20 * SLOW)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    assert d.state("svc") == "ready"
    r = d.drover("wait", "svc")
    assert r.rc == 0, r


def test_wait_times_out(droverd):
    d = droverd("""
[service svc]
command = sleep 1000
ready = notify
""")
    d.wait_state("svc", "starting")
    begin = time.monotonic()
    r = d.drover("wait", "svc", "--timeout", "500ms")
    assert time.monotonic() - begin >= 0.45
    assert r.rc == 1, r
    assert r.err == "drover: timed out: svc is starting: waiting for READY=1\n"


def test_wait_on_a_stopped_service_fails_at_once(droverd):
    d = droverd("""
[service idle]
command = sleep 1000
start = manual

[service broken]
mode = oneshot
command = /bin/sh -c 'exit 2'
""")
    r = d.drover("wait", "idle", "--timeout", "60s")
    assert r.rc == 1, r
    assert r.err == "drover: idle is stopped and not going to start (drover start idle)\n"
    d.wait_state("broken", "failed")
    r = d.drover("wait", "broken")
    assert r.rc == 1, r
    assert r.err == "drover: broken is failed and not going to start (drover start broken)\n"
    r = d.drover("wait", "nope")
    assert r.rc == 1
    assert r.err == 'drover: unknown service "nope"\n'
