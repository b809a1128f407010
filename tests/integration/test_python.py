"""Python frames from outside: the tracer's lineno statistics for a CPython
workload against tracemalloc's own for the same workload, on every
interpreter present."""
import glob
import json
import os
import re
import shutil
import signal
import struct
import subprocess

import pytest

from conftest import TRACER, SOURCES, site

WORKLOAD = os.path.join(SOURCES, "py_sites.py")
PYENV = os.path.expanduser("~/.pyenv/versions")
VERSIONS = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13"]


def interpreter(minor):
    found = sorted(glob.glob(os.path.join(PYENV, minor + ".*", "bin", "python" + minor)))
    return found[-1] if found else None


def command(python):
    """An interpreter as a command line: a path, or a list (a chroot's)."""
    return list(python) if isinstance(python, (list, tuple)) else [python]


def reference(python, workload=WORKLOAD):
    out = subprocess.run(command(python) + [workload, "ref", "1"], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    return {line: (size, count) for line, size, count in json.loads(out)}


def traced(python, nframe=1, key="lineno", extra=(), warnings=None):
    t = subprocess.Popen([TRACER, "-n", str(nframe), "-k", key, "-t", "0", "--format", "json"] +
                         list(extra) + ["--", python, WORKLOAD],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        line = t.stdout.readline()
        assert line.strip() == "ready", (line, t.stderr.read() if t.poll() is not None else "")
        t.send_signal(signal.SIGINT)  # report while the workload still holds its blocks
        out = ""
        while not out.startswith("{"):  # the workload shares this pipe: read to the report
            out = t.stdout.readline()
            assert out, "tracer ended without a report: " + t.stderr.read()
    finally:
        t.stdin.close()
        t.wait(timeout=60)
    err = t.stderr.read()
    assert t.returncode == 0, err
    if warnings is not None:
        warnings.extend(l for l in err.splitlines() if "warning" in l)
    return json.loads(out)


def by_line(report, workload=WORKLOAD):
    out = {}
    for st in report["statistics"]:
        f = st["frames"][0]
        if f["filename"] == workload:
            out[f["lineno"]] = (st["size"], st["count"])
    return out


def assert_parity(ref, ours):
    """tracemalloc's sizes and counts within 5 % for every site, and its
    dominant sites in its order."""
    for name in ("big", "small", "nested", "gen", "thread"):
        line = site("py_sites.py", name)
        rsize, rcount = ref[line]
        size, count = ours.get(line, (0, 0))
        assert abs(size - rsize) <= 0.05 * rsize, (name, size, rsize)
        assert abs(count - rcount) <= 0.05 * rcount, (name, count, rcount)
    dominant = [l for l, (s, c) in sorted(ref.items(), key=lambda kv: -kv[1][0]) if s > 200000]
    order = [l for l, (s, c) in sorted(ours.items(), key=lambda kv: -kv[1][0]) if l in dominant]
    assert order == dominant


@pytest.mark.parametrize("minor", VERSIONS)
def test_parity_with_tracemalloc(minor):
    python = interpreter(minor)
    if not python:
        pytest.skip("no CPython %s on this machine (pyenv)" % minor)
    ref = reference(python)
    report = traced(python)
    ours = by_line(report)
    assert_parity(ref, ours)
    # temporaries were freed again
    assert ours.get(site("py_sites.py", "temporary"), (0, 0))[0] < 9000 * 5
    assert report["counters"]["python frames unreadable"] == 0


@pytest.mark.parametrize("minor", ["3.11", "3.13"])
def test_traceback_frames_in_order(minor):
    python = interpreter(minor)
    if not python:
        pytest.skip("no CPython %s on this machine (pyenv)" % minor)
    report = traced(python, nframe=3, key="traceback")
    nested = [s for s in report["statistics"]
              if s["frames"][0]["filename"] == WORKLOAD
              and s["frames"][0]["lineno"] == site("py_sites.py", "nested")]
    assert nested, "no statistic for the nested site"
    frames = max(nested, key=lambda s: s["size"])["frames"]
    got = [(f["lineno"], f["function"]) for f in frames[:3]]
    # 3.11+ list comprehensions are frames of their own, on the same line
    assert got[-1] == (site("py_sites.py", "nested_call"), "nested_a") or \
        (site("py_sites.py", "nested_call"), "nested_a") in got
    assert got[0][0] == site("py_sites.py", "nested")


DEBIAN = "/usr/bin/python3.11"


def test_debian_python_warns_and_sees_large_blocks():
    if not os.path.exists(DEBIAN):
        pytest.skip("no Debian /usr/bin/python3.11")
    warnings = []
    report = traced(DEBIAN, warnings=warnings)
    assert len(warnings) == 1 and "hides pymalloc" in warnings[0], warnings
    ours = by_line(report)
    # buffers above pymalloc's 512-byte threshold reach libc malloc, which
    # the tracer sees with their Python line even in this LTO build; the
    # 56-byte bytearray objects stay inside the inlined pymalloc
    assert ours[site("py_sites.py", "big")] == (200 * 20001, 200)


def test_debian_python_malloc_gives_tracemalloc_counts():
    if not os.path.exists(DEBIAN):
        pytest.skip("no Debian /usr/bin/python3.11")
    ref = reference(DEBIAN)
    warnings = []
    ours = by_line(traced(DEBIAN, extra=["--python-malloc"], warnings=warnings))
    assert warnings == []
    assert_parity(ref, ours)


@pytest.mark.parametrize("minor", ["3.11", "3.12"])
def test_native_merges_c_frames_and_python_frames(minor):
    """--native: the C frames from the interpreter to the allocator (here
    the C function that allocates the bytearray's buffer), then the Python
    frames exactly as without it."""
    python = interpreter(minor)
    if not python:
        pytest.skip("no CPython %s on this machine (pyenv)" % minor)
    big = site("py_sites.py", "big")

    def big_tracebacks(report):
        return [s for s in report["statistics"]
                if any(f["filename"] == WORKLOAD and f["lineno"] == big for f in s["frames"])]

    plain = big_tracebacks(traced(python, nframe=4, key="traceback"))
    merged = big_tracebacks(traced(python, nframe=4, key="traceback", extra=["--native"]))
    # 200 bytearray objects and their 200 buffers, as tracemalloc counts them
    assert sum(s["count"] for s in plain) == sum(s["count"] for s in merged) == 400
    top = max(merged, key=lambda s: s["size"])
    frames = top["frames"]
    first_py = next(i for i, f in enumerate(frames) if f["filename"] == WORKLOAD)
    assert first_py >= 1
    for f in frames[:first_py]:  # C frames, symbolized from libpython's DWARF
        assert f["filename"].endswith(".c") and f["function"], f
        assert not f["function"].startswith("_PyEval_")
    assert (frames[first_py]["lineno"], frames[first_py]["function"]) == (big, "make_big")
    # the Python part is the plain traceback, cut to what is left of nframe
    plain_frames = max(plain, key=lambda s: s["size"])["frames"]
    assert frames[first_py:] == plain_frames[:4 - first_py]


def test_domain_python_is_what_tracemalloc_counts():
    """--domain python keeps Python's allocators only (tracemalloc's
    numbers); libc blocks of C code are the rest, and the two partition the
    report exactly."""
    python = interpreter("3.11")
    if not python:
        pytest.skip("no CPython 3.11 on this machine (pyenv)")
    both = traced(python, extra=["--domain", "python", "--domain", "libc"])
    py = traced(python, extra=["--domain", "python"])
    libc = traced(python, extra=["--domain", "libc"])
    big = site("py_sites.py", "big")
    assert by_line(py)[big] == (200 * 20001 + 200 * 56, 400)
    assert big not in by_line(libc)
    assert_parity(reference(python), by_line(py))
    # each run is its own process: compare the shares, not the bytes
    total = lambda r: sum(s["size"] for s in r["statistics"])
    assert abs(total(py) + total(libc) - total(both)) <= 0.05 * total(both)


def attach_and_trace(python, extra=(), stop=signal.SIGINT, nframe=1, workload=WORKLOAD,
                     args=("attach",)):
    """Starts the workload in attach mode, attaches the tracer (with -v),
    lets the workload run its allocations, stops the tracer with stop (None:
    it ends by -d) and returns (report, stderr lines, table slots read
    while tracing, table slots read after, the workload)."""
    w = subprocess.Popen(command(python) + [workload] + list(args), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert w.stdout.readline().strip() == "ready"
    args = [TRACER, "-p", str(w.pid), "-v", "-t", "0", "--format", "json", "-n", str(nframe)]
    if stop is None:
        args += ["-d", "4"]
    t = subprocess.Popen(args + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        err_lines = []
        tables = None
        while tables is None:  # the tables are found (and hooked) before tracing starts
            line = t.stderr.readline()
            assert line, "tracer ended: " + "".join(err_lines)
            err_lines.append(line.rstrip("\n"))
            if "tracing pid" in line:
                break
            m = re.search(r"tables: raw (0x[0-9a-f]+), mem (0x[0-9a-f]+), obj (0x[0-9a-f]+)",
                          line)
            if m:
                tables = [int(x, 16) for x in m.groups()]
        while "tracing pid" not in err_lines[-1]:
            err_lines.append(t.stderr.readline().rstrip("\n"))
        during = read_slots(w.pid, tables) if tables else None
        w.stdin.write("\n")
        w.stdin.flush()
        assert w.stdout.readline().strip() == "done"
        if stop is not None:
            t.send_signal(stop)
        out, err = t.communicate(timeout=60)
        err_lines += err.splitlines()
        after = read_slots(w.pid, tables) if tables else None
    finally:
        if t.poll() is None:
            t.kill()
    report = json.loads(out.splitlines()[-1]) if out.strip() else None
    return report, err_lines, tables, during, after, w


def read_slots(pid, tables):
    """The malloc and calloc slots of the mem and obj tables, and the raw
    table's, read from the process's memory."""
    with open("/proc/%d/mem" % pid, "rb") as f:
        out = []
        for addr in tables:
            f.seek(addr + 8)
            out.append(struct.unpack("<QQ", f.read(16)))
        return out


def finish(w):
    w.stdin.write("\n")
    w.stdin.flush()
    assert w.wait(timeout=30) == 0


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, None],
                         ids=["sigint", "sigterm", "duration"])
def test_debian_hook_pymalloc_gives_tracemalloc_counts_and_restores(stop):
    if not os.path.exists(DEBIAN):
        pytest.skip("no Debian /usr/bin/python3.11")
    report, err, tables, during, after, w = attach_and_trace(DEBIAN, ["--hook-pymalloc"], stop)
    try:
        assert report is not None, err
        raw, mem, obj = during
        # while tracing, the mem and obj tables call the raw allocator ...
        assert mem == raw and obj == raw
        # ... and afterwards they hold their own functions again
        assert after[1] != raw and after[2] != raw and after[0] == raw
        assert any("allocator tables restored" in l for l in err), err
        assert not any("hides pymalloc" in l for l in err)
        # what the stripped build's tables hold was probed: 3 raw functions,
        # pymalloc's malloc, calloc, realloc and free
        assert sum("from its allocator table" in l for l in err) == 7, err
        if stop is signal.SIGINT:
            assert_parity(reference(DEBIAN), by_line(report))
    finally:
        finish(w)  # the workload runs on and exits cleanly after the hook


def test_debian_without_hook_warns_and_writes_nothing():
    if not os.path.exists(DEBIAN):
        pytest.skip("no Debian /usr/bin/python3.11")
    report, err, tables, during, after, w = attach_and_trace(DEBIAN)
    try:
        assert sum("hides pymalloc" in l and "--hook-pymalloc" in l for l in err) == 1, err
        raw, mem, obj = during
        assert mem != raw and obj != raw and during == after
        small = by_line(report).get(site("py_sites.py", "small"), (0, 0))
        assert small[1] < 500  # of 5000: pymalloc's inlined fast path hides them
    finally:
        finish(w)


def test_table_route_finds_the_symbol_routes_functions():
    """pyenv's 3.11 keeps .symtab: its allocators are probed by name, and the
    functions its tables hold are the same (nothing is probed twice)."""
    python = interpreter("3.11")
    if not python:
        pytest.skip("no CPython 3.11 on this machine (pyenv)")
    report, err, tables, during, after, w = attach_and_trace(python)
    try:
        assert tables, err
        by_name = [l for l in err if re.search(r"probe _Py(Object|Mem_Raw)\w+ ", l)]
        assert len(by_name) == 7, err
        assert not any("from its allocator table" in l for l in err), err
    finally:
        finish(w)


def test_hook_pymalloc_bad_input():
    p = subprocess.run([TRACER, "--hook-pymalloc", "--", "/bin/true"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and "--hook-pymalloc applies to -p PID" in p.stderr
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        p = subprocess.run([TRACER, "--hook-pymalloc", "-p", str(sleeper.pid), "-d", "1"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, p.stderr
        assert p.stderr.strip().endswith("runs no CPython that tracer knows"), p.stderr
    finally:
        sleeper.kill()


THREADS = os.path.join(SOURCES, "py_threads.py")


def traced_threads(python, extra=()):
    t = subprocess.Popen([TRACER, "-t", "0", "--format", "json"] + list(extra) +
                         ["--", python, THREADS], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert t.stdout.readline().strip() == "ready", t.stderr.read()
        t.stdin.write("\n")
        t.stdin.flush()
        assert t.stdout.readline().strip() == "done"
        t.send_signal(signal.SIGINT)
        out = ""
        while not out.startswith("{"):
            out = t.stdout.readline()
            assert out, "tracer ended without a report: " + t.stderr.read()
    finally:
        t.stdin.close()
        t.wait(timeout=60)
    assert t.returncode == 0, t.stderr.read()
    lines = {}
    for st in json.loads(out)["statistics"]:
        f = st["frames"][0]
        if f["filename"] == THREADS:
            lines[f["lineno"]] = (st["size"], st["count"])
    return lines


@pytest.mark.parametrize("minor", VERSIONS + ["debian"])
def test_threads_get_their_own_frames(minor):
    """8 threads allocating at once, each at its own line, while another
    sleeps with the GIL released and 4 call malloc through ctypes with the
    GIL released: every block carries the frame of the thread that made it,
    not of whichever thread holds the GIL."""
    python = DEBIAN if minor == "debian" else interpreter(minor)
    if not python or not os.path.exists(python):
        pytest.skip("no CPython %s on this machine" % minor)
    lines = traced_threads(python)
    for k in range(8):
        size = 1000 + 100 * k + 33  # a bytes object: 33 bytes of header
        assert lines.get(site("py_threads.py", "t%d" % k)) == (100 * size, 100), (k, lines)
    assert site("py_threads.py", "sleeper") not in lines
    native = traced_threads(python, ["--domain", "libc"])
    assert native.get(site("py_threads.py", "native")) == \
        (4 * 100 * 3000 + 100 * (0 + 1 + 2 + 3), 400), native


@pytest.mark.parametrize("minor", ["3.11", "debian"])
def test_tracemalloc_track_domains(minor):
    """PyTraceMalloc_Track puts a block in the extension's domain with the
    traceback of the Track call, once, as tracemalloc does; a freed and
    untracked block goes."""
    python = DEBIAN if minor == "debian" else interpreter(minor)
    if not python or not os.path.exists(python):
        pytest.skip("no CPython %s on this machine" % minor)
    source = os.path.join(SOURCES, "py_track.py")
    ref = json.loads(subprocess.run([python, source, "ref"], capture_output=True, text=True,
                                    check=True, timeout=60).stdout)
    track = site("py_track.py", "track")
    assert ref == [[track, 30 * 5000, 30]]

    def report(*extra):
        t = subprocess.Popen([TRACER, "-t", "0", "--format", "json"] + list(extra) +
                             ["--", python, source], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert t.stdout.readline().strip() == "ready", t.stderr.read()
            t.send_signal(signal.SIGINT)
            out = ""
            while not out.startswith("{"):
                out = t.stdout.readline()
                assert out, t.stderr.read()
        finally:
            t.stdin.close()
            t.wait(timeout=60)
        return {st["frames"][0]["lineno"]: (st["size"], st["count"])
                for st in json.loads(out)["statistics"]
                if st["frames"][0]["filename"] == source}

    assert report("--domain", "389047") == {track: (30 * 5000, 30)}
    # the libc blocks became the domain's: nothing is left at the malloc line
    assert site("py_track.py", "malloc") not in report("--domain", "libc")


# CPython 3.14: Debian's python3.14 (from forky) in a chroot that
# scripts/install-deps.sh makes with debootstrap. A chrooted process also
# shows that files mapped from another root are found.
FORKY = os.environ.get("TRACER_FORKY_ROOT", "/var/lib/tracer/forky")
PY314 = ["chroot", FORKY, "/usr/bin/python3.14"]
INSIDE = "/tmp/tracer-tests"  # the workloads' directory as the chroot sees it


@pytest.fixture(scope="module")
def forky():
    if not os.path.exists(FORKY + "/usr/bin/python3.14"):
        pytest.skip("no Debian python3.14 chroot at %s (scripts/install-deps.sh makes it)"
                    % FORKY)
    os.makedirs(FORKY + INSIDE, exist_ok=True)
    for name in ("py_sites.py", "py_threads.py"):
        shutil.copy(os.path.join(SOURCES, name), FORKY + INSIDE)
    return INSIDE


def test_python314_hook_pymalloc_gives_tracemalloc_counts(forky):
    workload = forky + "/py_sites.py"
    report, err, tables, during, after, w = attach_and_trace(
        PY314, ["--hook-pymalloc"], workload=workload)
    try:
        assert report is not None, err
        assert not any("layout" in l or "no known frame layout" in l for l in err), err
        raw, mem, obj = during
        assert mem == raw and obj == raw and after[1] != raw and after[2] != raw
        # LTO inlined the default-allocator test into the wrappers: the
        # tables are found on the branch that calls through them
        assert sum("from its allocator table" in l for l in err) == 7, err
        assert report["counters"]["python frames unreadable"] == 0
        assert report["counters"]["python frames unresolved"] == 0
        assert_parity(reference(PY314, workload), by_line(report, workload))
    finally:
        finish(w)


def test_python314_shared_libpython_gives_tracemalloc_counts(forky):
    """A program linked with forky's libpython3.14.so (LTO, stripped):
    CPython found in the shared library, its allocator tables decoded
    there, frames as tracemalloc's."""
    lib = FORKY + "/usr/lib/x86_64-linux-gnu/libpython3.14.so.1.0"
    if not os.path.exists(lib):
        pytest.skip("no libpython3.14 in the chroot at %s" % FORKY)
    # built here against the chroot's library, run inside the chroot (its
    # libc is newer than ours, so undefined symbols of libpython stay unchecked)
    subprocess.run(["cc", "-O2", "-o", FORKY + forky + "/py_embed",
                    os.path.join(SOURCES, "py_embed.c"), lib, "-Wl,--allow-shlib-undefined"],
                   check=True)
    embed = ["chroot", FORKY, forky + "/py_embed"]
    workload = forky + "/py_sites.py"
    report, err, tables, during, after, w = attach_and_trace(
        embed, ["--hook-pymalloc"], workload=workload)
    try:
        assert report is not None, err
        probes = [l for l in err if "from its allocator table" in l]
        assert len(probes) == 7 and all("libpython3.14.so.1.0+" in l for l in probes), err
        assert during[1] == during[0] and after[1] != during[0]
        assert report["counters"]["python frames unreadable"] == 0
        # the raw and libc frees beneath each Python free are the same block,
        # not ~12000 frees of untraced blocks; only blocks from before attach
        assert report["counters"]["frees of untraced blocks"] < 100, report["counters"]
        assert_parity(reference(embed, workload), by_line(report, workload))
    finally:
        finish(w)


def test_python314_without_hook_warns_and_sees_large_blocks(forky):
    workload = forky + "/py_sites.py"
    report, err, tables, during, after, w = attach_and_trace(PY314, workload=workload)
    try:
        assert sum("hides pymalloc" in l for l in err) == 1, err
        assert during == after
        assert by_line(report, workload)[site("py_sites.py", "big")] == (200 * 20001, 200)
    finally:
        finish(w)


def test_python314_traceback_frames_in_order(forky):
    workload = forky + "/py_sites.py"
    report, err, tables, during, after, w = attach_and_trace(
        PY314, ["--hook-pymalloc", "-k", "traceback"], nframe=3, workload=workload)
    try:
        gen = [s for s in report["statistics"]
               if s["frames"][0]["filename"] == workload
               and s["frames"][0]["lineno"] == site("py_sites.py", "gen")]
        assert gen, report["statistics"][:5]
        frames = max(gen, key=lambda s: s["size"])["frames"]
        # the generator's frame, then main() that drives it through list()
        assert [(f["lineno"], f["function"]) for f in frames[:2]] == \
            [(site("py_sites.py", "gen"), "gen"),
             (site("py_sites.py", "gen_call"), "main")], frames
    finally:
        finish(w)


def test_python314_threads_get_their_own_frames(forky):
    workload = forky + "/py_threads.py"
    report, err, tables, during, after, w = attach_and_trace(
        PY314, ["--hook-pymalloc"], workload=workload, args=())
    try:
        lines = by_line(report, workload)
        for k in range(8):
            size = 1000 + 100 * k + 33
            assert lines.get(site("py_threads.py", "t%d" % k)) == (100 * size, 100), (k, lines)
        assert site("py_threads.py", "sleeper") not in lines
    finally:
        finish(w)
    report, err, tables, during, after, w = attach_and_trace(
        PY314, ["--domain", "libc"], workload=workload, args=())
    try:
        assert by_line(report, workload).get(site("py_threads.py", "native")) == \
            (4 * 100 * 3000 + 100 * (0 + 1 + 2 + 3), 400)
    finally:
        finish(w)


def test_unknown_python_version_warns_once_and_stays_native(forky):
    """CPython 3.15 (forky's python3.15) has no layout table: one warning
    line, native tracebacks, its blocks still traced, no Python frame."""
    if not os.path.exists(FORKY + "/usr/bin/python3.15"):
        pytest.skip("no Debian python3.15 in the chroot at %s" % FORKY)
    workload = forky + "/py_sites.py"
    report, err, tables, during, after, w = attach_and_trace(
        ["chroot", FORKY, "/usr/bin/python3.15"], workload=workload)
    try:
        warnings = [l for l in err if "warning" in l]
        assert len(warnings) == 1 and "CPython 3.15" in warnings[0] and \
            "tracebacks stay native" in warnings[0], warnings
        files = {f["filename"] for s in report["statistics"] for f in s["frames"]}
        assert workload not in files
        assert report["counters"]["python frames unreadable"] == 0
        # the 200 bytearray buffers of 20001 bytes reach libc malloc
        assert sum(s["count"] for s in report["statistics"] if s["size"] >= 20001) >= 1
        assert report["traced_memory"]["current"] >= 200 * 20001, report["traced_memory"]
    finally:
        finish(w)
