"""Python frames from outside: the tracer's lineno statistics for a CPython
workload against tracemalloc's own for the same workload, on every
interpreter present."""
import collections
import contextlib
import glob
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import threading
import time

import pytest

from helpers import (SOURCES, Tracer, Workload, by_line, run_tracer, site, statistics_at, trace,
                     workload)

WORKLOAD = os.path.join(SOURCES, "py_sites.py")
PYENV = os.path.expanduser("~/.pyenv/versions")
VERSIONS = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13"]
DEBIAN = "/usr/bin/python3.11"


def interpreter(minor):
    found = sorted(glob.glob(os.path.join(PYENV, minor + ".*", "bin", "python" + minor)))
    return found[-1] if found else None


def pyenv_python(minor):
    """pyenv's CPython minor; the test is skipped without it."""
    python = interpreter(minor)
    if not python:
        pytest.skip("no CPython %s on this machine (pyenv)" % minor)
    return python


def debian_python():
    """Debian's CPython 3.11 (LTO, stripped); the test is skipped without it."""
    if not os.path.exists(DEBIAN):
        pytest.skip("no Debian /usr/bin/python3.11")
    return DEBIAN


def python_or_debian(minor):
    """pyenv's CPython minor, or Debian's for "debian"; skipped without it."""
    python = DEBIAN if minor == "debian" else interpreter(minor)
    if not python or not os.path.exists(python):
        pytest.skip("no CPython %s on this machine" % minor)
    return python


def command(python):
    """An interpreter as a command line: a path, or a list (a chroot's)."""
    return list(python) if isinstance(python, (list, tuple)) else [python]


def reference(python, workload=WORKLOAD, launched=False):
    """tracemalloc's lineno statistics of workload: started by the workload
    before its allocations, or (launched) with the interpreter
    (PYTHONTRACEMALLOC), as the tracer traces a program it launches: an
    object CPython takes from a free list moves to the line that takes it
    when its block is traced (bpo-35053), and a launched program's free
    lists hold blocks from before its first line."""
    env = dict(os.environ, PYTHONTRACEMALLOC="1") if launched else None
    out = subprocess.run(command(python) + [workload, "ref", "1"], capture_output=True,
                         text=True, check=True, timeout=120, env=env).stdout
    return {line: (size, count) for line, size, count in json.loads(out)}


def traced(python, nframe=1, key="lineno", extra=()):
    """The tracer launching py_sites.py with python, stopped by SIGINT: the
    finished Tracer (its report and stderr_lines)."""
    with Tracer(["-n", str(nframe), "-k", key] + list(extra) + ["--", python, WORKLOAD]) as t:
        t.expect("ready")
        t.signal(signal.SIGINT)  # report while the workload still holds its blocks
    return t


def workload_lines(report, workload=WORKLOAD):
    """{lineno: (size, count)} in the workload of that path."""
    return by_line(report, workload, exact=True)


def warnings(stderr_lines):
    return [l for l in stderr_lines if "warning" in l]


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
    python = pyenv_python(minor)
    # 3.8 inlines _Py_NewReference everywhere: its objects from free lists
    # keep their first line (said), as for a tracemalloc the program starts
    ref = reference(python, launched=minor != "3.8")
    report = traced(python).report
    ours = workload_lines(report)
    assert_parity(ref, ours)
    # temporaries were freed again
    assert ours.get(site("py_sites.py", "temporary"), (0, 0))[0] < 9000 * 5
    assert report["losses"]["python_frames_unreadable"] == 0


@pytest.mark.parametrize("minor", ["3.11", "3.13"])
def test_traceback_frames_in_order(minor):
    report = traced(pyenv_python(minor), nframe=3, key="traceback").report
    nested = statistics_at(report, WORKLOAD, site("py_sites.py", "nested"), exact=True)
    assert nested, "no statistic for the nested site"
    frames = max(nested, key=lambda s: s["size"])["frames"]
    got = [(f["lineno"], f["function"]) for f in frames[:3]]
    # 3.11+ list comprehensions are frames of their own, on the same line
    assert got[-1] == (site("py_sites.py", "nested_call"), "nested_a") or \
        (site("py_sites.py", "nested_call"), "nested_a") in got
    assert got[0][0] == site("py_sites.py", "nested")


def test_debian_python_warns_and_sees_large_blocks():
    run = traced(debian_python())
    found = warnings(run.stderr_lines)
    assert len(found) == 1 and "hides pymalloc" in found[0], found
    ours = workload_lines(run.report)
    # buffers above pymalloc's 512-byte threshold reach libc malloc, which
    # the tracer sees with their Python line even in this LTO build; the
    # 56-byte bytearray objects stay inside the inlined pymalloc
    assert ours[site("py_sites.py", "big")] == (200 * 20001, 200)


def test_debian_python_malloc_gives_tracemalloc_counts():
    ref = reference(debian_python(), launched=True)
    run = traced(DEBIAN, extra=["--python-malloc"])
    assert warnings(run.stderr_lines) == []
    assert_parity(ref, workload_lines(run.report))


@pytest.mark.parametrize("minor", ["3.11", "3.12"])
def test_native_merges_c_frames_and_python_frames(minor):
    """--native: the C frames from the interpreter to the allocator (here
    the C function that allocates the bytearray's buffer), then the Python
    frames exactly as without it."""
    python = pyenv_python(minor)
    big = site("py_sites.py", "big")

    def big_tracebacks(report):
        return [s for s in report["statistics"]
                if any(f["filename"] == WORKLOAD and f["lineno"] == big for f in s["frames"])]

    plain = big_tracebacks(traced(python, nframe=8, key="traceback").report)
    merged = big_tracebacks(traced(python, nframe=8, key="traceback", extra=["--native"]).report)
    # 200 bytearray objects and their 200 buffers, as tracemalloc counts them
    assert sum(s["count"] for s in plain) == sum(s["count"] for s in merged) == 400
    top = max(merged, key=lambda s: s["size"])
    frames = top["frames"]
    first_py = next(i for i, f in enumerate(frames) if f["filename"] == WORKLOAD)
    # C frames, unwound through libpython (no frame pointers) from its CFI and
    # symbolized from its DWARF, inlined calls expanded: the buffer's whole
    # chain from the call
    assert [f["function"] for f in frames[:first_py]] == [
        "PyByteArray_Resize", "bytearray___init___impl", "bytearray___init__", "type_call",
        "_PyObject_MakeTpCall"]
    for f in frames[:first_py]:
        assert f["filename"].endswith((".c", ".c.h")) and f["lineno"], f
    assert (frames[first_py]["lineno"], frames[first_py]["function"]) == (big, "make_big")
    # the Python part is the plain traceback, cut to what is left of nframe
    plain_frames = max(plain, key=lambda s: s["size"])["frames"]
    assert frames[first_py:] == plain_frames[:8 - first_py]


def test_domain_python_is_what_tracemalloc_counts():
    """--domain python keeps Python's allocators only (tracemalloc's
    numbers); libc blocks of C code are the rest, and the two partition the
    report exactly."""
    python = pyenv_python("3.11")
    both = traced(python, extra=["--domain", "python", "--domain", "libc"]).report
    py = traced(python, extra=["--domain", "python"]).report
    libc = traced(python, extra=["--domain", "libc"]).report
    big = site("py_sites.py", "big")
    assert workload_lines(py)[big] == (200 * 20001 + 200 * 56, 400)
    assert big not in workload_lines(libc)
    assert_parity(reference(python, launched=True), workload_lines(py))
    # each run is its own process: compare the shares, not the bytes
    total = lambda r: sum(s["size"] for s in r["statistics"])
    assert abs(total(py) + total(libc) - total(both)) <= 0.05 * total(both)


Attached = collections.namedtuple("Attached", "report stderr_lines tables during after")


@contextlib.contextmanager
def attached(python, extra=(), stop=signal.SIGINT, nframe=1, workload=WORKLOAD,
             args=("attach",)):
    """Starts the workload in attach mode, attaches the tracer (with -v),
    lets the workload run its allocations, stops the tracer with stop (None:
    it ends by -d) and yields an Attached: the report (None without one),
    the tracer's stderr lines, the allocator tables it printed and their
    slots read while tracing and after (None without tables). Then the
    workload, which ran on, must exit cleanly."""
    with Workload(command(python) + [workload] + list(args)) as w:
        duration = ["-d", "4"] if stop is None else []
        with Tracer(["-n", str(nframe)] + duration + list(extra), attach=w.pid,
                    check=False) as t:
            tables = allocator_tables(t.stderr_lines)  # found (and hooked) before tracing
            during = read_slots(w.pid, tables) if tables else None
            w.run("\n")
            if stop is not None:
                t.signal(stop)
        after = read_slots(w.pid, tables) if tables else None
        try:
            yield Attached(t.report, t.stderr_lines, tables, during, after)
        finally:
            w.say("\n")
            assert w.wait() == 0


def allocator_tables(stderr_lines):
    """The raw, mem and obj tables' addresses in the tracer's -v lines, or None."""
    for line in stderr_lines:
        m = re.search(r"tables: raw (0x[0-9a-f]+), mem (0x[0-9a-f]+), obj (0x[0-9a-f]+)", line)
        if m:
            return [int(x, 16) for x in m.groups()]
    return None


def read_slots(pid, tables):
    """The malloc and calloc slots of the mem and obj tables, and the raw
    table's, read from the process's memory."""
    with open("/proc/%d/mem" % pid, "rb") as f:
        out = []
        for addr in tables:
            f.seek(addr + 8)
            out.append(struct.unpack("<QQ", f.read(16)))
        return out


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGALRM,
                                  signal.SIGHUP, None],
                         ids=["sigint", "sigterm", "sigquit", "sigalrm", "sighup", "duration"])
def test_debian_hook_pymalloc_gives_tracemalloc_counts_and_restores(stop):
    with attached(debian_python(), ["--hook-pymalloc"], stop) as run:
        err = run.stderr_lines
        assert run.report is not None, err
        raw, mem, obj = run.during
        # while tracing, the mem and obj tables call the raw allocator ...
        assert mem == raw and obj == raw
        # ... and afterwards they hold their own functions again
        assert run.after[1] != raw and run.after[2] != raw and run.after[0] == raw
        assert any("allocator tables restored" in l for l in err), err
        assert not any("hides pymalloc" in l for l in err)
        # what the stripped build's tables hold was probed: 3 raw functions,
        # pymalloc's malloc, calloc, realloc and free
        assert sum("from its allocator table" in l for l in err) == 7, err
        if stop is signal.SIGINT:
            assert_parity(reference(DEBIAN), workload_lines(run.report))


def test_debian_without_hook_warns_and_writes_nothing():
    with attached(debian_python()) as run:
        err = run.stderr_lines
        assert sum("hides pymalloc" in l and "--hook-pymalloc" in l for l in err) == 1, err
        raw, mem, obj = run.during
        assert mem != raw and obj != raw and run.during == run.after
        small = workload_lines(run.report).get(site("py_sites.py", "small"), (0, 0))
        assert small[1] < 500  # of 5000: pymalloc's inlined fast path hides them


def test_table_route_finds_the_symbol_routes_functions():
    """pyenv's 3.11 keeps .symtab: its allocators are probed by name, and the
    functions its tables hold are the same (nothing is probed twice)."""
    with attached(pyenv_python("3.11")) as run:
        err = run.stderr_lines
        assert run.tables, err
        by_name = [l for l in err if re.search(r"probe _Py(Object|Mem_Raw)\w+ ", l)]
        assert len(by_name) == 7, err
        assert not any("from its allocator table" in l for l in err), err


def test_hook_pymalloc_bad_input():
    p = run_tracer(["--hook-pymalloc", "--", "/bin/true"], timeout=30, check=False)
    assert p.returncode == 2 and "--hook-pymalloc applies to -p PID" in p.stderr
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        p = run_tracer(["--hook-pymalloc", "-p", str(sleeper.pid), "-d", "1"], timeout=30,
                       check=False)
        assert p.returncode == 2, p.stderr
        assert p.stderr.strip().endswith("runs no CPython that tracer knows"), p.stderr
    finally:
        sleeper.kill()


THREADS = os.path.join(SOURCES, "py_threads.py")


def traced_threads(python, extra=()):
    """{lineno: (size, count)} in py_threads.py, launched by the tracer and
    reported once its threads are done."""
    with Tracer(list(extra) + ["--", python, THREADS]) as t:
        t.expect("ready")
        t.say("\n")
        t.expect("done")
        t.signal(signal.SIGINT)
    return workload_lines(t.report, THREADS)


@pytest.mark.parametrize("minor", VERSIONS + ["debian"])
def test_threads_get_their_own_frames(minor):
    """8 threads allocating at once, each at its own line, while another
    sleeps with the GIL released and 4 call malloc through ctypes with the
    GIL released: every block carries the frame of the thread that made it,
    not of whichever thread holds the GIL."""
    python = python_or_debian(minor)
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
    python = python_or_debian(minor)
    source = os.path.join(SOURCES, "py_track.py")
    ref = json.loads(subprocess.run([python, source, "ref"], capture_output=True, text=True,
                                    check=True, timeout=60).stdout)
    track = site("py_track.py", "track")
    assert ref == [[track, 30 * 5000, 30]]

    def report(*extra):
        # the tracer's exit status was never checked here
        with Tracer(list(extra) + ["--", python, source], check=False) as t:
            t.expect("ready")
            t.signal(signal.SIGINT)
        return workload_lines(t.report, source)

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
    with attached(PY314, ["--hook-pymalloc"], workload=workload) as run:
        err, report = run.stderr_lines, run.report
        assert report is not None, err
        assert not any("layout" in l or "no known frame layout" in l for l in err), err
        raw, mem, obj = run.during
        assert mem == raw and obj == raw and run.after[1] != raw and run.after[2] != raw
        # LTO inlined the default-allocator test into the wrappers: the
        # tables are found on the branch that calls through them
        assert sum("from its allocator table" in l for l in err) == 7, err
        assert report["losses"]["python_frames_unreadable"] == 0
        assert report["losses"]["python_frames_unresolved"] == 0
        assert_parity(reference(PY314, workload), workload_lines(report, workload))


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
    with attached(embed, ["--hook-pymalloc"], workload=workload) as run:
        err, report = run.stderr_lines, run.report
        assert report is not None, err
        probes = [l for l in err if "from its allocator table" in l]
        assert len(probes) == 7 and all("libpython3.14.so.1.0+" in l for l in probes), err
        assert run.during[1] == run.during[0] and run.after[1] != run.during[0]
        assert report["losses"]["python_frames_unreadable"] == 0
        # the raw and libc frees beneath each Python free are the same block,
        # not ~12000 frees of untraced blocks; only blocks from before attach
        assert report["notes"]["frees_of_untraced_blocks"] < 100, report["notes"]
        assert_parity(reference(embed, workload), workload_lines(report, workload))


def test_python314_without_hook_warns_and_sees_large_blocks(forky):
    workload = forky + "/py_sites.py"
    with attached(PY314, workload=workload) as run:
        assert sum("hides pymalloc" in l for l in run.stderr_lines) == 1, run.stderr_lines
        assert run.during == run.after
        assert workload_lines(run.report, workload)[site("py_sites.py", "big")] == \
            (200 * 20001, 200)


def test_python314_traceback_frames_in_order(forky):
    workload = forky + "/py_sites.py"
    with attached(PY314, ["--hook-pymalloc", "-k", "traceback"], nframe=3,
                  workload=workload) as run:
        report = run.report
        gen = statistics_at(report, workload, site("py_sites.py", "gen"), exact=True)
        assert gen, report["statistics"][:5]
        frames = max(gen, key=lambda s: s["size"])["frames"]
        # the generator's frame, then main() that drives it through list()
        assert [(f["lineno"], f["function"]) for f in frames[:2]] == \
            [(site("py_sites.py", "gen"), "gen"),
             (site("py_sites.py", "gen_call"), "main")], frames


def test_python314_threads_get_their_own_frames(forky):
    workload = forky + "/py_threads.py"
    with attached(PY314, ["--hook-pymalloc"], workload=workload, args=()) as run:
        lines = workload_lines(run.report, workload)
        for k in range(8):
            size = 1000 + 100 * k + 33
            assert lines.get(site("py_threads.py", "t%d" % k)) == (100 * size, 100), (k, lines)
        assert site("py_threads.py", "sleeper") not in lines
    with attached(PY314, ["--domain", "libc"], workload=workload, args=()) as run:
        assert workload_lines(run.report, workload).get(site("py_threads.py", "native")) == \
            (4 * 100 * 3000 + 100 * (0 + 1 + 2 + 3), 400)


def test_unknown_python_version_warns_once_and_stays_native(forky):
    """CPython 3.15 (forky's python3.15) has no layout table: one warning
    line, native tracebacks, its blocks still traced, no Python frame."""
    if not os.path.exists(FORKY + "/usr/bin/python3.15"):
        pytest.skip("no Debian python3.15 in the chroot at %s" % FORKY)
    workload = forky + "/py_sites.py"
    with attached(["chroot", FORKY, "/usr/bin/python3.15"], workload=workload) as run:
        report = run.report
        found = warnings(run.stderr_lines)
        assert len(found) == 1 and "CPython 3.15" in found[0] and \
            "tracebacks stay native" in found[0], found
        files = {f["filename"] for s in report["statistics"] for f in s["frames"]}
        assert workload not in files
        assert report["losses"]["python_frames_unreadable"] == 0
        # the 200 bytearray buffers of 20001 bytes reach libc malloc
        assert sum(s["count"] for s in report["statistics"] if s["size"] >= 20001) >= 1
        assert report["traced_memory"]["current"] >= 200 * 20001, report["traced_memory"]


def test_interpreter_mapped_to_be_read_is_not_one():
    """A C program that maps an interpreter's ELF to read it (as a debugger
    or a tracer does) runs no CPython: no warning, its own native lines
    exact. Each interpreter present: a static one (Debian's python3.11) and
    a shared libpython (pyenv's)."""
    files = [f for f in ["/usr/bin/python3.11"] +
             sorted(glob.glob(os.path.join(PYENV, "3.12.*/lib/libpython3.12.so.1.0")))
             if os.path.exists(f)]
    if not files:
        pytest.skip("no CPython binary to map")
    for path in files:
        with Workload([workload("maps_elf"), path]) as w:
            with Tracer([], attach=w.pid) as t:
                w.run("\n")
                # past the retries (50, 20 ms apart) for an interpreter not
                # initialised yet, after which one taken for CPython is
                # said not to match
                time.sleep(3)
                t.signal()
        assert warnings(t.stderr_lines) == [], (path, t.stderr_lines)
        assert by_line(t.report, "maps_elf.c") == {site("maps_elf.c", "after"): (10 * 1000, 10)}


# Blocks grown by realloc in LTO builds (Debian's python3.11, forky's
# python3.14), where CPython's realloc is inlined into its callers and ends
# in libc's: with every object a raw block (--hook-pymalloc, --python-malloc)
# each growth reaches libc's realloc, which must keep the block in the
# Python domain; blocks from before the attach that grow after it through
# CPython's inlined allocator (a call, or the tail jump of the exported
# PyMem_Realloc and PyMem_RawMalloc) are new traces of their full size, as
# tracemalloc makes them.
REALLOC = os.path.join(SOURCES, "py_realloc.py")


def realloc_reference(python, mode, workload, free_lists=False):
    """tracemalloc's figures by line for workload (ref MODE). Its lines are
    given one at a time, once it has printed the line before, as the traced
    runs are: a readline whose line is buffered already reads no chunk, one
    that waits for it does, and the chunk's size is an int that 3.14 takes
    from its free list (moving the int freed last to the wait line)."""
    flag = ["free-lists"] if free_lists else []
    ref = subprocess.Popen(command(python) + [workload, "ref", mode] + flag,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    timer = threading.Timer(120, ref.kill)
    timer.start()
    try:
        last = None
        for last in ref.stdout:
            if last.strip() in ("ready", "done"):
                ref.stdin.write("\n")
                ref.stdin.flush()
        assert ref.wait() == 0, "the reference run exited %d" % ref.returncode
    finally:
        timer.cancel()
        if ref.poll() is None:
            ref.kill()
            ref.wait()
    return {line: (size, count) for line, size, count in json.loads(last)}


def realloc_traced(python, mode, workload, free_lists=False):
    """The tracer's report (--domain python, -v) on py_realloc.py: attached
    with --hook-pymalloc once its early blocks exist, or launching it with
    --python-malloc; and its stderr lines. With free_lists, the workload's
    free-list lines and the tracer's --python-free-lists (else
    --no-python-free-lists)."""
    extra, flag = ((["--python-free-lists"], ["free-lists"]) if free_lists
                   else (["--no-python-free-lists"], []))
    if mode == "attach":
        with attached(python, ["--hook-pymalloc", "--domain", "python"] + extra,
                      workload=workload, args=["attach"] + flag) as run:
            return run.report, run.stderr_lines
    with Tracer(["-n", "1", "-v", "--python-malloc", "--domain", "python"] + extra +
                ["--"] + command(python) + [workload, "launch"] + flag) as t:
        t.expect("ready")
        t.signal(signal.SIGINT)
    return t.report, t.stderr_lines


# The line where the program waits for the tracer's report: the tracer
# reports while the program is inside that readline, tracemalloc's snapshot
# comes once it returned (the temporaries of a blocked read differ).
WAIT_LINES = ("wait",)
# Lines whose objects come from free lists: tracemalloc moves them to the
# line that takes them (bpo-35053), the tracer by default
FREE_LIST_LINES = ("dict_of_lists", "free_list_first", "free_list_reused", "churn_freed",
                   "churn_kept")
NEWREF_PROBED = re.compile(r"probe CPython's object initialisations at (\d+) places")
NEWREF_OFF = "keeps the line it was allocated at (--no-python-free-lists)"


def assert_newref_probes(err, free_lists):
    """Moving objects from free lists, the object initialisations are
    probed (-v says where); with --no-python-free-lists none is, and -v
    says their objects stay."""
    probed = [int(m.group(1)) for m in map(NEWREF_PROBED.search, err) if m]
    if free_lists:
        assert len(probed) == 1 and probed[0] > 0, err
        assert not [l for l in err if NEWREF_OFF in l], err
    else:
        assert probed == [], err
        assert len([l for l in err if NEWREF_OFF in l]) == 1, err


def assert_free_lists(ref, ours, err, free_lists):
    """Moving objects from free lists: the free-list lines are
    tracemalloc's; with --no-python-free-lists the 40 lists reused at
    free_list_reused, and the 1000 kept by the churn, stay at the line
    that first made them."""
    reused = site("py_realloc.py", "free_list_reused")
    assert ref[reused][1] >= 41, ref  # 40 lists and the list of them
    assert_newref_probes(err, free_lists)
    if free_lists:
        for name in FREE_LIST_LINES:
            l = site("py_realloc.py", name)
            assert ours.get(l, (0, 0)) == ref.get(l, (0, 0)), (name, ref.get(l), ours.get(l))
    else:
        # not bounded by the free list's 80 lists: every kept list of the
        # churn but the first took the block of the one freed before it
        # (left: that list and keep's item array)
        kept = site("py_realloc.py", "churn_kept")
        assert ref[kept][1] >= 1000 and ours.get(kept, (0, 0))[1] <= 2, (ref[kept], ours.get(kept))
        assert ref[reused][1] - ours.get(reused, (0, 0))[1] >= 40, (ref[reused], ours.get(reused))


def assert_realloc_parity(python, mode, workload=REALLOC, apart=WAIT_LINES, free_lists=False):
    ref = realloc_reference(python, mode, workload, free_lists)
    report, err = realloc_traced(python, mode, workload, free_lists)
    assert report is not None, err
    line = lambda name: site("py_realloc.py", name)
    # the workload grows what it says (tracemalloc's figures) ...
    for name, least in (("bytearray", 10000000), ("list", 800000), ("bytesio", 3000000),
                        ("str", 200000), ("array", 4000000), ("early_pymem_grow", 300000),
                        ("raw_malloc", 30000)):
        assert ref[line(name)][0] >= least, (name, ref)
    assert ref[line("early_bytearray_grow")] == (50000 + 150000 + 1, 1)
    assert ref[line("early_list_grow")][0] >= 8 * 1010  # the item array, over-allocated
    # ... and the tracer's Python domain has every line of tracemalloc's,
    # exactly; libc's realloc of a libc block from before the attach (not
    # tracemalloc's) stays out of it
    ours = workload_lines(report, workload)
    if free_lists:
        assert_free_lists(ref, ours, err, free_lists)
    else:  # the workload's lines whose objects no free list held
        assert_newref_probes(err, free_lists)
    apart = {site("py_realloc.py", n) for n in apart}
    ref = {l: v for l, v in ref.items() if l not in apart}
    assert {l: ours.get(l, (0, 0)) for l in ref} == ref, (ref, ours)
    if mode == "attach":
        found = [l for l in err if "inlined raw allocator calls libc's" in l]
        assert len(found) == 1 and "(4 tail jumps)" in found[0], err
        assert report["losses"]["realloc_domain_unknown"] >= 1
        assert report["traced_memory"]["native"]["current"] >= 64000, report["traced_memory"]


@pytest.mark.parametrize("free_lists", [False, True], ids=["", "free_lists"])
@pytest.mark.parametrize("mode", ["attach", "launch"])
def test_debian_reallocs_stay_in_the_python_domain(mode, free_lists):
    assert_realloc_parity(debian_python(), mode, free_lists=free_lists)


def test_debian_sites_found_with_tracemalloc_running_at_attach():
    """The inlined raw allocator's calls of libc's are found by the raw
    table's default functions, which the compiled guards compare with: a
    tracemalloc running at the attach (its hooks in the table) and stopped
    after it leaves the blocks those calls make in the Python domain."""
    python = debian_python()
    ref = realloc_reference(python, "attach", REALLOC)
    with attached(python, ["--domain", "python"], workload=REALLOC,
                  args=("attach-tm",)) as run:
        report, err = run.report, run.stderr_lines
    assert report is not None, err
    found = [l for l in err if "inlined raw allocator calls libc's" in l]
    assert len(found) == 1 and "(4 tail jumps)" in found[0], err
    assert any("its default is" in l for l in err), err
    ours = workload_lines(report, REALLOC)
    # bytearray.extend's block grows by libc's realloc from CPython's
    # inlined allocator: tracemalloc's figure, in the Python domain
    line = site("py_realloc.py", "bytearray")
    assert ref[line][0] >= 10000000, ref
    assert ours.get(line) == ref[line], (ref[line], ours.get(line))


UNSEEN = os.path.join(SOURCES, "py_unseen_frees.py")


def test_debian_hooked_frees_no_probe_sees_are_counted():
    """Debian's LTO 3.11 under --hook-pymalloc: the separators' 3-byte
    pymalloc buffers (the inlined realloc of NULL) are freed by the inlined
    pymalloc free, which no probe sees: each one whose address pymalloc
    gives out again is counted as such, a loss; the last, found free in its
    pool at the report, is forgotten then, and counted too."""
    n = 2000
    with attached(debian_python(), ["--hook-pymalloc", "--domain", "python"],
                  workload=UNSEEN, args=(str(n),)) as run:
        report, err = run.report, run.stderr_lines
    assert report is not None, err
    # pymalloc gives the freed block out again at once: every one but the last
    assert report["losses"]["frees_unseen"] == n - 1, report["losses"]
    assert report["losses"]["frees_found_in_pools"] == 1, report["losses"]
    assert report["losses"]["pool_marks_full"] == 0, report["losses"]
    assert report["losses"]["pool_checks_failed"] == 0, report["losses"]
    assert site("py_unseen_frees.py", "separator") not in workload_lines(report, UNSEEN), \
        report


# launch: chroot maps the host's libc and then execs the chroot's python3.14,
# whose own libc its dynamic linker loads: probed at the exec and loader stops
@pytest.mark.parametrize("free_lists", [False, True], ids=["", "free_lists"])
@pytest.mark.parametrize("mode", ["attach", "launch"])
def test_python314_reallocs_stay_in_the_python_domain(forky, mode, free_lists):
    shutil.copy(REALLOC, FORKY + forky)
    assert_realloc_parity(PY314, mode, forky + "/py_realloc.py", free_lists=free_lists)


@pytest.mark.parametrize("minor,flag", [("3.11", "--python-free-lists"), ("3.12", None),
                                        ("3.12", "--no-python-free-lists")],
                         ids=["3.11-asked", "3.12-default", "3.12-off"])
def test_free_lists_move_objects_as_tracemalloc_does(minor, flag):
    """pyenv's CPython (a shared libpython, pymalloc probed), attached: by
    default (or asked for) the lines that take objects from free lists have
    tracemalloc's figures; with --no-python-free-lists no object
    initialisation is probed (none of its cost) and the 40 reused lists
    stay at the line that first made them."""
    python = pyenv_python(minor)
    free_lists = flag != "--no-python-free-lists"
    ref = realloc_reference(python, "attach", REALLOC, free_lists=True)
    extra = ["--domain", "python"] + ([flag] if flag else [])
    with attached(python, extra, workload=REALLOC, args=("attach", "free-lists")) as run:
        report, err = run.report, run.stderr_lines
    assert report is not None, err
    assert warnings(err) == [], err
    assert_free_lists(ref, workload_lines(report, REALLOC), err, free_lists)


def test_free_lists_said_where_they_cannot_move():
    """--python-free-lists where it cannot work, said in one warning line:
    Debian's python3.11 attached without --hook-pymalloc (pymalloc inlined
    and unprobed), and a process that runs no CPython. Not asked for (the
    default), neither is a warning."""
    with attached(debian_python(), ["--domain", "python", "--python-free-lists"],
                  workload=REALLOC, args=("attach", "free-lists")) as run:
        err = run.stderr_lines
    said = [l for l in warnings(err) if "--python-free-lists" in l]
    assert len(said) == 1 and "hides pymalloc" in said[0], err
    assert not [m for m in map(NEWREF_PROBED.search, err) if m], err
    with Workload([workload("maps_elf"), "/bin/true"]) as w:
        with Tracer(["--python-free-lists"], attach=w.pid) as t:
            w.run("\n")
            t.signal()
    said = [l for l in warnings(t.stderr_lines) if "--python-free-lists" in l]
    assert len(said) == 1 and "no CPython" in said[0], t.stderr_lines
    with attached(debian_python(), ["--domain", "python"], workload=REALLOC,
                  args=("attach", "free-lists")) as run:
        err = run.stderr_lines
    assert [l for l in warnings(err) if "free-lists" in l] == [], err
    with Workload([workload("maps_elf"), "/bin/true"]) as w:
        with Tracer([], attach=w.pid) as t:
            w.run("\n")
            t.signal()
    assert [l for l in warnings(t.stderr_lines) if "free-lists" in l] == [], t.stderr_lines


# A class whose __init__ allocates: from 3.13 a shim frame (_Py_InitCleanup)
# sits between the caller and __init__, shown by neither tracemalloc nor us.
INIT = os.path.join(SOURCES, "py_init.py")


def init_reference(python, workload=INIT, nframe=5):
    """tracemalloc's tracebacks (lines, most recent first) of py_init.py,
    with their sizes and counts."""
    out = subprocess.run(command(python) + [workload, "ref", str(nframe)], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    return {tuple(lines): (size, count) for lines, size, count in json.loads(out)}


def init_tracebacks(report, workload=INIT):
    """Ours, likewise: the statistics by traceback that start in workload."""
    return {tuple(f["lineno"] for f in st["frames"]): (st["size"], st["count"])
            for st in report["statistics"] if st["frames"][0]["filename"] == workload}


def assert_init_parity(ref, ours):
    init = site("py_init.py", "init")
    ref_init = {tb: v for tb, v in ref.items() if tb[0] == init}
    assert len(ref_init) == 1, ref
    # the __init__ allocations: the same single traceback, exactly
    assert {tb: v for tb, v in ours.items() if tb[0] == init} == ref_init
    assert list(ref_init)[0][:4] == (init, site("py_init.py", "construct"),
                                     site("py_init.py", "main"), site("py_init.py", "module"))


def test_init_shim_is_not_a_frame_313():
    python = pyenv_python("3.13")
    with attached(python, ["-k", "traceback"], nframe=5, workload=INIT, args=()) as run:
        assert run.report is not None, run.stderr_lines
        assert_init_parity(init_reference(python), init_tracebacks(run.report))


def test_init_shim_is_not_a_frame_314(forky):
    workload = forky + "/py_init.py"
    shutil.copy(INIT, FORKY + forky)
    with attached(PY314, ["--hook-pymalloc", "-k", "traceback"], nframe=5, workload=workload,
                  args=()) as run:
        assert run.report is not None, run.stderr_lines
        assert_init_parity(init_reference(PY314, workload), init_tracebacks(run.report, workload))


# A process in its own pid namespace (a container), traced by its host pid:
# CPython 3.11+ keep the namespace's thread id in native_thread_id.
def namespaced_report(python, extra=(), workload=WORKLOAD):
    """py_sites.py in attach mode under unshare --pid --fork --mount-proc,
    traced by the host pid of its interpreter."""
    if not shutil.which("unshare"):
        pytest.skip("no unshare (util-linux)")
    with Workload(["unshare", "--pid", "--fork", "--mount-proc"] + command(python) +
                  [workload, "attach"]) as w:
        inner = int(subprocess.check_output(["pgrep", "-P", str(w.pid)], text=True).split()[0])
        with open("/proc/%d/status" % inner) as f:
            nspid = [l.split()[1:] for l in f if l.startswith("NSpid:")][0]
        assert len(nspid) == 2 and nspid[1] == "1", nspid  # pid 1 in its namespace
        with Tracer(list(extra), attach=inner) as t:
            w.run("\n")
            t.signal(signal.SIGINT)
        w.say("\n")
    return t.report


@pytest.mark.parametrize("minor", VERSIONS)
def test_python_frames_in_a_pid_namespace(minor):
    python = pyenv_python(minor)
    report = namespaced_report(python)
    assert_parity(reference(python), workload_lines(report))
    assert report["losses"]["python_frames_unreadable"] == 0


def test_python314_frames_in_a_pid_namespace(forky):
    workload = forky + "/py_sites.py"
    report = namespaced_report(PY314, ["--hook-pymalloc"], workload)
    assert_parity(reference(PY314, workload), workload_lines(report, workload))


@pytest.mark.parametrize("minor", ["2.7", "3.6", "3.7"])
def test_older_pythons_get_one_warning(minor):
    """Interpreters older than the layout table (2.7 and 3.6 have no
    _PyRuntime at all) say so once and are traced as native programs."""
    python = pyenv_python(minor)
    run = Tracer(["-n", "2", "--", python, "-c", "x = [bytearray(30000) for i in range(50)]"])
    with run:
        pass
    found = warnings(run.stderr_lines)
    assert len(found) == 1, found
    assert "CPython %s" % minor in found[0] and "tracebacks stay native" in found[0], found
    assert ("small objects (pymalloc) are not seen" in found[0]) == (minor == "2.7")
    files = {f["filename"] for s in run.report["statistics"] for f in s["frames"]}
    assert not any(f.endswith(".py") or f == "<string>" for f in files), files
    # the 50 buffers of 30000 bytes reach libc malloc and are traced (freed
    # again at exit, before the report: the peak holds them)
    assert run.report["traced_memory"]["all"]["peak"] >= 30000 * 50


EXIT = os.path.join(SOURCES, "py_exit.py")


def test_launched_python_reports_what_it_held_at_finalization():
    """A program that allocates and ends: the final report is its live set
    when Py_FinalizeEx began (as its own last take_snapshot() would see it),
    not what is left after shutdown; what shutdown did is counted."""
    python = debian_python()  # static: recognised at its exec, before any Python code
    out = subprocess.run([python, EXIT, "ref"], capture_output=True, text=True, check=True,
                         timeout=120, env=dict(os.environ, PYTHONTRACEMALLOC="1")).stdout
    ref = {line: (size, count) for line, size, count in json.loads(out)}
    report = trace(["--python-malloc", "--", python, EXIT])
    ours = workload_lines(report, EXIT)
    for name in ("held", "strings"):
        line = site("py_exit.py", name)
        assert ours.get(line, (0, 0))[1] == ref[line][1], (name, ours, ref)
        assert abs(ours[line][0] - ref[line][0]) <= 0.01 * ref[line][0], (name, ours, ref)
    assert report["notes"]["events_after_python_finalization"] > 0


@pytest.mark.parametrize("minor", ["3.12", "3.13"])
def test_attach_leaves_no_window_without_python_frames(minor):
    """Attached to a thread allocating at full speed, no Python allocation
    is recorded before the walker knows the interpreter (Python is
    configured before the allocator probes go in)."""
    python = pyenv_python(minor)
    busy = os.path.join(SOURCES, "py_busy.py")
    with Workload([python, busy]) as w:
        with Tracer(["--domain", "python"], attach=w.pid) as t:
            subprocess.run(["sleep", "0.5"])
            w.run("\n")
            t.signal(signal.SIGINT)
    files = collections.Counter(s["frames"][0]["filename"] for s in t.report["statistics"])
    assert files[busy] > 0, files
    # and every call is recorded from the start: a call caught at its entry
    # but not its return once left the thread unrecorded for good
    assert t.report["events"]["allocations"] > 20000, t.report["events"]
    native = {f: n for f, n in files.items() if not (f == busy or f.startswith("<frozen"))}
    assert native == {}, native


# A program that ends at once: its `-c` code object lives only while it
# runs, and the interpreter is recognised only once its shared libpython is
# relocated. A launched CPython stops for both (_PyRuntime_Initialize, and
# PyCode_Type's tp_dealloc of a code object that captured stacks refer to).
SHORT = "x = [bytes(1000) for _ in range(1000)]"


@pytest.mark.parametrize("minor", ["3.8", "3.11", "3.12", "3.13"])
def test_short_program_gets_its_python_lines(minor):
    python = pyenv_python(minor)
    ref = subprocess.run(
        [python, "-X", "tracemalloc", "-c", SHORT + "\nimport tracemalloc\n"
         "s = tracemalloc.take_snapshot().statistics('lineno')\n"
         "print([(t.size, t.count) for t in s if t.traceback[0].filename == '<string>'"
         " and t.traceback[0].lineno == 1][0])"],
        capture_output=True, text=True, check=True, timeout=60).stdout
    rsize, rcount = json.loads(ref.replace("(", "[").replace(")", "]"))
    report = trace(["--", python, "-c", SHORT])
    size, count = by_line(report, "<string>", exact=True)[1]
    assert abs(count - rcount) <= 16, (count, rcount)
    assert abs(size - rsize) <= 0.02 * rsize, (size, rsize)
    assert report["losses"]["python_frames_unresolved"] == 0


def test_fifty_launches_all_get_python_frames():
    """No race at launch: recognised at _PyRuntime_Initialize, before any
    Python code runs, every time."""
    python = pyenv_python("3.12")
    for i in range(50):
        report = trace(["--", python, "-c", SHORT])
        lines = by_line(report, "<string>", exact=True)
        assert lines.get(1, (0, 0))[1] >= 1000, (i, lines)


POOL = os.path.join(SOURCES, "py_pool.py")


@pytest.mark.parametrize("minor", ["3.8", "3.11", "3.12", "3.13"])
def test_follow_forked_pool_workers_get_python_lines(minor):
    """--follow on a multiprocessing pool of forked workers: the walker's
    configuration goes with each fork, and each worker's stacks resolve in
    its own memory; --keep-exited keeps what the workers held at exit."""
    python = pyenv_python(minor)
    report = trace(["--follow", "--keep-exited", "--", python, POOL])
    size, count = by_line(report, POOL, exact=True)[site("py_pool.py", "worker")]
    # 120 bytearrays (object and buffer each), and a few growths of the
    # workers' lists
    assert 240 <= count <= 256, count
    assert 120 * 10000 <= size <= 120 * (10001 + 64) + 4 * 4096, size
    assert report["losses"]["python_frames_unresolved"] == 0


TOGGLE = os.path.join(SOURCES, "py_tracemalloc_toggle.py")


@pytest.mark.parametrize("minor", ["3.12", "debian", "3.14"])
def test_tracemalloc_started_and_stopped_while_traced_is_followed(minor, request):
    """The program starts tracemalloc after the attach: its hooks, put in the
    allocator tables around what they held (CPython's pymalloc, or the raw
    allocator --hook-pymalloc put there), are probed once the tracer sees
    them, so that a block counts once and what tracemalloc allocates for
    itself (a trace per block, through the raw allocator) not at all: every
    line of tracemalloc's own snapshot, taken in the program, is the
    tracer's report of that moment. After tracemalloc.stop() the tables
    hold what they held, and the blocks made then are traced as before."""
    workload, extra = TOGGLE, []
    if minor == "3.14":
        forky = request.getfixturevalue("forky")
        shutil.copy(TOGGLE, FORKY + forky)
        python, workload, extra = PY314, forky + "/py_tracemalloc_toggle.py", ["--hook-pymalloc"]
    elif minor == "debian":
        python, extra = debian_python(), ["--hook-pymalloc"]
    else:
        python = pyenv_python(minor)
    parse = lambda line: {l: (s, c) for l, s, c in json.loads(line.split(" ", 1)[1])}
    after = parse(subprocess.run(command(python) + [workload, "ref"], capture_output=True,
                                 text=True, check=True, timeout=120).stdout.splitlines()[-1])
    with Workload(command(python) + [workload]) as w:
        with Tracer(["-n", "1", "--domain", "python"] + extra, attach=w.pid) as t:
            w.say("\n")
            w.expect("started")
            said = t.err.until(lambda l: "started tracemalloc" in l, 10)
            w.say("\n")
            w.expect("mid")
            t.signal(signal.SIGUSR1)  # while the program waits at its mid line
            mid = json.loads(t.out.until(lambda l: l.startswith("{"), 10))
            w.say("\n")
            ref = parse(w.read_until("ref "))
            w.expect("done")
            t.signal(signal.SIGINT)
        w.say("\n")
    assert said is not None and "probed now" in said and "warning" not in said, t.stderr_lines
    line = lambda name: site("py_tracemalloc_toggle.py", name)
    for name, least in (("bytearrays", 100 * 1000), ("dicts", 2000 * 200), ("str", 100000)):
        assert ref[line(name)][0] >= least, (name, ref)
    # the lines where the program waits (readline's own objects) apart
    ref = {l: v for l, v in ref.items() if l not in (line("started"), line("mid"))}
    ours = workload_lines(mid, workload)
    assert {l: ours.get(l, (0, 0)) for l in ref} == ref, (ref, ours)
    ours = workload_lines(t.report, workload)
    assert ours.get(line("after_stop")) == after[line("after_stop")], (after, ours)
    assert warnings(t.stderr_lines) == [], t.stderr_lines
    if extra:  # the hook undone: tracemalloc's stop put ours back first
        assert any("allocator tables restored" in l for l in t.stderr_lines), t.stderr_lines


@pytest.mark.parametrize("minor", ["3.12", "debian"])
def test_tracemalloc_running_at_the_attach_and_stopped_is_followed(minor):
    """tracemalloc runs when the tracer attaches (its hooks are probed) and
    the program stops it: CPython's own allocators, back in the tables,
    are probed then, so that what follows is traced as at an attach without
    tracemalloc (pymalloc's objects on pyenv's 3.12; on Debian's 3.11, its
    pymalloc inlined, the blocks that reach libc)."""
    python = python_or_debian(minor)
    parse = lambda line: {l: (s, c) for l, s, c in json.loads(line.split(" ", 1)[1])}
    after = parse(subprocess.run(command(python) + [TOGGLE, "ref"], capture_output=True,
                                 text=True, check=True, timeout=120).stdout.splitlines()[-1])
    with Workload(command(python) + [TOGGLE, "running"]) as w:
        with Tracer(["-n", "1", "--domain", "python"], attach=w.pid) as t:
            w.say("\n")
            w.expect("mid")
            t.signal(signal.SIGUSR1)
            mid = json.loads(t.out.until(lambda l: l.startswith("{"), 10))
            w.say("\n")
            ref = parse(w.read_until("ref "))
            w.expect("stopped")
            said = t.err.until(lambda l: "stopped tracemalloc" in l, 10)
            w.say("\n")
            w.expect("done")
            t.signal(signal.SIGINT)
        w.say("\n")
    assert said is not None and "probed now" in said, t.stderr_lines
    assert warnings(t.stderr_lines) == [], t.stderr_lines
    line = lambda name: site("py_tracemalloc_toggle.py", name)
    # the lines made after the attach: tracemalloc's figures, through its
    # hooks (pymalloc's hidden functions beneath them on Debian's)
    ours = workload_lines(mid, TOGGLE)
    for name in ("bytearrays", "dicts", "str"):
        assert ours.get(line(name)) == ref[line(name)], (name, ref, ours)
    # the 5 MB bytearray: its buffer from libc, its object from pymalloc
    # (seen on pyenv's, inlined on Debian's)
    size, count = after[line("after_stop")]
    expect = (size, count) if minor != "debian" else (5000001, 1)
    assert workload_lines(t.report, TOGGLE).get(line("after_stop")) == expect, t.report
