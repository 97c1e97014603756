"""Health probes (SPEC 3a): tcp, http and exec probes against real servers
on 127.0.0.1 (helpers_probe.ProbeServer), what an unhealthy service gets
(a daemon is restarted with the backoff, a prefork pool rolls to a new
generation), health_start_period, ready = health, reload of the probe
settings, and the errors of bad probe configuration.

Every wait is on a condition; times are measured, never slept. Probes run
every 100-300 ms so that a test takes a few seconds.
"""
import json
import re
import shutil
import socket
import threading
import time

import pytest

from conftest import DROVERD, SLOW, free_port, process_exists, wait_for
from helpers_control import NOBODY, run
from helpers_net import HELLO
from helpers_probe import ProbeServer


@pytest.fixture
def servers():
    """Factory of ProbeServers, all stopped at the end of the test."""
    made = []

    def make(mode="ok"):
        s = ProbeServer(mode)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


DEFAULTS = {"health_interval": "200ms", "restart_delay": "100ms"}


def svc(health, name="web", extra="", command="/bin/sleep 1000"):
    """A probed daemon; extra's keys replace DEFAULTS."""
    keys = {line.split("=")[0].strip() for line in extra.splitlines() if "=" in line}
    dflt = "".join(f"{k} = {v}\n" for k, v in DEFAULTS.items() if k not in keys)
    return f"""
[service {name}]
command = {command}
health = {health}
{dflt}{extra}
"""


def restarts(d, name="web"):
    return d.status(name)["restarts"]


def wait_status(d, cond, what, name="web", timeout=10):
    """The first status record of name for which cond(record) holds (one
    snapshot: a service may move on between two status calls)."""
    def check():
        st = d.status(name)
        return cond(st) and st
    return wait_for(check, timeout, what=f"{what} (it is {d._safe_state(name)})\n--- log:\n{d.log()}")


def wait_health(d, health, name="web", timeout=10):
    return wait_status(d, lambda st: st.get("health") == health, f"{name} to be {health}", name, timeout)


def wait_restarted(d, name="web", at_least=1, timeout=10):
    return wait_status(d, lambda st: st["restarts"] >= at_least, f"{name} restarted {at_least} times",
                       name, timeout)


def unhealthy_line(name, retries, why, then="restarting it"):
    return (f"{name}: unhealthy ({retries} probes failed in a row, the last: {why}): {then}")


def ready_pid(d, name="web"):
    st = d.wait_state(name, "ready")
    assert len(st["pids"]) == 1, st
    return st["pids"][0]


# --- tcp ------------------------------------------------------------------------

def test_tcp_probe_restarts_when_the_port_closes_and_recovers(droverd, servers):
    srv = servers()
    why = f"tcp:127.0.0.1:{srv.port}: cannot connect: Connection refused"
    d = droverd(svc(f"tcp:127.0.0.1:{srv.port}", extra="health_retries = 3\nrestart_delay = 3s\n"))
    pid = ready_pid(d)
    st = wait_health(d, "healthy")
    assert st["health_text"] == "" and st["restarts"] == 0, st
    d.wait_log(r"(?m)^droverd: web: healthy$")
    assert srv.count() >= 1

    srv.stop_listening()
    d.wait_log(re.escape(unhealthy_line("web", 3, why)))
    st = wait_status(d, lambda st: st["state"] == "backoff", "web in backoff")
    assert st["reason"] == f"unhealthy: {why}; restarting in 3s", st
    assert st["health"] == "unhealthy" and st["health_text"] == why, st
    assert st["restarts"] == 0, st	# counted when it starts again
    assert not process_exists(pid)
    # the table shows it too
    r = d.drover("status")
    assert r.rc == 0 and "HEALTH" in r.out.splitlines()[0], r
    assert re.search(r"(?m)^web\s+daemon\s+backoff\s+unhealthy\s", r.out), r.out

    srv.listen_again()
    st = wait_health(d, "healthy")
    assert st["state"] == "ready" and st["pids"] and st["pids"][0] != pid, st
    assert st["health_text"] == "" and st["restarts"] == 1, st


# --- http -----------------------------------------------------------------------

def test_http_probe_sends_get_path_http10_with_host(droverd, servers):
    srv = servers()
    d = droverd(svc(f"http://127.0.0.1:{srv.port}/healthz?full=1"))
    wait_health(d, "healthy")
    wait_for(lambda: srv.count() >= 2, what="a second probe")
    line, headers = srv.requests[0]
    assert line == "GET /healthz?full=1 HTTP/1.0", srv.requests
    assert headers["host"] == f"127.0.0.1:{srv.port}", headers
    assert d.status("web")["restarts"] == 0


# (mode, health_timeout, the text after "http://127.0.0.1:PORT/x: ")
FAILURES = {
    "error": ("500ms", "status 500 Internal Server Error"),
    "trickle": ("500ms", "no status line within 500ms"),
    "reset": ("500ms", "cannot read: Connection reset by peer"),
    "garbage": ("500ms", 'not an HTTP status line: "\\x1b[2J\\x1b]0;owned\\x07SSH-2.0-OpenSSH_9.2"'),
    "close": ("500ms", "connection closed before a status line"),
}


@pytest.mark.parametrize("mode", sorted(FAILURES))
def test_http_failure_makes_it_unhealthy_and_restarts_it(droverd, servers, mode):
    timeout, text = FAILURES[mode]
    srv = servers()
    url = f"http://127.0.0.1:{srv.port}/x"
    why = f"{url}: {text}"
    d = droverd(svc(url, extra=f"health_interval = 500ms\nhealth_timeout = {timeout}\n"
                               "health_retries = 2\nrestart_delay = 500ms\n"))
    pid = ready_pid(d)
    wait_health(d, "healthy")

    srv.mode = mode
    st = wait_health(d, "unhealthy")
    assert st["health_text"] == why, st
    d.wait_log(re.escape(unhealthy_line("web", 2, why)))
    wait_restarted(d)
    assert not process_exists(pid)
    # never a raw escape byte, in the table or droverd's log
    r = d.drover("status")
    assert r.rc == 0 and "\x1b" not in r.out and "\x07" not in r.out, r
    assert "\x1b" not in d.log()

    srv.mode = "ok"
    st = wait_health(d, "healthy")
    assert st["state"] == "ready" and st["pids"][0] != pid, st


@pytest.mark.parametrize("mode", ["hang", "trickle"])
def test_a_slow_server_never_delays_droverd(droverd, servers, mode):
    srv = servers(mode)
    url = f"http://127.0.0.1:{srv.port}/"
    d = droverd(svc(url, extra="health_interval = 1s\nhealth_timeout = 1s\nhealth_retries = 3\n"
                               "restart_delay = 1s\n"))
    wait_for(lambda: srv.open_connections() >= 1, what=f"a {mode} probe")
    # Every status call answers promptly while probes hang or trickle, until the
    # service has been found unhealthy (3 probes of 1 s: about 3 s).
    worst = 0.0
    calls = 0
    begin = time.monotonic()
    while True:
        t0 = time.monotonic()
        r = d.drover("status", "--json")
        took = time.monotonic() - t0
        assert r.rc == 0, r
        assert took < 0.5 * SLOW, f"a status call took {took:.3f}s during a {mode} probe"
        worst = max(worst, took)
        calls += 1
        if json.loads(r.out)[0]["restarts"]:
            break
        assert time.monotonic() - begin < 20 * SLOW, "never found unhealthy"
    assert calls >= 3, calls
    why = f"{url}: no status line within 1s"
    d.wait_log(re.escape(unhealthy_line("web", 3, why)))
    st = wait_status(d, lambda st: st["state"] == "backoff", "web in backoff")
    assert st["health"] == "unhealthy" and st["health_text"] == why, st
    # droverd closed each hanging connection at its timeout: none piles up
    assert srv.open_connections() <= 1


# --- exec -----------------------------------------------------------------------

def test_exec_probe_exit_status_is_a_failure(droverd):
    probe = "exec:/bin/sh -c 'exit 1'"
    d = droverd(svc(probe, extra="health_retries = 2\nrestart_delay = 500ms\n"))
    st = wait_health(d, "unhealthy")
    assert st["health_text"] == f"{probe}: exited with status 1", st
    d.wait_log(re.escape(unhealthy_line("web", 2, f"{probe}: exited with status 1")))
    wait_restarted(d)


def test_exec_probe_passes(droverd):
    d = droverd(svc("exec:/bin/true"))
    st = wait_health(d, "healthy")
    assert st["health_text"] == "" and st["restarts"] == 0, st


def test_exec_probe_killed_at_timeout_with_its_process_group(droverd, tmp_path):
    kids = tmp_path / "kids"
    probe = f"exec:/bin/sh -c 'sleep 30 & echo $! >> {kids}; wait'"
    extra = "health_interval = 300ms\nhealth_timeout = 300ms\nrestart_delay = 1s\n"
    # Many retries first: nothing stops the service (and its cgroup), so
    # only the probe's own kill can end its child.
    d = droverd(svc(probe, extra=extra + "health_retries = 1000\n"))
    pid = ready_pid(d)
    why = f"{probe}: no exit within 300ms: killed"
    wait_for(lambda: kids.exists() and len(kids.read_text().split()) >= 3, what="three probes")
    pids = [int(x) for x in kids.read_text().split()]
    wait_for(lambda: not any(process_exists(p) for p in pids[:-1]),
             what=f"the children {pids[:-1]} of killed probes to be gone")
    st = d.status("web")
    assert st["health_text"] == why and st["health"] == "starting", st
    assert st["pids"] == [pid] and st["restarts"] == 0, st

    # and each counts as a failure
    d.write_config(svc(probe, extra=extra + "health_retries = 2\n"))
    r = d.drover("reload")
    assert r.rc == 0 and "updated   web" in r.out, r
    st = wait_health(d, "unhealthy")
    assert st["health_text"] == why, st
    d.wait_log(re.escape(unhealthy_line("web", 2, why)))
    wait_restarted(d)


def test_exec_probe_runs_with_the_services_user_and_environment(droverd):
    probe = "exec:/bin/sh -c 'echo probe-uid=$(id -u) key=$PROBE_KEY'"
    d = droverd(svc(probe, extra="user = nobody\nenv = PROBE_KEY=hello-probe\n"))
    wait_health(d, "healthy")
    d.wait_log(rf"(?m)web\[\d+\]: probe-uid={NOBODY} key=hello-probe$")


def test_exec_probe_whose_program_went_away_fails_as_a_probe(droverd, tmp_path):
    # At load time the program could run (else the configuration is
    # refused, see BAD below); removed afterwards, each probe says why.
    prog = tmp_path / "probe"
    shutil.copy("/bin/true", prog)
    d = droverd(svc(f"exec:{prog}", extra="health_retries = 2\nrestart_delay = 500ms\n"))
    wait_health(d, "healthy")
    prog.unlink()
    st = wait_health(d, "unhealthy")
    assert st["health_text"].startswith(f"exec:{prog}: "), st
    assert "No such file or directory" in st["health_text"], st
    d.wait_log(re.escape(unhealthy_line("web", 2, st["health_text"])))
    wait_restarted(d)


def test_never_two_exec_probes_at_once(droverd, tmp_path):
    started, overlap = tmp_path / "started", tmp_path / "overlap"
    # Each probe checks whether an earlier one is still alive, then takes
    # 500 ms to pass: four of five probes due every 100 ms find the last
    # one running (health_timeout may exceed health_interval).
    probe = (f"exec:/bin/sh -c 'for p in $(cat {started}); do kill -0 $p 2>/dev/null && "
             f"echo $p >> {overlap}; done; echo $$ >> {started}; sleep 0.5'")
    d = droverd(svc(probe, extra="health_interval = 100ms\nhealth_timeout = 5s\n"))
    wait_for(lambda: started.exists() and started.read_text(), what="a first probe")
    t0 = time.monotonic()
    wait_for(lambda: len(started.read_text().split()) >= 5, what="five probes")
    took = time.monotonic() - t0
    assert not overlap.exists(), (overlap.read_text(), d.log())
    # the second, third and fourth ran whole between: one after the other,
    # not one per 100 ms
    assert took >= 3 * 0.5, took
    st = d.status("web")
    assert st["health"] == "healthy" and st["restarts"] == 0, st


# --- health_start_period ------------------------------------------------------------

def test_failures_within_start_period_do_not_count(droverd, servers):
    srv = servers("error")
    d = droverd(svc(f"http://127.0.0.1:{srv.port}/",
                    extra="health_retries = 2\nhealth_start_period = 1500ms\nrestart_delay = 1s\n"))
    pid = ready_pid(d)
    wait_for(lambda: srv.count() >= 4, what="four failed probes")
    st = d.status("web")
    assert st["restarts"] == 0 and st["pids"] == [pid], st
    assert st["health"] == "starting" and "status 500" in st["health_text"], st
    wait_restarted(d)
    # 1.5 s of probes every 200 ms did not count, then 2 more did: without
    # the start period it would have been restarted after the second
    assert srv.count() >= 7, srv.count()


# --- ready = health -----------------------------------------------------------------

def test_ready_health_gates_dependents(droverd, servers):
    srv = servers("error")
    d = droverd(svc(f"http://127.0.0.1:{srv.port}/", name="db",
                    extra="ready = health\nhealth_retries = 2\nready_timeout = 30s\n") + """
[service app]
command = /bin/sleep 1001
requires = db
""")
    wait_for(lambda: srv.count() >= 4, what="four failed probes")
    db, app = d.status("db"), d.status("app")
    assert db["state"] == "starting" and db["reason"] == "waiting for a passing probe", db
    assert db["restarts"] == 0 and db["health"] == "starting", db
    assert app["state"] == "starting" and app["pids"] == [], app
    srv.mode = "ok"
    d.wait_state("db", "ready")
    d.wait_log(r"(?m)^droverd: db: ready \(its probe passed\)$")
    st = d.wait_state("app", "ready")
    assert len(st["pids"]) == 1, st
    assert d.status("db")["health"] == "healthy"


def test_ready_health_timeout_is_a_failed_start(droverd, servers):
    srv = servers("error")
    d = droverd(svc(f"http://127.0.0.1:{srv.port}/", name="db",
                    extra="ready = health\nready_timeout = 1s\nrestart_delay = 2s\n"))
    d.wait_log(r"(?m)^droverd: warning: db: not ready within 1s: stopping it$")
    st = d.wait_state("db", "backoff")
    assert st["reason"] == "not ready within 1s; restarting in 2s", st
    wait_restarted(d, "db")
    assert "unhealthy (" not in d.log()


def test_pool_ready_health_timeout_is_a_failed_start(droverd, servers):
    # A prefork pool waiting for its probe: ready_timeout fails its start,
    # its workers stop, it backs off and starts again.
    srv = servers("error")
    port = free_port()
    d = droverd(f"""
[service pool]
mode = prefork
command = {HELLO}
listen = tcp:127.0.0.1:{port}
procs = 2
health = http://127.0.0.1:{srv.port}/
health_interval = 200ms
ready = health
ready_timeout = 1s
restart_delay = 1s
""")
    first = set(d.wait_state("pool", "starting")["pids"])
    d.wait_log(r"(?m)^droverd: warning: pool: not ready within 1s: stopping it$")
    st = d.wait_state("pool", "backoff")
    assert st["reason"] == "not ready within 1s; restarting in 1s", st
    assert st["pids"] == [], st
    st = wait_restarted(d, "pool")
    srv.mode = "ok"
    st = d.wait_state("pool", "ready")
    assert not first & set(st["pids"]), st
    assert "unhealthy (" not in d.log()


# --- backoff ----------------------------------------------------------------------

def test_a_probe_that_always_fails_backs_off(droverd, servers):
    srv = servers("error")
    d = droverd(svc(f"http://127.0.0.1:{srv.port}/",
                    extra="health_interval = 100ms\nhealth_timeout = 100ms\nhealth_retries = 1\n"
                          "restart_delay = 100ms\nrestart_delay_max = 1s\n"))
    t0 = time.monotonic()
    wait_restarted(d, at_least=5, timeout=20)
    took = time.monotonic() - t0
    # delays 100 + 200 + 400 + 800 ms at least before the fifth restart; a
    # loop would be there in milliseconds
    assert took >= 1.4, took
    times = srv.accept_times()
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[-1] >= 0.7 and gaps[-1] > 3 * gaps[0], gaps
    assert d.status("web")["restarts"] <= 8


# --- prefork --------------------------------------------------------------------------

def client_loop(port, stop, seen):
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW) as c:
                c.sendall(b"GET / HTTP/1.0\r\n\r\n")
                data = b""
                while True:
                    b = c.recv(65536)
                    if not b:
                        break
                    data += b
            if data.startswith(b"HTTP/1.1 200"):
                seen["ok"] += 1
            else:
                seen["bad"].append(data[:80])
        except OSError as e:
            seen["bad"].append(repr(e))


def test_unhealthy_pool_rolls_to_a_new_generation_without_refusing(droverd, servers):
    srv = servers()
    port = free_port()
    d = droverd(f"""
[service pool]
mode = prefork
command = {HELLO}
listen = tcp:127.0.0.1:{port}
procs = 2
health = http://127.0.0.1:{srv.port}/
health_interval = 200ms
health_retries = 2
""")
    st = wait_health(d, "healthy", name="pool")
    gen = st["generation"]
    old = set(st["pids"])
    stop = threading.Event()
    seen = {"ok": 0, "bad": []}
    t = threading.Thread(target=client_loop, args=(port, stop, seen), daemon=True)
    t.start()
    try:
        wait_for(lambda: seen["ok"] >= 20, what="client traffic")
        srv.mode = "error"
        why = f"http://127.0.0.1:{srv.port}/: status 500 Internal Server Error"
        d.wait_log(re.escape(unhealthy_line("pool", 2, why, "rolling to a new generation")))
        st = wait_status(d, lambda st: st["generation"] > gen, "a new generation", "pool")
        assert st["restarts"] >= 1, st
        srv.mode = "ok"
        wait_health(d, "healthy", name="pool")
        wait_status(d, lambda st: not old & set(st["pids"]), f"the old workers {old} gone", "pool")
        n = seen["ok"]
        wait_for(lambda: seen["ok"] >= n + 20, what="more client traffic")
    finally:
        stop.set()
        t.join(10 * SLOW)
    assert not seen["bad"], seen["bad"][:5]


# --- reload ---------------------------------------------------------------------------

def test_reload_changes_probe_settings_live_and_removes_the_probe(droverd, servers):
    a, b, clock = servers(), servers(), servers()
    d = droverd(svc(f"tcp:127.0.0.1:{a.port}") +
                svc(f"tcp:127.0.0.1:{clock.port}", name="clock", command="/bin/sleep 1001"))
    pid = ready_pid(d)
    wait_health(d, "healthy")
    updated = ("reloaded: 0 added, 0 removed, 0 replaced, 1 updated, 1 unchanged\n"
               "  updated   web\n")
    clock_conf = svc(f"tcp:127.0.0.1:{clock.port}", name="clock", command="/bin/sleep 1001")

    # a new interval
    d.write_config(svc(f"tcp:127.0.0.1:{a.port}").replace("200ms", "300ms") + clock_conf)
    r = d.drover("reload")
    assert (r.rc, r.out) == (0, updated), r
    assert d.pids("web") == [pid]

    # a new address: probes go there, no longer to the old one
    d.write_config(svc(f"http://127.0.0.1:{b.port}/") + clock_conf)
    r = d.drover("reload")
    assert (r.rc, r.out) == (0, updated), r
    wait_for(lambda: b.count() >= 2, what="probes at the new address")
    n = a.count()
    c = clock.count()
    wait_for(lambda: clock.count() >= c + 5, what="five more probes of the clock")
    assert a.count() == n
    st = d.status("web")
    assert st["pids"] == [pid] and st["health"] == "healthy" and st["restarts"] == 0, st

    # no probe any more
    d.write_config(svc(f"http://127.0.0.1:{b.port}/").replace(
        f"health = http://127.0.0.1:{b.port}/\nhealth_interval = 200ms\n", "") + clock_conf)
    r = d.drover("reload")
    assert (r.rc, r.out) == (0, updated), r
    st = d.status("web")
    assert "health" not in st and "health_text" not in st, st
    assert st["pids"] == [pid]
    n = b.count()
    c = clock.count()
    wait_for(lambda: clock.count() >= c + 5, what="five more probes of the clock")
    assert b.count() == n
    r = d.drover("status")
    # the clock still has a probe: the HEALTH column stays, web's cell is "-"
    assert "HEALTH" in r.out.splitlines()[0], r.out
    assert re.search(r"(?m)^web\s+daemon\s+ready\s+-\s", r.out), r.out


# --- bad input ------------------------------------------------------------------------

BAD_PROBE = "is not a probe (use exec:COMMAND, tcp:HOST:PORT or http://HOST:PORT/PATH)"
BAD = {
    "ftp": ("health = ftp://x", 'bad health in [service web]: "ftp://x" ' + BAD_PROBE),
    "tcp-no-port": ("health = tcp:nohost",
                    'bad health in [service web]: "tcp:nohost" has no host or no port '
                    "(use tcp:HOST:PORT, like tcp:127.0.0.1:8080)"),
    "interval-without-probe": ("health_interval = 1s",
                               'health_interval needs a "health" probe in [service web]'),
    "ready-without-probe": ("ready = health", 'ready = health needs a "health" probe in [service web]'),
    "exec-cannot-run": ("health = exec:/nonexistent/probe --check",
                        'the health probe\'s program "/nonexistent/probe" cannot run: '
                        "No such file or directory in [service web]"),
}
KEY = {"interval-without-probe": "health_interval", "ready-without-probe": "ready"}


def bad_conf(line):
    return f"[service web]\ncommand = /bin/sleep 1000\n{line}\n"


def error_line(conf, text, needle):
    lines = conf.read_text().splitlines()
    n = next(i + 1 for i, x in enumerate(lines) if x.startswith(needle))
    return f"{conf}:{n}: {text}"


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_probe_is_refused_and_a_reload_keeps_the_old(droverd, servers, case):
    line, text = BAD[case]
    srv = servers()
    d = droverd(svc(f"tcp:127.0.0.1:{srv.port}"))
    pid = ready_pid(d)
    wait_health(d, "healthy")
    d.write_config(bad_conf(line))
    key = KEY.get(case, "health =")
    want = error_line(d.conf, text, key)
    r = run([DROVERD, "-t", "-c", d.conf])
    assert (r.rc, r.out, r.err) == (1, "", f"{want}\ndroverd: {d.conf}: 1 error\n"), r
    r = d.drover("reload")
    assert r.rc == 1 and r.out == "", r
    assert r.err == f"drover: the configuration has 1 error; still running the old one\n{want}\n", r
    st = d.status("web")
    assert st["pids"] == [pid] and st["health"] == "healthy" and st["restarts"] == 0, st
    n = srv.count()
    wait_for(lambda: srv.count() >= n + 2, what="probing to go on under the old configuration")


def test_health_on_mode_oneshot_is_refused(tmp_path):
    conf = tmp_path / "d.conf"
    conf.write_text("[service once]\nmode = oneshot\ncommand = /bin/true\n"
                    "health = tcp:127.0.0.1:80\n")
    r = run([DROVERD, "-t", "-c", conf])
    want = (f"{conf}:4: health does not apply to mode oneshot in [service once] "
            "(it is for mode daemon, prefork)")
    assert (r.rc, r.out, r.err) == (1, "", f"{want}\ndroverd: {conf}: 1 error\n"), r


# --- upgrades -------------------------------------------------------------------

def test_probing_goes_on_after_an_in_place_upgrade(droverd, servers):
    # The new image takes the service over with its process: it must probe
    # it too (it used to stay `starting`, unprobed, for good).
    srv = servers()
    d = droverd(svc(f"http://127.0.0.1:{srv.port}/", extra="health_interval = 100ms\n"))
    pid = ready_pid(d)
    wait_health(d, "healthy")
    r = d.drover("upgrade")
    assert r.rc == 0 and r.out.startswith("upgraded: "), r
    n = srv.count()
    wait_for(lambda: srv.count() >= n + 3, what="probes from the new image")
    st = wait_health(d, "healthy")
    assert st["pids"] == [pid] and st["restarts"] == 0, st
