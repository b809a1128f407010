"""Python threads with allocation sites at known lines (SITE:name).

  python py_threads.py   print "ready" and wait for a line; then, all at
                         once: 8 threads each keep 100 bytes objects of their
                         own size at their own line, a thread sleeps in
                         Python (GIL released), 4 threads call libc malloc
                         through ctypes (GIL released during the call);
                         print "done" and wait for a line
"""
import ctypes
import sys
import threading
import time

N = 100
# bytes made by repetition: a call (bytes(n)) would take its argument tuple
# from a free list, which tracemalloc moves to the line (bpo-35053), and
# which of the threads' lines keeps one depends on how they interleave
ZERO = b"\0"
keep = []
ptrs = [0] * (4 * N)
barrier = threading.Barrier(8 + 1 + 4)
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]


def t0():
    out = [None] * N
    barrier.wait()
    for i in range(N):
        out[i] = ZERO * 1000  # SITE:t0
    keep.append(out)


def t1():
    out = [None] * N
    barrier.wait()
    for i in range(N):
        out[i] = ZERO * 1100  # SITE:t1
    keep.append(out)


def t2():
    out = [None] * N
    barrier.wait()
    for i in range(N):
        out[i] = ZERO * 1200  # SITE:t2
    keep.append(out)


def t3():
    out = [None] * N
    barrier.wait()
    for i in range(N):
        out[i] = ZERO * 1300  # SITE:t3
    keep.append(out)


def t4():
    out = [None] * N
    barrier.wait()
    for i in range(N):
        out[i] = ZERO * 1400  # SITE:t4
    keep.append(out)


def t5():
    out = [None] * N
    barrier.wait()
    for i in range(N):
        out[i] = ZERO * 1500  # SITE:t5
    keep.append(out)


def t6():
    out = [None] * N
    barrier.wait()
    for i in range(N):
        out[i] = ZERO * 1600  # SITE:t6
    keep.append(out)


def t7():
    out = [None] * N
    barrier.wait()
    for i in range(N):
        out[i] = ZERO * 1700  # SITE:t7
    keep.append(out)


def sleeper():
    barrier.wait()
    time.sleep(1.5)  # SITE:sleeper


def native(k):
    barrier.wait()
    for i in range(N):
        ptrs[k * N + i] = libc.malloc(3000 + k)  # SITE:native


def main():
    threads = [threading.Thread(target=f) for f in (t0, t1, t2, t3, t4, t5, t6, t7, sleeper)]
    threads += [threading.Thread(target=native, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    print("ready", flush=True)
    sys.stdin.readline()
    main()
    print("done", flush=True)
    sys.stdin.readline()
