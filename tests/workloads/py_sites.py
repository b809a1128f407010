"""A Python workload with allocation sites at known lines (SITE:name).

  python py_sites.py          run, print "ready", wait for a line on stdin
  python py_sites.py ref N    run under tracemalloc (nframe N) and print its
                              lineno statistics for this file as JSON
  python py_sites.py attach   print "ready", wait for a line, run, print
                              "done", wait for a line (for a tracer that
                              attaches in between)
"""
import json
import sys
import threading

keep = []


def make_big():
    for _ in range(200):
        keep.append(bytearray(20000))  # SITE:big


def make_small():
    for i in range(5000):
        keep.append(str(i) * 3)  # SITE:small


def nested_b():
    return [b"x" * 3000 for _ in range(300)]  # SITE:nested


def nested_a():
    return nested_b()  # SITE:nested_call


def gen():
    for _ in range(400):
        yield bytes(1500)  # SITE:gen


def worker():
    keep.append([bytearray(7000) for _ in range(100)])  # SITE:thread


def temporaries():
    for _ in range(1000):
        tmp = bytearray(9000)  # SITE:temporary
        del tmp


def main():
    make_big()
    make_small()
    keep.append(nested_a())
    keep.append(list(gen()))  # SITE:gen_call
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    temporaries()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "ref":
        import tracemalloc
        tracemalloc.start(int(sys.argv[2]))
        main()
        snap = tracemalloc.take_snapshot()
        out = []
        for st in snap.statistics("lineno"):
            f = st.traceback[0]
            if f.filename == __file__:
                out.append([f.lineno, st.size, st.count])
        print(json.dumps(out))
    elif len(sys.argv) > 1 and sys.argv[1] == "attach":
        print("ready", flush=True)
        sys.stdin.readline()
        main()
        print("done", flush=True)
        sys.stdin.readline()
    else:
        main()
        print("ready", flush=True)
        sys.stdin.readline()
