#!/usr/bin/python3
"""`make soak`: `tracer serve -a` for a long run (SOAK_SECONDS, 600 by
default) on a host whose processes come and go much faster than a service
host's: children forked and exiting with blocks live (spawner), programs
exec'd by shells, short CPython runs, while one long-lived process holds a
known live set and /metrics, /debug/pprof/heap and /snapshot are scraped
all along. What a run of days does to the tracer, in minutes: every index,
symbolizer, CPython reader and stack of a process gone has to be given
back.

It prints, every SOAK_EVERY seconds, the processes started so far, the
tracer's resident set and its memory as /metrics says (maps and RSS), and
how long the scrapes took; then checks:
- the tracer's resident set at the end within 16 MiB of what it was a
  quarter of the way in (the caches full by then);
- every scrape a valid answer (a gzip'd profile, a parsable exposition);
- the long-lived process's statistics exact at the end (tests/workloads/
  native.c's phases), and none of the processes lost for a full table.
Status 1 when a check fails. Needs root; run it alone (flock)."""
import argparse
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from helpers import TRACER, Workload, by_line, of_process, serve_address, site, workload  # noqa: E402
from test_native import EXPECTED  # noqa: E402


class Churn:
    """Processes started and ended in a loop on their own thread, counted."""

    def __init__(self, name, argv):
        self.name, self.argv, self.started, self.failed = name, argv, 0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop.is_set():
            n, argv = self.argv()
            p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.started += n
            self.failed += p.returncode != 0


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))


def metric(text, name):
    m = re.search(r"^%s(?:\{[^}]*\})? (\S+)$" % name, text, re.M)
    return float(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    ap.add_argument("--every", type=float, default=float(os.environ.get("SOAK_EVERY", 30)))
    ap.add_argument("args", nargs="*", help="more arguments of tracer serve (e.g. --budget 2%%)")
    o = ap.parse_args()
    python = "/usr/bin/python3.11" if os.path.exists("/usr/bin/python3.11") else "/usr/bin/python3"
    churn = [
        Churn("forks", lambda: (200, [workload("spawner"), "200"])),
        Churn("execs", lambda: (100, ["sh", "-c", "for i in $(seq 100); do /bin/true; done"])),
        Churn("python", lambda: (1, [python, "-c",
                                     "x = [bytes(1000) for _ in range(2000)]; import json"])),
    ]
    serve = subprocess.Popen([TRACER, "serve", "-a", "-v", "--listen", "127.0.0.1:0"] + o.args,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    failures, rows, scrapes = [], [], 0
    tmp = tempfile.mkdtemp(prefix="tracer-soak.")
    try:
        base = serve_address(serve, "processes with")
        if not base:
            sys.exit("soak: tracer serve did not start")
        threading.Thread(target=lambda: [None for _ in serve.stderr], daemon=True).start()
        with Workload([workload("native"), "wait"]) as held:
            held.run("go\n")
            for c in churn:
                c.thread.start()
            t0 = time.time()
            print("%8s %10s %10s %12s %10s %10s" % ("seconds", "processes", "rss MiB",
                                                    "memory MiB", "heap s", "metrics s"))
            while True:
                time.sleep(min(o.every, max(0, t0 + o.seconds - time.time())))
                t = time.time()
                metrics = urllib.request.urlopen(base + "/metrics", timeout=60).read().decode()
                t_metrics = time.time() - t
                t = time.time()
                heap = urllib.request.urlopen(base + "/debug/pprof/heap", timeout=60).read()
                t_heap = time.time() - t
                scrapes += 2
                if heap[:2] != b"\x1f\x8b" or not gzip.decompress(heap):
                    failures.append("a heap profile that is not gzip'd")
                memory = metric(metrics, "tracer_memory_bytes")
                if memory is None:
                    failures.append("/metrics without tracer_memory_bytes")
                row = (time.time() - t0, sum(c.started for c in churn), rss_kib(serve.pid) / 1024,
                       (memory or 0) / 2**20, t_heap, t_metrics)
                rows.append(row)
                print("%8.0f %10d %10.1f %12.1f %10.2f %10.2f" % row, flush=True)
                if time.time() - t0 >= o.seconds:
                    break
            for c in churn:
                c.stop.set()
            for c in churn:
                c.thread.join()
            snap = os.path.join(tmp, "end.snap")
            with open(snap, "wb") as f:
                f.write(urllib.request.urlopen(base + "/snapshot", timeout=120).read())
            doc = subprocess.run([TRACER, "stats", snap, "--pid", str(held.pid), "--format",
                                  "json", "-t", "0"], capture_output=True, text=True)
            if doc.returncode:
                failures.append("tracer stats: " + doc.stderr.strip())
            else:
                report = json.loads(doc.stdout)
                lines = by_line(of_process(report, held.pid) or {"statistics": []}, "native.c")
                for name, (size, count) in EXPECTED.items():
                    if lines.get(site("native.c", name)) != (size * count, count):
                        failures.append("native.c %s: %s, not %s" % (
                            name, lines.get(site("native.c", name)), (size * count, count)))
                if report["losses"]["process_table_full"]:
                    failures.append("%d processes found the process table full" %
                                    report["losses"]["process_table_full"])
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=120)
        except subprocess.TimeoutExpired:
            serve.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    started = sum(c.started for c in churn)
    print("soak: %d processes started in %.0f s (%s), %d scrapes" % (
        started, rows[-1][0], ", ".join("%s %d" % (c.name, c.started) for c in churn), scrapes))
    quarter = next(r for r in rows if r[0] >= rows[-1][0] / 4)
    print("soak: resident set %.1f MiB at %.0f s, %.1f MiB at the end (%d processes later)" % (
        quarter[2], quarter[0], rows[-1][2], started - quarter[1]))
    if rows[-1][2] > quarter[2] + 16:
        failures.append("the resident set grew by %.1f MiB after %.0f s" % (
            rows[-1][2] - quarter[2], quarter[0]))
    if any(c.failed for c in churn):
        failures.append("churn runs failed: %s" % {c.name: c.failed for c in churn})
    if serve.returncode != 0:
        failures.append("tracer serve exited with %d" % serve.returncode)
    for f in failures:
        print("soak: FAILED: " + f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
