"""Per-site figures over the run, the peak's live set and block ages, on a
workload with known lifetimes (tests/workloads/lifetimes.c): exact counts
and bytes from the probes, through the final report, snapshot files and
'tracer stats' (--peak, --sort allocations|temporary, --older-than)."""
import json
import os
import re
import shutil
import subprocess
import struct
import zlib

import pytest

from helpers import Tracer, by_line, run_tracer, site, workload

SOURCE = "lifetimes.c"
OLD_SECONDS = 1.5  # how long the old blocks wait before the rest begins


def lines(report):
    """{site name: (size, count)} of the workload's statistics."""
    found = by_line(report, SOURCE)
    return {name: found[site(SOURCE, name)] for name in ("old", "peak", "after", "temp")
            if site(SOURCE, name) in found}


def stats(path, *args):
    return json.loads(run_tracer(["stats", path, "--format", "json", "-t", "0"]
                                 + list(args)).stdout)


@pytest.fixture(scope="module", params=[1, 8], ids=["n1", "n8"])
def run(request, tmp_path_factory):
    """One traced run (at nframe 1: sites are return addresses; at 8:
    native stack keys): the final report with --peak and its snapshot file."""
    snap = str(tmp_path_factory.mktemp("sites") / "run.snap")
    with Tracer(["-n", str(request.param), "--peak", "-o", snap, "--",
                 workload("lifetimes"), str(OLD_SECONDS)]) as t:
        t.read_until("done")
        t.end_input()
    return {"report": t.report, "snap": snap}


def test_peak_is_the_live_set_at_the_peak(run):
    r = run["report"]
    assert r["source"] == "peak"
    # at the peak: the 100 blocks of site peak and the 5 old ones; not the
    # 20 allocated after it, nor any temporary
    assert lines(r) == {"peak": (1000000, 100), "old": (15000, 5)}
    # the peak's live set is all the traced peak was made of
    assert sum(st["size"] for st in r["statistics"]) == r["traced_memory"]["all"]["peak"]
    assert stats(run["snap"], "--peak")["statistics"] == r["statistics"]


def test_allocations_over_the_run(run):
    s = stats(run["snap"], "--sort", "allocations")
    assert s["source"] == "allocations"
    assert lines(s) == {"temp": (64000, 1000), "peak": (1000000, 100), "after": (100000, 20),
                        "old": (15000, 5)}
    # the busiest first
    mine = [st["frames"][0]["lineno"] for st in s["statistics"]
            if st["frames"][0]["filename"].endswith(SOURCE)]
    assert mine == [site(SOURCE, n) for n in ("temp", "peak", "after", "old")]
    text = run_tracer(["stats", run["snap"], "--sort", "allocations", "-t", "1"]).stdout
    assert "statistics of allocations since tracing began:" in text
    assert "%s:%d: size=62.5 KiB, count=1000, average=64 B" % (SOURCE, site(SOURCE, "temp")) \
        in text


def pprof_top(profile, sample_index):
    """{lineno in lifetimes.c: flat value} of go tool pprof -top -lines."""
    go = shutil.which("go")
    if not go:
        pytest.skip("no go tool (golang-go)")
    p = subprocess.run([go, "tool", "pprof", "-top", "-lines", "-nodecount=500", "-nodefraction=0",
                        "-unit=byte",
                        "-sample_index=" + sample_index, profile], capture_output=True,
                       text=True, timeout=120,
                       env=dict(os.environ, HOME="/tmp", GOCACHE="/tmp/gocache"))
    assert p.returncode == 0, p.stderr
    # flat values: the lines that allocated (callers' lines have 0 flat)
    return {int(m.group(2)): int(m.group(1)) for m in
            re.finditer(r"^\s*(\d+)(?:B|byte)?\s.*%s:(\d+)$" % re.escape(SOURCE), p.stdout,
                        re.M) if int(m.group(1))}


def test_pprof_alloc_and_inuse_sample_types(run, tmp_path):
    """Go's heap profile's four sample types, read by the real go tool pprof:
    alloc_* every block allocated since tracing began (a site whose blocks
    are all freed included), inuse_* the live set."""
    prof = str(tmp_path / "heap.pb.gz")
    run_tracer(["stats", run["snap"], "--format", "pprof", "-o", prof])
    at = {name: site(SOURCE, name) for name in ("old", "peak", "after", "temp")}
    assert pprof_top(prof, "alloc_objects") == {at["temp"]: 1000, at["peak"]: 100,
                                                at["after"]: 20, at["old"]: 5}
    assert pprof_top(prof, "alloc_space") == {at["peak"]: 1000000, at["after"]: 100000,
                                              at["temp"]: 64000, at["old"]: 15000}
    assert pprof_top(prof, "inuse_space") == {at["after"]: 100000, at["old"]: 15000}
    assert pprof_top(prof, "inuse_objects") == {at["after"]: 20, at["old"]: 5}


def test_temporaries(run):
    # every temp block; of the peak's, the last allocated, freed first
    # before any other allocation of the thread
    s = stats(run["snap"], "--sort", "temporary")
    assert lines(s) == {"temp": (64000, 1000), "peak": (10000, 1)}


def test_live_statistics_carry_every_figure(run):
    s = stats(run["snap"])
    assert lines(s) == {"after": (100000, 20), "old": (15000, 5)}
    by = {st["frames"][0]["lineno"]: st for st in s["statistics"]
          if st["frames"][0]["filename"].endswith(SOURCE)}
    after, old = by[site(SOURCE, "after")], by[site(SOURCE, "old")]
    assert after["allocations"] == {"size": 100000, "count": 20}
    assert after["temporary"] == {"size": 0, "count": 0}
    assert after["peak"] == {"size": 0, "count": 0}
    assert old["peak"] == {"size": 15000, "count": 5}
    # ages: the old blocks waited OLD_SECONDS (to the 4.2 ms the probes keep)
    assert old["max_age_ns"] >= OLD_SECONDS * 1e9 - 5e6
    assert after["max_age_ns"] < OLD_SECONDS * 1e9


def test_older_than_keeps_exactly_the_old_blocks(run):
    s = stats(run["snap"], "--older-than", str(OLD_SECONDS / 2), "--include", "*" + SOURCE)
    assert lines(s) == {"old": (15000, 5)}
    assert s["older_than_ns"] == int(OLD_SECONDS / 2 * 1e9)
    # every block is younger than a minute
    s = stats(run["snap"], "--older-than", "60")
    assert s["statistics"] == []


def test_old_files_load_and_say_what_they_lack(run, tmp_path):
    """A file without the sites and trace ages sections (as a tracer before
    them wrote it: the reader skips ids it does not know) loads; --peak,
    --sort allocations and --older-than say in one line that it lacks them."""
    data = bytearray(open(run["snap"], "rb").read())
    nsec = struct.unpack_from("<I", data, 12)[0]
    for i in range(nsec):
        if struct.unpack_from("<I", data, 48 + 24 * i)[0] in (11, 12):
            struct.pack_into("<I", data, 48 + 24 * i, 90 + i)
    struct.pack_into("<I", data, 24, 0)
    struct.pack_into("<I", data, 24, zlib.crc32(bytes(data)))
    old = str(tmp_path / "old.snap")
    with open(old, "wb") as f:
        f.write(data)
    assert lines(stats(old)) == {"after": (100000, 20), "old": (15000, 5)}
    for args in (["--peak"], ["--sort", "allocations"], ["--older-than", "1"]):
        p = run_tracer(["stats", old] + args, check=False)
        assert p.returncode == 2, args
        assert p.stdout == ""
        assert len(p.stderr.splitlines()) == 1 and "older tracer" in p.stderr, p.stderr


@pytest.mark.parametrize("args", [["--older-than", "-1"], ["--older-than", "x"],
                                  ["--sort", "bogus"], ["--sort", "peak"],
                                  ["--peak", "--sort", "allocations"],
                                  ["--sort", "allocations", "--format", "pprof"]])
def test_bad_options(run, args):
    p = run_tracer(["stats", run["snap"]] + args, check=False)
    assert p.returncode == 2
    assert len(p.stderr.splitlines()) == 1


def test_python_peak():
    """A list of 1000 bytes objects of 10000 B that peaks and is freed:
    --peak shows its line with the 1000 objects (10033 B each: the bytes
    and its object header), the list's array beside them."""
    import glob
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12.*/bin/python3.12")))
    if not found:
        pytest.skip("no CPython 3.12 on this machine (pyenv)")
    source = os.path.join(os.path.dirname(__file__), "..", "workloads", "py_peak.py")
    with Tracer(["--peak", "--", found[-1], source]) as t:
        t.read_until("done")
        t.end_input()
    peak = by_line(t.report, "py_peak.py")
    size, count = peak[site("py_peak.py", "peak")]
    assert count >= 1000 and size >= 1000 * 10033
    assert size - 1000 * 10033 < 16384  # the list's array, a few reallocs of it
    assert site("py_peak.py", "after") not in peak


def test_reset_peak_makes_the_live_set_the_peak():
    """SIGUSR2 (tracemalloc's reset_peak()) after the peak: the peak's live
    set becomes the live set of that moment, without the 100 blocks."""
    import signal
    import time
    with Tracer(["--peak", "--", workload("lifetimes"), "0.1"]) as t:
        t.read_until("done")
        t.signal(signal.SIGUSR2)
        time.sleep(1)  # the session applies it within its next turn
        t.end_input()
    assert lines(t.report) == {"after": (100000, 20), "old": (15000, 5)}
    assert sum(st["size"] for st in t.report["statistics"]) == \
        t.report["traced_memory"]["all"]["peak"]


def test_follow_keeps_each_process_sites():
    """--follow --keep-exited: parent and child allocate 100 blocks each at
    the same site (and the same addresses); each process keeps its own
    sites, added up, and each its own peak. Without --keep-exited the
    child's sites leave with it, as its blocks do."""
    from helpers import trace
    forked = site("forker.c", "forked")
    for keep, n in ((["--keep-exited"], 200), ([], 100)):
        report = trace(["--follow"] + keep + ["--sort", "allocations", "--",
                                              workload("forker")])
        assert by_line(report, "forker.c")[forked] == (n * 2048, n), keep
        report = trace(["--follow"] + keep + ["--peak", "--", workload("forker")])
        assert by_line(report, "forker.c")[forked] == (n * 2048, n), keep
