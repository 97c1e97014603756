"""Service output and droverd's own log.

A service's standard output and error are read line by line by droverd and
go to its ring (`drover logs`), to followers (`drover logs -f`) and to its
destination: droverd's log as `NAME[PID]: text` (log = inherit), a rotated
file (log = file:PATH), or nowhere (log = null). None of it may ever stall
droverd: not a chatty service, not a log file that cannot be written, not a
stderr pipe that nobody reads.
"""
import os
import re
import select
import shutil
import signal
import subprocess
import threading
import time

import pytest

import conftest
from conftest import DROVER, DROVERD, SANITIZED, SLOW, wait_for

# In a sanitizer build, a child prints this ASan notice (about the stack it
# runs on before exec) into its own output: not the service's output.
ASAN_NOTICE = re.compile(r"==\d+==WARNING: ASan is ignoring requested __asan_handle_no_return|"
                         r"False positive error reports may follow$|"
                         r"For details see https://github.com/google/sanitizers/issues/189$")


def without_notice(lines):
    return [x for x in lines if not (SANITIZED and ASAN_NOTICE.search(x))]


STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}"          # drover logs
FILE_STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}"  # file: destination


class Feeder:
    """A FIFO a service reads (`cat <> FIFO`): the test decides what it prints."""

    def __init__(self, path):
        self.path = path
        os.mkfifo(path)
        # Read-write: opening never blocks and the service never sees EOF.
        self.fd = os.open(path, os.O_RDWR)

    def say(self, *lines):
        os.write(self.fd, "".join(line + "\n" for line in lines).encode())

    def close(self):
        os.close(self.fd)


@pytest.fixture
def feeders(tmp_path):
    made = {}

    def make(name="in"):
        f = Feeder(tmp_path / f"{name}.fifo")
        made[name] = f
        return f

    yield make
    for f in made.values():
        f.close()


def cat_service(name, fifo="in", extra=""):
    return f"""
[service {name}]
command = /bin/sh -c 'exec cat <> @DIR@/{fifo}.fifo'
{extra}
"""


def the_pid(d, name):
    st = d.wait_state(name, "ready")
    assert len(st["pids"]) == 1, st
    return st["pids"][0]


def log_lines(d):
    return without_notice(d.log().splitlines())


def logs_cmd(d, *args):
    r = d.drover("logs", *args)
    assert r.rc == 0, r
    return without_notice(r.out.splitlines())


def strip_stamp(line, name, pid):
    m = re.fullmatch(rf"{STAMP} {re.escape(name)}\[{pid}\]: (.*)", line)
    assert m, f"not a `drover logs` line of {name}[{pid}]: {line!r}"
    return m.group(1)


def kill_orphans(*pids):
    """Services of a droverd that died were re-parented to us: end them."""
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
            os.waitpid(p, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


# --- log = inherit ----------------------------------------------------------

def test_inherit_prefixes_each_line_with_name_and_pid(droverd):
    d = droverd("""
[service web.1]
command = /bin/sh -c 'echo hello; echo "to stderr" >&2; echo "  spaced  "; exec sleep 1000'
""")
    pid = the_pid(d, "web.1")
    d.wait_log(rf"(?m)^web\.1\[{pid}\]:   spaced  $")
    lines = log_lines(d)
    assert f"web.1[{pid}]: hello" in lines
    assert f"web.1[{pid}]: to stderr" in lines
    ours = [x for x in lines if x.startswith("web.1[")]
    assert ours == [f"web.1[{pid}]: hello", f"web.1[{pid}]: to stderr", f"web.1[{pid}]:   spaced  "]


def test_long_line_is_split_at_4096_bytes(droverd, tmp_path):
    (tmp_path / "long.sh").write_text(
        "head -c 5000 /dev/zero | tr '\\0' x; echo\n"
        "head -c 8193 /dev/zero | tr '\\0' z; echo\n"
        "echo done\n"
        "exec sleep 1000\n")
    d = droverd("""
[service a]
command = /bin/sh @DIR@/long.sh
""")
    pid = the_pid(d, "a")
    d.wait_log(rf"(?m)^a\[{pid}\]: done$")
    ours = [x[len(f"a[{pid}]: "):] for x in log_lines(d) if x.startswith(f"a[{pid}]: ")]
    assert ours == ["x" * 4096, "x" * 904, "z" * 4096, "z" * 4096, "z", "done"]
    got = [strip_stamp(x, "a", pid) for x in logs_cmd(d, "a")]
    assert got == ours


def test_line_of_exactly_4096_bytes_is_one_line(droverd, tmp_path):
    # Not longer than 4096 bytes: not split, even when its newline comes in
    # a later write than its text (the service pauses in between).
    (tmp_path / "exact.sh").write_text(
        "printf '%4096s\\n' | tr ' ' w\n"
        "head -c 4096 /dev/zero | tr '\\0' y; sleep 0.3; echo\n"
        "echo done\n"
        "exec sleep 1000\n")
    d = droverd("""
[service a]
command = /bin/sh @DIR@/exact.sh
""")
    pid = the_pid(d, "a")
    d.wait_log(rf"(?m)^a\[{pid}\]: done$")
    ours = [x[len(f"a[{pid}]: "):] for x in log_lines(d) if x.startswith(f"a[{pid}]: ")]
    assert ours == ["w" * 4096, "y" * 4096, "done"]


def test_partial_last_line_is_delivered_when_the_process_exits(droverd):
    d = droverd("""
[service a]
command = /bin/sh -c 'echo first; printf "last words"'
restart = no
""")
    st = wait_for(lambda: d.status("a")["last_exit"] and d.status("a"),
                  what=f"a to exit\n{d.log()}")
    pid = re.search(r"(?m)^droverd: a: started, pid (\d+)$", d.log()).group(1)
    assert st["last_exit"] == "exited with status 0", st
    lines = log_lines(d)
    assert f"a[{pid}]: first" in lines
    assert f"a[{pid}]: last words" in lines
    # The output comes before the note of the exit that ended it.
    assert lines.index(f"a[{pid}]: last words") < \
        next(i for i, x in enumerate(lines) if "a: exited with status 0" in x)
    assert [strip_stamp(x, "a", pid) for x in logs_cmd(d, "a")] == ["first", "last words"]


def test_partial_line_of_a_stopped_process_is_delivered(droverd):
    d = droverd("""
[service a]
command = /bin/sh -c 'printf "no newline yet"; exec sleep 1000'
""")
    pid = the_pid(d, "a")
    assert d.drover("stop", "--no-wait", "a").rc == 0
    d.wait_state("a", "stopped")
    d.wait_log(rf"(?m)^a\[{pid}\]: no newline yet$")


def test_line_written_in_pieces_is_one_line(droverd):
    d = droverd("""
[service a]
command = /bin/sh -c 'printf "part1"; sleep 0.3; printf "part2"; sleep 0.3; echo "part3"; exec sleep 1000'
""")
    pid = the_pid(d, "a")
    d.wait_log(rf"(?m)^a\[{pid}\]: part1part2part3$")
    assert f"a[{pid}]: part1\n" not in d.log()


def test_nul_bytes_become_spaces(droverd):
    d = droverd(r"""
[service a]
command = /bin/sh -c 'printf "nul\000in\000\000middle\n"; printf "\000\n"; echo end; exec sleep 1000'
""")
    pid = the_pid(d, "a")
    d.wait_log(rf"(?m)^a\[{pid}\]: end$")
    ours = [x for x in log_lines(d) if x.startswith(f"a[{pid}]: ")]
    assert ours == [f"a[{pid}]: nul in  middle", f"a[{pid}]:  ", f"a[{pid}]: end"]
    assert "\0" not in d.log()
    assert [strip_stamp(x, "a", pid) for x in logs_cmd(d, "a")] == ["nul in  middle", " ", "end"]


# --- drover logs ------------------------------------------------------------

def test_logs_shows_recent_lines_and_n_limits_them(droverd):
    d = droverd("""
[service a]
command = /bin/sh -c 'i=1; while [ $i -le 60 ]; do echo "line $i"; i=$((i+1)); done; exec sleep 1000'
""")
    pid = the_pid(d, "a")
    d.wait_log(rf"(?m)^a\[{pid}\]: line 60$")
    # Default: the last 50.
    got = [strip_stamp(x, "a", pid) for x in logs_cmd(d, "a")]
    assert got == [f"line {i}" for i in range(11, 61)]
    got = [strip_stamp(x, "a", pid) for x in logs_cmd(d, "a", "-n", "3")]
    assert got == ["line 58", "line 59", "line 60"]
    got = [strip_stamp(x, "a", pid) for x in logs_cmd(d, "a", "-n", "1000")]
    assert got == [f"line {i}" for i in range(1, 61)]


def test_logs_ring_keeps_the_most_recent_lines(droverd):
    d = droverd("""
[service a]
command = /bin/sh -c 'i=1; while [ $i -le 3000 ]; do echo "line $i"; i=$((i+1)); done; exec sleep 1000'
""")
    pid = the_pid(d, "a")
    wait_for(lambda: logs_cmd(d, "a", "-n", "1") and
             logs_cmd(d, "a", "-n", "1")[0].endswith("line 3000"), what="line 3000")
    got = [strip_stamp(x, "a", pid) for x in logs_cmd(d, "a", "-n", "100000")]
    assert 50 < len(got) < 3000
    first = int(got[0].split()[1])
    assert got == [f"line {i}" for i in range(first, 3001)]


def test_logs_errors(droverd):
    d = droverd("""
[service a]
command = sleep 1000
""")
    d.wait_state("a", "ready")
    r = d.drover("logs", "nope")
    assert (r.rc, r.out, r.err) == (1, "", 'drover: unknown service "nope"\n')
    r = d.drover("logs")
    assert (r.rc, r.err.splitlines()[0]) == (2, "drover: logs: which service?")
    r = d.drover("logs", "a", "-n")
    assert (r.rc, r.err.splitlines()[0]) == (2, "drover: logs: -n needs a number of lines")
    # A quiet service has an empty log.
    r = d.drover("logs", "a")
    assert (r.rc, without_notice(r.out.splitlines()), r.err) == (0, [], "")


class Follower:
    """`drover logs -f` in the background, read without blocking the test."""

    def __init__(self, d, *args):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DROVER_SOCKET": str(d.sock)}
        self.p = subprocess.Popen([str(DROVER), "logs", *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
        self.buf = b""
        self.lines = []

    def read_until(self, pred, timeout=10):
        deadline = time.monotonic() + timeout * SLOW
        fd = self.p.stdout.fileno()
        while not any(pred(x) for x in self.lines):
            left = deadline - time.monotonic()
            assert left > 0, (f"follower did not show the line; it showed {len(self.lines)} "
                              f"lines, ending with {self.lines[-5:]!r}")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            assert chunk, (f"follower ended: {self.p.wait()} {self.p.stderr.read()!r} "
                           f"{self.lines[-5:]!r}")
            self.buf += chunk
            *done, self.buf = self.buf.split(b"\n")
            self.lines += without_notice(x.decode(errors="replace") for x in done)
        return self.lines

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
        self.p.wait(timeout=10)
        if not self.p.stdout.closed:
            self.p.stdout.close()
            self.p.stderr.close()


def test_logs_follow_shows_new_lines(droverd, feeders):
    f = feeders()
    d = droverd(cat_service("a"))
    pid = the_pid(d, "a")
    f.say("before")
    d.wait_log(rf"(?m)^a\[{pid}\]: before$")
    fol = Follower(d, "a", "-f")
    try:
        fol.read_until(lambda x: x.endswith(f"a[{pid}]: before"))
        f.say("after 1")
        fol.read_until(lambda x: x.endswith(f"a[{pid}]: after 1"))
        f.say("after 2", "after 3")
        lines = fol.read_until(lambda x: x.endswith(f"a[{pid}]: after 3"))
        assert [strip_stamp(x, "a", pid) for x in lines] == ["before", "after 1", "after 2", "after 3"]
        assert fol.p.poll() is None
        # It follows the service, not one process: a restart goes on.
        assert d.drover("restart", "--no-wait", "a").rc == 0
        new = wait_for(lambda: d.status("a")["pids"] not in ([], [pid]) and d.status("a")["pids"],
                       what="a new process of a")[0]
        f.say("from the new one")
        fol.read_until(lambda x: x.endswith(f"a[{new}]: from the new one"))
    finally:
        fol.stop()
    # droverd is fine after a follower went away.
    f.say("after the follower")
    d.wait_log(r"(?m)^a\[\d+\]: after the follower$")
    assert d.drover("status").rc == 0


def test_logs_follow_with_n_0_shows_only_new_lines(droverd, feeders):
    f = feeders()
    d = droverd(cat_service("a"))
    pid = the_pid(d, "a")
    f.say("old")
    d.wait_log(rf"(?m)^a\[{pid}\]: old$")
    fol = Follower(d, "a", "-f", "-n", "0")
    try:
        # The follower is registered when droverd handles the request, which
        # the test cannot see: say numbered lines until one shows.
        lines = []
        for n in range(1, 50):
            f.say(f"new {n}")
            try:
                lines = fol.read_until(lambda x: ": new " in x, timeout=0.5 / SLOW)
                break
            except AssertionError:
                continue
        assert lines, "the follower showed nothing"
        assert not any(x.endswith(": old") for x in lines), lines
    finally:
        fol.stop()


def test_follower_leaving_while_its_removed_service_drains(droverd, feeders):
    # The service is removed by a reload but its process ignores TERM and
    # goes on printing while it drains; a follower that leaves meanwhile
    # must be forgotten: its lines go to nobody else, droverd goes on.
    f, fk = feeders("in"), feeders("k")
    d = droverd(cat_service("keep", "k") + """
[service a]
command = /bin/sh -c 'trap "" TERM; exec cat <> @DIR@/in.fifo'
stop_timeout = 3s
""")
    pid = the_pid(d, "a")
    keep = the_pid(d, "keep")
    fds = wait_for(lambda: len(os.listdir(f"/proc/{d.pid}/fd")), what="droverd's descriptors")
    fol = Follower(d, "a", "-f")
    other = None
    try:
        f.say("one")
        fol.read_until(lambda x: x.endswith(f"a[{pid}]: one"))
        d.write_config(cat_service("keep", "k"))
        r = d.drover("reload")
        assert r.rc == 0 and r.out.endswith("  removed   a\n"), r
        f.say("while draining")
        fol.read_until(lambda x: x.endswith(f"a[{pid}]: while draining"))
        fol.stop()
        wait_for(lambda: len(os.listdir(f"/proc/{d.pid}/fd")) == fds,
                 what="droverd to close the follower's connection")
        # Another client follows another service.
        other = Follower(d, "keep", "-f")
        fk.say("k1")
        other.read_until(lambda x: x.endswith(f"keep[{keep}]: k1"))
        # The draining process prints again.
        f.say("after the follower left")
        d.wait_log(rf"(?m)^a\[{pid}\]: after the follower left$")
        fk.say("k2")
        lines = other.read_until(lambda x: x.endswith(f"keep[{keep}]: k2"))
        assert [x for x in lines if "keep[" not in x] == [], lines
        wait_for(lambda: not d.running() or "droverd: a: removed\n" in d.log(), timeout=15,
                 what="a to be removed")
        assert d.running(), f"droverd died:\n{d.log()}"
        assert d.drover("status").rc == 0
    finally:
        fol.stop()
        if other:
            other.stop()
        if not d.running():
            kill_orphans(keep, pid)


def test_follower_that_does_not_read_does_not_stall_droverd(droverd, feeders):
    total = 100000
    f = feeders()
    d = droverd(cat_service("a"))
    pid = the_pid(d, "a")
    f.say("hello")
    d.wait_log(rf"(?m)^a\[{pid}\]: hello$")
    fol = Follower(d, "a", "-f")
    try:
        fol.read_until(lambda x: x.endswith(f"a[{pid}]: hello"))
        # The follower stops reading; the service says a lot.
        writer = threading.Thread(target=f.say, args=[f"n{i}" for i in range(total)])
        writer.start()
        writer.join(timeout=60 * SLOW)
        assert not writer.is_alive(), "droverd stopped reading the service"
        wait_for(lambda: logs_cmd(d, "a", "-n", "1")[0].endswith(f": n{total - 1}"),
                 timeout=30, what="the last line in the ring")
        assert d.drover("status", timeout=5).rc == 0
        # Once it reads again, it is told how many lines it missed: say
        # numbered lines until one comes through (those said while its
        # backlog was still full are missed too).
        lines = []
        for k in range(1, 200):
            f.say(f"final {k}")
            try:
                lines = fol.read_until(lambda x: ": final " in x, timeout=0.5 / SLOW)
                break
            except AssertionError:
                continue
        assert lines, "the follower never got going again"
    finally:
        fol.stop()
    notes = [x for x in lines if "lines dropped" in x]
    assert len(notes) == 1, notes
    m = re.fullmatch(rf"{STAMP} a: \((\d+) lines dropped: the client reads too slowly\)", notes[0])
    assert m, notes[0]
    at = lines.index(notes[0])
    got = [strip_stamp(x, "a", pid) for x in lines[:at]]
    finals = [strip_stamp(x, "a", pid) for x in lines[at + 1:]]
    # The note comes just before the first line that came through.
    first = int(finals[0].split()[1])
    assert finals == [f"final {j}" for j in range(first, first + len(finals))], finals
    assert got[0] == "hello"
    nums = [int(x[1:]) for x in got[1:]]
    assert nums == sorted(nums)
    # Every line is either shown or counted as dropped.
    assert len(nums) + int(m.group(1)) == total + first - 1, (len(nums), m.group(1), first)
    assert d.drover("status").rc == 0


# --- log = null ---------------------------------------------------------------

def test_log_null_shows_nothing(droverd):
    d = droverd("""
[service quiet]
command = /bin/sh -c 'echo secret-out; echo secret-err >&2'
restart = no
log = null

[service loud]
command = /bin/sh -c 'echo visible-out; echo visible-err >&2'
restart = no
""")
    for n in ("quiet", "loud"):
        wait_for(lambda: d.status(n)["last_exit"] == "exited with status 0", what=f"{n} to exit")
    assert "visible-out" in d.log() and "visible-err" in d.log()
    assert "secret" not in d.log()
    r = d.drover("logs", "quiet")
    assert (r.rc, r.out, r.err) == (0, "", "drover: output discarded (log = null)\n")
    assert len(logs_cmd(d, "loud")) == 2


# --- log = file: ----------------------------------------------------------------

def file_lines(path):
    try:
        return without_notice(path.read_text().splitlines())
    except FileNotFoundError:
        return []


def file_texts(path, name, pid):
    out = []
    for line in file_lines(path):
        m = re.fullmatch(rf"{FILE_STAMP} {re.escape(name)}\[{pid}\]: (.*)", line)
        assert m, f"not a log file line of {name}[{pid}]: {line!r}"
        out.append(m.group(1))
    return out


def test_file_destination_has_timestamps(droverd, tmp_path):
    d = droverd("""
[service a]
command = /bin/sh -c 'echo hello; echo world >&2; exec sleep 1000'
log = file:@DIR@/x.log
""")
    pid = the_pid(d, "a")
    x = tmp_path / "x.log"
    wait_for(lambda: len(file_lines(x)) == 2, what="two lines in x.log")
    assert file_texts(x, "a", pid) == ["hello", "world"]
    assert f"a[{pid}]:" not in d.log()
    assert [strip_stamp(y, "a", pid) for y in logs_cmd(d, "a")] == ["hello", "world"]


def test_file_destination_rotates_keeping_log_keep_files(droverd, tmp_path):
    d = droverd("""
[service a]
command = /bin/sh -c 'i=1000; while [ $i -lt 1400 ]; do echo "line $i"; i=$((i+1)); done; exec sleep 1000'
log = file:@DIR@/x.log
log_max_size = 1K
log_keep = 2
""")
    pid = the_pid(d, "a")
    x = tmp_path / "x.log"
    wait_for(lambda: file_lines(x) and file_lines(x)[-1].endswith("line 1399"),
             what="line 1399 in x.log")
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("x.log"))
    assert names == ["x.log", "x.log.1", "x.log.2"]
    texts = []
    for name in ("x.log.2", "x.log.1", "x.log"):
        p = tmp_path / name
        assert 0 < p.stat().st_size <= 1024, (name, p.stat().st_size)
        texts += file_texts(p, "a", pid)
    # The three files hold the most recent lines, in order, none lost between them.
    first = int(texts[0].split()[1])
    assert texts == [f"line {i}" for i in range(first, 1400)]
    assert first > 1000


def test_sigusr1_reopens_service_log_files(droverd, tmp_path, feeders):
    f = feeders()
    d = droverd(cat_service("a", extra="log = file:@DIR@/x.log"))
    pid = the_pid(d, "a")
    x, moved = tmp_path / "x.log", tmp_path / "x.log.moved"
    f.say("one")
    wait_for(lambda: file_texts(x, "a", pid) == ["one"], what="one in x.log")
    x.rename(moved)
    f.say("two")
    wait_for(lambda: file_texts(moved, "a", pid) == ["one", "two"], what="two in the moved file")
    assert not x.exists()
    d.send_signal(signal.SIGUSR1)
    f.say("three")
    wait_for(lambda: file_texts(x, "a", pid) == ["three"], what="three in a new x.log")
    assert file_texts(moved, "a", pid) == ["one", "two"]
    assert d.pids("a") == [pid]


def test_unwritable_log_file_is_reported_once_and_droverd_goes_on(droverd, tmp_path, feeders):
    fa, fb = feeders("a"), feeders("b")
    sub = tmp_path / "sub"
    sub.mkdir()
    d = droverd(cat_service("a", "a", "log = file:@DIR@/sub/x.log") + cat_service("b", "b"))
    a, b = the_pid(d, "a"), the_pid(d, "b")
    x = sub / "x.log"
    fa.say("one")
    wait_for(lambda: file_texts(x, "a", a) == ["one"], what="one in x.log")
    shutil.rmtree(sub)
    d.send_signal(signal.SIGUSR1)
    msg = (f"droverd: error: a: cannot write log file {x}: No such file or directory; "
           "dropping its output until it can")
    d.wait_log(rf"(?m)^{re.escape(msg)}$")
    fa.say("l1", "l2", "l3")
    wait_for(lambda: logs_cmd(d, "a", "-n", "1")[0].endswith(": l3"), what="l3 in the ring")
    fb.say("b is fine")
    d.wait_log(rf"(?m)^b\[{b}\]: b is fine$")
    assert d.log().count("cannot write log file") == 1
    st = d.status()
    assert st["a"]["pids"] == [a] and st["a"]["state"] == "ready", st
    assert st["b"]["pids"] == [b] and st["b"]["state"] == "ready", st
    # Once it can be written again, it is, and the loss is counted.
    sub.mkdir()
    fa.say("back")
    d.wait_log(rf"(?m)^droverd: a: writing log file {re.escape(str(x))} again "
               r"\(3 lines were dropped\)$")
    wait_for(lambda: file_texts(x, "a", a) == ["back"], what="back in the new x.log")
    assert d.log().count("cannot write log file") == 1


def test_log_file_in_missing_directory_at_start(droverd, tmp_path, feeders):
    fb = feeders("b")
    d = droverd("""
[service a]
command = /bin/sh -c 'i=0; while [ $i -lt 20 ]; do echo "line $i"; i=$((i+1)); done; exec sleep 1000'
log = file:@DIR@/missing/x.log
""" + cat_service("b", "b"))
    a, b = the_pid(d, "a"), the_pid(d, "b")
    x = tmp_path / "missing" / "x.log"
    wait_for(lambda: logs_cmd(d, "a", "-n", "1")[0].endswith(": line 19"), what="line 19")
    msg = (f"droverd: error: a: cannot write log file {x}: No such file or directory; "
           "dropping its output until it can")
    assert d.log().count(msg) == 1, d.log()
    fb.say("b is fine")
    d.wait_log(rf"(?m)^b\[{b}\]: b is fine$")
    assert d.pids("a") == [a]


def test_reload_switches_destination_without_restart(droverd, tmp_path, feeders):
    f = feeders()
    d = droverd(cat_service("a"))
    pid = the_pid(d, "a")
    f.say("to droverd")
    d.wait_log(rf"(?m)^a\[{pid}\]: to droverd$")
    d.write_config(cat_service("a", extra="log = file:@DIR@/x.log"))
    r = d.drover("reload")
    assert r.rc == 0 and r.out.endswith("  updated   a\n"), r
    f.say("to the file")
    x = tmp_path / "x.log"
    wait_for(lambda: file_texts(x, "a", pid) == ["to the file"], what="line in x.log")
    assert "to the file" not in d.log()
    assert d.pids("a") == [pid]


# --- droverd's own log never blocks -------------------------------------------

def test_unread_stderr_pipe_does_not_stall_droverd(droverd, tmp_path):
    total = 50000
    d = droverd(f"""
[service chatty]
command = /bin/sh -c 'seq 1 {total}; exec sleep 1000'

[service calm]
command = sleep 1000
""", start=False)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    proc = subprocess.Popen([str(DROVERD), "-c", str(d.conf), "-S", str(d.sock)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    conftest._known_children.add(proc.pid)
    d.proc = proc
    d.log_fh = open(os.devnull, "wb")   # the fixture closes it
    out = bytearray()
    reader = None
    try:
        wait_for(lambda: d.drover("version").rc == 0, what="droverd to answer")
        pid = d.wait_state("chatty", "ready")["pids"][0]
        # Nobody reads droverd's stderr, yet it takes every line of the
        # service (its ring shows the last one) and keeps answering.
        wait_for(lambda: logs_cmd(d, "chatty", "-n", "1")[0].endswith(f"chatty[{pid}]: {total}"),
                 timeout=30, what="the last line of chatty in its ring")
        for _ in range(5):
            r = d.drover("status", timeout=5)
            assert r.rc == 0, r
        assert d.state("calm") == "ready"
        assert proc.poll() is None

        # Now drain the pipe: the count of dropped lines comes out.
        def read_all():
            while True:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    return
                out.extend(chunk)
        reader = threading.Thread(target=read_all, daemon=True)
        reader.start()
        dropped_rx = re.compile(rb"(?m)^droverd: warning: log destination: (\d+) lines dropped$")
        m = wait_for(lambda: dropped_rx.search(bytes(out)), timeout=20,
                     what="the dropped-lines report")
        dropped = int(m.group(1))
        assert dropped > 0
        assert d.drover("status").rc == 0
        d.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20 * SLOW) == 0
        reader.join(timeout=20 * SLOW)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if reader is None:
            out.extend(proc.stdout.read())
        proc.stdout.close()
        d.logfile.write_bytes(bytes(out))
        d.exit_code = proc.returncode
        conftest._known_children.discard(proc.pid)
        d.log_fh.close()
    d.check_log()
    text = out.decode(errors="replace")
    # What got through is whole lines, in order; with what was dropped it
    # accounts for every line of the service.
    got = [x for x in without_notice(text.splitlines()) if x.startswith("chatty[")]
    nums = []
    for line in got:
        m = re.fullmatch(rf"chatty\[{pid}\]: (\d+)", line)
        assert m, f"torn line in droverd's log: {line!r}"
        nums.append(int(m.group(1)))
    assert nums == sorted(nums) and len(set(nums)) == len(nums)
    assert len(nums) < total
    others = len(text.splitlines()) - len(got)
    assert total <= len(nums) + dropped <= total + others + 10, (len(nums), dropped)
