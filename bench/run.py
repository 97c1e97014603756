#!/usr/bin/python3
"""drover benchmark: droverd side by side with runit and s6, in one run.

Measures, and prints as tables with ratios:
  1. memory of the supervisor itself (VmRSS and PSS) once N `sleep` services
     are up: droverd alone; runit = runsvdir + every runsv; s6 = s6-svscan +
     every s6-supervise;
  2. bring-up time: from launching the supervisor until N `sleep` processes
     with the expected argv exist;
  3. spawn rate: droverd restarting a `/bin/true` service with no delay,
     alone and beside 1000 and 2000 `sleep` services (one droverd each),
     against bench/spawn_loop.c (posix_spawn, vfork, fork; each with and
     without a 100 MB touched heap).

A benchmark, not a test: it asserts nothing about speed, it prints figures
and whether the targets of the issue are met. Every process it starts is
stopped by PID before it exits (also on Ctrl-C, SIGTERM or an error): it is
a child subreaper, so nothing a supervisor leaves behind escapes it.

Usage: /usr/bin/python3 bench/run.py [--quick] [--sizes 100,1000] [--reps N]
           [--spawn-sizes 0,1000,2000] [--window S] [--build DIR] [--keep]
Standard library only. See bench/README.md for how to read the output.
"""
import argparse
import ctypes
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEERS = ("droverd", "runit", "s6")
PEER_BINS = {
    "runit": ("/usr/bin/runsvdir", "/usr/bin/runsv"),
    "s6": ("/usr/bin/s6-svscan", "/usr/bin/s6-supervise"),
}
TARGET_RSS_KB = {100: 2 * 1024, 1000: 8 * 1024}
HEAP_MB = 100
TOTAL_TIMEOUT = 15 * 60          # the whole run, whatever happens
UP_TIMEOUT = 120.0               # bring-up of one supervisor
STOP_TIMEOUT = 30.0              # graceful stop of one supervisor

PR_SET_CHILD_SUBREAPER = 36


class BenchError(Exception):
    pass


def die_on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


# ---------------------------------------------------------------- /proc


def proc_stat(pid):
    """(state, ppid) of pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[0].decode(), int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def children(pid):
    kids = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                kids.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return kids


def descendants(root):
    """Every live process below root, found through the ppid links."""
    by_parent = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st:
                by_parent.setdefault(st[1], []).append(int(name))
    out, todo = [], [root]
    while todo:
        for kid in by_parent.get(todo.pop(), []):
            out.append(kid)
            todo.append(kid)
    return out


def mem_kb(pid):
    """(VmRSS, Pss) of pid in kB."""
    rss = pss = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    if rss is None or pss is None:
        raise BenchError(f"no VmRSS/Pss for pid {pid}")
    return rss, pss


class ArgvCounter:
    """Counts live processes whose argv is exactly `argv`. Positive PIDs are
    remembered (a `sleep` never execs again); every other PID is re-read,
    because a child shows its parent's argv until it has exec'd."""

    def __init__(self, argv):
        self.want = b"\0".join(a.encode() for a in argv) + b"\0"
        self.seen = set()

    def count(self):
        live = set()
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            if pid in self.seen:
                live.add(pid)
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read() == self.want:
                        live.add(pid)
            except OSError:
                pass
        self.seen = live
        return len(live)


# ---------------------------------------------------------------- process hygiene


class Procs:
    """Every process this run started; stop_all() leaves none behind."""

    def __init__(self):
        self.popens = []

    def start(self, argv, log, **kw):
        with open(log, "ab") as f:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                                 start_new_session=True, **kw)
        self.popens.append(p)
        return p

    def reap_orphans(self):
        """Reap zombies re-parented to us (we are a subreaper)."""
        mine = {p.pid for p in self.popens}
        for kid in children(os.getpid()):
            st = proc_stat(kid)
            if st and st[0] == "Z" and kid not in mine:
                try:
                    os.waitpid(kid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def stop_all(self, spare=()):
        """SIGKILL, by PID, whatever still runs below us, except the process
        trees of the Popens in `spare`; reap it all."""
        for _ in range(50):
            keep = set()
            for p in spare:
                keep.add(p.pid)
                keep.update(descendants(p.pid))
            left = [p for p in descendants(os.getpid())
                    if p not in keep and (proc_stat(p) or ("Z",))[0] != "Z"]
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
            self.reap_orphans()
        for p in self.popens:
            if p not in spare:
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        self.reap_orphans()


def wait_until(cond, timeout, what, interval=0.002, on_poll=None):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if on_poll:
            on_poll()
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- supervisors


class Supervisor:
    """One supervisor running N `sleep TAG` services in its own directory."""

    name = "?"

    def __init__(self, procs, workdir, n, tag):
        self.procs, self.dir, self.n = procs, Path(workdir), n
        self.sleep_argv = ["sleep", str(tag)]
        self.log = self.dir / "supervisor.log"
        self.popen = None
        self.dir.mkdir(parents=True)

    def prepare(self):
        raise NotImplementedError

    def launch(self):
        raise NotImplementedError

    def supervision_pids(self):
        """The processes counted as the supervisor's memory."""
        raise NotImplementedError

    def ask_stop(self):
        raise NotImplementedError

    def check_alive(self):
        if self.popen.poll() is not None:
            raise BenchError(f"{self.name} exited with status {self.popen.returncode}; "
                             f"log {self.log}:\n{log_tail(self.log)}")

    def stop(self, counter):
        """Graceful stop, bounded in time; then SIGKILL for whatever of it is
        left (other supervisors still running are spared)."""
        others = [p for p in self.procs.popens if p is not self.popen and p.poll() is None]
        if self.popen is None:
            return
        try:
            if self.popen.poll() is not None:
                return
            self.ask_stop()
            wait_until(lambda: self.popen.poll() is not None, STOP_TIMEOUT,
                       f"{self.name} to exit", interval=0.02, on_poll=self.procs.reap_orphans)
            wait_until(lambda: counter.count() == 0, STOP_TIMEOUT,
                       f"{self.name}'s services to stop", interval=0.02,
                       on_poll=self.procs.reap_orphans)
        finally:
            self.procs.stop_all(spare=others)


class Droverd(Supervisor):
    name = "droverd"

    def __init__(self, procs, workdir, n, tag, build, extra=""):
        super().__init__(procs, workdir, n, tag)
        self.build, self.extra = build, extra
        self.sock = self.dir / "control.sock"

    def prepare(self):
        cmd = " ".join(self.sleep_argv)
        with open(self.dir / "drover.conf", "w") as f:
            for i in range(self.n):
                f.write(f"[service s{i}]\ncommand = {cmd}\n\n")
            f.write(self.extra)

    def launch(self):
        self.popen = self.procs.start([str(self.build / "droverd"), "-c",
                                       str(self.dir / "drover.conf"), "-S", str(self.sock)],
                                      self.log)

    def supervision_pids(self):
        return [self.popen.pid]

    def drover(self, *args, timeout=20):
        r = subprocess.run([str(self.build / "drover"), "-S", str(self.sock), *args],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        if r.returncode != 0:
            raise BenchError(f"drover {' '.join(args)}: exit {r.returncode}: "
                             f"{r.stderr.decode(errors='replace').strip()}")
        return r.stdout

    def status(self, *names):
        return json.loads(self.drover("status", *names, "--json"))

    def ask_stop(self):
        try:
            self.drover("shutdown", timeout=STOP_TIMEOUT)
        except (BenchError, subprocess.TimeoutExpired):
            self.popen.send_signal(signal.SIGTERM)


class RunDirSupervisor(Supervisor):
    """runit and s6 both read a directory of NAME/run scripts."""

    def prepare(self):
        self.svdir = self.dir / "sv"
        self.svdir.mkdir()
        script = f"#!/bin/sh\nexec {' '.join(self.sleep_argv)}\n"
        for i in range(self.n):
            d = self.svdir / f"s{i}"
            d.mkdir()
            (d / "run").write_text(script)
            (d / "run").chmod(0o755)

    def supervision_pids(self):
        return [self.popen.pid] + children(self.popen.pid)


class Runit(RunDirSupervisor):
    name = "runit"

    def prepare(self):
        super().prepare()
        # runsvdir sleeps 1 s before its scan when the directory was modified
        # in the current second (it guards against a half-written service).
        # Real service directories are older than the boot: say so.
        old = time.time() - 3600
        os.utime(self.svdir, (old, old))

    def launch(self):
        self.popen = self.procs.start(["/usr/bin/runsvdir", str(self.svdir)], self.log)

    def ask_stop(self):
        # runit's own way to stop everything: runsvdir sends TERM to every
        # runsv and exits 111; each runsv stops its service, then exits (we
        # reap it: it is re-parented to us).
        self.popen.send_signal(signal.SIGHUP)


class S6(RunDirSupervisor):
    name = "s6"

    def launch(self):
        # -c: s6-svscan supervises at most 500 services by default.
        self.popen = self.procs.start(["/usr/bin/s6-svscan", "-c", str(self.n + 16),
                                       str(self.svdir)], self.log)

    def ask_stop(self):
        # Same as s6-svscanctl -t: stop every service and supervisor, exit 0.
        self.popen.send_signal(signal.SIGTERM)


def log_tail(path, lines=15):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- measurements


def sleep_tag(phase, *parts):
    """A `sleep` argument no other process on the machine uses."""
    return "".join(str(x) for x in (phase, os.getpid(), *parts))


def rss_split(pid):
    """RssAnon and RssFile of pid in kB: what droverd allocated vs mapped."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("RssAnon:", "RssFile:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out.get("RssAnon", 0), out.get("RssFile", 0)


def bring_up(cls, procs, tmp, n, rep, opts):
    """Start one supervisor with n services, measure, stop it. Returns a dict:
    t (seconds to all up), rss and pss (kB, summed), nprocs, and for droverd
    anon/file (kB)."""
    tag = sleep_tag(1, PEERS.index(cls.name), rep)
    work = tmp / f"{cls.name}-{n}-{rep}"
    sup = (Droverd(procs, work, n, tag, opts.build) if cls is Droverd
           else cls(procs, work, n, tag))
    sup.prepare()
    counter = ArgvCounter(sup.sleep_argv)
    if counter.count():
        raise BenchError(f"processes `{' '.join(sup.sleep_argv)}` already exist")
    try:
        t0 = time.monotonic()
        sup.launch()
        wait_until(lambda: counter.count() >= n, UP_TIMEOUT,
                   f"{n} services of {cls.name} to be up", on_poll=sup.check_alive)
        out = {"t": time.monotonic() - t0}
        if cls is Droverd:
            states = [s["state"] for s in sup.status()]
            if states.count("ready") != n:
                raise BenchError(f"droverd: {states.count('ready')} of {n} services ready")
        else:
            wait_until(lambda: len(sup.supervision_pids()) >= n + 1, 10,
                       f"{n} supervise processes of {cls.name}")
        time.sleep(0.5)     # let the supervisors settle after start-up
        pids = sup.supervision_pids()
        out["rss"] = out["pss"] = 0
        for pid in pids:
            rss, pss = mem_kb(pid)
            out["rss"] += rss
            out["pss"] += pss
        out["nprocs"] = len(pids)
        if cls is Droverd:
            out["anon"], out["file"] = rss_split(sup.popen.pid)
        return out
    finally:
        sup.stop(counter)


def spawn_loop_rate(exe, mode, heap, seconds, fds=0):
    r = subprocess.run([str(exe), mode, str(seconds), str(heap), str(fds)], capture_output=True,
                       text=True, timeout=seconds + 60)
    if r.returncode != 0:
        raise BenchError(f"spawn_loop {mode} {seconds} {heap}: {r.stderr.strip()}")
    return float(dict(kv.split("=") for kv in r.stdout.split())["rate"])


SPAWNER = """[service spawner]
command = /bin/true
start = manual
restart = always
restart_delay = 0
restart_delay_max = 0
min_uptime = 0
"""


def start_spawn_droverd(procs, tmp, n, idx, opts):
    """A droverd supervising n `sleep` services plus a stopped /bin/true."""
    sup = Droverd(procs, tmp / f"spawn-{n}", n, sleep_tag(2, idx), opts.build, SPAWNER)
    sup.prepare()
    sup.counter = ArgvCounter(sup.sleep_argv)
    if sup.counter.count():
        raise BenchError(f"processes `{' '.join(sup.sleep_argv)}` already exist")
    sup.launch()
    wait_until(lambda: sup.counter.count() >= n, UP_TIMEOUT,
               f"{n} services of droverd", on_poll=sup.check_alive)
    wait_until(lambda: sup.sock.exists(), 10, "droverd's control socket", interval=0.01,
               on_poll=sup.check_alive)
    return sup


def droverd_window(sup, window):
    """Spawns per second of the /bin/true service over one window, counted
    by the "restarts" field; and droverd's RSS before and after (kB)."""
    sup.drover("start", "spawner", "--no-wait")
    try:
        time.sleep(0.5)                                   # warm-up
        rss0 = mem_kb(sup.popen.pid)[0]
        a = sup.status("spawner")[0]["restarts"]
        t0 = time.monotonic()
        time.sleep(window)
        b = sup.status("spawner")[0]["restarts"]
        t1 = time.monotonic()
        rss1 = mem_kb(sup.popen.pid)[0]
    finally:
        sup.drover("stop", "spawner", timeout=STOP_TIMEOUT)
    sup.check_alive()
    return (b - a) / (t1 - t0), rss0, rss1


def spawn_phase(procs, tmp, exe, opts):
    """Rounds of: each spawn_loop variant, then each droverd's window. The
    rounds interleave everything, so that a change in the machine's load
    touches every figure alike. Returns {label: [rates]}, {n: (rss0, rss1)},
    {n: descriptors of that droverd}."""
    rates, rss, fds = {}, {}, {}
    sups = []
    try:
        for idx, n in enumerate(opts.spawn_sizes):
            sups.append((n, start_spawn_droverd(procs, tmp, n, idx, opts)))
        # The raw loop again, holding as many descriptors as each big
        # droverd does (a pidfd and an output pipe per process, ...).
        fds.update({n: len(os.listdir(f"/proc/{sup.popen.pid}/fd")) for n, sup in sups if n})
        for rnd in range(opts.reps):
            for mode in ("posix_spawn", "vfork", "fork"):
                for heap in (0, HEAP_MB):
                    r = spawn_loop_rate(exe, mode, heap, opts.loop_seconds)
                    rates.setdefault(("loop", mode, heap), []).append(r)
            for n, nfds in fds.items():
                r = spawn_loop_rate(exe, "posix_spawn", 0, opts.loop_seconds, nfds)
                rates.setdefault(("loop", "posix_spawn", 0, nfds), []).append(r)
            for n, sup in sups:
                r, rss0, rss1 = droverd_window(sup, opts.window)
                rates.setdefault(("droverd", n), []).append(r)
                rss[n] = (rss.get(n, (rss0,))[0], rss1)
            print(f"  ... spawn rates, round {rnd + 1} of {opts.reps} done", flush=True)
    finally:
        for n, sup in reversed(sups):
            sup.stop(sup.counter)
    return rates, rss, fds


# ---------------------------------------------------------------- output


def mb(kb):
    return f"{kb / 1024:.2f} MB"


def med(xs):
    return statistics.median(xs)


def table(head, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    print("  ".join(str(x).ljust(w) for x, w in zip(head, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip())


def pkg_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
    return r.stdout.strip() or "?"


def loadavg():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def header(opts, peers):
    print("drover benchmark" + (" (--quick)" if opts.quick else ""))
    print(f"  host: Linux {platform.release()}, {os.cpu_count()} CPUs, "
          f"load average {loadavg()} at start")
    print(f"  droverd: {opts.build / 'droverd'}")
    print("  peers: " + ", ".join(f"{c.name} {pkg_version(c.name)}" for c in peers[1:]))
    print(f"  service counts {','.join(map(str, opts.sizes))}, {opts.reps} run(s) of each "
          f"(median shown); spawn rate: {opts.reps} round(s), droverd window "
          f"{opts.window:g} s, spawn_loop {opts.loop_seconds:g} s")
    print("  ratios in the 'vs droverd' columns are peer / droverd: "
          "above 1, droverd uses less")
    print()


def report_memory(res, sizes):
    print("1. Memory of the supervision itself once every service is up: droverd;")
    print("   runit = runsvdir + one runsv per service; s6 = s6-svscan + one "
          "s6-supervise per service")
    rows = []
    for n in sizes:
        d = res[("droverd", n)]
        for peer in PEERS:
            r = res.get((peer, n))
            if not r:
                rows.append((n, peer, "not installed"))
                continue
            rss, pss = med(r["rss"]), med(r["pss"])
            rows.append((n, peer, r["nprocs"][0], mb(rss), mb(pss),
                         f"{rss / med(d['rss']):.1f}x", f"{pss / med(d['pss']):.1f}x"))
    table(("services", "supervisor", "procs", "RSS total", "PSS total",
           "RSS vs droverd", "PSS vs droverd"), rows)
    for n in sizes:
        d = res[("droverd", n)]
        print(f"droverd at {n} services: RSS {mb(med(d['rss']))} = anon {mb(med(d['anon']))}"
              f" + file-backed {mb(med(d['file']))}")
    for n in sizes:
        if n in TARGET_RSS_KB:
            rss = med(res[("droverd", n)]["rss"])
            ok = "met" if rss <= TARGET_RSS_KB[n] else "NOT met"
            print(f"target: droverd RSS at {n} services <= {TARGET_RSS_KB[n] // 1024} MB: "
                  f"{mb(rss)}, {ok}")
    print()


def report_bringup(res, sizes):
    print("2. Bring-up: from launching the supervisor until every service's "
          "`sleep` process runs")
    rows = []
    for n in sizes:
        d = med(res[("droverd", n)]["t"])
        for peer in PEERS:
            r = res.get((peer, n))
            if not r:
                rows.append((n, peer, "not installed"))
                continue
            t = r["t"]
            rows.append((n, peer, f"{med(t):.3f} s", f"{min(t):.3f} s", f"{max(t):.3f} s",
                         f"{1000 * med(t) / n:.2f} ms", f"{med(t) / d:.2f}x"))
    table(("services", "supervisor", "median", "min", "max", "per service", "vs droverd"), rows)
    for n in sizes:
        d = med(res[("droverd", n)]["t"])
        peers = [p for p in PEERS[1:] if (p, n) in res]
        if peers:
            faster = all(d < med(res[(p, n)]["t"]) for p in peers)
            print(f"target: droverd faster than {' and '.join(peers)} at {n} services: "
                  f"{'met' if faster else 'NOT met'}")
    print()


def report_spawn(rates, rss, fds, opts):
    print("3. Spawn rate: /bin/true started, exited and reaped, over and over "
          "(completed spawns per second)")
    base = med(rates[("loop", "posix_spawn", 0)])
    rows = []
    for key, rs in rates.items():
        if key[0] == "loop":
            label, note = f"spawn_loop {key[1]}, {key[2]} MB heap", ""
            if len(key) > 3:
                label += f", {key[3]} fds"
        else:
            n = key[1]
            label = f"droverd, 1 service + {n} sleep services" if n else "droverd, 1 service"
            note = f"{mb(rss[n][0])} -> {mb(rss[n][1])}"
        rows.append((label, f"{med(rs):.0f}", f"{min(rs):.0f}", f"{max(rs):.0f}",
                     f"{med(rs) / base:.2f}x", note))
    table(("spawner", "median/s", "min/s", "max/s", "vs posix_spawn 0 MB",
           "droverd RSS, first -> last window"), rows)

    def rate(*key):
        return med(rates[key])

    print("a bigger parent (100 MB heap touched) spawns at, of its 0 MB rate: " + ", ".join(
        f"{m} {rate('loop', m, HEAP_MB) / rate('loop', m, 0):.2f}x"
        for m in ("posix_spawn", "vfork", "fork")))
    small = rate("droverd", 0) if ("droverd", 0) in rates else None
    for n in opts.spawn_sizes:
        if n and small:
            nfds = fds[n]
            print(f"droverd supervising {n} more services spawns at "
                  f"{rate('droverd', n) / small:.2f}x its rate with 1 service; the raw loop holding "
                  f"as many descriptors ({nfds}) at {rate('loop', 'posix_spawn', 0, nfds) / base:.2f}x its own")
    print(f"(droverd: the \"restarts\" field of `drover status --json` over {opts.window:g} s "
          f"windows, restart_delay = 0, min_uptime = 0)")
    print()


# ---------------------------------------------------------------- main


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="1 run of each, shorter windows, smaller large droverd")
    ap.add_argument("--sizes", help="service counts for memory and bring-up "
                                    "(default 100,1000)")
    ap.add_argument("--spawn-sizes", help="sleep services beside the spawner, one droverd "
                                          "each (default 0,1000,2000; --quick 0,1000)")
    ap.add_argument("--reps", type=int, help="runs of each measurement (default 3; --quick 1)")
    ap.add_argument("--window", type=float, help="droverd spawn-rate window in seconds "
                                                 "(default 4; --quick 2)")
    ap.add_argument("--build", type=Path, default=REPO / "build-bench",
                    help="directory with droverd and drover (default build-bench; "
                         "built with make when missing)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    o = ap.parse_args()
    ints = lambda s: [int(x) for x in s.split(",")]
    o.sizes = ints(o.sizes) if o.sizes else [100, 1000]
    o.spawn_sizes = (ints(o.spawn_sizes) if o.spawn_sizes
                     else [0, 1000] if o.quick else [0, 1000, 2000])
    o.reps = o.reps or (1 if o.quick else 3)
    o.window = o.window or (2.0 if o.quick else 4.0)
    o.loop_seconds = 1.0 if o.quick else 2.0
    o.build = o.build.resolve()
    if min(o.sizes) < 1 or min(o.spawn_sizes) < 0 or o.reps < 1 or o.window <= 0:
        ap.error("sizes must be >= 1, spawn sizes >= 0, reps >= 1, window > 0")
    return o


def prerequisites(opts, tmp):
    if not (opts.build / "droverd").exists() or not (opts.build / "drover").exists():
        subprocess.run(["make", "-C", str(REPO), f"BUILD={opts.build}", "all"], check=True,
                       timeout=600)
    exe = tmp / "spawn_loop"
    subprocess.run(["cc", "-O2", "-std=c11", "-Wall", "-Wextra", "-o", str(exe),
                    str(REPO / "bench" / "spawn_loop.c")], check=True, timeout=120)
    peers = [Droverd]
    for cls in (Runit, S6):
        if all(os.access(b, os.X_OK) for b in PEER_BINS[cls.name]):
            peers.append(cls)
        else:
            print(f"bench: {cls.name} is not installed (scripts/deps.sh bench installs it); "
                  f"leaving it out", file=sys.stderr)
    return exe, peers


def run(opts, procs, tmp):
    exe, peers = prerequisites(opts, tmp)
    header(opts, peers)
    res = {}
    for n in opts.sizes:
        for rep in range(opts.reps):
            # rotate the order, so that a drift in the machine's load is shared
            for cls in peers[rep % len(peers):] + peers[:rep % len(peers)]:
                out = bring_up(cls, procs, tmp, n, rep, opts)
                r = res.setdefault((cls.name, n), {})
                for k, v in out.items():
                    r.setdefault(k, []).append(v)
                print(f"  ... {cls.name:8} {n:5} services, run {rep + 1}: up in "
                      f"{out['t']:.3f} s, RSS {mb(out['rss'])}, PSS {mb(out['pss'])}",
                      flush=True)
    rates, rss, fds = spawn_phase(procs, tmp, exe, opts)
    print()
    report_memory(res, opts.sizes)
    report_bringup(res, opts.sizes)
    report_spawn(rates, rss, fds, opts)
    print(f"load average {loadavg()} at the end ({os.cpu_count()} CPUs, shared with "
          f"whatever else runs on this machine)")


def bench_main(opts, run_fn, prefix, total_timeout):
    """Run run_fn(opts, procs, tmp) as a subreaper with a time limit; every
    process it started is stopped and its temp dir removed, however it ends.
    Shared by run.py and serve.py."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("bench: cannot become a child subreaper", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, die_on_signal)
    signal.signal(signal.SIGHUP, die_on_signal)
    signal.signal(signal.SIGALRM, die_on_signal)
    signal.alarm(total_timeout)
    # As root droverd reads only a configuration whose whole path is root's
    # alone, which /tmp (writable by all) is not.
    base = None
    if os.geteuid() == 0:
        base = Path("/run/drover-bench")
        base.mkdir(mode=0o755, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    procs = Procs()
    t0 = time.monotonic()
    try:
        run_fn(opts, procs, tmp)
        print(f"total time {time.monotonic() - t0:.0f} s")
        return 0
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(f"bench: interrupted ({str(e) or 'Ctrl-C'}); stopping everything", file=sys.stderr)
        return 130
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # let the clean-up finish
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        procs.stop_all()
        if opts.keep:
            print(f"bench: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main():
    return bench_main(parse_args(), run, "drover-bench.", TOTAL_TIMEOUT)


if __name__ == "__main__":
    sys.exit(main())
