"""System-wide tracing: -a (every process, those running and those that
start, in containers too), its filters (--comm, --cgroup, --exclude-pid),
several -p, --follow per process; each process with its own exact
statistics, and what it costs a process outside the filters."""
import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from helpers import (SOURCES, TRACER, Tracer, Workload, by_line, children, of_process,
                     serve_address, site, trace, workload)

from test_native import EXPECTED  # native.c's phases: (size per block, live blocks)

SRC = "native.c"


def check_native(doc, from_start=False):
    """native's phases exact in doc; its "before" blocks came before the
    tracer (or before it was probed), unless it was traced from_start."""
    assert doc is not None
    lines = by_line(doc, SRC)
    for name, (size, count) in EXPECTED.items():
        assert lines.get(site(SRC, name)) == (size * count, count), name
    if from_start:
        assert lines.get(site(SRC, "before")) == (100 * 8192, 100)
    else:
        assert site(SRC, "before") not in lines


def native():
    return Workload([workload("native"), "wait"])


def uprobed(pid):
    """Whether a uprobe has fired in process pid (the kernel maps its
    [uprobes] page there at the first hit)."""
    with open("/proc/%d/maps" % pid) as f:
        return "[uprobes]" in f.read()


@contextlib.contextmanager
def tracing(args):
    """The tracer (-v, JSON) running in the block; t.report once it is left
    after t.signal()."""
    t = Tracer(["-v"] + list(args), ready="tracing")
    t.__enter__()
    try:
        yield t
    except BaseException:
        t.__exit__(*__import__("sys").exc_info())
        raise


def wait_traced(t, pid):
    """Until the tracer says it traces pid, started after it (with a link
    per process, its probes come then: what it did before is not seen)."""
    said = "tracing pid %d too" % pid
    if not any(said in l for l in t.stderr_lines):  # lines read already
        assert t.err.until(lambda l: said in l, 30) is not None, t.stderr


def report_now(t):
    t.signal(signal.SIGINT)
    t.__exit__(None, None, None)
    return t.report


def test_all_before_after_container_excluded():
    with contextlib.ExitStack() as stack:
        before = stack.enter_context(native())
        excluded = stack.enter_context(native())
        with tracing(["-a", "--exclude-pid", str(excluded.pid)]) as t:
            after = stack.enter_context(native())
            boxed = stack.enter_context(Workload(
                ["unshare", "--pid", "--fork", "--mount-proc", workload("native"), "wait"]))
            inner = children(boxed.pid)[0]
            wait_traced(t, after.pid)
            wait_traced(t, inner)
            for w in (before, excluded, after, boxed):
                w.run("go\n")
            report = report_now(t)
        pids = {d["target"]["pid"]: d for d in report["processes"]}
        check_native(pids.get(before.pid))
        check_native(pids.get(after.pid))
        check_native(pids.get(inner))
        assert pids[inner]["target"]["ns_pid"] == 1  # pid 1 of its namespace
        assert pids[before.pid]["target"]["ns_pid"] == before.pid
        assert excluded.pid not in pids and not uprobed(excluded.pid)
        assert t.process.pid not in pids  # never itself
        # the sum of the processes is the header
        assert report["traced_memory"]["all"]["current"] == sum(
            d["traced_memory"]["all"]["current"] for d in report["processes"])


def test_all_new_allocators_jemalloc_preload_and_musl():
    jemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
    musl = workload("native-musl")
    if not os.path.exists(jemalloc) or not os.path.exists(musl):
        pytest.skip("needs libjemalloc2 and musl-tools (native-musl)")
    env = dict(os.environ, LD_PRELOAD=jemalloc)
    with contextlib.ExitStack() as stack:
        with tracing(["-a", "--comm", "native", "--comm", "native-musl"]) as t:
            je = stack.enter_context(_env_workload([workload("native"), "wait"], env))
            mu = stack.enter_context(Workload([musl, "wait"]))
            wait_traced(t, je.pid)
            wait_traced(t, mu.pid)
            for w in (je, mu):
                w.run("go\n")
            report = report_now(t)
        check_native(of_process(report, je.pid))
        check_native(of_process(report, mu.pid))


class _env_workload(Workload):
    def __init__(self, command, env):
        super().__init__(command)
        self.env = env

    def __enter__(self):
        old = os.environ.copy()
        os.environ.clear()
        os.environ.update(self.env)
        try:
            return super().__enter__()
        finally:
            os.environ.clear()
            os.environ.update(old)


def test_comm_filter_leaves_others_unprobed():
    with contextlib.ExitStack() as stack:
        other = stack.enter_context(Workload([workload("mapper"), "wait"]))
        with tracing(["-a", "--comm", "native"]) as t:
            mine = stack.enter_context(native())
            wait_traced(t, mine.pid)
            mine.run("go\n")
            other.run("go\n")
            report = report_now(t)
        assert [d["target"]["pid"] for d in report["processes"]] == [mine.pid]
        check_native(of_process(report, mine.pid))
        assert uprobed(mine.pid) and not uprobed(other.pid)


@contextlib.contextmanager
def own_cgroup():
    """A new cgroup v2 ("/tracer-test-PID"): (its directory, its path)."""
    with open("/proc/self/mounts") as f:
        roots = [l.split()[1] for l in f if l.split()[2] == "cgroup2"]
    if not roots:
        pytest.skip("no cgroup v2 file system mounted")
    root = roots[0]  # /sys/fs/cgroup, or /sys/fs/cgroup/unified beside v1
    name = "tracer-test-%d" % os.getpid()
    path = os.path.join(root, name)
    os.mkdir(path)
    try:
        yield path, "/" + name
    finally:
        for _ in range(50):
            try:
                os.rmdir(path)
                break
            except OSError:
                time.sleep(0.1)


def test_cgroup_filter():
    with own_cgroup() as (path, name), contextlib.ExitStack() as stack:
        inside = stack.enter_context(native())
        outside = stack.enter_context(native())
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(inside.pid))
        with tracing(["-a", "--cgroup", name]) as t:
            inside.run("go\n")
            outside.run("go\n")
            report = report_now(t)
        assert [d["target"]["pid"] for d in report["processes"]] == [inside.pid]
        doc = of_process(report, inside.pid)
        check_native(doc)
        assert doc["target"]["cgroup"] == name
        assert not uprobed(outside.pid)


def run_short_lived_in(path, n):
    """shortlived n started in the cgroup at path: its pid, {child: pid}."""
    def join():
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    p = subprocess.Popen([workload("shortlived"), str(n)], stdout=subprocess.PIPE, text=True,
                         preexec_fn=join)
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0
    lines = iter(out.splitlines())
    return p.pid, short_lived_pids(lambda: next(lines), n)


def test_short_lived_processes_have_rows_with_their_cgroup():
    """-a: children in a cgroup of their own that lived less than a loop
    turn of the tracer: their rows say the cgroup BPF noted at their exit
    (no /proc/PID/cgroup was left to read)."""
    with own_cgroup() as (path, name):
        with tracing(["-a"]) as t:
            _, pids = run_short_lived_in(path, 6)
            report = report_now(t)
        check_short_lived(report, pids, started_after=True)
        for pid in pids.values():
            assert of_process(report, pid)["target"]["cgroup"] == name


def test_cgroup_filter_counts_processes_gone_before_probed():
    """-a --cgroup probes each process that joins when user space has
    seen it: children that lived less than a loop turn were never probed.
    None is lost silently: each has its row, or is counted."""
    with own_cgroup() as (path, name):
        with tracing(["-a", "--cgroup", name]) as t:
            parent, pids = run_short_lived_in(path, 6)
            report = report_now(t)
    rows = {d["target"]["pid"] for d in report["processes"]}
    unseen = [pid for pid in [parent, *pids.values()] if pid not in rows]
    assert unseen, "every child was probed in time: this test proves nothing here"
    assert report["losses"]["processes_gone_before_probed"] == len(unseen), (unseen, rows)


def test_all_with_no_process_matching_has_an_empty_processes_array():
    """A consumer of -a's JSON reads processes whatever matched."""
    p = subprocess.run([TRACER, "-a", "--comm", "no-such-comm", "-d", "1", "--format", "json"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["processes"] == [] and doc["target"]["pid"] == 0


def test_cgroup_that_does_not_exist_is_bad_input():
    p = subprocess.run([TRACER, "-a", "--cgroup", "/no/such/cgroup-here", "-d", "1"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr


def test_several_pids_each_exact():
    with native() as a, native() as b:
        t = Tracer(["-p", str(a.pid), "-p", str(b.pid), "-v"], ready="tracing")
        with t:
            a.run("go\n")
            b.run("go\n")
            t.signal()
        check_native(of_process(t.report, a.pid))
        check_native(of_process(t.report, b.pid))
        assert len(t.report["processes"]) == 2


def test_follow_python_pool_per_process():
    """--follow on a pool of forked CPython workers: each worker is a
    process of its own in the report, with its Python lines."""
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12.*/bin/python3.12")))
    if not found:
        pytest.skip("needs pyenv's 3.12")
    pool = os.path.join(SOURCES, "py_pool.py")
    line = site("py_pool.py", "worker")
    report = trace(["--follow", "--keep-exited", "--", found[-1], pool])
    docs = report["processes"]
    parent = [d for d in docs if d["target"]["pid"] == report["target"]["pid"]]
    workers = [d for d in docs if d["target"]["pid"] != report["target"]["pid"]]
    assert len(parent) == 1 and len(workers) >= 3, [d["target"] for d in docs]
    total = 0
    for d in workers:
        assert d["exited"], d["target"]
        size, count = by_line(d, pool, exact=True).get(line, (0, 0))
        total += count
    assert 240 <= total <= 256, total  # as the merged list says
    assert by_line(report, pool, exact=True)[line][1] == total
    assert line not in by_line(parent[0], pool, exact=True)


def test_attach_follow_traces_children_each_on_its_own():
    """-p SHELL --follow: what the shell forks and execs (native) is traced
    as its own process, named as the program it exec'd."""
    script = "echo ready; read x; %s wait; read y" % workload("native")
    with Workload(["sh", "-c", script]) as sh:
        with tracing(["--follow", "-p", str(sh.pid)]) as t:
            sh.say("go\n")
            sh.expect("ready")  # native's, once it has exec'd
            sh.run("go\n")
            report = report_now(t)
    docs = [d for d in report["processes"] if d["target"]["comm"] == "native"]
    assert len(docs) == 1, [d["target"] for d in report["processes"]]
    check_native(docs[0], from_start=True)  # followed from its fork
    assert docs[0]["started_after"] and not docs[0]["exited"]
    assert of_process(report, sh.pid) is not None


def test_serve_all_metrics_per_process(tmp_path):
    """tracer serve -a: /metrics has each process's own series (pid, comm,
    cgroup), promtool accepts them, and each agrees with that process's
    statistics in /snapshot."""
    import re
    import urllib.request
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("needs promtool (Debian's prometheus)")
    with native() as a, native() as b:
        p = subprocess.Popen([TRACER, "serve", "-a", "--comm", "native", "-v", "--listen",
                              "127.0.0.1:0"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            base = serve_address(p, "processes with")  # "tracing N processes with"
            assert base, "no address"
            a.run("go\n")
            b.run("go\n")
            metrics = urllib.request.urlopen(base + "/metrics", timeout=30).read().decode()
            snap = urllib.request.urlopen(base + "/snapshot", timeout=30).read()
        finally:
            p.send_signal(signal.SIGINT)
            p.wait(timeout=30)
    path = tmp_path / "m.txt"
    path.write_text(metrics)
    check = subprocess.run([promtool, "check", "metrics"], input=metrics, text=True,
                           capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    (tmp_path / "s.snap").write_bytes(snap)
    for w in (a, b):
        series = re.findall(r'^tracer_traced_bytes\{pid="%d",comm="native"(?:,cgroup="[^"]*")?\} '
                            r'(\d+)$' % w.pid, metrics, re.M)
        assert len(series) == 1, metrics
        doc = subprocess.run([TRACER, "stats", str(tmp_path / "s.snap"), "--pid", str(w.pid),
                              "--format", "json", "-t", "0"], capture_output=True, text=True)
        assert doc.returncode == 0, doc.stderr
        report = __import__("json").loads(doc.stdout)
        proc = of_process(report, w.pid)
        assert int(series[0]) == proc["traced_memory"]["all"]["current"]
        assert int(series[0]) >= sum(s * c for s, c in EXPECTED.values())
        check_native(proc)


def short_lived_pids(read_line, n):
    """{child index: pid} from shortlived's "child I PID" lines, up to its
    "done"."""
    pids = {}
    while True:
        line = read_line()
        if line == "done":
            assert len(pids) == n, pids
            return pids
        word, i, pid = line.split()
        assert word == "child", line
        pids[int(i)] = int(pid)


def check_short_lived(report, pids, started_after, parent_args=None):
    """Each of shortlived's children (run with parent_args, by default the
    count alone) has its own row, exited, with its exact figures: i + 1
    blocks of i + 1 KiB held at its exit after one of 100 B freed."""
    for i, pid in pids.items():
        doc = of_process(report, pid)
        assert doc is not None, (i, pid, [d["target"] for d in report["processes"]])
        assert doc["exited"] and doc["started_after"] == started_after, doc["target"]
        kib = (i + 1) * 1024
        assert doc["events"] == {"allocations": i + 2, "frees": 1}, (i, doc["events"])
        tm = doc["traced_memory"]
        assert (tm["all"]["current"], tm["all"]["peak"]) == (0, (i + 1) * kib), (i, tm)
        assert doc["target"]["comm"] == "shortlived", doc["target"]
        assert doc["target"]["ns_pid"] == pid
        # the odd ones exec'd themselves: their own command line
        command = doc["target"]["command"]
        if i % 2:
            assert command == "shortlived child %d" % i, command
        else:
            assert command.endswith("shortlived " + (parent_args or str(len(pids)))), command
        assert doc["target"]["start_time"] > 0


def test_follow_short_lived_children_have_rows():
    """--follow: children that lived less than one loop turn of the
    tracer, each in its own exited row with its exact figures (BPF notes
    what it was at its exit)."""
    with Tracer(["--follow", "--", workload("shortlived"), "6"]) as t:
        pids = short_lived_pids(lambda: t.read_until(""), 6)
    check_short_lived(t.report, pids, started_after=False)
    # and they are what the header sums: the parent's 3 blocks and stdout's buffer
    assert t.report["events"]["allocations"] == 3 + 1 + sum(i + 2 for i in pids)


def test_all_short_lived_processes_have_rows():
    """-a: the same children, of a process started after the tracer."""
    with tracing(["-a"]) as t:
        out = subprocess.run([workload("shortlived"), "6"], capture_output=True, text=True,
                             timeout=30, check=True).stdout.splitlines()
        lines = iter(out)
        pids = short_lived_pids(lambda: next(lines), 6)
        report = report_now(t)
    check_short_lived(report, pids, started_after=True)


def test_all_process_seen_before_its_exec_is_what_it_exec_d():
    """-a: children the tracer set up while they slept (their parent's
    command then), which exec and exit before its next loop turn: each row
    says what the process was at its exit (BPF's note), not what /proc said
    when the tracer first met it."""
    with tracing(["-a"]) as t:
        out = subprocess.run([workload("shortlived"), "4", "300"], capture_output=True,
                             text=True, timeout=30, check=True).stdout.splitlines()
        lines = iter(out)
        pids = short_lived_pids(lambda: next(lines), 4)
        report = report_now(t)
    check_short_lived(report, pids, started_after=True, parent_args="4 300")
