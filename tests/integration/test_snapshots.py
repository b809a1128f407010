"""Snapshot files from real tracing: a series written with -i and %n,
'tracer stats' giving back exactly the live report, 'tracer compare' giving
exactly the growth the workload made, without root, and bad files refused
with one line and exit status 2."""
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from helpers import (Tracer, by_line, pprof_raw_samples, run_tracer, site, statistics_at,
                     workload)

SOURCE = "phases.c"


def stats_json(args, user=None):
    """The JSON report of tracer stats or compare (--format json -t 0); as
    that uid with user (they need neither root nor BPF)."""
    return json.loads(run_tracer(args + ["--format", "json", "-t", "0"], user=user).stdout)


def series_numbers(pattern_dir):
    return sorted(int(re.search(r"snap-(\d+)\.snap$", p).group(1))
                  for p in glob.glob(os.path.join(pattern_dir, "snap-*.snap")))


def wait_for_snapshot(d, number, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if series_numbers(d) and series_numbers(d)[-1] >= number:
            return
        time.sleep(0.05)
    raise AssertionError("snapshot %d never written" % number)


def snapshot_after_now(d):
    """The number of a snapshot taken wholly after this moment: the one
    being taken now may have read the maps already, the one after cannot."""
    known = series_numbers(d)
    target = (known[-1] if known else 0) + 2
    wait_for_snapshot(d, target)
    return target


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """One traced run of the phases workload: snapshot numbers after phase 1
    and after phase 2, the final report, and the late block's address."""
    d = str(tmp_path_factory.mktemp("series"))
    with Tracer(["-i", "0.2", "-o", os.path.join(d, "snap-%n.snap"), "-n", "3", "--",
                 workload("phases")]) as t:
        t.read_until("ready")
        t.say("1\n")
        t.read_until("done")
        after1 = snapshot_after_now(d)
        t.say("2\n")
        address = t.read_until("done").split()[1]
        after2 = snapshot_after_now(d)
        t.end_input()  # the workload ends: the final report, the last file
    last = series_numbers(d)[-1]
    # the report printed at the workload's end, from the snapshot the last
    # file holds (a report printed just after "done" may have read the maps
    # while phase 2 still ran)
    return {"dir": d, "after1": after1, "after2": after2, "last": last,
            "final": t.last_report,
            "address": address}


def snap(series, n):
    return os.path.join(series["dir"], "snap-%d.snap" % n)


def test_series_files_are_numbered_and_private(series):
    numbers = series_numbers(series["dir"])
    assert numbers == list(range(1, series["last"] + 1))
    for n in numbers:
        assert os.stat(snap(series, n)).st_mode & 0o777 == 0o600
    # no temporary file left behind by the atomic writes
    assert sorted(os.listdir(series["dir"])) == sorted("snap-%d.snap" % n for n in numbers)


@pytest.mark.parametrize("key,cumulative", [("lineno", False), ("lineno", True),
                                            ("filename", False), ("filename", True),
                                            ("traceback", False)])
def test_stats_of_the_last_file_is_the_live_report(series, key, cumulative):
    """The last snapshot file holds what the final report showed; read as
    nobody from a copy, since stats needs no privileges."""
    d = tempfile.mkdtemp()
    try:
        copy = os.path.join(d, "last.snap")
        shutil.copy(snap(series, series["last"]), copy)
        os.chmod(copy, 0o644)
        os.chmod(d, 0o755)
        args = ["stats", copy, "-k", key]
        if cumulative:
            args.append("--cumulative")
        from_file = stats_json(args, user=65534)
    finally:
        shutil.rmtree(d)
    live = series["final"]
    if key == "lineno" and not cumulative:
        assert from_file["statistics"] == live["statistics"]
        assert from_file["traced_memory"] == live["traced_memory"]
        assert from_file["losses"] == live["losses"]
        assert from_file["notes"] == live["notes"]
        assert from_file["nframe"] == 3
    lines = by_line(from_file, SOURCE)
    grow, late = site(SOURCE, "grow"), site(SOURCE, "late")
    if key == "traceback":
        callers = sorted((st["frames"][1]["function"], st["count"])
                         for st in statistics_at(from_file, SOURCE, grow))
        assert callers == [("phase1", 100), ("phase2", 300)]
    elif key != "filename":
        assert lines[grow] == (400 * 1000, 400)
        assert lines[late] == (20 * 4096, 20)
        assert site(SOURCE, "temp") not in lines


def between_phases(series):
    return ["compare", snap(series, series["after1"]), snap(series, series["after2"])]


def test_compare_gives_the_growth_between_phases(series):
    out = stats_json(between_phases(series))
    grow, temp, late = site(SOURCE, "grow"), site(SOURCE, "temp"), site(SOURCE, "late")
    got = by_line(out, SOURCE,
                  value=lambda s: (s["size"], s["size_diff"], s["count"], s["count_diff"]))
    assert got == {grow: (400000, 300000, 400, 300),
                   temp: (0, -50 * 4096, 0, -50),
                   late: (20 * 4096, 20 * 4096, 20, 20)}
    # tracemalloc's order: abs(size_diff) first
    order = [s["frames"][0]["lineno"] for s in out["statistics"]
             if s["frames"][0]["filename"].endswith(SOURCE)]
    assert order == [grow, temp, late]


def test_compare_text_is_statisticdiff(series):
    p = run_tracer(between_phases(series) + ["-t", "3"])
    diffs = [l for l in p.stdout.splitlines() if SOURCE + ":" in l]
    assert diffs[0].endswith("%s:%d: size=391 KiB (+293 KiB), count=400 (+300), average=1000 B"
                             % (SOURCE, site(SOURCE, "grow")))
    assert diffs[1].endswith("%s:%d: size=0 B (-200 KiB), count=0 (-50)"
                             % (SOURCE, site(SOURCE, "temp")))


def test_compare_cumulative_counts_the_caller(series):
    size_diffs = by_line(stats_json(between_phases(series) + ["--cumulative"]), SOURCE,
                         value=lambda s: s["size_diff"])
    # phase2() calls add_grow(300) and mallocs the late blocks itself
    phase2_call = [l for l in size_diffs if size_diffs[l] == 300000 + 20 * 4096]
    assert len(phase2_call) == 1


def test_address_gives_the_block_traceback(series):
    addr = int(series["address"], 16)
    p = run_tracer(["stats", snap(series, series["last"]), "--address", hex(addr + 100)])
    first, *frames = p.stdout.splitlines()
    assert first == "%s: offset 100 in a block of 4096 B (4096 B) at %s, domain libc, " \
                    "allocated at:" % (hex(addr + 100), hex(addr))
    assert frames[0].startswith('  File "') and \
        frames[0].endswith('%s", line %d, in phase2' % (SOURCE, site(SOURCE, "late")))
    p = run_tracer(["stats", snap(series, series["last"]), "--address", "0x10"], check=False)
    assert p.returncode == 1
    assert p.stdout == "0x10: no traced block holds this address\n"


def test_bad_files_get_one_line_and_status_2(series, tmp_path):
    good = open(snap(series, series["last"]), "rb").read()
    cases = {
        "truncated.snap": (good[:len(good) // 2], "truncated: the header says"),
        "empty.snap": (b"", "not a tracer snapshot"),
        "text.snap": (b"hello\n" * 100, "not a tracer snapshot"),
        "flipped.snap": (good[:200] + bytes([good[200] ^ 1]) + good[201:], "checksum mismatch"),
        "newer.snap": (good[:8] + (7).to_bytes(4, "little") + good[12:],
                       "version 7 is newer than this tracer's"),
    }
    for name, (data, message) in cases.items():
        path = str(tmp_path / name)
        with open(path, "wb") as f:
            f.write(data)
        for cmd in (["stats", path], ["compare", path, snap(series, 1)],
                    ["compare", snap(series, 1), path]):
            p = run_tracer(cmd, check=False)
            assert p.returncode == 2, (name, p.stderr)
            assert p.stdout == ""
            assert p.stderr.count("\n") == 1 and message in p.stderr, (name, p.stderr)
            assert p.stderr.startswith("tracer: %s: " % path)
    for args, message in [(["stats"], "one snapshot file"),
                          (["stats", "/nonexistent.snap"], "No such file"),
                          (["compare", snap(series, 1)], "two snapshot files"),
                          (["stats", snap(series, 1), "-n", "3"], "applies to tracing"),
                          (["stats", snap(series, 1), "--python-free-lists"],
                           "--python-free-lists applies to tracing"),
                          (["stats", snap(series, 1), "--address", "zz"], "invalid address"),
                          (["compare", snap(series, 1), snap(series, 1), "--address", "1"],
                           "--address applies to"),
                          (["stats", snap(series, 1), "-k", "traceback", "--cumulative"],
                           "cumulative mode cannot by used")]:
        p = run_tracer(args, check=False)
        assert p.returncode == 2, args
        assert p.stderr.count("\n") == 1 and message in p.stderr, (args, p.stderr)


def test_bad_output_name_is_refused_before_tracing():
    p = run_tracer(["-o", "snap-%q.snap", "--", workload("phases")], check=False)
    assert p.returncode == 2
    assert "invalid output file name 'snap-%q.snap'" in p.stderr


def test_unwritable_output_is_refused_before_tracing(tmp_path):
    p = run_tracer(["-o", str(tmp_path / "no" / "such" / "dir.snap"), "--", workload("phases")],
                   input="", check=False)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1, p.stderr
    assert "cannot save snapshots" in p.stderr and "No such file or directory" in p.stderr
    assert "ready" not in p.stdout  # the command never ran


def filtered(series, *args):
    out = stats_json(["stats", snap(series, series["last"])] + list(args))
    return {(st["frames"][0]["filename"].rsplit("/", 1)[-1], st["frames"][0]["lineno"]):
            (st["size"], st["count"]) for st in out["statistics"]}


def test_filters_on_a_saved_snapshot(series):
    grow, late = site(SOURCE, "grow"), site(SOURCE, "late")
    everything = filtered(series)
    assert everything[(SOURCE, grow)] == (400000, 400)
    assert filtered(series, "--include", "*/" + SOURCE) == \
        {(SOURCE, grow): (400000, 400), (SOURCE, late): (81920, 20)}
    assert filtered(series, "--include", "*/%s:%d" % (SOURCE, late)) == \
        {(SOURCE, late): (81920, 20)}
    rest = filtered(series, "--exclude", "*/" + SOURCE)
    assert rest and all(f != SOURCE for f, _ in rest)
    assert len(rest) + 2 == len(everything)
    # the call of add_grow(300) in phase2() is the second frame of 300 blocks
    call = site(SOURCE, "grow_call")
    assert filtered(series, "--include", "*/%s:%d" % (SOURCE, call)) == {}
    assert filtered(series, "--include", "*/%s:%d" % (SOURCE, call), "--all-frames") == \
        {(SOURCE, grow): (300000, 300)}
    assert filtered(series, "--exclude", "*/%s:%d" % (SOURCE, call), "--all-frames",
                    "--include", "*/" + SOURCE) == \
        {(SOURCE, grow): (100000, 100), (SOURCE, late): (81920, 20)}
    # a C program allocates in the libc domain only
    assert filtered(series, "--domain", "libc") == everything
    assert filtered(series, "--domain", "python") == {}
    assert filtered(series, "--exclude-domain", "libc") == {}
    # --domain restricts before the includes are combined
    assert filtered(series, "--domain", "python", "--include", "*") == {}


def test_filters_on_compare(series):
    out = stats_json(between_phases(series) +
                     ["--include", "*/%s:%d" % (SOURCE, site(SOURCE, "temp"))])
    assert [(s["size_diff"], s["count_diff"]) for s in out["statistics"]] == [(-204800, -50)]


def test_filters_on_live_reports_leave_the_file_whole(tmp_path):
    path = str(tmp_path / "whole.snap")
    with Tracer(["-o", path, "--include", "*/%s:%d" % (SOURCE, site(SOURCE, "late")), "--",
                 workload("phases")]) as t:
        t.say("1\n2\n")
        t.end_input()
    live = t.report
    assert [(s["frames"][0]["lineno"], s["count"]) for s in live["statistics"]] == \
        [(site(SOURCE, "late"), 20)]
    whole = stats_json(["stats", path])
    assert sum(s["count"] for s in whole["statistics"]) > 20 + 400 - 1


def test_bad_filters():
    for args, message in [(["--include", ""], "invalid filter ''"),
                          (["--exclude", "a.c:0"], "invalid filter 'a.c:0'"),
                          (["--domain", "heap"], "unknown domain 'heap'"),
                          (["--all-frames"], "--all-frames applies to")]:
        p = run_tracer(["stats", "/nonexistent"] + args, check=False)
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and message in p.stderr, \
            (args, p.stderr)


GO = shutil.which("go")


def pprof_file(series, tmp_path, *args):
    out = str(tmp_path / "heap.pb.gz")
    run_tracer(["stats", snap(series, series["last"]), "--format", "pprof", "-o", out] +
               list(args))
    return out


def go_pprof(*args):
    p = subprocess.run([GO, "tool", "pprof"] + list(args), capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, HOME="/tmp", GOCACHE="/tmp/gocache"))
    assert p.returncode == 0, p.stderr
    return p.stdout


def total(series, key):
    out = stats_json(["stats", snap(series, series["last"]), "-k", "traceback"])
    return sum(s[key] for s in out["statistics"])


@pytest.mark.skipif(not GO, reason="go tool pprof missing (Debian golang-go)")
def test_pprof_is_read_by_go_tool_pprof(series, tmp_path):
    path = pprof_file(series, tmp_path)
    with open(path, "rb") as f:
        assert f.read(2) == b"\x1f\x8b"  # gzip
    top = go_pprof("-top", "-lines", "-sample_index=inuse_objects", "-nodecount=1000", path)
    flat = {}
    for line in top.splitlines():
        m = re.match(r"\s*(\d+)\s+\S+%\s+\S+%\s+(\d+)\s+\S+%\s+(\S+) (\S+):(\d+)$", line)
        if m:
            flat[(m.group(3), m.group(4).rsplit("/", 1)[-1], int(m.group(5)))] = \
                (int(m.group(1)), int(m.group(2)))
    assert flat[("add_grow", SOURCE, site(SOURCE, "grow"))] == (400, 400)
    assert flat[("phase2", SOURCE, site(SOURCE, "late"))] == (20, 20)
    # callers are cumulative only
    assert flat[("phase2", SOURCE, site(SOURCE, "grow_call"))] == (0, 300)
    # the raw samples add up to the snapshot, bytes and objects
    raw = go_pprof("-raw", path)
    samples = pprof_raw_samples(raw)
    assert sum(v["inuse_objects"] for v, _, _ in samples) == total(series, "count")
    assert sum(v["inuse_space"] for v, _, _ in samples) == total(series, "size")
    # every block allocated since tracing began: the live ones and more
    assert sum(v["alloc_objects"] for v, _, _ in samples) >= total(series, "count")
    assert "inuse_objects/count inuse_space/bytes[dflt]" in raw
    assert "domain:[libc]" in raw


@pytest.mark.skipif(not GO, reason="go tool pprof missing (Debian golang-go)")
def test_pprof_of_a_filtered_snapshot(series, tmp_path):
    path = pprof_file(series, tmp_path, "--include", "*/%s:%d" % (SOURCE, site(SOURCE, "late")))
    raw = go_pprof("-raw", path)
    samples = [(v["inuse_objects"], v["inuse_space"]) for v, _, _ in pprof_raw_samples(raw)]
    assert samples == [(20, 81920)]


def test_collapsed_sums_to_the_snapshot(series):
    path = snap(series, series["last"])
    # with --collapsed-lines, frames as "function (file:line)"
    out = run_tracer(["stats", path, "--format", "collapsed", "--collapsed-lines"]).stdout
    lines = out.splitlines()
    assert lines == sorted(lines)
    assert sum(int(l.rsplit(" ", 1)[1]) for l in lines) == total(series, "size")
    grow = [l for l in lines if l.endswith("add_grow (%s:%d) 300000" % (
        os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
                     "tests", "workloads", SOURCE), site(SOURCE, "grow")))]
    assert len(grow) == 1 and ";phase2 (" in grow[0], lines
    # by default by function: the same bytes, one frame per function
    lines = run_tracer(["stats", path, "--format", "collapsed"]).stdout.splitlines()
    assert lines == sorted(lines)
    assert sum(int(l.rsplit(" ", 1)[1]) for l in lines) == total(series, "size")
    grow = [l for l in lines if l.endswith(";add_grow 300000")]
    assert len(grow) == 1 and ";phase2;" in grow[0], lines


def test_pprof_and_collapsed_need_stats():
    p = run_tracer(["--format", "pprof", "--", workload("phases")], check=False)
    assert p.returncode == 2 and "applies to 'tracer stats FILE'" in p.stderr
