"""droverd's own log when it cannot be written.

A full disk under `log = file:`, a stderr pipe whose reader went away, a
syslog daemon that restarted: droverd counts the lines it could not write,
goes on supervising (no crash, no spin, services keep their PIDs), and once
the destination works again says how many lines were lost and why. It opens
its log file only as a regular file, never through a symbolic link, and
never waits on a FIFO.

Real faults only: a small tmpfs filled up, a pipe closed by its reader, and
droverd run in a private mount namespace where /dev is a directory of the
test holding the syslog socket the test binds, closes and binds again.
"""
import os
import re
import select
import socket
import subprocess
import time

import pytest

import conftest
from conftest import SLOW, wait_for

CHATTY = """
[service chatty]
command = /bin/sh -c 'exec cat <> @DIR@/in.fifo'

[service calm]
command = sleep 1000
"""

# Lines droverd writes itself that a test may see besides the service's.
FILE_STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}"


class Feeder:
    """A FIFO the chatty service reads: the test decides what it prints."""

    def __init__(self, path):
        os.mkfifo(path)
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)

    def say(self, *lines):
        """Bounded: a service that stopped reading (its droverd died) fails
        the test instead of hanging it."""
        data = "".join(x + "\n" for x in lines).encode()
        deadline = time.monotonic() + 10 * SLOW
        while data:
            try:
                data = data[os.write(self.fd, data):]
            except BlockingIOError:
                left = deadline - time.monotonic()
                assert left > 0, "the service does not read its input (is droverd alive?)"
                select.select([], [self.fd], [], min(left, 0.1))

    def close(self):
        os.close(self.fd)


@pytest.fixture
def feeder(tmp_path):
    f = Feeder(tmp_path / "in.fifo")
    yield f
    f.close()


def asan_env(tmp_path):
    """Sanitizer reports to files: droverd's stderr may go nowhere here."""
    return {"ASAN_OPTIONS": f"detect_leaks=1:abort_on_error=0:exitcode=99:log_path={tmp_path}/asan",
            "UBSAN_OPTIONS": f"print_stacktrace=1:halt_on_error=1:log_path={tmp_path}/asan"}


def check_no_sanitizer_files(tmp_path):
    for p in tmp_path.glob("asan*"):
        text = p.read_text(errors="replace")
        assert not conftest.SANITIZER_PATTERNS.search(text), f"sanitizer report in {p}:\n{text}"


def ring_last(d, name):
    r = d.drover("logs", name, "-n", "1")
    assert r.rc == 0, r
    return r.out.splitlines()[-1] if r.out else ""


def alive_and_unchanged(d, pids):
    assert d.running(), f"droverd died (status {d.proc.poll()})"
    st = d.status()
    for name, pid in pids.items():
        assert st[name]["state"] == "ready" and st[name]["pids"] == [pid], st


def the_pids(d, *names):
    out = {}
    for n in names:
        st = d.wait_state(n, "ready")
        out[n] = st["pids"][0]
    return out


# --- a full disk under log = file: ------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs under the test directory; always unmounted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(disk)],
                   check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk):
    """Writes a file until the disk is full; returns its path."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                f.write(b"x" * 4096)
            except OSError as e:
                if e.errno != 28:   # ENOSPC
                    raise
                break
        while True:   # the last page too, byte by byte
            try:
                f.write(b"x")
            except OSError:
                break
    return filler


def test_full_disk_counts_lost_lines_and_reports_them_once_it_has_room(droverd, small_disk,
                                                                       feeder, tmp_path):
    log = small_disk / "droverd.log"
    d = droverd(f"[drover]\nlog = file:{log}\n" + CHATTY, env=asan_env(tmp_path))
    pids = the_pids(d, "chatty", "calm")
    chatty = pids["chatty"]
    feeder.say("before")
    wait_for(lambda: f"chatty[{chatty}]: before" in log.read_text(), what="before in the log")
    filler = fill(small_disk)
    total = 300
    feeder.say(*(f"full {i:04d} " + "y" * 60 for i in range(total)))
    wait_for(lambda: ring_last(d, "chatty").endswith(f"full {total - 1:04d} " + "y" * 60),
             what="the last line in the ring")
    for _ in range(5):
        assert d.drover("status").rc == 0
    alive_and_unchanged(d, pids)

    filler.unlink()
    feeder.say("back")
    msg_rx = (rf"(?m)^{FILE_STAMP} droverd: warning: (\d+) log lines could not be written "
              rf"to file {re.escape(str(log))} \(No space left on device\)$")
    m = wait_for(lambda: re.search(msg_rx, log.read_text()), what="the lost-lines report")
    text = log.read_text()
    assert re.search(rf"(?m)^{FILE_STAMP} chatty\[{chatty}\]: back$", text), text
    # Whole lines only (the one begun when the disk filled is finished),
    # in order; with the ones reported lost they are every line.
    got = re.findall(rf"(?m)^{FILE_STAMP} chatty\[{chatty}\]: full (\d+) y{{60}}$", text)
    got = [int(x) for x in got]
    assert got == list(range(len(got))), got
    assert len(got) + int(m.group(1)) == total, (len(got), m.group(1))
    assert len(re.findall(r"(?m)^" + FILE_STAMP + " ", text)) == len(text.splitlines()), text
    assert text.count("could not be written") == 1
    alive_and_unchanged(d, pids)
    check_no_sanitizer_files(tmp_path)


# --- stderr a pipe whose reader went away ---------------------------------------

def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])    # utime + stime


def write_calls(pid):
    with open(f"/proc/{pid}/io") as f:
        return int(re.search(r"(?m)^syscw: (\d+)$", f.read()).group(1))


def test_stderr_pipe_without_reader_is_counted_not_a_crash_or_a_spin(droverd, tmp_path, feeder):
    d = droverd(CHATTY, start=False)
    r, w = os.pipe()
    try:
        d.start(stdout=w, env=asan_env(tmp_path))
    finally:
        os.close(w)
    os.close(r)     # droverd's stderr has no reader from now on
    pids = the_pids(d, "chatty", "calm")
    chatty = pids["chatty"]
    total = 20000
    for chunk in range(0, total, 1000):
        feeder.say(*(f"line {i}" for i in range(chunk, chunk + 1000)))
    wait_for(lambda: ring_last(d, "chatty").endswith(f"chatty[{chatty}]: line {total - 1}"),
             timeout=30, what="the last line in the ring")
    for _ in range(3):
        res = d.drover("reload")
        assert res.rc == 0, res
    alive_and_unchanged(d, pids)

    # Nothing to log now: droverd must be idle, not looping on the broken
    # pipe (a loop would show as CPU time and write calls).
    hz = os.sysconf("SC_CLK_TCK")
    t0, c0, w0 = time.monotonic(), cpu_ticks(d.pid), write_calls(d.pid)
    wait_for(lambda: time.monotonic() - t0 >= 1.0, what="a second to pass")
    t1, c1, w1 = time.monotonic(), cpu_ticks(d.pid), write_calls(d.pid)
    assert (c1 - c0) / hz < 0.5 * (t1 - t0), f"droverd used {(c1 - c0) / hz:.2f}s CPU in {t1 - t0:.2f}s"
    assert w1 - w0 < 20, f"droverd made {w1 - w0} write calls while idle"

    # Each line is one failed write, not more.
    feeder.say("one more")
    wait_for(lambda: ring_last(d, "chatty").endswith("one more"), what="one more in the ring")
    assert write_calls(d.pid) - w1 < 20
    alive_and_unchanged(d, pids)
    d.stop()
    assert d.exit_code == 0, d.exit_code
    check_no_sanitizer_files(tmp_path)


# --- syslog restarts --------------------------------------------------------

class Syslog:
    """A syslog daemon's /dev/log: a unix datagram socket the test reads."""

    def __init__(self, path):
        self.path = path
        self.sock = None
        self.got = []

    def start(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.setblocking(False)

    def stop(self):
        """The daemon restarts: its socket is closed and removed."""
        self.read()
        self.sock.close()
        self.sock = None
        self.path.unlink()

    def read(self):
        while self.sock is not None:
            try:
                self.got.append(self.sock.recv(65536).decode(errors="replace"))
            except BlockingIOError:
                break
        return self.got


SYSLOG_LINE = r"<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d (\S+)\[(\d+)\]: (.*)"


def namespace_prefix(dev):
    """Runs droverd (its argv follows) in a private mount namespace where
    /dev is the test's directory dev, with the real /dev/null in it."""
    script = ('mount --bind /dev/null "$0/null" && mount --rbind "$0" /dev && exec "$@"')
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(dev)]


def test_syslog_restart_reconnects_and_reports_lost_lines(droverd, tmp_path, feeder):
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "null").touch()
    syslog = Syslog(dev / "log")
    syslog.start()
    d = droverd("[drover]\nlog = syslog\n" + CHATTY, start=False)
    d.start(prefix=namespace_prefix(dev), env=asan_env(tmp_path))
    pids = the_pids(d, "chatty", "calm")
    chatty = pids["chatty"]

    def seen(text):
        return any(re.fullmatch(SYSLOG_LINE, x) and x.endswith(text) for x in syslog.read())

    feeder.say("before")
    wait_for(lambda: seen(f"chatty[{chatty}]: before"), what="before in syslog")

    syslog.stop()
    lost = 50
    feeder.say(*(f"down {i}" for i in range(lost)))
    wait_for(lambda: ring_last(d, "chatty").endswith(f"down {lost - 1}"), what="the last line in the ring")
    alive_and_unchanged(d, pids)

    syslog.start()
    n = 0

    def report():
        nonlocal n
        feeder.say(f"up {n}")   # droverd connects again on a later line
        n += 1
        return [x for x in syslog.read() if "could not be written" in x]
    reports = wait_for(report, timeout=10, what="the lost-lines report in syslog")
    assert len(reports) == 1, reports
    m = re.fullmatch(SYSLOG_LINE, reports[0])
    assert m, reports[0]
    prio, ident, pid, text = m.groups()
    assert (prio, ident, int(pid)) == ("28", "droverd", d.pid), m.groups()   # daemon.warning
    # The first reason: the old socket refuses (the daemon has closed it).
    m = re.fullmatch(r"(\d+) log lines could not be written to syslog at /dev/log "
                     r"\(Connection refused\)", text)
    assert m, text
    # Every line of the service is either in syslog or counted.
    wait_for(lambda: seen(f"chatty[{chatty}]: up {n - 1}"), what=f"up {n - 1} in syslog")
    texts = [re.fullmatch(SYSLOG_LINE, x).group(4) for x in syslog.read()
             if re.fullmatch(SYSLOG_LINE, x).group(2) == "chatty"]
    fed = ["before"] + [f"down {i}" for i in range(lost)] + [f"up {i}" for i in range(n)]
    assert all(t in fed for t in texts) and texts == [t for t in fed if t in texts], texts
    assert len(texts) + int(m.group(1)) == len(fed), (texts, m.group(1))
    assert not any(t.startswith("down") for t in texts), texts
    alive_and_unchanged(d, pids)
    check_no_sanitizer_files(tmp_path)


# --- what droverd opens as its log file -------------------------------------------

def symlink_msg(path):
    return (f"droverd: cannot open log file {path}: it is a symbolic link (droverd does not "
            "follow links for its own log: give the path of the file itself)")


def test_log_file_that_is_a_symlink_is_refused(droverd, tmp_path):
    real, link = tmp_path / "elsewhere.log", tmp_path / "link.log"
    real.write_text("")
    link.symlink_to(real)
    d = droverd(f"[drover]\nlog = file:{link}\n[service calm]\ncommand = sleep 1000\n", start=False)
    r = subprocess.run([str(conftest.DROVERD), "-t", "-c", str(d.conf)], capture_output=True,
                       text=True, timeout=10 * SLOW)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", symlink_msg(link) + "\n"), r
    d.start(wait=False)
    assert d.wait_exit(timeout=10) == 1
    assert d.log() == symlink_msg(link) + "\n"
    assert real.read_text() == "" and link.is_symlink()
    assert not d.sock.exists()


def test_log_file_that_is_a_fifo_is_refused_without_hanging(droverd, tmp_path):
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    msg = f"droverd: cannot open log file {fifo}: it is a FIFO, not a regular file\n"
    d = droverd(f"[drover]\nlog = file:{fifo}\n[service calm]\ncommand = sleep 1000\n", start=False)
    r = subprocess.run([str(conftest.DROVERD), "-t", "-c", str(d.conf)], capture_output=True,
                       text=True, timeout=10 * SLOW)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", msg), r
    # Nobody reads the FIFO: droverd must not wait for a reader.
    d.start(wait=False)
    assert d.wait_exit(timeout=10) == 1
    assert d.log() == msg
    # Someone reads it: still not a file to log to.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        d.start(wait=False)
        assert d.wait_exit(timeout=10) == 1
        assert d.log() == msg + msg
        assert os.read(reader, 100) == b""     # nothing was written into it
    finally:
        os.close(reader)
    assert not d.sock.exists()


def test_reload_to_a_symlinked_log_file_keeps_the_current_one(droverd, tmp_path, feeder):
    real, link = tmp_path / "elsewhere.log", tmp_path / "link.log"
    real.write_text("")
    link.symlink_to(real)
    good = tmp_path / "good.log"
    d = droverd(f"[drover]\nlog = file:{good}\n" + CHATTY)
    pids = the_pids(d, "chatty", "calm")
    d.write_config(f"[drover]\nlog = file:{link}\n" + CHATTY)
    r = d.drover("reload")
    assert r.rc == 0, r
    msg = (f"droverd: error: log: cannot open log file {link}: it is a symbolic link (droverd "
           "does not follow links for its own log: give the path of the file itself); "
           "keeping the current destination")
    wait_for(lambda: re.search(rf"(?m)^{FILE_STAMP} {re.escape(msg)}$", good.read_text()),
             what="the refusal in the current log")
    feeder.say("still here")
    wait_for(lambda: f"chatty[{pids['chatty']}]: still here" in good.read_text(),
             what="still here in the current log")
    assert real.read_text() == ""
    alive_and_unchanged(d, pids)


# --- a full disk under a service's log = file:, with rotations ----------------

def test_service_log_on_a_full_disk_drops_counts_and_rotates_again(droverd, small_disk,
                                                                   feeder, tmp_path):
    """A service's own log file on a disk that fills: its lines are dropped
    and counted (one error, not one per line), rotations are attempted on
    the full disk without harm, droverd and the other services are
    untouched, and once there is room the file is written again with the
    count of what was lost."""
    log = small_disk / "app.log"
    d = droverd(f"""
[service chatty]
command = /bin/sh -c 'exec cat <> {tmp_path}/in.fifo'
log = file:{log}
log_max_size = 4K
log_keep = 2

[service calm]
command = sleep 1000
""", env=asan_env(tmp_path))
    pids = the_pids(d, "chatty", "calm")
    chatty = pids["chatty"]
    # Close to the 4K of a rotation, so that the first line on the full
    # disk rotates: the rename works there, the new file has no room.
    pre = [f"pre {i:02d} " + "y" * 60 for i in range(35)]
    feeder.say(*pre)
    wait_for(lambda: pre[-1] in log.read_text(), what="the last pre line in app.log")
    assert 3500 < log.stat().st_size < 4096, log.stat().st_size
    filler = fill(small_disk)
    total = 300     # 30 KB of lines, all on a full disk
    feeder.say(*(f"full {i:04d} " + "y" * 60 for i in range(total)))
    wait_for(lambda: ring_last(d, "chatty").endswith(f"full {total - 1:04d} " + "y" * 60),
             what="the last line in the ring")
    err_rx = (rf"droverd: error: chatty: cannot write log file {re.escape(str(log))}: "
              rf"No space left on device; dropping its output until it can\n")
    d.wait_log(err_rx)
    for _ in range(5):
        assert d.drover("status").rc == 0
    alive_and_unchanged(d, pids)

    filler.unlink()
    feeder.say("back")
    m = d.wait_log(rf"droverd: chatty: writing log file {re.escape(str(log))} again "
                   rf"\((\d+) lines were dropped\)\n")
    assert 0 < int(m.group(1)) <= total, m.group(0)
    wait_for(lambda: any("back" in p.read_text() for p in small_disk.glob("app.log*")),
             what="back in the log files")
    assert len(re.findall(err_rx, d.log())) == 1, d.log()
    # The rotation happened on the full disk and lost nothing it had.
    assert re.findall(r"pre (\d\d) ", (small_disk / "app.log.1").read_text()) == \
        [f"{i:02d}" for i in range(35)]
    # Nothing but whole lines of this service in its files.
    for p in small_disk.glob("app.log*"):
        for line in p.read_text().splitlines():
            assert re.fullmatch(rf"{FILE_STAMP} chatty\[{chatty}\]: (pre \d\d|back|full \d{{4}}) y{{60}}|"
                                rf"{FILE_STAMP} chatty\[{chatty}\]: back", line), (p, line)
    alive_and_unchanged(d, pids)
    check_no_sanitizer_files(tmp_path)
