"""The tracer on C and C++ workloads with known allocation sites: exact
counts and bytes per line, launch and attach modes, tracebacks, bad input."""
import json
import os
import signal
import subprocess
import time

from conftest import by_line, run_tracer, site, trace_json, workload, TRACER

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
    report, _ = trace_json(["--", workload("native")])
    lines = by_line(report, SRC)
    check_sites(lines)
    assert site(SRC, "before") not in lines
    total = sum(s * c for s, c in EXPECTED.values())
    assert report["traced_memory"]["current"] >= total
    assert report["traced_memory"]["peak"] >= report["traced_memory"]["current"]
    counters = report["counters"]
    for lost in ("allocs table full", "stack table full or collision", "thread slot unavailable",
                 "return without entry"):
        assert counters[lost] == 0, lost


def test_frees_remove_exactly_what_they_free():
    report, _ = trace_json(["--", workload("native")])
    # 500 blocks of 300 B allocated, every second one freed
    assert by_line(report, SRC)[site(SRC, "freed")] == (250 * 300, 250)
    assert report["events"]["frees"] >= 250 + 10  # + realloc moves


def test_nframe_5_gives_callers_in_order():
    report, _ = trace_json(["-n", "5", "-k", "traceback", "--", workload("native")])
    deep = [s for s in report["statistics"]
            if s["frames"][0]["lineno"] == site(SRC, "deep")
            and s["frames"][0]["filename"].endswith(SRC)]
    assert len(deep) == 1 and deep[0]["count"] == 10 and deep[0]["size"] == 20480
    frames = deep[0]["frames"]
    assert [f["function"] for f in frames[:4]] == ["deep_c", "deep_b", "deep_a", "main"]
    assert [f["lineno"] for f in frames[:4]] == [
        site(SRC, "deep"), site(SRC, "deep_b"), site(SRC, "deep_a"), site(SRC, "deep_main")]
    assert report["nframe"] == 5


def test_nframe_1_gives_only_the_call_site():
    report, _ = trace_json(["-n", "1", "-k", "traceback", "--", workload("native")])
    for st in report["statistics"]:
        assert len(st["frames"]) == 1


def test_cumulative_counts_callers():
    report, _ = trace_json(["-n", "5", "--cumulative", "--", workload("native")])
    lines = by_line(report, SRC)
    # deep_b's call line carries deep_c's 10 blocks
    assert lines[site(SRC, "deep_b")] == (20480, 10)
    assert lines[site(SRC, "deep_a")] == (20480, 10)


def test_text_report_format():
    p = run_tracer(["-t", "3", "--", workload("native")])
    out = p.stdout.splitlines()
    assert any(l.startswith("traced memory: current ") for l in out)
    assert any(l.startswith("lost: allocs table full 0") for l in out)
    line = "%s:%d: size=4000 KiB, count=1000, average=4096 B" % (SRC, site(SRC, "malloc"))
    assert any(l.endswith(line) for l in out), out


def test_cxx_new_at_call_site():
    report, _ = trace_json(["--", workload("cxx")])
    lines = by_line(report, "cxx.cc")
    assert lines[site("cxx.cc", "new")] == (300 * 96, 300)
    assert lines[site("cxx.cc", "new_array")] == (50 * 4000, 50)
    assert site("cxx.cc", "deleted") not in lines


def start_waiting():
    p = subprocess.Popen([workload("native"), "wait"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def attach(pid, extra=()):
    t = subprocess.Popen([TRACER, "-v", "--format", "json", "-t", "0", "-p", str(pid)] + list(extra),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:  # wait until the probes are in place
        line = t.stderr.readline()
        assert line, "tracer ended early"
        if "tracing pid" in line:
            return t


def test_attach_counts_only_later_allocations():
    import json
    w = start_waiting()
    try:
        t = attach(w.pid)
        w.stdin.write("go\n")
        w.stdin.flush()
        assert w.stdout.readline().strip() == "done"
        t.send_signal(signal.SIGINT)
        out, err = t.communicate(timeout=60)
        assert t.returncode == 0, err
        report = json.loads(out.splitlines()[-1])
        lines = by_line(report, SRC)
        check_sites(lines)
        assert site(SRC, "before") not in lines
        assert report["target"]["pid"] == w.pid
    finally:
        w.stdin.close()
        w.wait(timeout=30)
    assert w.returncode == 0


def test_target_exit_while_traced_still_reports():
    import json
    w = start_waiting()
    t = attach(w.pid)
    w.stdin.write("go\n")
    w.stdin.flush()
    assert w.stdout.readline().strip() == "done"
    w.stdin.close()  # the workload exits; the tracer notices and reports
    w.wait(timeout=30)
    out, err = t.communicate(timeout=60)
    assert t.returncode == 0, err
    report = json.loads(out.splitlines()[-1])
    check_sites(by_line(report, SRC))


def test_tracer_killed_leaves_target_unharmed():
    w = start_waiting()
    t = attach(w.pid)
    t.kill()
    t.wait()
    w.stdin.write("go\n")
    w.stdin.flush()
    assert w.stdout.readline().strip() == "done"
    w.stdin.close()
    assert w.wait(timeout=30) == 0


def bad(args):
    p = run_tracer(args, check=False)
    assert p.returncode == 2, (args, p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracer: "), p.stderr
    return lines[0]


def test_bad_input():
    assert "no such process" in bad(["-p", "999999999"])
    assert "invalid PID" in bad(["-p", "abc"])
    assert "range [1; 127]" in bad(["-n", "0", "-p", "1"])
    assert "range [1; 127]" in bad(["-n", "128", "-p", "1"])
    assert "cannot execute" in bad(["--", "/nonexistent/program"])
    assert "unknown key_type" in bad(["-k", "bogus", "-p", "1"])
    assert "unknown format" in bad(["--format", "xml", "-p", "1"])
    assert "nothing to trace" in bad([])
    assert "cumulative mode cannot by used" in bad(["-k", "traceback", "--cumulative", "-p", "1"])
    assert "invalid duration" in bad(["-d", "-1", "-p", "1"])
    # 268435456 blocks: 12.5 GiB of table, more than half of what a machine
    # of this kind (24 GiB) has available
    with open("/proc/meminfo") as f:
        avail = [int(l.split()[1]) * 1024 for l in f if l.startswith("MemAvailable:")][0]
    if 13421772960 > avail // 2:
        assert "of kernel memory for its table" in \
            bad(["--max-allocs", "268435456", "-p", "1"])


def test_bad_nframe_env():
    p = subprocess.run([TRACER, "-p", "1"], env=dict(os.environ, TRACER_NFRAME="0"),
                       capture_output=True, text=True)
    assert p.returncode == 2 and "range [1; 127]" in p.stderr


def test_exited_before_attach():
    p = subprocess.Popen(["true"])
    p.wait()
    assert "no such process" in bad(["-p", str(p.pid)])


def test_not_root():
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        TRACER, "-p", "1"], capture_output=True, text=True)
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
            "py_track_enter", "py_untrack_enter", "follow_fork"}
    progs = json.loads(subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True,
                                      text=True, check=True).stdout or "[]")
    names = {p["id"]: p.get("name") for p in progs}
    links = json.loads(subprocess.run(["bpftool", "link", "list", "-j"], capture_output=True,
                                      text=True, check=True).stdout or "[]")
    return sum(1 for l in links if names.get(l.get("prog_id")) in ours)


def test_nothing_left_attached():
    import pytest
    if other_tracers():
        pytest.skip("another tracer instance is running; its links would be counted")
    assert tracer_links() == 0
    trace_json(["--", workload("native")])
    bad(["--", "/nonexistent/program"])
    assert tracer_links() == 0


def test_follow_traces_children(tmp_path):
    script = tmp_path / "twice.sh"
    script.write_text("%s\n%s\n" % (workload("native"), workload("native")))
    report, _ = trace_json(["--follow", "--", "sh", str(script)])
    lines = by_line(report, SRC)
    for name, (size, count) in EXPECTED.items():
        assert lines.get(site(SRC, name)) == (2 * size * count, 2 * count), name
    # without --follow, the children are not traced
    report, _ = trace_json(["--", "sh", str(script)])
    assert by_line(report, SRC) == {}


def test_follow_keeps_equal_addresses_of_two_processes_apart():
    """After fork, parent and child allocate at the same addresses; each
    process's blocks are its own."""
    report, _ = trace_json(["--follow", "--", workload("forker")])
    assert by_line(report, "forker.c") == {site("forker.c", "forked"): (2 * 100 * 2048, 200)}
    report, _ = trace_json(["--", workload("forker")])
    assert by_line(report, "forker.c") == {site("forker.c", "forked"): (100 * 2048, 100)}


def test_full_allocs_table_is_counted():
    report, _ = trace_json(["--max-allocs", "500", "--", workload("native")])
    assert report["traces"] == 500
    full = report["counters"]["allocs table full"]
    # every allocation the table could not hold is counted, with its bytes
    assert full > 2000
    assert report["counters"]["allocs table full (bytes)"] > 0
    assert report["events"]["allocations"] - report["events"]["frees"] == report["traces"]


def test_interval_reports():
    p = run_tracer(["-i", "0.3", "--", "sleep", "1.2"])
    assert p.stdout.count("traced memory: current") >= 4  # 3+ periodic, 1 final


def test_static_executable():
    report, _ = trace_json(["--", workload("native-static")])
    check_sites(by_line(report, SRC))


def test_python_malloc_needs_a_launch():
    assert "--python-malloc applies" in bad(["--python-malloc", "-p", "1"])


def test_threads_allocating_at_once_are_counted_exactly():
    """5 threads allocating and freeing at once (the allocation table's slots
    are claimed and released with compare-and-swap), one thread's blocks
    freed by another; also with the table sized at the peak live count, so
    that buckets fill and the overflow map takes blocks."""
    for extra in ([], ["--max-allocs", "2520"]):  # peak: 5 x 500 blocks and libc's own
        report, _ = trace_json(extra + ["--", workload("threads")])
        lines = by_line(report, "threads.c")
        for k in range(4):
            assert lines.get(site("threads.c", "a%d" % k)) == ((1000 + 100 * k) * 500, 500), \
                (extra, k, lines)
        assert site("threads.c", "a4") not in lines  # freed by the main thread
        assert report["counters"]["allocs table full"] == 0, extra
        # current bytes, kept by the probes as they ran, match the traces left
        assert report["traced_memory"]["current"] == \
            sum(s["size"] for s in report["statistics"]), extra
        assert report["events"]["allocations"] - report["events"]["frees"] == report["traces"]
