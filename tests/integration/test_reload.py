"""Reload (SPEC section 5): `drover reload` and SIGHUP.

Services are matched by name: added ones start, removed ones are stopped
gracefully without blocking droverd, a change in what a process is replaces
it, a change in supervision settings applies live, and an invalid new
configuration changes nothing at all.
"""
import os
import re
import signal
import socket
from pathlib import Path

import pytest

from conftest import free_port, wait_for


def environ(pid):
    """The environment a process was started with, as a dict."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(kv.decode().split("=", 1) for kv in raw.split(b"\0") if kv)


def process_alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def uid_of(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def reload_ok(d):
    r = d.drover("reload")
    assert r.rc == 0, r
    assert r.err == "", r
    return r.out


def the_pid(d, name):
    st = d.wait_state(name, "ready")
    assert len(st["pids"]) == 1, st
    return st["pids"][0]


def wait_replaced(d, name, old_pid, generation):
    """Wait for a new process of the given generation, ready; return its pid."""
    def replaced():
        st = d.status(name)
        return (st["state"] == "ready" and st["pids"] and st["pids"] != [old_pid]
                and st["generation"] == generation and st)
    st = wait_for(replaced, what=f"{name} to be replaced by generation {generation}\n{d.log()}")
    return st["pids"][0]


# --- added ----------------------------------------------------------------

def test_added_service_starts_and_is_listed(droverd):
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
    out = reload_ok(d)
    assert out == ("reloaded: 1 added, 0 removed, 0 replaced, 0 updated, 1 unchanged\n"
                   "  added     b\n")
    b = the_pid(d, "b")
    assert Path(f"/proc/{b}/cmdline").read_bytes() == b"sleep\x001001\x00"
    assert d.status("b")["generation"] == 1
    assert d.pids("a") == [a]
    d.wait_log(r"(?m)^droverd: b: added$")
    d.wait_log(r"(?m)^droverd: reloaded: 1 added, 0 removed, 0 replaced, 0 updated, 1 unchanged$")


def test_added_services_start_in_dependency_order(droverd, tmp_path):
    d = droverd("""
[service a]
command = sleep 1000
""")
    d.wait_state("a", "ready")
    # app is written first but requires prep, a oneshot that must finish first.
    d.write_config("""
[service a]
command = sleep 1000

[service app]
command = sleep 1002
requires = prep

[service prep]
mode = oneshot
command = /bin/sh -c 'echo prepared'
""")
    out = reload_ok(d)
    assert out == ("reloaded: 2 added, 0 removed, 0 replaced, 0 updated, 1 unchanged\n"
                   "  added     app\n"
                   "  added     prep\n")
    d.wait_state("app", "ready")
    assert d.state("prep") == "done"
    log = d.log()
    assert log.index("prep: finished") < log.index("app: started")


def test_added_manual_service_is_not_started(droverd):
    d = droverd("""
[service a]
command = sleep 1000
""")
    d.wait_state("a", "ready")
    d.write_config("""
[service a]
command = sleep 1000

[service m]
command = sleep 1003
start = manual
""")
    assert reload_ok(d).endswith("  added     m\n")
    # The reload is complete when it answers: m is known and stays stopped.
    st = d.status("m")
    assert st["state"] == "stopped" and st["pids"] == [], st
    assert d.drover("start", "m").rc == 0
    d.wait_state("m", "ready")


# --- removed --------------------------------------------------------------

def test_removed_service_is_stopped_gracefully_and_disappears(droverd):
    port = free_port()
    d = droverd(f"""
[service a]
command = sleep 1000

[service b]
command = sleep 1001
stop_signal = INT
listen = tcp:127.0.0.1:{port}
""")
    a = the_pid(d, "a")
    b = the_pid(d, "b")
    d.write_config("""
[service a]
command = sleep 1000
""")
    out = reload_ok(d)
    assert out == ("reloaded: 0 added, 1 removed, 0 replaced, 0 updated, 1 unchanged\n"
                   "  removed   b\n")
    wait_for(lambda: "b" not in d.status(), what=f"b to disappear from status\n{d.log()}")
    d.wait_log(r"(?m)^droverd: b: removed from the configuration: stopping it$")
    # Graceful: its own stop_signal, not a kill.
    d.wait_log(rf"(?m)^droverd: b: pid {b} killed by signal 2 \(INT\)$")
    d.wait_log(r"(?m)^droverd: b: removed$")
    assert not process_alive(b)
    assert "did not stop within" not in d.log()
    # Its listener is closed.
    with socket.socket() as c:
        with pytest.raises(ConnectionRefusedError):
            c.connect(("127.0.0.1", port))
    assert d.pids("a") == [a]
    assert d.drover("status", "b").rc == 1


def test_drain_of_removed_service_does_not_block_droverd(droverd):
    timeout_s = 3
    d = droverd(f"""
[service keep]
command = sleep 1000

[service stubborn]
command = /bin/sh -c 'trap "" TERM; echo armed; exec sleep 1000'
stop_timeout = {timeout_s}s
""")
    keep = the_pid(d, "keep")
    stubborn = the_pid(d, "stubborn")
    d.wait_log(rf"(?m)^stubborn\[{stubborn}\]: armed$")
    d.write_config("""
[service keep]
command = sleep 1000
""")
    out = reload_ok(d)
    assert out == ("reloaded: 0 added, 1 removed, 0 replaced, 0 updated, 1 unchanged\n"
                   "  removed   stubborn\n")
    # droverd answers while the removed service drains: the reload and the
    # status after it come back while its process still runs (it ignores
    # TERM and is not killed before stop_timeout).
    r = d.drover("status", "--json")
    assert r.rc == 0, r
    st = d.status()
    assert sorted(st) == ["keep"], st
    assert st["keep"]["pids"] == [keep], st
    assert process_alive(stubborn), "droverd waited for the drain"
    assert d.drover("version").rc == 0
    assert process_alive(stubborn)
    assert "did not stop within" not in d.log()
    # Then the stop sequence goes on by itself: SIGKILL at stop_timeout.
    d.wait_log(rf"(?m)^droverd: warning: stubborn: pid {stubborn} did not stop within "
               rf"{timeout_s * 1000}ms: killing its process group$", timeout=timeout_s + 10)
    d.wait_log(rf"(?m)^droverd: stubborn: pid {stubborn} killed by signal 9 \(KILL\)$")
    d.wait_log(r"(?m)^droverd: stubborn: removed$")
    assert not process_alive(stubborn)
    assert d.pids("keep") == [keep]


def test_service_readded_while_its_old_process_drains_ends_up_running(droverd):
    port = free_port()
    conf = f"""
[service s]
command = /bin/sh -c 'trap "" TERM; echo armed; exec sleep 1000'
stop_timeout = 1s
restart_delay = 100ms
restart_delay_max = 500ms
listen = tcp:127.0.0.1:{port}
"""
    d = droverd(conf)
    old = the_pid(d, "s")
    d.wait_log(rf"(?m)^s\[{old}\]: armed$")
    d.write_config("")
    assert reload_ok(d).endswith("  removed   s\n")
    # Back before the old process is gone (an administrator undoing a mistake).
    d.write_config(conf)
    assert reload_ok(d).endswith("  added     s\n")
    assert process_alive(old)
    d.wait_log(rf"(?m)^droverd: s: pid {old} killed by signal 9 \(KILL\)$")
    # Once the old one is gone, the service runs again, on its port.
    st = d.wait_state("s", "ready")
    assert st["pids"] and st["pids"] != [old], st
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


# --- replaced -------------------------------------------------------------

REPLACE_CASES = {
    "command": ("command = sleep 1000\n", "command = sleep 1001\n",
                lambda d, pid: Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x001001\x00"),
    "env": ("command = sleep 1000\nenv = MODE=old\n", "command = sleep 1000\nenv = MODE=new\n",
            lambda d, pid: environ(pid)["MODE"] == "new"),
    "env-added-line": ("command = sleep 1000\nenv = A=1\n",
                       "command = sleep 1000\nenv = A=1\nenv = B=2\n",
                       lambda d, pid: environ(pid).get("B") == "2"),
    "user": ("command = sleep 1000\n", "command = sleep 1000\nuser = nobody\n",
             lambda d, pid: uid_of(pid) == 65534),
    "chdir": ("command = sleep 1000\nchdir = /\n", "command = sleep 1000\nchdir = @DIR@\n",
              lambda d, pid: os.readlink(f"/proc/{pid}/cwd") == str(d.dir)),
    "limit_nofile": ("command = sleep 1000\nlimit_nofile = 1000\n",
                     "command = sleep 1000\nlimit_nofile = 900\n",
                     lambda d, pid: "Max open files            900" in
                     Path(f"/proc/{pid}/limits").read_text()),
}


@pytest.mark.parametrize("case", sorted(REPLACE_CASES))
def test_change_in_what_a_process_is_replaces_it(droverd, case):
    before, after, proof = REPLACE_CASES[case]
    d = droverd(f"""
[service other]
command = sleep 999

[service a]
{before}""")
    other = the_pid(d, "other")
    old = the_pid(d, "a")
    assert d.status("a")["generation"] == 1
    assert environ(old)["DROVER_GENERATION"] == "1"
    d.write_config(f"""
[service other]
command = sleep 999

[service a]
{after}""")
    out = reload_ok(d)
    assert out == ("reloaded: 0 added, 0 removed, 1 replaced, 0 updated, 1 unchanged\n"
                   "  replaced  a\n")
    d.wait_log(r"(?m)^droverd: a: changed: replacing its processes \(generation 2\)$")
    new = wait_replaced(d, "a", old, 2)
    assert environ(new)["DROVER_GENERATION"] == "2"
    assert proof(d, new)
    d.wait_log(rf"(?m)^droverd: a: pid {old} of generation 1 killed by signal 15 \(TERM\)$")
    assert d.pids("other") == [other]


def test_generation_keeps_growing_with_each_replacement(droverd):
    d = droverd("""
[service a]
command = sleep 1000
""")
    pid = the_pid(d, "a")
    for gen, secs in ((2, 1001), (3, 1002), (4, 1003)):
        d.write_config(f"""
[service a]
command = sleep {secs}
""")
        assert reload_ok(d).endswith("  replaced  a\n")
        pid = wait_replaced(d, "a", pid, gen)
        assert environ(pid)["DROVER_GENERATION"] == str(gen)


def test_config_files_content_change_replaces(droverd, tmp_path):
    ini = tmp_path / "app.ini"
    ini.write_text("threads = 1\n")
    conf = """
[service a]
command = sleep 1000
config_files = @DIR@/app.ini
"""
    d = droverd(conf)
    old = the_pid(d, "a")
    # Same text, same content: unchanged.
    out = reload_ok(d)
    assert out == "reloaded: 0 added, 0 removed, 0 replaced, 0 updated, 1 unchanged\n"
    assert d.pids("a") == [old]
    # Same configuration text, new content: replaced.
    ini.write_text("threads = 2\n")
    out = reload_ok(d)
    assert out == ("reloaded: 0 added, 0 removed, 1 replaced, 0 updated, 0 unchanged\n"
                   "  replaced  a\n")
    new = wait_replaced(d, "a", old, 2)
    assert environ(new)["DROVER_GENERATION"] == "2"
    # And back to unchanged while the content stays.
    assert reload_ok(d) == "reloaded: 0 added, 0 removed, 0 replaced, 0 updated, 1 unchanged\n"
    assert d.pids("a") == [new]


def test_config_files_relative_path_is_relative_to_the_config(droverd, tmp_path):
    (tmp_path / "rel.ini").write_text("a\n")
    d = droverd("""
[service a]
command = sleep 1000
config_files = rel.ini
""")
    old = the_pid(d, "a")
    (tmp_path / "rel.ini").write_text("b\n")
    assert reload_ok(d).endswith("  replaced  a\n")
    wait_replaced(d, "a", old, 2)


# --- applied live ---------------------------------------------------------

def check_restart_delay(d, pid):
    os.kill(pid, signal.SIGKILL)
    st = d.wait_state("a", "backoff")
    assert st["reason"] == "killed by signal 9 (KILL); restarting in 7s", st


def check_stop_timeout(d, pid):
    r = d.drover("stop", "--no-wait", "a")
    assert r.rc == 0, r
    d.wait_log(rf"(?m)^droverd: warning: a: pid {pid} did not stop within 1000ms: "
               r"killing its process group$")


def check_requires(d, pid):
    r = d.drover("deps")
    assert r.rc == 0, r
    assert "a (ready)  requires: base\n" in r.out, r
    assert d.drover("stop", "--no-wait", "base").rc == 0
    d.wait_state("a", "stopped")


def check_restart_policy(d, pid):
    os.kill(pid, signal.SIGKILL)
    st = d.wait_state("a", "failed")
    assert st["reason"] == "killed by signal 9 (KILL)" and st["pids"] == [], st
    d.wait_log(r"(?m)^droverd: warning: a: killed by signal 9 \(KILL\); not restarting "
               r"\(restart = no\)$")


LIVE_CASES = {
    "restart": ("restart = always\n", "restart = no\n", check_restart_policy),
    "restart_delay": ("restart_delay = 100ms\n", "restart_delay = 7s\n", check_restart_delay),
    "stop_timeout": ("stop_timeout = 30s\n", "stop_timeout = 1s\n", check_stop_timeout),
    "requires": ("stop_timeout = 1s\n", "stop_timeout = 1s\nrequires = base\n", check_requires),
}


@pytest.mark.parametrize("case", sorted(LIVE_CASES))
def test_supervision_change_applies_live(droverd, case):
    before, after, check = LIVE_CASES[case]
    body = "command = /bin/sh -c 'trap \"\" TERM; echo armed; exec sleep 1000'\n"
    d = droverd(f"""
[service base]
command = sleep 999

[service a]
{body}{before}""")
    base = the_pid(d, "base")
    pid = the_pid(d, "a")
    d.wait_log(rf"(?m)^a\[{pid}\]: armed$")
    d.write_config(f"""
[service base]
command = sleep 999

[service a]
{body}{after}""")
    out = reload_ok(d)
    assert out == ("reloaded: 0 added, 0 removed, 0 replaced, 1 updated, 1 unchanged\n"
                   "  updated   a\n")
    d.wait_log(r"(?m)^droverd: a: changed: new settings apply now$")
    st = d.status("a")
    assert st["pids"] == [pid] and st["generation"] == 1 and st["state"] == "ready", st
    assert environ(pid)["DROVER_GENERATION"] == "1"
    assert d.pids("base") == [base]
    check(d, pid)


def test_live_requires_on_a_stopped_service_starts_it(droverd):
    d = droverd("""
[service base]
command = sleep 999
start = manual

[service a]
command = sleep 1000
""")
    pid = the_pid(d, "a")
    assert d.state("base") == "stopped"
    d.write_config("""
[service base]
command = sleep 999
start = manual

[service a]
command = sleep 1000
requires = base
""")
    assert reload_ok(d).endswith("  updated   a\n")
    d.wait_state("base", "ready")
    assert d.pids("a") == [pid]


def test_start_manual_to_auto_starts_it(droverd):
    d = droverd("""
[service m]
command = sleep 1000
start = manual
""")
    d.wait_log("every auto service has started")
    assert d.state("m") == "stopped"
    d.write_config("""
[service m]
command = sleep 1000
start = auto
""")
    assert reload_ok(d) == ("reloaded: 0 added, 0 removed, 0 replaced, 1 updated, 0 unchanged\n"
                            "  updated   m\n")
    st = d.wait_state("m", "ready")
    assert st["generation"] == 1


# --- unchanged and the reply ----------------------------------------------

def test_unchanged_services_keep_their_pids(droverd):
    conf = """
[service a]
command = sleep 1000

[service b]
command = sleep 1001
env = X=1
"""
    d = droverd(conf)
    a, b = the_pid(d, "a"), the_pid(d, "b")
    # Comments, blank lines and section order do not matter.
    d.write_config("""
# reordered, with comments
[service b]
command = sleep 1001
; a comment
env = X=1


[service a]
command = sleep 1000
""")
    for _ in range(3):
        assert reload_ok(d) == "reloaded: 0 added, 0 removed, 0 replaced, 0 updated, 2 unchanged\n"
    st = d.status()
    assert st["a"]["pids"] == [a] and st["b"]["pids"] == [b], st
    assert st["a"]["generation"] == 1 and st["b"]["generation"] == 1, st
    assert ": changed:" not in d.log()


def test_reply_lists_every_kind_of_change(droverd):
    d = droverd("""
[service gone]
command = sleep 1000

[service same]
command = sleep 1001

[service cmd]
command = sleep 1002

[service live]
command = sleep 1003
""")
    pids = {n: the_pid(d, n) for n in ("gone", "same", "cmd", "live")}
    d.write_config("""
[service same]
command = sleep 1001

[service cmd]
command = sleep 1012

[service live]
command = sleep 1003
restart_delay = 2s

[service fresh]
command = sleep 1004
""")
    r = d.drover("reload")
    assert r.rc == 0, r
    assert r.out == ("reloaded: 1 added, 1 removed, 1 replaced, 1 updated, 1 unchanged\n"
                     "  removed   gone\n"
                     "  replaced  cmd\n"
                     "  updated   live\n"
                     "  added     fresh\n")
    assert r.err == ""
    wait_replaced(d, "cmd", pids["cmd"], 2)
    d.wait_state("fresh", "ready")
    wait_for(lambda: "gone" not in d.status(), what="gone to disappear")
    st = d.status()
    assert st["same"]["pids"] == [pids["same"]]
    assert st["live"]["pids"] == [pids["live"]]
    assert sorted(st) == ["cmd", "fresh", "live", "same"]


def test_reload_of_empty_change(droverd):
    d = droverd("")
    assert reload_ok(d) == "reloaded: 0 added, 0 removed, 0 replaced, 0 updated, 0 unchanged\n"


# --- invalid configuration --------------------------------------------------

INVALID = """
[service a]
command = sleep 1000
restart_delay = soon

[service c]
command = sleep 1005
requires = nope
bogus = 1
"""


def invalid_errors(d):
    conf = d.conf
    return [f'{conf}:4: bad restart_delay in [service a]: "soon" is not a duration '
            '(use 250ms, 10s, 5m, 2h or a number of seconds)',
            f'{conf}:8: requires "nope", which is not defined in [service c]',
            f'{conf}:9: unknown key "bogus" in [service c]']


def test_invalid_reload_changes_nothing(droverd):
    d = droverd("""
[service a]
command = sleep 1000

[service b]
command = sleep 1001
""")
    a, b = the_pid(d, "a"), the_pid(d, "b")
    before = d.status()
    d.write_config(INVALID)
    r = d.drover("reload")
    assert r.rc == 1, r
    assert r.out == ""
    got = r.err.splitlines()
    assert got[0] == "drover: the configuration has 3 errors; still running the old one"
    assert sorted(got[1:]) == sorted(invalid_errors(d)), r.err
    d.wait_log(r"(?m)^droverd: error: reload: the new configuration has 3 errors; "
               r"still running the old one:$")
    for e in invalid_errors(d):
        assert f"droverd: error:   {e}\n" in d.log()
    after = d.status()
    assert sorted(after) == ["a", "b"]
    for n in ("a", "b"):
        for k in ("pids", "state", "generation", "restarts"):
            assert after[n][k] == before[n][k], (n, k, before, after)
    assert after["a"]["pids"] == [a] and after["b"]["pids"] == [b]
    assert "reloaded:" not in d.log()
    # The old configuration is still the one in force: a later valid
    # reload is measured against it.
    d.write_config("""
[service a]
command = sleep 1000

[service b]
command = sleep 1001
""")
    assert reload_ok(d) == "reloaded: 0 added, 0 removed, 0 replaced, 0 updated, 2 unchanged\n"
    assert d.pids("a") == [a] and d.pids("b") == [b]


def test_invalid_reload_by_sighup_changes_nothing(droverd):
    d = droverd("""
[service a]
command = sleep 1000
""")
    a = the_pid(d, "a")
    d.write_config(INVALID)
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"(?m)^droverd: error: reload: the new configuration has 3 errors; "
               r"still running the old one:$")
    d.wait_log(re.escape(invalid_errors(d)[2]))
    assert d.running()
    st = d.status()
    assert sorted(st) == ["a"] and st["a"]["pids"] == [a] and st["a"]["generation"] == 1, st


def test_unreadable_config_on_reload_changes_nothing(droverd):
    d = droverd("""
[service a]
command = sleep 1000
""")
    a = the_pid(d, "a")
    d.conf.unlink()
    r = d.drover("reload")
    assert r.rc == 1, r
    assert r.err.startswith("drover: the configuration has 1 error; still running the old one\n"), r
    assert str(d.conf) in r.err
    assert d.pids("a") == [a]


# --- [drover] settings ------------------------------------------------------

def test_reload_moves_droverds_own_log(droverd, tmp_path):
    d = droverd("""
[service a]
command = sleep 1000
""")
    a = the_pid(d, "a")
    d.write_config("""
[drover]
log = file:@DIR@/own.log

[service a]
command = sleep 1000
""")
    assert reload_ok(d) == "reloaded: 0 added, 0 removed, 0 replaced, 0 updated, 1 unchanged\n"
    own = tmp_path / "own.log"
    wait_for(lambda: own.exists() and "reloaded: 0 added" in own.read_text(), what="own.log")
    assert "reloaded:" not in d.log()
    assert d.pids("a") == [a]


def test_reload_says_a_new_control_socket_needs_a_restart(droverd, tmp_path):
    d = droverd("""
[service a]
command = sleep 1000
""")
    d.write_config("""
[drover]
control = @DIR@/other.sock

[service a]
command = sleep 1000
""")
    assert reload_ok(d).startswith("reloaded: ")
    d.wait_log(r"(?m)^droverd: warning: control: a new control socket path takes effect "
               r"when droverd restarts$")
    assert not (tmp_path / "other.sock").exists()
    assert d.drover("status").rc == 0


# --- SIGHUP -----------------------------------------------------------------

def test_sighup_reloads(droverd):
    d = droverd("""
[service a]
command = sleep 1000

[service b]
command = sleep 1001
""")
    a, b = the_pid(d, "a"), the_pid(d, "b")
    d.write_config("""
[service a]
command = sleep 1000

[service b]
command = sleep 1011

[service c]
command = sleep 1002
""")
    d.send_signal(signal.SIGHUP)
    d.wait_log(rf"(?m)^droverd: SIGHUP: reloading {re.escape(str(d.conf))}$")
    d.wait_log(r"(?m)^droverd: reloaded: 1 added, 0 removed, 1 replaced, 0 updated, 1 unchanged$")
    d.wait_state("c", "ready")
    wait_replaced(d, "b", b, 2)
    assert d.pids("a") == [a]
