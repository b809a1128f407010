"""Benchmark workload for Python: json.dumps of many small dicts.

    python3 scripts/bench_py.py N [--tracemalloc NFRAME] [--gate]

Builds N small dicts one at a time and serializes each; with --tracemalloc it
first starts tracemalloc with NFRAME frames, so that tracemalloc's own cost is
measured in the same process and the same loop. Prints one line:
"bench_py n=N tracemalloc=NFRAME elapsed_ns=T" (NFRAME 0: not started).

--gate: for a tracer that attaches (scripts/bench_run.py's hooked rows):
prints "bench_py ready" and waits for a line on stdin before the loop, and
for another after its result line before it exits, so that the tracer
attaches before the loop and reports while the process still runs.
"""
import json
import sys
import time


# time.monotonic_ns is 3.7+; the pyenv 3.6 build is benchmarked too.
now_ns = getattr(time, "monotonic_ns", None) or (lambda: int(time.monotonic() * 1e9))


def usage(msg):
    sys.stderr.write("bench_py: %s (usage: bench_py.py N [--tracemalloc NFRAME] [--gate])\n"
                     % msg)
    sys.exit(2)


def parse(argv):
    gate = "--gate" in argv
    argv = [a for a in argv if a != "--gate"]
    if len(argv) not in (1, 3):
        usage("wrong number of arguments")
    try:
        n = int(argv[0])
    except ValueError:
        usage("N must be an integer")
    nframe = 0
    if len(argv) == 3:
        if argv[1] != "--tracemalloc":
            usage("unknown option %s" % argv[1])
        try:
            nframe = int(argv[2])
        except ValueError:
            usage("NFRAME must be an integer")
        if nframe < 1:
            usage("NFRAME must be at least 1")
    if n <= 0:
        usage("N must be positive")
    return n, nframe, gate


def work(n):
    total = 0
    for i in range(n):
        d = {"id": i, "name": "item-%d" % i, "tags": ["a", "b", str(i % 7)],
             "price": i * 0.5, "ok": i % 2 == 0}
        total += len(json.dumps(d))
    return total


def main():
    n, nframe, gate = parse(sys.argv[1:])
    if nframe:
        import tracemalloc
        tracemalloc.start(nframe)
    if gate:
        print("bench_py ready")
        sys.stdout.flush()
        sys.stdin.readline()
    t0 = now_ns()
    work(n)
    t1 = now_ns()
    print("bench_py n=%d tracemalloc=%d elapsed_ns=%d" % (n, nframe, t1 - t0))
    sys.stdout.flush()
    if gate:
        sys.stdin.readline()


if __name__ == "__main__":
    main()
