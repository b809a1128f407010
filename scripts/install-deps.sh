#!/usr/bin/env bash
# Installs what building and testing tracer needs, from Debian's packages.
# Quiet and quick when everything is already there.
set -euo pipefail
pkgs=(make gcc g++ clang llvm libbpf-dev bpftool libelf-dev libdw-dev libdebuginfod-dev libiberty-dev zlib1g-dev
      libcapstone-dev libcmocka-dev pkg-config python3 python3-pytest
      golang-go util-linux debootstrap dwz libc6-dbg
      libjemalloc-dev libmimalloc-dev libgoogle-perftools4 musl-tools
      libmicrohttpd-dev prometheus dpkg-dev man-db
      libncurses-dev tmux xxd chromium)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing packages: ${missing[*]} (run as root)" >&2
		exit 2
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# CPython 3.14 for the tests (and 3.15, which tracer does not know): Debian's
# packages from forky, in a chroot (bookworm has neither). Optional: without
# it those tests skip, saying so.
forky=${TRACER_FORKY_ROOT:-/var/lib/tracer/forky}
case "$forky" in
/?*/?*) ;; # it is removed and made again: never / or a top-level directory
*)
	echo "install-deps: TRACER_FORKY_ROOT must be a path two levels deep at least" >&2
	exit 2
	;;
esac
if { [ ! -x "$forky/usr/bin/python3.15" ] ||
	[ ! -e "$forky/usr/lib/x86_64-linux-gnu/libpython3.14.so.1.0" ]; } && [ "$(id -u)" -eq 0 ]; then
	echo "install-deps: debootstrap forky with python3.14 (and its shared library)" \
		"and 3.15 into $forky" >&2
	rm -rf "$forky"
	mkdir -p "$(dirname "$forky")"
	if ! debootstrap --variant=minbase --include=python3.14,libpython3.14,python3.15 forky "$forky" \
		http://deb.debian.org/debian /usr/share/debootstrap/scripts/sid \
		>/tmp/tracer-debootstrap.log 2>&1; then
		echo "install-deps: no python3.14 chroot (see /tmp/tracer-debootstrap.log);" \
			"its tests will skip" >&2
		rm -rf "$forky"
	fi
fi

# A fresh Debian 12 for the package's install test (test_packaging's
# deb_chroot_test.sh): a minimal base, the libraries tracer links
# (packaging/runtime-deps, the .deb's Depends; the test makes the base again
# if they move apart) and man-db. Optional too: without it that test skips.
bookworm=${TRACER_BOOKWORM_ROOT:-/var/lib/tracer/bookworm}
case "$bookworm" in
/?*/?*) ;;
*)
	echo "install-deps: TRACER_BOOKWORM_ROOT must be a path two levels deep at least" >&2
	exit 2
	;;
esac
if [ ! -x "$bookworm/usr/bin/dpkg" ] && [ "$(id -u)" -eq 0 ]; then
	runtime=$(grep -v '^#' "$(dirname "$0")/../packaging/runtime-deps" | paste -sd,)
	echo "install-deps: debootstrap bookworm with $runtime,man-db into $bookworm" >&2
	rm -rf "$bookworm.new"
	mkdir -p "$(dirname "$bookworm")"
	if debootstrap --variant=minbase --include="$runtime,man-db" bookworm "$bookworm.new" \
		http://deb.debian.org/debian >/tmp/tracer-bookworm.log 2>&1; then
		rm -rf "$bookworm" && mv "$bookworm.new" "$bookworm"
	else
		echo "install-deps: no Debian 12 chroot (see /tmp/tracer-bookworm.log);" \
			"the package's install test will skip" >&2
		rm -rf "$bookworm.new"
	fi
fi
exit 0
