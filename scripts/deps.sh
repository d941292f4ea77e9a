#!/usr/bin/env bash
# Install the Debian 12 packages katascope needs, only those missing.
#   scripts/deps.sh          build and run
#   scripts/deps.sh --test   also what the tests use
set -euo pipefail

pkgs=(clang bpftool libbpf-dev libelf-dev zlib1g-dev libmicrohttpd-dev
      pkg-config cmake gcc g++ make curl protobuf-c-compiler libprotobuf-c-dev
      libcurl4-openssl-dev)
if [[ "${1:-}" == "--test" ]]; then
	pkgs+=(python3 postgresql-15 postgresql-client-15 prometheus
	       libcap2-bin util-linux nodejs redis-server jq wrk golang-go
	       libxml2-utils openssl linux-perf)
fi

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
	echo "scripts/deps.sh: missing packages: ${missing[*]}; run as root" \
		"or: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
