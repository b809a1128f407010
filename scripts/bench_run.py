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
                                          [--baseline TRACER]

--baseline TRACER adds the configurations baseline-n1 and baseline-n16 (and
baseline rows to the BPF program cost table): another build of the tracer,
run interleaved with this one, so that a change's cost is measured side by
side in one run.
"""
import argparse
import atexit
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
TRACER = os.environ.get("BENCH_TRACER", os.path.join(BUILD, "tracer"))
BASELINE = None  # --baseline: another tracer build, for the baseline-n* rows
RUN_TIMEOUT = 600

CONFIGS = ["untraced", "floor", "tracer-n1", "tracer-n16", "memleak-bpfcc", "heaptrack",
           "tracemalloc-n1", "tracemalloc-n16", "no-freelists-n1"]
# the Python rows' tracer-n1 with --no-python-free-lists (objects from free
# lists not moved to the line that takes them, as tracer-n1 moves them: a
# probe hit per object made)
NO_FREE_LISTS = ["--no-python-free-lists"]


def free_lists_row(cmd):
    """Whether no-freelists-n1 runs on this Python row: pyenv's 3.12, Debian's
    3.11 and forky's 3.14 (each run costs seconds; one of each kind)."""
    exe = " ".join(cmd[:3])
    return "/3.12." in exe or "/usr/bin/python3.11" in exe or "python3.14" in exe


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


# Counters that mean an event was not recorded (user/session.c's names).
# the JSON "losses" keys (README's table of counters), and the names older
# tracers' JSON "counters" gave them
LOST_COUNTERS = ("allocs_table_full", "native_stack_table_full", "thread_slot_unavailable",
                 "return_without_entry", "process_table_full",
                 "allocs table full", "native stack table full", "thread slot unavailable",
                 "return without entry", "process table full")


def json_docs(text):
    """The JSON reports the tracer printed, in order, among the workload's lines."""
    dec = json.JSONDecoder()
    docs, i = [], 0
    while True:
        i = text.find("{", i)
        if i < 0:
            return docs
        try:
            doc, end = dec.raw_decode(text, i)
        except ValueError:
            i += 1
            continue
        if isinstance(doc, dict):
            docs.append(doc)
        i = end


def walk(doc):
    """Every (key, value) pair in a JSON document, counters given as
    {"name": ..., "value": ...} objects included."""
    if isinstance(doc, dict):
        if "name" in doc and isinstance(doc.get("value", doc.get("count")), int):
            yield doc["name"], doc.get("value", doc.get("count"))
        for k, v in doc.items():
            yield k, v
            yield from walk(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from walk(v)


def first(doc, *names):
    for k, v in walk(doc):
        if k in names and isinstance(v, int) and not isinstance(v, bool):
            return v
    return None


def tracer_figures(doc):
    """Events handled, events lost, tracer memory and live allocations."""
    lost = None
    for k, v in walk(doc):
        if k in LOST_COUNTERS and isinstance(v, int):
            lost = (lost or 0) + v
    allocs = first(doc, "allocations")
    frees = first(doc, "frees")
    events = allocs + frees if allocs is not None and frees is not None else None
    return {"tracer_events": events, "lost": lost,
            "tracer_memory": first(doc, "tracer_memory"),
            "live": first(doc, "traces")}


def tracer_argv(nframe, probe_only, cmd, extra=(), binary=None):
    argv = [binary or TRACER, "-n", str(nframe), "--format", "json"] + list(extra)
    if probe_only:
        argv.append("--probe-only")
    return argv + ["--"] + cmd


def run_tracer(cmd, nframe, probe_only, binary=None, extra=()):
    helptext = tracer_help()
    if helptext is None:
        raise Skip("build/tracer not built")
    if probe_only and "--probe-only" not in helptext:
        raise Skip("tracer has no --probe-only")
    if extra and extra[0] not in helptext:
        raise Skip("tracer has no %s" % extra[0])
    res, p = run(tracer_argv(nframe, probe_only, cmd, extra, binary=binary))
    docs = json_docs(p.stdout)
    if docs:
        res.update(tracer_figures(docs[-1]))
    return res


def vm_rss(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def kernel_memory():
    """Slab, vmalloc and per-CPU memory of the whole kernel (bytes): where
    BPF maps live. Its growth while the tracer holds N live allocations is
    what each costs in the kernel, allocator size classes included (which
    the maps' own memlock figure leaves out)."""
    total = 0
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            if key in ("Slab", "VmallocUsed", "Percpu"):
                total += int(value.split()[0]) * 1024
    return total


def memory_run(live, hold_ms, interval):
    """The tracer at nframe 1 on bench_live: its memory while `live` blocks
    are held (the largest live count any interval report saw) and the peak
    RSS of the tracer process itself."""
    cmd = [os.path.join(BUILD, "workloads", "bench_live"), str(live), str(hold_ms)]
    argv = tracer_argv(1, False, cmd, ["-i", str(interval), "--max-allocs", str(live + 4096)])
    base = kernel_memory()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    out_parts = []
    rss = 0
    kernel = 0
    import threading
    t = threading.Thread(target=lambda: out_parts.append(p.stdout.read()))
    t.start()
    deadline = time.time() + RUN_TIMEOUT
    while p.poll() is None and time.time() < deadline:
        rss = max(rss, vm_rss(p.pid) or 0)
        kernel = max(kernel, kernel_memory() - base)
        time.sleep(0.2)
    if p.poll() is None:
        p.kill()
    p.wait()
    t.join()
    err = p.stderr.read()
    docs = json_docs("".join(out_parts))
    if p.returncode != 0 or not docs:
        raise RuntimeError("tracer on bench_live exited %d: %s" % (
            p.returncode, (err.strip().splitlines() or ["(no output)"])[-1]))
    figs = [tracer_figures(d) for d in docs]
    best = max(figs, key=lambda f: f["live"] or 0)
    best["rss"] = rss
    best["kernel"] = kernel
    return best


def tracing_rss(live, hold_ms):
    """The tracer's peak RSS while bench_live holds `live` blocks, with no
    report in between (the one at the end comes after the blocks are
    freed): what tracing itself costs in user space."""
    cmd = [os.path.join(BUILD, "workloads", "bench_live"), str(live), str(hold_ms)]
    argv = tracer_argv(1, False, cmd, ["--max-allocs", str(live + 4096)])
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rss = 0
    deadline = time.time() + RUN_TIMEOUT
    while p.poll() is None and time.time() < deadline:
        rss = max(rss, vm_rss(p.pid) or 0)
        time.sleep(0.2)
    if p.poll() is None:
        p.kill()
    p.wait()
    return rss


def memory_table(sizes):
    if tracer_help() is None:
        return "memory: not run: build/tracer not built"
    rows = [("live allocations", "seen live", "tracer memory MiB", "bytes/live", "kernel B/live",
             "tracer RSS MiB", "RSS tracing MiB", "lost")]
    prev = None
    for n in sizes:
        try:
            f = memory_run(n, hold_ms=max(3000, n // 300), interval=max(1, n // 1000000))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            rows.append((str(n), "failed: %s" % e, "", "", "", "", "", ""))
            continue
        f["rss_tracing"] = tracing_rss(n, hold_ms=max(3000, n // 300))
        sys.stderr.write("bench: memory %d live: %s\n" % (n, f))
        mem, live = f["tracer_memory"], f["live"]
        rows.append((str(n), fmt(live, "d"), fmt(mem / 2**20 if mem else None, ".1f"),
                     fmt(mem / live if mem and live else None, ".1f"),
                     fmt(f["kernel"] / live if live else None, ".1f"),
                     fmt(f["rss"] / 2**20, ".1f"), fmt(f["rss_tracing"] / 2**20, ".1f"),
                     fmt(f["lost"], "d")))
        if prev and mem and prev[1] and live and live > prev[0]:
            rows.append(("marginal", "", "", fmt((mem - prev[1]) / (live - prev[0]), ".1f"), "",
                         "", "", ""))
        prev = (live, mem) if live and mem else prev
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(r[i].rjust(widths[i]) for i in range(len(r))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def bpf_prog_stats():
    """run_cnt and run_time_ns of every loaded BPF program, by name."""
    p = subprocess.run(["bpftool", "-j", "prog", "show"], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, universal_newlines=True)
    try:
        progs = json.loads(p.stdout or "[]")
    except ValueError:
        return {}
    out = {}
    for pr in progs:
        if "run_cnt" in pr and pr.get("name"):
            c, t = out.get(pr["name"], (0, 0))
            out[pr["name"]] = (c + pr["run_cnt"], t + pr.get("run_time_ns", 0))
    return out


def prog_cost(cmd, nframe, probe_only, binary=None):
    """Nanoseconds per run of each of the tracer's BPF programs on cmd, with
    the kernel's BPF statistics on (they add two clock reads per run)."""
    knob = "/proc/sys/kernel/bpf_stats_enabled"
    with open(knob) as f:
        old = f.read().strip()
    with open(knob, "w") as f:
        f.write("1")
    try:
        before = bpf_prog_stats()
        p = subprocess.Popen(tracer_argv(nframe, probe_only, cmd, binary=binary),
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        last = {}
        while p.poll() is None:
            cur = bpf_prog_stats()
            last = {k: v for k, v in cur.items() if v[0] > before.get(k, (0, 0))[0]} or last
            time.sleep(0.05)
        return {k: (v[0] - before.get(k, (0, 0))[0], v[1] - before.get(k, (0, 0))[1])
                for k, v in last.items()}
    finally:
        with open(knob, "w") as f:
            f.write(old)


def prog_cost_table(cmd):
    if tracer_help() is None or not shutil.which("bpftool"):
        return "BPF program cost: not run (no build/tracer or bpftool)"
    rows = [("program", "config", "runs seen", "ns/run")]
    runs = [("floor", 1, True, None), ("tracer-n1", 1, False, None),
            ("tracer-n16", 16, False, None)]
    if BASELINE:
        runs += [("baseline-n1", 1, False, BASELINE), ("baseline-n16", 16, False, BASELINE)]
    for label, nframe, po, binary in runs:
        try:
            st = prog_cost(cmd, nframe, po, binary)
        except OSError as e:
            return "BPF program cost: not run (%s)" % e
        for name in sorted(st):
            cnt, ns = st[name]
            rows.append((name, label, str(cnt), fmt(ns / cnt if cnt else None, ".0f")))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(r[i].ljust(widths[i]) if i < 2 else r[i].rjust(widths[i]) for i in range(4))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


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
                why = "memleak-bpfcc failed: %s" % (err[-1] if err else "exit %d" % ml.returncode)
                if "compile" in why:
                    raise Skip(why)  # no kernel headers: it never will
                raise RuntimeError(why)
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


def bench_csv(rows):
    """A CSV file of rows rows for sqlite3 to import, made once."""
    d = os.path.join(BUILD, "bench")
    path = os.path.join(d, "rows-%d.csv" % rows)
    if not os.path.exists(path):
        os.makedirs(d, exist_ok=True)
        with open(path + ".tmp", "w") as f:
            for i in range(rows):
                f.write("%d,%s,%d\n" % (i, "x" * (1 + i * 7919 % 40), i * 104729 % 1000003))
        os.rename(path + ".tmp", path)
    return path


def real_programs(scale):
    """Debian programs doing real work, timed from outside (REAL): sqlite3
    importing and indexing a CSV, clang++ compiling a C++ file. No frame
    pointers in either."""
    out = []
    if shutil.which("sqlite3"):
        out.append(("sqlite3-import", [shutil.which("sqlite3"), "-cmd", "create table t(a,b,c);",
                                       "-cmd", ".mode csv", "-cmd",
                                       ".import %s t" % bench_csv(400000 // scale), ":memory:",
                                       "create index ti on t(b);"], REAL))
    if shutil.which("clang++"):
        out.append(("clang++-O2", [shutil.which("clang++"), "-std=c++17", "-O2", "-c",
                                   os.path.join(ROOT, "scripts", "bench_cxx.cc"), "-o",
                                   "/dev/null"], REAL))
    return out


FORKY = os.environ.get("TRACER_FORKY_ROOT", "/var/lib/tracer/forky")
# workloads that could not be set up here, said under the table
NOT_PRESENT = []


def hooked_pythons(n):
    """The distribution builds (LTO, pymalloc inlined), attached with
    --hook-pymalloc as the README says to trace them exactly: Debian's
    python3.11, and forky's python3.14 in the chroot scripts/install-deps.sh
    makes (skipped, with a line under the table, where it is absent)."""
    out = []
    script = os.path.join(ROOT, "scripts", "bench_py.py")
    if os.access("/usr/bin/python3.11", os.X_OK):
        out.append(("py-deb3.11-hook", ["/usr/bin/python3.11", script, str(n), "--gate"], HOOKED))
    else:
        NOT_PRESENT.append("py-deb3.11-hook: no /usr/bin/python3.11")
    py314 = os.path.join(FORKY, "usr", "bin", "python3.14")
    if os.access(py314, os.X_OK):
        inside = "/tmp/tracer-bench"
        os.makedirs(FORKY + inside, exist_ok=True)
        shutil.copy(script, FORKY + inside)
        out.append(("py-forky3.14-hook", ["chroot", FORKY, "/usr/bin/python3.14",
                                          inside + "/bench_py.py", str(n), "--gate"], HOOKED))
    else:
        NOT_PRESENT.append("py-forky3.14-hook: no python3.14 chroot at %s "
                           "(scripts/install-deps.sh makes it)" % FORKY)
    return out


def workloads(quick):
    scale = 5 if quick else 1
    wl = [
        ("bench_malloc", [os.path.join(BUILD, "workloads", "bench_malloc"), str(1000000 // scale)], False),
        ("bench_mix", [os.path.join(BUILD, "workloads", "bench_mix"), str(100000 // scale), "2"], False),
        # the same mix built as distributions build: -O2, no frame pointers
        ("bench_mix-nofp", [os.path.join(BUILD, "workloads", "bench_mix-nofp"), str(100000 // scale), "2"], False),
    ] + real_programs(scale)
    for name, exe in pythons():
        wl.append((name, [exe, os.path.join(ROOT, "scripts", "bench_py.py"), str(50000 // scale)], True))
    return wl + hooked_pythons(50000 // scale)


# A workload that does not time itself (a real program): untraced and
# heaptrack are timed from outside, around the whole run; the tracer's runs
# by the report's duration_ns (from the command's exec to its exit, as the
# tracer saw it), so that attaching and detaching are not counted.
REAL = "real"
# A Python workload (bench_py.py --gate) that the tracer attaches to by PID
# with --hook-pymalloc, before its loop: the distribution builds' exact mode.
HOOKED = "hooked"


def run_attached(cmd, tracer_args=None, binary=None, before_stop=None):
    """cmd, a bench_py.py --gate workload, with the tracer (tracer_args;
    None: untraced) attached by PID once the workload is ready and before
    its loop runs; the tracer reports (SIGINT) before the workload exits.
    before_stop() is called once the loop is done, while the tracer still
    runs (its BPF programs' statistics)."""
    wl = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)
    tr = None
    try:
        line = wl.stdout.readline()
        if "ready" not in line:
            raise RuntimeError("workload did not start: %s" % (line.strip() or wl.stderr.read()))
        if tracer_args is not None:
            import threading
            tr = subprocess.Popen([binary or TRACER, "-p", str(wl.pid)] + list(tracer_args),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  universal_newlines=True)
            err = []
            while True:
                l = tr.stderr.readline()
                if not l:
                    raise RuntimeError("tracer ended before tracing: %s" % (
                        err[-1].strip() if err else "exit %s" % tr.poll()))
                err.append(l)
                # said once every probe is in place and the tables point
                # at the raw allocator
                if "now call the raw allocator" in l:
                    break
            threading.Thread(target=lambda: err.extend(tr.stderr), daemon=True).start()
        wl.stdin.write("go\n")
        wl.stdin.flush()
        res = parse_line(wl.stdout.readline())
        if res is None:
            raise RuntimeError("workload gave no result: %s" % wl.stderr.read().strip())
        if before_stop:
            res["before_stop"] = before_stop()
        if tr is not None:
            tr.send_signal(signal.SIGINT)
            out, _ = tr.communicate(timeout=RUN_TIMEOUT)
            docs = json_docs(out)
            if tr.returncode != 0 or not docs:
                raise RuntimeError("tracer exited %d: %s" % (
                    tr.returncode, err[-1].strip() if err else "(no output)"))
            res.update(tracer_figures(docs[-1]))
        wl.stdin.write("\n")
        wl.stdin.flush()
        wl.wait(timeout=RUN_TIMEOUT)
        return res
    finally:
        for p in (tr, wl):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def run_hooked(config, cmd):
    hook = ["--format", "json", "--hook-pymalloc"]
    if config == "untraced":
        return run_attached(cmd)
    if config == "floor":
        return run_attached(cmd, ["-n", "1", "--probe-only"] + hook)
    if config.startswith("tracer-n"):
        return run_attached(cmd, ["-n", config[len("tracer-n"):]] + hook)
    if config == "no-freelists-n1":
        return run_attached(cmd, ["-n", "1"] + hook + NO_FREE_LISTS) if free_lists_row(cmd) else None
    if config.startswith("baseline-n"):
        return run_attached(cmd, ["-n", config[len("baseline-n"):]] + hook, binary=BASELINE)
    if config.startswith("tracemalloc-n"):
        return run_attached(cmd + ["--tracemalloc", config[len("tracemalloc-n"):]])
    return None  # memleak-bpfcc and heaptrack: the pyenv rows have them


def run_real(argv, tracer_run=False):
    t0 = time.monotonic_ns()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=RUN_TIMEOUT, universal_newlines=True)
    wall = time.monotonic_ns() - t0
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError("%s exited %d: %s" % (os.path.basename(argv[0]), p.returncode, tail))
    res = {"elapsed_ns": wall}
    if tracer_run:
        docs = json_docs(p.stdout)
        if not docs or not docs[-1].get("duration_ns"):
            raise RuntimeError("no report from the tracer")
        res["elapsed_ns"] = docs[-1]["duration_ns"]
        res.update(tracer_figures(docs[-1]))
    return res


def run_config(config, cmd, is_py):
    if is_py == HOOKED:
        return run_hooked(config, cmd)
    if is_py == REAL:
        if config == "untraced":
            return run_real(cmd)
        if config in ("floor", "tracer-n1", "tracer-n16") or config.startswith("tracer-n"):
            nframe = 1 if config == "floor" else int(config[len("tracer-n"):])
            return run_real(tracer_argv(nframe, config == "floor", cmd), tracer_run=True)
        if config.startswith("baseline-n"):
            return run_real(tracer_argv(int(config[len("baseline-n"):]), False, cmd,
                                        binary=BASELINE), tracer_run=True)
        if config == "heaptrack":
            exe = shutil.which("heaptrack")
            if not exe:
                raise Skip("heaptrack not installed")
            d = tempfile.mkdtemp(prefix="bench-heaptrack-")
            try:
                return run_real([exe, "-o", os.path.join(d, "ht")] + cmd)
            finally:
                shutil.rmtree(d, ignore_errors=True)
        return None  # memleak needs a workload that waits for it; tracemalloc is Python's
    if config == "no-freelists-n1":
        return run_tracer(cmd, 1, False, extra=NO_FREE_LISTS) if is_py and free_lists_row(cmd) else None
    if config == "untraced":
        return run(cmd)[0]
    if config == "floor":
        return run_tracer(cmd, 1, True)
    if config.startswith("tracer-n"):
        return run_tracer(cmd, int(config[len("tracer-n"):]), False)
    if config.startswith("baseline-n"):
        return run_tracer(cmd, int(config[len("baseline-n"):]), False, binary=BASELINE)
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


def libc_floor_ns(results):
    """bench_malloc's floor per event: empty probes on libc's malloc and
    free at their best placement, what the hooked Python rows compare with."""
    r = results.get("bench_malloc", {})
    med = {}
    for c in ("untraced", "floor"):
        ok = [x for x in r.get(c, []) if isinstance(x, dict)]
        if ok:
            med[c] = statistics.median(x["elapsed_ns"] for x in ok)
    events = next((x.get("events") for x in r.get("untraced", []) if isinstance(x, dict)), None)
    if len(med) < 2 or not events:
        return None
    return (med["floor"] - med["untraced"]) / events


def table(results, wl_list, configs, reps):
    rows = []
    notes = {}
    hdr = ("workload", "config", "wall ms", "slowdown", "events", "+ns/event", "vs floor",
           "vs libc floor", "lost", "runs")
    libc_floor = libc_floor_ns(results)
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
        events, src = None, ""
        for c in ("untraced", "tracer-n1"):
            for x in r.get(c, []):
                if isinstance(x, dict) and not events:
                    events = x.get("events") or x.get("tracer_events")
                    src = "" if x.get("events") else "*"
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
            # Only where the floor stands clear of run-to-run noise.
            if c.startswith("tracer-") and base and floor is not None and floor > 1.1 * base:
                vs_floor = (t - base) / (floor - base)
            # the hooked rows' bound: against libc's probes at their best
            vs_libc = None
            if is_py == HOOKED and c != "untraced" and added is not None and libc_floor:
                vs_libc = added / libc_floor
            rows.append((name, c, fmt(t / 1e6, ".1f"),
                         fmt(t / base if base else None, ".2f") + ("x" if base else ""),
                         fmt(events, "d") + src, fmt(added, ".0f"), fmt(vs_floor, ".2f"),
                         fmt(vs_libc, ".2f"), str(max(lost)) if lost else "-",
                         "%d/%d" % (len(ok), reps)))
    widths = [max(len(str(x[i])) for x in rows + [hdr]) for i in range(len(hdr))]
    lines = ["  ".join(str(x[i]).ljust(widths[i]) if i < 2 else str(x[i]).rjust(widths[i])
                       for i in range(len(hdr))) for x in [hdr] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for why, where in notes.items():
        lines.append("not run: %s: %s" % (why, ", ".join(where)))
    for why in NOT_PRESENT:
        lines.append("not run: %s" % why)
    return "\n".join(lines)


def free_lists_table(results, wl_list):
    """The Python rows' tracer-n1 next to no-freelists-n1
    (--no-python-free-lists), side by side: the ratio of their medians."""
    rows = [("workload", "no-freelists-n1 ms", "tracer-n1 ms", "ratio")]
    for name, _, is_py in wl_list:
        r = results.get(name, {})
        med = {}
        for c in ("tracer-n1", "no-freelists-n1"):
            ok = [x["elapsed_ns"] for x in r.get(c, []) if isinstance(x, dict)]
            if ok:
                med[c] = statistics.median(ok)
        if len(med) < 2:
            continue
        rows.append((name, "%.1f" % (med["no-freelists-n1"] / 1e6), "%.1f" % (med["tracer-n1"] / 1e6),
                     "%.2fx" % (med["tracer-n1"] / med["no-freelists-n1"])))
    if len(rows) == 1:
        return None
    widths = [max(len(x[i]) for x in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(x[i].ljust(widths[i]) if i == 0 else x[i].rjust(widths[i])
                       for i in range(len(x))) for x in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description="tracer benchmarks")
    ap.add_argument("-r", "--reps", type=int, default=int(os.environ.get("BENCH_REPS", "5")))
    ap.add_argument("-q", "--quick", action="store_true", help="a fifth of the work, for a smoke run")
    ap.add_argument("-w", "--workloads", help="comma-separated workload names or prefixes")
    ap.add_argument("-c", "--configs", help="comma-separated configurations")
    ap.add_argument("--json", help="also write every run's figures here")
    ap.add_argument("--timing-only", action="store_true", help="skip the memory and BPF program cost runs")
    ap.add_argument("--memory-only", action="store_true", help="only the memory table")
    ap.add_argument("--baseline", help="another tracer build: rows baseline-n1, baseline-n16")
    ap.add_argument("--prog-cost-only", action="store_true",
                    help="only the BPF program cost table")
    a = ap.parse_args()
    if a.reps < 1:
        die("--reps must be at least 1")
    known = CONFIGS
    global BASELINE
    if a.baseline:
        if not os.access(a.baseline, os.X_OK):
            die("--baseline %s is not an executable" % a.baseline)
        tmp = tempfile.mkdtemp(prefix="bench-base-")
        atexit.register(shutil.rmtree, tmp, True)
        BASELINE = os.path.join(tmp, "tracer")
        shutil.copy2(a.baseline, BASELINE)
        known = CONFIGS + ["baseline-n1", "baseline-n16"]
    configs = known
    if a.configs:
        configs = [c for c in a.configs.split(",") if c]
        bad = [c for c in configs if c not in known]
        if bad:
            die("unknown configuration %s (known: %s)" % (bad[0], ", ".join(known)))
    wl_list = workloads(a.quick)
    if a.workloads:
        pre = [w for w in a.workloads.split(",") if w]
        wl_list = [w for w in wl_list if any(w[0].startswith(p) for p in pre)]
        if not wl_list:
            die("no workload matches %s" % a.workloads)
    for name, cmd, _ in wl_list:
        if not os.access(shutil.which(cmd[0]) or cmd[0], os.X_OK):
            die("%s: %s is not built (make all)" % (name, cmd[0]))

    # A private copy: others rebuilding build/ mid-run must not mix versions
    # (the BPF object is inside the binary, in its skeleton).
    global TRACER
    if os.access(TRACER, os.X_OK):
        tmp = tempfile.mkdtemp(prefix="bench-")
        atexit.register(shutil.rmtree, tmp, True)
        copy = os.path.join(tmp, "tracer")
        shutil.copy2(TRACER, copy)
        TRACER = copy
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, universal_newlines=True).stdout.strip()

    if a.prog_cost_only:
        print("# BPF programs' own run time per hit (kernel.bpf_stats_enabled); commit %s" % (
            rev or "?"))
        for name, cmd, _ in workloads(a.quick)[:2]:
            print("## " + name)
            print(prog_cost_table(cmd))
        return
    if a.memory_only:
        print("# tracer memory with N live allocations held (bench_live, nframe 1); %s; commit %s" % (
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), rev or "?"))
        print("# marginal: extra tracer memory per extra live allocation; RSS tracing: the")
        print("# tracer's RSS while the blocks are held and no report is made")
        print(memory_table([100000, 1000000] if a.quick else [1000000, 10000000]))
        return
    results = {}
    skipped = {}
    for rep in range(a.reps):
        for name, cmd, is_py in wl_list:
            order = configs[rep % len(configs):] + configs[:rep % len(configs)]
            for c in order:
                key = (name, c)
                if key in skipped:
                    continue
                res = None
                for attempt in (1, 2):  # a peer's attach can fail now and then: once more
                    try:
                        res = run_config(c, cmd, is_py)
                        break
                    except Skip as e:
                        skipped[key] = True
                        res = str(e)
                        break
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        res = str(e)
                if res is None:
                    continue
                results.setdefault(name, {}).setdefault(c, []).append(res)
                sys.stderr.write("bench: rep %d %s %s: %s\n" % (
                    rep + 1, name, c,
                    "%.1f ms" % (res["elapsed_ns"] / 1e6) if isinstance(res, dict) else res))
    print("# tracer benchmark: medians of %d interleaved runs; %s; kernel %s; commit %s" % (
        a.reps, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.uname().release,
        rev or "?"))
    print("# wall ms: the workload's own loop; +ns/event: added time per allocator call;")
    print("# vs floor: tracer overhead / empty-probe overhead; vs libc floor (the -hook rows,")
    print("# attached with --hook-pymalloc): +ns/event over bench_malloc's floor per event;")
    print("# lost: events lost (tracer's count);")
    print("# events: allocator calls the workload made (*: as counted by the tracer at nframe 1)")
    print(table(results, wl_list, configs, a.reps))
    fl = free_lists_table(results, wl_list)
    if fl:
        print()
        print("# objects from free lists moved to the line that takes them (tracer-n1, the")
        print("# default: a probe hit per object made) against --no-python-free-lists; a launched")
        print("# py-deb3.11 (pymalloc inlined, unprobed) does not move them, its -hook row does")
        print(fl)
    if not a.timing_only:
        cost = os.path.join(BUILD, "uprobe_cost")
        if os.access(cost, os.X_OK):
            print()
            print("# one uprobe hit per probed instruction (perf uprobe events, no BPF program),")
            print("# next to placement's prediction: emulated or single-stepped")
            p = subprocess.run([cost, "100000"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
            print(p.stdout.rstrip())
        print()
        print("# BPF programs' own run time per hit (kernel.bpf_stats_enabled), on bench_malloc and bench_mix;")
        print("# the rest of a probe hit's cost is the trap and the uprobe machinery")
        for name, cmd, _ in workloads(a.quick)[:2]:
            print("## " + name)
            print(prog_cost_table(cmd))

        print()
        print("# tracer memory with N live allocations held (bench_live, nframe 1);")
        print("# marginal: extra tracer memory per extra live allocation; RSS tracing: the")
        print("# tracer's RSS while the blocks are held and no report is made")
        print(memory_table([100000, 1000000] if a.quick else [1000000, 10000000]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
