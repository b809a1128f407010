"""Packaging: --version, --help and the man page against the option table
of user/main.c (none missing), `make install` under DESTDIR and PREFIX, and
`make deb` installed with dpkg into a root of its own: the binary runs,
man finds its page, the unit and defaults are in place, and Depends names
the package of every library the binary needs."""
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from helpers import ROOT, TRACER, Workload, run_tracer, serve_address, workload


def option_table():
    """The long options of main.c's getopt table, and the short ones of its
    optstring."""
    with open(os.path.join(ROOT, "user", "main.c")) as f:
        src = f.read()
    table = src[src.index("longopts[] = {"):]
    table = table[:table.index("};")]
    longs = re.findall(r'\{"([a-z][a-z-]*)", (?:no|required)_argument', table)
    shorts = set(re.findall(r"[a-z]", re.search(r'"\+([a-z:]+)"', src).group(1)))
    assert len(longs) > 25 and "hook-pymalloc" in longs and "listen" in longs
    return longs, shorts


def test_help_lists_every_option():
    longs, shorts = option_table()
    text = run_tracer(["--help"]).stdout
    missing = [o for o in longs if not re.search(r"--%s\b" % re.escape(o), text)]
    assert not missing, missing
    missing = [s for s in shorts if not re.search(r"(^|\s)-%s[, ]" % s, text, re.M)]
    assert not missing, missing


def test_man_page_covers_every_command_and_option():
    longs, shorts = option_table()
    with open(os.path.join(ROOT, "docs", "tracer.1")) as f:
        man = f.read()
    missing = [o for o in longs if ("\\-\\-" + o.replace("-", "\\-")) not in man]
    assert not missing, missing
    missing = [s for s in shorts if not re.search(r"\.BR \\-%s\b" % s, man)]
    assert not missing, missing
    for command in ("stats", "compare", "serve", "top"):
        assert "tracer %s" % command in man
    p = subprocess.run(["groff", "-man", "-ww", "-z", os.path.join(ROOT, "docs", "tracer.1")],
                       capture_output=True, text=True)
    assert p.returncode == 0 and not p.stderr, p.stderr


def test_version():
    with open(os.path.join(ROOT, "Makefile")) as f:
        version = re.search(r"^VERSION\s*:?=\s*(\S+)", f.read(), re.M).group(1)
    out = run_tracer(["--version"]).stdout
    assert re.match(r"^tracer %s( \(git [0-9a-f]+(-[\w.-]+)?\))?\n$" % re.escape(version), out), out


def make(*args):
    p = subprocess.run(["make", "--no-print-directory", "-C", ROOT] + list(args),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_make_install_honours_prefix_and_destdir(tmp_path):
    dest = tmp_path / "dest"
    make("install", "DESTDIR=%s" % dest, "PREFIX=/opt/tr")
    bin_ = dest / "opt/tr/bin/tracer"
    assert subprocess.run([str(bin_), "--version"], capture_output=True).returncode == 0
    assert (dest / "opt/tr/share/man/man1/tracer.1").exists()
    unit = (dest / "opt/tr/lib/systemd/system/tracer.service").read_text()
    assert "ExecStart=/opt/tr/bin/tracer serve $TRACER_ARGS" in unit
    assert "EnvironmentFile=-/opt/tr/etc/default/tracer" in unit
    assert (dest / "opt/tr/etc/default/tracer").read_text().count("TRACER_ARGS=") == 2
    assert (dest / "opt/tr/share/bash-completion/completions/tracer").exists()
    # an edited defaults file is kept
    (dest / "opt/tr/etc/default/tracer").write_text('TRACER_ARGS="-p 1"\n')
    make("install", "DESTDIR=%s" % dest, "PREFIX=/opt/tr")
    assert (dest / "opt/tr/etc/default/tracer").read_text() == 'TRACER_ARGS="-p 1"\n'


def needed(binary):
    p = subprocess.run(["objdump", "-p", binary], capture_output=True, text=True, check=True)
    return re.findall(r"^\s+NEEDED\s+(\S+)$", p.stdout, re.M)


def owner(soname):
    """The Debian package of the library this system loads for soname."""
    p = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True)
    path = re.search(r"^\s+%s \(libc6,x86-64\) => (\S+)$" % re.escape(soname), p.stdout,
                     re.M).group(1)
    real = os.path.realpath(path)
    for candidate in (path, real, real.replace("/usr/lib/", "/lib/", 1),
                      path.replace("/lib/", "/usr/lib/", 1)):
        q = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if q.returncode == 0:
            return q.stdout.split(":", 1)[0]
    raise AssertionError("no package holds " + path)


@pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="dpkg-deb missing")
def test_deb_installs_and_runs(tmp_path):
    make("deb")
    debs = [f for f in os.listdir(os.path.join(ROOT, "build")) if f.endswith(".deb")]
    assert len(debs) == 1, debs
    deb = os.path.join(ROOT, "build", debs[0])
    info = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], capture_output=True, text=True,
                          check=True).stdout
    depends = {d.strip().split(" ")[0]: d.strip() for d in info.split(",")}
    # every library the binary needs comes from a declared package
    for soname in needed(TRACER):
        assert owner(soname) in depends, (soname, owner(soname), depends)
    for pkg in ("libbpf1", "libelf1", "libdw1", "libmicrohttpd12", "libcapstone4"):
        assert pkg in depends, depends
    # and this system satisfies them, versions included
    for pkg, dep in depends.items():
        q = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", pkg],
                           capture_output=True, text=True)
        assert q.stdout.startswith("install ok installed "), (pkg, q.stdout + q.stderr)
        m = re.search(r"\((>=|=) (\S+)\)", dep)
        if m:
            assert subprocess.run(["dpkg", "--compare-versions", q.stdout.split()[-1],
                                   "ge" if m.group(1) == ">=" else "eq", m.group(2)]
                                  ).returncode == 0, (dep, q.stdout)

    root = tmp_path / "root"
    for d in ("var/lib/dpkg/updates", "var/lib/dpkg/info"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    # a root of its own has no libc6 & co. in its database: their check is above
    p = subprocess.run(["dpkg", "--root=%s" % root, "--force-depends",
                        "--force-script-chrootless", "-i", deb],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    out = subprocess.run([str(root / "usr/bin/tracer"), "--version"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and out.stdout.startswith("tracer ")
    man = subprocess.run(["man", "-M", str(root / "usr/share/man"), "-w", "tracer"],
                         capture_output=True, text=True)
    assert man.returncode == 0 and man.stdout.strip() == str(root /
                                                             "usr/share/man/man1/tracer.1.gz")
    unit = (root / "lib/systemd/system/tracer.service").read_text()
    assert "ExecStart=/usr/bin/tracer serve $TRACER_ARGS" in unit
    assert "EnvironmentFile=-/etc/default/tracer" in unit
    if shutil.which("systemd-analyze"):  # the unit as systemd reads it, pointed at this binary
        copy = tmp_path / "tracer.service"
        copy.write_text(unit.replace("/usr/bin/tracer", str(root / "usr/bin/tracer")))
        v = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)],
                           capture_output=True, text=True)
        assert v.returncode == 0 and not v.stdout + v.stderr, v.stdout + v.stderr
    conffiles = subprocess.run(["dpkg-query", "--root=%s" % root, "-W", "-f=${Conffiles}",
                                "tracer"], capture_output=True, text=True).stdout
    assert "/etc/default/tracer" in conffiles
    p = subprocess.run(["dpkg", "--root=%s" % root, "-r", "tracer"], capture_output=True,
                       text=True)
    assert p.returncode == 0 and not (root / "usr/bin/tracer").exists(), p.stderr


BOOKWORM = os.environ.get("TRACER_BOOKWORM_ROOT", "/var/lib/tracer/bookworm")


@pytest.mark.skipif(not os.path.exists(os.path.join(BOOKWORM, "usr/bin/dpkg")),
                    reason="no Debian 12 chroot: make deb-chroot makes it (debootstrap)")
def test_deb_installs_in_a_fresh_debian_12():
    """dpkg -i (no --force-depends) into a copy of a debootstrapped bookworm
    holding only its declared dependencies, then --version, man -w, the unit
    (scripts/deb_chroot_test.sh)."""
    make("deb")
    deb = [f for f in os.listdir(os.path.join(ROOT, "build")) if f.endswith(".deb")][0]
    p = subprocess.run(["bash", os.path.join(ROOT, "scripts/deb_chroot_test.sh"),
                        os.path.join(ROOT, "build", deb)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "installed, ran and removed in a fresh Debian 12." in p.stderr
    # the base install-deps makes holds what the package depends on
    depends = subprocess.run(["dpkg-deb", "-f", os.path.join(ROOT, "build", deb), "Depends"],
                             capture_output=True, text=True, check=True).stdout
    listed = open(os.path.join(ROOT, "packaging/runtime-deps")).read().splitlines()
    assert {d.split()[0] for d in depends.split(",")} == \
        {l for l in listed if l and not l.startswith("#")}
    assert "debootstrap bookworm" not in p.stderr  # it was not made again


def test_shipped_defaults_serve_every_process_within_budget():
    """The defaults file tracer.service reads, as systemd splits it: serve -a
    within its budget, a process started after it among the ones /metrics
    shows, the budget's ratio what the file says."""
    args = subprocess.run(["bash", "-c", '. "$1"; printf "%s\\n" $TRACER_ARGS', "-",
                           os.path.join(ROOT, "packaging/default-tracer")],
                          capture_output=True, text=True, check=True).stdout.split()
    assert args[:1] == ["-a"] and "--budget" in args, args
    p = subprocess.Popen([TRACER, "serve"] + args + ["-v", "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = serve_address(p, "processes with")  # "tracing N processes with"
        assert base, "no address"
        with Workload([workload("native"), "wait"]) as w:
            w.run("go\n")
            deadline = time.time() + 30
            while True:
                metrics = urllib.request.urlopen(base + "/metrics", timeout=30).read().decode()
                if re.search(r'^tracer_traced_bytes\{pid="%d",' % w.pid, metrics, re.M) or \
                        time.time() > deadline:
                    break
                time.sleep(0.2)
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)
    assert p.returncode == 0
    assert re.search(r'^tracer_traced_bytes\{pid="%d",comm="native"' % w.pid, metrics, re.M), \
        metrics
    assert re.search(r"^tracer_budget_ratio 0\.02$", metrics, re.M), metrics
