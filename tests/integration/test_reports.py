"""What the text and JSON reports say, on real runs: losses apart from
notes (text: the nonzero ones in words; JSON: every one by an identifier
key, documented in README.md's table), traceback statistics titled by the
program's own line rather than libc's startup, glibc's source paths
normalised, collapsed stacks by function with exact sums and a [cut] root
for cut stacks, and colour only where asked or on a terminal (tmux)."""
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from helpers import ROOT, SOURCES, run_tracer, site, trace, workload

NATIVE = os.path.join(SOURCES, "native.c")
NOFP = os.path.join(SOURCES, "nofp.c")
IDENT = re.compile(r"^[a-z0-9_]+$")


def readme_counters():
    """{key: kind} of README.md's table of counters."""
    table = {}
    with open(os.path.join(ROOT, "README.md")) as f:
        for line in f:
            m = re.match(r"^\s*\| `([a-z0-9_]+)` \| (loss|note) \|", line)
            if m:
                table[m.group(1)] = m.group(2)
    return table


def keys(doc):
    """Every object key of a JSON document."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield k
            yield from keys(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from keys(v)


def format_size(size):
    """tracemalloc's _format_size (no sign)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 100 and unit != "B":
            return "%.1f %s" % (size, unit)
        if abs(size) < 10 * 1024 or unit == "GiB":
            return "%.0f %s" % (size, unit)
        size /= 1024


def stats_json(path, *args):
    return json.loads(run_tracer(["stats", path, "--format", "json", "-t", "0"] +
                                 list(args)).stdout)


def test_losses_and_notes(tmp_path):
    snap = str(tmp_path / "full.snap")
    text = run_tracer(["--max-allocs", "500", "-t", "3", "-o", snap, "--",
                       workload("native")]).stdout.splitlines()
    report = stats_json(snap)
    losses, notes = report["losses"], report["notes"]
    assert "counters" not in report
    # JSON: every key an identifier, every counter in README's table with
    # its kind, zero or not
    assert all(IDENT.match(k) for k in keys(report)), sorted(set(keys(report)))
    table = readme_counters()
    assert {k: "loss" for k in losses} == {k: table.get(k) for k in losses}
    assert {k: "note" for k in notes} == {k: table.get(k) for k in notes}
    assert losses["return_without_entry"] == 0 and "failed_allocations" in notes
    full, full_bytes = losses["allocs_table_full"], losses["allocs_table_full_bytes"]
    assert full > 2000 and full_bytes > 0
    # text: only the nonzero ones, in words, the lost bytes beside the count
    lost = [l for l in text if l.startswith("lost:")]
    assert lost == ["lost: %d allocations (%s) not traced (allocation table full: "
                    "--max-allocs)" % (full, format_size(full_bytes))], text
    noted = [l for l in text if l.startswith("notes:")]
    assert noted == ["notes: %d frees of blocks not traced (ignored)" %
                     notes["frees_of_untraced_blocks"]], text
    assert not [k for k, v in losses.items() if v and k not in
                ("allocs_table_full", "allocs_table_full_bytes")], losses


def test_lost_lines_wrap_and_name_every_loss(tmp_path):
    # a full allocation table and a full stack table (one new stack kept
    # between two drains) at nframe 8: each nonzero loss named in words,
    # wrapped at 100 columns under the label
    snap = str(tmp_path / "n8.snap")
    text = run_tracer(["-n", "8", "--max-allocs", "500", "--max-stacks", "1", "-t", "1",
                       "-o", snap, "--", workload("native")]).stdout.splitlines()
    losses = stats_json(snap)["losses"]
    assert losses["allocs_table_full"] > 2000 and losses["native_stack_table_full"] > 0, losses
    start = next(i for i, l in enumerate(text) if l.startswith("lost:"))
    end = next(i for i, l in enumerate(text) if l.startswith(("notes:", "top ")))
    block = text[start:end]
    assert len(block) >= 2, block
    assert all(len(l) <= 100 for l in block) and all(l.startswith("      ")
                                                     for l in block[1:]), block
    words = " ".join(l.strip() for l in block)
    # a full table's bytes are said beside its count, not as an item
    nonzero = {k: v for k, v in losses.items() if v and k != "allocs_table_full_bytes"}
    assert len(re.findall(r"(?:^lost:|,) \d+ ", words)) == len(nonzero), (words, nonzero)
    assert "%d native stacks kept as their call site only (stack table full: --max-stacks)" % \
        losses["native_stack_table_full"] in words, words
    assert words.startswith("lost: %d allocations (%s) not traced" % (
        losses["allocs_table_full"], format_size(losses["allocs_table_full_bytes"]))), words


def titles(text):
    """The statistic lines of a traceback report (not its frames)."""
    lines = text.splitlines()
    first = next(i for i, l in enumerate(lines) if l.startswith("top "))
    return [l for l in lines[first + 1:] if not l.startswith(" ")]


def test_native_traceback_titles_are_the_programs_lines():
    text = run_tracer(["-n", "8", "-k", "traceback", "-t", "0", "--",
                       workload("native")]).stdout
    got = titles(text)
    for name, size in (("malloc", "size=4000 KiB, count=1000, average=4096 B"),
                       ("calloc", "size=195 KiB, count=200, average=1000 B"),
                       ("memalign", "size=97.7 KiB, count=100, average=1000 B"),
                       ("realloc", "size=64.0 KiB, count=1, average=64.0 KiB"),
                       ("deep", "size=20.0 KiB, count=10, average=2048 B")):
        assert "%s:%d: %s" % (NATIVE, site("native.c", name), size) in got, got
    # the threads' statistics (split where some walks were cut) are theirs
    thread = [l for l in got if l.startswith("%s:%d: " % (NATIVE, site("native.c", "thread")))]
    assert sum(int(re.search(r"count=(\d+)", l).group(1)) for l in thread) == 800, got
    # no statistic of the workload is titled by libc's startup
    assert not [l for l in got if "libc_start" in l or "_start+" in l], got


def test_json_title_frame_is_the_most_recent_frame_of_the_program():
    report = trace(["-n", "8", "-k", "traceback", "--", workload("native")])
    sites = {site("native.c", name) for name in
             ("malloc", "calloc", "memalign", "realloc", "freed", "thread", "deep")}
    mine = 0
    for st in report["statistics"]:
        frames = st["frames"]
        own = [i for i, f in enumerate(frames) if f["filename"] == NATIVE]
        if own:
            assert st["title_frame"] == own[0], st
            if frames[own[0]]["lineno"] in sites:
                mine += st["count"]
        else:
            assert st["title_frame"] == len(frames) - 1, st  # the oldest
    # every block the workload's sites keep is under a title of its own line
    assert mine == 1000 + 200 + 100 + 1 + 250 + 800 + 10


def test_titles_without_frame_pointers():
    text = run_tracer(["-n", "8", "-k", "traceback", "-t", "0", "--",
                       workload("nofp")]).stdout
    got = titles(text)
    alloc = "%s:%d: " % (NOFP, site("nofp.c", "alloc"))
    assert alloc + "size=97.7 KiB, count=100, average=1000 B" in got, got
    assert alloc + "size=87.9 KiB, count=30, average=3000 B" in got, got


def test_glibc_source_paths_are_normalised():
    report = trace(["-n", "8", "-k", "traceback", "--", workload("native")])
    files = {f["filename"] for st in report["statistics"] for f in st["frames"]}
    # Debian's glibc: "./csu/../csu/libc-start.c" before
    assert "csu/libc-start.c" in files and "sysdeps/nptl/libc_start_call_main.h" in files, files
    for f in files:
        assert not f.startswith("./") and "/./" not in f, f
        assert f.startswith("/") or "/../" not in f, f


def collapsed(path, *args):
    out = run_tracer(["stats", path, "--format", "collapsed"] + list(args)).stdout
    stacks = {}
    for line in out.splitlines():
        stack, n = line.rsplit(" ", 1)
        assert stack not in stacks, line
        stacks[stack] = int(n)
    return stacks


def test_collapsed_by_function(tmp_path):
    snap = str(tmp_path / "n8.snap")
    run_tracer(["-n", "8", "-t", "0", "-o", snap, "--", workload("native")])
    stacks = collapsed(snap)
    live = sum(st["size"] for st in stats_json(snap)["statistics"])
    assert sum(stacks.values()) == live
    main = "_start;__libc_start_main@@GLIBC_2.34;__libc_start_call_main;main;"
    for leaf, size in (("alloc_malloc", 1000 * 4096), ("alloc_calloc", 200 * 1000),
                       ("alloc_memalign", 100 * 1000), ("alloc_realloc", 65536),
                       ("alloc_and_free", 250 * 300), ("deep_a;deep_b;deep_c", 10 * 2048)):
        assert stacks.get(main + leaf) == size, stacks
    # a function is one box: no frame carries a line or an offset
    for stack in stacks:
        for frame in stack.split(";"):
            assert not re.search(r":\d+$|\+0x[0-9a-f]+$|\(", frame), stack
    # every stack starts where a program or a thread starts, or at [cut]
    roots = {s.split(";")[0] for s in stacks}
    assert roots <= {"[cut]", "_start", "__clone3", "clone3", "__clone", "clone"}, roots
    thread = {s: n for s, n in stacks.items() if s.endswith(";start_thread;thread_main")}
    assert sum(thread.values()) == 8 * 100 * 512, stacks
    # with lines: the same bytes, the site's line in its frame
    lines = collapsed(snap, "--collapsed-lines")
    assert sum(lines.values()) == live
    site_malloc = "alloc_malloc (%s:%d)" % (NATIVE, site("native.c", "malloc"))
    assert sum(n for s, n in lines.items() if s.endswith(site_malloc)) == 1000 * 4096


def test_collapsed_cut_at_nframe_has_a_cut_root(tmp_path):
    snap = str(tmp_path / "n3.snap")
    run_tracer(["-n", "3", "-o", snap, "--", workload("nofp")])
    stacks = collapsed(snap)
    # alloc_block <- a5 <- a4: cut at 3 frames, below main
    assert stacks["[cut];a4;a5;alloc_block"] == 100 * 1000, stacks
    assert stacks["[cut];b4;b5;alloc_block"] == 30 * 3000, stacks
    assert all(s.startswith("[cut];") for s in stacks), stacks


def test_collapsed_lines_needs_collapsed(tmp_path):
    p = run_tracer(["stats", "x.snap", "--collapsed-lines"], check=False)
    assert p.returncode == 2 and "--collapsed-lines applies to --format collapsed" in p.stderr
    p = run_tracer(["--color=sometimes", "-p", "1"], check=False)
    assert p.returncode == 2 and "invalid --color 'sometimes'" in p.stderr


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("color") / "native.snap")
    run_tracer(["-o", path, "--", workload("native")])
    os.chmod(os.path.dirname(path), 0o755)
    return path


def test_color_only_when_asked_or_on_a_terminal(snapshot):
    plain = run_tracer(["stats", snapshot, "-t", "2"]).stdout
    assert "\x1b" not in plain  # a pipe
    assert "\x1b" not in run_tracer(["stats", snapshot, "-t", "2", "--color=never"]).stdout
    colored = run_tracer(["stats", snapshot, "-t", "2", "--color=always"]).stdout
    assert "\x1b[1mtop 2 lineno statistics:\x1b[0m" in colored
    assert re.sub(r"\x1b\[[0-9;]*m", "", colored) == plain
    # JSON is never coloured
    assert "\x1b" not in run_tracer(["stats", snapshot, "--format", "json",
                                     "--color=always"]).stdout


@pytest.mark.skipif(not shutil.which("tmux"), reason="tmux missing")
def test_color_auto_on_a_terminal(snapshot, tmp_path):
    session = "tracer-color-%d" % os.getpid()
    out_file = str(tmp_path / "report.txt")

    def pane(command, env=""):
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50",
                        "%s %s; echo END; sleep 30" % (env, command)], check=True)
        try:
            deadline = time.time() + 20
            while time.time() < deadline:
                shown = subprocess.run(["tmux", "capture-pane", "-e", "-p", "-t", session],
                                       capture_output=True, text=True, check=True).stdout
                if "END" in shown:
                    return shown
                time.sleep(0.1)
            raise AssertionError("tracer did not finish in tmux: " + shown)
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], check=False)

    tracer = os.path.join(ROOT, "build", "tracer")
    shown = pane("%s stats %s -t 2" % (tracer, snapshot), "env -u NO_COLOR TERM=xterm")
    assert "\x1b[1mtop 2 lineno statistics:" in shown, shown
    assert "size=\x1b[1m4000 KiB" in shown, shown
    assert "\x1b[1m" not in pane("%s stats %s -t 2" % (tracer, snapshot),
                                 "env NO_COLOR=1 TERM=xterm")
    # a report written to a file is never coloured, even from a terminal
    pane("%s stats %s -t 2 -o %s" % (tracer, snapshot, out_file), "env -u NO_COLOR TERM=xterm")
    with open(out_file) as f:
        written = f.read()
    assert "top 2 lineno statistics:" in written and "\x1b" not in written
