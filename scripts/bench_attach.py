#!/usr/bin/env python3
"""`make bench`, attach and detach: how long the tracer takes to have its
probes in place in a running process, and to be gone once it has
reported, medians of N runs; and a launched CPython's whole run against
the same command untraced.

    scripts/bench_attach.py [-r REPS]
"""
import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TRACER = os.path.join(ROOT, "build", "tracer")
NATIVE = os.path.join(ROOT, "build", "workloads", "native")


def attach_once(target_cmd, how=None):
    """(seconds to attach, seconds from the end of the report to the exit);
    how: the tracer's target options (default -p PID)."""
    w = subprocess.Popen(target_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if w.stdout.readline().strip() != "ready":
            raise RuntimeError("workload did not start")
        t0 = time.monotonic()
        t = subprocess.Popen([TRACER] + (how or ["-p", str(w.pid)]) +
                             ["-v", "-d", "0.5", "--format", "json", "-t", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        attached = None
        for line in t.stderr:
            if "tracing pid" in line or ("tracing" in line and "processes" in line):
                attached = time.monotonic() - t0
                break
        t.stdout.readline()  # the JSON report: one line
        reported = time.monotonic()
        t.stdout.read()
        t.wait()
        t.stderr.read()
        if t.returncode != 0 or attached is None:
            raise RuntimeError("tracer failed (%d)" % t.returncode)
        return attached, time.monotonic() - reported
    finally:
        w.stdin.close()
        w.kill()
        w.wait()


def timed(argv):
    t0 = time.monotonic()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description="tracer attach and detach times")
    ap.add_argument("-r", "--reps", type=int, default=5)
    a = ap.parse_args()
    rows = []
    runs = [attach_once([NATIVE, "wait"]) for _ in range(a.reps)]
    rows.append(("attach to a C process (native)", statistics.median(r[0] for r in runs),
                 statistics.median(r[1] for r in runs)))
    pythons = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12.*/bin/python3.12")))
    code = "import sys; print('ready', flush=True); sys.stdin.readline()"
    if pythons:
        runs = [attach_once([pythons[-1], "-c", code]) for _ in range(a.reps)]
        rows.append(("attach to CPython 3.12 (pyenv)", statistics.median(r[0] for r in runs),
                     statistics.median(r[1] for r in runs)))
    # -a on a host with a few hundred processes: 300 idle C processes
    # (sleep maps libc) beside the machine's own
    # in groups of 10, 20, 70 and 200, each its own comm (the name of the
    # link it was started by)
    names = tempfile.mkdtemp(prefix="tracer-bench.")
    idle = []
    for group, n in (("idle-a", 10), ("idle-b", 20), ("idle-c", 70), ("idle-d", 200)):
        os.symlink(shutil.which("sleep"), os.path.join(names, group))
        idle += [subprocess.Popen([os.path.join(names, group), "600"]) for _ in range(n)]
    try:
        nproc = len([d for d in os.listdir("/proc") if d.isdigit()])
        runs = [attach_once([NATIVE, "wait"], ["-a"]) for _ in range(a.reps)]
        rows.append(("-a, %d processes (a link per file)" % nproc,
                     statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)))
        # a link per process: the kernel's exit cost grows with the cube
        # of the processes kept (each consumer removed walks every traced
        # mm's chain of consumers, for each probed offset)
        comms = ["--comm", "native"]
        for group, kept in (("idle-a", 10), ("idle-b", 30), ("idle-c", 100), ("idle-d", 300)):
            comms += ["--comm", group]
            runs = [attach_once([NATIVE, "wait"], ["-a"] + comms) for _ in range(a.reps)]
            rows.append(("-a --comm: %d processes (a link per process)" % (kept + 1),
                         statistics.median(r[0] for r in runs),
                         statistics.median(r[1] for r in runs)))
    finally:
        for p in idle:
            p.kill()
            p.wait()
        shutil.rmtree(names)
    print("# attach and detach: medians of %d runs; %s; kernel %s" % (
        a.reps, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.uname().release))
    print("| target | attach (s) | exit after the report (s) |")
    print("|---|---:|---:|")
    for name, att, det in rows:
        print("| %s | %.2f | %.2f |" % (name, att, det))
    if pythons:
        imports = "import json, decimal, asyncio, email.parser"
        cmd = [pythons[-1], "-c", imports]
        untraced = statistics.median(timed(cmd) for _ in range(a.reps))
        floor = statistics.median(timed([TRACER, "--probe-only", "-t", "1", "--"] + cmd)
                                  for _ in range(a.reps))
        traced = statistics.median(timed([TRACER, "-t", "1", "--"] + cmd) for _ in range(a.reps))
        print()
        print("| launched `python3.12 -c '%s'` | wall (s) |" % imports)
        print("|---|---:|")
        print("| untraced | %.2f |" % untraced)
        print("| tracer --probe-only (floor) | %.2f |" % floor)
        print("| tracer | %.2f |" % traced)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench_attach: needs root")
    main()
