#!/usr/bin/env bash
# Load test: furrow against a bare net/http pixel server, on this machine,
# in one run. Reports requests/s and p99 latency from wrk for each, and for
# furrow the end-to-end rate: events collected, enriched and loaded into
# DuckDB per second, from the first request until the last load committed.
#
#   bench/loadtest.sh                 # 20 s per scenario, 64 connections
#   DURATION=60s CONNS=64 bench/loadtest.sh
#   MEMORY_LIMIT=256MiB bench/loadtest.sh   # furrow's memory_limit (default 512MiB)
#   FURROW_BIN=/path/to/furrow bench/loadtest.sh   # another build, to compare
#   PSEUDONYMIZE=both bench/loadtest.sh   # furrow without, then with pseudonymization
#   PSEUDONYMIZE=on bench/loadtest.sh     # with pseudonymization only
#   DESTINATIONS=all bench/loadtest.sh    # DuckDB + Postgres + S3 + files at once
#   DESTINATIONS=both bench/loadtest.sh   # DuckDB alone (the fused path), then all four
#
# DESTINATIONS=all starts a throwaway PostgreSQL cluster (Debian's
# binaries, run as the postgres user) and versitygw (~/go/bin or PATH)
# for the run; end to end then lasts until every destination has loaded
# every event (furrow exits only once they have).
#
# For furrow it also reports the peak resident memory (VmHWM).
set -euo pipefail

DURATION=${DURATION:-20s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
BARE_ADDR=127.0.0.1:9099
FURROW_ADDR=127.0.0.1:9098

cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }

source bench/lib.sh
build_bins

wait_port() {
  for _ in $(seq 100); do
    curl -fs "http://$1/health" >/dev/null 2>&1 && return 0
    curl -fs "http://$1/i" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "server on $1 did not start" >&2; exit 1
}

micro_total() {
  curl -fs "http://$FURROW_ADDR/micro/all" | sed 's/.*"total":\([0-9]*\).*/\1/'
}

results=()
row() { results+=("$(printf '| %-28s | %9s | %8s | %6s | %s |' "$@")"); }

echo "bare net/http pixel server..." >&2
"$work/barepixel" -listen "$BARE_ADDR" & pids+=($!)
wait_port "$BARE_ADDR"
run_wrk bare-get "http://$BARE_ADDR" bench/pixel.lua
BARE_GET_RPS=$RPS; row "bare net/http, GET pixel" "$RPS" "$P99" "$ERRS" "-"
run_wrk bare-post "http://$BARE_ADDR" bench/post.lua
BARE_POST_RPS=$RPS; row "bare net/http, POST 5 events" "$RPS" "$P99" "$ERRS" "-"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true

# furrow_scenario NAME SCRIPT EVENTS_PER_REQUEST: starts furrow on an empty
# data directory, loads it with wrk, waits until Micro has seen every
# accepted event, then stops furrow gracefully: it exits only after its
# last DuckDB load has committed. End to end is the time from the first
# request to that exit.
furrow_scenario() {
  local dir="$work/data-$1"
  "$work/furrow" run --listen "$FURROW_ADDR" --data-dir "$dir" --log-level warn --config "$work/furrow.yaml" &
  local pid=$!
  pids+=("$pid")
  wait_port "$FURROW_ADDR"
  local start
  start=$(date +%s%N)
  run_wrk "$1" "http://$FURROW_ADDR" "$2"
  local events=$(( (REQS - ERRS) * $3 ))
  while [ "$(micro_total)" -lt "$events" ]; do sleep 0.05; done
  PEAK=$(awk '/^VmHWM:/ {printf "%.0f MB", $2 / 1024}' "/proc/$pid/status")
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  E2E_SECS=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN {printf "%.2f", (b - a) / 1e9}')
  E2E=$(awk -v n="$events" -v s="$E2E_SECS" -v p="$PEAK" 'BEGIN {printf "%.0f ev/s (%d events in %ss), peak RSS %s", n / s, n, s, p}')
  # End to end in requests/s, to compare with the bare server.
  E2E_RPS=$(awk -v n="$((REQS - ERRS))" -v s="$E2E_SECS" 'BEGIN {printf "%.0f", n / s}')
}

# The defaults, with a drain timeout long enough for any backlog; a
# FURROW_CONFIG file replaces them.
if [ -n "${FURROW_CONFIG:-}" ]; then cp "$FURROW_CONFIG" "$work/furrow.yaml"; else echo "drain_timeout: 10m" > "$work/furrow.yaml"; fi
[ -n "${MEMORY_LIMIT:-}" ] && echo "memory_limit: $MEMORY_LIMIT" >> "$work/furrow.yaml"

# PSEUDONYMIZE: off (default), on, or both (off, then on, in this run).
head -c 32 /dev/urandom | base64 > "$work/pseudo.key"; chmod 600 "$work/pseudo.key"
cp "$work/furrow.yaml" "$work/furrow-off.yaml"
cp "$work/furrow.yaml" "$work/furrow-on.yaml"
printf 'pseudonymize:\n  enabled: true\n  key_file: %s\n' "$work/pseudo.key" >> "$work/furrow-on.yaml"
# A comma-separated list runs the modes in that order (on,off to check
# that the order does not decide the ratio).
case "${PSEUDONYMIZE:-off}" in
  both) modes=(off on) ;;
  *) IFS=, read -r -a modes <<< "${PSEUDONYMIZE:-off}" ;;
esac
for m in "${modes[@]}"; do
  [ "$m" = on ] || [ "$m" = off ] || { echo "PSEUDONYMIZE must be off, on, both, or a list such as on,off" >&2; exit 2; }
done
# DESTINATIONS: duckdb (default: the fused path), all, or both.
case "${DESTINATIONS:-duckdb}" in
  duckdb) dests=(duckdb) ;;
  all) dests=(all) ;;
  both) dests=(duckdb all) ;;
  *) echo "DESTINATIONS must be duckdb, all or both" >&2; exit 2 ;;
esac

# start_destinations writes $work/destinations.yaml: DuckDB, a Postgres
# cluster, an S3 bucket on versitygw and a files directory.
start_destinations() {
  local pgbin vgw
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$pgbin/initdb" ] || { echo "DESTINATIONS=all needs PostgreSQL: apt-get install postgresql" >&2; exit 1; }
  vgw=$(command -v versitygw || echo "$HOME/go/bin/versitygw")
  [ -x "$vgw" ] || { echo "DESTINATIONS=all needs versitygw: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0" >&2; exit 1; }
  mkdir -p "$work/pg" "$work/s3/bench" "$work/files"
  chown postgres "$work/pg"; chmod 755 "$work"
  su postgres -s /bin/sh -c "$pgbin/initdb -D $work/pg -U furrow --auth=trust >/dev/null"
  su postgres -s /bin/sh -c "$pgbin/pg_ctl -D $work/pg -o '-p 55432 -k $work/pg -c listen_addresses=127.0.0.1' -l $work/pg/log -w start >/dev/null"
  su postgres -s /bin/sh -c "$pgbin/createdb -h 127.0.0.1 -p 55432 -U furrow furrow"
  PG_STOP="su postgres -s /bin/sh -c '$pgbin/pg_ctl -D $work/pg -m fast -w stop >/dev/null'"
  "$vgw" --access bench-key --secret bench-secret-0123456789 --port 127.0.0.1:57070 posix "$work/s3" >"$work/s3.log" 2>&1 & pids+=($!)
  for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:57070 && break; sleep 0.1; done
  cat >"$work/destinations.yaml" <<YAML
destinations:
  - name: wh
    type: duckdb
  - name: pg
    type: postgres
    dsn: postgres://furrow@127.0.0.1:55432/furrow?sslmode=disable
  - name: lake
    type: s3
    bucket: bench
    endpoint: http://127.0.0.1:57070
    path_style: true
    region: us-east-1
    access_key_id: bench-key
    secret_access_key: bench-secret-0123456789
  - name: files
    type: files
    path: $work/files
YAML
}
PG_STOP=true
trap 'eval "$PG_STOP"; cleanup' EXIT
[[ " ${dests[*]} " == *" all "* ]] && start_destinations

declare -A E2E_BY
for dest in "${dests[@]}"; do
for mode in "${modes[@]}"; do
  cp "$work/furrow-$mode.yaml" "$work/furrow.yaml"
  label="furrow"; [ "$mode" = on ] && label="furrow, pseudonymized"
  what="DuckDB"
  if [ "$dest" = all ]; then
    cat "$work/destinations.yaml" >> "$work/furrow.yaml"
    label="$label, 4 destinations"; what="DuckDB + Postgres + S3 + files"
  fi
  echo "$label run (collector + log + enrich + $what + Micro)..." >&2
  furrow_scenario "furrow-get-$mode-$dest" bench/pixel.lua 1
  row "$label, GET pixel" "$RPS" "$P99" "$ERRS" "$E2E"
  FURROW_GET_RPS=$RPS FURROW_GET_E2E=$E2E_RPS; E2E_BY[get-$mode-$dest]=$E2E_RPS
  furrow_scenario "furrow-post-$mode-$dest" bench/post.lua 5
  row "$label, POST 5 events" "$RPS" "$P99" "$ERRS" "$E2E"
  FURROW_POST_RPS=$RPS FURROW_POST_E2E=$E2E_RPS; E2E_BY[post-$mode-$dest]=$E2E_RPS
done
done

echo
echo "$(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); wrk -t$THREADS -c$CONNS -d$DURATION on the same machine"
echo
echo "| scenario                     | req/s     | p99 ms   | non-2xx | end to end (collected + enriched + loaded) |"
echo "|------------------------------|-----------|----------|--------|----------|"
printf '%s\n' "${results[@]}"
echo
awk -v a="$FURROW_GET_RPS" -v b="$BARE_GET_RPS" -v c="$FURROW_POST_RPS" -v d="$BARE_POST_RPS" \
  'BEGIN {printf "furrow/bare requests/s: GET %.0f%%, POST %.0f%%\n", 100 * a / b, 100 * c / d}'
awk -v a="$FURROW_GET_E2E" -v b="$BARE_GET_RPS" -v c="$FURROW_POST_E2E" -v d="$BARE_POST_RPS" \
  'BEGIN {printf "furrow end to end (requests fully loaded per second) / bare requests/s: GET %.0f%%, POST %.0f%%\n", 100 * a / b, 100 * c / d}'
if [ -n "${E2E_BY[get-on-${dests[0]}]:-}" ] && [ -n "${E2E_BY[get-off-${dests[0]}]:-}" ]; then
  awk -v a="${E2E_BY[get-on-${dests[0]}]}" -v b="${E2E_BY[get-off-${dests[0]}]}" -v c="${E2E_BY[post-on-${dests[0]}]}" -v d="${E2E_BY[post-off-${dests[0]}]}" \
    'BEGIN {printf "pseudonymized / not, end to end: GET %.0f%%, POST %.0f%%\n", 100 * a / b, 100 * c / d}'
fi
if [ -n "${E2E_BY[get-${modes[0]}-all]:-}" ] && [ -n "${E2E_BY[get-${modes[0]}-duckdb]:-}" ]; then
  awk -v a="${E2E_BY[get-${modes[0]}-all]}" -v b="${E2E_BY[get-${modes[0]}-duckdb]}" -v c="${E2E_BY[post-${modes[0]}-all]}" -v d="${E2E_BY[post-${modes[0]}-duckdb]}" \
    'BEGIN {printf "4 destinations / DuckDB alone, end to end: GET %.0f%%, POST %.0f%%\n", 100 * a / b, 100 * c / d}'
fi
if [ -n "${E2E_BY[get-${modes[0]}-all]:-}" ]; then
  echo "loaded in each destination (events):"
  for d in "$work"/data-furrow-*-all; do
    n=$("$work/furrow" sql --data-dir "$d" "select count(*) from atomic.events" 2>/dev/null | tail -1)
    echo "  $(basename "$d"): duckdb $n"
  done
  echo "  postgres (all runs): $(su postgres -s /bin/sh -c "psql -h 127.0.0.1 -p 55432 -U furrow -d furrow -Atc 'select count(*), count(distinct event_id) from atomic.events'")"
  echo "  files (all runs): $(find "$work/files/good" -name '*.tsv.gz' -exec zcat {} + | wc -l) lines; s3: $(find "$work/s3/bench" -path '*good*' -name '*.tsv.gz' -exec zcat {} + | wc -l) lines"
fi
