"""Objects built by a class whose __init__ allocates: from 3.13 the
interpreter pushes a shim frame (_Py_InitCleanup) between the caller and
__init__, which tracemalloc does not show or count.

  python py_init.py ref N    run under tracemalloc (nframe N) and print, for
                             the tracebacks that start in this file, their
                             lines (most recent first), size and count
  python py_init.py          print "ready", wait for a line, run, print
                             "done", wait for a line (a tracer attaches first)
"""
import json
import sys

keep = []


class Holder:
    def __init__(self):
        self.data = bytearray(5000)  # SITE:init


def build():
    for _ in range(300):
        keep.append(Holder())  # SITE:construct


def main():
    build()  # SITE:main


if __name__ == "__main__":
    ref = len(sys.argv) > 2 and sys.argv[1] == "ref"
    if ref:
        import tracemalloc
        tracemalloc.start(int(sys.argv[2]))
    else:
        print("ready", flush=True)
        sys.stdin.readline()
    main()  # SITE:module
    if ref:
        snap = tracemalloc.take_snapshot()
        out = []
        for st in snap.statistics("traceback"):
            frames = list(reversed(st.traceback))  # most recent first
            if frames[0].filename == __file__:
                out.append([[f.lineno for f in frames], st.size, st.count])
        print(json.dumps(out))
    else:
        print("done", flush=True)
        sys.stdin.readline()
