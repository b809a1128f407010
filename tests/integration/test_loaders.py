"""Allocators that arrive after the tracer has placed its first probes: a
library preloaded by a wrapper (env LD_PRELOAD=...), one preloaded into the
tracer's own environment, musl's C library (its own dynamic linker), a
library dlopen'd later, and the new image of an exec — launched (stopped at
the exec and at the dynamic linker's _dl_debug_state until probed) and
attached (probed soon after). Exact per-line figures of the program, and
nothing of the wrapper it exec'd from."""
import glob
import json
import os
import subprocess

import pytest

from helpers import TRACER, Tracer, Workload, by_line, site, trace, workload

SRC = "native.c"
LIBDIR = "/usr/lib/x86_64-linux-gnu"
JEMALLOC = os.path.join(LIBDIR, "libjemalloc.so.2")
# dlopen-able (jemalloc is not: its TLS is initial-exec)
TCMALLOC_MINIMAL = os.path.join(LIBDIR, "libtcmalloc_minimal.so.4")
TCMALLOC = os.path.join(LIBDIR, "libtcmalloc.so.4")

# (site, size per block, live blocks) in native.c, as test_native checks them
EXPECTED = {
    "malloc": (4096, 1000),
    "calloc": (1000, 200),
    "memalign": (1000, 100),
    "freed": (300, 250),
    "thread": (512, 800),
    "deep": (2048, 10),
}


def check_native(report):
    lines = by_line(report, SRC)
    for name, (size, count) in EXPECTED.items():
        assert lines.get(site(SRC, name)) == (size * count, count), name
    assert report["losses"]["loader_stop_lost"] == 0


def need(path):
    if not os.path.exists(path):
        pytest.skip("%s is not installed" % path)


def test_wrapper_preloads_jemalloc():
    need(JEMALLOC)
    report = trace(["--", "env", "LD_PRELOAD=" + JEMALLOC, workload("native")])
    check_native(report)
    # env's own blocks went with its image
    assert report["notes"]["blocks_of_execd_or_exited_images"] > 0
    assert not [st for st in report["statistics"]
                if "/env" in st["frames"][0]["filename"]]


def test_tracer_environment_preloads_tcmalloc():
    """LD_PRELOAD in the tracer's environment reaches the command (and the
    tracer itself, which must still work)."""
    need(TCMALLOC)
    p = subprocess.run([TRACER, "--format", "json", "-t", "0", "-v", "--", workload("native")],
                       env=dict(os.environ, LD_PRELOAD=TCMALLOC), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "libtcmalloc" in p.stderr  # its malloc was probed
    check_native(json.loads(p.stdout.splitlines()[-1]))


def test_musl_program():
    if not os.path.exists(workload("native-musl")):
        pytest.skip("musl-gcc is not installed: no native-musl workload")
    check_native(trace(["--", workload("native-musl")]))


def test_shell_wrapper_exec_leaves_nothing_of_the_shell():
    report = trace(["--", "sh", "-c", 'x=$(printf "%0900d" 0); exec "$0"',
                    workload("native")])
    check_native(report)
    assert report["notes"]["blocks_of_execd_or_exited_images"] > 0


def test_dlopened_allocator_launched():
    need(TCMALLOC_MINIMAL)
    report = trace(["--", workload("dlopen_alloc"), TCMALLOC_MINIMAL])
    lines = by_line(report, "dlopen_alloc.c")
    assert lines[site("dlopen_alloc.c", "dl")] == (77700, 100)


def test_dlopened_allocator_attached():
    need(TCMALLOC_MINIMAL)
    with Workload([workload("dlopen_alloc"), TCMALLOC_MINIMAL, "wait"]) as w:
        with Tracer([], attach=w.pid) as t:
            w.run("go\n")
            t.signal()
    lines = by_line(t.report, "dlopen_alloc.c")
    assert lines[site("dlopen_alloc.c", "dl")] == (77700, 100)


def test_attached_process_execs():
    """-p on a shell that execs the workload: the new image's blocks,
    exactly; the shell's are not reported."""
    with Workload(["sh", "-c", 'echo ready; read x; exec "$0" wait', workload("native")]) as w:
        with Tracer([], attach=w.pid) as t:
            w.say("go\n")
            w.expect("ready")  # the new image
            w.run("go\n")
            t.signal()
    lines = by_line(t.report, SRC)
    for name, (size, count) in EXPECTED.items():
        assert lines.get(site(SRC, name)) == (size * count, count), name
    # the "before" blocks: allocated by the new image after its exec
    assert lines.get(site(SRC, "before")) == (8192 * 100, 100)


def test_attached_shell_execs_python():
    """-p on a shell that then execs CPython: the new image is recognised
    (Python lines) and the header names the new command."""
    pythons = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12.*/bin/python3.12")))
    if not pythons:
        pytest.skip("no CPython 3.12 on this machine (pyenv)")
    code = ("import sys\n"
            "print('ready', flush=True); sys.stdin.readline()\n"
            "x = [bytearray(10000) for _ in range(100)]\n"
            "print('done', flush=True); sys.stdin.readline()\n")
    with Workload(["sh", "-c", 'echo ready; read x; exec "$0" -c "$1"', pythons[-1],
                   code]) as w:
        with Tracer([], attach=w.pid) as t:
            w.say("go\n")
            w.expect("ready")  # CPython now
            # an attached process is not stopped: CPython is recognised a
            # loop turn after its exec
            assert t.err.until(lambda l: "CPython allocator tables" in l, 10), t.stderr
            w.run("go\n")
            t.signal()
    size, count = by_line(t.report, "<string>", exact=True)[3]
    assert count >= 100 and size >= 100 * 10000, (size, count)
    assert t.report["target"]["command"].startswith(pythons[-1]), t.report["target"]
