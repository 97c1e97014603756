"""Bad configurations: every one is reported as FILE:LINE: message, all at
once, in file order, by `droverd -t`, by `drover check` and by a droverd that
refuses to start on it (exit 1, nothing started, no control socket); a
reload onto a bad configuration changes nothing.

Messages are the exact text of src/lib/conf_*.c and listen_addr.c. Line
numbers are computed from the configuration text (line_of), so a test
config can be edited without renumbering by hand.
"""
import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import DROVER, DROVERD, check_no_strays, process_exists, wait_for
from helpers_control import NOBODY, cmdline, line_of, pubdir, run  # noqa: F401 (fixture)

# Appended to every bad main file: a service that would leave a mark if
# droverd started anything at all.
MARKER = "\n[service zz-marker]\ncommand = /bin/sh -c 'touch {mark}; exec sleep 1000'\n"


@pytest.fixture(autouse=True)
def no_strays():
    """Tests here run droverd without the harness too: nothing it may have
    started may be left behind."""
    yield
    check_no_strays()


def write(path, text, mode=0o644):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    return path


def summary(n):
    return f"{n} error" if n == 1 else f"{n} errors"


def check_t(conf, errors, user=False):
    """droverd -t and drover check: every error on stderr, then a count."""
    body = "".join(e + "\n" for e in errors)
    r = run([DROVERD, "-t", "-c", conf], user=user)
    assert (r.rc, r.out, r.err) == (1, "", body + f"droverd: {conf}: {summary(len(errors))}\n"), r
    r = run([DROVER, "check", "-c", conf], user=user)
    assert (r.rc, r.out, r.err) == (1, "", body + f"{conf}: {summary(len(errors))}\n"), r


def check_refuses_to_start(conf, errors):
    """droverd itself: exit 1 with the same report, no socket, no process."""
    sock = conf.parent / "refused.sock"
    mark = conf.parent / "marker-started"
    body = "".join(e + "\n" for e in errors)
    try:
        r = run([DROVERD, "-c", conf, "-S", sock], timeout=15)
    except subprocess.TimeoutExpired:
        raise AssertionError("droverd started on a bad configuration (killed after 15 s)") from None
    assert (r.rc, r.out, r.err) == (1, "", body + f"droverd: {conf}: {summary(len(errors))}\n"), r
    assert not os.path.lexists(sock), "a control socket was left behind"
    assert not mark.exists(), "droverd started a service of a bad configuration"


def rejected(conf, errors):
    check_t(conf, errors)
    check_refuses_to_start(conf, errors)


def bad_main(directory, text, name="drover.conf"):
    """The main file: text plus the marker service, mode 0644."""
    return write(directory / name, text + MARKER.format(mark=directory / "marker-started"))


def valid(conf, nsvcs, user=False):
    word = "service" if nsvcs == 1 else "services"
    want = f"{conf}: configuration is valid ({nsvcs} {word})\n"
    r = run([DROVERD, "-t", "-c", conf], user=user)
    assert (r.rc, r.out, r.err) == (0, want, ""), r
    r = run([DROVER, "check", "-c", conf], user=user)
    assert (r.rc, r.out, r.err) == (0, want, ""), r


# --- one bad value, one error ----------------------------------------------
# name: (config text, [(line number or text found on that line, message), ...])

SVC = "[service web]\ncommand = sleep 1000\n"
DURATION = "is not a duration (use 250ms, 10s, 5m, 2h or a number of seconds)"
SIZE = "is not a size (use 512K, 10M, 1G or a number of bytes)"
BOOL = "is not a boolean (use yes/no, true/false, on/off or 1/0)"
SIGNAL = "is not a signal (use a name like TERM, HUP, USR1, or a number)"
SECTION = "expected [drover] or [service NAME]"
NAME_RULE = "use 1 to 64 of A-Z a-z 0-9 _ . @ -"

SINGLE = {
    # keys
    "unknown-key-did-you-mean": (
        SVC + "prefok = 4\n",
        [("prefok", 'unknown key "prefok" in [service web] (did you mean "procs"?)')]),
    "unknown-global-key-did-you-mean": (
        "[drover]\ncontrl = /run/x.sock\n" + SVC,
        [("contrl", 'unknown key "contrl" in [drover] (did you mean "control"?)')]),
    "unknown-key-no-suggestion": (
        SVC + "frobnicate = 1\n",
        [("frobnicate", 'unknown key "frobnicate" in [service web]')]),
    "service-key-in-drover": (
        "[drover]\nprocs = 3\n" + SVC,
        [("procs", 'key "procs" does not belong in [drover] (it is a [service] key)')]),
    "drover-key-in-service": (
        SVC + "include = /etc/x/*.conf\n",
        [("include", 'key "include" does not belong in [service web] (it is a [drover] key)')]),
    "duplicate-key": (
        SVC + "command = sleep 2000\n",
        [("sleep 2000", 'duplicate key "command" in [service web] (first set at {conf}:2)')]),
    "duplicate-global-key": (
        "[drover]\nupgrade_timeout = 5s\nupgrade_timeout = 6s\n" + SVC,
        [("= 6s", 'duplicate key "upgrade_timeout" in [drover] (first set at {conf}:2)')]),
    # durations
    "duration-unit": (SVC + "restart_delay = 10x\n",
                      [("10x", f'bad restart_delay in [service web]: "10x" {DURATION}')]),
    "duration-fraction": (SVC + "stop_timeout = 1.5s\n",
                          [("1.5s", f'bad stop_timeout in [service web]: "1.5s" {DURATION}')]),
    "duration-negative": (SVC + "min_uptime = -1\n",
                          [("-1", f'bad min_uptime in [service web]: "-1" {DURATION}')]),
    "duration-space": (SVC + "restart_delay = 10 s\n",
                       [("10 s", f'bad restart_delay in [service web]: "10 s" {DURATION}')]),
    "duration-empty": (SVC + "stop_timeout =\n",
                       [("stop_timeout", f'bad stop_timeout in [service web]: "" {DURATION}')]),
    "duration-overflow": (SVC + "restart_delay_max = 99999999999999999h\n",
                          [("9h", 'bad restart_delay_max in [service web]: '
                                  '"99999999999999999h" is too long')]),
    "duration-zero": (SVC + "ready_timeout = 0\n",
                      [("ready_timeout", 'bad ready_timeout in [service web]: "0" must be more than zero')]),
    "global-duration-zero": ("[drover]\nupgrade_timeout = 0\n" + SVC,
                             [("upgrade_timeout", 'bad upgrade_timeout in [drover]: "0" must be more than zero')]),
    # sizes
    "size-unit": (SVC + "log_max_size = 12Q\n",
                  [("12Q", f'bad log_max_size in [service web]: "12Q" {SIZE}')]),
    "size-two-letters": (SVC + "log_max_size = 10MB\n",
                         [("10MB", f'bad log_max_size in [service web]: "10MB" {SIZE}')]),
    "size-terabytes": (SVC + "limit_core = 1T\n",
                       [("1T", f'bad limit_core in [service web]: "1T" {SIZE}')]),
    # booleans
    "bool-maybe": (SVC + "env_inherit = maybe\n",
                   [("maybe", f'bad env_inherit in [service web]: "maybe" {BOOL}')]),
    "bool-two": (SVC + "critical = 2\n", [("critical", f'bad critical in [service web]: "2" {BOOL}')]),
    # credentials
    "unknown-user": (SVC + "user = no-such-user-ta\n",
                     [("user", 'bad user in [service web]: "no-such-user-ta" is not a user on this system')]),
    "unknown-group": (SVC + "group = no-such-group-ta\n",
                      [("group", 'bad group in [service web]: "no-such-group-ta" is not a group on this system')]),
    "numeric-user-without-entry": (
        SVC + "user = 4242\n",
        [("4242", 'user 4242 has no entry in the user database: give "group" as well in [service web]')]),
    "unknown-control-group": (
        "[drover]\ncontrol_group = no-such-group-ta\n" + SVC,
        [("control_group", 'bad control_group in [drover]: "no-such-group-ta" is not a group on this system')]),
    # command
    "missing-command": ("[service web]\nmode = daemon\n", [("[service web]", "no command given in [service web]")]),
    "empty-command": ("[service web]\ncommand =\n", [("command", 'bad command in [service web]: "" is empty')]),
    "unterminated-double-quote": (
        '[service web]\ncommand = /bin/echo "hello\n',
        [("command", 'bad command in [service web]: "/bin/echo "hello" has an unterminated double quote')]),
    "unterminated-single-quote": (
        "[service web]\ncommand = /bin/echo 'hello\n",
        [("command", "bad command in [service web]: \"/bin/echo 'hello\" has an unterminated single quote")]),
    "lone-backslash": ("[service web]\ncommand = /bin/echo \\\n",
                       [("command", 'bad command in [service web]: "/bin/echo \\" ends with a lone backslash')]),
    # references
    "requires-missing": (SVC + "requires = db\n",
                         [("requires", 'requires "db", which is not defined in [service web]')]),
    "after-missing": (SVC + "after = db\n", [("after", 'after "db", which is not defined in [service web]')]),
    "requires-itself": (SVC + "requires = web\n", [("requires", "service cannot require itself in [service web]")]),
    "after-itself": (SVC + "after = web\n", [("after", "service cannot be ordered after itself in [service web]")]),
    "requires-bad-name": (SVC + "requires = a/b\n",
                          [("requires", 'bad requires in [service web]: "a/b" is not a service name')]),
    # sections
    "unknown-section": ("[services web]\ncommand = sleep 1000\n",
                        [("[services", f"unknown section [services web]: {SECTION}")]),
    "unknown-section-keys-not-reported": ("[global]\nfoo = 1\nbar = 2\n" + SVC,
                                          [("[global]", f"unknown section [global]: {SECTION}")]),
    "service-without-name": ("[service]\ncommand = sleep 1000\n",
                             [("[service]", f"unknown section [service]: {SECTION}")]),
    "unclosed-section": ("[drover\n" + SVC, [("[drover", f'bad section header "[drover": {SECTION}')]),
    "bad-service-name": ("[service a/b]\ncommand = sleep 1000\n",
                         [("[service", f'bad service name "a/b": {NAME_RULE}')]),
    "service-name-too-long": (f"[service {'a' * 65}]\ncommand = sleep 1000\n",
                              [("[service", f'bad service name "{"a" * 65}": {NAME_RULE}')]),
    "duplicate-service": (SVC + "[service web]\ncommand = sleep 2000\n",
                          [(3, 'service "web" is already defined at {conf}:1')]),
    "outside-any-section": ("x = 1\n" + SVC,
                            [("x = 1", '"x = 1" is outside any section: start with [drover] or [service NAME]')]),
    "not-an-assignment": (SVC + "just some words\n",
                          [("just some", 'expected "key = value", got "just some words"')]),
    # enumerations and other values
    "bad-mode": (SVC + "mode = forking\n",
                 [("forking", 'bad mode in [service web]: "forking" is not a mode '
                              '(use daemon, prefork, accept, oneshot or timer)')]),
    "bad-start": (SVC + "start = later\n",
                  [("later", 'bad start in [service web]: "later" is not a start policy (use auto, demand or manual)')]),
    "bad-restart": (SVC + "restart = sometimes\n",
                    [("sometimes", 'bad restart in [service web]: "sometimes" is not a restart policy '
                                   '(use always, on-failure or no)')]),
    "bad-ready": (SVC + "ready = maybe\n",
                  [("maybe", 'bad ready in [service web]: "maybe" is not a readiness kind (use none, notify, exit or health)')]),
    "bad-stop-signal": (SVC + "stop_signal = SIGFOO\n",
                        [("SIGFOO", f'bad stop_signal in [service web]: "SIGFOO" {SIGNAL}')]),
    "signal-zero": (SVC + "reload_signal = 0\n", [("reload_signal", f'bad reload_signal in [service web]: "0" {SIGNAL}')]),
    "env-no-equals": (SVC + "env = NOEQUALS\n", [("NOEQUALS", 'bad env in [service web]: "NOEQUALS" is not KEY=VALUE')]),
    "env-bad-name": (SVC + "env = 1A=x\n",
                     [("1A=x", 'bad env in [service web]: "1A=x" has a bad variable name (use letters, digits and _)')]),
    "bad-umask": (SVC + "umask = 999\n",
                  [("umask", 'bad umask in [service web]: "999" is not an octal mode (like 022 or 0660)')]),
    "relative-chdir": (SVC + "chdir = var/lib\n", [("chdir", 'bad chdir in [service web]: "var/lib" is not an absolute path')]),
    "relative-log-file": (SVC + "log = file:x.log\n", [("log", 'bad log in [service web]: "file:x.log" is not an absolute path')]),
    "bad-service-log": (SVC + "log = syslog\n",
                        [("log", 'bad log in [service web]: "syslog" is not a log destination '
                                 '(use inherit, null or file:/PATH)')]),
    "bad-global-log": ("[drover]\nlog = syslogg\n" + SVC,
                       [("syslogg", 'bad log in [drover]: "syslogg" is not a log destination '
                                    '(use stderr, syslog or file:/PATH)')]),
    "limit-soft-above-hard": (SVC + "limit_nofile = 10:5\n",
                              [("limit_nofile", 'bad limit_nofile in [service web]: "10:5" has a soft limit above its hard limit')]),
    "not-a-number": (SVC + "log_keep = many\n", [("log_keep", 'bad log_keep in [service web]: "many" is not a number')]),
    "empty-config-files": (SVC + "config_files =\n", [("config_files", 'bad config_files in [service web]: "" is empty')]),
    "at-out-of-range": ("[service web]\nmode = timer\ncommand = true\nat = 25:00\n",
                        [("at =", 'bad at in [service web]: "25:00" has a time out of range (00:00 to 23:59)')]),
    # keys that do not go together
    "key-not-for-mode": (SVC + "procs = 3\n",
                         [("procs", "procs does not apply to mode daemon in [service web] (it is for mode prefork)")]),
    "prefork-without-listen": ("[service web]\nmode = prefork\ncommand = sleep 1000\n",
                               [("mode", 'mode prefork needs at least one "listen" in [service web]')]),
    "timer-without-schedule": ("[service web]\nmode = timer\ncommand = true\n",
                               [("mode", 'mode timer needs "every" or "at" in [service web]')]),
    "ready-exit-not-oneshot": (SVC + "ready = exit\n", [("ready", "ready = exit is only for mode oneshot in [service web]")]),
    "watchdog-without-notify": (SVC + "watchdog = 5s\n", [("watchdog", "watchdog needs ready = notify in [service web]")]),
    "delay-above-max": (SVC + "restart_delay = 10s\nrestart_delay_max = 1s\n",
                        [("restart_delay =", "restart_delay is above restart_delay_max in [service web]")]),
    "procs-above-max": ("[service web]\nmode = prefork\ncommand = sleep 1000\nlisten = tcp:127.0.0.1:9\n"
                        "procs = 5\nmax_procs = 2\n",
                        [("procs = 5", "procs (5) is above max_procs (2) in [service web]")]),
}

LISTEN_ADDRS = ("use tcp:HOST:PORT, tcp:PORT, tcp6:[ADDR]:PORT, udp:HOST:PORT, udp6:[ADDR]:PORT, "
                "unix:/PATH or unix:@NAME")
LISTEN = {
    "host-name": ("tcp:example.com:80", "has a host that is not an IPv4 address (names are not looked up; "
                                        "use tcp6:[ADDR]:PORT for IPv6)"),
    "port-zero": ("tcp:127.0.0.1:0", "has a bad port (use 1 to 65535)"),
    "port-too-big": ("tcp:127.0.0.1:99999", "has a bad port (use 1 to 65535)"),
    "backlog-zero": ("tcp:127.0.0.1:8080 backlog=0", "has a bad backlog (a number from 1)"),
    "unknown-option": ("tcp:127.0.0.1:8080 fastopen", 'has an unknown option "fastopen" '
                                                       "(use backlog=N, reuseport, freebind, mode=, owner=, group=)"),
    "mode-on-tcp": ("tcp:127.0.0.1:8080 mode=0660", "has mode=, owner= or group=, which are only for unix:/PATH"),
    "unix-relative": ("unix:relative.sock", "is not an absolute path or @name"),
    "unix-empty-abstract": ("unix:@", "has a bad abstract name (1 to 107 characters after @)"),
    "unix-bad-mode": ("unix:/tmp/ta.sock mode=999", "has a bad mode (octal, like 0660)"),
    "unix-unknown-owner": ("unix:/tmp/ta.sock owner=no-such-user-ta", "has an owner that is not a user on this system"),
    "unix-unknown-group": ("unix:/tmp/ta.sock group=no-such-group-ta", "has a group that is not a group on this system"),
    "tcp6-no-brackets": ("tcp6:::1:80", "is not [ADDRESS]:PORT"),
    "tcp6-bad-address": ("tcp6:[zz]:80", "has a host that is not an IPv6 address"),
    "unknown-scheme": ("sctp:1.2.3.4:5", f"is not an address ({LISTEN_ADDRS})"),
    "empty": ("", "is empty"),
}


@pytest.mark.parametrize("case", sorted(SINGLE))
def test_single_error(tmp_path, case):
    text, expected = SINGLE[case]
    conf = bad_main(tmp_path, text)
    errors = [f"{conf}:{where if isinstance(where, int) else line_of(text, where)}: " + msg.format(conf=conf)
              for where, msg in expected]
    rejected(conf, errors)


@pytest.mark.parametrize("case", sorted(LISTEN))
def test_bad_listen(tmp_path, case):
    value, why = LISTEN[case]
    text = f"[service web]\ncommand = sleep 1000\nlisten = {value}\n"
    conf = bad_main(tmp_path, text)
    rejected(conf, [f'{conf}:3: bad listen in [service web]: "{value}" {why}'])


def test_bad_listen_next_to_a_good_one(tmp_path):
    """A bad listen line and a good one in the same configuration: the bad one
    is reported like any other error (the parser must not trip over the
    half-parsed listener when it compares addresses)."""
    text = ("[service web]\ncommand = sleep 1000\nlisten = tcp:127.0.0.1:0\n"
            "[service api]\ncommand = sleep 1000\nlisten = tcp:127.0.0.1:8080\n")
    conf = bad_main(tmp_path, text)
    rejected(conf, [f'{conf}:3: bad listen in [service web]: "tcp:127.0.0.1:0" has a bad port (use 1 to 65535)'])


def test_listen_conflicts(tmp_path):
    text = """\
[service dns]
mode = accept
command = cat
listen = udp:127.0.0.1:5353
[service one]
command = sleep 1000
listen = tcp:127.0.0.1:7000
[service two]
command = sleep 1000
listen = tcp:127.0.0.1:7000 backlog=16
[service twice]
command = sleep 1000
listen = unix:/tmp/ta-twice.sock
listen = other=unix:/tmp/ta-twice.sock mode=0600
"""
    conf = bad_main(tmp_path, text)
    rejected(conf, [
        f"{conf}:4: mode accept cannot use datagram listener udp:127.0.0.1:5353 in [service dns] "
        "(accept needs a stream: tcp or unix)",
        f"{conf}:10: listen tcp:127.0.0.1:7000 in [service two] is already used by [service one] at {conf}:7",
        f"{conf}:14: listen unix:/tmp/ta-twice.sock in [service twice] is already used by [service twice] "
        f"at {conf}:13",
    ])


def test_tcp_and_udp_on_the_same_port_is_valid(tmp_path):
    """A DNS server listens on TCP and UDP port 53 at once: the two sockets do
    not conflict (different protocols), so the configuration is valid."""
    conf = write(tmp_path / "drover.conf", """\
[service dns]
command = sleep 1000
listen = tcp:127.0.0.1:5353
listen = udp:127.0.0.1:5353
""")
    valid(conf, 1)


def test_valid_configuration(tmp_path):
    """Repeatable keys accumulate; the report goes to stdout, exit 0."""
    conf = write(tmp_path / "drover.conf", """\
# comment
; another comment
[drover]
upgrade_timeout = 250ms
[service db]
command = sleep 1000
env = A=1
env = B=2 # not a comment: part of the value
[service web]
command = sleep 1000
requires = db
requires = cache
after = db
[service cache]
command = sleep 1000
""")
    valid(conf, 3)


def test_missing_file(tmp_path):
    conf = tmp_path / "nothere.conf"
    errors = [f"cannot read {conf}: No such file or directory"]
    rejected(conf, errors)


def test_cycle_names_the_whole_loop(tmp_path):
    text = """\
[service a]
command = sleep 1000
requires = b
[service b]
command = sleep 1000
requires = c
[service c]
command = sleep 1000
requires = a
"""
    conf = bad_main(tmp_path, text)
    rejected(conf, [f"{conf}:9: dependency cycle: a -> b -> c -> a in [service c]"])


def test_cycle_through_after(tmp_path):
    text = """\
[service a]
command = sleep 1000
after = b
[service b]
command = sleep 1000
after = a
"""
    conf = bad_main(tmp_path, text)
    rejected(conf, [f"{conf}:6: dependency cycle: a -> b -> a in [service b]"])


def test_cycle_is_reported_at_the_line_that_closes_it(tmp_path):
    """b has two `requires` lines and one `after`; only `requires = a` (line 5)
    and `after = a` (line 10) close loops. The error must point at them, not
    at whichever requires line came last."""
    text = """\
[service a]
command = sleep 1000
requires = b
[service b]
requires = a
requires = x
command = sleep 1000
[service p]
command = sleep 1000
after = q
[service q]
command = sleep 1000
requires = x
after = p
[service x]
command = sleep 1000
"""
    conf = bad_main(tmp_path, text)
    rejected(conf, [f"{conf}:5: dependency cycle: a -> b -> a in [service b]",
                    f"{conf}:14: dependency cycle: p -> q -> p in [service q]"])


# --- several errors, several files -----------------------------------------

def test_all_errors_in_file_order(tmp_path):
    """Errors of one file by line, then those of each included file in the
    order the files were read; checks after parsing (references) come at
    their own line, not at the end."""
    main_text = """\
[drover]
include = conf.d/*.conf

[service web]
command = sleep 1000
prefok = 4
stop_timeout = soon
requires = nothere

[service api]
command = sleep 1000
env_inherit = perhaps
"""
    write(tmp_path / "conf.d/20-b.conf", """\
[service b]
command = sleep 1000
log_max_size = big
user = no-such-user-ta
""")
    write(tmp_path / "conf.d/10-a.conf", """\
[service a]
bogus = 1
""")
    conf = bad_main(tmp_path, main_text)
    a, b = tmp_path / "conf.d/10-a.conf", tmp_path / "conf.d/20-b.conf"
    rejected(conf, [
        f'{conf}:6: unknown key "prefok" in [service web] (did you mean "procs"?)',
        f'{conf}:7: bad stop_timeout in [service web]: "soon" {DURATION}',
        f'{conf}:8: requires "nothere", which is not defined in [service web]',
        f'{conf}:12: bad env_inherit in [service api]: "perhaps" {BOOL}',
        f"{a}:1: no command given in [service a]",
        f'{a}:2: unknown key "bogus" in [service a]',
        f'{b}:3: bad log_max_size in [service b]: "big" {SIZE}',
        f'{b}:4: bad user in [service b]: "no-such-user-ta" is not a user on this system',
    ])


def test_includes_read_in_sorted_order(tmp_path):
    """Files created out of order; glob order is byte order (10 < 2 < 3):
    the file read first owns a service defined twice."""
    for name in ("3-c.conf", "2-b.conf", "10-a.conf"):
        write(tmp_path / "conf.d" / name, f"[service dup]\ncommand = sleep 1000\nfrom-{name[:-5]} = 1\n")
    conf = bad_main(tmp_path, "[drover]\ninclude = conf.d/*.conf\n")
    first, second, third = (tmp_path / "conf.d" / n for n in ("10-a.conf", "2-b.conf", "3-c.conf"))
    rejected(conf, [
        f'{first}:3: unknown key "from-10-a" in [service dup]',
        f'{second}:1: service "dup" is already defined at {first}:1',
        f'{third}:1: service "dup" is already defined at {first}:1',
    ])


def test_include_is_relative_to_the_including_file(tmp_path):
    write(tmp_path / "conf.d/web.conf", "[drover]\ninclude = sub/*.conf\n[service web]\ncommand = sleep 1000\n")
    write(tmp_path / "conf.d/sub/x.conf", "[service x]\ncommand = sleep 1000\nprefok = 1\n")
    write(tmp_path / "sub/x.conf", "[service wrong]\ncommand = sleep 1000\n")
    conf = bad_main(tmp_path, "[drover]\ninclude = conf.d/*.conf\n")
    rejected(conf, [f'{tmp_path}/conf.d/sub/x.conf:3: unknown key "prefok" in [service x] '
                    '(did you mean "procs"?)'])


def test_duplicate_global_key_across_files(tmp_path):
    write(tmp_path / "conf.d/a.conf", "[drover]\nupgrade_timeout = 6s\n")
    conf = bad_main(tmp_path, "[drover]\nupgrade_timeout = 5s\ninclude = conf.d/*.conf\n")
    rejected(conf, [f'{tmp_path}/conf.d/a.conf:2: duplicate key "upgrade_timeout" in [drover] '
                    f"(first set at {conf}:2)"])


def test_include_matching_nothing_is_fine(tmp_path):
    (tmp_path / "conf.d").mkdir()
    conf = write(tmp_path / "drover.conf", "[drover]\ninclude = conf.d/*.conf\n" + SVC)
    valid(conf, 1)


def test_include_glob_in_missing_directory_is_fine(tmp_path):
    """Spec: a glob matching nothing is fine. conf.d not created yet (or
    already removed) is a glob that matches nothing."""
    conf = write(tmp_path / "drover.conf",
                 "[drover]\ninclude = conf.d/*.conf\ninclude = /nonexistent-ta/*.conf\n" + SVC)
    valid(conf, 1)


def test_include_of_a_missing_literal_file_is_an_error(tmp_path):
    """A file named outright (no glob characters) that is not there is a
    mistake worth saying, as nginx says it."""
    conf = bad_main(tmp_path, "[drover]\ninclude = /nonexistent-ta/literal.conf\n" + SVC)
    rejected(conf, [f'{conf}:2: bad include in [drover]: "/nonexistent-ta/literal.conf" '
                    'names /nonexistent-ta/literal.conf, which does not exist'])


def test_include_loop(tmp_path):
    one = tmp_path / "one.conf"
    write(tmp_path / "two.conf", "[drover]\ninclude = one.conf\n[service x]\ncommand = sleep 1000\n")
    conf = bad_main(tmp_path, "[drover]\ninclude = two.conf\n", name="one.conf")
    rejected(conf, [f"{tmp_path}/two.conf:2: {one} is included more than once"])


def test_include_matches_a_directory_and_a_fifo(tmp_path):
    (tmp_path / "conf.d/dir.conf").mkdir(parents=True)
    os.mkfifo(tmp_path / "conf.d/fifo.conf")
    write(tmp_path / "conf.d/ok.conf", SVC)
    conf = bad_main(tmp_path, "[drover]\ninclude = conf.d/*.conf\n")
    rejected(conf, [f"{conf}:2: cannot read {tmp_path}/conf.d/dir.conf: not a regular file",
                    f"{conf}:2: cannot read {tmp_path}/conf.d/fifo.conf: not a regular file"])


def test_main_file_is_a_fifo(tmp_path):
    conf = tmp_path / "drover.conf"
    os.mkfifo(conf)
    rejected(conf, [f"cannot read {conf}: not a regular file"])


def test_unreadable_file_as_unprivileged_user(pubdir):
    """Mode 000: root reads it anyway; uid 65534 gets EACCES, reported for
    the main file and, at the include line, for an included one."""
    main = write(pubdir / "main.conf", SVC, mode=0o000)
    errors = [f"cannot read {main}: Permission denied"]
    check_t(main, errors, user=True)
    valid(main, 1)          # root

    inc = write(pubdir / "inc.conf", "[drover]\ninclude = conf.d/*.conf\n" + SVC)
    write(pubdir / "conf.d/secret.conf", "[service s]\ncommand = sleep 1000\n", mode=0o000)
    check_t(inc, [f"{inc}:2: cannot read {pubdir}/conf.d/secret.conf: Permission denied"], user=True)


def test_unreadable_include_directory_as_unprivileged_user(pubdir):
    inc = write(pubdir / "inc.conf", "[drover]\ninclude = conf.d/*.conf\n" + SVC)
    write(pubdir / "conf.d/a.conf", "[service a]\ncommand = sleep 1000\n")
    os.chmod(pubdir / "conf.d", 0o000)
    check_t(inc, [f'{inc}:2: bad include in [drover]: "conf.d/*.conf" cannot be expanded: '
                  f"cannot read directory {pubdir}/conf.d: Permission denied"], user=True)


def test_nul_byte(tmp_path):
    """The file and the line that holds the NUL (spec: every error names the
    file and line)."""
    conf = tmp_path / "drover.conf"
    conf.write_bytes(b"[service web]\ncommand = sleep 1000\nenv = A=\0B\n")
    r = run([DROVER, "check", "-c", conf])
    assert r.rc == 1, r
    first = r.err.split("\n")[0]
    assert first.startswith(f"{conf}:3: ") and "NUL byte" in first, r
    assert r.err.endswith(f"\n{conf}: 1 error\n"), r


def test_nul_byte_in_included_file(tmp_path):
    inc = tmp_path / "conf.d/bin.conf"
    inc.parent.mkdir()
    inc.write_bytes(b"[service x]\ncommand = sleep 1000\n\0\n")
    conf = bad_main(tmp_path, "[drover]\ninclude = conf.d/*.conf\n")
    r = run([DROVER, "check", "-c", conf])
    assert r.rc == 1, r
    first = r.err.split("\n")[0]
    assert first.startswith(f"{inc}:3: ") and "NUL byte" in first, r
    check_refuses_to_start(conf, [first])


# --- ownership and permissions -------------------------------------------

WRITABLE = ("writable by a user other than root (owner uid {uid}, mode {mode}); "
            "droverd running as root refuses it")


@pytest.mark.parametrize("uid,gid,mode", [(0, 0, 0o666), (0, 0, 0o646), (NOBODY, 0, 0o644),
                                          (0, 100, 0o664)],
                         ids=["world-writable", "other-writable", "owned-by-nobody", "group-users-writable"])
def test_writable_by_others_refused_as_root(pubdir, uid, gid, mode):
    conf = write(pubdir / "drover.conf", SVC + MARKER.format(mark=pubdir / "marker-started"))
    os.chown(conf, uid, gid)
    os.chmod(conf, mode)
    rejected(conf, [f"cannot read {conf}: " + WRITABLE.format(uid=uid, mode=f"{mode:04o}")])
    # Not root: the check does not apply.
    valid(conf, 2, user=True)


def test_group_writable_by_root_group_accepted(tmp_path):
    conf = write(tmp_path / "drover.conf", SVC, mode=0o664)
    valid(conf, 1)


def test_writable_included_file_refused_as_root(tmp_path):
    inc = write(tmp_path / "conf.d/a.conf", "[service a]\ncommand = sleep 1000\n", mode=0o666)
    conf = bad_main(tmp_path, "[drover]\ninclude = conf.d/*.conf\n")
    rejected(conf, [f"{conf}:2: cannot read {inc}: " + WRITABLE.format(uid=0, mode="0666")])


# --- the whole path, links, and what is shown of a file (as root) ----------
# Every directory from / to a configuration file, and the file, must be
# root's alone (src/lib/safepath.h); a refused file is one error naming it
# and why, and nothing of its content is read or shown. The tests' own
# directories are under conftest's TEMP_ROOT, root's and 0755.

WRITABLE_DIR = ("directory {dir} is writable by a user other than root (owner uid {uid}, "
                "mode {mode}); droverd running as root refuses it")
LEADS_TO = ("it leads to {target}, which is writable by a user other than root (owner uid {uid}, "
            "mode {mode}); droverd running as root refuses it")
# A line that, read as configuration, would be quoted in an error.
SECRET = "password=hunter2\n"


def no_secret(conf):
    """Not in anything drover check, droverd -t or droverd print."""
    for argv in ([DROVER, "check", "-c", conf], [DROVERD, "-t", "-c", conf]):
        r = run(argv)
        assert r.rc == 1 and "hunter2" not in r.out + r.err, r


@pytest.mark.parametrize("uid,gid,mode", [(0, 0, 0o777), (0, 0, 0o1777), (0, 100, 0o775),
                                          (NOBODY, 0, 0o755)],
                         ids=["other-writable", "sticky-like-tmp", "group-users-writable", "owned-by-nobody"])
def test_include_directory_not_roots_alone_is_refused(pubdir, uid, gid, mode):
    inc = write(pubdir / "conf.d/a.conf", SECRET + "[service a]\ncommand = sleep 1000\n")
    os.chown(pubdir / "conf.d", uid, gid)
    os.chmod(pubdir / "conf.d", mode)
    conf = bad_main(pubdir, "[drover]\ninclude = conf.d/*.conf\n")
    rejected(conf, [f"{conf}:2: cannot read {inc}: "
                    + WRITABLE_DIR.format(dir=pubdir / "conf.d", uid=uid, mode=f"{mode:04o}")])
    no_secret(conf)
    # Not root: the check does not apply (and the file is read).
    r = run([DROVER, "check", "-c", conf], user=True)
    assert r.rc == 1 and '"password=hunter2" is outside any section' in r.err, r


def test_include_directory_group_writable_by_root_group_accepted(tmp_path):
    write(tmp_path / "conf.d/a.conf", "[service a]\ncommand = sleep 1000\n")
    os.chmod(tmp_path / "conf.d", 0o775)
    conf = write(tmp_path / "drover.conf", "[drover]\ninclude = conf.d/*.conf\n" + SVC)
    valid(conf, 2)


def test_main_file_in_a_directory_others_can_write_is_refused(tmp_path):
    sub = tmp_path / "open"
    sub.mkdir()
    os.chmod(sub, 0o1777)
    conf = bad_main(sub, SVC)
    rejected(conf, [f"cannot read {conf}: " + WRITABLE_DIR.format(dir=sub, uid=0, mode="1777")])


def test_main_file_under_tmp_is_refused():
    """/tmp is 1777: sshd refuses it for its files, and so does droverd."""
    st = os.stat("/tmp")
    if (st.st_uid, st.st_mode & 0o7777) != (0, 0o1777):
        pytest.skip("/tmp is not root's 1777 here")
    with tempfile.TemporaryDirectory(dir="/tmp") as t:
        os.chmod(t, 0o755)
        conf = write(Path(t) / "drover.conf", SVC)
        check_t(conf, [f"cannot read {conf}: " + WRITABLE_DIR.format(dir="/tmp", uid=0, mode="1777")])


def secret_link(tmp_path, case):
    """conf.d/x.conf, a link to a file holding SECRET, as `case` says;
    returns (link, the reason it is refused)."""
    link = tmp_path / "conf.d/x.conf"
    link.parent.mkdir()
    safe = write(tmp_path / "safe/secret.txt", SECRET)
    pub = tmp_path / "pub"
    pub.mkdir()
    os.chmod(pub, 0o777)
    if case == "link-in-open-directory":
        os.chmod(link.parent, 0o777)
        os.symlink(safe, link)
        return link, WRITABLE_DIR.format(dir=link.parent, uid=0, mode="0777")
    if case == "target-in-open-directory":
        os.symlink(write(pub / "secret.txt", SECRET), link)
        return link, WRITABLE_DIR.format(dir=pub, uid=0, mode="0777")
    if case == "target-owned-by-nobody":
        target = write(tmp_path / "safe/nobody.txt", SECRET, mode=0o600)
        os.chown(target, NOBODY, NOBODY)
        os.symlink("../safe/nobody.txt", link)
        return link, LEADS_TO.format(target=target, uid=NOBODY, mode="0600")
    assert case == "through-a-link-in-an-open-directory"
    os.symlink(safe, pub / "hop")
    os.symlink(pub / "hop", link)
    return link, WRITABLE_DIR.format(dir=pub, uid=0, mode="0777")


@pytest.mark.parametrize("case", ["link-in-open-directory", "target-in-open-directory",
                                  "target-owned-by-nobody", "through-a-link-in-an-open-directory"])
def test_link_to_a_file_others_chose_is_refused_unread(tmp_path, case):
    link, reason = secret_link(tmp_path, case)
    conf = bad_main(tmp_path, "[drover]\ninclude = conf.d/*.conf\n")
    rejected(conf, [f"{conf}:2: cannot read {link}: {reason}"])
    no_secret(conf)


def test_link_through_roots_directories_is_followed(tmp_path):
    """The sites-enabled pattern: a link in conf.d to a file elsewhere, all
    root's, and a link to the directory of the main file."""
    write(tmp_path / "available/web.conf", "[service a]\ncommand = sleep 1000\n")
    (tmp_path / "conf.d").mkdir()
    os.symlink("../available/web.conf", tmp_path / "conf.d/web.conf")
    write(tmp_path / "real/drover.conf", "[drover]\ninclude = ../conf.d/*.conf\n" + SVC)
    os.symlink("real", tmp_path / "etc")
    valid(tmp_path / "etc/drover.conf", 2)


def test_link_loop_is_an_error(tmp_path):
    (tmp_path / "conf.d").mkdir()
    os.symlink("loop.conf", tmp_path / "conf.d/loop.conf")
    conf = bad_main(tmp_path, "[drover]\ninclude = conf.d/*.conf\n")
    rejected(conf, [f"{conf}:2: cannot read {tmp_path}/conf.d/loop.conf: Too many levels of symbolic links"])


# Terminal escapes and bytes that are not UTF-8 in a line, shown escaped.
HOSTILE = b"\x1b]0;pwned\x07\x1b[2J\xff\xc2\x9b"
HOSTILE_SHOWN = r"\x1b]0;pwned\x07\x1b[2J\xff\u009b"


def test_quoted_text_is_escaped(tmp_path):
    conf = tmp_path / "drover.conf"
    conf.write_bytes(SVC.encode() + b"restart_delay = " + HOSTILE + b"\n"
                     + MARKER.format(mark=tmp_path / "marker-started").encode())
    rejected(conf, [f'{conf}:3: bad restart_delay in [service web]: "{HOSTILE_SHOWN}" {DURATION}'])


# --- config_files: regular files, read no further than 16 MiB ---------------

NOT_REGULAR = "is not a regular file"
TOO_LARGE = "is larger than 16 MiB, the most droverd reads of a config_files file"


def endless(directory, kind):
    """A config_files value of that kind, as written in the file."""
    if kind == "fifo":
        os.mkfifo(directory / "fifo")
        return str(directory / "fifo")
    if kind == "link-to-dev-zero":
        os.symlink("/dev/zero", directory / "zero")
        return "zero"
    if kind == "directory":
        (directory / "etc").mkdir()
        return "etc"
    if kind == "too-large":
        with open(directory / "big", "wb") as f:
            f.truncate((16 << 20) + 1)
        return "big"
    return "/dev/zero"


@pytest.mark.parametrize("kind,reason", [("dev-zero", NOT_REGULAR), ("fifo", NOT_REGULAR),
                                         ("link-to-dev-zero", NOT_REGULAR), ("directory", NOT_REGULAR),
                                         ("too-large", TOO_LARGE)])
def test_config_files_must_be_a_bounded_regular_file(tmp_path, kind, reason):
    value = endless(tmp_path, kind)
    conf = bad_main(tmp_path, SVC + f"config_files = {value}\n")
    rejected(conf, [f'{conf}:3: bad config_files in [service web]: "{value}" {reason}'])


def test_config_files_of_16_mib_and_missing_ones_are_fine(tmp_path):
    with open(tmp_path / "big", "wb") as f:
        f.truncate(16 << 20)
    conf = write(tmp_path / "drover.conf", SVC + "config_files = big\nconfig_files = not-there\n")
    valid(conf, 1)


# --- reload onto a bad configuration ---------------------------------------

GOOD = """\
[service alpha]
command = sleep 1000

[service beta]
command = sleep 1001
"""

# alpha changed, beta changed in supervision only, gamma new: none of it
# may happen, because of the two errors.
BAD = """\
[service alpha]
command = sleep 2000

[service beta]
command = sleep 1001
stop_timeout = 3s

[service gamma]
command = /bin/sh -c 'touch @DIR@/gamma-started; exec sleep 1000'
prefok = 2
restart_delay = fast
"""

FIXED = """\
[service alpha]
command = sleep 1000

[service gamma]
command = /bin/sh -c 'touch @DIR@/gamma-started; exec sleep 1000'
"""


def snapshot(d):
    return {name: (r["state"], r["pids"], r["generation"]) for name, r in d.status().items()}


def assert_unchanged(d, before):
    assert snapshot(d) == before
    assert not (d.dir / "gamma-started").exists(), "a service of the rejected configuration ran"
    r = d.drover("status", "gamma")
    assert (r.rc, r.out, r.err) == (1, "", 'drover: unknown service "gamma"\n'), r


def start_good(droverd):
    d = droverd(GOOD)
    for name in ("alpha", "beta"):
        st = d.wait_state(name, "ready")
        assert len(st["pids"]) == 1, st      # so that "pids unchanged" means something
    return d, snapshot(d)


def bad_errors(d):
    return [f'{d.conf}:10: unknown key "prefok" in [service gamma] (did you mean "procs"?)',
            f'{d.conf}:11: bad restart_delay in [service gamma]: "fast" {DURATION}']


def test_drover_reload_with_errors_changes_nothing(droverd):
    d, before = start_good(droverd)
    d.write_config(BAD)
    r = d.drover("reload")
    errors = bad_errors(d)
    assert (r.rc, r.out) == (1, ""), r
    assert r.err == ("drover: the configuration has 2 errors; still running the old one\n"
                     + "".join(e + "\n" for e in errors)), r
    d.wait_log(re.escape("droverd: error: reload: the new configuration has 2 errors; "
                         "still running the old one:\n"
                         + "".join(f"droverd: error:   {e}\n" for e in errors)))
    assert_unchanged(d, before)

    # The old definition is the one in force: a restart runs the old command.
    old_pid = before["alpha"][1][0]
    r = d.drover("restart", "alpha")
    assert r.rc == 0, r
    pid = d.wait_state("alpha", "ready")["pids"][0]
    assert pid != int(old_pid)
    assert cmdline(pid) == [b"sleep", b"1000"]

    # Fixed: the reload goes through.
    before = snapshot(d)
    d.write_config(FIXED)
    r = d.drover("reload")
    assert (r.rc, r.err) == (0, ""), r
    assert r.out == ("reloaded: 1 added, 1 removed, 0 replaced, 0 updated, 1 unchanged\n"
                     "  removed   beta\n"
                     "  added     gamma\n"), r
    d.wait_state("gamma", "ready")
    wait_for(lambda: not process_exists(int(before["beta"][1][0])), what="beta's process to end")
    st = d.status()
    assert sorted(st) == ["alpha", "gamma"]
    assert st["alpha"]["pids"] == before["alpha"][1]


def test_sighup_with_errors_changes_nothing(droverd):
    d, before = start_good(droverd)
    d.write_config(BAD)
    d.send_signal(signal.SIGHUP)
    errors = bad_errors(d)
    d.wait_log(r"droverd: error: reload: the new configuration has 2 errors; still running the old one:\n"
               + r"droverd: error:   .*\n" * 2)
    for e in errors:
        assert f"droverd: error:   {e}\n" in d.log()
    assert_unchanged(d, before)
    assert "reloaded:" not in d.log()

    d.write_config(FIXED)
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"droverd: reloaded: 1 added, 1 removed, 0 replaced, 0 updated, 1 unchanged\n")
    d.wait_state("gamma", "ready")
    assert d.status("alpha")["pids"] == before["alpha"][1]
    assert "beta" not in d.status()


def test_reload_onto_writable_config_changes_nothing(droverd):
    d, before = start_good(droverd)
    d.write_config(FIXED)
    os.chmod(d.conf, 0o666)
    r = d.drover("reload")
    assert (r.rc, r.out) == (1, ""), r
    assert r.err == ("drover: the configuration has 1 error; still running the old one\n"
                     f"cannot read {d.conf}: " + WRITABLE.format(uid=0, mode="0666") + "\n"), r
    assert_unchanged(d, before)


def test_reload_onto_cycle_changes_nothing(droverd):
    d, before = start_good(droverd)
    text = GOOD.replace("command = sleep 1000\n", "command = sleep 1000\nrequires = beta\n") + \
        "requires = alpha\n[service gamma]\ncommand = /bin/sh -c 'touch @DIR@/gamma-started; exec sleep 1000'\n"
    d.write_config(text)
    r = d.drover("reload")
    assert (r.rc, r.out) == (1, ""), r
    assert r.err == ("drover: the configuration has 1 error; still running the old one\n"
                     f"{d.conf}:7: dependency cycle: alpha -> beta -> alpha in [service beta]\n"), r
    assert_unchanged(d, before)


def test_reload_onto_bad_listen_next_to_a_good_one(droverd):
    """The parser crash case of test_bad_listen_next_to_a_good_one, on a
    running droverd: it must answer with the error and keep running."""
    d, before = start_good(droverd)
    d.write_config(GOOD + "listen = tcp:127.0.0.1:0\n[service gamma]\n"
                   "command = /bin/sh -c 'touch @DIR@/gamma-started; exec sleep 1000'\n"
                   "listen = tcp:127.0.0.1:8080\n")
    r = d.drover("reload")
    assert r.err == ("drover: the configuration has 1 error; still running the old one\n"
                     f'{d.conf}:6: bad listen in [service beta]: "tcp:127.0.0.1:0" has a bad port '
                     "(use 1 to 65535)\n"), r
    assert (r.rc, r.out) == (1, ""), r
    assert d.running()
    assert_unchanged(d, before)


def test_reload_with_config_file_gone_changes_nothing(droverd):
    d, before = start_good(droverd)
    os.unlink(d.conf)
    r = d.drover("reload")
    assert (r.rc, r.out) == (1, ""), r
    assert r.err == ("drover: the configuration has 1 error; still running the old one\n"
                     f"cannot read {d.conf}: No such file or directory\n"), r
    assert_unchanged(d, before)
    d.write_config(GOOD)
    r = d.drover("reload")
    assert (r.rc, r.out, r.err) == (0, "reloaded: 0 added, 0 removed, 0 replaced, 0 updated, 2 unchanged\n",
                                    ""), r
    assert snapshot(d) == before


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "link-to-dev-zero"])
def test_reload_onto_endless_config_files_changes_nothing(droverd, kind):
    d, before = start_good(droverd)
    value = endless(d.dir, kind)
    d.write_config(GOOD + f"config_files = {value}\n[service gamma]\n"
                   "command = /bin/sh -c 'touch @DIR@/gamma-started; exec sleep 1000'\n")
    r = d.drover("reload", timeout=10)
    assert (r.rc, r.out) == (1, ""), r
    assert r.err == ("drover: the configuration has 1 error; still running the old one\n"
                     f'{d.conf}:6: bad config_files in [service beta]: "{value}" {NOT_REGULAR}\n'), r
    assert_unchanged(d, before)


def test_reload_onto_include_directory_others_can_write_changes_nothing(droverd):
    d, before = start_good(droverd)
    inc = write(d.dir / "conf.d/g.conf", SECRET + "[service gamma]\n"
                f"command = /bin/sh -c 'touch {d.dir}/gamma-started; exec sleep 1000'\n")
    os.chmod(d.dir / "conf.d", 0o777)
    d.write_config("[drover]\ninclude = conf.d/*.conf\n" + GOOD)
    r = d.drover("reload")
    assert (r.rc, r.out) == (1, ""), r
    assert r.err == ("drover: the configuration has 1 error; still running the old one\n"
                     f"{d.conf}:2: cannot read {inc}: "
                     + WRITABLE_DIR.format(dir=d.dir / "conf.d", uid=0, mode="0777") + "\n"), r
    assert_unchanged(d, before)
    assert "hunter2" not in d.log()


def test_reload_error_quoting_a_line_is_escaped(droverd):
    """In drover reload's answer and in droverd's log."""
    d, before = start_good(droverd)
    d.conf.write_bytes(GOOD.encode() + b"restart_delay = " + HOSTILE + b"\n")
    r = d.drover("reload")
    error = f'{d.conf}:6: bad restart_delay in [service beta]: "{HOSTILE_SHOWN}" {DURATION}'
    assert (r.rc, r.out) == (1, ""), r
    assert r.err == f"drover: the configuration has 1 error; still running the old one\n{error}\n", r
    d.wait_log(re.escape(f"droverd: error:   {error}\n"))
    assert "\x1b" not in d.log() and "\ufffd" not in d.log()
    assert_unchanged(d, before)
