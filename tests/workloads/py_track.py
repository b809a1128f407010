"""PyTraceMalloc_Track/Untrack, as numpy uses them, at known lines.

  python py_track.py       50 blocks from libc malloc tracked in domain
                           389047; 20 of them freed then untracked (numpy's
                           order); print "ready", wait for a line
  python py_track.py ref   the same under tracemalloc; print the domain's
                           lineno statistics for this file as JSON
"""
import ctypes
import json
import sys

DOMAIN = 389047
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
track = ctypes.pythonapi.PyTraceMalloc_Track
track.argtypes = [ctypes.c_uint, ctypes.c_size_t, ctypes.c_size_t]
untrack = ctypes.pythonapi.PyTraceMalloc_Untrack
untrack.argtypes = [ctypes.c_uint, ctypes.c_size_t]


def main():
    blocks = [libc.malloc(5000) for _ in range(50)]  # SITE:malloc
    for p in blocks:
        track(DOMAIN, p, 5000)  # SITE:track
    for p in blocks[:20]:
        libc.free(p)
        untrack(DOMAIN, p)  # SITE:untrack
    return blocks[20:]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "ref":
        import tracemalloc
        tracemalloc.start()
        kept = main()
        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.DomainFilter(True, DOMAIN)])
        print(json.dumps([[st.traceback[0].lineno, st.size, st.count]
                          for st in snap.statistics("lineno")]))
    else:
        kept = main()
        print("ready", flush=True)
        sys.stdin.readline()
