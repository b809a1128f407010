"""Allocators other than glibc's: jemalloc linked in (its own API, and C++'s
new and sized delete served by it) and tcmalloc preloaded; exact per-line
figures, and nothing freed left as live."""
import os

import pytest

import json

from helpers import Tracer, by_line, children, run_tracer, site, trace, workload

TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4"


def need_workload(name):
    if not os.path.exists(workload(name)):
        pytest.skip("%s not built (jemalloc's headers are not installed)" % name)
    return workload(name)


def check_cxx(report):
    lines = by_line(report, "cxx.cc")
    assert lines[site("cxx.cc", "new")] == (300 * 96, 300)
    assert lines[site("cxx.cc", "new_array")] == (50 * 4000, 50)
    # `delete new Node()`: a sized operator delete, jemalloc's or tcmalloc's
    # own, that never calls their free
    assert site("cxx.cc", "deleted") not in lines


def test_cxx_new_delete_under_jemalloc():
    check_cxx(trace(["--", need_workload("cxx-jemalloc")]))


def test_cxx_new_delete_under_preloaded_tcmalloc():
    if not os.path.exists(TCMALLOC):
        pytest.skip("no %s" % TCMALLOC)
    check_cxx(trace(["--", "env", "LD_PRELOAD=" + TCMALLOC, workload("cxx")]))


def test_jemalloc_api():
    report = trace(["--", need_workload("jemalloc_api")])
    src = "jemalloc_api.c"
    lines = by_line(report, src)
    assert lines == {site(src, "mallocx"): (100 * 1000, 100),
                     site(src, "rallocx"): (20 * 50000, 20),
                     # mallocx'd at 40000, shrunk in place to 20000 (and
                     # not grown to 1 GiB)
                     site(src, "xallocx"): (10 * 20000, 10)}
    # every block allocated, and the 100 freed by sdallocx and dallocx
    assert report["notes"]["frees_of_untraced_blocks"] == 0


def test_mimalloc_api():
    """A program linked against mimalloc calls its API, not malloc: every
    entry point of it is probed, exact per line."""
    report = trace(["--", need_workload("mimalloc_api")])
    src = "mimalloc_api.c"
    lines = by_line(report, src)
    assert lines == {site(src, "mi_malloc"): (100 * 1000, 100),
                     site(src, "mi_zalloc"): (30 * 200, 30),
                     site(src, "mi_calloc"): (40 * 300, 40),
                     site(src, "mi_malloc_aligned"): (25 * 500, 25),
                     site(src, "mi_mallocn"): (10 * 800, 10),
                     site(src, "mi_realloc"): (20 * 50000, 20),
                     site(src, "mi_reallocn"): (5 * 6000, 5)}, lines
    # every block freed by mi_free, mi_free_size and mi_free_aligned was
    # traced, and every one of them went
    assert report["notes"]["frees_of_untraced_blocks"] == 0


def test_glibc_cxx_delete_costs_no_extra_probe():
    """libstdc++'s operator delete calls free: it is not probed itself (a
    second trap per delete), and the frees are still exact."""
    with Tracer(["-v", "--", workload("cxx")]) as t:
        pass
    assert not [l for l in t.stderr_lines if "probe _Zdl" in l and "libstdc++" in l]
    check_cxx(t.report)


def stats_json(path, *args):
    return json.loads(run_tracer(["stats", path, "--format", "json", "-t", "0"] +
                                 list(args)).stdout)


def mapped_ranges(pid):
    """/proc/PID/maps' ranges, those next to each other joined."""
    out = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if out and out[-1][1] == lo:
                out[-1][1] = hi
            else:
                out.append([lo, hi])
    return out


def test_mmap_domain_follows_munmap_and_mremap(tmp_path):
    """The mmap domain's blocks as munmap cuts them (head, tail, a hole
    that splits a block) and mremap moves them (grown, shrunk, onto a
    mapping with MREMAP_FIXED, copied with MREMAP_DONTUNMAP, a part moved
    out of a block's middle), and as a MAP_FIXED mmap or a file's page
    moved with MREMAP_FIXED replace their pages: the traced bytes are the
    bytes the workload keeps mapped, exactly, each under the line that
    mapped them. glibc's realloc of a large block (its own mremap) stays a
    libc block."""
    snap = str(tmp_path / "mapper.snap")
    src = "mapper.c"
    with Tracer(["-o", snap, "--", workload("mapper"), "blocks"]) as t:
        t.expect("ready")
        t.say("go\n")
        kept = []
        while True:
            line = t.read_until("")
            if line == "done":
                break
            word, addr, length = line.split()
            assert word == "block", line
            kept.append((int(addr, 16), int(length)))
        (pid,) = children(t.process.pid)
        # what the workload keeps is really mapped
        ranges = mapped_ranges(pid)
        for addr, length in kept:
            assert any(lo <= addr and addr + length <= hi for lo, hi in ranges), \
                (hex(addr), length)
        t.signal()
    page = 4096
    mmap = stats_json(snap, "--domain", "mmap")
    assert by_line(mmap, src) == {
        site(src, "mapped"): (4 << 20, 4),
        site(src, "head"): (48 * page, 1),
        site(src, "tail"): (48 * page, 1),
        site(src, "hole"): (48 * page, 2),  # split in two by the hole
        site(src, "grown"): (128 * page, 1),
        site(src, "shrunk"): (32 * page, 1),
        site(src, "fixed_target"): (192 * page, 1),  # its head replaced
        site(src, "fixed_src"): (64 * page, 1),  # moved there, grown
        site(src, "dontunmap_src"): (32 * page, 2),  # and its copy, a block of its own
        site(src, "partial"): (80 * page, 3),  # head, tail, the part moved
        site(src, "overmapped"): (48 * page, 2),  # a MAP_FIXED mapping in its middle
        site(src, "fixed_map"): (16 * page, 1),
        site(src, "file_target"): (31 * page, 1),  # a file's page moved onto its head
    }, by_line(mmap, src)
    assert sum(s["size"] for s in mmap["statistics"]) == sum(n for _, n in kept)
    # glibc's realloc: one libc block of the size asked, nothing in mmap's
    libc = stats_json(snap, "--domain", "libc")
    assert by_line(libc, src) == {site(src, "realloc_big"): (4 << 20, 1)}
    assert t.report["notes"]["mmap_blocks_split"] == 3
    assert t.report["losses"]["mmap_unmaps_not_followed"] == 0
    assert t.report["notes"]["frees_of_untraced_blocks"] == 0
