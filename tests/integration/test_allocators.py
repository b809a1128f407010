"""Allocators other than glibc's: jemalloc linked in (its own API, and C++'s
new and sized delete served by it) and tcmalloc preloaded; exact per-line
figures, and nothing freed left as live."""
import os

import pytest

from helpers import Tracer, by_line, site, trace, workload

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
