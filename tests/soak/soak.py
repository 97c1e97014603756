#!/usr/bin/python3
"""Zero-downtime soak test for drover (see tests/soak/README.md).

Starts droverd (a copy of the build under test, in a temporary directory, so
its binary can be replaced there) with one prefork service of hello-worker,
drives two clients at once -- wrk on keep-alive connections and an open-loop
client that opens a new connection per request at a fixed rate -- and,
meanwhile, reloads the configuration (a new generation each time), restarts
the service, upgrades droverd in place and by handover, alternating between
two different builds. Every client failure is counted by class; the run
fails on any failed request, any failed action, a listen queue overflow, or
anything not healthy or left running at the end.

Standard library only; run with /usr/bin/python3.
"""
import argparse
import ctypes
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SERVICE = "hello"
BODY = "Hello, world!\n"
PROCS, MAX_PROCS, STOP_TIMEOUT = 16, 64, 10
# The service is probed (SPEC 3a) all through the run (--health-interval,
# --health-timeout: a probe every 200 ms, each allowed 2 s, by default; a
# probe due while the last one runs is skipped): every probe must pass,
# whatever the harness does meanwhile.
HEALTH_RETRIES = 3
HEALTH_POLL = 0.5           # seconds between two status polls of the health
STARTING_MAX = 5.0          # seconds a probed service may stay `starting`

PR_SET_CHILD_SUBREAPER = 36

SHORT = dict(duration=60, reloads=50, restarts=10, upgrades=10, rate=1000)
LONG = dict(duration=600, reloads=500, restarts=100, upgrades=100, rate=2000)

OPENLOOP_CLASSES = [
    ("refused", "connect refused"),
    ("reset", "reset (ECONNRESET/EPIPE)"),
    ("eof", "EOF before a full response"),
    ("wrong_body", "wrong body"),
    ("non_2xx", "non-2xx status"),
    ("timeout", "no response within 10 s"),
    ("error", "other error"),
    ("slow", "request over 2 s"),
    ("slow_connect", "connect >= 1 s, SYN retransmitted"),
]
WRK_CLASSES = [
    ("connect", "connect errors"),
    ("read", "read errors (reset/EOF)"),
    ("write", "write errors"),
    ("timeout", "timeouts (over 2 s)"),
    ("non_2xx", "non-2xx or 3xx responses"),
    ("wrong_body", "wrong body"),
    ("no_generation", "no X-Generation header"),
]
ACTION_KINDS = [
    ("reload", "reload (new generation)"),
    ("restart", "restart NAME"),
    ("upgrade", "upgrade (in place)"),
    ("handover", "upgrade --handover"),
]


class SoakError(Exception):
    """The harness cannot go on (not a finding about drover)."""


def set_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SoakError("prctl(PR_SET_CHILD_SUBREAPER) failed")


def private_netns():
    """Move this process into a new network namespace of its own (root only):
    the test's sockets are then alone on their loopback, and nstat's counters
    count this test only. False (and nothing changed) when that is refused."""
    CLONE_NEWNET = 0x40000000
    if os.geteuid() != 0 or threading.active_count() != 1:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        return False
    cp = subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True, text=True)
    if cp.returncode != 0:
        raise SoakError(f"in a new network namespace, cannot bring lo up: {cp.stderr.strip()}")
    return True


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def proc_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def proc_ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def proc_env(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            items = f.read().split(b"\0")
    except OSError:
        return {}
    env = {}
    for it in items:
        k, sep, v = it.partition(b"=")
        if sep:
            env[k.decode(errors="replace")] = v.decode(errors="replace")
    return env


def children_of(pid):
    kids = set()
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return kids
    for t in tasks:
        try:
            kids.update(int(x) for x in (t / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            pass
    return kids


def percentile(values, p):
    """Nearest-rank percentile of a non-empty list."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, -(-len(v) * p // 100) - 1))
    return v[int(k)]


def temp_root():
    """As root, droverd reads only a configuration whose whole path is
    root's alone, which /tmp (writable by all) is not: /run/drover-tests,
    root's and 0755, as the integration tests use."""
    if os.geteuid() != 0:
        return None
    root = Path("/run/drover-tests")
    root.mkdir(mode=0o755, exist_ok=True)
    os.chown(root, 0, 0, follow_symlinks=False)
    os.chmod(root, 0o755, follow_symlinks=False)
    return root


def fmt_ms(sec):
    return f"{sec * 1000:.0f} ms" if sec < 10 else f"{sec:.1f} s"


class Soak:
    def __init__(self, args):
        self.a = args
        self.t0 = time.monotonic_ns()
        self.dir = Path(tempfile.mkdtemp(prefix="drover-soak.", dir=temp_root()))
        self.bin = self.dir / "bin"
        self.conf = self.dir / "drover.conf"
        self.sock = self.dir / "control.sock"
        self.port = args.port or free_port()
        self.failures = []          # what makes the run FAIL, in words
        self.round = 0              # SOAK_ROUND in the configuration
        self.gen = None             # the service's generation, as droverd says
        self.gen_first = {}         # generation -> first response seen (rel. s)
        self.gen_cv = threading.Condition()
        self.droverd = None         # the Popen of the first droverd
        self.dpid = None            # the droverd running now
        self.known_droverds = set()
        self.installed = "A"        # which build is at bin/droverd
        self.lat = {k: [] for k, _ in ACTION_KINDS}
        self.drain = []             # handover: until the old droverd exited
        self.done = {k: 0 for k, _ in ACTION_KINDS}
        self.failed_actions = {k: 0 for k, _ in ACTION_KINDS}
        self.openloop = self.wrk = None
        self.ol_result = None
        self.ol_failures = 0
        self.wrk_out = None
        self.log_lock = threading.Lock()
        self.timeline = open(self.dir / "timeline.log", "w", buffering=1)
        self.dlog = open(self.dir / "droverd.log", "w", buffering=1)
        self.threads = []
        self.current = "start"      # what the harness is doing (for findings)
        self.restarts_issued = 0    # drover restart commands issued
        self.probe_failed = []      # (time, action, droverd's line)
        self.probe_skipped = 0      # a probe still running when the next was due
        self.probe_since = None     # when droverd started probing (rel. s)
        self.probe_until = None     # when the last status was read at the end
        self.probe_starts = 0       # probing (re)started: start, upgrades, handovers
        self.health_seen = {}       # health value -> status polls that showed it
        self.health_texts = set()   # health_text values seen (non-empty = a failure)
        self.health_poll_errors = 0
        self.poller = None
        self.poller_stop = threading.Event()

    # --- time and logs -------------------------------------------------------
    def now(self):
        return (time.monotonic_ns() - self.t0) / 1e9

    def event(self, text, t=None):
        text = text.replace("\n", "; ")
        with self.log_lock:
            self.timeline.write(f"[{self.now() if t is None else t:11.6f}] {text}\n")

    def say(self, text):
        print(text, flush=True)

    def fail(self, text):
        self.failures.append(text)
        self.event(f"FAILURE: {text}")
        self.say(f"  FAILURE: {text}")

    # --- setup -----------------------------------------------------------------
    def prepare(self):
        for tool in ("wrk", "nstat", "cc", "install"):
            if not shutil.which(tool):
                raise SoakError(f"{tool} is not installed (scripts/deps.sh bench installs it)")
        self.build_a = Path(self.a.build).resolve()
        self.build_b = Path(self.a.build_b).resolve()
        for b in (self.build_a, self.build_b):
            for f in ("droverd", "drover", "examples/hello-worker"):
                if not (b / f).is_file():
                    raise SoakError(f"{b / f} is missing: build it first (make soak does)")
        self.sha = {"A": sha256(self.build_a / "droverd"), "B": sha256(self.build_b / "droverd")}
        if self.sha["A"] == self.sha["B"]:
            raise SoakError(f"{self.build_a}/droverd and {self.build_b}/droverd are identical: "
                            "an upgrade between them would prove nothing (build B with other "
                            "CFLAGS, e.g. -frecord-gcc-switches -DSOAK_BUILD_B)")
        self.bin.mkdir()
        self.install("A")
        shutil.copy2(self.build_a / "drover", self.bin / "drover")
        shutil.copy2(self.build_a / "examples/hello-worker", self.bin / "hello-worker")
        shutil.copy2(HERE / "soak.lua", self.dir / "soak.lua")
        cp = subprocess.run(["cc", "-O2", "-std=gnu11", "-Wall", "-Wextra", "-o",
                             str(self.dir / "openloop"), str(HERE / "openloop.c")],
                            capture_output=True, text=True)
        if cp.returncode != 0:
            raise SoakError(f"cannot build openloop.c:\n{cp.stderr}")
        self.write_config()

    def install(self, which):
        """Rename-replace bin/droverd by build A's or B's (never written in place)."""
        src = (self.build_a if which == "A" else self.build_b) / "droverd"
        subprocess.run(["install", "-m", "755", str(src), str(self.bin / "droverd")], check=True)
        self.installed = which

    def write_config(self):
        text = (f"# drover soak test, round {self.round}\n"
                f"[service {SERVICE}]\n"
                f"mode = prefork\n"
                f"command = {self.bin / 'hello-worker'}\n"
                f"listen = tcp:127.0.0.1:{self.port}\n"
                f"procs = {PROCS}\n"
                f"max_procs = {MAX_PROCS}\n"
                f"stop_timeout = {STOP_TIMEOUT}s\n"
                + (f"stop_signal = {self.a.stop_signal}\n" if self.a.stop_signal else "") +
                f"env = SOAK_ROUND={self.round}\n"
                f"health = http://127.0.0.1:{self.port}/\n"
                f"health_interval = {self.a.health_interval}ms\n"
                f"health_timeout = {self.a.health_timeout}ms\n"
                f"health_retries = {HEALTH_RETRIES}\n"
                f"ready = health\n")
        tmp = self.conf.with_suffix(".tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.conf)

    def reader(self, stream, fn):
        def run():
            for raw in stream:
                fn(raw.decode(errors="replace").rstrip("\n"))
            stream.close()
        th = threading.Thread(target=run, daemon=True)
        th.start()
        self.threads.append(th)

    # --- droverd -----------------------------------------------------------------
    def on_droverd_line(self, line):
        t = self.now()
        with self.log_lock:
            self.dlog.write(f"[{t:11.6f}] {line}\n")
            self.timeline.write(f"[{t:11.6f}] {line}\n")
        # droverd breaking its own rules (a state change outside its
        # transition table) fails the run like a failed connection.
        if "error: internal error:" in line:
            self.fail(f"droverd: {line}")
        # droverd runs with -v: each failed probe is logged (at debug level),
        # also one whose text a later start of probing (an upgrade, a
        # handover) would wipe from drover status before a poll saw it.
        name = f"{SERVICE}: "
        if line.startswith(name) or f" {name}" in line:
            if ": probe failed: " in line or f"{name}unhealthy (" in line:
                self.probe_failed.append((t, self.current, line))
                self.fail(f"health probe failed at {t:.3f} s, during {self.current}: {line}")
            elif "the last probe is still running" in line:
                self.probe_skipped += 1

    def drover(self, *args, timeout=90):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        try:
            cp = subprocess.run([str(self.bin / "drover"), "-S", str(self.sock), *args],
                                capture_output=True, text=True, timeout=timeout, env=env,
                                stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return 124, "", f"drover {' '.join(args)}: no answer within {timeout}s"
        return cp.returncode, cp.stdout.strip(), cp.stderr.strip()

    def status(self):
        rc, out, err = self.drover("status", "--json", SERVICE, timeout=30)
        if rc != 0:
            raise SoakError(f"drover status failed ({rc}): {err or out}")
        return json.loads(out)[0]

    def start_droverd(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        self.droverd = subprocess.Popen(
            [str(self.bin / "droverd"), "-v", "-c", str(self.conf), "-S", str(self.sock)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=env, cwd=self.dir, start_new_session=True)
        self.dpid = self.droverd.pid
        self.known_droverds.add(self.dpid)
        self.probe_since = self.now()
        self.probe_starts += 1
        self.reader(self.droverd.stdout, self.on_droverd_line)
        deadline = time.monotonic() + 30
        while True:
            if not proc_alive(self.dpid):
                raise SoakError("droverd exited at start (see droverd.log)")
            try:
                st = self.status()
                if (st["state"] == "ready" and st["idle"] + st["busy"] >= PROCS
                        and st.get("health") == "healthy"):
                    break
            except (SoakError, ValueError, KeyError, IndexError):
                pass
            if time.monotonic() > deadline:
                raise SoakError("droverd's service is not ready within 30 s")
            time.sleep(0.05)
        self.gen = st["generation"]
        body, gen = self.http_get()
        if body != BODY or gen != self.gen:
            raise SoakError(f"hello-worker answers {body!r} with generation {gen}")

    def http_get(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        m = re.search(rb"\r\nX-Generation: *(\d+)", head)
        return body.decode(errors="replace"), int(m.group(1)) if m else None

    def reap_droverd(self, pid, timeout):
        """Wait until droverd pid (our child, or re-parented to us) exits; its
        wait status, or None if it did not exit in time."""
        deadline = time.monotonic() + timeout
        while True:
            if self.droverd is not None and pid == self.droverd.pid:
                rc = self.droverd.poll()
                if rc is not None:
                    return rc
            else:
                try:
                    p, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    # Not (yet) ours: still the child of a droverd that is
                    # itself going away. Gone without us seeing its status:
                    # say so (-1000 is no exit status).
                    if not os.path.exists(f"/proc/{pid}"):
                        return -1000
                    p, status = 0, 0
                if p == pid:
                    return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)

    def exe_is(self, pid, which):
        try:
            st = os.stat(f"/proc/{pid}/exe")
            now = os.stat(self.bin / "droverd")
        except OSError:
            return False
        return st.st_ino == now.st_ino and sha256(f"/proc/{pid}/exe") == self.sha[which]

    # --- clients ---------------------------------------------------------------
    def on_openloop_out(self, line):
        if line.startswith("gen "):
            _, g, t = line.split()
            with self.gen_cv:
                self.gen_first.setdefault(int(g), float(t))
                self.gen_cv.notify_all()
            self.event(f"openloop: first response of generation {g}", float(t))
        elif line.startswith("{"):
            self.ol_result = json.loads(line)
        else:
            self.event(f"openloop: {line}")

    def on_openloop_err(self, line):
        if line.startswith("fail "):
            self.ol_failures += 1
        self.event(f"openloop: {line}")

    def start_clients(self):
        self.openloop = subprocess.Popen(
            [str(self.dir / "openloop"), "--port", str(self.port), "--rate", str(self.a.rate),
             "--duration", "0", "--t0", str(self.t0), "--body", BODY],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        self.reader(self.openloop.stdout, self.on_openloop_out)
        self.reader(self.openloop.stderr, self.on_openloop_err)
        # wrk runs until it is interrupted (it then prints its results); -d
        # is only a bound in case the harness loses track of it.
        cap = int(max(3 * self.a.duration, self.a.duration + 900))
        self.wrk_file = open(self.dir / "wrk.out", "w+")
        self.wrk = subprocess.Popen(
            ["wrk", f"-t{self.a.wrk_threads}", f"-c{self.a.wrk_conns}", f"-d{cap}s", "--latency",
             "-s", str(self.dir / "soak.lua"), f"http://127.0.0.1:{self.port}/"],
            stdin=subprocess.DEVNULL, stdout=self.wrk_file, stderr=subprocess.STDOUT,
            cwd=self.dir, start_new_session=True)
        self.event(f"clients started: openloop pid {self.openloop.pid}, wrk pid {self.wrk.pid}")

    def stop_clients(self):
        for name, p in (("openloop", self.openloop), ("wrk", self.wrk)):
            if p is None:
                continue
            if p.poll() is not None:
                self.fail(f"{name} ended before it was stopped (exit {p.returncode})")
            else:
                p.send_signal(signal.SIGINT)
        for name, p in (("openloop", self.openloop), ("wrk", self.wrk)):
            if p is None:
                continue
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                self.fail(f"{name} did not stop within 30 s of SIGINT")
        for th in self.threads[1:]:
            th.join(timeout=10)
        self.wrk_file.seek(0)
        self.wrk_out = self.wrk_file.read()
        self.wrk_file.close()
        self.event("clients stopped")

    # --- health --------------------------------------------------------------------
    def check_health(self, st, where):
        """A status record says the probes have all passed so far: no failure
        text, not unhealthy, no restart the harness did not ask for."""
        health, text = st.get("health"), st.get("health_text")
        self.health_seen[health] = self.health_seen.get(health, 0) + 1
        if health is None or text is None:
            self.fail(f"{where}: drover status shows no health for {SERVICE}: {st}")
            return False
        ok = True
        if text and text not in self.health_texts:
            self.health_texts.add(text)
            self.fail(f"{where}, during {self.current}: health_text is \"{text}\" (health {health})")
            ok = False
        if health == "unhealthy":
            self.fail(f"{where}, during {self.current}: health is unhealthy")
            ok = False
        if st["restarts"] > self.restarts_issued:
            self.fail(f"{where}, during {self.current}: {st['restarts']} restarts, the harness "
                      f"asked for {self.restarts_issued}")
            ok = False
        return ok

    def poll_health(self):
        """Reads the service's health every HEALTH_POLL seconds while the load
        runs. A status that cannot be read (droverd in the middle of an
        upgrade) is counted, not judged: the actions check droverd answers."""
        starting_since = None
        while not self.poller_stop.wait(HEALTH_POLL):
            try:
                st = self.status()
            except (SoakError, ValueError, KeyError, IndexError):
                self.health_poll_errors += 1
                continue
            if not self.check_health(st, "status poll"):
                return      # said once; droverd's log has every failure
            # `starting` is right for a moment after each start of probing
            # (upgrade, handover); for longer, nothing is probing it.
            if st.get("health") != "starting":
                starting_since = None
            elif starting_since is None:
                starting_since = time.monotonic()
            elif time.monotonic() - starting_since > STARTING_MAX:
                self.fail(f"status poll, during {self.current}: health still `starting` after "
                          f"{STARTING_MAX:.0f} s: the service is not being probed")
                return

    def start_poller(self):
        self.poller = threading.Thread(target=self.poll_health, daemon=True)
        self.poller.start()

    def stop_poller(self):
        if self.poller:
            self.poller_stop.set()
            self.poller.join(timeout=60)

    def wait_gen(self, gen, timeout):
        with self.gen_cv:
            self.gen_cv.wait_for(lambda: gen in self.gen_first, timeout=timeout)
            return self.gen_first.get(gen)

    # --- actions -----------------------------------------------------------------
    def action(self, n, total, kind):
        self.event(f"== action {n}/{total}: {kind} (droverd pid {self.dpid}, generation {self.gen})")
        self.current = f"action {n}/{total} ({kind})"
        try:
            ok, lat, what = getattr(self, f"do_{kind}")()
        except SoakError as e:
            ok, lat, what = False, None, str(e)
        if ok:
            self.done[kind] += 1
            self.lat[kind].append(lat)
            self.event(f"== action {n}/{total}: {kind} done in {lat * 1000:.1f} ms; {what}")
        else:
            self.failed_actions[kind] += 1
            self.fail(f"action {n}/{total} ({kind}) failed: {what}")
            self.resync_generation()
        self.current = f"the load after action {n}/{total} ({kind})"

    def resync_generation(self):
        """After a failed action, go on from the generation droverd has, so
        that one failure does not fail every later action too."""
        try:
            self.gen = self.status()["generation"]
        except (SoakError, ValueError, KeyError, IndexError):
            pass

    def new_generation(self, kind, t_issue, rc, out, err):
        expected = self.gen + 1
        if rc != 0:
            return False, None, f"drover {kind} exited {rc}: {err or out}"
        t_seen = self.wait_gen(expected, 30)
        st = self.status()
        if st["generation"] != expected:
            return False, None, f"generation is {st['generation']}, expected {expected} ({out})"
        self.gen = expected
        if t_seen is None:
            return False, None, f"no response carries generation {expected} within 30 s"
        return True, t_seen - t_issue, f"generation {expected}: {out}"

    def do_reload(self):
        self.round += 1
        self.write_config()
        t = self.now()
        rc, out, err = self.drover("reload")
        if rc == 0 and "1 replaced" not in out:
            return False, None, f"drover reload did not replace the service: {out}"
        return self.new_generation("reload", t, rc, out, err)

    def do_restart(self):
        t = self.now()
        self.restarts_issued += 1
        rc, out, err = self.drover("restart", SERVICE)
        return self.new_generation("restart", t, rc, out, err)

    def do_upgrade(self):
        target = "B" if self.installed == "A" else "A"
        self.install(target)
        pid = self.dpid
        t = self.now()
        self.probe_starts += 1     # the new image probes from `starting`
        rc, out, err = self.drover("upgrade")
        lat = self.now() - t
        if rc != 0:
            return False, None, f"drover upgrade exited {rc}: {err or out}"
        if f"(pid {pid})" not in out:
            return False, None, f"unexpected answer: {out}"
        if not self.exe_is(pid, target):
            return False, None, f"droverd pid {pid} does not run build {target} after the upgrade"
        st = self.status()
        if st["generation"] != self.gen:
            return False, None, f"generation changed to {st['generation']} by an in-place upgrade"
        return True, lat, f"build {target}: {out}"

    def do_handover(self):
        target = "B" if self.installed == "A" else "A"
        self.install(target)
        old = self.dpid
        t = self.now()
        self.probe_starts += 1     # the new droverd probes from `starting`
        rc, out, err = self.drover("upgrade", "--handover")
        m = re.search(r"new droverd \(pid (\d+)\)", out)
        if rc == 0 and not m:
            return False, None, f"unexpected answer: {out}"
        if rc == 0:
            new = int(m.group(1))
            self.known_droverds.add(new)
        ok, lat, what = self.new_generation("upgrade --handover", t, rc, out, err)
        if rc != 0:
            return ok, lat, what
        # Complete when the old droverd has let its processes finish and exited.
        code = self.reap_droverd(old, STOP_TIMEOUT + 20)
        if code is None:
            return False, None, f"the old droverd (pid {old}) did not exit within {STOP_TIMEOUT + 20}s"
        self.dpid = new
        if not ok:
            return ok, lat, what
        self.drain.append(self.now() - t)
        if code != 0:
            return False, None, f"the old droverd (pid {old}) exited with {code}"
        if not self.exe_is(new, target):
            return False, None, f"the new droverd (pid {new}) does not run build {target}"
        if proc_ppid(new) != os.getpid():
            return False, None, f"the new droverd (pid {new}) was not re-parented to the harness"
        return True, lat, f"build {target}, pid {old} -> {new}; {what}"

    def schedule(self):
        kinds = (["reload"] * self.a.reloads + ["restart"] * self.a.restarts +
                 ["upgrade"] * self.a.upgrades + ["handover"] * self.a.upgrades)
        random.Random(self.a.seed).shuffle(kinds)
        warmup, tail = self.a.warmup, self.a.tail
        window = max(self.a.duration - warmup - tail, 1)
        step = window / max(len(kinds), 1)
        start = self.now()
        last_report = start
        for i, kind in enumerate(kinds):
            due = start + warmup + i * step
            while (left := due - self.now()) > 0:
                time.sleep(min(0.05, left))
            if not proc_alive(self.dpid):
                self.fail(f"droverd (pid {self.dpid}) is gone; the schedule stops at action {i + 1}")
                return
            self.action(i + 1, len(kinds), kind)
            if self.now() - last_report >= 10 or i + 1 == len(kinds):
                last_report = self.now()
                self.say(f"  [{self.now():6.1f} s] {i + 1}/{len(kinds)} actions done, "
                         f"{self.ol_failures} open-loop failures so far")
        # Load goes on until the planned duration, and at least `tail` after
        # the last action (old generations finish their work under load).
        end = max(start + self.a.duration, self.now() + tail)
        while (left := end - self.now()) > 0:
            time.sleep(min(0.1, left))

    # --- end ---------------------------------------------------------------------
    def our_processes(self):
        """PIDs of processes that run a binary of the temporary directory."""
        found = []
        prefix = str(self.dir) + "/"
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                exe = os.readlink(d / "exe")
            except OSError:
                continue
            if exe.startswith(prefix) and proc_alive(int(d.name)):
                found.append((int(d.name), exe))
        return found

    def final_health(self):
        """After the load: droverd healthy, one generation of workers."""
        if not proc_alive(self.dpid):
            self.fail(f"droverd (pid {self.dpid}) is not running at the end")
            return
        deadline = time.monotonic() + STOP_TIMEOUT + 10
        while True:
            problems = []
            try:
                st = self.status()
            except (SoakError, ValueError) as e:
                problems.append(str(e))
                st = None
            if st:
                if st["state"] != "ready":
                    problems.append(f"state {st['state']} ({st['reason']})")
                if st["generation"] != self.gen:
                    problems.append(f"generation {st['generation']}, expected {self.gen}")
                if st["idle"] + st["busy"] < PROCS:
                    problems.append(f"{st['idle'] + st['busy']} workers ready, fewer than {PROCS}")
                if st.get("health") != "healthy":
                    problems.append(f"health {st.get('health')} ({st.get('health_text')})")
            procs = self.our_processes()
            droverds = [p for p, exe in procs if "/bin/droverd" in exe]
            workers = [p for p, exe in procs if "/bin/hello-worker" in exe]
            old = [p for p in workers if proc_env(p).get("DROVER_GENERATION") != str(self.gen)]
            if droverds != [self.dpid]:
                problems.append(f"droverd processes {droverds}, expected only {self.dpid}")
            if old:
                problems.append(f"workers of older generations still run: {old}")
            if st and sorted(int(x) for x in st["pids"]) != sorted(workers):
                problems.append(f"droverd lists pids {sorted(int(x) for x in st['pids'])}, "
                                f"running workers are {sorted(workers)}")
            if not problems:
                break
            if time.monotonic() > deadline:
                for p in problems:
                    self.fail(f"not healthy at the end: {p}")
                return
            time.sleep(0.1)
        self.probe_until = self.now()
        self.check_health(st, "at the end")
        if st["restarts"] != self.restarts_issued:
            self.fail(f"at the end: {st['restarts']} restarts, the harness asked for "
                      f"{self.restarts_issued}")
        body, gen = self.http_get()
        if body != BODY or gen != self.gen:
            self.fail(f"at the end, hello-worker answers {body!r} with generation {gen}")
        self.health = (f"droverd pid {self.dpid} (build {self.installed}), service {st['state']}, "
                       f"generation {st['generation']}, {st['idle'] + st['busy']} workers, "
                       f"{st['served']} connections served")

    def shutdown(self):
        t = self.now()
        rc, out, err = self.drover("shutdown", timeout=60)
        if rc != 0:
            self.fail(f"drover shutdown exited {rc}: {err or out}")
        code = self.reap_droverd(self.dpid, 30)
        if code is None:
            self.fail(f"droverd (pid {self.dpid}) did not exit within 30 s of drover shutdown")
        elif code != 0:
            self.fail(f"droverd exited with {code} after drover shutdown")
        self.event(f"droverd exited ({code}) {self.now() - t:.2f} s after drover shutdown")
        if self.threads:
            self.threads[0].join(timeout=10)   # droverd's output: EOF once all are gone
        self.check_nothing_left()

    def check_nothing_left(self):
        left = self.our_processes()
        strays = []
        for pid in children_of(os.getpid()):
            if proc_alive(pid):
                strays.append(pid)
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reaped = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                if not children_of(os.getpid()):
                    break
                time.sleep(0.02)
                continue
            reaped.append(pid)
        zombies = [p for p in reaped if p not in self.known_droverds]
        if left:
            self.fail(f"processes left running after droverd exited: {left}")
        if set(strays) - {p for p, _ in left}:
            self.fail(f"processes re-parented to the harness and left running: {strays}")
        if zombies:
            self.fail(f"processes left unreaped (re-parented to the harness): {zombies}")
        self.nothing_left = not (left or strays or zombies)

    def emergency_stop(self):
        """On an error or interrupt: stop everything we started, by PID."""
        for p in (self.openloop, self.wrk):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        if self.dpid and proc_alive(self.dpid):
            try:
                os.kill(self.dpid, signal.SIGQUIT)
            except ProcessLookupError:
                pass
            self.reap_droverd(self.dpid, 10)
        for pid, _ in self.our_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.05)

    # --- measurements --------------------------------------------------------------
    def nstat(self):
        env = dict(os.environ, NSTAT_HISTORY=str(self.dir / "nstat.history"))
        cp = subprocess.run(["nstat", "-az", "TcpExtListenOverflows", "TcpExtListenDrops",
                             "TcpExtTCPSynRetrans"],
                            capture_output=True, text=True, env=env)
        vals = {}
        for line in cp.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and not line.startswith("#"):
                vals[parts[0]] = int(parts[1])
        return vals

    def parse_wrk(self):
        out = self.wrk_out or ""
        r = {"requests": None, "connect": 0, "read": 0, "write": 0, "timeout": 0, "non_2xx": 0,
             "wrong_body": None, "no_generation": None, "gens": {}, "responses": None}
        m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
        if m:
            r["requests"] = int(m.group(1))
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        if m:
            r["connect"], r["read"], r["write"], r["timeout"] = map(int, m.groups())
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if m:
            r["non_2xx"] = int(m.group(1))
        for key in ("responses", "wrong_body", "no_generation"):
            m = re.search(rf"^SOAK {key} (\d+)$", out, re.M)
            if m:
                r[key] = int(m.group(1))
        for g, n in re.findall(r"^SOAK gen (\S+) (\d+)$", out, re.M):
            r["gens"][g] = int(n)
        r["latency"] = re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M)
        return r

    # --- the run -----------------------------------------------------------------
    def run(self):
        a = self.a
        total_actions = a.reloads + a.restarts + 2 * a.upgrades
        self.say(f"drover soak: {a.duration} s under load; {a.reloads} reloads, {a.restarts} restarts, "
                 f"{a.upgrades} in-place upgrades, {a.upgrades} handover upgrades "
                 f"({total_actions} actions, seed {a.seed})")
        self.prepare()
        self.say(f"  build A: {self.build_a} (droverd sha256 {self.sha['A'][:12]})")
        self.say(f"  build B: {self.build_b} (droverd sha256 {self.sha['B'][:12]})")
        self.say(f"  service {SERVICE}: prefork hello-worker on tcp:127.0.0.1:{self.port}, "
                 f"procs = {PROCS}, max_procs = {MAX_PROCS}, stop_timeout = {STOP_TIMEOUT}s")
        self.say(f"  health = http://127.0.0.1:{self.port}/, health_interval = {a.health_interval}ms, "
                 f"health_timeout = {a.health_timeout}ms, health_retries = {HEALTH_RETRIES}, "
                 f"ready = health")
        self.say(f"  clients: open-loop {a.rate}/s (a new connection per request) and "
                 f"wrk -t{a.wrk_threads} -c{a.wrk_conns} (keep-alive)")
        self.say(f"  network: " + ("a namespace of its own (only this test's sockets; nstat counts "
                                  "them alone)" if self.netns else
                                  "the machine's namespace (nstat deltas include other programs: "
                                  "reported, not judged)"))
        self.say(f"  machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start")
        self.say(f"  directory: {self.dir}")
        nstat_before = self.nstat()
        self.start_droverd()
        self.event(f"droverd pid {self.dpid} ready, generation {self.gen}")
        self.start_clients()
        self.start_poller()
        t_load = self.now()
        self.schedule()
        self.current = "the end of the load"
        self.stop_clients()
        self.stop_poller()
        load_secs = self.now() - t_load
        self.current = "the end"
        nstat_after = self.nstat()
        self.health = None
        self.final_health()
        self.nothing_left = False
        self.shutdown()
        self.report(load_secs, nstat_before, nstat_after)

    def report(self, load_secs, nb, na):
        a = self.a
        ol = self.ol_result
        w = self.parse_wrk()
        self.say("")
        self.say(f"== clients ({load_secs:.1f} s of load)")
        if ol is None:
            self.fail("the open-loop client printed no result")
        else:
            n = ol["attempts"]
            self.say(f"open-loop: {n} connections, one request each, at {ol['rate']:.0f}/s "
                     f"(max scheduling lag {ol['max_lag_ms']:.1f} ms, slowest ok request "
                     f"{ol['max_ok_ms']:.1f} ms, slowest connect {ol['max_connect_ms']:.1f} ms)")
            for key, label in OPENLOOP_CLASSES:
                self.say(f"  {label:<34} failed {ol[key]} of {n}")
                if ol[key]:
                    self.fail(f"open-loop: {label}: {ol[key]} of {n}")
            self.say(f"  (not failures: {ol['ok_over_warn']} ok requests took {ol['warn_ms']:.0f} ms "
                     "or more; see \"note\" lines in timeline.log)")
            self.say(f"  (not failures: {ol['stalled_connect']} connects took 1 s or more with no SYN "
                     "retransmitted: the client was not running, see its max scheduling lag)")
            self.say(f"  (not failures: {ol['stalled_slow']} requests took over 2 s only because the "
                     "client itself was not running meanwhile; see \"note stalled-slow\" lines)")
            if ol["ok"] + ol["failed"] != n:
                self.fail("open-loop: classes do not add up")
        if w["requests"] is None or w["responses"] is None:
            self.fail("wrk printed no result (see wrk.out)")
        else:
            n = w["requests"]
            self.say(f"wrk: {n} requests on {a.wrk_conns} keep-alive connections "
                     f"({n / load_secs:.0f}/s; latency " +
                     ", ".join(f"p{p} {v}" for p, v in w["latency"]) + ")")
            for key, label in WRK_CLASSES:
                self.say(f"  {label:<34} failed {w[key]} of {n}")
                if w[key]:
                    self.fail(f"wrk: {label}: {w[key]} of {n}")
            gens = sorted(w["gens"], key=lambda g: int(g) if g.isdigit() else -1)
            self.say(f"  X-Generation values seen by wrk: {len(gens)}"
                     + (f" ({gens[0]} .. {gens[-1]})" if gens else ""))
        if ol and w["requests"] is not None:
            self.say(f"total: {ol['attempts']} new connections (open-loop) + {w['requests']} "
                     f"keep-alive requests (wrk) = {ol['attempts'] + w['requests']} requests")
        self.say("")
        self.say("== actions (latency: issued until the first response of the new generation; "
                 "in-place upgrade: until drover upgrade returns)")
        self.say(f"  {'action':<26} {'done':>9} {'p50':>9} {'p99':>9} {'max':>9}")
        want = {"reload": a.reloads, "restart": a.restarts, "upgrade": a.upgrades,
                "handover": a.upgrades}
        rows = [(k, label, self.lat[k], want[k]) for k, label in ACTION_KINDS]
        rows.append(("drain", "handover: old droverd gone", self.drain, a.upgrades))
        for key, label, lat, n in rows:
            done = f"{len(lat)}/{n}"
            if lat:
                self.say(f"  {label:<26} {done:>9} {fmt_ms(percentile(lat, 50)):>9} "
                         f"{fmt_ms(percentile(lat, 99)):>9} {fmt_ms(max(lat)):>9}")
            else:
                self.say(f"  {label:<26} {done:>9} {'-':>9} {'-':>9} {'-':>9}")
        for k, _ in ACTION_KINDS:
            if self.done[k] != want[k] and not self.failed_actions[k]:
                self.fail(f"only {self.done[k]} of {want[k]} {k} actions ran")
        self.report_health()
        self.say("")
        self.say("== kernel (nstat -az, delta over the run)")
        for key in ("TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPSynRetrans"):
            if key not in nb or key not in na:
                self.fail(f"nstat did not report {key}")
                continue
            d = na[key] - nb[key]
            self.say(f"  {key:<26} {d}")
            if d and self.netns:
                self.fail(f"{key} grew by {d}: " + ("a SYN was dropped and sent again"
                                                    if key == "TcpExtTCPSynRetrans" else
                                                    "a listen queue overflowed (SYNs or handshakes dropped)"))
        self.say("")
        self.say("== end")
        self.say(f"  load average {os.getloadavg()[0]:.2f} at the end")
        if self.health:
            self.say(f"  healthy after the load: {self.health}")
        self.say(f"  drover shutdown: droverd exited; processes left: "
                 f"{'none' if self.nothing_left else 'SOME (see above)'}")


    def report_health(self):
        """Probes are not counted one by one (a passing probe leaves no
        trace): each start of probing (droverd's start, each upgrade and
        handover) probes at once, then every interval until the end."""
        self.say("")
        self.say(f"== health probes (every {self.a.health_interval} ms, timeout "
                 f"{self.a.health_timeout} ms)")
        if self.probe_since is None or self.probe_until is None:
            self.say("  (no estimate: the run did not reach its end)")
        else:
            span = self.probe_until - self.probe_since
            ran = int(span * 1000 / self.a.health_interval) + self.probe_starts - self.probe_skipped
            self.say(f"  probes run: about {ran} ({span:.1f} s probed from {self.probe_starts} "
                     f"starts of probing, less {self.probe_skipped} skipped while one still ran)")
        self.say(f"  probes failed (droverd -v \"probe failed\", \"unhealthy\"): {len(self.probe_failed)}")
        where = {}
        for _, during, _ in self.probe_failed:
            kind = re.sub(r"\d+/\d+ ", "", during)
            where[kind] = where.get(kind, 0) + 1
        for kind, n in sorted(where.items()):
            self.say(f"    {n} during {kind}")
        for t, during, line in self.probe_failed[:20]:
            self.say(f"    [{t:9.3f} s] during {during}: {line}")
        seen = ", ".join(f"{k} {v}" for k, v in sorted(self.health_seen.items(), key=str))
        self.say(f"  status polls: {sum(self.health_seen.values())} ({seen}); "
                 f"{self.health_poll_errors} not answered; failure texts seen: "
                 f"{len(self.health_texts)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--short", action="store_true", help="the CI figure (default): "
                      + ", ".join(f"{k} {v}" for k, v in SHORT.items()))
    mode.add_argument("--long", action="store_true", help="the benchmark: "
                      + ", ".join(f"{k} {v}" for k, v in LONG.items()))
    ap.add_argument("--duration", type=float, help="seconds of load (at least)")
    ap.add_argument("--reloads", type=int, help="configuration reloads (each a new generation)")
    ap.add_argument("--restarts", type=int, help="drover restart NAME")
    ap.add_argument("--upgrades", type=int, help="upgrades of each kind (in place, handover)")
    ap.add_argument("--rate", type=int, help="open-loop connections per second")
    ap.add_argument("--build", default=str(REPO / "build-soak"), help="build directory A")
    ap.add_argument("--build-b", default=str(REPO / "build-soak-b"), help="build directory B")
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--wrk-conns", type=int, default=32)
    ap.add_argument("--warmup", type=float, default=3.0, help="load before the first action (s)")
    ap.add_argument("--tail", type=float, default=4.0, help="load after the last action (s)")
    ap.add_argument("--seed", type=int, default=1, help="order of the actions")
    ap.add_argument("--health-interval", type=int, default=200, metavar="MS",
                    help="the service's health_interval, in ms (200)")
    ap.add_argument("--health-timeout", type=int, default=2000, metavar="MS",
                    help="its health_timeout, in ms (2000)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--stop-signal", metavar="SIG",
                    help="a stop_signal for the service (to see the harness catch failures: "
                    "KILL ends workers in the middle of connections)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--netns", choices=("auto", "private", "shared"), default="auto",
                    help="run in a network namespace of its own (auto: when allowed, i.e. as "
                    "root); in the shared one, nstat's counters include every other listener "
                    "of the machine and are only reported")
    a = ap.parse_args()
    preset = LONG if a.long else SHORT
    for k, v in preset.items():
        if getattr(a, k) is None:
            setattr(a, k, v)

    set_subreaper()
    netns = False
    if a.netns in ("private", "auto"):
        try:
            netns = private_netns()
        except SoakError as e:
            print(f"soak: {e}")
            return 2
        if not netns and a.netns == "private":
            print("soak: cannot create a network namespace (needs root and CLONE_NEWNET)")
            return 2
    soak = Soak(a)
    soak.netns = netns
    stop = {"sig": None}

    def on_signal(sig, frame):
        stop["sig"] = sig
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    ok = False
    try:
        soak.run()
        ok = not soak.failures
    except SoakError as e:
        soak.say(f"soak: {e}")
        soak.failures.append(str(e))
        soak.emergency_stop()
    except KeyboardInterrupt:
        soak.say("soak: interrupted; stopping everything")
        soak.failures.append("interrupted")
        soak.emergency_stop()
    except BaseException:
        soak.emergency_stop()
        raise
    finally:
        soak.timeline.close()
        soak.dlog.close()
    if soak.failures:
        soak.say("")
        soak.say(f"{len(soak.failures)} failure(s):")
        for f in soak.failures:
            soak.say(f"  - {f}")
    if a.keep or not ok:
        soak.say(f"logs kept in {soak.dir} (timeline.log: droverd's log, actions and client "
                 "failures on one clock; droverd.log; wrk.out)")
    else:
        shutil.rmtree(soak.dir, ignore_errors=True)
    soak.say("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
