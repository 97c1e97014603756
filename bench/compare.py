#!/usr/bin/python3
"""drover benchmark comparison: one bench script against two builds, side by side.

Runs bench/run.py or bench/serve.py (unchanged, from this checkout) once per
build per round, interleaved, the order alternating (before, after, after,
before, ...) so that a drift in the machine's load favours neither build.
Each run's own output is kept in a log file. Then prints one table: per
figure, the median over the rounds for each build, the ratio after / before,
each round's value, and the spread between rounds of the same build (the
noise to judge the ratio by).

Usage: /usr/bin/python3 bench/compare.py --before DIR --after DIR [--rounds N]
           [--logs DIR] run.py|serve.py [-- SCRIPT-OPTIONS...]
e.g.   bench/compare.py --before ../old/build --after build --rounds 2 run.py
       bench/compare.py --before A --after B serve.py -- --requests 3000 --reps 2

A benchmark, not a test: it asserts nothing and exits 0 whatever the figures
are (1 when a run failed). Standard library only. See bench/README.md.
"""
import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PYTHON = "/usr/bin/python3"
RUN_TIMEOUT = 20 * 60            # one run; the scripts stop themselves at 15 min

NUM = re.compile(r"-?\d+(?:\.\d+)?")


# ---------------------------------------------------------------- parsing


def number(cell):
    """The leading number of a table cell ("61 ms", "0.915x", "257"), or None."""
    m = NUM.match(cell.strip())
    return float(m.group()) if m else None


def tables(text):
    """Every table printed by run.py's table(): a header line, a line of
    dashes, rows until a line that is not a row. Yields (header, rows), each
    row a dict column -> cell; columns are cut at the dashes' positions. A
    line with text in the two blanks before a column is prose, not a row."""
    lines = text.splitlines()
    for i in range(1, len(lines)):
        if not re.fullmatch(r"-+(  -+)*", lines[i]):
            continue
        spans = [m.span() for m in re.finditer(r"-+", lines[i])]
        cut = [(a, spans[k + 1][0] if k + 1 < len(spans) else None)
               for k, (a, _) in enumerate(spans)]
        head = [lines[i - 1][a:b].strip() for a, b in cut]
        rows = []
        for line in lines[i + 1:]:
            if not line.strip() or line.startswith(("(", " ")) or \
                    any(line[a - 2:a].strip() for a, _ in cut[1:]):
                break
            rows.append({h: line[a:b].strip() for h, (a, b) in zip(head, cut)})
        yield head, rows


def parse_run(text):
    """Figures of one bench/run.py output: {figure: (value, better)}."""
    out = {}
    per_run = {}
    for m in re.finditer(r"\.\.\. droverd\s+(\d+) services, run \d+: up in ([\d.]+) s, "
                         r"RSS ([\d.]+) MB, PSS ([\d.]+) MB", text):
        n = m.group(1)
        for name, v in (("bring-up (s)", m.group(2)), ("RSS (MB)", m.group(3)),
                        ("PSS (MB)", m.group(4))):
            per_run.setdefault((n, name), []).append(float(v))
    for (n, name), vs in per_run.items():
        out[f"{n} services: {name}"] = (statistics.median(vs), "lower")
    for m in re.finditer(r"droverd at (\d+) services: RSS [\d.]+ MB = anon ([\d.]+) MB \+ "
                         r"file-backed ([\d.]+) MB", text):
        out[f"{m.group(1)} services: RSS anon (MB)"] = (float(m.group(2)), "lower")
        out[f"{m.group(1)} services: RSS file-backed (MB)"] = (float(m.group(3)), "lower")
    for head, rows in tables(text):
        if head[0] != "spawner":
            continue
        for r in rows:
            label = r["spawner"]
            if label.startswith("droverd"):
                out[f"spawns/s, {label}"] = (number(r["median/s"]), "higher")
                out[f"spawns/s vs raw loop, {label}"] = (number(r["vs posix_spawn 0 MB"]),
                                                         "higher")
                rss = re.findall(r"[\d.]+", r["droverd RSS, first -> last window"])
                if len(rss) == 2:
                    out[f"RSS first window (MB), {label}"] = (float(rss[0]), "lower")
                    out[f"RSS last window (MB), {label}"] = (float(rss[1]), "lower")
            elif label == "spawn_loop posix_spawn, 0 MB heap":
                out[f"spawns/s, {label} (the machine, no droverd)"] = (
                    number(r["median/s"]), "higher")
    return out


GROWTH = [("to max_procs", "to max_procs (s)", "lower"),
          ("burst end", "burst end (s)", "lower"),
          ("back to procs", "back to procs (s)", "lower"),
          ("processes gone", "processes gone (s)", "lower")]
ACCEPT = [("conn/s", "conn/s", "higher"), ("p50", "p50 (ms)", "lower"),
          ("p99", "p99 (ms)", "lower"),
          ("master CPU ms/1k conn", "master CPU (ms/1k conn)", "lower"),
          ("handlers CPU ms/1k conn", "handlers CPU (ms/1k conn)", "lower")]
PREFORK = [("req/s", "req/s", "higher"), ("p50", "p50 (ms)", "lower"),
           ("p99", "p99 (ms)", "lower"), ("droverd CPU in run", "droverd CPU (s)", "lower"),
           ("vs alone (rate)", "rate vs hello-worker alone", "higher")]


def parse_serve(text):
    """Figures of one bench/serve.py output: {figure: (value, better)}."""
    out = {}
    for head, rows in tables(text):
        if head[0] == "server" and "conn/s" in head:
            section, cols = "accept", ACCEPT
        elif head[0] == "server" and "req/s" in head:
            section, cols = "prefork", PREFORK
        elif head[0] == "run" and "to max_procs" in head:
            for r in rows:
                if r["run"] == "median":
                    for col, name, better in GROWTH:
                        out[f"growth: {name}"] = (number(r[col]), better)
            continue
        else:
            continue
        for r in rows:
            for col, name, better in cols:
                if col.startswith(("vs alone", "droverd CPU")) and r["server"] != "droverd":
                    continue
                v = number(r.get(col, ""))
                if v is not None:
                    out[f"{section} {r['server']}: {name}"] = (v, better)
    return out


PARSERS = {"run.py": parse_run, "serve.py": parse_serve}


# ---------------------------------------------------------------- running


def binary_size(build):
    """`size` of droverd (text, data, bss), or its file size without binutils."""
    exe = build / "droverd"
    r = subprocess.run(["size", str(exe)], capture_output=True, text=True)
    if r.returncode == 0 and len(r.stdout.splitlines()) > 1:
        text, data, bss = r.stdout.splitlines()[1].split()[:3]
        return f"text {text}, data {data}, bss {bss}; file {exe.stat().st_size} bytes"
    return f"file {exe.stat().st_size} bytes"


def one_run(script, build, extra, log):
    cmd = [PYTHON, str(BENCH / script), "--build", str(build), *extra]
    print(f"  $ {' '.join(cmd)} > {log}", flush=True)
    t0 = time.monotonic()
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                           timeout=RUN_TIMEOUT)
    text = Path(log).read_text(errors="replace")
    load = re.findall(r"load average ([\d.]+ [\d.]+ [\d.]+) at the end", text)
    print(f"    exit {r.returncode} after {time.monotonic() - t0:.0f} s"
          + (f", load average {load[-1]} at its end" if load else ""), flush=True)
    if r.returncode != 0:
        raise SystemExit(f"compare: {script} --build {build} failed (exit {r.returncode}); "
                         f"see {log}")
    return PARSERS[script](text)


def fmt(v):
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 1000 else f"{v:.0f}"


def report(figures, rounds):
    """figures: {name: {"before": [v...], "after": [v...], "better": s}}."""
    rows = []
    for name, f in figures.items():
        b, a = f.get("before", []), f.get("after", [])
        if len(b) != rounds or len(a) != rounds:
            continue            # a figure some run did not print
        mb, ma = statistics.median(b), statistics.median(a)
        ratio = f"{ma / mb:.3f}" if mb else "-"
        noise = max((max(x) - min(x)) / statistics.median(x) if statistics.median(x) else 0
                    for x in (b, a))
        rows.append((name, f["better"], fmt(mb), fmt(ma), ratio, f"{100 * noise:.1f}%",
                     " ".join(fmt(x) for x in b), " ".join(fmt(x) for x in a)))
    head = ("figure", "better", "before", "after", "after/before", "noise",
            "before, each round", "after, each round")
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    print("  ".join(str(x).ljust(w) for x, w in zip(head, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip())
    print("(before, after: median over the rounds of each round's figure, which is itself "
          "the script's median of its runs;\n noise: the larger spread between rounds of one "
          "build, (max - min) / median: a ratio closer to 1 than that is not a difference)")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="build directory before")
    ap.add_argument("--after", type=Path, required=True, help="build directory after")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each build (default 2)")
    ap.add_argument("--logs", type=Path,
                    help="directory for each run's output (default a new /tmp/drover-compare.*)")
    ap.add_argument("script", choices=sorted(PARSERS), help="the bench script to run")
    ap.add_argument("extra", nargs=argparse.REMAINDER,
                    help="options for the script, after --")
    o = ap.parse_args()
    o.extra = o.extra[1:] if o.extra[:1] == ["--"] else o.extra
    o.before, o.after = o.before.resolve(), o.after.resolve()
    for d in (o.before, o.after):
        if not (d / "droverd").is_file() or not (d / "drover").is_file():
            ap.error(f"{d}: no droverd and drover there (build it with make BUILD=...)")
    if o.rounds < 1:
        ap.error("rounds must be >= 1")
    if "--build" in o.extra:
        ap.error("--build is set by compare.py itself (--before, --after)")
    return o


def main():
    o = parse_args()
    logs = o.logs or Path(tempfile.mkdtemp(prefix="drover-compare."))
    logs.mkdir(parents=True, exist_ok=True)
    builds = (("before", o.before), ("after", o.after))
    print(f"compare: {' '.join([o.script, *o.extra])}, {o.rounds} round(s), interleaved; "
          f"logs in {logs}")
    for which, d in builds:
        print(f"  {which}: {d}/droverd: {binary_size(d)}")
    figures = {}
    t0 = time.monotonic()
    for rnd in range(o.rounds):
        # before, after, after, before, ...: a steady drift of the machine's
        # load then favours neither build.
        for which, d in (builds if rnd % 2 == 0 else builds[::-1]):
            log = logs / f"{Path(o.script).stem}-{which}-{rnd + 1}.txt"
            for name, (v, better) in one_run(o.script, d, o.extra, log).items():
                f = figures.setdefault(name, {"better": better})
                f.setdefault(which, []).append(v)
    print()
    report(figures, o.rounds)
    print(f"total time {time.monotonic() - t0:.0f} s; each run's output in {logs}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("compare: interrupted", file=sys.stderr)
        sys.exit(130)
