"""What the integration tests share: where things are, the SITE:name lines of
the workloads, running the tracer (to its end, or on a workload it
launches or attaches to, up to its JSON report) and reading that report."""
import json
import os
import re
import signal
import subprocess
import threading

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
    """A built workload program."""
    return os.path.join(WORKLOADS, name)


def run_tracer(args, user=None, env=None, input=None, timeout=60, check=True):
    """The tracer run to its end (bad input, text reports, stats and
    compare): its CompletedProcess; as that uid with user, and with status 0
    asserted with check."""
    cmd = [TRACER] + list(args)
    if user is not None:
        cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + cmd
    p = subprocess.run(cmd, env=env, input=input, capture_output=True, text=True,
                       timeout=timeout)
    if check:
        assert p.returncode == 0, "tracer failed (%d): %s" % (p.returncode, p.stderr)
    return p


# -- reports ----------------------------------------------------------------

def size_and_count(statistic):
    return statistic["size"], statistic["count"]


def _in(frame, source, exact):
    return frame["filename"] == source if exact else frame["filename"].endswith(source)


def by_line(report, source, exact=False, frame=0, value=size_and_count):
    """{lineno: value(statistic)} of the statistics whose frame number
    `frame` (0, the most recent) is in source: the file whose name ends with
    source, or with exact the file of exactly that path."""
    out = {}
    for st in report["statistics"]:
        f = st["frames"][frame]
        if _in(f, source, exact):
            out[f["lineno"]] = value(st)
    return out


def statistics_at(report, source, lineno, exact=False):
    """The statistics (tracebacks) whose most recent frame is source:lineno,
    source matched as by by_line."""
    return [st for st in report["statistics"]
            if _in(st["frames"][0], source, exact) and st["frames"][0]["lineno"] == lineno]


# -- running processes ------------------------------------------------------

class _Lines:
    """The lines of a pipe, read by a thread as they come, so that waiting
    for one can time out. lines: all read so far, without their newline."""

    def __init__(self, stream, who):
        self.lines = []
        self.who = who
        self._ended = False
        self._taken = 0
        self._cond = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def next(self, timeout):
        """The next line not taken yet, or None once the pipe is closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._taken < len(self.lines) or self._ended,
                                       timeout):
                raise AssertionError("%s: no line within %s s" % (self.who, timeout))
            if self._taken == len(self.lines):
                return None
            self._taken += 1
            return self.lines[self._taken - 1]

    def until(self, test, timeout):
        """The next line that passes test, or None once the pipe is closed."""
        while True:
            line = self.next(timeout)
            if line is None or test(line):
                return line

    def rest(self, timeout):
        """All the lines, once the pipe is closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._ended, timeout):
                raise AssertionError("%s: not closed within %s s" % (self.who, timeout))
            return self.lines


class _Piped:
    """A process whose stdin the test writes and whose stdout lines it reads."""
    timeout = 60

    def say(self, text):
        """Writes text to the process's stdin."""
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def end_input(self):
        """Closes the process's stdin: the workload reads the end of its input."""
        if not self.process.stdin.closed:
            self.process.stdin.close()

    def expect(self, word):
        """Asserts that the next stdout line is word."""
        line = self.out.next(self.timeout)
        assert line is not None and line.strip() == word, (word, line, self._why())

    def read_until(self, prefix):
        """The next stdout line that starts with prefix, stripped; the lines
        before it are passed over."""
        line = self.out.until(lambda l: l.startswith(prefix), self.timeout)
        assert line is not None, "%s ended before a line %r" % (self.out.who, prefix)
        return line.strip()

    def _why(self):
        return ""


class Workload(_Piped):
    """with Workload(command) as w: a workload started on its own, for the
    tracer to attach to; entering waits for its "ready" line, leaving closes
    its stdin and waits for its exit (the test's exceptions still pass)."""

    def __init__(self, command):
        self.command = list(command)

    def __enter__(self):
        self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.pid = self.process.pid
        self.out = _Lines(self.process.stdout, "workload")
        try:
            self.expect("ready")
        except BaseException:
            self.process.kill()
            self.process.wait()
            raise
        return self

    def run(self, line):
        """Sends line; the workload runs its allocations and says "done"."""
        self.say(line)
        self.expect("done")

    def wait(self):
        """Its exit status, once it has exited (within 30 s)."""
        return self.process.wait(timeout=30)

    def close(self):
        """Closes its stdin (a workload ends at the end of its input) and
        returns its exit status."""
        self.end_input()
        return self.wait()

    @property
    def returncode(self):
        return self.process.returncode

    def __exit__(self, *exc):
        try:
            self.close()
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


class Tracer(_Piped):
    """with Tracer(args, attach=None, check=True, timeout=60) as t: the
    tracer reporting in JSON (--format json -t 0 before args) on a workload.

    Launch mode: args end with -- and the command; the workload is the
    tracer's child and shares its stdin and stdout, so say(), expect() and
    read_until() speak to the workload through them.
    Attach mode: attach=PID adds -p PID -v; entering waits until the probes
    are in place (the tracer's "tracing pid" line on stderr).

    In the block, signal(SIGINT) (or SIGTERM) makes the tracer report; it
    also reports when the workload ends (end_input(), or -d). Leaving the
    block reads the report (the first stdout line that starts with "{") and
    only then closes the workload's stdin, so that a signalled report sees
    the blocks the workload still holds; waits for the tracer's exit; and
    with check asserts that there was a report and status 0. Every wait ends
    after timeout seconds. Then: report (None without one), last_report (the
    last stdout line that starts with "{": with -i, the one printed at the
    end), stderr_lines, stderr, returncode. An exception in the block kills the tracer."""

    def __init__(self, args, attach=None, check=True, timeout=60, ready=None):
        self.args = ["--format", "json", "-t", "0"] + list(args)
        if attach is not None:
            self.args = ["-p", str(attach), "-v"] + self.args
            ready = "tracing pid"
        self.attach = attach
        self.ready = ready
        self.check = check
        self.timeout = timeout
        self.report = None
        self.last_report = None
        self.returncode = None

    def __enter__(self):
        self.process = subprocess.Popen([TRACER] + self.args, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        self.out = _Lines(self.process.stdout, "tracer stdout")
        self.err = _Lines(self.process.stderr, "tracer stderr")
        self.stderr_lines = self.err.lines
        if self.ready is not None:
            try:
                line = self.err.until(lambda l: self.ready in l, self.timeout)
                assert line is not None, "tracer ended early: " + self.stderr
            except BaseException:
                self._stop()
                raise
        return self

    @property
    def stderr(self):
        return "\n".join(self.stderr_lines)

    def _why(self):
        if self.process.poll() is None:
            return ""
        try:
            self.err.rest(5)
        except AssertionError:
            pass
        return self.stderr

    def signal(self, sig=signal.SIGINT):
        self.process.send_signal(sig)

    def kill(self):
        self.process.kill()

    def _stop(self):
        self.end_input()
        if self.process.poll() is None:
            self.process.kill()
        self.returncode = self.process.wait()

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            self._stop()
            return
        try:
            line = self.out.until(lambda l: l.startswith("{"), self.timeout)
            self.report = json.loads(line) if line is not None else None
            self.end_input()
            self.returncode = self.process.wait(timeout=self.timeout)
            self.err.rest(self.timeout)
            reports = [l for l in self.out.rest(self.timeout) if l.startswith("{")]
            self.last_report = json.loads(reports[-1]) if reports else None
        finally:
            self._stop()
        if self.check:
            assert self.report is not None, "tracer ended without a report: " + self.stderr
            assert self.returncode == 0, "tracer failed (%d): %s" % (self.returncode,
                                                                       self.stderr)


def of_process(report, pid):
    """The document of process pid in a report of several (its "processes"),
    or None."""
    for doc in report.get("processes", []):
        if doc["target"]["pid"] == pid:
            return doc
    return None


def children(pid):
    """The pids of the children of process pid."""
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(x) for x in f.read().split()]


def serve_address(process, ready="tracing pid"):
    """The http://ADDR:PORT that a `tracer serve -v` Popen'd with a stderr
    pipe says it serves on, once a later line containing ready has come
    (its probes are in place); None when it ended before."""
    base = None
    for line in process.stderr:
        m = re.search(r"serving on (http://\S+?)/ ", line)
        if m:
            base = m.group(1)
        if base and ready in line:
            return base
    return None


def trace(args, **kw):
    """The JSON report of the tracer launched on a workload that runs to
    its end: trace(["-n", "5", "--", workload("native")]). kw: as Tracer's."""
    with Tracer(args, **kw) as t:
        pass
    return t.report


# -- go tool pprof -raw ------------------------------------------------------

def pprof_raw_samples(text):
    """go tool pprof -raw's samples: [({sample type: value}, [location ids],
    labels line)], the types named as its "Samples:" header names them
    (alloc_objects, alloc_space, inuse_objects, inuse_space)."""
    head = text.split("Samples:\n", 1)[1].splitlines()[0]
    types = [t.split("/")[0] for t in head.split()]
    value = r"\s+(-?\d+)" * len(types)
    out = []
    for m in re.finditer(r"^%s: ([\d ]+)\n(?:\s+(\S.*:\[.*))?" % value, text, re.M):
        values = dict(zip(types, (int(v) for v in m.groups()[:len(types)])))
        ids = [int(x) for x in m.group(len(types) + 1).split()]
        out.append((values, ids, (m.group(len(types) + 2) or "").strip()))
    return out
