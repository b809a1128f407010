"""Do no harm: programs run under the tracer give exactly what they give
untraced. CPython's own regression tests (pyenv 3.12's test package:
test_json, test_dict), launched and attached; Debian's sqlite3 on a script
with known output, launched."""
import glob
import os
import re
import signal
import subprocess

import pytest

from helpers import TRACER, Tracer, Workload, run_tracer

TESTS = ["test_json", "test_dict"]


def python312():
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12.*/bin/python3.12")))
    if not found or not os.path.isdir(os.path.join(os.path.dirname(found[-1]), "..", "lib",
                                                   "python3.12", "test", "test_json")):
        pytest.skip("no CPython 3.12 with its test package (pyenv)")
    return found[-1]


def summary(out):
    """regrtest's verdict: the test counts and the result line."""
    lines = [l for l in out.splitlines()
             if re.match(r"(Total tests|Total test files|Result):", l)]
    assert any(l.startswith("Result:") for l in lines), out[-2000:]
    return lines


def test_cpython_regression_tests_launched():
    python = python312()
    plain = subprocess.run([python, "-m", "test"] + TESTS, capture_output=True, text=True,
                           timeout=300)
    traced = run_tracer(["-t", "1", "--", python, "-m", "test"] + TESTS, timeout=300)
    assert summary(traced.stdout) == summary(plain.stdout)
    assert "Result: SUCCESS" in summary(plain.stdout)


RUNNER = ("import sys\n"
          "print('ready', flush=True); sys.stdin.readline()\n"
          "from test.libregrtest.main import main\n"
          "main(%r)\n" % TESTS)


def test_cpython_regression_tests_attached():
    python = python312()
    plain = subprocess.run([python, "-c", RUNNER], input="go\n", capture_output=True,
                           text=True, timeout=300)
    with Workload([python, "-c", RUNNER]) as w:
        with Tracer([], attach=w.pid) as t:
            w.say("go\n")
            assert w.out.until(lambda l: l.startswith("Result:"), 300)
            t.signal(signal.SIGINT)
    assert t.report["events"]["allocations"] > 10000  # it was traced
    assert summary("\n".join(w.out.lines)) == summary(plain.stdout)


SQL = """create table t(a integer primary key, b text);
with recursive n(i) as (select 1 union all select i + 1 from n where i < 20000)
insert into t(b) select printf('row %d %x', i, i * 2654435761 % 4294967296) from n;
create index tb on t(b);
select count(*), sum(length(b)), max(b) from t;
select b from t where a % 2500 = 0 order by b;
"""


def test_sqlite3_output_identical():
    if not os.path.exists("/usr/bin/sqlite3"):
        pytest.skip("no /usr/bin/sqlite3")
    plain = subprocess.run(["/usr/bin/sqlite3", ":memory:"], input=SQL, capture_output=True,
                           text=True, timeout=60, check=True)
    p = subprocess.run([TRACER, "-n", "8", "-t", "1", "--", "/usr/bin/sqlite3", ":memory:"],
                       input=SQL, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    # the program's output first, then the tracer's report
    assert p.stdout.startswith(plain.stdout), (p.stdout[:500], plain.stdout[:500])
