#!/usr/bin/env bash
# Networking benchmark (docs/network.md has the figures):
#  1. throughput (iperf3) through a published port on 127.0.0.1 vs straight
#     to the container's address, and through docker-proxy (Docker's
#     userland proxy, run standalone when installed) for comparison;
#  2. short connections per second (ab) on the same three paths (10000 each:
#     direct and docker-proxy share the host->container port space, TIME_WAIT);
#  3. embedded DNS: lookups/s and p99 latency (dnsperf) for a container name
#     and for a forwarded name (to a fake upstream on loopback).
# Needs root. Traffic stays on loopback and the benchmark network.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
for t in iperf3 ab dnsperf nsenter python3; do
  command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }
done
BIN=${MINICOMPOSE_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release -q -p minicompose
  BIN=$PWD/target/release/minicompose
fi
SECS=${BENCH_SECS:-5}
work=$(mktemp -d /tmp/mc-bench-net.XXXXXX)
root=$work/root
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  "$BIN" --root "$root" container rm -f mcbench-srv >/dev/null 2>&1
  "$BIN" --root "$root" network rm mcbench >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# A fake upstream resolver on loopback (every A question -> 198.18.0.1).
cat >"$work/upstream.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1], flush=True)
while True:
    q, peer = s.recvfrom(1500)
    r = bytearray(q); r[2] = 0x81; r[3] = 0x80; r[6] = 0; r[7] = 1
    s.sendto(bytes(r) + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc6\x12\x00\x01", peer)
PY
python3 "$work/upstream.py" >"$work/upstream.port" &
pids+=($!)
sleep 0.5
export MINICOMPOSE_DNS_UPSTREAM="127.0.0.1:$(cat "$work/upstream.port")"

# A tiny HTTP server (one response per connection) for the connection rate.
cat >"$work/http.py" <<'PY'
import asyncio
RESP = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
async def handle(r, w):
    try:
        await r.readuntil(b"\r\n\r\n")
        w.write(RESP); await w.drain()
    except Exception:
        pass
    w.close()
async def main():
    srv = await asyncio.start_server(handle, "0.0.0.0", 8080, backlog=1024)
    await srv.serve_forever()
asyncio.run(main())
PY

# With a C compiler, a faster server (accept, read the request, answer,
# close) so the connection rate measures the path, not Python.
cat >"$work/http.c" <<'C'
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
  static const char r[] = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(8080)};
  if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1024)) return 1;
  char buf[4096];
  for (;;) {
    int c = accept(s, 0, 0);
    if (c < 0) continue;
    if (read(c, buf, sizeof buf) > 0) write(c, r, sizeof r - 1);
    close(c);
  }
}
C
http_server=(python3 "$work/http.py")
if command -v cc >/dev/null && cc -O2 -o "$work/http" "$work/http.c" 2>/dev/null; then
  http_server=("$work/http")
fi

# The "container": busybox rootfs; the servers run in its netns via nsenter.
rfs=$work/rootfs
mkdir -p "$rfs"/{bin,etc,proc,sys,dev,tmp}
cp "$(command -v busybox)" "$rfs/bin/busybox"
ln -s busybox "$rfs/bin/sh"; ln -s busybox "$rfs/bin/sleep"
"$BIN" --root "$root" network create mcbench >/dev/null
"$BIN" --root "$root" container run -d --rootfs --name mcbench-srv --network mcbench --network-alias svc \
  -p 127.0.0.1:25201:5201 -p 127.0.0.1:28080:8080 "$rfs" sleep 3600 >/dev/null
pid=$("$BIN" --root "$root" container inspect mcbench-srv | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["State"]["Pid"])')
cip=$("$BIN" --root "$root" network inspect mcbench | python3 -c 'import json,sys; c=json.load(sys.stdin)[0]["Containers"]; print(list(c.values())[0]["IPv4Address"].split("/")[0])')
gw=$("$BIN" --root "$root" network inspect mcbench | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["IPAM"]["Config"][0]["Gateway"])')
nsenter -t "$pid" -n "${http_server[@]}" &
pids+=($!)
dp=""
if [ -x /usr/sbin/docker-proxy ]; then
  # dockerd hands docker-proxy a pipe on fd 3 to report readiness; give it one.
  /usr/sbin/docker-proxy -proto tcp -host-ip 127.0.0.1 -host-port 35201 -container-ip "$cip" -container-port 5201 3>"$work/dp1" &
  pids+=($!)
  /usr/sbin/docker-proxy -proto tcp -host-ip 127.0.0.1 -host-port 38080 -container-ip "$cip" -container-port 8080 3>"$work/dp2" &
  pids+=($!)
  dp=1
fi
sleep 1

gbps() { # host port
  ( nsenter -t "$pid" -n iperf3 -s -1 -p 5201 >/dev/null 2>&1 & )
  sleep 0.3
  iperf3 -c "$1" -p "$2" -t "$SECS" -J 2>/dev/null |
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
}
cps() { # url
  ab -q -r -n 10000 -c 8 "$1" 2>/dev/null | awk '/Requests per second/ {r=$4} /Failed requests/ {f=$3} END {print r " (failed: " f ")"}'
}
echo "== throughput (iperf3, ${SECS}s, Gbit/s)"
d=$(gbps "$cip" 5201); p=$(gbps 127.0.0.1 25201)
echo "direct $cip:5201          $d"
echo "published 127.0.0.1:25201   $p  ($(python3 -c "print(round(100*$p/$d))")% of direct)"
[ -n "$dp" ] && echo "docker-proxy 127.0.0.1:35201 $(gbps 127.0.0.1 35201)"
echo "== short connections per second (ab -n 10000 -c 8, server: ${http_server[0]##*/})"
echo "direct                      $(cps "http://$cip:8080/")"
echo "published 127.0.0.1:28080   $(cps http://127.0.0.1:28080/)"
[ -n "$dp" ] && echo "docker-proxy 127.0.0.1:38080 $(cps http://127.0.0.1:38080/)"

echo "== DNS (dnsperf from the container's netns to $gw:53, ${SECS}s at 10k/s)"
dnsq() { # name
  printf '%s A\n' "$1" >"$work/q.txt"
  nsenter -t "$pid" -n dnsperf -s "$gw" -d "$work/q.txt" -l "$SECS" -Q 10000 -c 4 -v 2>/dev/null |
    python3 -c '
import sys
lat = []; qps = "?"; lost = "?"
for line in sys.stdin:
    p = line.split()
    if line.startswith("> ") and len(p) >= 5:
        lat.append(float(p[-1]))
    if "Queries per second" in line: qps = p[-1]
    if "Queries lost" in line: lost = p[2]
lat.sort()
p99 = lat[int(len(lat) * 0.99) - 1] * 1000 if lat else float("nan")
p50 = lat[len(lat) // 2] * 1000 if lat else float("nan")
print("%s qps, lost %s, p50 %.3f ms, p99 %.3f ms" % (qps, lost, p50, p99))'
}
echo "container name (svc)        $(dnsq svc)"
echo "forwarded (example.org)     $(dnsq example.org)"
