#!/usr/bin/env python3
"""--budget against the overhead it achieves, on a request-serving loop
(tests/workloads/requests.c): requests per second of the workload's own CPU
time (which the probes' cost is charged to), untraced and traced.

Each measurement runs two copies of the workload side by side, one untraced
and one traced by `tracer -p PID [--budget PCT]`, both on one CPU (taking
turns, a few ms each) and the tracer on another, so that both copies see the
same machine slice by slice (the host's other load, frequency, caches); the
overhead is the untraced copy's rate over the traced one's, less 1, over the
whole run after the tracer is in place. A configuration's figure is the
median of its runs.

Why one CPU: two untraced copies on two CPUs differed by up to 2.4 % over 8 s
on these VMs (each vCPU sees its own host), on one CPU by at most 0.14 %.

    scripts/bench_budget.py [-r RUNS] [-s SECONDS] [-b 1,5,0]   (0: unbounded)

Used by `make bench` (scripts/bench.sh) and tests/integration/test_budget.py.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("TRACER_BUILD", os.path.join(ROOT, "build"))
TRACER = os.path.join(BUILD, "tracer")
WORKLOAD = os.path.join(BUILD, "workloads", "requests")
SKIP = 2  # the first seconds: the tracer attaches and calibrates


def rates(text):
    """(requests, cpu seconds) of the whole seconds after SKIP."""
    rows = [(int(m.group(1)), float(m.group(2)))
            for m in re.finditer(r"^rate \S+ requests (\d+) cpu (\S+)$", text, re.M)]
    rows = rows[SKIP:]
    if not rows:
        raise RuntimeError("the workload printed no rates:\n" + text)
    return sum(r for r, _ in rows), sum(c for _, c in rows)


def cpus():
    """(the CPU the two copies share, the set the tracer runs on)."""
    mine = sorted(os.sched_getaffinity(0))
    return mine[-1], set(mine[:-1] or mine)


def pinned(cpu_set):
    return lambda: os.sched_setaffinity(0, cpu_set)


def run_pair(budget, seconds):
    """One side-by-side run: a dict of the overhead achieved and what the
    tracer said (coverage, its own estimate)."""
    total = seconds + SKIP + 1
    shared, others = cpus()
    untraced = subprocess.Popen([WORKLOAD, str(total)], stderr=subprocess.PIPE, text=True,
                                preexec_fn=pinned({shared}))
    traced = subprocess.Popen([WORKLOAD, str(total)], stderr=subprocess.PIPE, text=True,
                              preexec_fn=pinned({shared}))
    cmd = [TRACER, "-p", str(traced.pid)]
    if budget:
        cmd += ["--budget", str(budget)]
    time.sleep(0.1)
    tr = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        timeout=total + 60, preexec_fn=pinned(others))
    u_err = untraced.communicate(timeout=60)[1]
    t_err = traced.communicate(timeout=60)[1]
    if tr.returncode != 0:
        raise RuntimeError("tracer failed (%d): %s" % (tr.returncode, tr.stderr))
    ur, uc = rates(u_err)
    tr_r, tc = rates(t_err)
    out = {"overhead": (ur / uc) / (tr_r / tc) - 1, "rate_untraced": ur / uc,
           "rate_traced": tr_r / tc, "coverage": 1.0, "estimate": None}
    m = re.search(r"allocations traced in windows, ([\d.]+)% of the time", tr.stdout)
    if m:
        out["coverage"] = float(m.group(1)) / 100
    m = re.search(r"estimated overhead ([\d.]+)%", tr.stdout)
    if m:
        out["estimate"] = float(m.group(1)) / 100
    out["frees_windowed"] = "frees in windows too" in tr.stdout
    return out


def measure(budgets, runs, seconds):
    """{budget: [run, ...]}, the configurations interleaved run by run."""
    res = {b: [] for b in budgets}
    for _ in range(runs):
        for b in budgets:
            res[b].append(run_pair(b, seconds))
    return res


def median_of(rs, key):
    vals = [r[key] for r in rs if r[key] is not None]
    return statistics.median(vals) if vals else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-r", "--runs", type=int, default=3)
    ap.add_argument("-s", "--seconds", type=float, default=8)
    ap.add_argument("-b", "--budgets", default="1,5,0")
    a = ap.parse_args()
    budgets = [float(x) for x in a.budgets.split(",")]
    res = measure(budgets, a.runs, a.seconds)
    print("# --budget on the request loop (tests/workloads/requests.c): medians of %d "
          "side-by-side runs of %g s; overhead = untraced rate / traced rate - 1, rates in "
          "requests per CPU second" % (a.runs, a.seconds))
    print("%-10s %10s %10s %9s %9s %9s %9s  %s" % ("budget", "untraced", "traced", "achieved",
                                                 "vs asked", "estimate", "coverage", "frees"))
    for b in budgets:
        rs = res[b]
        ach = median_of(rs, "overhead")
        est = median_of(rs, "estimate")
        print("%-10s %10.0f %10.0f %8.2f%% %9s %9s %8.1f%%  %s" % (
            ("%g%%" % b) if b else "unbounded", median_of(rs, "rate_untraced"),
            median_of(rs, "rate_traced"), ach * 100,
            ("%.2fx" % (ach / (b / 100))) if b else "-",
            ("%.2f%%" % (est * 100)) if est is not None else "-",
            median_of(rs, "coverage") * 100,
            "windowed" if any(r.get("frees_windowed") for r in rs) else "kept"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
