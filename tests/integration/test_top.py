"""tracer top driven in a real terminal (tmux): the live view shows the
workload's sites, refreshes, changes grouping on a key, and gives the
terminal back as it was on q and on SIGTERM."""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from helpers import TRACER, Workload, site, workload

SRC = "native.c"


def tmux(*args):
    return subprocess.run(["tmux", "-L", "tracer-test"] + list(args), capture_output=True,
                          text=True, timeout=10)


def pane():
    return tmux("capture-pane", "-t", "top", "-p").stdout


def wait_for(test, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = pane()
        if test(text):
            return text
        time.sleep(0.2)
    raise AssertionError("pane never showed it:\n" + pane())


@pytest.fixture
def terminal(tmp_path):
    if not shutil.which("tmux"):
        pytest.skip("no tmux")
    tmux("kill-server")
    assert tmux("new-session", "-d", "-s", "top", "-x", "160", "-y", "40", "sh").returncode == 0
    yield tmp_path
    tmux("kill-server")


def start_top(tmp_path, pid):
    before, after, status = (tmp_path / n for n in ("before", "after", "status"))
    tmux("send-keys", "-t", "top",
         "stty -a > %s; %s top -p %d; echo $? > %s; stty -a > %s" % (before, TRACER, pid,
                                                                     status, after), "Enter")
    wait_for(lambda t: "tracer top - pid %d" % pid in t)
    return before, after, status


def ended(before, after, status):
    end = time.monotonic() + 15
    while not (status.exists() and after.exists() and after.read_text()):
        assert time.monotonic() < end, "tracer top did not end:\n" + pane()
        time.sleep(0.2)
    assert status.read_text().strip() == "0"
    assert after.read_text() == before.read_text()  # the terminal's modes as they were
    assert "tracer top - pid" not in pane()  # its screen is gone


def line_of(name):
    return "%s:%d" % (SRC, site(SRC, name))


def test_top_shows_refreshes_and_quits(terminal):
    with Workload([workload("native"), "wait"]) as w:
        before, after, status = start_top(terminal, w.pid)
        w.run("go\n")
        text = wait_for(lambda t: line_of("malloc") in t)
        row = [l for l in text.splitlines() if line_of("malloc") in l][0]
        assert re.match(r"\s*4000 KiB\s+[+-][\d.]+ \S*B\s+1000\s", row), row
        refresh = int(re.search(r"refresh (\d+)", text).group(1))
        wait_for(lambda t: int(re.search(r"refresh (\d+)", t).group(1)) > refresh)
        tmux("send-keys", "-t", "top", "g")
        text = wait_for(lambda t: "group by filename" in t)
        assert re.search(r"4850 KiB\s+[+-][\d.]+ \S*B\s+2361\s+\S*native\.c:0", text), text
        tmux("send-keys", "-t", "top", "q")
        ended(before, after, status)


def test_top_gives_the_terminal_back_on_sigterm(terminal):
    with Workload([workload("native"), "wait"]) as w:
        before, after, status = start_top(terminal, w.pid)
        out = subprocess.run(["pgrep", "-f", "%s top -p %d" % (TRACER, w.pid)],
                             capture_output=True, text=True).stdout.split()
        assert out, "no tracer top process"
        for pid in out:
            os.kill(int(pid), signal.SIGTERM)
        ended(before, after, status)


def test_top_needs_a_process_and_a_terminal():
    p = subprocess.run([TRACER, "top", "--", "/bin/true"], capture_output=True, text=True)
    assert p.returncode == 2 and "-p PID" in p.stderr
    p = subprocess.run([TRACER, "top", "-p", str(os.getpid())], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and "terminal" in p.stderr
    p = subprocess.run([TRACER, "top", "-p", "1", "--format", "json"], capture_output=True,
                       text=True)
    assert p.returncode == 2 and "tracer top shows its own view" in p.stderr
