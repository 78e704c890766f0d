#!/usr/bin/env bash
# Installs the Debian packages minicompose and its tests use. Idempotent:
# does nothing when everything is present.
set -euo pipefail

packages=(
  # runtime and networking
  iproute2 nftables iperf3 dnsperf
  # the pure cgroup v2 test VM (scripts/vm-cgroupv2)
  qemu-system-x86
  # test registry and image tooling
  docker-registry skopeo umoci apache2-utils
  # image builder/pusher and token issuer (scripts/testimages)
  python3 python3-cryptography
  # stand-in images are built from these
  busybox-static
  # tests and benchmarks
  curl jq zstd
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
