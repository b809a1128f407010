"""The cgroup label: a workload moved into a cgroup of its own (v2) is
labelled with that cgroup's path in /metrics (every per-process family)
and in the heap profile's samples, as the real go tool pprof reads them."""
import os
import shutil
import subprocess
import time
import urllib.request

import pytest

from helpers import TRACER, pprof_raw_samples, workload, serve_address

GO = shutil.which("go")


def unified_root():
    for line in open("/proc/self/mounts"):
        f = line.split()
        if f[2] == "cgroup2":
            return f[1]
    return None


@pytest.fixture
def cgroup():
    root = unified_root()
    if not root:
        pytest.skip("no cgroup v2 hierarchy mounted")
    name = "tracer-test-%d" % os.getpid()
    path = os.path.join(root, name)
    os.mkdir(path)
    yield path, "/" + name
    for _ in range(50):
        try:
            os.rmdir(path)
            break
        except OSError:
            time.sleep(0.1)


def test_cgroup_label_in_metrics_and_pprof(tmp_path, cgroup):
    path, label = cgroup
    wl = subprocess.Popen([workload("requests"), "30"], stderr=subprocess.DEVNULL)
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(wl.pid))
    assert "0::%s\n" % label in open("/proc/%d/cgroup" % wl.pid).read()
    p = subprocess.Popen([TRACER, "serve", "-v", "--listen", "127.0.0.1:0", "-p", str(wl.pid)],
                         stderr=subprocess.PIPE, text=True)
    try:
        base = serve_address(p, "tracing pid")
        assert base
        text = urllib.request.urlopen(base + "/metrics", timeout=30).read().decode()
        want = '{pid="%d",comm="requests",cgroup="%s"}' % (wl.pid, label)
        assert "\ntracer_traced_bytes%s " % want in text, text
        assert "\ntracer_allocations_total%s " % want in text
        if GO:
            heap = tmp_path / "heap.pb.gz"
            heap.write_bytes(urllib.request.urlopen(base + "/debug/pprof/heap",
                                                    timeout=30).read())
            out = subprocess.run([GO, "tool", "pprof", "-raw", str(heap)], capture_output=True,
                                 text=True, timeout=120,
                                 env=dict(os.environ, HOME="/tmp", GOCACHE="/tmp/gocache"))
            assert out.returncode == 0, out.stderr
            samples = pprof_raw_samples(out.stdout)
            assert samples
            assert all("cgroup:[%s]" % label in s[2] for s in samples), samples[:3]
    finally:
        p.terminate()
        p.wait(timeout=30)
        wl.kill()
        wl.wait()
