"""Native frames of binaries without debug information, and where frames
are: a frame with no source line names its function as
'binary: function+0xOFFSET' (text, JSON, tracebacks), or 'binary+0xOFFSET'
without a symbol, with offsets checked against objdump; pprof profiles list
every binary's mapping with the build-id readelf shows, put native locations
at addresses addr2line turns back into the workload's lines, and keep a
Python profile's <module>."""
import os
import re
import shutil
import signal
import subprocess

import pytest

from helpers import SOURCES, Tracer, pprof_raw_samples, run_tracer, site, trace, workload

SRC = "native.c"
GO = shutil.which("go")


def stripped_copy(tmp_path, how, name):
    """The native workload copied to tmp_path/name and stripped with
    strip --strip-debug (symbols kept) or --strip-all."""
    path = str(tmp_path / name)
    shutil.copy(workload("native"), path)
    subprocess.run(["strip", how, path], check=True)
    return path


def symbols(binary):
    """{function: address} from the symbol table (nm)."""
    out = subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout
    return {m.group(2): int(m.group(1), 16)
            for m in re.finditer(r"^([0-9a-f]+) [tT] (\S+)$", out, re.M)}


def returns_after_calls(binary, function, callee):
    """The return addresses (virtual) of function's calls to callee, in order
    (objdump -d)."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", binary], capture_output=True,
                         text=True, check=True).stdout
    body = out.split("<%s>:\n" % function, 1)[1].split("\n\n", 1)[0].splitlines()
    rets = []
    for i, line in enumerate(body):
        if re.search(r"\bcall\s+[0-9a-f]+ <%s(@plt)?>" % re.escape(callee), line):
            rets.append(int(body[i + 1].split(":")[0], 16))
    assert rets, (function, callee)
    return rets


def file_offset(binary, vaddr):
    """The file offset of a virtual address (readelf's program headers)."""
    out = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True,
                         check=True).stdout
    for m in re.finditer(r"^\s+LOAD\s+0x([0-9a-f]+) 0x([0-9a-f]+) 0x[0-9a-f]+ 0x([0-9a-f]+) "
                         r"0x([0-9a-f]+)", out, re.M):
        off, va, filesz = int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16)
        if va <= vaddr < va + filesz:
            return vaddr - va + off
    raise AssertionError("0x%x not in a PT_LOAD of %s" % (vaddr, binary))


def build_id(binary):
    out = subprocess.run(["readelf", "-n", binary], capture_output=True, text=True,
                         check=True).stdout
    return re.search(r"Build ID: ([0-9a-f]+)", out).group(1)


# the deep chain of native.c: (function, its callee) from the allocation up
DEEP = [("deep_c", "malloc"), ("deep_b", "deep_c"), ("deep_a", "deep_b"), ("main", "deep_a")]


def test_frames_without_debug_info_name_their_function(tmp_path):
    copy = stripped_copy(tmp_path, "--strip-debug", "native-nodebug")
    syms = symbols(copy)
    report = trace(["-n", "5", "-k", "traceback", "--", copy])
    deep = [st for st in report["statistics"] if st["frames"][0]["function"] == "deep_c"]
    assert len(deep) == 1 and (deep[0]["size"], deep[0]["count"]) == (20480, 10)
    names = []
    for frame, (function, callee) in zip(deep[0]["frames"], DEEP):
        # (gcc may copy a call: main calls deep_a on two paths)
        rets = returns_after_calls(copy, function, callee)
        assert frame in [{"filename": "%s+0x%x" % (copy, file_offset(copy, ret - 1)),
                          "lineno": 0, "function": function, "binary": copy,
                          "function_offset": ret - syms[function]} for ret in rets], frame
        names.append("%s+0x%x" % (function, frame["function_offset"]))
    assert len(names) == 4

    # the text report: the statistic's title and the traceback's lines
    text = run_tracer(["-n", "5", "-k", "traceback", "-t", "0", "--", copy]).stdout
    lines = text.splitlines()
    i = lines.index('  File "%s", in %s' % (copy, names[3]))
    assert lines[i:i + 4] == ['  File "%s", in %s' % (copy, n) for n in reversed(names)], \
        lines[i - 2:i + 4]
    ret, = returns_after_calls(copy, "alloc_malloc", "malloc")
    text = run_tracer(["-t", "0", "--", copy]).stdout.splitlines()
    assert "%s: alloc_malloc+0x%x: size=4000 KiB, count=1000, average=4096 B" % (
        copy, ret - syms["alloc_malloc"]) in text, text
    assert "%s: deep_c+0x%x: size=20.0 KiB, count=10, average=2048 B" % (
        copy, returns_after_calls(copy, "deep_c", "malloc")[0] - syms["deep_c"]) in text, text


def test_frames_without_symbols_keep_their_file_offset(tmp_path):
    copy = stripped_copy(tmp_path, "--strip-all", "native-stripped")
    original = workload("native")
    text = run_tracer(["-t", "0", "--", copy]).stdout.splitlines()
    ret, = returns_after_calls(original, "alloc_malloc", "malloc")
    assert "%s+0x%x: size=4000 KiB, count=1000, average=4096 B" % (
        copy, file_offset(original, ret - 1)) in text, text
    report = trace(["-k", "filename", "--", copy])
    # a binary is a file: its frames group as one
    mine = [st for st in report["statistics"] if st["frames"][0]["filename"] == copy]
    assert len(mine) == 1 and mine[0]["count"] >= 1000 + 200 + 100 + 250 + 800 + 10


def go_pprof(*args, env=None):
    p = subprocess.run([GO, "tool", "pprof"] + list(args), capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, HOME="/tmp", GOCACHE="/tmp/gocache",
                                             PPROF_BINARY_PATH="/nonexistent", **(env or {})))
    assert p.returncode == 0, p.stderr
    return p


def raw_profile(text):
    """go tool pprof -raw's samples [(count, bytes, [location ids])],
    locations {id: (address, mapping id or None, name, file:line)} and mappings
    {id: (start, limit, offset, file, build-id, flags)}."""
    samples = [(v["inuse_objects"], v["inuse_space"], ids)
               for v, ids, _ in pprof_raw_samples(text)
               if v["inuse_objects"] or v["inuse_space"]]
    locations = {int(m.group(1)): (int(m.group(2), 16), m.group(3) and int(m.group(3)),
                                   m.group(4), m.group(5))
                 for m in re.finditer(r"^\s+(\d+): 0x([0-9a-f]+) (?:M=(\d+) )?(\S+) (\S*)",
                                      text, re.M)}
    mappings = {}
    for line in text.split("\nMappings\n", 1)[1].splitlines():
        m = re.match(r"(\d+): 0x([0-9a-f]+)/0x([0-9a-f]+)/0x([0-9a-f]+) (\S*) ?(\S*) ?(\S*)$",
                     line)
        if m:
            flags = m.group(7) or (m.group(6) if m.group(6).startswith("[") else "")
            bid = "" if m.group(6).startswith("[") else m.group(6)
            mappings[int(m.group(1))] = (int(m.group(2), 16), int(m.group(3), 16),
                                         int(m.group(4), 16), m.group(5), bid, flags)
    return samples, locations, mappings


@pytest.mark.skipif(not GO, reason="go tool pprof missing (Debian golang-go)")
def test_pprof_mappings_build_ids_and_addresses(tmp_path):
    copy = stripped_copy(tmp_path, "--strip-all", "native-stripped")
    snap, prof = str(tmp_path / "a.snap"), str(tmp_path / "a.pb.gz")
    run_tracer(["-n", "5", "-o", snap, "--", copy])
    run_tracer(["stats", snap, "--format", "pprof", "-o", prof])
    p = go_pprof("-raw", prof)
    assert "Main binary filename not available" not in p.stderr, p.stderr
    samples, locations, mappings = raw_profile(p.stdout)
    # the executable first (pprof's main binary), then every library, each
    # with the build-id readelf -n shows
    assert mappings[1][3] == copy and mappings[1][4] == build_id(copy)
    assert mappings[1][5] == ""  # nothing symbolized: left to pprof or a server
    files = {m[3]: m for m in mappings.values()}
    libc = [f for f in files if re.search(r"/libc\.so\.6$", f)]
    assert libc and files[libc[0]][4] == build_id(libc[0])
    assert "[FN]" in files[libc[0]][5]
    for address, mapping, _, _ in locations.values():
        if mapping in mappings and mappings[mapping][3] != "[python]":
            assert mappings[mapping][0] <= address < mappings[mapping][1]
    # an address of the stripped executable is where a symbolizer finds
    # the call site in the unstripped binary (same build-id)
    original = workload("native")
    assert build_id(original) == build_id(copy)
    leaf = [ids[0] for count, size, ids in samples if (count, size) == (1000, 4096000)]
    assert len(leaf) == 1
    address, mapping, name, _ = locations[leaf[0]]
    start, _, offset = mappings[mapping][:3]
    assert name == "%s+0x%x" % (copy, address - start + offset)
    out = subprocess.run(["addr2line", "-f", "-e", original, hex(address - start + offset)],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "alloc_malloc" and out[1].endswith("%s:%d" % (SRC, site(SRC, "malloc")))


PYENV = os.path.expanduser("~/.pyenv/versions")


@pytest.mark.skipif(not GO, reason="go tool pprof missing (Debian golang-go)")
def test_pprof_of_python_keeps_module(tmp_path):
    pythons = sorted(p for p in (os.path.join(PYENV, v, "bin", "python3.12")
                                 for v in os.listdir(PYENV) if v.startswith("3.12."))
                     if os.path.exists(p)) if os.path.isdir(PYENV) else []
    if not pythons:
        pytest.skip("no CPython 3.12 on this machine (pyenv)")
    script = os.path.join(SOURCES, "py_sites.py")
    snap, prof = str(tmp_path / "py.snap"), str(tmp_path / "py.pb.gz")
    with Tracer(["-n", "3", "-o", snap, "--", pythons[-1], script]) as t:
        t.expect("ready")
        t.signal(signal.SIGINT)
    run_tracer(["stats", snap, "--format", "pprof", "-o", prof])
    p = go_pprof("-raw", prof)
    assert "Main binary filename not available" not in p.stderr, p.stderr
    samples, locations, mappings = raw_profile(p.stdout)
    module = [i for i, loc in locations.items()
              if loc[2] == "<module>" and loc[3].startswith(script + ":")]
    assert module, p.stdout
    # every sample of make_big's bytearrays goes through <module>
    big = [ids for _, _, ids in samples
           if locations[ids[0]][3] == "%s:%d" % (script, site("py_sites.py", "big"))]
    assert big and all(set(ids) & set(module) for ids in big), (big, p.stdout)
    top = go_pprof("-top", "-cum", "-nodecount=1000", prof).stdout
    assert re.search(r"\s<module>$", top, re.M), top
