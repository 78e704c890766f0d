#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh
# Debian 12 machine, builds, runs the unit tests, builds the test images,
# starts the local registries and runs the end-to-end tests as root.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD

bash scripts/install-deps.sh

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== unit tests (no root)"
cargo test --workspace --exclude mc-e2e --quiet

echo "== build"
cargo build --release --quiet
export MINICOMPOSE_BIN="$here/target/release/minicompose"

echo "== test registries (scripts/testimages/README.md)"
reused_state=${MC_TEST_STATE:-}
registry_env=$(scripts/test-registry.sh start)  # not inside eval: a failure must stop us
eval "$registry_env"
if [ "$MC_TEST_STATE" != "$reused_state" ]; then
  trap 'scripts/test-registry.sh stop "$MC_TEST_STATE" || true' EXIT
fi

# docker.io images come from the local mirror only: the tests send nothing
# off this machine, not even a fallback to Docker Hub.
export MINICOMPOSE_MIRROR_ONLY=1

echo "== end-to-end tests (root)"
cargo test -p mc-e2e --release --quiet -- --test-threads=2

echo "== runtime tests on pure cgroup v2 (QEMU)"
bash scripts/vm-cgroupv2/runtime-tests.sh --test-threads=2
