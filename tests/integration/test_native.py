"""The tracer on C and C++ workloads with known allocation sites: exact
counts and bytes per line, launch and attach modes, tracebacks, bad input."""
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from helpers import TRACER, Tracer, Workload, by_line, run_tracer, site, statistics_at, trace, workload

SRC = "native.c"

# (site, size per block, live blocks) in native.c
EXPECTED = {
    "malloc": (4096, 1000),
    "calloc": (1000, 200),
    "realloc": (65536, 1),
    "memalign": (1000, 100),
    "freed": (300, 250),
    "thread": (512, 800),
    "deep": (2048, 10),
}


def check_sites(lines):
    for name, (size, count) in EXPECTED.items():
        assert lines.get(site(SRC, name)) == (size * count, count), name


def test_launch_exact_counts():
    report = trace(["--", workload("native")])
    lines = by_line(report, SRC)
    check_sites(lines)
    assert site(SRC, "before") not in lines
    total = sum(s * c for s, c in EXPECTED.values())
    assert report["traced_memory"]["current"] >= total
    assert report["traced_memory"]["peak"] >= report["traced_memory"]["current"]
    losses = report["losses"]
    for lost in ("allocs_table_full", "native_stack_table_full", "thread_slot_unavailable",
                 "return_without_entry"):
        assert losses[lost] == 0, lost


def test_frees_remove_exactly_what_they_free():
    report = trace(["--", workload("native")])
    # 500 blocks of 300 B allocated, every second one freed
    assert by_line(report, SRC)[site(SRC, "freed")] == (250 * 300, 250)
    assert report["events"]["frees"] >= 250 + 10  # + realloc moves


def test_nframe_5_gives_callers_in_order():
    report = trace(["-n", "5", "-k", "traceback", "--", workload("native")])
    deep = statistics_at(report, SRC, site(SRC, "deep"))
    assert len(deep) == 1 and deep[0]["count"] == 10 and deep[0]["size"] == 20480
    frames = deep[0]["frames"]
    assert [f["function"] for f in frames[:4]] == ["deep_c", "deep_b", "deep_a", "main"]
    assert [f["lineno"] for f in frames[:4]] == [
        site(SRC, "deep"), site(SRC, "deep_b"), site(SRC, "deep_a"), site(SRC, "deep_main")]
    assert report["nframe"] == 5


def test_nframe_1_gives_only_the_call_site():
    report = trace(["-n", "1", "-k", "traceback", "--", workload("native")])
    for st in report["statistics"]:
        assert len(st["frames"]) == 1


def test_cumulative_counts_callers():
    report = trace(["-n", "5", "--cumulative", "--", workload("native")])
    lines = by_line(report, SRC)
    # deep_b's call line carries deep_c's 10 blocks
    assert lines[site(SRC, "deep_b")] == (20480, 10)
    assert lines[site(SRC, "deep_a")] == (20480, 10)


def test_text_report_format():
    p = run_tracer(["-t", "3", "--", workload("native")])
    out = p.stdout.splitlines()
    assert any(l.startswith("traced memory: current ") for l in out)
    # nothing lost: no lost line (its counters are all 0, as JSON says)
    assert not any(l.startswith("lost:") for l in out), out
    line = "%s:%d: size=4000 KiB, count=1000, average=4096 B" % (SRC, site(SRC, "malloc"))
    assert any(l.endswith(line) for l in out), out


def test_cxx_new_at_call_site():
    report = trace(["--", workload("cxx")])
    lines = by_line(report, "cxx.cc")
    assert lines[site("cxx.cc", "new")] == (300 * 96, 300)
    assert lines[site("cxx.cc", "new_array")] == (50 * 4000, 50)
    assert site("cxx.cc", "deleted") not in lines


def waiting_native():
    """native wait: allocates its "before" blocks, says ready, runs the
    phases on "go"."""
    return Workload([workload("native"), "wait"])


def test_attach_counts_only_later_allocations():
    with waiting_native() as w:
        with Tracer([], attach=w.pid) as t:
            w.run("go\n")
            t.signal(signal.SIGINT)
        lines = by_line(t.report, SRC)
        check_sites(lines)
        assert site(SRC, "before") not in lines
        assert t.report["target"]["pid"] == w.pid
    assert w.returncode == 0


def test_target_exit_while_traced_still_reports():
    with waiting_native() as w, Tracer([], attach=w.pid) as t:
        w.run("go\n")
        w.close()  # the workload exits; the tracer notices and reports
    check_sites(by_line(t.report, SRC))


def test_tracer_killed_leaves_target_unharmed():
    with waiting_native() as w:
        with Tracer([], attach=w.pid, check=False) as t:
            t.kill()
        w.run("go\n")
        assert w.close() == 0


def refused(args):
    """The one stderr line of a tracer that refuses args with status 2."""
    p = run_tracer(args, check=False)
    assert p.returncode == 2, (args, p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracer: "), p.stderr
    return lines[0]


def test_bad_input():
    assert "no such process" in refused(["-p", "999999999"])
    assert "invalid PID" in refused(["-p", "abc"])
    assert "-p 2 given twice" in refused(["-p", "2", "-p", "3", "-p", "2"])
    # several -p: each must be traceable, or none is traced
    assert "no such process" in refused(["-p", str(os.getpid()), "-p", "999999999"])
    assert "give one of" in refused(["-a", "-p", "1"])
    assert "choose processes for -a" in refused(["--comm", "x", "-p", "1"])
    assert "invalid --comm" in refused(["-a", "--comm", "a-name-longer-than-15"])
    assert "invalid --cgroup" in refused(["-a", "--cgroup", "relative/path"])
    assert "range [1; 127]" in refused(["-n", "0", "-p", "1"])
    assert "range [1; 127]" in refused(["-n", "128", "-p", "1"])
    assert "cannot execute" in refused(["--", "/nonexistent/program"])
    assert "unknown key_type" in refused(["-k", "bogus", "-p", "1"])
    assert "unknown format" in refused(["--format", "xml", "-p", "1"])
    assert "nothing to trace" in refused([])
    assert "cumulative mode cannot by used" in \
        refused(["-k", "traceback", "--cumulative", "-p", "1"])
    assert "invalid duration" in refused(["-d", "-1", "-p", "1"])
    # 268435456 blocks: 12.5 GiB of table, more than half of what a machine
    # of this kind (24 GiB) has available
    with open("/proc/meminfo") as f:
        avail = [int(l.split()[1]) * 1024 for l in f if l.startswith("MemAvailable:")][0]
    if 13421772960 > avail // 2:
        assert "of kernel memory for its table" in \
            refused(["--max-allocs", "268435456", "-p", "1"])


def test_bad_nframe_env():
    p = run_tracer(["-p", "1"], env=dict(os.environ, TRACER_NFRAME="0"), check=False)
    assert p.returncode == 2 and "range [1; 127]" in p.stderr


def test_exited_before_attach():
    p = subprocess.Popen(["true"])
    p.wait()
    assert "no such process" in refused(["-p", str(p.pid)])


def test_not_root():
    p = run_tracer(["-p", "1"], user=65534, check=False)
    assert p.returncode == 2 and "must run as root" in p.stderr


def other_tracers():
    """Other running instances of this tracer (by executable name)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            exe = os.readlink("/proc/%s/exe" % pid)
        except OSError:
            continue
        if os.path.basename(exe) == "tracer":
            found.append(pid)
    return found


def tracer_links():
    """BPF links whose program is one of the tracer's (by program name)."""
    ours = {"malloc_enter", "calloc_enter", "realloc_enter", "reallocarray_enter",
            "memalign_enter", "posix_memalign_enter", "free_enter_prog", "alloc_return",
            "py_malloc_enter", "py_calloc_enter", "py_realloc_enter", "py_free_enter",
            "py_track_enter", "py_untrack_enter", "follow_fork", "traced_exec",
            "py_finalize_enter", "py_site_enter", "loader_changed", "python_starting",
            "py_code_dealloc"}
    ours |= {name[:15] for name in ours}  # the kernel keeps 15 characters of a name
    progs = json.loads(subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True,
                                      text=True, check=True).stdout or "[]")
    names = {p["id"]: p.get("name") for p in progs}
    links = json.loads(subprocess.run(["bpftool", "link", "list", "-j"], capture_output=True,
                                      text=True, check=True).stdout or "[]")
    return sum(1 for l in links if names.get(l.get("prog_id")) in ours)


def test_nothing_left_attached():
    if other_tracers():
        pytest.skip("another tracer instance is running; its links would be counted")
    assert tracer_links() == 0
    trace(["--", workload("native")])
    refused(["--", "/nonexistent/program"])
    assert tracer_links() == 0


def test_follow_traces_children(tmp_path):
    script = tmp_path / "twice.sh"
    script.write_text("%s\n%s\n" % (workload("native"), workload("native")))
    # what each child held when it exited, kept
    report = trace(["--follow", "--keep-exited", "--", "sh", str(script)])
    lines = by_line(report, SRC)
    for name, (size, count) in EXPECTED.items():
        assert lines.get(site(SRC, name)) == (2 * size * count, 2 * count), name
    # by default a child that exits leaves the live set, its events stay
    report = trace(["--follow", "--", "sh", str(script)])
    assert by_line(report, SRC) == {}
    assert report["events"]["allocations"] >= 2 * sum(c for _, c in EXPECTED.values())
    # without --follow, the children are not traced
    report = trace(["--", "sh", str(script)])
    assert by_line(report, SRC) == {}


def test_follow_keeps_equal_addresses_of_two_processes_apart():
    """After fork, parent and child allocate at the same addresses; each
    process's blocks are its own."""
    report = trace(["--follow", "--keep-exited", "--", workload("forker")])
    assert by_line(report, "forker.c") == {site("forker.c", "forked"): (2 * 100 * 2048, 200)}
    # the child exited holding its 100: they leave with it
    report = trace(["--follow", "--", workload("forker")])
    assert by_line(report, "forker.c") == {site("forker.c", "forked"): (100 * 2048, 100)}
    assert report["traced_memory"]["current"] < 2 * 100 * 2048
    report = trace(["--", workload("forker")])
    assert by_line(report, "forker.c") == {site("forker.c", "forked"): (100 * 2048, 100)}


def test_full_allocs_table_is_counted():
    report = trace(["--max-allocs", "500", "--", workload("native")])
    assert report["traces"] == 500
    full = report["losses"]["allocs_table_full"]
    # every allocation the table could not hold is counted, with its bytes
    assert full > 2000
    assert report["losses"]["allocs_table_full_bytes"] > 0
    assert report["events"]["allocations"] - report["events"]["frees"] == report["traces"]


def test_interval_reports():
    p = run_tracer(["-i", "0.3", "--", "sleep", "1.2"])
    assert p.stdout.count("traced memory: current") >= 4  # 3+ periodic, 1 final


def test_static_executable():
    report = trace(["--", workload("native-static")])
    check_sites(by_line(report, SRC))


def test_python_malloc_needs_a_launch():
    assert "--python-malloc applies" in refused(["--python-malloc", "-p", "1"])


def test_threads_allocating_at_once_are_counted_exactly():
    """5 threads allocating and freeing at once (the allocation table's slots
    are claimed and released with compare-and-swap), one thread's blocks
    freed by another; also with the table sized at the peak live count, so
    that buckets fill and the overflow map takes blocks."""
    for extra in ([], ["--max-allocs", "2520"]):  # peak: 5 x 500 blocks and libc's own
        report = trace(extra + ["--", workload("threads")])
        lines = by_line(report, "threads.c")
        for k in range(4):
            assert lines.get(site("threads.c", "a%d" % k)) == ((1000 + 100 * k) * 500, 500), \
                (extra, k, lines)
        assert site("threads.c", "a4") not in lines  # freed by the main thread
        assert report["losses"]["allocs_table_full"] == 0, extra
        # current bytes, kept by the probes as they ran, match the traces left
        assert report["traced_memory"]["current"] == \
            sum(s["size"] for s in report["statistics"]), extra
        assert report["events"]["allocations"] - report["events"]["frees"] == report["traces"]


def max_rss_kib(args):
    """The tracer run to its end: (its JSON report, its peak resident set)."""
    p = subprocess.Popen([TRACER, "--format", "json", "-t", "0"] + args,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    assert p.returncode == 0
    return json.loads(out.splitlines()[-1]), usage.ru_maxrss


def test_follow_many_children_memory_stays_bounded():
    """10,000 children that exit holding blocks: every event counted, only
    the parent's blocks live, their table slots freed, and the tracer's
    memory as with 500."""
    small, rss_small = max_rss_kib(["--follow", "--", workload("spawner"), "500"])
    report, rss = max_rss_kib(["--follow", "--", workload("spawner"), "10000"])
    assert by_line(report, "spawner.c") == {site("spawner.c", "parent"): (5 * 3000, 5)}
    assert by_line(small, "spawner.c") == {site("spawner.c", "parent"): (5 * 3000, 5)}
    assert report["events"]["allocations"] >= 10000 * 10 + 5
    assert report["notes"]["blocks_of_execd_or_exited_images"] == 10000 * 10
    assert report["losses"]["process_table_full"] == 0
    assert rss - rss_small < 8 * 1024, (rss_small, rss)


CHILDREN, INDEXES = 6000, 4096


def test_follow_gives_indexes_of_exited_children_again():
    """More processes than allocation keys have indexes for: those of
    children gone come back, so a child forked after 6,000 others is traced,
    exactly, and none is counted as finding the table full. The indexes
    are limited to 4,096 ($TRACER_PROC_INDEXES; 65,536 by default, which
    70,000 children took 70 s to show, by the same code)."""
    p = subprocess.Popen([TRACER, "--format", "json", "-t", "0", "--follow", "--",
                          workload("spawner"), str(CHILDREN), "last"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, TRACER_PROC_INDEXES=str(INDEXES)))
    # the tracer would end when every process it follows has, the last child
    # after 60 s: it reports at a SIGINT once the spawner has ended (and
    # sweeps, every 0.25 s, have taken its children's indexes back)
    watchdog = threading.Timer(240, p.kill)
    watchdog.start()
    try:
        lines = []
        while not lines or not lines[-1].startswith("spawned "):
            line = p.stdout.readline()
            assert line, ("the spawner did not end", lines, p.stderr.read())
            lines.append(line)
        last = int(next(l.split()[1] for l in lines if l.startswith("last ")))
        time.sleep(1)
        p.send_signal(signal.SIGINT)
        # the report, a line; then the last child, which holds the pipe open
        out = "".join(lines) + p.stdout.readline()
        os.kill(last, signal.SIGKILL)
        rest, err = p.communicate(timeout=240)
        out += rest
    finally:
        watchdog.cancel()
    assert p.returncode == 0, err
    report = json.loads(out.splitlines()[-1])
    assert report["losses"]["process_table_full"] == 0
    assert report["notes"]["blocks_of_execd_or_exited_images"] == CHILDREN * 10
    assert report["events"]["allocations"] >= CHILDREN * 10 + 5 + 7
    assert by_line(report, "spawner.c") == {site("spawner.c", "parent"): (5 * 3000, 5),
                                            site("spawner.c", "last"): (7 * 4000, 7)}
    rows = {r["target"]["pid"]: r for r in report["processes"]}
    assert by_line(rows[last], "spawner.c") == {site("spawner.c", "last"): (7 * 4000, 7)}


@pytest.mark.parametrize("value", ["0", "65537", "4k", ""])
def test_bad_index_limit_is_refused(value):
    p = subprocess.run([TRACER, "-t", "0", "--follow", "--", "/bin/true"], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, TRACER_PROC_INDEXES=value))
    assert p.returncode == 2, p
    assert p.stderr.count("\n") == 1 and "TRACER_PROC_INDEXES" in p.stderr, p.stderr
