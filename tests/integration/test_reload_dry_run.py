"""`drover reload --dry-run [--json]` (SPEC sections 5 and 8).

droverd reads and validates the configuration exactly as a reload does and
answers with the plan: per service added, removed, replaced (with the keys
that differ), updated live or unchanged; per listener kept, opened or
closed (and from which removed service a socket is taken); the pools that
would roll; the global settings that change. It changes nothing: every
PID, every socket (droverd's and each service's, by inode), every
generation and `drover status --json` are the same afterwards, and a real
reload afterwards does what the dry run said. An invalid configuration
gives the same FILE:LINE: errors as `drover reload`, and exit 1.
"""
import json
import re
import subprocess

from conftest import DROVER, SLOW, free_port, wait_for
from helpers_net import HELLO, fds_of

# Fields of `drover status --json` that move with the clock alone.
VOLATILE = {"uptime_ms", "next_ms", "cpu_usec", "memory_bytes"}


def snapshot(d):
    """Everything a dry run must not change: status without the clock,
    every process's descriptors (socket inodes), droverd's descriptors."""
    st = d.status()
    procs = {}
    for name, rec in st.items():
        for pid in rec["pids"]:
            procs[pid] = fds_of(pid)
    return ({n: {k: v for k, v in r.items() if k not in VOLATILE} for n, r in st.items()},
            procs, fds_of(d.pid))


def socket_inodes(fds):
    return {fd: t for fd, t in fds.items() if t.startswith("socket:[")}


def dry(d, *extra):
    r = d.drover("reload", "--dry-run", *extra)
    assert r.rc == 0 and r.err == "", r
    return r.out


def old_conf(ports):
    return f"""
[service keep]
command = /bin/sleep 1000

[service live]
command = /bin/sleep 1001
restart_delay = 1s

[service repl]
command = /bin/sleep 1002
env = A=1
listen = tcp:127.0.0.1:{ports[0]}
listen = tcp:127.0.0.1:{ports[1]}

[service gone]
command = /bin/sleep 1003

[service oldname]
command = /bin/sleep 1004
listen = web=tcp:127.0.0.1:{ports[2]}

[service pool]
mode = prefork
command = {HELLO}
listen = tcp:127.0.0.1:{ports[3]}
procs = 2
"""


# Every kind of change in one edit: keep unchanged; live's restart_delay
# (live); repl's command and env and one listener (replaced: one socket
# kept, one opened, one closed); gone removed; oldname renamed newname,
# taking its socket with a new backlog; added; the pool's env (rolls); and
# droverd's own log destination.
def new_conf(ports):
    return f"""
[drover]
log = file:@DIR@/droverd-new.log

[service keep]
command = /bin/sleep 1000

[service live]
command = /bin/sleep 1001
restart_delay = 2s

[service repl]
command = /bin/sleep 1012
env = A=2
listen = tcp:127.0.0.1:{ports[0]}
listen = tcp:127.0.0.1:{ports[4]}

[service newname]
command = /bin/sleep 1004
listen = web=tcp:127.0.0.1:{ports[2]} backlog=64

[service added]
command = /bin/sleep 1005
start = manual

[service pool]
mode = prefork
command = {HELLO}
listen = tcp:127.0.0.1:{ports[3]}
procs = 2
env = X=1
"""


def expected_text(p):
    return f"""\
  removed    gone (stops)
  removed    oldname (stops)
  updated    live (keys: restart_delay)
  replaced   repl (keys: command, listen, env; restarts)
      kept    tcp:127.0.0.1:{p[0]}
      opened  tcp:127.0.0.1:{p[4]}
      closed  tcp:127.0.0.1:{p[1]}
  added      newname (starts)
      kept    web=tcp:127.0.0.1:{p[2]} (from oldname, new backlog 64)
  added      added (not started: start = manual)
  replaced   pool (keys: env; rolls to generation 2)
      kept    tcp:127.0.0.1:{p[3]}
  unchanged  keep
  global     log: the new setting applies now
dry run: 2 added, 2 removed, 2 replaced, 1 updated, 1 unchanged; nothing was changed
"""


def started(droverd):
    ports = [free_port() for _ in range(5)]
    d = droverd(old_conf(ports))
    for name in ("keep", "live", "repl", "gone", "oldname", "pool"):
        d.wait_state(name, "ready")
    wait_for(lambda: len(d.pids("pool")) == 2, what="the pool's two workers")
    return d, ports


def test_every_kind_of_change_is_planned_and_nothing_changes(droverd):
    d, ports = started(droverd)
    before = snapshot(d)
    old_log = d.log()
    d.write_config(new_conf(ports))

    assert dry(d) == expected_text(ports)
    doc = json.loads(dry(d, "--json"))

    after = snapshot(d)
    assert after == before
    # droverd's own log did not move to the new file, and says no reload
    # happened, only a dry run.
    assert not (d.dir / "droverd-new.log").exists()
    new_lines = d.log()[len(old_log):]
    assert "reloaded" not in new_lines and "added" not in new_lines.replace("2 added", "")
    assert new_lines.count("reload --dry-run by uid 0") == 2, new_lines
    assert re.search(r"reload --dry-run by uid 0 \(pid \d+\): 2 added, 2 removed, 2 replaced, "
                     r"1 updated, 1 unchanged; nothing was changed", new_lines)

    # The real reload afterwards does what the dry run said: the
    # configuration in force did not move.
    assert dry(d) == expected_text(ports)
    oldname_sock = socket_inodes(before[1][before[0]["oldname"]["pids"][0]])[3]
    repl_sock = socket_inodes(before[1][before[0]["repl"]["pids"][0]])[3]
    r = d.drover("reload")
    assert r.rc == 0, r
    done = {tuple(line.split()) for line in r.out.splitlines()[1:]}
    planned = {(s["change"], s["name"]) for s in doc["services"] if s["change"] != "unchanged"}
    assert done == planned
    assert r.out.splitlines()[0] == "reloaded: 2 added, 2 removed, 2 replaced, 1 updated, 1 unchanged"
    # newname got oldname's very socket, repl kept its first one, the pool
    # rolled to generation 2.
    assert socket_inodes(fds_of(d.wait_state("newname", "ready")["pids"][0]))[3] == oldname_sock
    repl_pid = wait_for(lambda: (st := d.status("repl"))["pids"] and st["generation"] == 2
                        and st["pids"][0] != before[0]["repl"]["pids"][0] and st["pids"][0],
                        what="repl replaced")
    assert socket_inodes(fds_of(repl_pid))[3] == repl_sock
    wait_for(lambda: d.status("pool")["generation"] == 2, what="the pool's roll")
    assert d.status("keep")["pids"] == before[0]["keep"]["pids"]


def test_json_fields(droverd):
    d, ports = started(droverd)
    d.write_config(new_conf(ports))
    doc = json.loads(dry(d, "--json"))
    gen = {n: d.status(n)["generation"] for n in ("keep", "live", "repl", "pool")}
    assert set(doc) == {"counts", "services", "global"}
    assert doc["counts"] == {"added": 2, "removed": 2, "replaced": 2, "updated": 1, "unchanged": 1}
    assert doc["global"] == [{"setting": "log", "applies": "now"}]
    svcs = {s["name"]: s for s in doc["services"]}
    assert [s["name"] for s in doc["services"]] == ["gone", "oldname", "keep", "live", "repl",
                                                   "newname", "added", "pool"]
    for s in doc["services"]:
        assert set(s) == {"name", "change", "mode", "keys", "state", "generation", "running",
                          "starts", "rolls", "listeners"}, s
    assert svcs["keep"] == {"name": "keep", "change": "unchanged", "mode": "daemon", "keys": [],
                            "state": "ready", "generation": gen["keep"], "running": True,
                            "starts": False, "rolls": False, "listeners": []}
    assert (svcs["live"]["change"], svcs["live"]["keys"]) == ("updated", ["restart_delay"])
    assert (svcs["repl"]["change"], svcs["repl"]["keys"]) == ("replaced", ["command", "listen", "env"])
    assert svcs["repl"]["listeners"] == [
        {"address": f"tcp:127.0.0.1:{ports[0]}", "fd_name": None, "change": "kept", "from": None,
         "relisten": False, "backlog": None},
        {"address": f"tcp:127.0.0.1:{ports[4]}", "fd_name": None, "change": "opened", "from": None,
         "relisten": False, "backlog": None},
        {"address": f"tcp:127.0.0.1:{ports[1]}", "fd_name": None, "change": "closed", "from": None,
         "relisten": False, "backlog": None}]
    assert svcs["newname"] == {"name": "newname", "change": "added", "mode": "daemon", "keys": [],
                               "state": None, "generation": None, "running": False, "starts": True,
                               "rolls": False, "listeners": [
                                   {"address": f"tcp:127.0.0.1:{ports[2]}", "fd_name": "web",
                                    "change": "kept", "from": "oldname", "relisten": True,
                                    "backlog": 64}]}
    assert (svcs["added"]["starts"], svcs["added"]["state"]) == (False, None)
    assert (svcs["gone"]["change"], svcs["gone"]["running"]) == ("removed", True)
    assert svcs["pool"]["mode"] == "prefork" and svcs["pool"]["rolls"] is True
    assert svcs["pool"]["keys"] == ["env"] and svcs["pool"]["generation"] == gen["pool"]


def test_invalid_configuration_same_errors_as_reload_and_nothing_changes(droverd):
    d, ports = started(droverd)
    before = snapshot(d)
    d.write_config(old_conf(ports) + "\n[service bad]\ncommand = /bin/true\nrestart = sometimes\n"
                   "requires = nowhere\n")
    log_before = d.log()
    r = d.drover("reload", "--dry-run")
    j = d.drover("reload", "--dry-run", "--json")
    assert (r.rc, r.out, j.rc, j.out, j.err) == (1, "", 1, "", r.err)
    lines = r.err.splitlines()
    assert lines[0] == "drover: the configuration has 2 errors; still running the old one", r.err
    assert re.fullmatch(rf"{re.escape(str(d.conf))}:\d+: .*restart.*", lines[1]), r.err
    assert re.fullmatch(rf"{re.escape(str(d.conf))}:\d+: .*nowhere.*", lines[2]), r.err
    # A dry run logs no error (nothing failed): one info line each.
    assert re.fullmatch(r"(droverd: reload --dry-run by uid 0 \(pid \d+\): the configuration has 2 "
                        r"errors; nothing was changed\n){2}", d.log()[len(log_before):]), d.log()
    assert snapshot(d) == before
    real = d.drover("reload")
    assert (real.rc, real.out, real.err) == (1, "", r.err)
    assert snapshot(d) == before


def test_dry_run_in_backoff_and_while_stopping_changes_nothing(droverd):
    conf = """
[service flaky]
command = /bin/sh -c 'exit 3'
restart_delay = 30s

[service stubborn]
command = /bin/sh -c 'trap "" TERM; exec /bin/sleep 1000'
stop_timeout = 1m
"""
    d = droverd(conf)
    d.wait_state("flaky", "backoff")
    d.wait_state("stubborn", "ready")
    assert d.drover("stop", "--no-wait", "stubborn").rc == 0
    d.wait_state("stubborn", "stopping")
    try:
        check_backoff_and_stopping(d, conf)
    finally:
        d.drover("signal", "stubborn", "KILL")
    d.wait_state("stubborn", "stopped")


def check_backoff_and_stopping(d, conf):
    before = snapshot(d)
    log_before = d.log()
    d.write_config(conf.replace("exit 3", "exit 4").replace("1000", "1001"))
    assert dry(d) == ("  replaced   flaky (keys: command)\n"
                      "  replaced   stubborn (keys: command; restarts)\n"
                      "dry run: 0 added, 0 removed, 2 replaced, 0 updated, 0 unchanged; "
                      "nothing was changed\n")
    doc = json.loads(dry(d, "--json"))
    assert [(s["name"], s["state"], s["running"]) for s in doc["services"]] == \
        [("flaky", "backoff", False), ("stubborn", "stopping", True)]
    assert snapshot(d) == before
    assert d.log()[len(log_before):].count("\n") == 2, d.log()[len(log_before):]


# An escape that clears the screen, an invalid byte, a C1 CSI: in a listen
# path, the only text of the file a plan shows.
RAW = b"\x1b[2Jx\xff\xc2\x9by"
ESCAPED = r"\x1b[2Jx\xff\u009by"


def test_untrusted_bytes_in_an_address_are_escaped(droverd):
    d = droverd("[service a]\ncommand = /bin/sleep 1000\n")
    d.wait_state("a", "ready")
    d.conf.write_bytes(b"[service a]\ncommand = /bin/sleep 1000\n"
                       b"[service b]\ncommand = /bin/sleep 1000\nlisten = unix:"
                       + str(d.dir).encode() + b"/" + RAW + b".sock\n")
    env = {"PATH": "/usr/bin:/bin", "DROVER_SOCKET": str(d.sock)}
    cp = subprocess.run([str(DROVER), "reload", "--dry-run"], capture_output=True, env=env,
                        timeout=30 * SLOW, stdin=subprocess.DEVNULL)
    assert cp.returncode == 0 and cp.stderr == b"", cp
    text = cp.stdout.decode("utf-8")
    assert not [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f], text
    assert f"      opened  unix:{d.dir}/{ESCAPED}.sock\n" in text, text
    cp = subprocess.run([str(DROVER), "reload", "--dry-run", "--json"], capture_output=True, env=env,
                        timeout=30 * SLOW, stdin=subprocess.DEVNULL)
    assert cp.returncode == 0, cp
    doc = json.loads(cp.stdout.decode("utf-8"))
    assert doc["services"][1]["listeners"][0]["address"] == f"unix:{d.dir}/\x1b[2Jx\ufffd\x9by.sock"
    assert b"\x1b" not in cp.stdout and b"\xff" not in cp.stdout
    # Never bound: a dry run opens nothing.
    assert [p for p in d.dir.glob("*.sock") if p != d.sock] == []


def test_usage_errors(droverd):
    d = droverd("[service a]\ncommand = /bin/sleep 1000\n")
    for args, msg in ((("a", "--dry-run"), "reload: --dry-run plans a reload of the whole "
                                           "configuration, not of a"),
                      (("--json",), "reload: --json goes with --dry-run"),
                      (("--dry-run", "--yes"), "reload: unknown option --yes")):
        r = d.drover("reload", *args)
        assert (r.rc, r.out) == (2, ""), r
        assert r.err.startswith(f"drover: {msg}\n\nusage:"), r
    assert d.log().count("reload") == 0


def test_retired_socket_closed_after_the_old_configuration_is_gone(droverd):
    """Found by the dry-run test under ASan: a socket a reload dropped from
    a replaced service stays open (retired) until its old process ends; it
    pointed into the old configuration, which is freed as soon as the last
    removed service using it goes. The old process here ends half a second
    after the removed one: closing the retired socket then read freed
    memory (listen.c close_one). Only the sanitized build sees it."""
    p1, p2 = free_port(), free_port()
    slow_exit = "/bin/sh -c 'trap \"sleep 0.5; exit 0\" TERM; /bin/sleep 1000 & wait'"
    d = droverd(f"""
[service repl]
command = {slow_exit}
listen = tcp:127.0.0.1:{p1}
listen = tcp:127.0.0.1:{p2}

[service gone]
command = /bin/sleep 1000
""")
    old = d.wait_state("repl", "ready")["pids"][0]
    d.wait_state("gone", "ready")
    d.write_config(f"[service repl]\ncommand = {slow_exit} x\nlisten = tcp:127.0.0.1:{p1}\n")
    assert d.drover("reload").rc == 0
    wait_for(lambda: "gone" not in d.status(), what="gone to go")
    wait_for(lambda: (st := d.status("repl"))["pids"] and old not in st["pids"], what="repl replaced")
    wait_for(lambda: str(p2) not in str(fds_of(d.pid)) and not any(
        f":{p2:04X} " in line for line in open("/proc/net/tcp").read().splitlines()[1:]),
        what=f"port {p2} closed")
    assert d.drover("status").rc == 0
