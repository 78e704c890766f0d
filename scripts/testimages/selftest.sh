#!/usr/bin/env bash
# Checks the running test registries against scripts/testimages/README.md with
# independent tools (skopeo, umoci, curl, tar, zstd). Needs the MC_TEST_* exports of
# `eval "$(scripts/test-registry.sh start)"`. Exits non-zero on the first mismatch.
set -euo pipefail

for v in MC_TEST_REGISTRY MC_TEST_REGISTRY_BASIC MC_TEST_REGISTRY_TOKEN MC_TEST_REGISTRY_USER \
  MC_TEST_REGISTRY_PASSWORD MC_TEST_TOKEN_REALM; do
  [ -n "${!v:-}" ] || { echo "selftest: $v is not set; run: eval \"\$(scripts/test-registry.sh start)\"" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/mc-testimages-selftest.XXXXXX")
trap 'rm -rf "$work"' EXIT
fails=0
ok() { echo "selftest: ok   $*" >&2; }
fail() { echo "selftest: FAIL $*" >&2; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else fail "$what"; fi; }

reg=$MC_TEST_REGISTRY
raw() { skopeo inspect --tls-verify=false --raw "docker://$reg/$1"; }
media() { raw "$1" | jq -r .mediaType; }

# unpack REF NAME: skopeo copy (amd64) to an OCI layout, umoci unpack; prints the rootfs.
unpack() {
  skopeo copy -q --src-tls-verify=false "docker://$reg/$1" "oci:$work/oci:$2" >/dev/null &&
    umoci unpack --image "$work/oci:$2" "$work/$2" >/dev/null 2>&1 && echo "$work/$2/rootfs"
}

# Media types as documented.
[ "$(media library/busybox:latest)" = application/vnd.docker.distribution.manifest.list.v2+json ] &&
  ok "busybox is a docker manifest list" || fail "busybox media type"
[ "$(media library/busybox:single)" = application/vnd.docker.distribution.manifest.v2+json ] &&
  ok "busybox:single is docker schema2" || fail "busybox:single media type"
[ "$(media library/python:3.6-alpine)" = application/vnd.oci.image.index.v1+json ] &&
  ok "python is an OCI index" || fail "python media type"
[ "$(media library/redis:alpine)" = application/vnd.docker.distribution.manifest.v2+json ] &&
  ok "redis is docker schema2" || fail "redis media type"

# Stand-ins.
r=$(unpack library/busybox:latest busybox) || fail "unpack busybox"
check "busybox: /bin/sh runs" chroot "$r" /bin/sh -c 'echo hi | grep -q hi'
[ "$(stat -c %h "$r/bin/sh")" -gt 100 ] && ok "busybox applets are hardlinks" || fail "busybox hardlinks"
r=$(unpack library/python:3.6-alpine python) || fail "unpack python"
check "python: flask and redis import" chroot "$r" /usr/bin/python -c 'import flask, redis'
check "python: pip install flask redis offline" chroot "$r" /usr/bin/pip install --no-index flask redis
[ -z "$(find "$r/usr/lib" -name EXTERNALLY-MANAGED)" ] && ok "python: no EXTERNALLY-MANAGED" || fail "EXTERNALLY-MANAGED"
cfg=$(skopeo inspect --tls-verify=false --config "docker://$reg/library/redis:alpine" | jq -c .config)
[ "$(echo "$cfg" | jq -c .Cmd)" = '["redis-server","--protected-mode","no"]' ] &&
  [ "$(echo "$cfg" | jq -r .WorkingDir)" = /data ] && [ "$(echo "$cfg" | jq -c .ExposedPorts)" = '{"6379/tcp":{}}' ] &&
  ok "redis config" || fail "redis config: $cfg"
r=$(unpack library/redis:alpine redis) || fail "unpack redis"
check "redis: redis-server runs" chroot "$r" /usr/bin/redis-server --version

# Multi-platform index.
idx=$(raw test/multiarch:latest)
[ "$(echo "$idx" | jq -r '[.manifests[].platform.architecture] | join(",")')" = arm64,unknown,amd64 ] &&
  [ "$(echo "$idx" | jq -r '.manifests[1].annotations["vnd.docker.reference.type"]')" = attestation-manifest ] &&
  ok "multiarch index entries" || fail "multiarch index: $idx"
r=$(unpack test/multiarch:latest multiarch) || fail "unpack multiarch"
[ "$(cat "$r/etc/mc-arch")" = amd64 ] && ok "multiarch: amd64 picked" || fail "multiarch arch"

# zstd (umoci 0.4.7 has no zstd: read the layers directly).
skopeo copy -q --src-tls-verify=false "docker://$reg/test/zstd:latest" "oci:$work/oci:zstd" >/dev/null
m=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="zstd") | .digest' "$work/oci/index.json")
layers=$(jq -r '.layers[] | .mediaType + " " + .digest' "$work/oci/blobs/sha256/${m#sha256:}")
[ "$(echo "$layers" | grep -c 'tar+zstd')" = 2 ] && ok "zstd: two zstd layers" || fail "zstd media types"
last=$(echo "$layers" | tail -n1 | cut -d' ' -f2)
[ "$(zstd -dc "$work/oci/blobs/sha256/${last#sha256:}" | tar -xO zstd/hello.txt)" = "hello from a zstd layer" ] &&
  ok "zstd: hello.txt" || fail "zstd content"

# Whiteouts.
r=$(unpack test/whiteout:latest whiteout) || fail "unpack whiteout"
got=$(cd "$r" && find wh | sort | tr '\n' ' ')
[ "$got" = "wh wh/keep.txt wh/opq wh/opq/new.txt wh/readd wh/readd/y.txt " ] && [ ! -e "$r/bin/vi" ] &&
  [ -e "$r/bin/sh" ] && ok "whiteout tree" || fail "whiteout tree: $got"

# Hardlinks.
r=$(unpack test/hardlink:latest hardlink) || fail "unpack hardlink"
[ "$(stat -c %i "$r/hl/original")" = "$(stat -c %i "$r/hl/sub/link2")" ] && [ "$(stat -c %h "$r/hl/link1")" = 3 ] &&
  [ "$(cat "$r/hl/long-link")" = "long name" ] && ok "hardlinks" || fail "hardlinks"

# Malicious images are served byte for byte (their content is checked by the unpacker's tests).
for ref in evil/traversal:latest evil/symlink-escape:latest evil/hardlink-escape:latest \
  evil/absurd-size:latest evil/absurd-size:ustar evil/absurd-size:pax; do
  check "served $ref" skopeo inspect --tls-verify=false --raw "docker://$reg/$ref"
done

# Basic auth.
check "basic: pull with credentials" skopeo inspect --tls-verify=false \
  --creds "$MC_TEST_REGISTRY_USER:$MC_TEST_REGISTRY_PASSWORD" "docker://$MC_TEST_REGISTRY_BASIC/library/busybox:latest"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$MC_TEST_REGISTRY_BASIC/v2/library/busybox/manifests/latest")
[ "$code" = 401 ] && ok "basic: anonymous gets 401" || fail "basic anonymous: $code"

# Token auth (Docker Hub's flow).
t=$MC_TEST_REGISTRY_TOKEN
accept='Accept: application/vnd.docker.distribution.manifest.list.v2+json'
chal=$(curl -s -D - -o /dev/null -H "$accept" "http://$t/v2/library/busybox/manifests/latest" | tr -d '\r' |
  grep -i '^www-authenticate:' || true)
echo "$chal" | grep -q "Bearer realm=\"$MC_TEST_TOKEN_REALM\",service=\"mc-test-registry\"" &&
  ok "token: bearer challenge" || fail "token challenge: $chal"
anon=$(curl -s "$MC_TEST_TOKEN_REALM?service=mc-test-registry&scope=repository:library/busybox:pull,push" | jq -r .token)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "$accept" -H "Authorization: Bearer $anon" \
  "http://$t/v2/library/busybox/manifests/latest")
[ "$code" = 200 ] && ok "token: anonymous pull" || fail "token anonymous pull: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $anon" "http://$t/v2/library/busybox/blobs/uploads/")
[ "$code" = 401 ] && ok "token: anonymous push refused" || fail "token anonymous push: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -u "$MC_TEST_REGISTRY_USER:wrong" "$MC_TEST_TOKEN_REALM?service=mc-test-registry&scope=repository:library/busybox:pull")
[ "$code" = 401 ] && ok "token: wrong password 401" || fail "token wrong password: $code"
resp=$(curl -s -u "$MC_TEST_REGISTRY_USER:$MC_TEST_REGISTRY_PASSWORD" \
  "$MC_TEST_TOKEN_REALM?service=mc-test-registry&scope=repository:library/busybox:pull,push")
[ "$(echo "$resp" | jq -r '(.token == .access_token) and (.expires_in == 300) and (.issued_at | length > 0)')" = true ] &&
  ok "token: response fields" || fail "token response: $resp"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $(echo "$resp" | jq -r .token)" \
  "http://$t/v2/library/busybox/blobs/uploads/")
[ "$code" = 202 ] && ok "token: push with credentials" || fail "token push with credentials: $code"
check "token: skopeo pull" skopeo inspect --tls-verify=false "docker://$t/library/python:3.6-alpine"

if [ "$fails" -gt 0 ]; then
  echo "selftest: $fails check(s) failed" >&2
  exit 1
fi
echo "selftest: all checks passed" >&2
