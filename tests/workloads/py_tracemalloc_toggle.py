"""A program that starts and stops tracemalloc itself while a tracer traces
it: tracemalloc.start() puts its hooks in the allocator tables (around
what they held: CPython's allocators, or the raw ones --hook-pymalloc put
there), stop() puts back what they held.

  python py_tracemalloc_toggle.py   print "ready", wait for a line (a tracer
                                    attaches), start tracemalloc, print
                                    "started", wait for a line (the tracer
                                    follows), allocate, print "mid", wait for
                                    a line (the tracer reports), print "ref "
                                    and tracemalloc's lineno statistics for
                                    this file as JSON, stop it, allocate
                                    again, print "done", wait for a line
  python py_tracemalloc_toggle.py running
                                    the same with tracemalloc running from the
                                    start (no "started"), and after its stop
                                    print "stopped", wait for a line
  python py_tracemalloc_toggle.py ref
                                    the same allocations under tracemalloc
                                    from the start: print "ref " and its
                                    statistics
"""
import json
import sys
import tracemalloc

keep = []


def while_tracemalloc_runs():
    keep.append([bytearray(1000 + i) for i in range(100)])  # SITE:bytearrays
    keep.append([{"k": i, "v": [i]} for i in range(2000)])  # SITE:dicts
    keep.append("x" * 100000)  # SITE:str


def after_it_stopped():
    keep.append(bytearray(5000000))  # SITE:after_stop


def lineno_statistics(snapshot):
    return [[st.traceback[0].lineno, st.size, st.count] for st in snapshot.statistics("lineno")
            if st.traceback[0].filename == __file__]


if sys.argv[1:] == ["ref"]:
    tracemalloc.start(1)
    while_tracemalloc_runs()
    after_it_stopped()
    print("ref " + json.dumps(lineno_statistics(tracemalloc.take_snapshot())), flush=True)
    sys.exit(0)
running = sys.argv[1:] == ["running"]
if running:
    tracemalloc.start(1)
print("ready", flush=True)
sys.stdin.readline()
if not running:
    tracemalloc.start(1)
    print("started", flush=True)
    sys.stdin.readline()  # SITE:started
while_tracemalloc_runs()
print("mid", flush=True)
sys.stdin.readline()  # SITE:mid
print("ref " + json.dumps(lineno_statistics(tracemalloc.take_snapshot())), flush=True)
tracemalloc.stop()
if running:
    print("stopped", flush=True)
    sys.stdin.readline()  # SITE:stopped
after_it_stopped()
print("done", flush=True)
sys.stdin.readline()
