"""tracemalloc started while a tracer traces: tracemalloc.start() puts its
hooks into CPython's allocator tables, which the tracer read at its attach.

  python py_tm_after.py   print "ready", wait for a line; start tracemalloc,
                          allocate, print "done", wait for a line
"""
import sys
import tracemalloc

keep = []
print("ready", flush=True)
sys.stdin.readline()
tracemalloc.start()
keep.append([bytes(100) for _ in range(1000)])  # SITE:after
print("done", flush=True)
sys.stdin.readline()
