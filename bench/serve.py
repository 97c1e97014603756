#!/usr/bin/python3
"""drover serving benchmark: droverd's accept and prefork modes side by side
with real peers, in one run.

Measures, and prints as tables with ratios:
  1. accept mode vs xinetd: one process per connection, the same tiny C
     handler (bench/inetd_hello.c) behind droverd (mode = accept) and behind
     xinetd (wait = no); client `ab -n N -c 16` (no keep-alive: one request
     per connection). Connections per second and p99 latency; beside them
     bench/bare_inetd.c, a minimal master that only accepts and calls
     posix_spawn, and the bound the handler's own cost sets on the ratio;
  2. prefork: examples/hello-worker under `wrk -t2 -c64 -d10s --latency`,
     64 workers behind droverd (mode = prefork) vs the same binary run by
     hand (`hello-worker --listen PORT --procs 64`). Requests per second and
     p99 latency;
  3. pool growth: a prefork pool of bench/slow_worker.c (200 ms a request,
     reports busy/idle), procs = 2, max_procs = 32, idle_timeout = 2s, hit by
     a burst of 64 concurrent requests: time until the pool reaches
     max_procs, and from the end of the burst until it is back at procs.

A benchmark, not a test: it asserts nothing about speed, it prints figures
and whether the targets of the issue are met. Every process it starts is
stopped by PID before it exits (also on Ctrl-C, SIGTERM or an error): it is
a child subreaper, so nothing a server leaves behind escapes it.

Usage: /usr/bin/python3 bench/serve.py [--quick] [--reps N] [--requests N]
           [--duration S] [--build DIR] [--keep]
Standard library only; shares its process hygiene with bench/run.py. See
bench/README.md for how to read the output.
"""
import argparse
import json
import os
import platform
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.dont_write_bytecode = True   # no bench/__pycache__ left behind
import run as common  # noqa: E402  (bench/run.py: Procs, wait_until, table, ...)

BenchError = common.BenchError
med = common.med
table = common.table

XINETD = "/usr/sbin/xinetd"
AB = "/usr/bin/ab"
WRK = "/usr/bin/wrk"
TOTAL_TIMEOUT = 15 * 60          # the whole run, whatever happens
UP_TIMEOUT = 60.0                # a server to answer, a pool to be complete
STOP_TIMEOUT = 30.0              # graceful stop of one server
CLIENT_SLACK = 120               # ab / wrk: their own run time plus this

ACCEPT_CONC = 16                 # ab -c
ACCEPT_MAX_PROCS = 64
PREFORK_PROCS = 64
WRK_THREADS, WRK_CONNS = 2, 64
SLOW_MS = 200
GROW_PROCS, GROW_MAX, GROW_IDLE_S, GROW_BURST = 2, 32, 2, 64

TARGET_ACCEPT_RATE = 1.5         # droverd / xinetd connections per second, at least
TARGET_PREFORK = 0.97            # droverd / standalone requests per second, at least

HELLO = b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n"


# ---------------------------------------------------------------- helpers


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, timeout=5.0):
    """One HTTP/1.0 GET on a fresh connection; the whole answer (bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        out = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return out
            out += chunk


def answers(port, want=None):
    try:
        got = http_get(port, timeout=2.0)
    except OSError:
        return False
    return got.startswith(b"HTTP/1.") and (want is None or got == want)


def cpu_ticks(pid):
    """(utime + stime, cutime + cstime) of pid in clock ticks: its own CPU,
    and that of the children it has reaped."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


TICK = os.sysconf("SC_CLK_TCK")


def pkg_version(pkg):
    return common.pkg_version(pkg)


# ---------------------------------------------------------------- servers


class Server:
    """One long-running server process (droverd, xinetd, hello-worker)."""

    name = "?"

    def __init__(self, procs, workdir):
        self.procs, self.dir = procs, Path(workdir)
        self.dir.mkdir(parents=True)
        self.log = self.dir / "server.log"
        self.popen = None

    def check_alive(self):
        if self.popen.poll() is not None:
            raise BenchError(f"{self.name} exited with status {self.popen.returncode}; "
                             f"log {self.log}:\n{common.log_tail(self.log)}")

    def ask_stop(self):
        self.popen.send_signal(signal.SIGTERM)

    def stop(self):
        """Graceful stop, bounded in time; then SIGKILL, by PID, for whatever
        of its tree is left (other servers still running are spared)."""
        if self.popen is None:
            return
        others = [p for p in self.procs.popens if p is not self.popen and p.poll() is None]
        try:
            if self.popen.poll() is None:
                self.ask_stop()
                common.wait_until(lambda: self.popen.poll() is not None, STOP_TIMEOUT,
                                  f"{self.name} to exit", interval=0.02,
                                  on_poll=self.procs.reap_orphans)
        except BenchError as e:
            print(f"bench: {e}; killing it", file=sys.stderr)
        finally:
            self.procs.stop_all(spare=others)


class Droverd(Server):
    name = "droverd"

    def __init__(self, procs, workdir, build, conf):
        super().__init__(procs, workdir)
        self.build = build
        self.sock = self.dir / "control.sock"
        (self.dir / "drover.conf").write_text(conf)

    def launch(self):
        self.popen = self.procs.start([str(self.build / "droverd"), "-c",
                                       str(self.dir / "drover.conf"), "-S", str(self.sock)],
                                      self.log)
        common.wait_until(lambda: self.sock.exists(), UP_TIMEOUT, "droverd's control socket",
                          interval=0.01, on_poll=self.check_alive)
        return self

    def drover(self, *args, timeout=20):
        r = subprocess.run([str(self.build / "drover"), "-S", str(self.sock), *args],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        if r.returncode != 0:
            raise BenchError(f"drover {' '.join(args)}: exit {r.returncode}: "
                             f"{r.stderr.decode(errors='replace').strip()}")
        return r.stdout

    def status(self, name):
        return json.loads(self.drover("status", name, "--json"))[0]

    def ask_stop(self):
        try:
            self.drover("shutdown", timeout=STOP_TIMEOUT)
        except (BenchError, subprocess.TimeoutExpired):
            self.popen.send_signal(signal.SIGTERM)


class Xinetd(Server):
    name = "xinetd"

    def __init__(self, procs, workdir, port, handler):
        super().__init__(procs, workdir)
        self.conf = self.dir / "xinetd.conf"
        # What the issue prescribes, plus two settings that only make xinetd
        # faster: no tcp_wrappers lookup (NOLIBWRAP: droverd has none) and no
        # log line per connection (droverd writes none either).
        self.conf.write_text(f"""defaults
{{
\tlog_type = FILE {self.dir / 'xinetd-service.log'}
}}

service drover-bench
{{
\ttype = UNLISTED
\tport = {port}
\tbind = 127.0.0.1
\tsocket_type = stream
\tprotocol = tcp
\twait = no
\tuser = root
\tserver = {handler}
\tinstances = UNLIMITED
\tcps = 100000 1
\tper_source = UNLIMITED
\tflags = NOLIBWRAP
\tlog_on_success =
\tlog_on_failure =
}}
""")

    def launch(self):
        self.popen = self.procs.start([XINETD, "-f", str(self.conf), "-dontfork"], self.log)
        return self


class Bare(Server):
    """bench/bare_inetd.c: accept, posix_spawn, nothing else. The best a
    master could do here with this handler."""

    name = "bare"

    def __init__(self, procs, workdir, exe, port, handler):
        super().__init__(procs, workdir)
        self.argv = [str(exe), str(port), str(handler)]

    def launch(self):
        self.popen = self.procs.start(self.argv, self.log)
        return self


class Standalone(Server):
    """hello-worker --listen PORT --procs N: the ceiling for prefork."""

    name = "hello-worker alone"

    def __init__(self, procs, workdir, build, port, n):
        super().__init__(procs, workdir)
        self.argv = [str(build / "examples" / "hello-worker"), "--listen", str(port),
                     "--procs", str(n)]

    def launch(self):
        self.popen = self.procs.start(self.argv, self.log)
        return self

    def ask_stop(self):
        # Its parent ignores TERM and waits for its workers; each worker
        # stops on TERM. So: TERM to every worker, by PID.
        for pid in common.children(self.popen.pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


# ---------------------------------------------------------------- clients


def children_cpu_ms():
    """CPU time (user + system, ms) of the children this process has reaped."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (ru.ru_utime + ru.ru_stime) * 1000


def run_ab(port, n, conc):
    """ab, no keep-alive: every request is a new connection. Returns a dict:
    rate (per second), p50/p99/max (ms), failed, complete, secs, client_ms
    (ab's own CPU per connection, ms)."""
    argv = [AB, "-q", "-r", "-s", "30", "-n", str(n), "-c", str(conc),
            f"http://127.0.0.1:{port}/"]
    c0 = children_cpu_ms()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=n / 100 + CLIENT_SLACK)
    client_ms = (children_cpu_ms() - c0) / max(n, 1)
    out = r.stdout

    def field(label, conv=float, default=None):
        m = re.search(rf"^{re.escape(label)}:\s+([0-9.]+)", out, re.M)
        if not m:
            if default is not None:
                return default
            raise BenchError(f"ab: no '{label}' in its output (exit {r.returncode}):\n"
                             f"{out[-1500:]}{r.stderr[-500:]}")
        return conv(m.group(1))

    pct = {int(m.group(1)): float(m.group(2))
           for m in re.finditer(r"^\s*(\d+)%\s+(\d+)", out, re.M)}
    if 99 not in pct:
        raise BenchError(f"ab: no percentiles in its output:\n{out[-1500:]}{r.stderr[-500:]}")
    return {"rate": field("Requests per second"), "complete": field("Complete requests", int),
            "failed": field("Failed requests", int) + field("Non-2xx responses", int, 0),
            "secs": field("Time taken for tests"), "client_ms": client_ms,
            "p50": pct[50], "p99": pct[99], "max": pct[100]}


UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def run_wrk(port, seconds):
    """wrk with keep-alive connections. Returns rate (requests per second),
    p50/p99 (ms), errors (socket errors + non-2xx), requests."""
    argv = [WRK, f"-t{WRK_THREADS}", f"-c{WRK_CONNS}", f"-d{seconds:g}s", "--latency",
            f"http://127.0.0.1:{port}/"]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=seconds + CLIENT_SLACK)
    out = r.stdout
    rate = re.search(r"^Requests/sec:\s+([0-9.]+)", out, re.M)
    reqs = re.search(r"^\s*(\d+) requests in", out, re.M)
    lat = {int(m.group(1)): float(m.group(2)) * UNIT[m.group(3)]
           for m in re.finditer(r"^\s+(\d+)%\s+([0-9.]+)(us|ms|s|m)\s*$", out, re.M)}
    if r.returncode != 0 or not rate or not reqs or 99 not in lat:
        raise BenchError(f"wrk: unexpected output (exit {r.returncode}):\n{out[-1500:]}"
                         f"{r.stderr[-500:]}")
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rate": float(rate.group(1)), "requests": int(reqs.group(1)),
            "p50": lat[50], "p99": lat[99],
            "errors": errors + (int(non2xx.group(1)) if non2xx else 0)}


# ---------------------------------------------------------------- 1. accept mode


def accept_phase(procs, tmp, handler, opts):
    """Rounds of ab against droverd and xinetd (order alternating). Returns
    {name: [result dicts]} with master CPU added to each."""
    dport, xport, bport = free_port(), free_port(), free_port()
    servers = []
    res = {}
    try:
        d = Droverd(procs, tmp / "accept-droverd", opts.build, f"""[service hello]
mode = accept
command = {handler}
listen = tcp:127.0.0.1:{dport}
max_procs = {ACCEPT_MAX_PROCS}
""").launch()
        servers.append((d, dport))
        if opts.have_xinetd:
            x = Xinetd(procs, tmp / "accept-xinetd", xport, handler).launch()
            servers.append((x, xport))
        b = Bare(procs, tmp / "accept-bare", opts.bare_inetd, bport, handler).launch()
        servers.append((b, bport))
        for srv, port in servers:
            common.wait_until(lambda: answers(port, HELLO), UP_TIMEOUT,
                              f"{srv.name} to answer on port {port}", interval=0.05,
                              on_poll=srv.check_alive)
            run_ab(port, min(1000, opts.requests), ACCEPT_CONC)          # warm-up
        for rnd in range(opts.reps):
            # rotate, so that a drift in the machine's load is shared
            order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
            for srv, port in order:
                c0 = cpu_ticks(srv.popen.pid)
                out = run_ab(port, opts.requests, ACCEPT_CONC)
                c1 = cpu_ticks(srv.popen.pid)
                srv.check_alive()
                n = max(out["complete"], 1)
                out["self_ms"] = 1000 * (c1[0] - c0[0]) / TICK / n * 1000
                out["kids_ms"] = 1000 * (c1[1] - c0[1]) / TICK / n * 1000
                out["load"] = common.loadavg().split()[0]
                res.setdefault(srv.name, []).append(out)
                print(f"  ... accept  {srv.name:8} run {rnd + 1}: {out['rate']:7.0f} conn/s, "
                      f"p50 {out['p50']:.0f} ms, p99 {out['p99']:.0f} ms, failed "
                      f"{out['failed']}, master CPU {out['self_ms']:.0f} ms/1000 conn, "
                      f"load {out['load']}", flush=True)
    finally:
        for srv, _ in reversed(servers):
            srv.stop()
    return res


# ---------------------------------------------------------------- 2. prefork


def pool_complete(d, name, n):
    st = d.status(name)
    return st["total"] == n and st["idle"] == n


def prefork_phase(procs, tmp, opts):
    dport, sport = free_port(), free_port()
    hello = opts.build / "examples" / "hello-worker"
    servers = []
    res = {}
    try:
        d = Droverd(procs, tmp / "prefork-droverd", opts.build, f"""[service hello]
mode = prefork
command = {hello}
listen = tcp:127.0.0.1:{dport}
procs = {PREFORK_PROCS}
max_procs = {PREFORK_PROCS}
""").launch()
        servers.append((d, dport))
        s = Standalone(procs, tmp / "prefork-alone", opts.build, sport, PREFORK_PROCS).launch()
        servers.append((s, sport))
        common.wait_until(lambda: pool_complete(d, "hello", PREFORK_PROCS), UP_TIMEOUT,
                          f"droverd's {PREFORK_PROCS} hello-workers to be idle", interval=0.05,
                          on_poll=d.check_alive)
        common.wait_until(lambda: len(common.children(s.popen.pid)) >= PREFORK_PROCS,
                          UP_TIMEOUT, f"{PREFORK_PROCS} standalone hello-workers",
                          interval=0.05, on_poll=s.check_alive)
        for srv, port in servers:
            common.wait_until(lambda: answers(port), UP_TIMEOUT,
                              f"{srv.name} to answer on port {port}", interval=0.05,
                              on_poll=srv.check_alive)
            run_wrk(port, 1)                                             # warm-up
        for rnd in range(opts.reps):
            order = servers if rnd % 2 == 0 else servers[::-1]
            for srv, port in order:
                c0 = cpu_ticks(d.popen.pid)
                out = run_wrk(port, opts.duration)
                c1 = cpu_ticks(d.popen.pid)
                srv.check_alive()
                out["droverd_cpu"] = (c1[0] - c0[0]) / TICK
                out["load"] = common.loadavg().split()[0]
                res.setdefault(srv.name, []).append(out)
                print(f"  ... prefork {srv.name:18} run {rnd + 1}: {out['rate']:8.0f} req/s, "
                      f"p99 {out['p99']:.2f} ms, errors {out['errors']}, droverd CPU "
                      f"{out['droverd_cpu']:.2f} s, load {out['load']}", flush=True)
        res["pool after"] = d.status("hello")
    finally:
        for srv, _ in reversed(servers):
            srv.stop()
    return res


# ---------------------------------------------------------------- 3. pool growth


class Burst:
    """GROW_BURST concurrent slow requests, released together. Records when
    each answer arrived (monotonic) and which worker (pid) gave it."""

    def __init__(self, port, n):
        self.port, self.n = port, n
        self.go = threading.Event()
        self.lock = threading.Lock()
        self.done, self.errors, self.pids = [], [], []
        self.threads = [threading.Thread(target=self.one, daemon=True) for _ in range(n)]

    def one(self):
        self.go.wait()
        try:
            got = http_get(self.port, timeout=60)
            t = time.monotonic()
            body = got.split(b"\r\n\r\n", 1)[-1].strip()
            with self.lock:
                self.done.append(t)
                self.pids.append(body)
        except OSError as e:
            with self.lock:
                self.errors.append(str(e))

    def start(self):
        for t in self.threads:
            t.start()
        t0 = time.monotonic()
        self.go.set()
        return t0

    def finished(self):
        return len(self.done) + len(self.errors) == self.n


def growth_once(d, port, timeout):
    """One burst. Returns t_max (s from the burst to total == GROW_MAX, or
    None), peak total, t_end (s to the last answer), back (s from t_end until
    total == procs), gone (s from t_end until droverd lists only procs pids),
    workers (distinct pids that answered), errors, samples."""
    samples = []
    burst = Burst(port, GROW_BURST)
    t0 = burst.start()
    t_end = t_back = t_gone = None
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        st = d.status("slow")
        now = time.monotonic() - t0
        samples.append((now, st["total"], st["busy"], st["idle"], len(st["pids"])))
        if t_end is None and burst.finished():
            t_end = max(burst.done) - t0 if burst.done else now
        if t_end is not None:
            if t_back is None and st["total"] <= GROW_PROCS and now >= t_end:
                t_back = now
            if t_gone is None and len(st["pids"]) <= GROW_PROCS and now >= t_end:
                t_gone = now
            if t_back is not None and t_gone is not None:
                break
        d.check_alive()
        time.sleep(0.005)
    else:
        raise BenchError(f"the slow pool did not settle within {timeout:.0f} s: last sample "
                         f"(t, total, busy, idle, pids) = {samples[-1]}")
    t_max = next((t for t, total, *_ in samples if total >= GROW_MAX), None)
    return {"t_max": t_max, "peak": max(s[1] for s in samples), "t_end": t_end,
            "back": t_back - t_end, "gone": t_gone - t_end,
            "workers": len(set(burst.pids)), "errors": len(burst.errors),
            "answered": len(burst.done), "polls": len(samples),
            "poll_ms": 1000 * samples[-1][0] / max(len(samples), 1)}


def growth_phase(procs, tmp, worker, opts):
    port = free_port()
    runs = []
    d = None
    try:
        d = Droverd(procs, tmp / "growth-droverd", opts.build, f"""[service slow]
mode = prefork
command = {worker} {SLOW_MS}
listen = tcp:127.0.0.1:{port}
procs = {GROW_PROCS}
max_procs = {GROW_MAX}
idle_timeout = {GROW_IDLE_S}s
""").launch()
        common.wait_until(lambda: pool_complete(d, "slow", GROW_PROCS), UP_TIMEOUT,
                          f"the slow pool's {GROW_PROCS} workers to be idle", interval=0.05,
                          on_poll=d.check_alive)
        for rnd in range(opts.reps):
            out = growth_once(d, port, 60 + GROW_IDLE_S)
            runs.append(out)
            tm = f"{out['t_max']:.3f} s" if out["t_max"] is not None else "never"
            print(f"  ... growth  run {rnd + 1}: max_procs at {tm} (peak {out['peak']}), last "
                  f"answer at {out['t_end']:.3f} s, back to procs {out['back']:.3f} s later, "
                  f"{out['workers']} workers served, {out['errors']} errors", flush=True)
            common.wait_until(lambda: pool_complete(d, "slow", GROW_PROCS), UP_TIMEOUT,
                              "the slow pool to be back at procs and idle", interval=0.05,
                              on_poll=d.check_alive)
    finally:
        if d:
            d.stop()
    return runs


# ---------------------------------------------------------------- output


def ms(x):
    return f"{x:.0f} ms" if x >= 10 else f"{x:.2f} ms"


def verdict(ok):
    return "met" if ok else "NOT met"


def report_accept(res, opts):
    print(f"1. accept mode vs xinetd: a process per connection (bench/inetd_hello.c), "
          f"ab -n {opts.requests} -c {ACCEPT_CONC}, no keep-alive")
    rate = {name: med([r["rate"] for r in rs]) for name, rs in res.items()}
    p99 = {name: med([r["p99"] for r in rs]) for name, rs in res.items()}
    cpu = {name: (med([r["self_ms"] for r in rs]) + med([r["kids_ms"] for r in rs])) / 1000
           for name, rs in res.items()}
    x = "xinetd" in res
    rows = []
    for name, rs in res.items():
        vs = ((f"{rate[name] / rate['xinetd']:.2f}x", f"{p99[name] / p99['xinetd']:.2f}x")
              if x and name != "xinetd" else ("", ""))
        rows.append((name, f"{rate[name]:.0f}", f"{min(r['rate'] for r in rs):.0f}",
                     f"{max(r['rate'] for r in rs):.0f}", ms(med([r['p50'] for r in rs])),
                     ms(p99[name]), ms(max(r["max"] for r in rs)), sum(r["failed"] for r in rs),
                     f"{med([r['self_ms'] for r in rs]):.0f}",
                     f"{med([r['kids_ms'] for r in rs]):.0f}", *vs))
    table(("server", "conn/s", "min", "max", "p50", "p99", "worst", "failed",
           "master CPU ms/1k conn", "handlers CPU ms/1k conn", "rate / xinetd's",
           "p99 / xinetd's"), rows)
    print("(median of the runs; p50, p99 from ab, whole milliseconds; worst = longest "
          "request of all runs; CPU from /proc/PID/stat: the master's own, and that of the "
          "handlers it reaped;\n bare = bench/bare_inetd.c: accept and glibc's posix_spawn, "
          "no limits, no accounting: a minimal master)")
    if x and "droverd" in res:
        rr = rate["droverd"] / rate["xinetd"]
        pr = p99["droverd"] / p99["xinetd"]
        print(f"target: droverd >= {TARGET_ACCEPT_RATE}x xinetd's connections/s: {rr:.2f}x, "
              f"{verdict(rr >= TARGET_ACCEPT_RATE)}")
        print(f"target: droverd's p99 no worse than xinetd's: {pr:.2f}x "
              f"({ms(p99['droverd'])} vs {ms(p99['xinetd'])}), {verdict(pr <= 1.0)}")
        print("CPU per connection, master + handlers: " +
              ", ".join(f"{name} {c:.2f} ms" for name, c in cpu.items()) +
              ";\n  with the CPUs saturated by the benchmark, the rates follow these costs")
        hd = med([r["kids_ms"] for r in res["droverd"]]) / 1000
        ab = med([r["client_ms"] for rs in res.values() for r in rs])
        print(f"bound: ab itself used {ab:.2f} ms CPU per connection. Were droverd's master "
              f"free, its handlers alone\n  ({hd:.2f} ms) would still cap droverd/xinetd's "
              f"rate near (xinetd {cpu['xinetd']:.2f} + ab {ab:.2f}) / (handlers {hd:.2f} "
              f"+ ab {ab:.2f}) = {(cpu['xinetd'] + ab) / (hd + ab):.2f}x on this machine\n"
              f"  (an estimate: the kernel's TCP work on the loopback is in nobody's CPU time)")
        if "bare" in res:
            print(f"the bare master reaches {rate['bare'] / rate['xinetd']:.2f}x xinetd's rate; "
                  f"droverd {rate['droverd'] / rate['bare']:.2f}x the bare master's")
    print()


def report_prefork(res, opts):
    print(f"2. prefork: {PREFORK_PROCS} hello-workers, wrk -t{WRK_THREADS} -c{WRK_CONNS} "
          f"-d{opts.duration:g}s --latency, keep-alive")
    alone = res.get(Standalone.name)
    rows = []
    for name, rs in res.items():
        if name == "pool after":
            continue
        rate = med([r["rate"] for r in rs])
        rows.append((name, f"{rate:.0f}", f"{min(r['rate'] for r in rs):.0f}",
                     f"{max(r['rate'] for r in rs):.0f}", ms(med([r['p50'] for r in rs])),
                     ms(med([r['p99'] for r in rs])), sum(r["errors"] for r in rs),
                     f"{med([r['droverd_cpu'] for r in rs]):.2f} s",
                     f"{rate / med([r['rate'] for r in alone]):.3f}x" if alone else "",
                     f"{med([r['p99'] for r in rs]) / med([r['p99'] for r in alone]):.2f}x"
                     if alone else ""))
    table(("server", "req/s", "min", "max", "p50", "p99", "errors", "droverd CPU in run",
           "vs alone (rate)", "vs alone (p99)"), rows)
    st = res.get("pool after")
    if st:
        print(f"(median of the runs; droverd's pool after the runs: total {st['total']}, "
              f"idle {st['idle']}, served {st['served']} connections)")
    d = res.get("droverd")
    p50s = [med([r["p50"] for r in rs]) for name, rs in res.items() if name != "pool after"]
    if p50s and all(35 <= p <= 50 for p in p50s):
        print("note: a p50 of about 40 ms is a delayed-ACK stall (a response in two writes "
              "without TCP_NODELAY);\n      both sides are then bound by it "
              f"({WRK_CONNS} connections / 40 ms = about {WRK_CONNS * 25} req/s), not by CPU.")
    if d and alone:
        r = med([x["rate"] for x in d]) / med([x["rate"] for x in alone])
        print(f"target: droverd >= {TARGET_PREFORK}x hello-worker alone: {r:.3f}x, "
              f"{verdict(r >= TARGET_PREFORK)}")
    print()


def report_growth(runs):
    print(f"3. pool growth: slow_worker ({SLOW_MS} ms a request), procs = {GROW_PROCS}, "
          f"max_procs = {GROW_MAX}, idle_timeout = {GROW_IDLE_S}s; a burst of {GROW_BURST} "
          f"concurrent requests")
    rows = []
    for i, r in enumerate(runs):
        rows.append((i + 1, f"{r['t_max']:.3f} s" if r["t_max"] is not None else "never",
                     r["peak"], f"{r['t_end']:.3f} s", f"{r['back']:.3f} s",
                     f"{r['gone']:.3f} s", f"{r['answered']}/{GROW_BURST}", r["workers"],
                     f"{r['poll_ms']:.0f} ms"))
    reached = [r["t_max"] for r in runs if r["t_max"] is not None]
    rows.append(("median", f"{med(reached):.3f} s" if reached else "never",
                 med([r["peak"] for r in runs]), f"{med([r['t_end'] for r in runs]):.3f} s",
                 f"{med([r['back'] for r in runs]):.3f} s",
                 f"{med([r['gone'] for r in runs]):.3f} s", "", "", ""))
    table(("run", "to max_procs", "peak", "burst end", "back to procs",
           "processes gone", "answered", "workers", "poll every"), rows)
    ideal = GROW_BURST * SLOW_MS / 1000 / GROW_MAX
    print(f"(times from the burst's start: 'to max_procs' until status \"total\" = {GROW_MAX}; "
          f"'burst end' = the last answer, at best {ideal:.1f} s with {GROW_MAX} workers. "
          f"From the burst end: 'back to procs' until \"total\" = {GROW_PROCS} (idle_timeout is "
          f"{GROW_IDLE_S} s), 'processes gone' until droverd lists only {GROW_PROCS} pids)")
    print()


def header(opts):
    print("drover serving benchmark" + (" (--quick)" if opts.quick else ""))
    print(f"  host: Linux {platform.release()}, {os.cpu_count()} CPUs, "
          f"load average {common.loadavg()} at start")
    print(f"  droverd: {opts.build / 'droverd'}")
    print(f"  peers and clients: xinetd {pkg_version('xinetd')}, ab (apache2-utils "
          f"{pkg_version('apache2-utils')}), wrk {pkg_version('wrk')}")
    print(f"  {opts.reps} run(s) of each, interleaved (median shown); ab -n {opts.requests}; "
          f"wrk {opts.duration:g} s")
    if opts.busy:
        print(f"  {opts.busy} busy loop(s) running beside the servers for the whole run (--busy)")
    print()


# ---------------------------------------------------------------- main


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="1 run of each, ab -n 2000, wrk 3 s")
    ap.add_argument("--reps", type=int, help="runs of each measurement (default 3; --quick 1)")
    ap.add_argument("--requests", type=int,
                    help="ab -n: connections per accept-mode run (default 10000; --quick 2000)")
    ap.add_argument("--duration", type=float,
                    help="wrk -d: seconds per prefork run (default 10; --quick 3)")
    ap.add_argument("--only", default="accept,prefork,growth",
                    help="comma-separated sections to run (default all: accept,prefork,growth)")
    ap.add_argument("--busy", type=int, default=0,
                    help="run N busy loops (sh -c 'while :; do :; done') beside the servers "
                         "for the whole run: a machine with other work (default 0)")
    ap.add_argument("--build", type=Path, default=REPO / "build-bench",
                    help="directory with droverd, drover, libdrover.a and examples/ "
                         "(default build-bench; built with make when missing)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    o = ap.parse_args()
    o.reps = o.reps or (1 if o.quick else 3)
    o.requests = o.requests or (2000 if o.quick else 10000)
    o.duration = o.duration or (3.0 if o.quick else 10.0)
    o.only = set(o.only.split(","))
    o.build = o.build.resolve()
    if o.reps < 1 or o.requests < 100 or o.duration < 1 or not 0 <= o.busy <= 64:
        ap.error("reps must be >= 1, requests >= 100, duration >= 1, busy 0 to 64")
    if not o.only <= {"accept", "prefork", "growth"}:
        ap.error("--only takes accept, prefork, growth")
    return o


def prerequisites(opts, tmp):
    need = ("droverd", "drover", "libdrover.a", "examples/hello-worker")
    if not all((opts.build / f).exists() for f in need):
        subprocess.run(["make", "-C", str(REPO), f"BUILD={opts.build}", "all"], check=True,
                       timeout=600)
    cc = ["cc", "-O2", "-std=c11", "-Wall", "-Wextra"]
    handler, worker = tmp / "inetd_hello", tmp / "slow_worker"
    subprocess.run(cc + ["-o", str(handler), str(BENCH / "inetd_hello.c")], check=True,
                   timeout=120)
    subprocess.run(cc + ["-I", str(REPO / "src" / "libdrover"), "-o", str(worker),
                         str(BENCH / "slow_worker.c"), str(opts.build / "libdrover.a")],
                   check=True, timeout=120)
    opts.bare_inetd = tmp / "bare_inetd"
    subprocess.run(cc + ["-o", str(opts.bare_inetd), str(BENCH / "bare_inetd.c")], check=True,
                   timeout=120)
    opts.have_xinetd = os.access(XINETD, os.X_OK)
    for tool, path, what in (("xinetd", XINETD, "droverd is measured alone"),
                             ("ab", AB, "section 1 is left out"),
                             ("wrk", WRK, "section 2 is left out")):
        if not os.access(path, os.X_OK):
            print(f"bench: {tool} is not installed (scripts/deps.sh bench installs it); {what}",
                  file=sys.stderr)
    if not os.access(AB, os.X_OK):
        opts.only.discard("accept")
    if not os.access(WRK, os.X_OK):
        opts.only.discard("prefork")
    return handler, worker


def run(opts, procs, tmp):
    handler, worker = prerequisites(opts, tmp)
    header(opts)
    # Other work on the machine: spared by every server's stop (they are
    # running), stopped by PID with everything else when the run ends.
    for i in range(opts.busy):
        procs.start(["/bin/sh", "-c", "while :; do :; done"], tmp / f"busy{i}.log")
    acc = pre = grow = None
    if "accept" in opts.only:
        acc = accept_phase(procs, tmp, handler, opts)
    if "prefork" in opts.only:
        pre = prefork_phase(procs, tmp, opts)
    if "growth" in opts.only:
        grow = growth_phase(procs, tmp, worker, opts)
    print()
    if acc:
        report_accept(acc, opts)
    if pre:
        report_prefork(pre, opts)
    if grow:
        report_growth(grow)
    print(f"load average {common.loadavg()} at the end ({os.cpu_count()} CPUs, shared with "
          f"whatever else runs on this machine)")


def main():
    return common.bench_main(parse_args(), run, "drover-serve.", TOTAL_TIMEOUT)


if __name__ == "__main__":
    sys.exit(main())
