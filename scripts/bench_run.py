"""The benchmark runner behind `make bench` (scripts/bench.sh installs peers
first, then calls this).

For each workload, each configuration (untraced, the empty-probe floor, the
tracer at nframe 1 and 16, memleak-bpfcc, heaptrack, and for Python
tracemalloc at nframe 1 and 16) runs REPS times, interleaved: every
repetition runs every configuration once, in a rotated order, so that drift in
the machine's speed spreads over all of them. Each workload times its own loop
(elapsed_ns=...), so attach and detach times are not part of the figures.
Prints one table of medians.

    /usr/bin/python3 scripts/bench_run.py [-r REPS] [-q] [-w NAMES] [-c NAMES] [--json FILE]
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
TRACER = os.path.join(BUILD, "tracer")
RUN_TIMEOUT = 600

CONFIGS = ["untraced", "floor", "tracer-n1", "tracer-n16", "memleak-bpfcc", "heaptrack",
           "tracemalloc-n1", "tracemalloc-n16"]


class Skip(Exception):
    """A configuration that cannot run here; said once in the table."""


def die(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.exit(2)


def parse_line(out):
    """The workload's result line: key=value pairs."""
    for line in out.splitlines():
        if "elapsed_ns=" in line:
            return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
    return None


def run(argv, env=None, stdin=None):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                       input=stdin, timeout=RUN_TIMEOUT, universal_newlines=True)
    res = parse_line(p.stdout)
    if p.returncode != 0 or res is None:
        tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError("%s exited %d: %s" % (os.path.basename(argv[0]), p.returncode, tail))
    return res, p


# ---- the tracer ----

def tracer_help():
    if not os.access(TRACER, os.X_OK):
        return None
    p = subprocess.run([TRACER, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    return p.stdout


def tracer_counts(path):
    """Events handled and events lost, from the tracer's JSON output."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None, None
    lost = 0
    counters = doc.get("counters", doc.get("lost", {}))
    for name, v in counters.items():
        if name in ("allocs_full", "allocs_full_bytes", "stack_lost", "thread_lost",
                    "procs_full", "events_lost", "ringbuf_lost") and isinstance(v, int):
            if name != "allocs_full_bytes":
                lost += v
    events = None
    for key in ("events", "events_handled"):
        if isinstance(doc.get(key), int):
            events = doc[key]
    if events is None:
        procs = doc.get("processes", doc.get("procs", []))
        if isinstance(procs, list):
            n = [p.get("allocs", 0) + p.get("frees", 0) for p in procs if isinstance(p, dict)]
            events = sum(n) if n else None
    return events, lost


def run_tracer(cmd, nframe, probe_only):
    helptext = tracer_help()
    if helptext is None:
        raise Skip("build/tracer not built")
    if probe_only and "--probe-only" not in helptext:
        raise Skip("tracer has no --probe-only")
    fd, jpath = tempfile.mkstemp(prefix="bench-tracer-", suffix=".json")
    os.close(fd)
    try:
        argv = [TRACER, "-n", str(nframe), "--json", jpath]
        if probe_only:
            argv.append("--probe-only")
        res, _ = run(argv + ["--"] + cmd)
        events, lost = tracer_counts(jpath)
        res["tracer_events"] = events
        res["lost"] = lost
        return res
    finally:
        os.unlink(jpath)


# ---- peers ----

def gated(cmd):
    """Starts cmd held before exec until a line arrives on its stdin, so that
    a tracer attaching by PID sees the workload from its first call."""
    return subprocess.Popen(["/bin/sh", "-c", 'read _ && exec "$@"', "sh"] + cmd,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)


def perf_fds(pid):
    n = 0
    for fd in glob.glob("/proc/%d/fd/*" % pid):
        try:
            if "perf_event" in os.readlink(fd):
                n += 1
        except OSError:
            pass
    return n


def run_memleak(cmd):
    exe = shutil.which("memleak-bpfcc")
    if not exe:
        raise Skip("memleak-bpfcc not installed")
    wl = gated(cmd)
    # A long interval: no report during the run, only the probes' cost.
    ml = subprocess.Popen([exe, "-p", str(wl.pid), "3600"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, universal_newlines=True)
    try:
        # memleak attaches 20 probes (9 allocators x entry+return, free, munmap).
        deadline = time.time() + 120
        while perf_fds(ml.pid) < 20:
            if ml.poll() is not None:
                err = ml.stderr.read().strip().splitlines()
                raise Skip("memleak-bpfcc failed: %s" % (err[-1] if err else "exit %d" % ml.returncode))
            if time.time() > deadline:
                raise RuntimeError("memleak-bpfcc did not attach in 120 s")
            time.sleep(0.1)
        out, err = wl.communicate("go\n", timeout=RUN_TIMEOUT)
        res = parse_line(out)
        if wl.returncode != 0 or res is None:
            raise RuntimeError("workload under memleak exited %d: %s" % (wl.returncode, err.strip()))
        return res
    finally:
        if wl.poll() is None:
            wl.kill()
            wl.wait()
        if ml.poll() is None:
            ml.send_signal(signal.SIGINT)
            try:
                ml.wait(timeout=30)
            except subprocess.TimeoutExpired:
                ml.kill()
                ml.wait()


def run_heaptrack(cmd):
    exe = shutil.which("heaptrack")
    if not exe:
        raise Skip("heaptrack not installed")
    d = tempfile.mkdtemp(prefix="bench-heaptrack-")
    try:
        res, _ = run([exe, "-o", os.path.join(d, "ht")] + cmd)
        return res
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- workloads ----

def pythons():
    """Every interpreter present: Debian's and pyenv's builds."""
    found = []
    if os.access("/usr/bin/python3.11", os.X_OK):
        found.append(("py-deb3.11", "/usr/bin/python3.11"))
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for d in sorted(glob.glob(os.path.join(root, "versions", "*")),
                    key=lambda p: [int(x) if x.isdigit() else 0
                                   for x in os.path.basename(p).split(".")]):
        exe = os.path.join(d, "bin", "python3")
        if os.access(exe, os.X_OK):
            found.append(("py-" + os.path.basename(d), exe))
    return found


def workloads(quick):
    scale = 5 if quick else 1
    wl = [
        ("bench_malloc", [os.path.join(BUILD, "workloads", "bench_malloc"), str(1000000 // scale)], False),
        ("bench_mix", [os.path.join(BUILD, "workloads", "bench_mix"), str(100000 // scale), "2"], False),
    ]
    for name, exe in pythons():
        wl.append((name, [exe, os.path.join(ROOT, "scripts", "bench_py.py"), str(50000 // scale)], True))
    return wl


def run_config(config, cmd, is_py):
    if config == "untraced":
        return run(cmd)[0]
    if config == "floor":
        return run_tracer(cmd, 1, True)
    if config.startswith("tracer-n"):
        return run_tracer(cmd, int(config[len("tracer-n"):]), False)
    if config == "memleak-bpfcc":
        return run_memleak(cmd)
    if config == "heaptrack":
        return run_heaptrack(cmd)
    if config.startswith("tracemalloc-n"):
        if not is_py:
            return None
        return run(cmd + ["--tracemalloc", config[len("tracemalloc-n"):]])[0]
    raise ValueError(config)


# ---- the table ----

def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def table(results, wl_list, configs, reps):
    rows = []
    notes = {}
    hdr = ("workload", "config", "wall ms", "slowdown", "+ns/event", "vs floor", "lost", "runs")
    for name, _, is_py in wl_list:
        r = results.get(name, {})
        med = {}
        for c in configs:
            ok = [x for x in r.get(c, []) if isinstance(x, dict)]
            if ok:
                med[c] = statistics.median(x["elapsed_ns"] for x in ok)
        base = med.get("untraced")
        floor = med.get("floor")
        # Events: what the workload counted, else what the tracer saw.
        events = None
        for c in ("untraced", "tracer-n1", "floor"):
            for x in r.get(c, []):
                if isinstance(x, dict):
                    events = events or x.get("events") or x.get("tracer_events")
        for c in configs:
            runs = r.get(c, [])
            if not runs:
                continue
            if c not in med:
                why = next((x for x in runs if isinstance(x, str)), "failed")
                notes.setdefault(why, []).append("%s/%s" % (name, c))
                continue
            t = med[c]
            ok = [x for x in runs if isinstance(x, dict)]
            lost = [x.get("lost") for x in ok if x.get("lost") is not None]
            added = (t - base) / events if base is not None and events else None
            vs_floor = None
            if c.startswith("tracer-") and base is not None and floor is not None and floor > base:
                vs_floor = (t - base) / (floor - base)
            rows.append((name, c, fmt(t / 1e6, ".1f"),
                         fmt(t / base if base else None, ".2f") + ("x" if base else ""),
                         fmt(added, ".0f"), fmt(vs_floor, ".2f"),
                         str(max(lost)) if lost else "-", "%d/%d" % (len(ok), reps)))
    widths = [max(len(str(x[i])) for x in rows + [hdr]) for i in range(len(hdr))]
    lines = ["  ".join(str(x[i]).ljust(widths[i]) if i < 2 else str(x[i]).rjust(widths[i])
                       for i in range(len(hdr))) for x in [hdr] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for why, where in notes.items():
        lines.append("not run: %s: %s" % (why, ", ".join(where)))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description="tracer benchmarks")
    ap.add_argument("-r", "--reps", type=int, default=int(os.environ.get("BENCH_REPS", "5")))
    ap.add_argument("-q", "--quick", action="store_true", help="a fifth of the work, for a smoke run")
    ap.add_argument("-w", "--workloads", help="comma-separated workload names or prefixes")
    ap.add_argument("-c", "--configs", help="comma-separated configurations")
    ap.add_argument("--json", help="also write every run's figures here")
    a = ap.parse_args()
    if a.reps < 1:
        die("--reps must be at least 1")
    configs = CONFIGS
    if a.configs:
        configs = [c for c in a.configs.split(",") if c]
        bad = [c for c in configs if c not in CONFIGS]
        if bad:
            die("unknown configuration %s (known: %s)" % (bad[0], ", ".join(CONFIGS)))
    wl_list = workloads(a.quick)
    if a.workloads:
        pre = [w for w in a.workloads.split(",") if w]
        wl_list = [w for w in wl_list if any(w[0].startswith(p) for p in pre)]
        if not wl_list:
            die("no workload matches %s" % a.workloads)
    for name, cmd, _ in wl_list:
        if not os.access(cmd[0], os.X_OK):
            die("%s: %s is not built (make all)" % (name, cmd[0]))

    results = {}
    skipped = {}
    for rep in range(a.reps):
        for name, cmd, is_py in wl_list:
            order = configs[rep % len(configs):] + configs[:rep % len(configs)]
            for c in order:
                key = (name, c)
                if key in skipped:
                    continue
                try:
                    res = run_config(c, cmd, is_py)
                    if res is None:
                        continue
                except Skip as e:
                    skipped[key] = True
                    res = str(e)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    skipped[key] = True
                    res = str(e)
                results.setdefault(name, {}).setdefault(c, []).append(res)
                sys.stderr.write("bench: rep %d %s %s: %s\n" % (
                    rep + 1, name, c,
                    "%.1f ms" % (res["elapsed_ns"] / 1e6) if isinstance(res, dict) else res))
    print("# tracer benchmark: medians of %d interleaved runs; %s; kernel %s" % (
        a.reps, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.uname().release))
    print("# wall ms: the workload's own loop; +ns/event: added time per allocator call;")
    print("# vs floor: tracer overhead / empty-probe overhead; lost: events lost (tracer's count)")
    print(table(results, wl_list, configs, a.reps))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
