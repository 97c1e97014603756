"""What a process started by droverd gets (SPEC section 4): environment,
descriptors, session, signal state, credentials, directory, umask, limits,
the errors reported when it cannot be started, and where its output goes.

Most facts are read from /proc/PID of a plain `sleep`, which changes none of
them itself, so what is seen is what droverd set up.
"""
import os
import pwd
import re
import resource
import signal

from conftest import wait_for
from helpers_net import PY

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def main_pid(d, name, state="ready"):
    st = d.wait_state(name, state)
    assert len(st["pids"]) == 1, st
    return int(st["pids"][0])


def proc_environ(pid):
    raw = open(f"/proc/{pid}/environ", "rb").read()
    env = {}
    for item in raw.split(b"\0"):
        if item:
            k, _, v = item.decode().partition("=")
            env[k] = v
    return env


def proc_status(pid):
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return fields


def proc_stat(pid):
    """(ppid, pgrp, session) from /proc/PID/stat."""
    rest = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(rest[1]), int(rest[2]), int(rest[3])


def proc_fds(pid):
    base = f"/proc/{pid}/fd"
    return {int(fd): os.readlink(f"{base}/{fd}") for fd in os.listdir(base)}


def proc_limit(pid, what):
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith(what):
            soft, hard = line[len(what):].split()[:2]
            return soft, hard
    raise KeyError(what)


def base_env(name, generation="1"):
    return {"PATH": DEFAULT_PATH, "DROVER_SERVICE": name, "DROVER_GENERATION": generation}


# --- environment -----------------------------------------------------------------

def test_environment_is_path_and_drover_variables_only(droverd):
    d = droverd("""
[service plain]
command = sleep 1000
""", env={"FROM_DROVERD": "leak", "HOME": "/root"})
    assert proc_environ(main_pid(d, "plain")) == base_env("plain")


def test_env_lines_are_added(droverd):
    d = droverd("""
[service withenv]
command = sleep 1000
env = GREETING=hello world
env = LEVEL=1
env = LEVEL=2
env = EMPTY=
""", env={"FROM_DROVERD": "leak"})
    want = base_env("withenv")
    want.update(GREETING="hello world", LEVEL="2", EMPTY="")
    assert proc_environ(main_pid(d, "withenv")) == want


def test_env_inherit_passes_droverds_environment(droverd):
    d = droverd("""
[service inherits]
command = sleep 1000
env_inherit = yes
env = LOCAL=yes

[service plain]
command = sleep 1000
""", env={"FROM_DROVERD": "passed on"})
    env = proc_environ(main_pid(d, "inherits"))
    assert env["FROM_DROVERD"] == "passed on"
    assert env["LOCAL"] == "yes"
    assert env["DROVER_SERVICE"] == "inherits"
    assert env["DROVER_GENERATION"] == "1"
    assert env["PATH"] == DEFAULT_PATH
    assert "NOTIFY_SOCKET" not in env
    assert "FROM_DROVERD" not in proc_environ(main_pid(d, "plain"))


def test_notify_socket_only_for_notify_or_watchdog(droverd):
    d = droverd("""
[service plain]
command = sleep 1000

[service notifying]
command = sleep 1000
ready = notify

[service watched]
command = sleep 1000
ready = notify
watchdog = 10s
""")
    assert proc_environ(main_pid(d, "plain")) == base_env("plain")
    env = proc_environ(main_pid(d, "notifying", "starting"))
    sock = env.pop("NOTIFY_SOCKET")
    assert sock.startswith("@") and len(sock) > 1
    assert env == base_env("notifying")
    env = proc_environ(main_pid(d, "watched", "starting"))
    assert env.pop("NOTIFY_SOCKET") == sock
    assert env.pop("WATCHDOG_USEC") == "10000000"
    assert env == base_env("watched")


def test_generation_grows_when_the_definition_changes(droverd):
    conf = """
[service svc]
command = sleep 1000
env = VERSION={v}
"""
    d = droverd(conf.format(v=1))
    pid = main_pid(d, "svc")
    assert proc_environ(pid)["DROVER_GENERATION"] == "1"
    d.write_config(conf.format(v=2))
    r = d.drover("reload")
    assert r.rc == 0, r
    st = wait_for(lambda: (s := d.status("svc"))["state"] == "ready" and s["pids"]
                  and int(s["pids"][0]) != pid and s, what="the new process")
    assert st["generation"] == 2
    env = proc_environ(int(st["pids"][0]))
    assert env["DROVER_GENERATION"] == "2"
    assert env["VERSION"] == "2"


# --- descriptors, session, signals ------------------------------------------------------

def test_only_stdin_stdout_stderr_are_open(droverd):
    d = droverd("""
[service first]
command = sleep 1000

[service second]
command = sleep 1000
requires = first
""")
    for name in ("first", "second"):
        fds = proc_fds(main_pid(d, name))
        assert sorted(fds) == [0, 1, 2], (name, fds)
        assert fds[0] == "/dev/null"
        assert re.fullmatch(r"pipe:\[\d+\]", fds[1]), fds
        assert fds[2] == fds[1]


def test_own_session_and_process_group(droverd):
    d = droverd("""
[service svc]
command = sleep 1000
""")
    pid = main_pid(d, "svc")
    ppid, pgrp, sid = proc_stat(pid)
    assert ppid == d.pid
    assert pgrp == pid
    assert sid == pid


def test_empty_signal_mask_and_default_dispositions(droverd):
    d = droverd("""
[service svc]
command = sleep 1000
""")
    st = proc_status(main_pid(d, "svc"))
    assert st["SigBlk"] == "0000000000000000"
    assert st["SigIgn"] == "0000000000000000"
    assert st["SigCgt"] == "0000000000000000"
    # droverd itself blocks the signals it reads, and ignores SIGPIPE:
    # none of that may be passed on.
    own = proc_status(d.pid)
    assert own["SigBlk"] != "0000000000000000"


# Execs its arguments with signals ignored, as a careless parent might leave
# them: exec keeps SIG_IGN. Signal 32 is one glibc hides from sigaction();
# on x86_64 the raw call sets it too.
IGNORING = """
import ctypes, os, platform, signal, sys
for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGCHLD, signal.SIGPIPE,
          signal.SIGRTMIN + 1):
    signal.signal(s, signal.SIG_IGN)
if platform.machine() == "x86_64":
    act = (ctypes.c_ulong * 4)(1, 0, 0, 0)
    assert ctypes.CDLL(None).syscall(13, 32, act, None, 8) == 0
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_inherited_ignored_signals_are_not_passed_on(droverd):
    """droverd puts back to default every signal it was started with
    ignored: its services start clean, and droverd still hears SIGTERM."""
    d = droverd("[service svc]\ncommand = sleep 1000\n", start=False)
    d.start(prefix=(PY, "-c", IGNORING))
    st = proc_status(main_pid(d, "svc"))
    assert st["SigIgn"] == "0000000000000000"
    assert st["SigBlk"] == "0000000000000000"
    assert proc_status(d.pid)["SigIgn"] == f"{1 << (signal.SIGPIPE - 1):016x}"
    assert d.stop(signal.SIGTERM) == 0


# --- credentials -------------------------------------------------------------------

def ids(st, key):
    return [int(x) for x in st[key].split()]


def test_user_nobody(droverd):
    d = droverd("""
[service svc]
command = sleep 1000
user = nobody
""")
    nobody = pwd.getpwnam("nobody")
    st = proc_status(main_pid(d, "svc"))
    assert ids(st, "Uid") == [nobody.pw_uid] * 4
    assert ids(st, "Gid") == [nobody.pw_gid] * 4
    assert sorted(ids(st, "Groups")) == sorted(set(os.getgrouplist("nobody", nobody.pw_gid)))
    assert st["CapEff"] == "0000000000000000"
    assert st["CapPrm"] == "0000000000000000"


def user_with_supplementary_groups():
    """A user of this system that belongs to more groups than its own."""
    best = None
    for pw in pwd.getpwall():
        groups = set(os.getgrouplist(pw.pw_name, pw.pw_gid))
        if pw.pw_uid != 0 and len(groups) > 1:
            return pw, groups
        if pw.pw_uid != 0 and best is None:
            best = (pw, groups)
    return best


def test_user_gets_the_supplementary_groups_of_its_entry(droverd):
    pw, groups = user_with_supplementary_groups()
    d = droverd(f"""
[service svc]
command = sleep 1000
user = {pw.pw_name}
""")
    st = proc_status(main_pid(d, "svc"))
    assert ids(st, "Uid") == [pw.pw_uid] * 4
    assert ids(st, "Gid") == [pw.pw_gid] * 4
    assert sorted(ids(st, "Groups")) == sorted(groups)


def test_group_alone_keeps_the_user_and_drops_supplementary_groups(droverd):
    d = droverd("""
[service svc]
command = sleep 1000
group = nogroup
""")
    st = proc_status(main_pid(d, "svc"))
    assert ids(st, "Uid") == [os.geteuid()] * 4
    assert ids(st, "Gid") == [65534] * 4
    assert ids(st, "Groups") == []


def test_numeric_user_and_group(droverd):
    d = droverd("""
[service svc]
command = sleep 1000
user = 4242
group = 4343
""")
    st = proc_status(main_pid(d, "svc"))
    assert ids(st, "Uid") == [4242] * 4
    assert ids(st, "Gid") == [4343] * 4
    assert ids(st, "Groups") == []


# --- directory, umask, limits -----------------------------------------------------------

def test_chdir_default_is_root(droverd):
    d = droverd("""
[service svc]
command = sleep 1000
""")
    assert os.readlink(f"/proc/{main_pid(d, 'svc')}/cwd") == "/"


def test_chdir(droverd):
    d = droverd("""
[service svc]
command = sleep 1000
chdir = @DIR@/work
""", start=False)
    (d.dir / "work").mkdir()
    d.start()
    assert os.readlink(f"/proc/{main_pid(d, 'svc')}/cwd") == str(d.dir / "work")


def test_umask(droverd):
    old = os.umask(0o077)       # droverd's own umask must not be passed on
    try:
        d = droverd("""
[service tight]
command = sleep 1000
umask = 027

[service default]
command = sleep 1000
""")
    finally:
        os.umask(old)
    assert proc_status(main_pid(d, "tight"))["Umask"] == "0027"
    assert proc_status(main_pid(d, "default"))["Umask"] == "0022"


def test_limits(droverd):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 1000)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        d = droverd("""
[service fixed]
command = sleep 1000
limit_nofile = 512
limit_core = 1M

[service split]
command = sleep 1000
limit_nofile = 256:1024

[service inherited]
command = sleep 1000
""")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    fixed = main_pid(d, "fixed")
    assert proc_limit(fixed, "Max open files") == ("512", "512")
    assert proc_limit(fixed, "Max core file size") == ("1048576", "1048576")
    assert proc_limit(main_pid(d, "split"), "Max open files") == ("256", "1024")
    # droverd may raise its own soft limit; its children get the original.
    assert proc_limit(main_pid(d, "inherited"), "Max open files") == (str(lowered), str(hard))


# --- commands -------------------------------------------------------------------------

def test_relative_command_is_searched_in_path(droverd):
    d = droverd("""
[service svc]
command = sleep 1000
""")
    pid = main_pid(d, "svc")
    assert os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath("/usr/bin/sleep")
    assert open(f"/proc/{pid}/cmdline").read() == "sleep\x001000\x00"


def test_relative_command_uses_the_services_path(droverd):
    d = droverd("""
[service svc]
command = mytool one 'two words'
env = PATH=@DIR@/bin:/usr/bin:/bin
""", start=False)
    (d.dir / "bin").mkdir()
    tool = d.dir / "bin" / "mytool"
    tool.write_text(f'#!/bin/sh\necho "$0|$1|$2" > {d.dir}/seen\nexec sleep 1000\n')
    os.chmod(tool, 0o755)
    d.start()
    main_pid(d, "svc")
    seen = wait_for(lambda: (d.dir / "seen").read_text(), what="the tool to run")
    assert seen == f"{tool}|one|two words\n"


def cannot_start(d, name, reason):
    st = d.wait_state(name, "failed")
    assert st["reason"] == reason
    assert st["pids"] == []
    log = d.log()
    assert f"droverd: error: {name}: {reason}\n" in log
    assert f"droverd: warning: {name}: {reason}; not restarting (restart = no)\n" in log
    return st


def test_missing_command(droverd):
    d = droverd("""
[service svc]
command = /nonexistent
restart = no
""")
    cannot_start(d, "svc", "cannot exec /nonexistent: No such file or directory")


def test_missing_command_is_retried_with_the_reason_shown(droverd):
    d = droverd("""
[service svc]
command = /nonexistent --flag
restart_delay = 5s
""")
    st = d.wait_state("svc", "backoff")
    assert st["reason"] == "cannot exec /nonexistent: No such file or directory; restarting in 5s"
    assert ("droverd: warning: svc: cannot exec /nonexistent: No such file or directory; "
            "restarting in 5s\n") in d.log()


def test_missing_relative_command(droverd):
    d = droverd("""
[service svc]
command = no-such-program-here
restart = no
""")
    cannot_start(d, "svc", "cannot exec no-such-program-here: No such file or directory (searched PATH)")


def test_command_not_executable(droverd):
    d = droverd("""
[service svc]
command = @DIR@/plain.txt
restart = no

[service inpath]
command = plain.txt
env = PATH=@DIR@:/usr/bin
restart = no
""", start=False)
    (d.dir / "plain.txt").write_text("#!/bin/sh\nexec sleep 1000\n")
    os.chmod(d.dir / "plain.txt", 0o644)
    d.start()
    cannot_start(d, "svc", f"cannot exec {d.dir}/plain.txt: Permission denied")
    cannot_start(d, "inpath", "cannot exec plain.txt: Permission denied (searched PATH)")


def test_chdir_to_a_missing_directory(droverd):
    d = droverd("""
[service svc]
command = sleep 1000
chdir = @DIR@/missing
restart = no
""")
    cannot_start(d, "svc", f"cannot change directory to {d.dir}/missing: No such file or directory")


def test_oneshot_that_cannot_start_fails(droverd):
    d = droverd("""
[service job]
mode = oneshot
command = /nonexistent
""")
    st = cannot_start(d, "job", "cannot exec /nonexistent: No such file or directory")
    assert st["last_exit"] == ""


# --- output ---------------------------------------------------------------------------

def test_output_lines_go_to_droverds_log(droverd):
    d = droverd("""
[service talker]
mode = oneshot
command = /bin/sh -c 'echo to stdout; echo to stderr >&2; echo; printf "no newline"'
""")
    st = d.wait_state("talker", "done")
    pid = wait_for(lambda: re.search(r"^droverd: talker: started, pid (\d+)$", d.log(), re.M),
                   what="the start line").group(1)
    d.wait_log(rf"talker\[{pid}\]: no newline\n")
    lines = re.findall(rf"^talker\[{pid}\]: (.*)$", d.log(), re.M)
    assert lines == ["to stdout", "to stderr", "", "no newline"]
    assert st["pids"] == []
    r = d.drover("logs", "talker")
    assert r.rc == 0, r
    got = r.out.splitlines()
    assert len(got) == 4, r.out
    for line, text in zip(got, ["to stdout", "to stderr", "", "no newline"]):
        assert re.fullmatch(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{{3}} talker\[{pid}\]: {text}", line), line


def test_output_of_a_user_service(droverd):
    d = droverd("""
[service svc]
command = /bin/sh -c 'echo I am $(id -u); exec sleep 1000'
user = nobody
""")
    pid = main_pid(d, "svc")
    d.wait_log(rf"\nsvc\[{pid}\]: I am 65534\n")
