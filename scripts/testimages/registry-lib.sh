# Shared by scripts/test-registry.sh and scripts/demo-images.sh (sourced, not run).
# Needs: $state (the state dir, named in every command line we start), log, die.

# Is pid $1 alive and started by us for state dir $2 (its command line names the dir)?
ours() {
  [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}

all_running() {
  local state=$1 pid
  [ -s "$state/pids" ] || return 1
  while read -r pid _; do ours "$pid" "$state" || return 1; done <"$state/pids"
}

# wait_registry PID PORT LOG: waits until our registry (PID) says it listens on PORT
# and http://127.0.0.1:PORT/v2/ answers like a registry. The log line makes sure the
# answer is ours and not from a process that already held the port.
wait_registry() {
  local pid=$1 port=$2 log_file=$3 i
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 1
    if grep -qsF "listening on 127.0.0.1:$port" "$log_file" &&
      curl -s -o /dev/null -D - --max-time 2 "http://127.0.0.1:$port/v2/" 2>/dev/null |
      grep -qi '^docker-distribution-api-version: registry/2.0'; then
      kill -0 "$pid" 2>/dev/null && return 0
      return 1
    fi
    sleep 0.1
  done
  return 1
}

# start_registry NAME AUTH_YAML [STORAGE_DIR]: starts a registry on a free loopback port
# (random, retried on collision; MC_TEST_FIRST_PORT forces the first try); sets $port.
start_registry() {
  local name=$1 auth=$2 storage=${3:-} attempt pid dir
  dir="$state/$name"
  storage=${storage:-$dir/storage}
  mkdir -p "$dir" "$storage"
  for attempt in $(seq 1 20); do
    port=$(shuf -i 20000-32000 -n 1)
    if [ "$attempt" = 1 ] && [ -n "${MC_TEST_FIRST_PORT:-}" ]; then port=$MC_TEST_FIRST_PORT; fi
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: $storage
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
  secret: $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
$auth
EOF
    docker-registry serve "$dir/config.yml" </dev/null >"$dir/registry.log" 2>&1 &
    pid=$!
    if wait_registry "$pid" "$port" "$dir/registry.log"; then
      echo "$pid $name" >>"$state/pids"
      return 0
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if ! grep -q 'address already in use' "$dir/registry.log"; then
      die "registry $name did not start; see $dir/registry.log: $(tail -n 3 "$dir/registry.log" | tr '\n' ' ')"
    fi
    log "port $port taken, trying another (attempt $attempt)"
  done
  die "no free port found for registry $name after 20 attempts"
}

# stop_started STATE: stops every process listed in STATE/pids that is still ours.
stop_started() {
  local state=$1 pid name
  [ -f "$state/pids" ] || return 0
  while read -r pid name; do
    if ours "$pid" "$state"; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do ours "$pid" "$state" || break; sleep 0.1; done
      if ours "$pid" "$state"; then kill -9 "$pid" 2>/dev/null || true; fi
      log "stopped $name (pid $pid)"
    fi
  done <"$state/pids"
}
