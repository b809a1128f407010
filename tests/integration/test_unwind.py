"""Native tracebacks of code built without frame pointers, unwound in BPF
from the files' CFI: a -O2 build of our own (with and without debug
information), Debian's sqlite3 (stripped, no frame pointers), and a run
whose distinct stacks far outnumber the stack table."""
import os
import random
import shutil

import pytest

from helpers import Tracer, Workload, by_line, site, statistics_at, trace, workload

SRC = "nofp.c"
CHAIN_A = ["alloc_block", "a5", "a4", "a3", "a2", "a1", "main"]
CHAIN_B = ["alloc_block", "b5", "b4", "b3", "b2", "b1", "main"]


def chains(report):
    """{tuple of function names: (size, count)} of the traceback statistics."""
    return {tuple(f.get("function") for f in st["frames"]): (st["size"], st["count"])
            for st in report["statistics"]}


def cut_short(report):
    return {k: v for k, v in report["losses"].items()
            if k.startswith("native_stack_cut") and v}


@pytest.mark.parametrize("binary", ["nofp", "nofp-nodebug"])
def test_two_chains_without_frame_pointers_stay_apart(binary):
    report = trace(["-n", "7", "-k", "traceback", "--", workload(binary)])
    got = chains(report)
    assert got[tuple(CHAIN_A)] == (100 * 1000, 100)
    assert got[tuple(CHAIN_B)] == (30 * 3000, 30)
    assert report["losses"]["native_stack_table_full"] == 0
    assert not cut_short(report)


def test_lines_of_each_frame_with_debug_information():
    report = trace(["-n", "7", "-k", "traceback", "--", workload("nofp")])
    deep = statistics_at(report, SRC, site(SRC, "alloc"))
    by_caller = {st["frames"][1]["function"]: st for st in deep}
    for chain, main_site in ((CHAIN_A, "main_a"), (CHAIN_B, "main_b")):
        frames = by_caller[chain[1]]["frames"]
        want = [site(SRC, "alloc")] + [site(SRC, fn) for fn in chain[1:6]] + [site(SRC, main_site)]
        assert [f["lineno"] for f in frames] == want


def test_walks_reach_the_bottom_of_the_stack():
    # nframe larger than the stack: every walk ends at _start, none is cut
    report = trace(["-n", "20", "-k", "traceback", "--", workload("nofp")])
    for chain in (CHAIN_A, CHAIN_B):
        full = [k for k in chains(report) if k[:len(chain)] == tuple(chain)]
        assert len(full) == 1, chains(report)
        assert full[0][-1] == "_start", full
    assert not cut_short(report)


def test_distinct_stacks_far_beyond_the_stack_table():
    # 40000 distinct 16-frame stacks pass through a table of 8192: the table
    # holds only what is new between two drains (~2000 in the 20 ms between
    # two looks at it, here), and the 400 live blocks keep 400 tracebacks of
    # their own
    with Tracer(["-n", "16", "--max-stacks", "8192", "-k", "traceback", "--",
                 workload("nofp"), "tree", "40000", "100"], timeout=120) as t:
        t.expect("done")
        t.signal()
    leaves = [st for st in t.report["statistics"]
              if st["frames"][0].get("function") == "alloc_block"]
    assert len(leaves) == 400
    assert all(st["count"] == 1 and st["size"] == 100 and len(st["frames"]) == 16
               for st in leaves)
    assert t.report["losses"]["native_stack_table_full"] == 0
    assert not cut_short(t.report)


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sqlite") / "rows.csv"
    rnd = random.Random(7)
    with open(path, "w") as f:
        for i in range(100000):
            f.write("%d,%s,%f\n" % (i, "x" * rnd.randint(1, 40), rnd.random()))
    return str(path)


@pytest.mark.skipif(not shutil.which("sqlite3"), reason="Debian's sqlite3 is not installed")
def test_debian_sqlite3_attached_deep_tracebacks(csv_file):
    # Debian's sqlite3 and libsqlite3 have no frame pointers; a table
    # imported while attached holds its rows' memory
    cmd = ["sqlite3", "-cmd", ".mode csv", "-cmd", "select 'ready';", ":memory:"]
    with Workload(cmd) as w:
        with Tracer(["-n", "40", "-k", "traceback"], attach=w.pid, timeout=120) as t:
            w.run(".import %s t\nselect 'done';\n" % csv_file)
            t.signal()
    report = t.report
    lib = [st for st in report["statistics"]
           if any("libsqlite3" in f["filename"] for f in st["frames"])]
    live = sum(st["count"] for st in lib)
    assert live > 1000, report["statistics"][:3]
    # every walk goes through libsqlite3 and the stripped sqlite3 executable
    # down to libc's start of main
    whole = sum(st["count"] for st in lib
                if len(st["frames"]) >= 12 and
                any("sqlite3+" in f["filename"] for f in st["frames"]) and
                any(f.get("function") == "__libc_start_call_main" for f in st["frames"]))
    assert whole >= 0.95 * live, (whole, live, lib[0])
    cut = sum(cut_short(report).values())
    assert cut <= 0.01 * sum(st["count"] for st in report["statistics"]), cut_short(report)
    assert report["losses"]["native_stack_table_full"] == 0


CXX = "cxx_o2.cc"


def test_cxx_o2_statistics_land_on_the_users_lines():
    # libstdc++'s allocator and growth code, inlined or not, is left out:
    # each statistic by line is the line of this program that asked
    lines = by_line(trace(["-n", "4", "--", workload("cxx_o2")]), CXX)
    assert lines[site(CXX, "push_back")] == (131072 * 8, 1)  # the last growth
    assert lines[site(CXX, "reserve")] == (200 * 32, 1)
    assert lines[site(CXX, "string")] == (200 * 101, 200)
    assert lines[site(CXX, "new_vector")] == (24, 1)
    assert lines[site(CXX, "new_names")] == (24, 1)
    assert lines[site(CXX, "new_array")] == (4000, 1)


def test_cxx_o2_plumbing_kept_when_asked():
    report = trace(["-n", "4", "--keep-allocator-frames", "--", workload("cxx_o2")])
    lines = by_line(report, CXX)
    assert site(CXX, "push_back") not in lines  # a libstdc++ header's line is first


RS = "vecpush.rs"


@pytest.mark.skipif(not os.path.exists(workload("vecpush")), reason="rustc not installed")
def test_rust_push_line_is_the_statistic():
    # built as cargo's release profile builds: no frame pointers; the alloc
    # shims and RawVec growth are left out
    lines = by_line(trace(["-n", "2", "--", workload("vecpush")]), RS)
    assert lines[site(RS, "rust_push")] == (64 * 8192, 64)


def test_follow_children_exec_and_fork_unwound(tmp_path):
    # --follow at nframe > 1 (it did not load before): children that exec
    # a program without frame pointers (their tables built after the exec)
    # and a forked child (its parent's table, copied at fork) are unwound
    script = tmp_path / "twice.sh"
    script.write_text("%s\n%s\n" % (workload("nofp"), workload("nofp")))
    report = trace(["--follow", "--keep-exited", "-n", "7", "-k", "traceback", "--", "sh",
                    str(script)])
    got = chains(report)
    assert got[tuple(CHAIN_A)] == (2 * 100 * 1000, 2 * 100)
    assert got[tuple(CHAIN_B)] == (2 * 30 * 3000, 2 * 30)
    report = trace(["--follow", "--keep-exited", "-n", "3", "-k", "traceback", "--",
                    workload("forker")])
    forked = [st for st in report["statistics"] if st["frames"][0]["function"] == "main"]
    assert sum(st["count"] for st in forked) == 200
    assert all(st["frames"][1]["function"] == "__libc_start_call_main" for st in forked)
