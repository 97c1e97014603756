#!/usr/bin/python3
"""drover health-probe benchmark: what probing costs droverd.

droverd runs N services (default 1000), each `sleep TAG` with `ready = none`
and `health_interval = 1s`, in four scenarios, one droverd each:
  none   no probes (the baseline);
  tcp    health = tcp:127.0.0.1:PORT;
  http   health = http://127.0.0.1:PORT/sI (a path per service);
  exec   health = exec:/bin/true.
The tcp and http probes go to one small probe server on 127.0.0.1 (this
script, run as its own process with --probe-server: one selectors loop that
accepts on two ports and answers every HTTP request with 200). It counts
what it is sent, and for http the gap between two probes of one service.

Once every service is healthy (ready, for `none`) and one more interval has
passed, droverd is measured over a window (default 20 s): its own CPU
(utime + stime from /proc/PID/stat), the CPU of the children it reaped
(cutime + cstime: the exec probes; the `sleep` services never exit), its
RSS. Probes are counted by the probe server (tcp, http) or, for exec, by
the kernel's fork counter (`processes` in /proc/stat) less the machine's
background fork rate seen in the baseline's window. After the window every
service must still be healthy with restarts = 0, or the run says which are
not.

A benchmark, not a test: it asserts nothing about speed and exits 0 whatever
the figures are (1 only when something failed to run). It borrows run.py's
process hygiene: a child subreaper, every process stopped by PID, one
temporary directory, bounded in time.

Usage: /usr/bin/python3 bench/health.py [--services 1000[,200]] [--window S]
           [--interval S] [--only none,tcp,http,exec] [--reps N] [--build DIR]
           [--keep]
Standard library only. See bench/README.md.
"""
import argparse
import errno
import json
import os
import platform
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.dont_write_bytecode = True   # no bench/__pycache__ left behind
import run as common  # noqa: E402  (bench/run.py: Procs, Droverd, wait_until, table, ...)

BenchError = common.BenchError
wait_until = common.wait_until

SCENARIOS = ("none", "tcp", "http", "exec")
TOTAL_TIMEOUT = 20 * 60          # the whole run, whatever happens
UP_TIMEOUT = 120.0               # every service's process up
HEALTHY_TIMEOUT = 60.0           # then every service healthy, or measured anyway
STATUS_TIMEOUT = 60.0            # one `drover status --json`
PERF = "/usr/bin/perf"
TICK = os.sysconf("SC_CLK_TCK")
HTTP_OK = b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"


# ---------------------------------------------------------------- probe server


class ProbeServer:
    """tcp: accept, count, close. http: read the request head, count it by
    path, answer 200, close. stats: one connection, one JSON line back."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.ports = {}
        for kind in ("tcp", "http", "stats"):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(4096)
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, ("listen", kind))
            self.ports[kind] = s.getsockname()[1]
        self.tcp = self.http = self.bad = 0
        self.last = {}            # path -> monotonic time of its last probe
        self.gap_sum = 0.0
        self.gap_n = 0
        self.gap_max = 0.0

    def stats(self):
        return {"tcp": self.tcp, "http": self.http, "bad": self.bad, "gap_sum": self.gap_sum,
                "gap_n": self.gap_n, "gap_max": self.gap_max, "paths": len(self.last)}

    def reset_gaps(self):
        self.gap_sum, self.gap_n, self.gap_max = 0.0, 0, 0.0

    def accept(self, lsock, kind):
        while True:
            try:
                c, _ = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:          # EMFILE and the like: say so, go on
                print(f"probe server: accept: {e}", file=sys.stderr, flush=True)
                return
            if kind == "tcp":
                self.tcp += 1
                c.close()
                continue
            c.setblocking(False)
            self.sel.register(c, selectors.EVENT_READ, ("conn", kind, bytearray()))

    def readable(self, c, kind, buf):
        try:
            data = c.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        buf += data
        if data and b"\r\n\r\n" not in buf and b"\n\n" not in buf and len(buf) < 8192:
            return
        self.sel.unregister(c)
        try:
            if kind == "stats":
                line = bytes(buf).split(b"\n", 1)[0].strip()
                if line == b"reset-gaps":
                    self.reset_gaps()
                c.sendall(json.dumps(self.stats()).encode() + b"\n")
            elif data:
                self.answer(c, bytes(buf))
            else:
                self.bad += 1
        except OSError:
            self.bad += 1
        c.close()

    def answer(self, c, req):
        parts = req.split(b"\r\n", 1)[0].split()
        if len(parts) < 2:
            self.bad += 1
            return
        now = time.monotonic()
        path = parts[1]
        prev = self.last.get(path)
        if prev is not None:
            gap = now - prev
            self.gap_sum += gap
            self.gap_n += 1
            self.gap_max = max(self.gap_max, gap)
        self.last[path] = now
        self.http += 1
        c.send(HTTP_OK)           # 60 bytes into an empty socket buffer

    def serve(self, portfile):
        tmp = Path(str(portfile) + ".tmp")
        tmp.write_text(json.dumps(self.ports))
        tmp.rename(portfile)
        while True:
            for key, _ in self.sel.select():
                what = key.data
                if what[0] == "listen":
                    self.accept(key.fileobj, what[1])
                else:
                    self.readable(key.fileobj, what[1], what[2])


def probe_server_main(portfile):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ProbeServer().serve(Path(portfile))


def server_stats(port, cmd=b"stats"):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(cmd + b"\n\n")
        out = b""
        while not out.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
    return json.loads(out)


# ---------------------------------------------------------------- /proc


def cpu_ticks(pid):
    """(utime + stime, cutime + cstime) of pid in clock ticks."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def forks_since_boot():
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("processes "):
                return int(line.split()[1])
    raise BenchError("no `processes` line in /proc/stat")


def start_fork_count(procs, workdir, pid):
    """perf counting the forks droverd makes (its exec probes), when perf is
    installed and works; else None (the kernel's machine-wide counter then)."""
    if not os.access(PERF, os.X_OK):
        return None
    p = procs.start([PERF, "stat", "-x,", "-I", "200", "-o", str(workdir / "perf.out"), "-e",
                     "sched:sched_process_fork", "-p", str(pid)], workdir / "perf.log")
    time.sleep(0.3)             # attached (a few forks of the window may be missed)
    return None if p.poll() is not None else p


def stop_fork_count(p, workdir):
    if p is None:
        return None
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=10)
    except Exception:           # noqa: BLE001  (stop_all kills it)
        return None
    # -I 200: one line per 200 ms, "SECONDS,COUNT,,sched:sched_process_fork,..."
    forks, span = 0, 0.0
    try:
        for line in (workdir / "perf.out").read_text().splitlines():
            f = line.strip().split(",")
            if len(f) > 3 and f[3] == "sched:sched_process_fork" and f[1].isdigit():
                forks += int(f[1])
                span = max(span, float(f[0]))
    except (OSError, ValueError):
        return None
    return (forks, span) if span else None


def sample_wchan(pid, until):
    """Until `until`, every 20 ms: where droverd's thread is (its state, and
    the kernel function it sleeps in). {where: samples}."""
    out = {}
    while True:
        now = time.monotonic()
        if now >= until:
            return out
        try:
            with open(f"/proc/{pid}/wchan") as f:
                w = f.read().strip() or "0"
            st = common.proc_stat(pid)
            key = f"{st[0] if st else '?'} {'running' if w == '0' else w}"
            out[key] = out.get(key, 0) + 1
        except OSError:
            pass
        time.sleep(min(0.02, until - now))


def log_findings(log):
    """Counts of droverd's log lines that say something went wrong."""
    out = {}
    try:
        text = Path(log).read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        for word in ("unhealthy", "probe failed", "skipped", "warn", "error"):
            if word in line:
                out[word] = out.get(word, 0) + 1
    return out


# ---------------------------------------------------------------- droverd


class HealthDroverd(common.Droverd):
    """N `sleep TAG` services, each with the scenario's probe."""

    def __init__(self, procs, workdir, n, tag, build, scenario, ports, interval):
        super().__init__(procs, workdir, n, tag, build)
        self.scenario, self.ports, self.interval = scenario, ports, interval

    def health_line(self, i):
        if self.scenario == "tcp":
            return f"health = tcp:127.0.0.1:{self.ports['tcp']}\n"
        if self.scenario == "http":
            return f"health = http://127.0.0.1:{self.ports['http']}/s{i}\n"
        if self.scenario == "exec":
            return "health = exec:/bin/true\n"
        return ""

    def prepare(self):
        cmd = " ".join(self.sleep_argv)
        with open(self.dir / "drover.conf", "w") as f:
            for i in range(self.n):
                f.write(f"[service s{i}]\ncommand = {cmd}\nready = none\n")
                if self.scenario != "none":
                    f.write(self.health_line(i))
                    f.write(f"health_interval = {self.interval_text()}\n")
                f.write("\n")

    def interval_text(self):
        ms = round(self.interval * 1000)
        return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"

    def timed_status(self):
        """(`drover status --json`, seconds it took); (None, limit) when
        droverd did not answer within STATUS_TIMEOUT."""
        t0 = time.monotonic()
        try:
            out = json.loads(self.drover("status", "--json", timeout=STATUS_TIMEOUT))
        except subprocess.TimeoutExpired:
            return None, STATUS_TIMEOUT
        return out, time.monotonic() - t0

    def summary(self, status=None):
        """(ready, healthy, restarts total, [names not fine])."""
        ready = healthy = restarts = 0
        bad = []
        for s in status if status is not None else self.timed_status()[0] or []:
            ok = s["state"] == "ready" and s["restarts"] == 0
            ready += s["state"] == "ready"
            restarts += s["restarts"]
            if self.scenario != "none":
                healthy += s.get("health") == "healthy"
                ok = ok and s.get("health") == "healthy"
            if not ok:
                bad.append(f"{s['name']}: state {s['state']}, health {s.get('health', '-')}, "
                           f"restarts {s['restarts']}, {s.get('health_text', '')}")
        return ready, healthy, restarts, bad


def measure(procs, tmp, n, scenario, rep, ports, opts):
    """One droverd, one scenario: bring it up, settle, measure a window."""
    tag = common.sleep_tag(3, SCENARIOS.index(scenario), n, rep)
    sup = HealthDroverd(procs, tmp / f"{scenario}-{n}-{rep}", n, tag, opts.build, scenario,
                        ports, opts.interval)
    sup.prepare()
    counter = common.ArgvCounter(sup.sleep_argv)
    if counter.count():
        raise BenchError(f"processes `{' '.join(sup.sleep_argv)}` already exist")
    try:
        sup.launch()
        wait_until(lambda: counter.count() >= n, UP_TIMEOUT, f"{n} services of droverd",
                   interval=0.05, on_poll=sup.check_alive)
        wait_until(lambda: sup.sock.exists(), 10, "droverd's control socket", interval=0.01,
                   on_poll=sup.check_alive)
        want = "healthy" if scenario != "none" else "ready"

        def all_fine():
            r, h, _, _ = sup.summary()
            return (h if scenario != "none" else r) >= n

        t_up = time.monotonic()
        try:
            wait_until(all_fine, HEALTHY_TIMEOUT, f"{n} services {want}", interval=0.5,
                       on_poll=sup.check_alive)
            t_healthy = time.monotonic() - t_up
        except BenchError:
            t_healthy = None    # measured anyway: the table says how many are not
        time.sleep(opts.interval)                       # one more full interval
        pid = sup.popen.pid
        if scenario in ("tcp", "http"):
            server_stats(ports["stats"], b"reset-gaps")
        s0 = server_stats(ports["stats"])
        perf = start_fork_count(procs, sup.dir, pid) if scenario == "exec" else None
        f0, (own0, kids0), t0 = forks_since_boot(), cpu_ticks(pid), time.monotonic()
        where = sample_wchan(pid, t0 + opts.window)
        f1, (own1, kids1), t1 = forks_since_boot(), cpu_ticks(pid), time.monotonic()
        perf_forks = stop_fork_count(perf, sup.dir)
        s1 = server_stats(ports["stats"])
        rss = common.mem_kb(pid)[0]
        sup.check_alive()
        status, t_status = sup.timed_status()
        ready, healthy, restarts, bad = sup.summary(status or [])
        if status is None:
            bad = [f"`drover status --json` got no answer within {STATUS_TIMEOUT:.0f} s"]
        dt = t1 - t0
        out = {"scenario": scenario, "n": n, "dt": dt, "own_s": (own1 - own0) / TICK,
               "kids_s": (kids1 - kids0) / TICK, "forks": f1 - f0, "rss": rss,
               "ready": ready, "healthy": healthy, "restarts": restarts, "bad": bad,
               "t_healthy": t_healthy, "fds": len(os.listdir(f"/proc/{pid}/fd")),
               "t_status": t_status, "answered": status is not None,
               "log": log_findings(sup.log), "wchan": where}
        if perf_forks is not None:      # perf counted a little longer than dt
            out["perf_forks"] = perf_forks
            out["probes"] = round(perf_forks[0] * dt / perf_forks[1]) if perf_forks[1] else 0
        if scenario in ("tcp", "http"):
            out["probes"] = s1[scenario] - s0[scenario]
            out["server_bad"] = s1["bad"] - s0["bad"]
        if scenario == "http" and s1["gap_n"]:
            out["gap_mean"] = s1["gap_sum"] / s1["gap_n"]
            out["gap_max"] = s1["gap_max"]
        return out
    finally:
        sup.stop(counter)


# ---------------------------------------------------------------- output


def finish_exec_counts(results):
    """Exec probes: forks on the machine in the window, less the background
    rate of the baseline window (same N) when there is one."""
    for r in results:
        if r["scenario"] != "exec" or "perf_forks" in r:
            continue
        base = [b for b in results if b["scenario"] == "none" and b["n"] == r["n"]]
        bg = (sum(b["forks"] / b["dt"] for b in base) / len(base)) if base else 0.0
        r["bg_forks"] = bg
        r["probes"] = max(0.0, r["forks"] - bg * r["dt"])


def row(r, opts):
    dt = r["dt"]
    own = 100 * r["own_s"] / dt
    kids = 100 * r["kids_s"] / dt
    expect = r["n"] / opts.interval if r["scenario"] != "none" else 0
    rate = r.get("probes", 0) / dt
    per = f"{1e6 * r['own_s'] / r['probes']:.1f}" if r.get("probes") else "-"
    kper = (f"{1e6 * r['kids_s'] / r['probes']:.0f}" if r["scenario"] == "exec" and r.get("probes")
            else "-")
    fine = (r["healthy"] if r["scenario"] != "none" else r["ready"])
    return (r["scenario"], r["n"], f"{rate:.0f}" if r["scenario"] != "none" else "-",
            f"{expect:.0f}" if expect else "-", f"{own:.2f}", per,
            f"{kids:.1f}" if r["scenario"] == "exec" else "-", kper,
            f"{r['rss'] / 1024:.2f}", f"{fine}/{r['n']}", r["restarts"],
            f"{r['t_status']:.2f}" if r["answered"] else f">{r['t_status']:.0f}")


def summary_line(r, opts):
    dt = r["dt"]
    own = 100 * r["own_s"] / dt
    if r["scenario"] == "none":
        return (f"droverd with {r['n']} services and no probes: {own:.2f}% of a core, "
                f"RSS {r['rss'] / 1024:.2f} MB")
    rate = r.get("probes", 0) / dt
    per = 1e6 * r["own_s"] / r["probes"] if r.get("probes") else float("nan")
    what = {"tcp": "tcp", "http": "http", "exec": "exec:/bin/true"}[r["scenario"]]
    line = (f"droverd probing {r['n']} services every {opts.interval:g} s ({what}, "
            f"{rate:.0f} probes/s): {own:.1f}% of a core, {per:.0f} us/probe, "
            f"RSS {r['rss'] / 1024:.2f} MB")
    if r["scenario"] == "exec":
        kids = 100 * r["kids_s"] / dt
        kper = 1e6 * r["kids_s"] / r["probes"] if r.get("probes") else float("nan")
        line += (f"; the probes themselves (fork+exec of /bin/true) {kids:.0f}% of a core, "
                 f"{kper:.0f} us each")
    fine = r["healthy"] == r["n"] and r["restarts"] == 0
    if not r["answered"]:
        line += f"; `drover status` got NO answer within {r['t_status']:.0f} s"
    else:
        line += ("; all healthy, no restarts" if fine
                 else f"; {r['n'] - r['healthy']} NOT healthy, {r['restarts']} restarts")
    return line


def report(results, opts):
    print()
    print(f"Health probes: droverd's cost, window {opts.window:g} s, "
          f"health_interval {opts.interval:g} s")
    common.table(("scenario", "services", "probes/s", "expected/s", "droverd CPU %",
                  "us/probe", "children CPU %", "child us/probe", "RSS MB", "healthy",
                  "restarts", "status s"), [row(r, opts) for r in results])
    print("(CPU % is of one core; droverd's own utime+stime over the window; children = "
          "cutime+cstime of the probes it reaped; status s = how long one `drover status "
          "--json` took after the window)")
    for r in results:
        if "perf_forks" in r:
            print(f"exec, {r['n']} services: probes counted by perf (sched_process_fork of "
                  f"droverd): {r['perf_forks'][0]} in {r['perf_forks'][1]:.1f} s")
        elif r["scenario"] == "exec":
            print(f"exec probes counted from the kernel's fork counter: {r['forks']} forks "
                  f"on the machine in {r['dt']:.1f} s, less the baseline's "
                  f"{r['bg_forks']:.1f}/s background")
        if "gap_mean" in r:
            print(f"http, {r['n']} services: gap between two probes of one service: mean "
                  f"{r['gap_mean'] * 1000:.0f} ms, max {r['gap_max'] * 1000:.0f} ms "
                  f"(health_interval {opts.interval * 1000:.0f} ms)")
        if r.get("server_bad"):
            print(f"{r['scenario']}, {r['n']} services: {r['server_bad']} connections "
                  f"without a request at the probe server")
        if r["wchan"]:
            tot = sum(r["wchan"].values())
            print(f"droverd's thread, {r['scenario']}, {r['n']} ({tot} samples): " + ", ".join(
                f"{k} {100 * v / tot:.0f}%" for k, v in
                sorted(r["wchan"].items(), key=lambda kv: -kv[1])[:4]))
        if r["log"]:
            print(f"droverd's log ({r['scenario']}, {r['n']}): " + ", ".join(
                f"{v} lines with \"{k}\"" for k, v in sorted(r["log"].items())))
        if len(r["bad"]) > 10:
            print(f"NOT fine ({r['scenario']}, {r['n']}): {len(r['bad'])} services, the "
                  f"first 10:")
        for b in r["bad"][:10]:
            print(f"NOT fine ({r['scenario']}, {r['n']}): {b}")
    print()
    for r in results:
        print(summary_line(r, opts))


# ---------------------------------------------------------------- main


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--services", default="1000",
                    help="service counts, one droverd per count and scenario (default 1000)")
    ap.add_argument("--window", type=float, default=20.0,
                    help="measuring window in seconds (default 20)")
    ap.add_argument("--interval", type=float, default=1.0,
                    help="health_interval in seconds (default 1)")
    ap.add_argument("--only", default=",".join(SCENARIOS),
                    help="scenarios to run, of none,tcp,http,exec (default all)")
    ap.add_argument("--reps", type=int, default=1, help="runs of each scenario (default 1)")
    ap.add_argument("--build", type=Path, default=REPO / "build-bench",
                    help="directory with droverd and drover (default build-bench; "
                         "built with make when missing)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--probe-server", metavar="PORTFILE", help=argparse.SUPPRESS)
    o = ap.parse_args()
    if o.probe_server:
        return o
    o.services = [int(x) for x in o.services.split(",")]
    o.only = [x for x in o.only.split(",") if x]
    o.build = o.build.resolve()
    if (min(o.services) < 1 or o.window <= 0 or o.interval < 0.1 or o.reps < 1
            or any(x not in SCENARIOS for x in o.only)):
        ap.error("services >= 1, window > 0, interval >= 0.1, reps >= 1, "
                 "scenarios of none,tcp,http,exec")
    return o


def start_probe_server(procs, tmp):
    portfile = tmp / "ports.json"
    p = procs.start([sys.executable, str(Path(__file__).resolve()), "--probe-server",
                     str(portfile)], tmp / "probe-server.log")

    def ready():
        if p.poll() is not None:
            raise BenchError(f"the probe server exited with status {p.returncode}:\n"
                             f"{common.log_tail(tmp / 'probe-server.log')}")
        return portfile.exists()

    wait_until(ready, 20, "the probe server's ports", interval=0.02)
    return p, json.loads(portfile.read_text())


def run(opts, procs, tmp):
    if not (opts.build / "droverd").exists() or not (opts.build / "drover").exists():
        subprocess.run(["make", "-C", str(REPO), f"BUILD={opts.build}", "all"], check=True,
                       timeout=600)
    print("drover health-probe benchmark")
    print(f"  host: Linux {platform.release()}, {os.cpu_count()} CPUs, "
          f"load average {common.loadavg()} at start")
    print(f"  droverd: {opts.build / 'droverd'}")
    print(f"  services {','.join(map(str, opts.services))}, scenarios {','.join(opts.only)}, "
          f"health_interval {opts.interval:g} s, window {opts.window:g} s, {opts.reps} run(s)")
    server, ports = start_probe_server(procs, tmp)
    print(f"  probe server pid {server.pid}: tcp 127.0.0.1:{ports['tcp']}, "
          f"http 127.0.0.1:{ports['http']}")
    print()
    results = []
    srv0 = cpu_ticks(server.pid)[0]
    for n in opts.services:
        for rep in range(opts.reps):
            for scenario in opts.only:
                r = measure(procs, tmp, n, scenario, rep, ports, opts)
                results.append(r)
                up = (f"healthy after {r['t_healthy']:.1f} s" if r["t_healthy"] is not None
                      else f"NOT all healthy after {HEALTHY_TIMEOUT:.0f} s")
                print(f"  ... {scenario:4} {n:5} services, run {rep + 1}: {up}, droverd {100 * r['own_s'] / r['dt']:.2f}% "
                      f"(children {100 * r['kids_s'] / r['dt']:.1f}%), "
                      f"{r.get('probes', r['forks'])} "
                      f"{'probes' if 'probes' in r else 'forks on the machine'}, "
                      f"{r['fds']} fds, load {common.loadavg()}", flush=True)
    srv = (cpu_ticks(server.pid)[0] - srv0) / TICK
    finish_exec_counts(results)
    report(results, opts)
    print(f"probe server's own CPU over the whole run: {srv:.1f} s (not droverd's)")
    print(f"load average {common.loadavg()} at the end ({os.cpu_count()} CPUs, shared with "
          f"whatever else runs on this machine)")


def main():
    opts = parse_args()
    if opts.probe_server:
        probe_server_main(opts.probe_server)
        return 0
    return common.bench_main(opts, run, "drover-health.", TOTAL_TIMEOUT)


if __name__ == "__main__":
    sys.exit(main())
