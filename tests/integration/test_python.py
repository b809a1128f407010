"""Python frames from outside: the tracer's lineno statistics for a CPython
workload against tracemalloc's own for the same workload, on every
interpreter present."""
import glob
import json
import os
import signal
import subprocess

import pytest

from conftest import TRACER, SOURCES, site

WORKLOAD = os.path.join(SOURCES, "py_sites.py")
PYENV = os.path.expanduser("~/.pyenv/versions")
VERSIONS = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13"]


def interpreter(minor):
    found = sorted(glob.glob(os.path.join(PYENV, minor + ".*", "bin", "python" + minor)))
    return found[-1] if found else None


def reference(python):
    out = subprocess.run([python, WORKLOAD, "ref", "1"], capture_output=True, text=True,
                         check=True, timeout=120).stdout
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


def by_line(report):
    out = {}
    for st in report["statistics"]:
        f = st["frames"][0]
        if f["filename"] == WORKLOAD:
            out[f["lineno"]] = (st["size"], st["count"])
    return out


@pytest.mark.parametrize("minor", VERSIONS)
def test_parity_with_tracemalloc(minor):
    python = interpreter(minor)
    if not python:
        pytest.skip("no CPython %s on this machine (pyenv)" % minor)
    ref = reference(python)
    report = traced(python)
    ours = by_line(report)
    for name in ("big", "small", "nested", "gen", "thread"):
        line = site("py_sites.py", name)
        rsize, rcount = ref[line]
        size, count = ours.get(line, (0, 0))
        assert abs(size - rsize) <= 0.05 * rsize, (name, size, rsize)
        assert abs(count - rcount) <= 0.05 * rcount, (name, count, rcount)
    # temporaries were freed again
    assert ours.get(site("py_sites.py", "temporary"), (0, 0))[0] < 9000 * 5
    # the dominant sites come in tracemalloc's order
    dominant = [l for l, (s, c) in sorted(ref.items(), key=lambda kv: -kv[1][0]) if s > 200000]
    ours_order = [l for l, (s, c) in sorted(ours.items(), key=lambda kv: -kv[1][0]) if l in dominant]
    assert ours_order == dominant
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
    for name in ("big", "small", "nested", "gen", "thread"):
        line = site("py_sites.py", name)
        rsize, rcount = ref[line]
        size, count = ours.get(line, (0, 0))
        assert abs(size - rsize) <= 0.05 * rsize, (name, size, rsize)
        assert abs(count - rcount) <= 0.05 * rcount, (name, count, rcount)


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
    ref = reference(python)
    for name in ("big", "small", "nested", "gen", "thread"):
        line = site("py_sites.py", name)
        assert abs(by_line(py)[line][0] - ref[line][0]) <= 0.05 * ref[line][0], name
    # each run is its own process: compare the shares, not the bytes
    total = lambda r: sum(s["size"] for s in r["statistics"])
    assert abs(total(py) + total(libc) - total(both)) <= 0.05 * total(both)
