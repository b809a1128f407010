"""Blocks whose free no probe sees, on LTO CPython under --hook-pymalloc:
bytearray(b", ") makes its 3-byte buffer by CPython's inlined realloc of
NULL, which calls pymalloc's malloc (the realloc slot stays pymalloc's), and
the inlined pymalloc free behind its guard frees it; pymalloc gives the same
address to the next one.

  python py_unseen_frees.py N   print "ready", wait for a line (a tracer
                                attaches), make and drop N separators, print
                                "done", wait for a line
"""
import sys


def separators(n):
    for _ in range(n):
        bytearray(b", ")  # SITE:separator


if __name__ == "__main__":
    n = int(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()
    separators(n)
    print("done", flush=True)
    sys.stdin.readline()
