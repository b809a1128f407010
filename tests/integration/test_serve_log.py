"""tracer serve --log: a line per request, exact; SIGHUP opens the log
again after a rotation (the next requests land in the new file, the old
one keeps its lines) and ends neither serve nor its tracing, with or
without --log; the log file is refused through a link or when not a
regular file (status 2, one line)."""
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request

from helpers import TRACER, workload, serve_address

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ 127\.0\.0\.1 (\S+) (\S+) (\d{3}) (\d+) "
                  r"\d+\.\d{3}$")


def start(args):
    p = subprocess.Popen([TRACER, "serve", "-v", "--listen", "127.0.0.1:0"] + args +
                         ["--", workload("requests"), "60"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    base = serve_address(p, "tracing pid")
    assert base, "tracer serve did not start"
    return p, base


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def lines(path):
    return [LINE.match(l).groups() for l in open(path).read().splitlines()]


def test_log_lines_and_sighup_reopens(tmp_path):
    log = tmp_path / "serve.log"
    p, base = start(["--log", str(log)])
    try:
        status, body = get(base + "/metrics")
        assert status == 200
        status, missing = get(base + "/nothing")
        assert status == 404
        time.sleep(0.2)
        assert lines(log) == [("GET", "/metrics", "200", str(len(body))),
                              ("GET", "/nothing", "404", str(len(missing)))]
        os.rename(log, tmp_path / "serve.log.1")  # logrotate's move
        p.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert p.poll() is None, "SIGHUP ended tracer serve"
        status, body = get(base + "/metrics")
        assert status == 200 and b"tracer_traced_bytes" in body
        time.sleep(0.2)
        assert lines(log) == [("GET", "/metrics", "200", str(len(body)))]
        assert len(lines(tmp_path / "serve.log.1")) == 2
    finally:
        p.terminate()
        assert p.wait(timeout=30) == 0


def test_sighup_without_a_log_ends_nothing():
    p, base = start([])
    try:
        p.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert p.poll() is None, "SIGHUP ended tracer serve"
        assert get(base + "/metrics")[0] == 200
    finally:
        p.terminate()
        assert p.wait(timeout=30) == 0


def test_a_log_through_a_link_or_not_a_file_is_refused(tmp_path):
    (tmp_path / "real").write_text("")
    os.symlink(tmp_path / "real", tmp_path / "link")
    for bad in (tmp_path / "link", tmp_path, "/dev/null"):
        r = subprocess.run([TRACER, "serve", "--log", str(bad), "--", "true"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2, (bad, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "log" in r.stderr, r.stderr
    assert (tmp_path / "real").read_text() == ""
    r = subprocess.run([TRACER, "--log", str(tmp_path / "x"), "--", "true"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "serve" in r.stderr
