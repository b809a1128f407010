#!/usr/bin/env bash
# `make deb-chroot`: the .deb from `make deb` installed with dpkg -i into a
# fresh Debian 12 (bookworm) made with debootstrap that holds only a
# minimal base, the package's declared dependencies and man-db (for man
# -w), then run there: tracer --version, --help, man -w tracer, the unit
# file and defaults file in place, and removed again. The base chroot is
# made once (network: deb.debian.org), in TRACER_BOOKWORM_ROOT
# (/var/lib/tracer/bookworm), then copied for each run, so that every run
# installs into a system that never saw the package.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deb=${1:?usage: deb_chroot_test.sh DEB}
base=${TRACER_BOOKWORM_ROOT:-/var/lib/tracer/bookworm}
case "$base" in
/?*/?*) ;;
*) echo "deb-chroot: TRACER_BOOKWORM_ROOT must be two levels deep at least" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "deb-chroot: needs root (chroot, debootstrap)" >&2; exit 2; }

# the declared dependencies, package names only
deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/[ (].*//; s/^ *//' | grep . | sort -u | paste -sd,)
has_all() { # whether the base chroot has every dependency (and man-db) installed
	local p
	[ -x "$base/usr/bin/dpkg" ] || return 1
	for p in ${deps//,/ } man-db; do
		chroot "$base" dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || return 1
	done
}
if ! has_all; then
	echo "deb-chroot: debootstrap bookworm with $deps,man-db into $base" >&2
	rm -rf "$base.new"
	mkdir -p "$(dirname "$base")"
	debootstrap --variant=minbase --include="$deps,man-db" bookworm "$base.new" \
		http://deb.debian.org/debian >/tmp/tracer-bookworm.log 2>&1 ||
		{ echo "deb-chroot: debootstrap failed (see /tmp/tracer-bookworm.log)" >&2; exit 1; }
	rm -rf "$base" && mv "$base.new" "$base"
fi
grep -q '^12\.' "$base/etc/debian_version" || { echo "deb-chroot: $base is not Debian 12" >&2; exit 1; }

work=$(mktemp -d /tmp/tracer-deb-chroot.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -a "$base/." "$work/"
cp "$deb" "$work/tmp/tracer.deb"
run_in() { chroot "$work" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

# no --force-depends: every dependency must be satisfied by bookworm's packages
run_in dpkg -i /tmp/tracer.deb
version=$(run_in tracer --version)
echo "deb-chroot: $version" >&2
[[ $version == "tracer "* ]]
run_in tracer --help > "$work/tmp/help.txt" # whole: grep -q would end it early (SIGPIPE)
grep -q -- '--budget' "$work/tmp/help.txt"
[ "$(run_in man -w tracer)" = /usr/share/man/man1/tracer.1.gz ]
grep -q '^ExecStart=/usr/bin/tracer serve \$TRACER_ARGS' "$work/lib/systemd/system/tracer.service"
[ -f "$work/etc/default/tracer" ]
[ -f "$work/usr/share/bash-completion/completions/tracer" ]
# the binary finds every library in the fresh system
run_in ldd /usr/bin/tracer > "$work/tmp/ldd.txt"
! grep -q 'not found' "$work/tmp/ldd.txt"
run_in dpkg -r tracer
[ ! -e "$work/usr/bin/tracer" ]
echo "deb-chroot: installed, ran and removed in a fresh Debian $(cat "$base/etc/debian_version")" >&2
