"""A Python program that allocates and ends, as most do: the tracer's final
report must show what it held when the interpreter began finalising, not
what is left after shutdown.

  python py_exit.py          allocate, then exit
  python py_exit.py ref      the same under tracemalloc, printing its lineno
                             statistics for this file (JSON) at the end
"""
import json
import sys

keep = []


def build():
    for _ in range(300):
        keep.append(bytearray(4000))  # SITE:held
    keep.append([str(i) for i in range(2000)])  # SITE:strings


if __name__ == "__main__":
    ref = len(sys.argv) > 1 and sys.argv[1] == "ref"
    if ref:
        import tracemalloc
        tracemalloc.start(1)
    build()  # SITE:main
    if not ref:
        # live past one of the tracer's polls (250 ms): it reads a stack's
        # code objects while they exist; finalisation frees them
        import time
        time.sleep(0.6)
    if ref:
        out = [[st.traceback[0].lineno, st.size, st.count]
               for st in tracemalloc.take_snapshot().statistics("lineno")
               if st.traceback[0].filename == __file__]
        print(json.dumps(out))
