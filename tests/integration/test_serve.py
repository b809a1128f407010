"""tracer serve: the real go tool pprof fetching /debug/pprof/heap over HTTP
(exact inuse bytes per line, ?seconds=N deltas), a real Prometheus scraping
/metrics (and promtool checking it), /snapshot read back by tracer stats,
50 concurrent scrapes during a full-speed workload with nothing lost, and
what is refused (other paths, methods, a missing token, bad addresses)."""
import gzip
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

from helpers import (TRACER, Workload, _Lines, _Piped, pprof_raw_samples, run_tracer, site,
                     workload)

SOURCE = "phases.c"
GO = shutil.which("go")
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


class Serve(_Piped):
    """with Serve(args) as s: tracer serve -v --listen 127.0.0.1:0 on a
    launched command (args end with -- COMMAND, whose stdin and stdout are
    the tracer's, as helpers.Tracer's) or -p PID; entering waits for the
    address and for the probes. s.url(path), s.pid (the target's)."""

    def __init__(self, args, listen="127.0.0.1:0"):
        self.args = ["serve", "-v", "--listen", listen] + list(args)

    def __enter__(self):
        self.process = subprocess.Popen([TRACER] + self.args, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        self.out = _Lines(self.process.stdout, "workload stdout")
        self.err = _Lines(self.process.stderr, "tracer stderr")
        try:
            line = self.err.until(lambda l: "serving on" in l, self.timeout)
            assert line, "tracer serve ended: " + "\n".join(self.err.lines)
            self.base = re.search(r"http://\S+?(?=/ )", line).group(0)
            line = self.err.until(lambda l: "tracing pid" in l, self.timeout)
            assert line, "tracer serve ended: " + "\n".join(self.err.lines)
            self.pid = int(re.search(r"tracing pid (\d+)", line).group(1))
        except BaseException:
            self.stop()
            raise
        return self

    def url(self, path):
        return self.base + path

    def stop(self):
        """SIGINT, then its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def __exit__(self, *exc):
        self.end_input()
        self.stop()


def get(url, token=None, method="GET", timeout=30):
    """(status, headers, body) of one request."""
    req = urllib.request.Request(url, method=method)
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def go_pprof(tmp_path, *args):
    p = subprocess.run([GO, "tool", "pprof"] + list(args), capture_output=True, text=True,
                       timeout=120,
                       env=dict(os.environ, HOME="/tmp", GOCACHE="/tmp/gocache",
                                PPROF_TMPDIR=str(tmp_path), PPROF_BINARY_PATH="/nonexistent"))
    assert p.returncode == 0, p.stderr
    return p.stdout


def raw_by_line(text):
    """go tool pprof -raw's samples as {(file basename, line): (count, bytes)}
    of their leaf location (nframe 1: the only one), and their labels."""
    locations = {int(m.group(1)): (m.group(2).rsplit("/", 1)[-1], int(m.group(3)))
                 for m in re.finditer(r"^\s+(\d+): 0x[0-9a-f]+ (?:M=\d+ )?\S+ (\S+):(\d+) ",
                                      text, re.M)}
    out, labels = {}, []
    for values, ids, label in pprof_raw_samples(text):
        if not values["inuse_objects"] and not values["inuse_space"]:
            continue  # a site with nothing live: alloc_* only
        key = locations[ids[0]]
        c, b = out.get(key, (0, 0))
        out[key] = (c + values["inuse_objects"], b + values["inuse_space"])
        labels.append(label)
    return out, labels


def cgroup_of(pid):
    """The process's cgroup v2 path, as the tracer labels it."""
    for line in open("/proc/%d/cgroup" % pid):
        if line.startswith("0::"):
            return line[3:].rstrip("\n")
    return ""


def phases_lines():
    return {k: (SOURCE, site(SOURCE, k)) for k in ("grow", "temp", "late")}


@pytest.mark.skipif(not GO, reason="go tool pprof missing (Debian golang-go)")
def test_go_tool_pprof_reads_the_heap_over_http(tmp_path):
    at = phases_lines()
    with Serve(["--", workload("phases")]) as s:
        s.expect("ready")
        s.say("1\n")
        s.read_until("done")
        raw = go_pprof(tmp_path, "-raw", s.url("/debug/pprof/heap"))
        lines, labels = raw_by_line(raw)
        assert lines[at["grow"]] == (100, 100000)
        assert lines[at["temp"]] == (50, 50 * 4096)
        assert ("alloc_objects/count alloc_space/bytes inuse_objects/count "
                "inuse_space/bytes[dflt]") in raw
        # alloc_*: every block allocated at the line since tracing began
        # (phase 1's are all still live)
        leaf = {int(m.group(1)): int(m.group(2)) for m in re.finditer(
            r"^\s+(\d+): 0x[0-9a-f]+ (?:M=\d+ )?\S+ \S+:(\d+) ", raw, re.M)}
        temp = [(v["alloc_objects"], v["alloc_space"]) for v, ids, _ in pprof_raw_samples(raw)
                if leaf.get(ids[0]) == at["temp"][1]]
        assert [sum(c for c, _ in temp), sum(b for _, b in temp)] == [50, 50 * 4096], temp
        assert "PeriodType: space bytes" in raw
        want = "cgroup:[%s] comm:[phases] domain:[libc] pid:[%d]" % (cgroup_of(s.pid), s.pid)
        assert all(l == want for l in labels), labels
        # -top reads the same bytes at the line
        top = go_pprof(tmp_path, "-top", "-lines", "-sample_index=inuse_objects",
                       "-nodecount=1000", s.url("/debug/pprof/heap"))
        assert re.search(r"^\s+100\s.*add_grow .*%s:%d$" % (SOURCE, at["grow"][1]), top, re.M)
        # ?pid=: the target's is its profile, another's is not served
        status, _, body = get(s.url("/debug/pprof/heap?pid=%d" % s.pid))
        assert status == 200 and body[:2] == b"\x1f\x8b"
        status, _, _ = get(s.url("/debug/pprof/heap?pid=%d" % (s.pid + 100000)))
        assert status == 404
        for bad in ("seconds=0", "seconds=x", "seconds=601", "pid=-1"):
            assert get(s.url("/debug/pprof/heap?" + bad))[0] == 400, bad


@pytest.mark.skipif(not GO, reason="go tool pprof missing (Debian golang-go)")
def test_delta_profile_is_what_changed_in_the_window(tmp_path):
    at = phases_lines()
    with Serve(["--", workload("phases")]) as s:
        s.expect("ready")
        s.say("1\n")
        s.read_until("done")
        got = {}

        def fetch():
            got["r"] = get(s.url("/debug/pprof/heap?seconds=3"), timeout=60)

        t = threading.Thread(target=fetch)
        started = time.monotonic()
        t.start()
        time.sleep(1.0)  # the window's first snapshot is taken as the request comes
        s.say("2\n")
        s.read_until("done")
        t.join(60)
        assert time.monotonic() - started >= 3
        status, headers, body = got["r"]
        assert status == 200, body
        path = tmp_path / "delta.pb.gz"
        path.write_bytes(body)
        raw = go_pprof(tmp_path, "-raw", str(path))
        lines, _ = raw_by_line(raw)
        # phase 2 only: 300 more at grow, every temp block freed, 20 at late
        assert lines == {at["grow"]: (300, 300000), at["temp"]: (-50, -50 * 4096),
                         at["late"]: (20, 20 * 4096)}, raw
        assert re.search(r"^Duration: 3\.", raw, re.M), raw


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not PROMETHEUS or not PROMTOOL, reason="Debian's prometheus missing")
def test_prometheus_scrapes_the_traced_bytes(tmp_path):
    with Serve(["--", workload("phases")]) as s:
        s.expect("ready")
        s.say("1\n")
        s.read_until("done")
        status, headers, body = get(s.url("/metrics"))
        assert status == 200
        assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = body.decode()
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 0, p.stdout + p.stderr
        cg = re.escape(cgroup_of(s.pid))
        mine = re.search(r'^tracer_traced_bytes\{pid="%d",comm="phases",cgroup="%s"\} (\d+)$'
                         % (s.pid, cg), text, re.M)
        traced = int(mine.group(1))
        assert traced >= 100 * 1000 + 50 * 4096  # phase 1, and stdio's buffer
        assert re.search(r'^tracer_live_blocks\{pid="%d",comm="phases",cgroup="%s"\} \d+$'
                         % (s.pid, cg), text, re.M)
        assert re.search(r'^tracer_lost_events_total\{pid="\d+",comm="phases",cgroup="%s",'
                         r'reason="allocs_table_full"\} 0$' % cg, text, re.M)
        assert re.search(r"^# TYPE tracer_allocations_total counter$", text, re.M)
        assert re.search(r"^tracer_memory_bytes \d+$", text, re.M)

        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: tracer\n    static_configs:\n"
            "      - targets: ['%s']\n" % s.base[len("http://"):])
        prom = subprocess.Popen([PROMETHEUS, "--config.file=%s" % config,
                                 "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
                                 "--web.listen-address=127.0.0.1:%d" % port],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            query = ("http://127.0.0.1:%d/api/v1/query?query=tracer_traced_bytes%%7Bpid%%3D"
                     "%%22%d%%22%%7D" % (port, s.pid))
            value, deadline = None, time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    status, _, body = get(query, timeout=5)
                    result = json.loads(body)["data"]["result"] if status == 200 else []
                except (OSError, ValueError):
                    result = []
                if result:
                    value = result[0]
                    break
                time.sleep(0.3)
            assert value is not None, "prometheus never had tracer_traced_bytes"
            assert value["metric"]["job"] == "tracer" and value["metric"]["comm"] == "phases"
            assert int(value["value"][1]) == traced
        finally:
            prom.terminate()
            prom.wait(timeout=30)


def valid_proto(data):
    """True when data is a well-formed protobuf message: every field's tag,
    varint and length inside it, to its end."""
    i, n = 0, len(data)

    def varint():
        nonlocal i
        shift = v = 0
        while True:
            if i >= n or shift > 63:
                raise ValueError
            b = data[i]
            i += 1
            v |= (b & 0x7f) << shift
            shift += 7
            if not b & 0x80:
                return v

    try:
        while i < n:
            tag = varint()
            wire = tag & 7
            if wire == 0:
                varint()
            elif wire == 2:
                length = varint()
                if i + length > n:
                    return False
                i += length
            else:
                return False
        return True
    except ValueError:
        return False


def test_concurrent_scrapes_lose_nothing(tmp_path):
    with Serve(["--", workload("bench_malloc"), "40000000"]) as s:
        errors, done = [], []

        def scrape(k):
            try:
                time.sleep(k * 0.01)
                for j in range(4):
                    if j:
                        time.sleep(0.4)  # across several snapshots (one a second)
                    path = "/metrics" if (k + j) % 2 else "/debug/pprof/heap"
                    status, headers, body = get(s.url(path), timeout=60)
                    assert status == 200, (path, status, body[:200])
                    if path == "/metrics":
                        text = body.decode()
                        assert text.endswith("\n")
                        for line in text.splitlines():
                            assert re.match(r"^(# (HELP|TYPE) \w+ .+|\w+(\{.*\})? \d+(\.\d+)?)$",
                                            line), line
                        assert "tracer_allocations_total{" in text
                    else:
                        prof = gzip.decompress(body)
                        assert valid_proto(prof) and b"inuse_space" in prof
                done.append(k)
            except Exception as e:  # reported below, with every thread's
                errors.append(repr(e))

        allocations = lambda text: int(re.search(r"^tracer_allocations_total\{.*\} (\d+)$",
                                                 text, re.M).group(1))
        time.sleep(1.2)  # a snapshot of its allocations before the scrapes
        before = allocations(get(s.url("/metrics"))[2].decode())
        threads = [threading.Thread(target=scrape, args=(k,)) for k in range(50)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        elapsed = time.monotonic() - started
        assert not errors, errors[:3]
        assert len(done) == 50
        time.sleep(1.2)  # a snapshot of after the scrapes
        status, _, body = get(s.url("/metrics"))
        text = body.decode()
        assert s.process.poll() is None, "the workload ended before the scrapes did"
        allocs = allocations(text)
        # it was allocating all along: ~300,000 allocations a second traced
        # on the slowest of these machines, the scrapes ~2 s
        assert allocs - before > 200000, (before, text)
        lost = re.findall(r"^tracer_lost_(?:events|bytes)_total\{.*\} (\d+)$", text, re.M)
        assert lost and all(v == "0" for v in lost), text
        print("200 scrapes by 50 threads in %.1f s during %d allocations" % (elapsed, allocs))


def test_snapshot_is_read_by_tracer_stats(tmp_path):
    with Serve(["--", workload("phases")]) as s:
        s.expect("ready")
        s.say("1\n")
        s.read_until("done")
        status, headers, body = get(s.url("/snapshot"))
        assert status == 200 and headers["Content-Type"] == "application/octet-stream"
        status, _, head = get(s.url("/snapshot"), method="HEAD")
        assert status == 200 and head == b""
    path = tmp_path / "served.snap"
    path.write_bytes(body)
    out = json.loads(run_tracer(["stats", str(path), "--format", "json", "-t", "0"]).stdout)
    by = {(st["frames"][0]["filename"].rsplit("/", 1)[-1], st["frames"][0]["lineno"]):
          (st["size"], st["count"]) for st in out["statistics"]}
    assert by[(SOURCE, site(SOURCE, "grow"))] == (100000, 100)
    assert by[(SOURCE, site(SOURCE, "temp"))] == (50 * 4096, 50)


def test_other_paths_methods_and_the_token(tmp_path):
    token = "0123456789abcdef-serve-test"
    tf = tmp_path / "token"
    tf.write_text(token + "\n")
    tf.chmod(0o600)
    with Serve(["--token-file", str(tf), "--", workload("phases")]) as s:
        s.expect("ready")
        assert get(s.url("/metrics"))[0] == 401
        status, headers, _ = get(s.url("/metrics"), token="wrong-token-0123456789")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert get(s.url("/debug/pprof/heap"), token=token[:-1])[0] == 401
        assert get(s.url("/metrics"), token=token)[0] == 200
        assert get(s.url("/debug/pprof/heap"), token=token)[0] == 200
        for path in ("/", "/debug/pprof/", "/debug/pprof/profile", "/etc/passwd",
                     "/../../etc/passwd", "/metrics/x", "/snapshot.snap"):
            assert get(s.url(path), token=token)[0] == 404, path
        assert get(s.url("/metrics"), token=token, method="POST")[0] == 405
        assert get(s.url("/metrics"), token=token, method="DELETE")[0] == 405
        rc = s.stop()
    assert rc == 0


def test_bad_serve_arguments(tmp_path):
    loose = tmp_path / "loose"
    loose.write_text("0123456789abcdef0123\n")
    loose.chmod(0o644)
    short = tmp_path / "short"
    short.write_text("abc\n")
    short.chmod(0o600)
    link = tmp_path / "link"
    link.symlink_to(short)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = "127.0.0.1:%d" % taken.getsockname()[1]
        for args, message in [
                (["--listen", "localhost"], "invalid --listen 'localhost'"),
                (["--listen", ":6060"], "invalid --listen ':6060'"),
                (["--listen", "127.0.0.1:65536"], "invalid --listen"),
                (["--listen", "example.com:80"], "invalid --listen"),
                (["--listen", busy], "cannot listen on %s: Address already in use" % busy),
                (["--token-file", str(loose)], "readable or writable by others"),
                (["--token-file", str(short)], "one token of 16 to 4096"),
                (["--token-file", str(link)], "cannot read the token file"),
                (["--token-file", str(tmp_path / "none")], "cannot read the token file"),
                (["-o", "x.snap"], "--output applies to reports"),
                (["--format", "json"], "--format applies to reports")]:
            p = run_tracer(["serve"] + args + ["--", "/bin/true"], check=False)
            assert p.returncode == 2 and p.stderr.count("\n") == 1 and message in p.stderr, \
                (args, p.stderr)
    p = run_tracer(["--listen", "127.0.0.1:1", "--", "/bin/true"], check=False)
    assert p.returncode == 2 and "applies to 'tracer serve'" in p.stderr


def test_serve_ends_with_the_target():
    with Serve(["--", workload("phases")]) as s:
        s.expect("ready")
        s.end_input()  # the workload exits
        assert s.process.wait(timeout=30) == 0


def test_attached_and_slow_clients_do_not_stall_it():
    """-p PID; 100 connections that never finish their request hold their
    own threads only: the tracing goes on and other requests are served."""
    at = phases_lines()
    with Workload([workload("phases")]) as w, Serve(["-p", str(w.pid)]) as s:
        assert s.pid == w.pid
        host, port = s.base[len("http://"):].rsplit(":", 1)
        slow = []
        try:
            for _ in range(100):
                c = socket.create_connection((host, int(port)), timeout=10)
                c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never ends
                slow.append(c)
            w.say("1\n")
            w.read_until("done")
            time.sleep(1.1)  # past the shared snapshot's second
            started = time.monotonic()
            status, _, body = get(s.url("/debug/pprof/heap"), timeout=30)
            assert status == 200 and time.monotonic() - started < 10
            prof = gzip.decompress(body)
            assert valid_proto(prof)
            status, _, body = get(s.url("/metrics"), timeout=30)
            assert status == 200
            m = re.search(r"^tracer_allocations_total\{.*\} (\d+)$", body.decode(), re.M)
            assert int(m.group(1)) >= 150  # phase 1, traced while they hang
        finally:
            for c in slow:
                c.close()
        path = None
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "h.pb.gz")
            with open(path, "wb") as f:
                f.write(get(s.url("/debug/pprof/heap"))[2])
            if GO:
                lines, _ = raw_by_line(go_pprof(d, "-raw", path))
                assert lines[at["grow"]] == (100, 100000)
                assert lines[at["temp"]] == (50, 50 * 4096)
