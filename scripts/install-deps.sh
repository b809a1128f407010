#!/usr/bin/env bash
# Installs what building and testing tracer needs, from Debian's packages.
# Quiet and quick when everything is already there.
set -euo pipefail
pkgs=(make gcc g++ clang llvm libbpf-dev bpftool libelf-dev libdw-dev zlib1g-dev
      libcapstone-dev libcmocka-dev pkg-config python3 python3-pytest
      golang-go util-linux)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]} (run as root)" >&2
	exit 2
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
