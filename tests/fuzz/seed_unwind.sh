#!/bin/bash
# Seeds for fuzz_unwind (see its header for the one-byte mode prefix):
# small builds of a workload, whole, and their CFI sections alone.
# usage: seed_unwind.sh CC OUTDIR
set -e
cc=$1
out=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# prints a section's load address in hex, or nothing
sh_addr() {
	readelf -W -S "$1" | sed -n "s/^ *\[ *[0-9]*\] $2 \{1,\}[A-Z_0-9]\{1,\} \{1,\}\([0-9a-f]\{1,\}\) .*/\1/p"
}

# section FILE NAME MODE: MODE, the address as a u32, the section's bytes
section() {
	local addr v
	addr=$(sh_addr "$1" "$2")
	[ -n "$addr" ] || return 0
	objcopy --dump-section "$2=$tmp/sec" "$1" "$tmp/copy"
	v=$((16#$addr))
	{
		printf "\\x$(printf %02x "$3")"
		for s in 0 8 16 24; do printf "\\x$(printf %02x $(((v >> s) & 255)))"; done
		cat "$tmp/sec"
	} >"$out/$(basename "$1")$2"
}

i=0
for flags in "-O2 -fomit-frame-pointer -s" "-O1 -fno-omit-frame-pointer -s" \
	"-O2 -s -Wl,--no-ld-generated-unwind-info" "-O2 -g1 -fno-asynchronous-unwind-tables"; do
	i=$((i + 1))
	# shellcheck disable=SC2086
	$cc $flags -pthread tests/workloads/demo.c -o "$tmp/demo$i"
	{ printf '\0'; cat "$tmp/demo$i"; } >"$out/demo$i"
	section "$tmp/demo$i" .eh_frame 1
	section "$tmp/demo$i" .debug_frame 3
done
