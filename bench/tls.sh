#!/usr/bin/env bash
# TLS benchmarks, on 127.0.0.1, in one run.
#
# SCENARIO=tls (default): the collector's GET pixel load (bench/pixel.lua,
# as in bench/loadtest.sh) with wrk, in four variants:
#   (a) furrow-http    furrow run, plain HTTP
#   (b) furrow-https   furrow run, HTTPS (tls: {cert_file, key_file})
#   (c) bare-https     bench/barepixel -cert -key (Go net/http over TLS)
#   (d) bare-http      bench/barepixel, plain HTTP, as a reference
# and reports requests/s and p99 for each, and the ratios (b)/(a) (what
# TLS costs furrow) and (b)/(c) (furrow over TLS against a bare Go server
# over TLS). The certificate is a self-signed ECDSA P-256 one for
# 127.0.0.1, made here with openssl.
#
# wrk keeps its connections alive: this measures steady-state TLS (record
# encryption), not handshakes; there are CONNS handshakes per variant.
# HANDSHAKE=1 adds two variants that send "Connection: close", so every
# request makes a new TCP connection and a full TLS handshake:
#   (e) furrow-https-close, (f) bare-https-close
# wrk speaks HTTP/1.1 only: the bare server would offer h2 over ALPN (Go's
# default), furrow's collector (fasthttp) offers HTTP/1.1 only; here both
# serve HTTP/1.1.
#
# SCENARIO=admin: furrow run with its admin listener (admin.listen, over
# TLS with the same certificate, authenticated by a static token given as
# admin.auth.token_hashes: ["sha256:<hex>"]). bench/adminprobe GETs
# /v1/health and /v1/stats?window=1h with "Authorization: Bearer <token>"
# every 100 ms (one kept-alive connection; PROBE_NEW_CONN=1: a new
# connection and handshake per request) and reports p50/p99/max, with
# the collector idle and with wrk driving it at full load (plain HTTP),
# each phase on a fresh furrow. The budget is 250 ms p99 (reported, not
# asserted).
#
# SCENARIO=both runs tls, then admin.
#
#   bench/tls.sh                            # tls, 2 rounds of 15 s per variant, 64 connections
#   ROUNDS=3 DURATION=20s CONNS=64 bench/tls.sh
#   HANDSHAKE=1 bench/tls.sh                # also the Connection: close variants
#   SCENARIO=admin bench/tls.sh
#   SCENARIO=both FURROW_BIN=bin/furrow bench/tls.sh
#
# Rounds alternate the order of the variants (odd rounds as listed, even
# rounds reversed), so that neither the machine's warming up nor a
# neighbour's load favours one variant.
set -euo pipefail

SCENARIO=${SCENARIO:-tls}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-15s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
HANDSHAKE=${HANDSHAKE:-0}
PROBE_EVERY=${PROBE_EVERY:-100ms}
PROBE_NEW_CONN=${PROBE_NEW_CONN:-0}
BUDGET_MS=${BUDGET_MS:-250}
BARE_ADDR=127.0.0.1:9099
FURROW_ADDR=127.0.0.1:9098
ADMIN_ADDR=127.0.0.1:9097

case "$SCENARIO" in
  tls) scenarios=(tls) ;;
  admin) scenarios=(admin) ;;
  both) scenarios=(tls admin) ;;
  *) echo "SCENARIO must be tls, admin or both" >&2; exit 2 ;;
esac
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive integer" >&2; exit 2; }

# secs converts a wrk duration (15s, 2m, 1h) to seconds.
secs() {
  case "$1" in
    *s) echo "${1%s}" ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *h) echo $(( ${1%h} * 3600 )) ;;
    *) echo "$1" ;;
  esac
}
DUR_S=$(secs "$DURATION")
[[ "$DUR_S" =~ ^[0-9]+$ ]] && [ "$DUR_S" -ge 4 ] || { echo "DURATION must be whole seconds, minutes or hours, at least 4s" >&2; exit 2; }

cd "$(dirname "$0")/.."
for c in wrk openssl curl; do
  command -v "$c" >/dev/null || { echo "$c is required: apt-get install $c" >&2; exit 1; }
done

source bench/lib.sh
build_bins
go build -o "$work/adminprobe" ./bench/adminprobe

# A self-signed ECDSA P-256 certificate for 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$work/key.pem" -out "$work/cert.pem" -days 2 -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1" -addext "keyUsage=digitalSignature" \
  -addext "extendedKeyUsage=serverAuth" 2>/dev/null
chmod 600 "$work/key.pem"
CERT=$work/cert.pem KEY=$work/key.pem

# The handshake-heavy script: bench/pixel.lua with "Connection: close".
sed 's/\["Cookie"\] =/["Connection"] = "close", ["Cookie"] =/' bench/pixel.lua > "$work/pixel-close.lua"
grep -q '"Connection"' "$work/pixel-close.lua" || { echo "could not derive the Connection: close script from bench/pixel.lua" >&2; exit 1; }

# wait_up SCHEME ADDR: waits until the server answers.
wait_up() {
  for _ in $(seq 150); do
    curl -fs --cacert "$CERT" "$1://$2/health" >/dev/null 2>&1 && return 0
    curl -fs --cacert "$CERT" "$1://$2/i" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "server on $1://$2 did not start" >&2
  return 1
}


# start_furrow NAME CONFIG LOGLEVEL: starts furrow run on an empty data
# directory, logging to $work/NAME.log; sets FPID.
start_furrow() {
  "$work/furrow" run --listen "$FURROW_ADDR" --data-dir "$work/data-$1" --log-level "$3" --config "$2" \
    >"$work/$1.log" 2>&1 &
  FPID=$!
  pids+=("$FPID")
}

# stop_furrow: stops it gracefully (it drains what it has collected) and
# sets STOP_SECS, how long that took.
stop_furrow() {
  local t0
  t0=$(date +%s%N)
  kill -TERM "$FPID" 2>/dev/null || true
  wait "$FPID" 2>/dev/null || true
  STOP_SECS=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN {printf "%.1f", (b - a) / 1e9}')
}

furrow_failed() {
  echo "furrow ($1) failed; its log:" >&2
  sed 's/^/    /' "$work/$1.log" >&2
  exit 1
}

printf 'drain_timeout: 10m\n' > "$work/furrow-http.yaml"
printf 'drain_timeout: 10m\ntls:\n  cert_file: %s\n  key_file: %s\n' "$CERT" "$KEY" > "$work/furrow-https.yaml"

# run_variant VARIANT ROUND: one wrk run; sets RPS, P99, ERRS, NOTE.
run_variant() {
  local v=$1 name="$1-r$2" script=bench/pixel.lua
  NOTE=""
  case "$v" in *-close) script=$work/pixel-close.lua ;; esac
  case "$v" in
    furrow-http|furrow-https|furrow-https-close)
      local scheme=http cfg=$work/furrow-http.yaml
      [ "$v" != furrow-http ] && scheme=https cfg=$work/furrow-https.yaml
      start_furrow "$name" "$cfg" warn
      wait_up "$scheme" "$FURROW_ADDR" || furrow_failed "$name"
      local tp=""
      [ "$scheme" = https ] && tp="$(tls_params "$FURROW_ADDR"); "
      run_wrk "$name" "$scheme://$FURROW_ADDR" "$script"
      local peak
      peak=$(awk '/^VmHWM:/ {printf "%.0f MB", $2 / 1024}' "/proc/$FPID/status" 2>/dev/null || echo "?")
      stop_furrow
      NOTE="${tp}peak RSS $peak, drained in ${STOP_SECS}s"
      ;;
    bare-http|bare-https|bare-https-close)
      local scheme=http args=()
      [ "$v" != bare-http ] && scheme=https args=(-cert "$CERT" -key "$KEY")
      "$work/barepixel" -listen "$BARE_ADDR" "${args[@]}" 2>"$work/$name.log" &
      local bpid=$!
      pids+=("$bpid")
      wait_up "$scheme" "$BARE_ADDR" || { sed 's/^/    /' "$work/$name.log" >&2; exit 1; }
      [ "$scheme" = https ] && NOTE="$(tls_params "$BARE_ADDR"); ALPN offers $(curl -s --cacert "$CERT" -o /dev/null -w '%{http_version}' --http2 "https://$BARE_ADDR/i" | sed 's/^2$/h2/; s/^1.1$/http\/1.1 only/') to h2 clients; wrk used HTTP/1.1"
      run_wrk "$name" "$scheme://$BARE_ADDR" "$script"
      kill "$bpid" 2>/dev/null || true
      wait "$bpid" 2>/dev/null || true
      ;;
  esac
  [ -n "$SOCKERR" ] && NOTE="${NOTE:+$NOTE; }$SOCKERR"
  return 0
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# tls_params ADDR: the protocol and cipher suite an HTTP/1.1 client
# (OpenSSL, as wrk's) negotiates.
tls_params() {
  openssl s_client -connect "$1" -alpn http/1.1 -CAfile "$CERT" </dev/null 2>&1 |
    awk '/^New, / {p = $2; c = $NF; sub(/,$/, "", p)} /Verify return code:/ {v = $4 == 0 ? "OK" : $0}
      /^ALPN protocol:/ {a = $3} /^No ALPN negotiated/ {a = "none"}
      END {printf "%s %s, verify %s, ALPN %s", p, c, v, a}'
}

echo
echo "$(date -u +%FT%TZ); $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); load average at start: $(loadavg)"
echo "wrk -t$THREADS -c$CONNS -d$DURATION on the same machine, $ROUNDS rounds; $(openssl version | cut -d' ' -f1-2) (wrk's TLS), ECDSA P-256 self-signed certificate"

scenario_tls() {
  local variants=(furrow-http furrow-https bare-https bare-http)
  [ "$HANDSHAKE" = 1 ] && variants+=(furrow-https-close bare-https-close)
  declare -A rps p99
  local rows=() r v order
  for r in $(seq "$ROUNDS"); do
    order=("${variants[@]}")
    if (( r % 2 == 0 )); then
      order=(); for (( i=${#variants[@]}-1; i>=0; i-- )); do order+=("${variants[i]}"); done
    fi
    echo "round $r: ${order[*]} (load average $(loadavg))" >&2
    for v in "${order[@]}"; do
      echo "  $v..." >&2
      run_variant "$v" "$r"
      rps[$v,$r]=$RPS p99[$v,$r]=$P99
      rows+=("$(printf '| %5s | %-18s | %9s | %8s | %7s | %s |' "$r" "$v" "$RPS" "$P99" "$ERRS" "$NOTE")")
    done
  done

  echo
  echo "## SCENARIO=tls: GET pixel, keep-alive$( [ "$HANDSHAKE" = 1 ] && echo ' (and Connection: close)')"
  echo
  echo "| round | variant            | req/s     | p99 ms   | non-2xx | notes |"
  echo "|-------|--------------------|-----------|----------|---------|-------|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "| variant            | mean req/s | mean p99 ms |"
  echo "|--------------------|------------|-------------|"
  declare -A mean
  for v in "${variants[@]}"; do
    local sr=0 sp=0
    for r in $(seq "$ROUNDS"); do
      sr=$(awk -v a="$sr" -v b="${rps[$v,$r]}" 'BEGIN {print a + b}')
      sp=$(awk -v a="$sp" -v b="${p99[$v,$r]}" 'BEGIN {print a + b}')
    done
    mean[$v]=$(awk -v s="$sr" -v n="$ROUNDS" 'BEGIN {printf "%.0f", s / n}')
    printf '| %-18s | %10s | %11s |\n' "$v" "${mean[$v]}" "$(awk -v s="$sp" -v n="$ROUNDS" 'BEGIN {printf "%.2f", s / n}')"
  done
  echo
  pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else printf "n/a" }'; }
  local per_ba="" per_bc="" per_ca=""
  for r in $(seq "$ROUNDS"); do
    per_ba+=" $(pct "${rps[furrow-https,$r]}" "${rps[furrow-http,$r]}")"
    per_bc+=" $(pct "${rps[furrow-https,$r]}" "${rps[bare-https,$r]}")"
    per_ca+=" $(pct "${rps[bare-https,$r]}" "${rps[bare-http,$r]}")"
  done
  echo "(b)/(a) furrow https / furrow http, req/s:   $(pct "${mean[furrow-https]}" "${mean[furrow-http]}") of means; by round:$per_ba"
  echo "(b)/(c) furrow https / bare https, req/s:    $(pct "${mean[furrow-https]}" "${mean[bare-https]}") of means; by round:$per_bc"
  echo "(c)/(d) bare https / bare http, req/s:       $(pct "${mean[bare-https]}" "${mean[bare-http]}") of means; by round:$per_ca"
  if [ "$HANDSHAKE" = 1 ]; then
    echo "(e)/(f) furrow / bare, https Connection: close, req/s: $(pct "${mean[furrow-https-close]}" "${mean[bare-https-close]}") of means"
  fi
  echo "keep-alive: $CONNS TLS handshakes per variant, then steady-state record encryption; HTTP/1.1 (wrk)."
}

scenario_admin() {
  local token hash
  token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  printf '%s' "$token" > "$work/token"; chmod 600 "$work/token"
  hash="sha256:$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)"
  cat > "$work/furrow-admin.yaml" <<YAML
drain_timeout: 10m
admin:
  listen: $ADMIN_ADDR
  tls:
    cert_file: $CERT
    key_file: $KEY
  auth:
    token_hashes: ["$hash"]
YAML
  local probe_s=$(( DUR_S - 2 )) rows=() wrkrows=() r ph order
  local newconn=(); [ "$PROBE_NEW_CONN" = 1 ] && newconn=(-new-conn)
  for r in $(seq "$ROUNDS"); do
    order=(idle load); (( r % 2 == 0 )) && order=(load idle)
    echo "admin round $r: ${order[*]} (load average $(loadavg))" >&2
    for ph in "${order[@]}"; do
      local name="admin-$ph-r$r"
      echo "  $ph..." >&2
      start_furrow "$name" "$work/furrow-admin.yaml" info
      wait_up http "$FURROW_ADDR" || furrow_failed "$name"
      local ok=0
      for _ in $(seq 100); do
        grep -q 'admin API listening' "$work/$name.log" && { ok=1; break; }
        sleep 0.1
      done
      [ "$ok" = 1 ] || { echo "furrow logged no 'admin API listening'" >&2; furrow_failed "$name"; }
      grep -m1 'admin API listening' "$work/$name.log" | sed 's/^/  furrow: /' >&2
      local wpid=""
      if [ "$ph" = load ]; then
        run_wrk "$name" "http://$FURROW_ADDR" bench/pixel.lua &
        wpid=$!
        sleep 1
      fi
      "$work/adminprobe" -base "https://$ADMIN_ADDR" -token-file "$work/token" -cacert "$CERT" \
        -every "$PROBE_EVERY" -duration "${probe_s}s" "${newconn[@]}" >"$work/$name.probe" 2>&1 || true
      if [ -n "$wpid" ]; then
        wait "$wpid"
        # run_wrk ran in a subshell: read its figures from its output.
        local out="$work/$name.txt"
        wrkrows+=("$(printf '| %5s | %9s | %8s | %7s |' "$r" \
          "$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")" \
          "$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")" \
          "$(awk '/Non-2xx or 3xx responses:/ {n = $5} END {print n + 0}' "$out")")")
      fi
      stop_furrow
      if ! grep -q '^path=' "$work/$name.probe"; then
        echo "adminprobe failed:" >&2; sed 's/^/    /' "$work/$name.probe" >&2
      fi
      local warm proto
      warm=$(awk '/^warmup/ {for (i = 1; i <= NF; i++) if ($i ~ /^ms=/) print substr($i, 4)}' "$work/$name.probe")
      proto=$(awk '/^warmup/ {for (i = 1; i <= NF; i++) if ($i ~ /^proto=/) print substr($i, 7)}' "$work/$name.probe")
      while read -r line; do
        local path n e p50 pp max fe held
        path=$(sed -n 's/.*path=\([^ ]*\).*/\1/p' <<<"$line")
        n=$(sed -n 's/.* n=\([0-9]*\).*/\1/p' <<<"$line")
        e=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$line")
        p50=$(sed -n 's/.* p50=\([0-9.]*\).*/\1/p' <<<"$line")
        pp=$(sed -n 's/.* p99=\([0-9.]*\).*/\1/p' <<<"$line")
        max=$(sed -n 's/.* max=\([0-9.]*\).*/\1/p' <<<"$line")
        fe=$(sed -n 's/.* first_error=\(.*\)/\1/p' <<<"$line")
        held=$(awk -v p="$pp" -v b="$BUDGET_MS" 'BEGIN {print (p != "" && p <= b) ? "yes" : "NO"}')
        [ "${e:-0}" != 0 ] && held="$held (errors: $fe)"
        rows+=("$(printf '| %5s | %-5s | %-20s | %4s | %6s | %8s | %8s | %8s | %-6s | %s |' "$r" "$ph" "$path" "$n" "$e" "$p50" "$pp" "$max" "$held" "${warm}ms $proto")")
      done < <(grep '^path=' "$work/$name.probe")
    done
  done

  echo
  echo "## SCENARIO=admin: admin API over TLS + token auth, probed every $PROBE_EVERY ($( [ "$PROBE_NEW_CONN" = 1 ] && echo 'a new connection per request' || echo 'one kept-alive connection')), ${probe_s}s per phase"
  echo
  echo "| round | phase | path                 | n    | errors | p50 ms   | p99 ms   | max ms   | p99 <= ${BUDGET_MS} ms | first request (handshake), protocol |"
  echo "|-------|-------|----------------------|------|--------|----------|----------|----------|--------|------|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "collector under load during the 'load' phases (wrk -t$THREADS -c$CONNS -d$DURATION, plain HTTP, GET pixel):"
  echo
  echo "| round | req/s     | p99 ms   | non-2xx |"
  echo "|-------|-----------|----------|---------|"
  printf '%s\n' "${wrkrows[@]}"
  echo
  echo "p99 is over ~$(( probe_s * 1000 / $(secs_ms "$PROBE_EVERY") )) samples per path and phase: about the second-highest one."
}

# secs_ms converts 100ms / 1s to milliseconds.
secs_ms() {
  case "$1" in
    *ms) echo "${1%ms}" ;;
    *s) echo $(( ${1%s} * 1000 )) ;;
    *) echo "$1" ;;
  esac
}

for s in "${scenarios[@]}"; do "scenario_$s"; done
echo
echo "load average at end: $(loadavg)"
