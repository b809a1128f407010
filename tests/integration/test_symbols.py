"""Symbols: separate debug files found as distributions place them (a
build-id directory, .gnu_debuglink, debuginfod) and refused when they do not
belong to the binary or are not regular files; inlined frames expanded (C at
-O2, Rust's Vec::push). Programs with split debug information are built at
test time in a temporary directory; nothing is written under /usr/lib/debug."""
import http.server
import json
import os
import shutil
import subprocess
import threading

import pytest

from helpers import SOURCES, Tracer, by_line, run_tracer, site, statistics_at, trace, workload

SRC = "native.c"
# (site, size per block, live blocks) in native.c, as test_native checks them
SITES = {"malloc": (4096, 1000), "calloc": (1000, 200), "deep": (2048, 10)}
WL_FLAGS = ["-O1", "-g", "-fno-omit-frame-pointer", "-fno-inline", "-fno-optimize-sibling-calls",
            "-pthread"]


def build_native(directory, *extra):
    """native.c built as the Makefile builds it, into directory."""
    out = os.path.join(str(directory), "native")
    subprocess.run(["gcc"] + WL_FLAGS + list(extra) + [os.path.join(SOURCES, SRC), "-o", out],
                   check=True)
    return out


def split_debug(binary, debug, strip_all=False):
    """binary's debug information moved to the file debug, as
    dh_strip does: objcopy --only-keep-debug, then strip."""
    subprocess.run(["objcopy", "--only-keep-debug", binary, debug], check=True)
    subprocess.run(["strip", "--strip-all" if strip_all else "--strip-debug", binary],
                   check=True)


def build_id(binary):
    out = subprocess.run(["readelf", "-n", binary], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        if "Build ID:" in line:
            return line.split()[-1]
    raise AssertionError("no build-id in " + binary)


def build_id_path(root, bid):
    """root/.build-id/xx/yyyy.debug, its directory made."""
    d = os.path.join(str(root), ".build-id", bid[:2])
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, bid[2:] + ".debug")


def check_sites(report):
    lines = by_line(report, SRC)
    for name, (size, count) in SITES.items():
        assert lines.get(site(SRC, name)) == (size * count, count), (name, lines)


def no_lines(report):
    """Not one frame of the binary has a source line: binary+0xOFFSET."""
    for st in report["statistics"]:
        f = st["frames"][0]
        assert not f["filename"].endswith(SRC), f


def refusals(stderr):
    return [l for l in stderr.splitlines() if "refused" in l]


def test_debug_file_by_build_id(tmp_path):
    binary = build_native(tmp_path)
    bid = build_id(binary)
    split_debug(binary, build_id_path(tmp_path / "debug", bid))
    no_lines(trace(["--", binary]))
    with Tracer(["--debug-dir", str(tmp_path / "debug"), "--", binary]) as t:
        pass
    check_sites(t.report)
    assert not refusals(t.stderr)
    # the callers too, with their names, at -n 5
    report = trace(["--debug-dir", str(tmp_path / "debug"), "-n", "5", "-k", "traceback",
                    "--", binary])
    deep = statistics_at(report, SRC, site(SRC, "deep"))
    assert len(deep) == 1 and (deep[0]["size"], deep[0]["count"]) == (20480, 10)
    assert [f["function"] for f in deep[0]["frames"][:4]] == ["deep_c", "deep_b", "deep_a",
                                                             "main"]


def test_fully_stripped_binary_gets_names_and_lines_from_its_debug_file(tmp_path):
    binary = build_native(tmp_path)
    split_debug(binary, build_id_path(tmp_path / "debug", build_id(binary)), strip_all=True)
    report = trace(["--debug-dir", str(tmp_path / "debug"), "-n", "2", "-k", "traceback",
                    "--", binary])
    check_sites(report)
    st = statistics_at(report, SRC, site(SRC, "malloc"))
    assert [f["function"] for f in st[0]["frames"]] == ["alloc_malloc", "main"]


def test_debug_file_by_debuglink(tmp_path):
    # without a build-id the debuglink's CRC is what ties the two files
    binary = build_native(tmp_path, "-Wl,--build-id=none")
    debug = str(tmp_path / "native.dbg")
    split_debug(binary, debug)
    subprocess.run(["objcopy", "--add-gnu-debuglink=" + debug, binary], check=True)
    check_sites(trace(["--", binary]))  # beside the binary
    os.makedirs(tmp_path / ".debug")
    os.rename(debug, tmp_path / ".debug" / "native.dbg")
    check_sites(trace(["--", binary]))  # in its .debug/
    under = tmp_path / "root" / str(tmp_path).lstrip("/")
    os.makedirs(under)
    os.rename(tmp_path / ".debug" / "native.dbg", under / "native.dbg")
    no_lines(trace(["--", binary]))
    # under a debug directory, followed by the binary's directory
    check_sites(trace(["--debug-dir", str(tmp_path / "root"), "--", binary]))


def test_debug_file_of_another_binary_is_refused(tmp_path):
    binary = build_native(tmp_path)
    os.makedirs(tmp_path / "other")
    other = build_native(tmp_path / "other", "-O2")  # other code, another build-id
    assert build_id(other) != build_id(binary)
    split_debug(other, str(tmp_path / "other.debug"))
    split_debug(binary, str(tmp_path / "native.debug"))
    # the other binary's debug file where this one's belongs
    shutil.copy(tmp_path / "other.debug", build_id_path(tmp_path / "debug", build_id(binary)))
    with Tracer(["--debug-dir", str(tmp_path / "debug"), "--", binary]) as t:
        pass
    no_lines(t.report)
    assert any("build-id does not match" in l for l in refusals(t.stderr)), t.stderr
    # a binary without build-id whose debuglink names a file of another CRC
    os.makedirs(tmp_path / "nobid")
    nobid = build_native(tmp_path / "nobid", "-Wl,--build-id=none")
    split_debug(nobid, str(tmp_path / "nobid" / "native.debug"))
    subprocess.run(["objcopy", "--add-gnu-debuglink=" + str(tmp_path / "nobid" / "native.debug"),
                    nobid], check=True)
    shutil.copy(tmp_path / "other.debug", tmp_path / "nobid" / "native.debug")
    with Tracer(["--", nobid]) as t:
        pass
    no_lines(t.report)
    assert any("CRC does not match" in l for l in refusals(t.stderr)), t.stderr


def test_debug_candidates_that_are_not_regular_files_are_not_opened(tmp_path):
    binary = build_native(tmp_path, "-Wl,--build-id=none")
    split_debug(binary, str(tmp_path / "native.debug"))
    subprocess.run(["objcopy", "--add-gnu-debuglink=" + str(tmp_path / "native.debug"), binary],
                   check=True)
    os.remove(tmp_path / "native.debug")
    # a FIFO would block an open; a device may act on one
    os.mkfifo(tmp_path / "native.debug")
    os.makedirs(tmp_path / ".debug")
    os.symlink("/dev/zero", tmp_path / ".debug" / "native.debug")
    with Tracer(["--", binary], timeout=30) as t:
        pass
    no_lines(t.report)
    assert t.report["events"]["allocations"] > 1000


class _Debuginfod(http.server.BaseHTTPRequestHandler):
    """GET /buildid/HEX/debuginfo of the files in `served`."""
    served = {}

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        path = self.served.get(parts[1]) if len(parts) == 3 and parts[0] == "buildid" and \
            parts[2] == "debuginfo" else None
        if path is None:
            self.send_error(404)
            return
        with open(path, "rb") as f:
            data = f.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_debug_file_from_debuginfod(tmp_path):
    binary = build_native(tmp_path)
    bid = build_id(binary)
    split_debug(binary, str(tmp_path / "served.debug"))
    _Debuginfod.served = {bid: str(tmp_path / "served.debug")}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Debuginfod)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = dict(os.environ, DEBUGINFOD_URLS="http://127.0.0.1:%d" % server.server_port,
                   DEBUGINFOD_CACHE_PATH=str(tmp_path / "cache"))
        p = run_tracer(["--format", "json", "-t", "0", "--", binary], env=env)
        check_sites(json.loads(next(l for l in p.stdout.splitlines() if l.startswith("{"))))
        # without DEBUGINFOD_URLS nobody is asked
        env.pop("DEBUGINFOD_URLS")
        p = run_tracer(["--format", "json", "-t", "0", "--", binary], env=env)
        no_lines(json.loads(next(l for l in p.stdout.splitlines() if l.startswith("{"))))
    finally:
        server.shutdown()


INL = "inline.c"


@pytest.mark.skipif(shutil.which("dwz") is None, reason="dwz not installed")
def test_dwz_shared_debug_file(tmp_path):
    """Debian's debug files are made smaller with dwz: what two of them share
    (here new_node's DIE, which the inlined calls refer to) moves to one
    file that .gnu_debugaltlink names (path and build-id)."""
    src = os.path.join(SOURCES, INL)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    flags = ["-O2", "-g", "-fno-omit-frame-pointer"]
    subprocess.run(["gcc"] + flags + [src, "-o", a], check=True)
    subprocess.run(["gcc"] + flags + ["-fno-reorder-blocks", src, "-o", b], check=True)
    debug = tmp_path / "debug"
    os.makedirs(debug / ".dwz")
    split_debug(a, a + ".debug")
    split_debug(b, b + ".debug")
    subprocess.run(["dwz", "-m", str(debug / ".dwz" / "common.debug"), "-M",
                    "/usr/lib/debug/.dwz/common.debug", a + ".debug", b + ".debug"], check=True)
    os.rename(a + ".debug", build_id_path(debug, build_id(a)))

    def inlined_frame():
        report = trace(["--debug-dir", str(debug), "-n", "3", "-k", "traceback", "--", a])
        st = statistics_at(report, INL, site(INL, "inline_alloc"))
        assert sum(x["count"] for x in st) == 400
        return {x["frames"][0]["function"] for x in st}

    # the shared file under --debug-dir in place of /usr/lib/debug
    assert inlined_frame() == {"new_node"}
    os.rename(debug / ".dwz" / "common.debug", tmp_path / "common.debug")
    assert inlined_frame() == {None}  # its name is in the shared file only


def test_inlined_allocator_expands_into_its_callers():
    report = trace(["-n", "4", "-k", "traceback", "--", workload("inline-O2")])
    got = {}
    for st in statistics_at(report, INL, site(INL, "inline_alloc")):
        frames = st["frames"]
        got[frames[1]["lineno"]] = (st["size"], st["count"], [
            (os.path.basename(f["filename"]), f["lineno"], f["function"]) for f in frames])
    lists, trees = site(INL, "inline_lists"), site(INL, "inline_trees")
    alloc = site(INL, "inline_alloc")
    assert got[lists][:2] == (300 * 48, 300)
    assert got[trees][:2] == (100 * 200, 100)
    assert got[lists][2][:3] == [(INL, alloc, "new_node"), (INL, lists, "make_lists"),
                                 (INL, site(INL, "inline_main_lists"), "main")]
    assert got[trees][2][:3] == [(INL, alloc, "new_node"), (INL, trees, "make_trees"),
                                 (INL, site(INL, "inline_main_trees"), "main")]
    assert len(got[lists][2]) == 4  # the inlined frame counts toward nframe
    assert len(got) == 2


def test_inlined_frames_count_toward_nframe():
    # at -n 1 only the inlined function's line: both callers' blocks at it
    report = trace(["--", workload("inline-O2")])
    assert by_line(report, INL)[site(INL, "inline_alloc")] == (300 * 48 + 100 * 200, 400)
    report = trace(["-n", "2", "--cumulative", "--", workload("inline-O2")])
    lines = by_line(report, INL)
    assert lines[site(INL, "inline_lists")] == (300 * 48, 300)
    assert lines[site(INL, "inline_trees")] == (100 * 200, 100)
    assert site(INL, "inline_main_lists") not in lines


RS = "vecpush.rs"


@pytest.mark.skipif(not os.path.exists(workload("vecpush")), reason="rustc not installed")
def test_rust_vec_push_line_appears():
    # the plumbing kept: Vec::push's own inlined frame is what is looked for
    report = trace(["-n", "16", "-k", "traceback", "--keep-allocator-frames", "--",
                    workload("vecpush")])
    push = site(RS, "rust_push")
    found = []
    for st in report["statistics"]:
        names = [(os.path.basename(f["filename"]), f["lineno"]) for f in st["frames"]]
        if (RS, push) in names:
            found.append((st, names))
    # 64 vectors, each one live 8192-byte block from its last growth
    assert sum(st["count"] for st, _ in found) == 64, found
    assert sum(st["size"] for st, _ in found) == 64 * 8192
    st, names = found[0]
    i = names.index((RS, push))
    assert names[i + 1] == (RS, site(RS, "rust_fill"))
    assert st["frames"][i]["function"] == "vecpush::fill"
    assert st["frames"][i - 1]["function"] == "alloc::vec::Vec<T,A>::push"
    assert "vecpush::main" == st["frames"][i + 1]["function"]
