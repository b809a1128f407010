"""Seeds for fuzz_pycode (see its header for the input's two forms), made by
the interpreter that runs this script from its own code objects: their line
tables (co_lnotab up to 3.9, co_linetable from 3.10) with an instruction to
look up, and their memory as it is, read with ctypes (the code object, its
filename, name and qualname str objects and its line table's bytes object,
at their real addresses).

  pythonX.Y seed_pycode.py OUTDIR
"""
import ctypes
import hashlib
import json.decoder
import os
import struct
import sys

MINOR = sys.version_info[1]
COUNT = 16


def memory(obj, size):
    return ctypes.string_at(id(obj), size)


def region(obj, size):
    return struct.pack("<QI", id(obj), size) + memory(obj, size)


def line_table(code):
    return code.co_linetable if MINOR >= 10 else code.co_lnotab


def instructions(code):
    """A few instructions of code, as the tracer gets them: f_lasti in
    bytes up to 3.9, in code units in 3.10, a code unit index from 3.11."""
    units = len(code.co_code) // 2
    picks = sorted({0, units // 3, units // 2, units - 1})
    return [p * 2 if MINOR <= 9 else p for p in picks]


def codes():
    """Code objects of a few modules' functions and what they nest."""
    found = []
    todo = [f.__code__ for m in (json.decoder, os, struct) for f in vars(m).values()
            if hasattr(f, "__code__")]
    while todo and len(found) < COUNT:
        code = todo.pop(0)
        found.append(code)
        todo.extend(c for c in code.co_consts if isinstance(c, type(code)))
    return found


def write(out, data):
    with open(os.path.join(out, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def main():
    if sys.version_info < (3, 8):
        return  # the tracer reads 3.8 and later
    out = sys.argv[1]
    for code in codes():
        table = line_table(code)
        for instr in instructions(code):
            write(out, struct.pack("<BBiq", 0, MINOR, code.co_firstlineno, instr) + table)
        names = [code.co_filename, code.co_name]
        if MINOR >= 11:
            names.append(code.co_qualname)
        regions = region(code, max(sys.getsizeof(code), 256))
        for name in names:
            regions += region(name, sys.getsizeof(name))
        regions += region(table, sys.getsizeof(table))
        head = struct.pack("<BBQQq", 1, MINOR, id(code), id(type(code)),
                           instructions(code)[-1])
        write(out, head + regions)


main()
