"""Helpers for the integration tests: the real tracer, as root, on real
workloads whose allocation sites are marked with SITE:name comments."""
import json
import os
import re
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TRACER = os.path.join(ROOT, "build", "tracer")
WORKLOADS = os.path.join(ROOT, "build", "workloads")
SOURCES = os.path.join(ROOT, "tests", "workloads")


def site(source, name):
    """Line number of the SITE:name marker in a workload source."""
    with open(os.path.join(SOURCES, source)) as f:
        for i, line in enumerate(f, 1):
            if re.search(r"SITE:%s\b" % re.escape(name), line):
                return i
    raise KeyError(name)


def workload(name):
    return os.path.join(WORKLOADS, name)


def run_tracer(args, timeout=60, check=True):
    p = subprocess.run([TRACER] + args, capture_output=True, text=True, timeout=timeout)
    if check:
        assert p.returncode == 0, "tracer failed (%d): %s" % (p.returncode, p.stderr)
    return p


def trace_json(args, **kw):
    p = run_tracer(["--format", "json", "-t", "0"] + args, **kw)
    return json.loads(p.stdout.splitlines()[-1]), p


def by_line(report, source):
    """{lineno: (size, count)} of the statistics whose most recent frame is
    in the given workload source file."""
    out = {}
    for st in report["statistics"]:
        f = st["frames"][0]
        if f["filename"].endswith(source):
            out[f["lineno"]] = (st["size"], st["count"])
    return out


@pytest.fixture(autouse=True, scope="session")
def need_root():
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (BPF, uprobes)")
    assert os.path.exists(TRACER), "build/tracer missing: run make"
