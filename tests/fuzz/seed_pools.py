"""Seeds for fuzz_pools: a 16 KiB pool of 64-byte blocks in use as pymalloc
leaves one (header, a free list of three blocks, blocks never handed out past
nextoffset), with blocks asked about in use, on the free list, past
nextoffset and in another pool; and the same pool read by an exiting process.

  python3 seed_pools.py DIR
"""
import os
import struct
import sys

POOL, BS, OVERHEAD = 16384, 64, 48


def pool():
    carved = 40
    nextoffset = OVERHEAD + carved * BS
    free = [OVERHEAD + 5 * BS, OVERHEAD + 17 * BS, OVERHEAD + 39 * BS]
    mem = bytearray(POOL)
    base = 0x7f0000000000
    head = base + free[0]
    struct.pack_into("<IIQQQIIII", mem, 0, carved - len(free), 0, head, 0, 0, 0,
                     BS // 16 - 1, nextoffset, POOL - BS)
    for a, b in zip(free, free[1:] + [None]):
        struct.pack_into("<Q", mem, a, base + b if b is not None else 0)
    return bytes(mem)


def blocks():
    offs = [(OVERHEAD, 60), (OVERHEAD + 5 * BS, 64), (OVERHEAD + 39 * BS, 50),
            (OVERHEAD + 45 * BS, 64), (OVERHEAD + 2 * BS, 20)]
    return bytes([len(offs)]) + b"".join(struct.pack("<HHB", o, s, 4) for o, s in offs)


if __name__ == "__main__":
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    for mode in (0, 1):
        with open(os.path.join(d, "pool-%d" % mode), "wb") as f:
            f.write(bytes([mode]) + blocks() + pool())
