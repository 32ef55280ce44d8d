# Shared by bench/loadtest.sh and bench/tls.sh (sourced from the
# repository's root): a work directory removed at exit with the
# processes in pids, the binaries, and wrk's figures.

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# build_bins builds furrow (or copies $FURROW_BIN) and the bare pixel
# server into $work.
build_bins() {
  echo "building..." >&2
  if [ -n "${FURROW_BIN:-}" ]; then cp "$FURROW_BIN" "$work/furrow"; else go build -o "$work/furrow" ./cmd/furrow; fi
  go build -o "$work/barepixel" ./bench/barepixel
}

# to_ms converts wrk's latency (e.g. 812.00us, 3.21ms, 1.02s) to ms.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n = n / 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n = n * 1000; else if (v ~ /m$/) n = n * 60000
    printf "%.2f", n }'
}

# run_wrk NAME URL SCRIPT: runs wrk with THREADS, CONNS and DURATION and
# sets REQS, RPS, P99 (ms), ERRS (non-2xx) and SOCKERR.
run_wrk() {
  local out="$work/$1.txt"
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$3" "$2" >"$out" 2>&1 || true
  REQS=$(awk '/requests in/ {print $1}' "$out")
  RPS=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
  P99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
  ERRS=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$out")
  ERRS=${ERRS:-0} REQS=${REQS:-0} RPS=${RPS:-0}
  SOCKERR=$(grep -o 'Socket errors:.*' "$out" || true)
  [ -n "$SOCKERR" ] && echo "  $1: $SOCKERR" >&2
  if [ "$REQS" = 0 ]; then echo "  $1: wrk made no requests:" >&2; sed 's/^/    /' "$out" >&2; fi
  return 0
}
