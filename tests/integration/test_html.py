"""The HTML report of real tracing, read as a browser reads it: the pages of
the tracer (-i, a series), of tracer stats and of tracer compare on the
phases workload (known sites and exact sizes) and of a CPython workload,
rendered by headless Chromium (--dump-dom after the page's script has run,
--screenshot). The DOM holds the sites with their exact sizes in the table
and in the flame graph; a search (#search= in the URL) marks exactly the
frames that match; the screenshot is not blank; the file makes no network
reference; a compare colours growth and shrink; memory over time holds each
interval's figure; bad combinations are refused with one line, writing
nothing."""
import glob
import html.parser
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import zlib

import pytest

from helpers import SOURCES, TRACER, Tracer, run_tracer, site, workload

SOURCE = "phases.c"
PHASES = os.path.join(SOURCES, SOURCE)
CHROMIUM = shutil.which("chromium")
DEBIAN_PYTHON = "/usr/bin/python3.11"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (Debian's package)")


# -- the browser ------------------------------------------------------------

def chromium(path, fragment="", screenshot=None):
    """The DOM of the page after its script ran (or, with screenshot, a PNG
    of it written there), rendered by headless Chromium in a profile of its
    own."""
    profile = tempfile.mkdtemp(prefix="tracer-chromium-")
    try:
        args = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                "--no-first-run", "--user-data-dir=" + profile, "--window-size=1200,900",
                "--virtual-time-budget=3000"]
        args += ["--screenshot=" + screenshot] if screenshot else ["--dump-dom"]
        p = subprocess.run(args + ["file://" + path + fragment], capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class Element:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.children, self.parts = [], []

    @property
    def classes(self):
        return set((self.attrs.get("class") or "").split())

    @property
    def text(self):
        return "".join(p if isinstance(p, str) else p.text for p in self.parts)

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()


class DOM(html.parser.HTMLParser):
    """The serialized DOM as a tree of Elements: find(pred), by_id(id)."""
    VOID = {"meta", "br", "input", "img", "link", "hr", "col", "wbr", "source"}
    SVG_EMPTY = {"line", "polyline", "circle", "path", "rect"}

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.root = self.at = Element("#root", {}, None)
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        e = Element(tag, attrs, self.at)
        self.at.children.append(e)
        self.at.parts.append(e)
        if tag not in self.VOID:
            self.at = e

    def handle_startendtag(self, tag, attrs):
        e = Element(tag, attrs, self.at)
        self.at.children.append(e)
        self.at.parts.append(e)

    def handle_endtag(self, tag):
        e = self.at
        while e is not None and e.tag != tag:
            e = e.parent
        if e is not None and e.parent is not None:
            self.at = e.parent

    def handle_data(self, data):
        self.at.parts.append(data)

    def find(self, pred):
        return [e for e in self.root.walk() if pred(e)]

    def by_id(self, ident):
        found = self.find(lambda e: e.attrs.get("id") == ident)
        assert len(found) == 1, ident
        return found[0]


def page(path, fragment=""):
    dom = DOM(chromium(path, fragment))
    assert dom.find(lambda e: e.tag == "body" and e.attrs.get("data-ready") == "1"), \
        "the page's script did not finish"
    return dom


def frames(dom):
    return dom.find(lambda e: "fr" in e.classes)


def frames_at(dom, label):
    return [f for f in frames(dom) if f.attrs["data-frame"] == label]


def table(dom):
    """{site: {column: data-v}} of the statistics table."""
    heads = [th.attrs["data-col"] for th in dom.by_id("table").walk() if th.tag == "th"]
    rows = {}
    for tr in dom.by_id("table").walk():
        if tr.tag == "tr" and "data-site" in tr.attrs:
            cells = [td for td in tr.children if td.tag == "td"]
            rows[tr.attrs["data-site"]] = {h: td.attrs.get("data-v", td.text)
                                           for h, td in zip(heads, cells)}
    return rows


def figure(dom, name):
    """The data-v of a header figure (traced current ...), per snapshot."""
    return [int(td.attrs["data-v"]) for td in dom.find(
        lambda e: e.tag == "td" and e.attrs.get("data-figure") == name)]


def label(name):
    return "%s:%d" % (PHASES, site(SOURCE, name))


# -- PNG, decoded with zlib alone ----------------------------------------------

def png_pixels(path):
    """(width, height, rows of (r, g, b) tuples) of an 8-bit RGB(A) PNG."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xff
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xff
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xff
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xff
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(width)])
        prev = line
    return width, height, rows


# -- the runs -----------------------------------------------------------------

def numbered(d, pattern):
    return sorted(int(re.search(r"-(\d+)\.\w+$", p).group(1))
                  for p in glob.glob(os.path.join(d, pattern)))


def after_now(d, pattern, timeout=30):
    """The number of a file of the series written wholly after this moment."""
    known = numbered(d, pattern)
    target = (known[-1] if known else 0) + 2
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = numbered(d, pattern)
        if got and got[-1] >= target:
            return target
        time.sleep(0.05)
    raise AssertionError("file %d of %s never written" % (target, pattern))


def line_from(p, prefix):
    """The next stdout line of p that starts with prefix (reports between)."""
    for line in p.stdout:
        if line.startswith(prefix):
            return line
    raise AssertionError("no line %r" % prefix)


def run_phases(d, args, pattern):
    """The tracer launching the phases workload with args; phase 1, a file
    of the series after it, phase 2, one after it, then the end. Returns
    the numbers of those two files and of the last, and the tracer's end."""
    p = subprocess.Popen([TRACER, "-n", "3", "-i", "0.2"] + args + ["--", workload("phases")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line_from(p, "ready")
        p.stdin.write("1\n")
        p.stdin.flush()
        line_from(p, "done")
        after1 = after_now(d, pattern)
        p.stdin.write("2\n")
        p.stdin.flush()
        line_from(p, "done")
        after2 = after_now(d, pattern)
        out, err = p.communicate(timeout=60)  # closes stdin: the workload ends
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    return after1, after2, numbered(d, pattern)[-1], out


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The tracer's own pages, one per interval (--format html -i -o %n)."""
    d = str(tmp_path_factory.mktemp("live"))
    after1, after2, last, out = run_phases(
        d, ["--format", "html", "-o", os.path.join(d, "live-%n.html")], "live-*.html")
    assert "<html" not in out  # the pages went to their files, not stdout
    return {"dir": d, "after1": after1, "after2": after2, "last": last,
            "path": lambda n: os.path.join(d, "live-%d.html" % n)}


@pytest.fixture(scope="module")
def snaps(tmp_path_factory):
    """Snapshot files of the same workload, for stats and compare."""
    d = str(tmp_path_factory.mktemp("snaps"))
    after1, after2, last, _ = run_phases(d, ["-o", os.path.join(d, "snap-%n.snap")],
                                         "snap-*.snap")
    return {"dir": d, "after1": after1, "after2": after2, "last": last,
            "path": lambda n: os.path.join(d, "snap-%d.snap" % n)}


# -- the tests --------------------------------------------------------------

def test_live_page_holds_the_sites_with_their_sizes(live):
    path = live["path"](live["last"])
    assert os.stat(path).st_mode & 0o777 == 0o600
    dom = page(path)
    rows = table(dom)
    assert rows[label("grow")]["size"] == "400000" and rows[label("grow")]["count"] == "400"
    assert rows[label("late")]["size"] == "81920" and rows[label("late")]["count"] == "20"
    assert label("temp") not in rows  # freed in phase 2
    # the flame graph: the grow site under phase1 (100 blocks) and phase2
    # (300), the late site once, each frame with its exact bytes and blocks
    grow = sorted((int(f.attrs["data-bytes"]), int(f.attrs["data-blocks"]))
                  for f in frames_at(dom, label("grow")))
    assert grow == [(100000, 100), (300000, 300)]
    assert [(f.attrs["data-bytes"], f.attrs["data-blocks"], f.attrs.get("data-function"))
            for f in frames_at(dom, label("late"))] == [("81920", "20", "phase2")]
    assert all(f.attrs["data-function"] == "add_grow" for f in frames_at(dom, label("grow")))
    # the root is the whole live set, as the header says
    root = [f for f in frames(dom) if "root" in f.classes]
    assert len(root) == 1 and figure(dom, "traced current") == [int(root[0].attrs["data-bytes"])]
    assert frames_at(dom, label("grow"))[0].text.endswith("phases.c:%d" % site(SOURCE, "grow"))


def test_search_highlights_exactly_the_matching_frames(live):
    path = live["path"](live["last"])
    plain = page(path)
    assert not [f for f in frames(plain) if "match" in f.classes]
    for query, expect_bytes, expect_frames in [
            ("add_grow", 400000, 2), ("phase2", 300000 + 81920, 2),
            ("PHASES.C:%d" % site(SOURCE, "late"), 81920, 1)]:
        dom = page(path, "#search=" + query)
        q = query.lower()
        marked = [f for f in frames(dom) if "match" in f.classes]
        expected = [f for f in frames(dom) if q in f.attrs["data-frame"].lower() or
                    q in f.attrs.get("data-function", "").lower()]
        assert marked == expected and len(marked) == expect_frames, query
        assert int(dom.by_id("matched").attrs["data-bytes"]) == expect_bytes, query


def ordered(dom, column):
    return [int(r[column]) for r in table(dom).values()]


def test_table_sorts_and_graph_turns_over(live):
    path = live["path"](live["last"])
    dom = page(path)
    sizes = ordered(dom, "size")
    assert sizes == sorted(sizes, reverse=True)  # tracemalloc's order
    for fragment, column, reverse in [("#sort=count", "count", True),
                                      ("#sort=count-asc", "count", False),
                                      ("#sort=avg-asc", "avg", False)]:
        got = ordered(page(path, fragment), column)
        assert got == sorted(got, reverse=reverse) and got != sizes, fragment
    # icicle: the root at the top; flame: at the bottom, under its children
    def root_top(d):
        root = [f for f in frames(d) if f.attrs["data-frame"] == "all"][0]
        return int(re.search(r"top: (\d+)px", root.attrs["style"]).group(1))
    flame = page(path, "#orient=flame")
    deepest = max(int(re.search(r"top: (\d+)px", f.attrs["style"]).group(1))
                  for f in frames(flame))
    assert root_top(dom) == 0 and root_top(flame) == deepest > 0


def test_screenshot_is_not_blank(live, tmp_path):
    shot = str(tmp_path / "page.png")
    chromium(live["path"](live["last"]), screenshot=shot)
    width, height, rows = png_pixels(shot)
    assert (width, height) == (1200, 900)
    colours = {}
    for row in rows[::3]:
        for px in row[::3]:
            colours[px] = colours.get(px, 0) + 1
    background = max(colours.values())
    assert len(colours) > 50, len(colours)
    assert background < 0.9 * sum(colours.values())
    # the flame graph's warm frames are there, in quantity
    warm = sum(n for (r, g, b), n in colours.items() if r > 200 and b < 120 and r - b > 100)
    assert warm > 500, warm


def test_no_network_reference(live, snaps, tmp_path):
    out = str(tmp_path / "diff.html")
    run_tracer(["compare", snaps["path"](snaps["after1"]), snaps["path"](snaps["after2"]),
                "--format", "html", "-o", out])
    for path in (live["path"](live["last"]), out):
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
        for needle in ("http://", "https://", "//cdn", "src=", "href=", "<link", "<img",
                       "<iframe", "@import", "url("):
            assert needle not in text.lower(), (path, needle)
        dom = page(path)
        assert not dom.find(lambda e: "src" in e.attrs or "href" in e.attrs)
        assert [e.tag for e in dom.find(lambda e: e.tag == "script")] == ["script", "script"]


def test_memory_over_time_holds_each_interval(live):
    last = live["last"]
    assert last >= 4
    dom = page(live["path"](last))
    assert "hidden" not in dom.by_id("series").attrs
    points = [int(c.attrs["data-bytes"]) for c in dom.by_id("chart").walk() if c.tag == "circle"]
    assert len(points) == last
    # each point is the traced current of that interval's own page
    for n in (1, live["after1"], live["after2"], last):
        assert figure(page(live["path"](n)), "traced current") == [points[n - 1]]
    # phase 1 then phase 2 made it grow: 304800 B then 481920 B of the workload's
    assert points[live["after2"] - 1] - points[live["after1"] - 1] == 481920 - 304800
    # each page has the series so far
    assert len(page(live["path"](live["after1"])).find(lambda e: e.tag == "circle")) == \
        live["after1"]


def test_stats_page_is_the_json_report(snaps, tmp_path):
    snap = snaps["path"](snaps["last"])
    out = str(tmp_path / "report.html")
    p = run_tracer(["stats", snap, "--format", "html", "-o", out])
    assert p.stdout == "" and p.stderr == ""
    ref = json.loads(run_tracer(["stats", snap, "--format", "json", "-t", "0"]).stdout)
    rows = table(page(out))
    assert len(rows) == len(ref["statistics"])
    for st in ref["statistics"]:
        f = st["frames"][0]
        row = rows["%s:%d" % (f["filename"], f["lineno"])]
        assert (int(row["size"]), int(row["count"])) == (st["size"], st["count"])
    assert rows[label("grow")]["size"] == "400000"
    # the same page on standard output without -o
    assert run_tracer(["stats", snap, "--format", "html"]).stdout == open(out).read()


def test_compare_page_colours_growth_and_shrink(snaps, tmp_path):
    out = str(tmp_path / "diff.html")
    run_tracer(["compare", snaps["path"](snaps["after1"]), snaps["path"](snaps["after2"]),
                "--format", "html", "-o", out])
    dom = page(out)
    grow = {f.attrs["data-diff"]: f for f in frames_at(dom, label("grow"))}
    # under phase2: 300 new blocks; under phase1: unchanged
    assert sorted(grow) == ["0", "300000"], sorted(grow)
    grown = grow["300000"]
    assert "grow" in grown.classes and "same" in grow["0"].classes
    r, g, b = map(int, re.search(r"background-color: rgb\((\d+), (\d+), (\d+)\)",
                                 grown.attrs["style"]).groups())
    assert r == 255 and g < 150 and b < 150, (r, g, b)
    # phase 1's temp blocks (204800 B) were freed: the one frame that held
    # them and the late blocks (81920 B) now, main's caller, shrank, in blue
    shrunk = [f for f in frames(dom) if int(f.attrs["data-diff"]) < 0]
    assert [(f.attrs["data-diff"], f.attrs["data-bytes"]) for f in shrunk] == \
        [(str(81920 - 204800), "81920")]
    assert "shrink" in shrunk[0].classes
    r, g, b = map(int, re.search(r"background-color: rgb\((\d+), (\d+), (\d+)\)",
                                 shrunk[0].attrs["style"]).groups())
    assert b == 255 and r < 200 and g < 200, (r, g, b)
    root = [f for f in frames(dom) if f.attrs["data-frame"] == "all"]
    assert root[0].attrs["data-diff"] == str(300000 + 81920 - 204800)
    # the compare table: sizes and their diffs, counts and theirs
    rows = table(dom)
    assert rows[label("grow")]["sdiff"] == "300000" and rows[label("grow")]["cdiff"] == "300"
    assert rows[label("late")]["sdiff"] == "81920" and rows[label("late")]["count"] == "20"
    assert rows[label("temp")]["size"] == "0" and rows[label("temp")]["sdiff"] == "-204800"
    assert figure(dom, "traced current")[1] - figure(dom, "traced current")[0] == \
        300000 + 81920 - 204800


@pytest.mark.skipif(not os.path.exists(DEBIAN_PYTHON), reason="no Debian python3.11")
def test_python_frames_are_file_and_line(tmp_path):
    script = os.path.join(SOURCES, "py_sites.py")
    out = str(tmp_path / "py.html")
    p = subprocess.Popen([TRACER, "--format", "html", "-o", out, "--", DEBIAN_PYTHON, script],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        p.send_signal(signal.SIGINT)  # the page while the workload holds its blocks
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    dom = page(out)
    big = "%s:%d" % (script, site("py_sites.py", "big"))
    # buffers above pymalloc's threshold reach libc even in Debian's LTO
    # build (test_python.py): exact
    rows = table(dom)
    assert big in rows, list(rows)[:8]
    assert rows[big]["size"] == str(200 * 20001)
    found = frames_at(dom, big)
    assert sum(int(f.attrs["data-bytes"]) for f in found) == 200 * 20001
    assert all("python" in f.classes and f.attrs["data-function"] == "make_big" for f in found)


def refused(args, out):
    p = run_tracer(args, check=False)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("tracer: "), \
        (args, p.returncode, p.stderr)
    assert not os.path.lexists(out), args
    return lines[0]


def test_bad_combinations_write_nothing(snaps, tmp_path):
    snap = snaps["path"](snaps["last"])
    out = str(tmp_path / "r.html")
    assert "-k lineno or filename" in refused(
        ["stats", snap, "--format", "html", "-k", "traceback", "-o", out], out)
    assert "--address" in refused(
        ["stats", snap, "--format", "html", "--address", "0x1000", "-o", out], out)
    assert "give -o FILE" in refused(["--format", "html", "-i", "1", "--", workload("phases")],
                                     out)
    assert "-o does not apply to compare" in refused(
        ["compare", snap, snap, "-o", out], out)
    # the safe output file: never through a symbolic link
    os.symlink(str(tmp_path / "elsewhere"), out)
    p = run_tracer(["stats", snap, "--format", "html", "-o", out], check=False)
    assert p.returncode == 2 and not os.path.lexists(str(tmp_path / "elsewhere"))
    os.unlink(out)
    assert "unknown format" in refused(["stats", snap, "--format", "htm", "-o", out], out)


def test_peak_and_allocations_views(tmp_path):
    """A snapshot with the probes' per-site figures gets two more views: the
    live set at the peak, and every allocation since tracing began, each with
    its table and flame graph (lifetimes.c's exact figures)."""
    src = "lifetimes.c"
    snap, out = str(tmp_path / "run.snap"), str(tmp_path / "views.html")
    with Tracer(["-o", snap, "--", workload("lifetimes"), "0"]) as t:
        t.read_until("done")
        t.end_input()
    run_tracer(["stats", snap, "--format", "html", "-o", out])
    at = {n: "%s:%d" % (os.path.join(SOURCES, src), site(src, n))
          for n in ("old", "peak", "after", "temp")}

    def figures(dom):
        rows = table(dom)
        return {n: (int(rows[at[n]]["size"]), int(rows[at[n]]["count"]))
                for n in at if at[n] in rows}

    assert figures(page(out)) == {"old": (15000, 5), "after": (100000, 20)}
    peak = page(out, "#view=peak")
    assert figures(peak) == {"old": (15000, 5), "peak": (1000000, 100)}
    assert [(int(f.attrs["data-bytes"]), int(f.attrs["data-blocks"]))
            for f in frames_at(peak, at["peak"])] == [(1000000, 100)]
    assert figures(page(out, "#view=allocations")) == {
        "old": (15000, 5), "peak": (1000000, 100), "after": (100000, 20), "temp": (64000, 1000)}
