"""--budget: the overhead achieved on the request loop (requests per CPU
second, untraced and traced side by side: scripts/bench_budget.py) within a
factor 1.5 of the budget at 5 % and at 1 %; what serve exports of it (the
real go tool pprof reading the profile's comment, /metrics' coverage); the
live set bounded by the workload's own (frees kept, or windows' live sets
dropped); bad budgets refused."""
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

import pytest

from helpers import ROOT, TRACER, run_tracer, workload

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import bench_budget  # noqa: E402

GO = shutil.which("go")
# requests.c: a cache of 512 answers, and 12 fields and an answer in flight
MAX_LIVE = 512 + 13


@pytest.mark.parametrize("budget", [5, 1])
def test_achieved_overhead_within_a_factor_of_the_budget(budget):
    # 8 s a run, as make bench measures, the two copies on one CPU: on two,
    # two untraced copies differed by up to 2.4 % (each vCPU sees its own
    # host), and a budget of 1 % measured 0.23-2.43 %; on one, by 0.14 %,
    # and 1 % measured 0.82-1.10 %
    runs = [bench_budget.run_pair(budget, 8) for _ in range(3)]
    achieved = statistics.median(r["overhead"] for r in runs)
    assert all(r["coverage"] < 0.5 for r in runs), runs  # the budget did bite
    assert budget / 100 / 1.5 <= achieved <= budget / 100 * 1.5, (achieved, runs)


def metric(text, name):
    m = re.search(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M)
    assert m, name + " missing:\n" + text
    return float(m.group(1))


@pytest.mark.parametrize("budget", ["10", "0.5%"])
def test_serve_says_what_the_figures_cover(tmp_path, budget):
    wl = workload("requests")
    p = subprocess.Popen([TRACER, "serve", "-v", "--listen", "127.0.0.1:0", "--budget",
                          budget, "--", wl, "30"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    said = []  # its stderr, to tell when it began windowing the frees
    try:
        base, seen = None, 0
        for line in p.stderr:  # where it serves, then a few periods of windows
            said.append(line)
            m = re.search(r"serving on (http://\S+?)/ ", line)
            base = base or (m and m.group(1))
            seen += bool(base) and "budget: window" in line
            if seen >= 4:
                break
        assert base, "tracer serve did not start"
        # the first period traced the frees whole: its debt is paid back
        for _ in range(40):
            text = urllib.request.urlopen(base + "/metrics", timeout=30).read().decode()
            if metric(text, "tracer_overhead_ratio") < 1.5 * float(budget.rstrip("%")) / 100:
                break
            time.sleep(0.5)
        coverage = metric(text, "tracer_coverage_ratio")
        assert 0 < coverage < 0.6, text
        ratio = float(budget.rstrip("%")) / 100
        assert metric(text, "tracer_budget_ratio") == pytest.approx(ratio)
        assert 0 < metric(text, "tracer_overhead_ratio") < 1.5 * ratio
        assert metric(text, "tracer_budget_windows_total") >= 2
        # frees kept (or each window's live set its own): never more live
        # blocks than the workload holds
        assert 0 < metric(text, "tracer_live_blocks") <= MAX_LIVE, text
        # the frees alone cost ~4-7 % on these machines (as the tracer
        # estimates them, against the budget's aim of 70 %): windowed at
        # 0.5 %; at 10 % as the tracer said it decided, which is what the
        # figures cover
        windowed = metric(text, "tracer_budget_frees_windowed")
        frees_said = [l for l in said if "the frees alone cost more than" in l]
        if budget == "0.5%":
            assert windowed == 1 and frees_said, said
        elif not windowed:
            assert not frees_said, said
        # /snapshot keeps it too: tracer stats says what it covered
        snap = tmp_path / "serve.snap"
        snap.write_bytes(urllib.request.urlopen(base + "/snapshot", timeout=30).read())
        b = __import__("json").loads(run_tracer(["stats", str(snap), "--format", "json",
                                                 "-t", "1"]).stdout)["budget"]
        assert b["ratio"] == pytest.approx(ratio) and 0 < b["coverage"] < 0.6, b
        assert b["frees_windowed"] == windowed or (b["frees_windowed"] and not windowed), b
        assert b["windows"] >= 2, b
        if GO:
            heap = tmp_path / "heap.pb.gz"
            heap.write_bytes(urllib.request.urlopen(base + "/debug/pprof/heap",
                                                    timeout=30).read())
            out = subprocess.run([GO, "tool", "pprof", "-comments", str(heap)],
                                 capture_output=True, text=True, timeout=120,
                                 env=dict(os.environ, HOME="/tmp", GOCACHE="/tmp/gocache"))
            assert out.returncode == 0, out.stderr
            m = re.search(r"allocations traced in windows, ([\d.]+)% of the time", out.stdout)
            assert m, out.stdout
            assert 0 < float(m.group(1)) < 60
    finally:
        p.terminate()
        said += p.communicate(timeout=30)[1].splitlines(True)
    if windowed:  # said, before or after the figures were read
        assert [l for l in said if "the frees alone cost more than" in l], said


def test_the_report_header_says_it_too():
    wl = workload("requests")
    r = run_tracer(["--budget", "2", "-t", "1", "--", wl, "3"])
    assert re.search(r"^budget 2%: allocations traced in windows, [\d.]+% of the time",
                     r.stdout, re.M), r.stdout
    r = run_tracer(["--budget", "2", "--format", "json", "-t", "1", "--", wl, "3"])
    b = __import__("json").loads(r.stdout)["budget"]
    assert b["ratio"] == 0.02 and 0 < b["coverage"] < 1 and b["alloc_scaled"] is False


BUDGET_LINE = r"^budget [\d.]+%: allocations traced in windows, .*$"


def test_snapshot_file_keeps_the_coverage(tmp_path):
    """-o's snapshot file keeps what the figures cover: tracer stats prints
    the live report's coverage line, and its JSON the same budget."""
    wl = workload("requests")
    snap = str(tmp_path / "budget.snap")
    live = run_tracer(["--budget", "2", "-t", "1", "-o", snap, "--", wl, "3"]).stdout
    line = re.search(BUDGET_LINE, live, re.M)
    assert line, live
    offline = run_tracer(["stats", snap, "-t", "1"]).stdout
    assert re.findall(BUDGET_LINE, offline, re.M) == [line.group(0)], offline
    b = __import__("json").loads(run_tracer(["stats", snap, "--format", "json", "-t",
                                             "1"]).stdout)["budget"]
    assert b["ratio"] == 0.02 and 0 < b["coverage"] < 1 and b["windows"] >= 1, b
    assert "%.1f%% of the time (%d windows)" % (b["coverage"] * 100, b["windows"]) in \
        line.group(0)
    # a snapshot traced without a budget says nothing of one
    plain = str(tmp_path / "plain.snap")
    run_tracer(["-t", "1", "-o", plain, "--", wl, "1"])
    assert not re.search(BUDGET_LINE, run_tracer(["stats", plain]).stdout, re.M)


@pytest.mark.parametrize("bad", ["0", "abc", "101", "5%%", "-1", ""])
def test_bad_budgets_are_refused(bad):
    r = subprocess.run([TRACER, "--budget", bad, "--", "true"], capture_output=True, text=True)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "--budget" in r.stderr


def test_follow_keeps_an_account_per_process():
    """--follow: two children, each allocating; the windows follow the one
    with the least room, and the report says what they covered."""
    wl = workload("requests")
    r = run_tracer(["--follow", "-v", "--budget", "3", "-t", "1", "--", "/bin/sh", "-c",
                    "%s 4 & %s 4; wait" % (wl, wl)], timeout=120)
    m = re.search(r"^budget 3%: allocations traced in windows, ([\d.]+)% of the time "
                  r"\((\d+) windows\), estimated overhead ([\d.]+)%", r.stdout, re.M)
    assert m, r.stdout
    assert 0 < float(m.group(1)) < 60 and int(m.group(2)) >= 2
    assert float(m.group(3)) < 4.5, r.stdout  # the highest of the processes'
