"""Traced memory by domain: Python objects of known sizes, and three blocks
of 16 MiB from libc's malloc through ctypes, all kept alive.

  python py_traced_memory.py attach
                                   print "ready", wait for a line (a tracer
                                   attaches), allocate, print "done", wait
                                   for a line
  python py_traced_memory.py ref   the same with tracemalloc started where the
                                   tracer attaches, then print
                                   {"current": N, "peak": N, "native": N}:
                                   get_traced_memory() where the other mode
                                   prints "done", and the bytes of the libc
                                   blocks
"""
import ctypes
import json
import sys

NATIVE_BLOCKS = 3
NATIVE_SIZE = 16 << 20

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]

keep = []


def python_objects():
    """About 10 MiB in tracemalloc's domain 0, a few sizes and kinds."""
    for _ in range(100):
        keep.append(bytearray(50000))
    for i in range(40000):
        keep.append("s%d" % i * 8)
    keep.append({i: str(i) for i in range(20000)})
    keep.append([bytes(3000) for _ in range(500)])
    # a temporary that raises the peak above the current figure
    tmp = bytearray(4 << 20)
    del tmp


def native_blocks():
    """What tracemalloc never sees: libc's malloc called directly."""
    blocks = [libc.malloc(NATIVE_SIZE) for _ in range(NATIVE_BLOCKS)]
    assert all(blocks)
    keep.append(blocks)


def main():
    python_objects()
    native_blocks()


if __name__ == "__main__":
    # both modes go through the same steps up to main(), so that tracemalloc
    # starts in the same state as the one the tracer attaches to
    import _tracemalloc  # built in: importing it allocates next to nothing

    ref = sys.argv[1:] == ["ref"]
    if ref:
        _tracemalloc.start(1)
    else:
        print("ready", flush=True)
        sys.stdin.readline()
    main()
    if ref:
        current, peak = _tracemalloc.get_traced_memory()
        print(json.dumps({"current": current, "peak": peak,
                          "native": NATIVE_BLOCKS * NATIVE_SIZE}), flush=True)
    else:
        print("done", flush=True)
        sys.stdin.readline()
