"""Blocks that grow by realloc, at known lines (SITE:name), all kept alive.

In LTO builds (Debian's python3.11 and python3.14) CPython's realloc is
inlined into its callers and ends in libc's realloc; this workload has one
site for each kind of growth, and blocks allocated before the tracer
attaches that grow after it: through CPython's inlined realloc (a call),
through the exported PyMem_Realloc (which ends in a tail jump to libc's),
and a libc block that libc's realloc grows (not tracemalloc's: its domain
stays libc's). PyMem_RawMalloc called through ctypes tail-jumps to libc's
malloc.

  python py_realloc.py attach       allocate the early blocks, print "ready",
                                    wait for a line (a tracer attaches), grow,
                                    print "done", wait for a line
  python py_realloc.py attach-tm    as attach, with tracemalloc running when
                                    the tracer attaches (its hooks in the
                                    allocator tables) and stopped before
                                    the growth
  python py_realloc.py launch       the same without waiting: early blocks,
                                    growth, "ready", wait for a line
  python py_realloc.py ref MODE     the same under tracemalloc, started where
                                    the tracer attaches (MODE attach: after
                                    the early blocks and the first line read)
                                    or at the start (MODE launch), with the
                                    same lines printed and read, then print
                                    its lineno statistics for this file as
                                    JSON (the last line): taken where the
                                    tracer reports, after the same calls, so
                                    that an object they take from a free list
                                    moves in both

A last argument free-lists adds objects that CPython takes from its free
lists (the tracer moves them with --python-free-lists), and empties the free
lists where tracing starts.
"""
import array
import ctypes
import gc
import io
import itertools
import json
import sys

keep = []
CHUNK = b"x" * 10000

api = ctypes.pythonapi  # called with the GIL held, as tracemalloc's hooks need
# blocks come back as ctypes pointer objects, of one size whatever the
# address: as ints they were 28 or 32 bytes (one or two 30-bit digits), as
# the address fell below 1 GiB (a non-PIE python's brk heap) or above it
BLOCK = ctypes.POINTER(ctypes.c_char)
for name, args in (("PyMem_Malloc", [ctypes.c_size_t]),
                   ("PyMem_Realloc", [ctypes.c_void_p, ctypes.c_size_t]),
                   ("PyMem_RawMalloc", [ctypes.c_size_t])):
    getattr(api, name).restype = BLOCK
    getattr(api, name).argtypes = args
libc = ctypes.CDLL(None)
libc.malloc.restype = libc.realloc.restype = BLOCK
libc.malloc.argtypes = [ctypes.c_size_t]
libc.realloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def early():
    """Blocks from before the attach, grown by main()."""
    return [bytearray(50000),  # SITE:early_bytearray
            [None] * 10,  # SITE:early_list
            api.PyMem_Malloc(100000),  # SITE:early_pymem
            libc.malloc(1000)]  # SITE:early_native


def grow_bytearray():
    ba = bytearray()
    for _ in range(1000):
        ba.extend(CHUNK)  # SITE:bytearray
    keep.append(ba)


def grow_list():
    lst = []
    for _ in range(100000):
        lst.append(None)  # SITE:list
    keep.append(lst)


def grow_bytesio():
    bio = io.BytesIO()
    for _ in range(300):
        bio.write(CHUNK)  # SITE:bytesio
    keep.append(bio)


def grow_str():
    s = ""
    for _ in range(20000):
        s += "abcdefghij"  # SITE:str
    keep.append(s)


def grow_array():
    a = array.array("d")
    for _ in range(500000):
        a.append(1.0)  # SITE:array
    keep.append(a)


def grow_early(blocks):
    blocks[0].extend(b"y" * 150000)  # SITE:early_bytearray_grow
    blocks[1].extend([None] * 1000)  # SITE:early_list_grow
    blocks[2] = api.PyMem_Realloc(blocks[2], 300000)  # SITE:early_pymem_grow
    blocks[3] = libc.realloc(blocks[3], 64000)  # SITE:early_native_grow
    keep.append(blocks)


def raw_malloc():
    keep.append(api.PyMem_RawMalloc(30000))  # SITE:raw_malloc


# An object taken from a free list (a list, tuple, dict, float freed
# earlier and kept by CPython for reuse) has, in tracemalloc, the traceback
# of the line that takes it (bpo-35053), not of its first allocation.
def dict_of_lists():
    keep.append({str(i): [i] for i in range(10000)})  # SITE:dict_of_lists


def bytearray_join():
    parts = [bytes([i % 256]) * (i % 97) for i in range(2000)]  # SITE:join_parts
    keep.append(bytearray(b", ").join(parts))  # SITE:bytearray_join


def free_list_reuse():
    spare = [[] for _ in range(40)]  # SITE:free_list_first
    del spare
    keep.append([[] for _ in range(40)])  # SITE:free_list_reused


# Each kept list takes the block of the list freed the turn before: a free
# list of 80 lists moves 1000 of them. The turns counted by an iterator, not a
# range (no int made per turn, which 3.14 keeps in a free list of its own)
def free_list_churn():
    for _ in itertools.repeat(None, 1000):
        spare = [None]  # SITE:churn_freed
        keep.append([])  # SITE:churn_kept
    keep.append(spare)


def main(blocks, free_lists):
    if free_lists:
        gc.collect()  # as at the start, where tracing starts in attach modes
    grow_bytearray()
    grow_list()
    grow_bytesio()
    grow_str()
    grow_array()
    grow_early(blocks)
    raw_malloc()
    if free_lists:
        dict_of_lists()
        bytearray_join()
        free_list_reuse()
        free_list_churn()


def statistics():
    import tracemalloc
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()  # what follows (a list from a free list) is not the workload's
    out = []
    for st in snapshot.statistics("lineno"):
        f = st.traceback[0]
        if f.filename == __file__:
            out.append([f.lineno, st.size, st.count])
    return out


if __name__ == "__main__":
    # a tuple, compared with constants: no list, which would come from the
    # free list and take a line of its own in one mode and not the other
    free_lists = sys.argv[-1] == "free-lists"
    mode = tuple(sys.argv[1:-1] if free_lists else sys.argv[1:])
    if mode == ("ref", "launch"):
        import tracemalloc
        tracemalloc.start(1)
    # free lists emptied where tracing starts (launch: the tracer's began
    # earlier): an object taken from one moves to the line that takes it
    # when its block is traced (bpo-35053), for both or for neither
    if free_lists:
        gc.collect()
    blocks = early()
    if mode == ("ref", "attach"):
        print("ready", flush=True)
        sys.stdin.readline()
        import tracemalloc
        tracemalloc.start(1)
    elif mode == ("attach",):
        print("ready", flush=True)
        sys.stdin.readline()
    elif mode == ("attach-tm",):
        import tracemalloc
        tracemalloc.start(1)
        print("ready", flush=True)
        sys.stdin.readline()
        tracemalloc.stop()
    main(blocks, free_lists)
    if mode in (("attach",), ("attach-tm",), ("ref", "attach")):
        print("done", flush=True)
    else:
        print("ready", flush=True)
    sys.stdin.readline()  # SITE:wait
    if mode and mode[0] == "ref":
        print(json.dumps(statistics()), flush=True)
