"""--hook-pymalloc facing what another left: a process left hooked by a
tracer killed with SIGKILL, and a process whose tables hold tracemalloc's
hooks (-X tracemalloc), on Debian's python3.11 (stripped, LTO), pyenv's
3.12 and forky's python3.14 (stripped, LTO, in a chroot)."""
import os
import signal
import subprocess
import time

import pytest

from helpers import SOURCES, Tracer, Workload, by_line, run_tracer, site
from test_python import (PY314, WORKLOAD, allocator_tables, assert_parity, attached, command,
                         pyenv_python, warnings,
                         debian_python, forky, python_or_debian, read_slots, reference,
                         workload_lines)

# forky (imported) is the fixture interpreter() asks for 3.14
INTERPRETERS = ["debian", "3.12", "3.14"]
STRIPPED = ("debian", "3.14")  # LTO builds that hide pymalloc


def interpreter(minor, request):
    """The interpreter (a command) and py_sites.py as it sees it: 3.14 is
    forky's, in its chroot (skipped without it)."""
    if minor == "3.14":
        return PY314, request.getfixturevalue("forky") + "/py_sites.py"
    return python_or_debian(minor), WORKLOAD


def hook_and_kill(pid):
    """A --hook-pymalloc tracer on pid killed with SIGKILL once hooked: the
    tables it found (raw, mem, obj), their slots before it and after it."""
    with Tracer(["--hook-pymalloc"], attach=pid, check=False) as t:
        tables = allocator_tables(t.stderr_lines)
        assert tables, t.stderr
        t.kill()
    return tables


def assert_balanced(report):
    """Allocations less frees are the live traces (-t 0: every statistic),
    within 1 % (a realloc of a block from before the attach is traced
    without an allocation): no free of a traced block went unseen, where
    unseen frees leave thousands (an address reused replaces its block in
    the table, counted live once)."""
    live = sum(s["count"] for s in report["statistics"])
    events = report["events"]
    assert abs(events["allocations"] - events["frees"] - live) <= 0.01 * live, (events, live)


def assert_near(ref, ours):
    """tracemalloc's figures for every site within 5 %, or 2 blocks and 64
    bytes: on Debian's 3.11 the nested site, whose one block is its list,
    also shows two libc blocks of tracemalloc's own (32 and 24 bytes, under
    _Py_hashtable_set beneath PyList_New: a new traceback and its table
    entry, which tracemalloc allocates outside any allocator call when a
    list comes from the free list), which tracemalloc does not count."""
    for name in ("big", "small", "nested", "gen", "thread"):
        line = site("py_sites.py", name)
        rsize, rcount = ref[line]
        size, count = ours.get(line, (0, 0))
        assert abs(size - rsize) <= max(0.05 * rsize, 64), (name, size, rsize)
        assert abs(count - rcount) <= max(0.05 * rcount, 2), (name, count, rcount)


@pytest.mark.parametrize("minor", INTERPRETERS)
def test_a_process_left_hooked_is_said_traced_and_restored(minor, request):
    python, source = interpreter(minor, request)
    with Workload(command(python) + [source, "attach"]) as w:
        with Tracer(["-d", "0.5"], attach=w.pid) as t:
            pass
        tables = allocator_tables(t.stderr_lines)
        before = read_slots(w.pid, tables)
        raw, mem, obj = before
        assert mem != raw and obj != raw
        hook_and_kill(w.pid)
        # SIGKILL restores nothing: the tables still call the raw allocator
        assert read_slots(w.pid, tables) == [raw, raw, raw]

        # a plain attach says so in one line, without the coverage warning,
        # writes nothing and traces every block as the hook does
        with Tracer(["-n", "1"], attach=w.pid) as t:
            w.run("\n")
            t.signal(signal.SIGINT)
        err = t.stderr_lines
        said = [l for l in err if "left hooked by an earlier --hook-pymalloc" in l]
        assert len(said) == 1 and "every block is traced" in said[0], err
        assert not any("hides pymalloc" in l or "512 bytes" in l for l in err), err
        assert read_slots(w.pid, tables) == [raw, raw, raw]
        assert_parity(reference(python, source), workload_lines(t.report, source))
        assert_balanced(t.report)

        # a second --hook-pymalloc takes the hook over and, at its end, puts
        # back CPython's own functions: the slots as they were at first
        with Tracer(["--hook-pymalloc", "-d", "0.5"], attach=w.pid) as t:
            pass
        err = t.stderr_lines
        assert sum("left hooked" in l and "taken over" in l for l in err) == 1, err
        assert not any("now call the raw allocator" in l for l in err), err
        assert sum("allocator tables restored" in l for l in err) == 1, err
        assert read_slots(w.pid, tables) == before

        # and a plain attach now finds them as CPython made them
        with Tracer(["-d", "0.5"], attach=w.pid) as t:
            pass
        assert not any("left hooked" in l for l in t.stderr_lines), t.stderr
        assert any("hides pymalloc" in l for l in t.stderr_lines) == (minor in STRIPPED)
        w.say("\n")


@pytest.mark.parametrize("minor", INTERPRETERS)
def test_a_process_running_tracemalloc(minor, request):
    python, source = interpreter(minor, request)
    with Workload(command(python) + ["-X", "tracemalloc", source, "attach"]) as w:
        # --hook-pymalloc refuses with one line and writes nothing
        p = run_tracer(["--hook-pymalloc", "-p", str(w.pid), "-v", "-d", "1"], check=False)
        assert p.returncode == 2, p.stderr
        assert "tracemalloc" in p.stderr.strip().splitlines()[-1], p.stderr
        tables = allocator_tables(p.stderr.splitlines())
        assert tables, p.stderr
        before = read_slots(w.pid, tables)
        assert not any("restored" in l or "now call" in l for l in p.stderr.splitlines())
        assert not any("Traceback" in l for l in p.stderr.splitlines())

        # a plain attach says so in one line and traces through its hooks
        with Tracer(["-n", "1"], attach=w.pid) as t:
            w.run("\n")
            t.signal(signal.SIGINT)
        err = t.stderr_lines
        assert sum("runs tracemalloc" in l for l in err) == 1, err
        assert not any("hides pymalloc" in l for l in err), err
        assert read_slots(w.pid, tables) == before
        assert_near(reference(python, source), workload_lines(t.report, source))
        # every free of a traced block is seen (tracemalloc's free hook
        # serves the three tables): what is live is what was allocated and
        # not freed, exactly
        assert_balanced(t.report)
        w.say("\n")


# the signals that end the tracer besides those test_python's hook test
# sends (INT, TERM, QUIT, ALRM, HUP): each restores the tables too
ENDING = [signal.SIGXCPU, signal.SIGXFSZ, signal.SIGVTALRM, signal.SIGPROF, signal.SIGPWR,
          signal.SIGSTKFLT, signal.SIGIO]


@pytest.mark.parametrize("stop", ENDING, ids=[s.name.lower() for s in ENDING])
def test_every_ending_signal_restores_the_tables(stop):
    with attached(debian_python(), ["--hook-pymalloc"], stop) as run:
        raw, mem, obj = run.during
        assert mem == raw and obj == raw
        assert run.after[1] != raw and run.after[2] != raw and run.after[0] == raw
        assert sum("allocator tables restored" in l for l in run.stderr_lines) == 1
        assert run.report is not None


def test_sigpipe_does_not_end_the_tracer():
    """SIGPIPE is ignored (a closed stdout is an error to report): the
    tracer goes on with the tables hooked, and restores them at its end."""
    with Workload(command(debian_python()) + [WORKLOAD, "attach"]) as w:
        with Tracer(["--hook-pymalloc"], attach=w.pid) as t:
            tables = allocator_tables(t.stderr_lines)
            t.signal(signal.SIGPIPE)
            time.sleep(0.5)
            assert t.process.poll() is None, t.stderr
            raw, mem, obj = read_slots(w.pid, tables)
            assert mem == raw and obj == raw
            t.signal(signal.SIGINT)
        raw, mem, obj = read_slots(w.pid, tables)
        assert mem != raw and obj != raw
        assert sum("allocator tables restored" in l for l in t.stderr_lines) == 1
        w.say("\n")


MIDWAY = os.path.join(SOURCES, "py_table_midway.c")


def test_a_table_slot_where_no_function_starts_is_not_probed(tmp_path):
    """The tables are the process's to write: a slot that points where no
    function starts (no FDE starts there; a probe could sit inside an
    instruction, and under --follow in every process mapping the file) is
    left unprobed, said in one warning, and the other allocators are traced
    as ever. py_table_midway embeds pyenv's 3.12 with its raw calloc slot at
    the second of two instructions of its own, without CFI."""
    config = pyenv_python("3.12") + "-config"
    flags = subprocess.run([config, "--includes", "--ldflags", "--embed"], capture_output=True,
                           text=True, check=True).stdout.split()
    binary = str(tmp_path / "py_table_midway")
    subprocess.run(["cc", "-O2", "-o", binary, MIDWAY] + flags, check=True)
    with Workload([binary]) as w:
        with Tracer(["--domain", "python"], attach=w.pid) as t:
            w.run("\n")
            t.signal(signal.SIGINT)
    said = warnings(t.stderr_lines)
    assert len(said) == 1 and "raw allocator table" in said[0], t.stderr_lines
    # nothing of the program's own file probed (libc and libpython are)
    assert not [l for l in t.stderr_lines if "probe" in l and binary in l], t.stderr_lines
    # the program's 100 bytearrays (object and buffer each) and their list,
    # at their line
    size, count = by_line(t.report, "<string>", exact=True)[2]
    assert 201 <= count <= 202 and size >= 100 * (1001 + 56), (size, count)
