"""A root tool facing what others control: output files that are links,
devices or another user's; a snapshot that cannot be written late; signals
that would end the tracer; processes that cannot be traced."""
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile

import pytest

from helpers import Tracer, Workload, by_line, run_tracer, site, workload

SRC = "phases.c"
NOBODY = 65534


def refused(args, message):
    """The tracer refuses args at once: status 2, one line with message."""
    p = run_tracer(args, input="", check=False)
    assert p.returncode == 2, (args, p.returncode, p.stderr)
    assert p.stderr.count("\n") == 1 and message in p.stderr, (args, p.stderr)
    assert "ready" not in p.stdout  # nothing was launched
    return p


def a_snapshot(tmp_path):
    path = tmp_path / "saved.snap"
    run_tracer(["-o", str(path), "--", workload("phases")], input="")
    return str(path)


def test_output_is_never_a_device_a_fifo_or_through_a_link(tmp_path):
    dev = tmp_path / "null"
    os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "link.snap"
    link.symlink_to(victim)
    dangling = tmp_path / "dangling.snap"
    dangling.symlink_to(tmp_path / "created-through-the-link")
    for out, message in [(dev, "not a regular file"), (fifo, "not a regular file"),
                         (link, "symbolic link"), (dangling, "symbolic link"),
                         (tmp_path, "not a regular file")]:
        refused(["-o", str(out), "--", workload("phases")], message)
    snap = a_snapshot(tmp_path)
    for out, message in [(dev, "not a regular file"), (link, "symbolic link")]:
        p = run_tracer(["stats", snap, "-o", str(out)], check=False)
        assert p.returncode == 2 and message in p.stderr, p.stderr
    assert stat.S_ISCHR(os.stat(dev).st_mode) and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert victim.read_text() == "precious" and os.path.islink(link)
    assert not os.path.exists(tmp_path / "created-through-the-link")


def test_another_users_file_in_a_sticky_directory_is_refused(tmp_path):
    shared = tmp_path / "tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    theirs = shared / "theirs.snap"
    theirs.write_text("theirs")
    os.chown(theirs, NOBODY, NOBODY)
    refused(["-o", str(theirs), "--", workload("phases")], "belongs to another user")
    p = run_tracer(["stats", a_snapshot(tmp_path), "-o", str(theirs)], check=False)
    assert p.returncode == 2 and "belongs to another user" in p.stderr
    assert theirs.read_text() == "theirs"


def test_snapshots_belong_to_the_sudo_user():
    d = tempfile.mkdtemp(prefix="tracer-sudo-", dir="/tmp")  # pytest's tmp_path is root's only
    try:
        os.chmod(d, 0o755)
        out = os.path.join(d, "mine.snap")
        env = dict(os.environ, SUDO_UID=str(NOBODY), SUDO_GID=str(NOBODY))
        run_tracer(["-o", out, "--", workload("phases")], env=env, input="")
        st = os.stat(out)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (NOBODY, NOBODY, 0o600)
        # and that user can read it, without root
        p = run_tracer(["stats", out, "--format", "json"], user=NOBODY)
        assert json.loads(p.stdout)["target"]["command"].endswith("phases")
        assert os.listdir(d) == ["mine.snap"]  # nothing left beside it
    finally:
        shutil.rmtree(d)


def test_a_snapshot_that_cannot_be_written_still_reports(tmp_path):
    out = tmp_path / "gone"
    out.mkdir()
    with Tracer(["-o", str(out / "s.snap"), "--", workload("phases")], check=False) as t:
        t.expect("ready")
        t.say("1\n")
        t.read_until("done")
        os.rmdir(out)  # the directory goes away while tracing
        t.end_input()
    assert t.returncode == 1
    assert "snapshot 1 not saved" in t.stderr and "No such file or directory" in t.stderr
    grow = site(SRC, "grow")
    assert by_line(t.report, SRC)[grow] == (100 * 1000, 100)


def test_interval_reports_go_on_after_a_failed_write(tmp_path):
    out = tmp_path / "gone"
    out.mkdir()
    with Tracer(["-i", "0.3", "-o", str(out / "s-%n.snap"), "--", workload("phases")],
                check=False) as t:
        t.expect("ready")
        os.rmdir(out)
        for _ in range(3):  # three interval reports, none saved
            t.out.until(lambda l: l.startswith("{"), 10)
        t.end_input()
    assert t.returncode == 1 and t.report is not None
    assert t.stderr.count("not saved") >= 4


def test_usr1_takes_a_snapshot_usr2_resets_the_peak_quit_ends(tmp_path):
    out = tmp_path / "s-%n.snap"
    with Tracer(["-o", str(out), "--", workload("phases")]) as t:
        t.expect("ready")
        t.say("1\n")
        t.read_until("done")
        t.signal(signal.SIGUSR1)  # take_snapshot(): a report now, and its file
        now = json.loads(t.out.until(lambda l: l.startswith("{"), 10))
        t.say("2\n")
        t.read_until("done")
        t.signal(signal.SIGUSR2)  # reset_peak()
        t.signal(signal.SIGUSR1)
        after_reset = json.loads(t.out.until(lambda l: l.startswith("{"), 10))
        t.signal(signal.SIGQUIT)  # ends the tracer through its normal path
    lines = by_line(now, SRC)
    assert lines[site(SRC, "grow")] == (100 * 1000, 100)
    assert lines[site(SRC, "temp")] == (50 * 4096, 50)
    assert now["traced_memory"]["peak"] >= now["traced_memory"]["current"] >= 304800
    # phase 2 freed the temporaries: before the reset the peak held them
    mem = after_reset["traced_memory"]
    assert mem["peak"] == mem["current"], mem
    assert by_line(after_reset, SRC)[site(SRC, "grow")] == (400 * 1000, 400)
    assert t.report["traced_memory"]["peak"] == t.report["traced_memory"]["current"]
    assert sorted(os.listdir(tmp_path)) == ["s-1.snap", "s-2.snap", "s-3.snap"]


def test_processes_that_cannot_be_traced_get_one_line():
    # a kernel thread (kthreadd is pid 2 wherever /proc shows it)
    with open("/proc/2/stat") as f:
        flags = int(f.read().rsplit(")", 1)[1].split()[6])
    assert flags & 0x00200000, "pid 2 is not a kernel thread here"
    refused(["-p", "2", "-d", "1"], "kernel thread")
    # a zombie: a child that exited and was not waited for
    child = subprocess.Popen(["true"])
    for _ in range(100):
        with open("/proc/%d/stat" % child.pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        subprocess.run(["sleep", "0.05"])
    refused(["-p", str(child.pid), "-d", "1"], "zombie")
    child.wait()
    refused(["-p", str(child.pid), "-d", "1"], "no such process")


def test_a_process_whose_map_cannot_be_read():
    try:
        open("/proc/1/maps").read(1)
    except PermissionError:
        refused(["-p", "1", "-d", "1"], "cannot read process 1's memory map")
    else:
        pytest.skip("pid 1's memory map is readable here (no process to refuse)")


def test_a_binary_only_its_mount_namespace_shows_gets_its_lines():
    """The program runs from a tmpfs mounted in its own mount namespace: the
    path in its maps names nothing here; the file is reached through
    /proc/PID/map_files, and its frames get their source lines."""
    hidden = tempfile.mkdtemp(prefix="tracer-mntns-", dir="/tmp")
    try:
        script = "mount -t tmpfs t %s && cp %s %s/phases && exec %s/phases" % (
            hidden, workload("phases"), hidden, hidden)
        with Workload(["unshare", "-m", "--propagation", "private", "sh", "-c", script]) as w:
            assert not os.path.exists(os.path.join(hidden, "phases"))  # not from here
            with Tracer([], attach=w.pid) as t:
                w.say("1\n")
                w.read_until("done")
                t.signal(signal.SIGINT)
        lines = by_line(t.report, SRC)
        assert lines[site(SRC, "grow")] == (100 * 1000, 100), t.report["statistics"][:3]
        assert lines[site(SRC, "temp")] == (50 * 4096, 50)
    finally:
        os.rmdir(hidden)


def test_source_paths_a_snapshot_names_are_read_only_as_regular_files(tmp_path):
    # tracebacks print source lines from the paths the snapshot names: a
    # FIFO put where the source was must not block the report (nor be read)
    src = tmp_path / "prog.c"
    shutil.copy(os.path.join(os.path.dirname(__file__), "..", "workloads", "native.c"), src)
    exe = tmp_path / "prog"
    subprocess.run(["gcc", "-O1", "-g", "-fno-omit-frame-pointer", "-pthread", str(src), "-o",
                    str(exe)], check=True)
    snap = tmp_path / "s.snap"
    run_tracer(["-n", "3", "-t", "1", "-o", str(snap), "--", str(exe)])
    report = run_tracer(["stats", str(snap), "-k", "traceback", "-t", "3"]).stdout
    assert "SITE:" in report  # the source lines, from the regular file
    os.unlink(src)
    os.mkfifo(src)
    report = run_tracer(["stats", str(snap), "-k", "traceback", "-t", "3"], timeout=20).stdout
    assert "prog.c" in report and "SITE:" not in report


def test_file_name_with_a_newline_and_a_space(tmp_path):
    """/proc/PID/maps escapes a newline in a path (\\012): the executable at
    such a path is still probed and symbolized, launched and attached."""
    where = tmp_path / "new\nline dir"
    where.mkdir()
    exe = str(where / "native static")
    shutil.copy(workload("native-static"), exe)
    expected = {site("native.c", "malloc"): (4096 * 1000, 1000),
                site("native.c", "thread"): (512 * 800, 800)}
    with Tracer(["--", exe]) as t:
        pass
    lines = by_line(t.report, "native.c")
    assert {k: lines.get(k) for k in expected} == expected
    with Workload([exe, "wait"]) as w:
        with Tracer([], attach=w.pid) as t:
            w.run("go\n")
            t.signal()
    lines = by_line(t.report, "native.c")
    assert {k: lines.get(k) for k in expected} == expected


# Every subcommand's bad arguments: one line, status 2, nothing done. An
# unknown option or a missing value printed getopt's line and the whole
# usage (87 lines); --follow=3, a --debug-dir that is no directory (which
# then traced) and --version with more after it were taken with status 0.
BAD_ARGUMENTS = [
    (["--bogus", "-p", "1"], "unknown option '--bogus'"),
    (["-x", "-p", "1"], "unknown option '-x'"),
    (["-p"], "-p needs a value"),
    (["--max-allocs"], "--max-allocs needs a value"),
    (["--follow=3", "--", "true"], "--follow takes no value"),
    (["--debug-dir", "/nonexistent", "-p", "1"], "'/nonexistent' is not a directory"),
    (["--debug-dir", "/etc/passwd", "-p", "1"], "'/etc/passwd' is not a directory"),
    (["--version", "extra"], "--version takes nothing after it"),
    (["stats", "--bogus", "x.snap"], "unknown option '--bogus'"),
    (["stats", "x.snap", "-t"], "-t needs a value"),
    (["stats", "--cumulative=1", "x.snap"], "--cumulative takes no value"),
    (["stats", "/nonexistent.snap"], "No such file or directory"),
    (["stats", "/dev/null"], "not a regular file"),
    (["stats", "/etc/passwd"], "not a tracer snapshot"),
    (["compare", "--bogus", "a", "b"], "unknown option '--bogus'"),
    (["compare", "/etc/passwd"], "usage: tracer compare"),
    (["compare", "/nonexistent.snap", "/etc/passwd"], "No such file or directory"),
    (["serve", "--bogus", "-p", "1"], "unknown option '--bogus'"),
    (["serve", "--listen"], "--listen needs a value"),
    (["serve", "--listen", "nonsense", "-p", "1"], "invalid --listen 'nonsense'"),
    (["serve", "--token-file", "/nonexistent", "-p", "1"], "cannot read the token file"),
    (["top", "--bogus", "-p", "1"], "unknown option '--bogus'"),
    (["top", "--", "true"], "tracer top attaches to a running process"),
    (["top", "-p", "4194304"], "no such process"),
]


@pytest.mark.parametrize("args,message", BAD_ARGUMENTS,
                         ids=["_".join(a)[:40] for a, _ in BAD_ARGUMENTS])
def test_bad_arguments_get_one_line_and_status_2(args, message):
    p = refused(args, message)
    assert p.stderr.startswith("tracer: ") and p.stdout == "", p
