# Shell helpers for scripts and tests that run a kvtier-store. Source it, then:
#   start_store STORE_BINARY LOG [FLAGS...]   starts the store on a free port; sets
#                                             store_pid and store_port, or returns 1
#   stop_store                                SIGTERM and wait (no-op when not running)
# The caller's EXIT trap should `kill -KILL "$store_pid"` for the error paths.
store_pid=""
store_port=""

start_store() {
  local binary="$1" log="$2"
  shift 2
  "$binary" --listen=127.0.0.1:0 "$@" >"$log" 2>&1 &
  store_pid=$!
  store_port=""
  for _ in $(seq 1 200); do
    store_port=$(sed -n 's/.*serving on .*(port \([0-9]*\)).*/\1/p' "$log")
    [ -n "$store_port" ] && return 0
    kill -0 "$store_pid" 2>/dev/null || { echo "kvtier-store exited at start-up" >&2; return 1; }
    sleep 0.05
  done
  echo "kvtier-store did not report its port" >&2
  return 1
}

stop_store() {
  [ -n "$store_pid" ] || return 0
  kill -TERM "$store_pid" 2>/dev/null || true
  wait "$store_pid" 2>/dev/null || true
  store_pid=""
}
