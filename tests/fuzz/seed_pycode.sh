#!/bin/bash
# Seeds for fuzz_pycode: seed_pycode.py run by every CPython on this machine
# that the tracer reads (pyenv's, Debian's, and 3.14 in the tests' forky
# chroot when install-deps made it). None found: the corpus is empty and the
# fuzzer starts from nothing.
# usage: seed_pycode.sh OUTDIR
set -e
out=$1
here=$(cd "$(dirname "$0")" && pwd)
for py in "$HOME"/.pyenv/versions/3.*/bin/python3 /usr/bin/python3.[0-9]*; do
	case $py in *-config) continue ;; esac
	[ -x "$py" ] && "$py" "$here/seed_pycode.py" "$out" 2>/dev/null || true
done
forky=${TRACER_FORKY_ROOT:-/var/lib/tracer/forky}
if [ -x "$forky/usr/bin/python3.14" ]; then
	tmp=$(mktemp -d "$forky/tmp/seed-pycode.XXXXXX")
	chroot "$forky" /usr/bin/python3.14 - "/tmp/$(basename "$tmp")" <"$here/seed_pycode.py" || true
	mv "$tmp"/* "$out"/ 2>/dev/null || true
	rm -rf "$tmp"
fi
