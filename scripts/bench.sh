#!/usr/bin/env bash
# `make bench`: overhead of the tracer next to the empty-probe floor and its
# peers, measured side by side in one run; prints one table of medians.
#
#   scripts/bench.sh [-r REPS] [-q] [-w WORKLOADS] [-c CONFIGS]
#
# Installs the peers it compares against (Debian's bpfcc-tools for
# memleak-bpfcc, and the kernel headers bcc compiles against; heaptrack) when
# they are missing. Everything else is in scripts/bench_run.py.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ "$(id -u)" -ne 0 ]; then
	echo "bench: needs root (uprobes, BPF)" >&2
	exit 2
fi

apt_updated=
install() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "bench: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	if [ -z "$apt_updated" ]; then
		apt-get update -qq || true
		apt_updated=1
	fi
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		echo "bench: could not install ${missing[*]}; those columns will be skipped" >&2
}

install heaptrack bpfcc-tools

# bcc compiles memleak's BPF program against kernel headers. For a kernel
# without headers of its own (no package, no CONFIG_IKHEADERS) the nearest
# Debian headers are fetched with apt-get download and unpacked in a cache,
# not installed (the package would pull in a kernel image): memleak's
# user-space probes use only pt_regs, the same in every x86-64 kernel.
kh=/var/cache/tracer-bench/kheaders # outside build/: survives make clean
if [ ! -e "/lib/modules/$(uname -r)/build" ] && [ ! -e /sys/kernel/kheaders.tar.xz ] &&
	[ -z "${BCC_KERNEL_SOURCE:-}" ]; then
	if [ ! -e "$kh/tree/include/linux/kconfig.h" ]; then
		[ -n "$apt_updated" ] || { apt-get update -qq || true; apt_updated=1; }
		arch_pkg=$(apt-cache search --names-only '^linux-headers-[0-9][0-9.+~a-z-]*-amd64$' 2>/dev/null |
			awk '{print $1}' | grep -v -- '-rt-\|-cloud-' | sort -V | tail -1)
		common_pkg=${arch_pkg%-amd64}-common
		rm -rf "$kh" && mkdir -p "$kh/debs" "$kh/x"
		if [ -n "$arch_pkg" ] && (cd "$kh/debs" && apt-get download "$arch_pkg" "$common_pkg" >/dev/null 2>&1); then
			for d in "$kh"/debs/*.deb; do dpkg-deb -x "$d" "$kh/x"; done
			# One tree: the common headers, with the arch's generated ones over them.
			cp -a "$kh"/x/usr/src/linux-headers-*-common "$kh/tree"
			cp -a "$kh"/x/usr/src/linux-headers-*-amd64/. "$kh/tree/"
			rm -rf "$kh/x" "$kh/debs" "$kh/tree/scripts"
		else
			echo "bench: no kernel headers for bcc; memleak-bpfcc will be skipped" >&2
		fi
	fi
	[ -e "$kh/tree/include/linux/kconfig.h" ] && export BCC_KERNEL_SOURCE="$kh/tree"
fi

# The cost of one uprobe hit per probed instruction on this kernel, next to
# what user/placement.c predicts (printed with the extras).
mkdir -p build
cc -O2 -std=gnu11 -D_GNU_SOURCE -Iuser scripts/uprobe_cost.c user/placement.c user/elfsym.c \
	-lcapstone -lelf -o build/uprobe_cost ||
	echo "bench: cannot build build/uprobe_cost; its table is skipped" >&2

/usr/bin/python3 scripts/bench_run.py "$@"
# --budget against the overhead it achieves: 1 %, 5 % and unbounded, side by side
/usr/bin/python3 scripts/bench_budget.py -r 3 -s 8 -b 1,5,0
# attach and detach times, and a launched CPython's stops
exec /usr/bin/python3 scripts/bench_attach.py
