#!/usr/bin/env bash
# Kafka benchmarks of furrow's split roles against a real Apache Kafka
# 4.4.0 broker on this machine. SCENARIO picks what runs (each one takes
# about 1 to 3 minutes; the broker is started once):
#
#   collect (the default): `furrow collect` against Kafka's own producer
#            performance tool, described below;
#   enrich:  `furrow enrich`, 1 process and then 2, on a filled raw topic;
#   split:   `furrow run` end to end against collect + enrich + load;
#   all:     the three, one after the other, on the same broker.
#
# collect. Reference: org.apache.kafka.tools.ProducerPerformance writes
# REF_RECORDS records of 830 bytes (the size of a raw Thrift payload of the
# GET pixel in bench/pixel.lua) to a 3-partition topic, with the settings
# furrow's producer uses (acks=all, idempotent, linger.ms=5): its
# records/s is what one client can push into this broker here.
#
# furrow: `furrow collect` with streams.type kafka, loaded by wrk for
# DURATION with bench/pixel.lua, then stopped with SIGTERM: it stops taking
# requests and exits once its local log is drained into Kafka. End to end
# is the number of requests answered 2xx divided by the time from wrk's
# start to furrow's exit, i.e. until every acknowledged event is in Kafka.
# The raw topic's end offsets must add up to at least that many requests.
#
# enrich. `furrow collect` under wrk for FILL_DURATION fills a raw topic of
# 4 partitions with N payloads (N: the topic's end offsets once collect has
# drained). Then 1 `furrow enrich` process (consumer_group bench1), and
# then 2 started together (bench2), each time a fresh group and fresh
# enriched and bad topics (4 and 1 partitions), read the whole topic: the
# rate is N over the time from the processes' start until the enriched
# topic's end offsets add up to N. The ratio 2/1 is how the enricher
# scales out; the broker, furrow and everything else share this machine's
# cores, so it is bounded by them.
#
# split. The same wrk load (DURATION, CONNS) against (a) `furrow run`:
# 2xx requests over the time from wrk's start until furrow run exits
# after SIGTERM (it exits once the events are loaded into DuckDB), and (b)
# `furrow collect`, `furrow enrich` and `furrow load` (into DuckDB) on the
# broker: collect gets SIGTERM after wrk (it drains into Kafka); the end
# is when the enriched topic holds the 2xx requests and load's consumer
# group has committed every record of the enriched and bad topics (lag 0),
# as furrow load commits only what DuckDB holds. Then enrich and load get
# SIGTERM, and each DuckDB warehouse is counted with `furrow sql`.
#
# The end offsets and the group's lag are polled every WATCH_MS (100) ms
# by a small Kafka admin client written below (Watch, one JVM kept
# running), not by GetOffsetShell or ConsumerGroupCommand, each of which
# is a JVM start costing about a CPU second here (ConsumerGroupCommand
# --describe checks load's lag once, at the end). The scenarios have topics of their
# own (enrich-*, e1-*, e2-*, split-*), so that `all` can run them on one
# broker; collect uses Snowplow's names.
#
#   bench/kafka.sh                        # collect: 15 s of wrk, 64 connections
#   DURATION=30s CONNS=128 bench/kafka.sh
#   REF_RECORDS=3000000 bench/kafka.sh    # records for the reference run
#   SCENARIO=enrich FILL_DURATION=10s bench/kafka.sh
#   SCENARIO=split bench/kafka.sh
#   SCENARIO=all bench/kafka.sh
#   FURROW_BIN=/path/to/furrow bench/kafka.sh   # a prebuilt binary
#
# Needs java (17, with javac for the watcher), wrk, and the Kafka jars of
# test/kafka/fetch.sh in ${FURROW_KAFKA_LIBS:-$HOME/.cache/furrow/kafka-4.4.0/libs}.
# The broker (one KRaft node, as internal/testutil/kafka.go runs it)
# listens on free ports of 127.0.0.1 and lives in a temporary directory
# removed at exit, with every process started here. Each scenario also
# reports the CPU time the broker, wrk and each furrow process used, as
# they share this machine's cores; progress goes to stderr, the figures to
# standard output.
set -euo pipefail

DURATION=${DURATION:-15s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
REF_RECORDS=${REF_RECORDS:-1000000}
SCENARIO=${SCENARIO:-collect}
FILL_DURATION=${FILL_DURATION:-10s}
WATCH_MS=${WATCH_MS:-100}
FURROW_ADDR=127.0.0.1:9098
LIBS=${FURROW_KAFKA_LIBS:-$HOME/.cache/furrow/kafka-4.4.0/libs}
RAW_TOPIC=snowplow-collector-payloads
BAD_TOPIC=snowplow-collector-bad

case $SCENARIO in
  collect | enrich | split | all) ;;
  *) echo "kafka.sh: SCENARIO=$SCENARIO is not collect, enrich, split or all" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
command -v java >/dev/null || { echo "java is required: apt-get install openjdk-17-jre-headless" >&2; exit 1; }
[ "$SCENARIO" = collect ] || command -v javac >/dev/null || { echo "javac is required: apt-get install openjdk-17-jdk-headless" >&2; exit 1; }
[ -f "$LIBS/.complete" ] || { echo "no Kafka jars in $LIBS: run test/kafka/fetch.sh" >&2; exit 1; }

work=$(mktemp -d)
pids=()
FAILED=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { echo "kafka.sh: $*" >&2; }
fail() { echo "kafka.sh: $*" >&2; exit 1; }

log "building..."
if [ -n "${FURROW_BIN:-}" ]; then cp "$FURROW_BIN" "$work/furrow"; else go build -o "$work/furrow" ./cmd/furrow; fi

# free_port prints a port of 127.0.0.1 that nothing listens on.
free_port() {
  local p
  for _ in $(seq 200); do
    p=$(( 20000 + RANDOM % 40000 ))
    [ "$p" = "${FURROW_ADDR##*:}" ] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  fail "no free port found"
}

# cpu_secs PID: user + system CPU seconds the process has used so far.
CLK_TCK=$(getconf CLK_TCK)
cpu_secs() {
  awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}
now_ns() { date +%s%N; }
# running PID: the child has not exited (not gone, not a zombie yet).
running() {
  [ -e "/proc/$1/stat" ] && [ "$(awk '{sub(/^.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}
# busy_jiffies / total_jiffies: the whole machine's CPU counters.
machine_cpu() { awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat; }
secs_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN {printf "%.2f", (b - a) / 1e9}'; }

# --- the broker: one KRaft node, broker and controller in one JVM ---------
PORT=$(free_port)
CTRL_PORT=$(free_port)
while [ "$CTRL_PORT" = "$PORT" ]; do CTRL_PORT=$(free_port); done
BOOT=127.0.0.1:$PORT
kdir=$work/kafka
mkdir -p "$kdir"
cat >"$kdir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CTRL_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CTRL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CTRL_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$kdir/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
EOF
# The broker logs at INFO to broker.log; the tools log warnings to stderr,
# leaving their standard output to what they report.
log4j_config() {
  cat <<EOF
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.target = $2
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = $1
rootLogger.appenderRef.out.ref = out
EOF
}
log4j_config info SYSTEM_OUT >"$kdir/log4j2-broker.properties"
log4j_config warn SYSTEM_ERR >"$kdir/log4j2-tool.properties"

# The JVM flags of internal/testutil/kafka.go: a small heap and the serial
# collector. The broker gets the full JIT here (it runs for a while); the
# short-lived tools only C1. ProducerPerformance is a hot loop: full JIT.
BROKER_JVM=(-Xms256m -Xmx512m -XX:+UseSerialGC -Djava.awt.headless=true)
TOOL_JVM=(-Xms64m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true)
PERF_JVM=(-Xms256m -Xmx512m -XX:+UseSerialGC -Djava.awt.headless=true)

# ktool CLASS ARGS...: a Kafka command-line tool, bounded to 60 s.
ktool() {
  local class=$1
  shift
  timeout 60 java "${TOOL_JVM[@]}" "-Dlog4j2.configurationFile=$kdir/log4j2-tool.properties" -cp "$LIBS/*" "$class" "$@"
}

# A random cluster id, as kafka-storage random-uuid prints it: 16 bytes in
# unpadded URL-safe base64, not starting with '-'.
cluster_id() {
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    [ "${id:0:1}" != - ] && { echo "$id"; return; }
  done
}

log "formatting the Kafka storage and starting the broker on $BOOT..."
ktool kafka.tools.StorageTool format -t "$(cluster_id)" -c "$kdir/server.properties" --standalone \
  >"$kdir/format.log" 2>&1 || { cat "$kdir/format.log" >&2; fail "StorageTool format failed"; }
(cd "$kdir" && exec java "${BROKER_JVM[@]}" "-Dlog4j2.configurationFile=$kdir/log4j2-broker.properties" \
  -cp "$LIBS/*" kafka.Kafka "$kdir/server.properties") >"$kdir/broker.log" 2>&1 &
BROKER_PID=$!
pids+=("$BROKER_PID")
broker_start=$(now_ns)
until grep -q 'Kafka Server started' "$kdir/broker.log" 2>/dev/null; do
  kill -0 "$BROKER_PID" 2>/dev/null || { tail -50 "$kdir/broker.log" >&2; fail "the broker exited before it was ready"; }
  [ "$(awk -v s="$(secs_since "$broker_start")" 'BEGIN {print (s > 60)}')" = 1 ] && { tail -50 "$kdir/broker.log" >&2; fail "the broker was not ready within 60 s"; }
  sleep 0.2
done
log "broker ready after $(secs_since "$broker_start") s"

create_topic() {
  ktool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOT" --create --topic "$1" \
    --partitions "$2" --replication-factor 1 >&2 || fail "could not create topic $1"
}

# topic_records TOPIC: the sum of the topic's end offsets (GetOffsetShell
# prints topic:partition:offset, the latest offsets by default).
topic_records() {
  ktool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BOOT" --topic "$1" |
    awk -F: 'NF >= 3 {n += $NF} END {print n + 0}'
}

# --- collect: Kafka's producer performance tool, then furrow collect ------
scenario_collect() {
  log "creating topics..."
  create_topic perf-ref 3
  create_topic "$RAW_TOPIC" 3
  create_topic "$BAD_TOPIC" 1

  # --- reference: Kafka's own producer performance tool --------------------
  log "reference: ProducerPerformance, $REF_RECORDS records of 830 bytes to perf-ref..."
  b0=$(cpu_secs "$BROKER_PID")
  read -r m0busy m0total < <(machine_cpu)
  ref_start=$(now_ns)
  java "${PERF_JVM[@]}" "-Dlog4j2.configurationFile=$kdir/log4j2-tool.properties" -cp "$LIBS/*" \
    org.apache.kafka.tools.ProducerPerformance --topic perf-ref --num-records "$REF_RECORDS" --record-size 830 \
    --throughput -1 --producer-props "bootstrap.servers=$BOOT" acks=all enable.idempotence=true linger.ms=5 \
    >"$work/perf.txt" 2>"$work/perf.err" &
  perf_pid=$!
  pids+=("$perf_pid")
  # Sample the tool's CPU time until it exits, killing it after 90 s.
  perf_cpu=0
  while running "$perf_pid"; do
    c=$(cpu_secs "$perf_pid"); [ "$c" != 0 ] && perf_cpu=$c
    [ "$(awk -v s="$(secs_since "$ref_start")" 'BEGIN {print (s > 90)}')" = 1 ] && { kill -KILL "$perf_pid"; fail "ProducerPerformance still running after 90 s: killed (lower REF_RECORDS)"; }
    sleep 0.1
  done
  wait "$perf_pid" || { cat "$work/perf.err" "$work/perf.txt" >&2; fail "ProducerPerformance failed"; }
  REF_SECS=$(secs_since "$ref_start")
  read -r m1busy m1total < <(machine_cpu)
  REF_BUSY=$(awk -v b="$((m1busy - m0busy))" -v t="$((m1total - m0total))" 'BEGIN {printf "%.0f", t ? 100 * b / t : 0}')
  REF_BROKER_CPU=$(awk -v a="$b0" -v b="$(cpu_secs "$BROKER_PID")" 'BEGIN {printf "%.1f", b - a}')
  REF_OTHER_CPU=$(awk -v m="$((m1busy - m0busy))" -v hz="$CLK_TCK" -v a="$perf_cpu" -v b="$REF_BROKER_CPU" \
    'BEGIN {o = m / hz - a - b; printf "%.1f", o < 0 ? 0 : o}')
  # The last line: "N records sent, X records/sec (Y MB/sec), A ms avg latency, ..."
  ref_line=$(grep 'records sent' "$work/perf.txt" | tail -1)
  [ -n "$ref_line" ] || { cat "$work/perf.err" "$work/perf.txt" >&2; fail "no summary from ProducerPerformance"; }
  REF_RPS=$(echo "$ref_line" | awk -F', ' '{split($2, a, " "); printf "%.0f", a[1]}')
  REF_LAT=$(echo "$ref_line" | awk -F', ' '{print $3 ", " $4}')
  REF_TOPIC=$(topic_records perf-ref)
  log "reference: $REF_RPS records/s ($ref_line)"

  # --- furrow collect -> Kafka ---------------------------------------------
  cat >"$work/furrow.yaml" <<EOF
drain_timeout: 10m
streams:
  type: kafka
  kafka:
    brokers: [$BOOT]
EOF
  log "furrow collect -> Kafka, wrk -t$THREADS -c$CONNS -d$DURATION..."
  "$work/furrow" collect --listen "$FURROW_ADDR" --data-dir "$work/data" --config "$work/furrow.yaml" \
    --log-level warn 2>"$work/furrow.log" &
  FURROW_PID=$!
  pids+=("$FURROW_PID")
  for i in $(seq 200); do
    curl -fs "http://$FURROW_ADDR/health" >/dev/null 2>&1 && break
    kill -0 "$FURROW_PID" 2>/dev/null || { cat "$work/furrow.log" >&2; fail "furrow exited before it was ready"; }
    [ "$i" = 200 ] && { cat "$work/furrow.log" >&2; fail "furrow did not answer /health within 20 s"; }
    sleep 0.1
  done

  b0=$(cpu_secs "$BROKER_PID")
  read -r m0busy m0total < <(machine_cpu)
  TIMEFORMAT='%U %S'
  start=$(now_ns)
  { time wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s bench/pixel.lua "http://$FURROW_ADDR" >"$work/wrk.txt" 2>"$work/wrk.err"; } 2>"$work/wrk.time" \
    || { cat "$work/wrk.err" >&2; fail "wrk failed"; }
  WRK_SECS=$(secs_since "$start")
  read -r m1busy m1total < <(machine_cpu)
  LOAD_BUSY=$(awk -v b="$((m1busy - m0busy))" -v t="$((m1total - m0total))" 'BEGIN {printf "%.0f", t ? 100 * b / t : 0}')
  LOAD_BUSY_SECS=$(awk -v b="$((m1busy - m0busy))" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", b / hz}')
  LOAD_FURROW_CPU=$(cpu_secs "$FURROW_PID")
  LOAD_BROKER_CPU=$(awk -v a="$b0" -v b="$(cpu_secs "$BROKER_PID")" 'BEGIN {printf "%.1f", b - a}')
  REQS=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
  RPS=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$work/wrk.txt")
  P50=$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")
  P99=$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")
  ERRS=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$work/wrk.txt")
  ERRS=${ERRS:-0}
  OK=$((REQS - ERRS))
  WRK_CPU=$(awk '{printf "%.1f", $1 + $2}' "$work/wrk.time")
  # What else ran meanwhile (a build, tests): the machine's busy time less ours.
  LOAD_OTHER_CPU=$(awk -v m="$LOAD_BUSY_SECS" -v a="$LOAD_FURROW_CPU" -v b="$WRK_CPU" -v c="$LOAD_BROKER_CPU" \
    'BEGIN {o = m - a - b - c; printf "%.1f", o < 0 ? 0 : o}')
  sockerr=$(grep -o 'Socket errors:.*' "$work/wrk.txt" || true)
  [ -n "$sockerr" ] && log "wrk: $sockerr"
  log "wrk: $REQS requests ($ERRS non-2xx), $RPS req/s; SIGTERM, draining into Kafka..."

  kill -TERM "$FURROW_PID"
  drain_start=$(now_ns)
  furrow_cpu=$LOAD_FURROW_CPU
  while running "$FURROW_PID"; do
    c=$(cpu_secs "$FURROW_PID"); [ "$c" != 0 ] && furrow_cpu=$c
    [ "$(awk -v s="$(secs_since "$drain_start")" 'BEGIN {print (s > 120)}')" = 1 ] && fail "furrow did not exit within 120 s of SIGTERM"
    sleep 0.02
  done
  c=$(cpu_secs "$FURROW_PID"); [ "$c" != 0 ] && furrow_cpu=$c
  E2E_SECS=$(secs_since "$start")
  DRAIN_SECS=$(secs_since "$drain_start")
  rc=0; wait "$FURROW_PID" || rc=$?
  [ "$rc" = 0 ] || { cat "$work/furrow.log" >&2; fail "furrow exited with status $rc"; }
  E2E_BROKER_CPU=$(awk -v a="$b0" -v b="$(cpu_secs "$BROKER_PID")" 'BEGIN {printf "%.1f", b - a}')
  E2E=$(awk -v n="$OK" -v s="$E2E_SECS" 'BEGIN {printf "%.0f", n / s}')
  RAW=$(topic_records "$RAW_TOPIC")
  BAD=$(topic_records "$BAD_TOPIC")
  log "furrow exited $DRAIN_SECS s after SIGTERM; $RAW records in $RAW_TOPIC"
  [ -s "$work/furrow.log" ] && { log "furrow's log (warnings):"; head -20 "$work/furrow.log" >&2; }

  # --- summary --------------------------------------------------------------
  echo
  machine_line
  echo
  printf '%-52s %s\n' "reference (ProducerPerformance, 830 B, acks=all, idempotent, linger.ms=5):" \
    "$REF_RPS records/s ($REF_RECORDS records in ${REF_SECS} s with JVM start; $REF_LAT)"
  printf '%-52s %s\n' "furrow requests/s (wrk -t$THREADS -c$CONNS -d$DURATION, GET pixel):" "$RPS req/s ($REQS requests, $ERRS non-2xx; latency p50 $P50, p99 $P99)"
  printf '%-52s %s\n' "furrow end to end (2xx requests in Kafka per second):" \
    "$E2E ev/s ($OK events in $E2E_SECS s: wrk ${WRK_SECS} s + drain after SIGTERM ${DRAIN_SECS} s)"
  awk -v a="$E2E" -v b="$REF_RPS" 'BEGIN {printf "%-52s %.0f%%\n", "furrow end to end / reference:", 100 * a / b}'
  check=OK; [ "$RAW" -ge "$OK" ] || check="FAIL: fewer records than 2xx requests"
  printf '%-52s %s\n' "raw topic $RAW_TOPIC:" "$RAW records for $OK 2xx requests ($check); $BAD in $BAD_TOPIC; perf-ref holds $REF_TOPIC"
  echo
  echo "CPU seconds used (user + system):"
  echo "  reference: ProducerPerformance $perf_cpu, broker $REF_BROKER_CPU, other processes $REF_OTHER_CPU, over ${REF_SECS} s (machine ${REF_BUSY}% busy)"
  echo "  furrow, during wrk: furrow $LOAD_FURROW_CPU, wrk $WRK_CPU, broker $LOAD_BROKER_CPU, other processes $LOAD_OTHER_CPU, over ${WRK_SECS} s (machine ${LOAD_BUSY}% busy)"
  echo "  furrow, until its exit: furrow $furrow_cpu, broker $E2E_BROKER_CPU, over ${E2E_SECS} s"
  [ "$check" = OK ] || FAILED+=("collect: $RAW records in $RAW_TOPIC for $OK 2xx requests")

}

# --- helpers of the enrich and split scenarios ----------------------------

# kafka_config FILE GROUP IN [OUT]: the Kafka roles' configuration, with
# the consumer-group prefix GROUP and the topics IN-raw, IN-raw-bad,
# OUT-enriched and OUT-bad (OUT: IN by default).
kafka_config() {
  cat >"$1" <<EOF2
drain_timeout: 10m
streams:
  type: kafka
  kafka:
    brokers: [$BOOT]
    session_timeout: 6s
    consumer_group: $2
    topics:
      raw: $3-raw
      raw_bad: $3-raw-bad
      enriched: ${4:-$3}-enriched
      bad: ${4:-$3}-bad
EOF2
}

# start_furrow VAR NAME ARGS...: starts `furrow ARGS...` logging at info
# to $work/NAME.log, and sets VAR to its pid.
start_furrow() {
  local var=$1 name=$2
  shift 2
  "$work/furrow" "$@" --log-level info 2>"$work/$name.log" &
  printf -v "$var" %s "$!"
  pids+=("$!")
}

# wait_health PID NAME: waits for the collector on FURROW_ADDR to answer.
wait_health() {
  local i
  for i in $(seq 200); do
    curl -fs "http://$FURROW_ADDR/health" >/dev/null 2>&1 && return 0
    running "$1" || { cat "$work/$2.log" >&2; fail "$2 exited before it was ready"; }
    sleep 0.1
  done
  cat "$work/$2.log" >&2
  fail "$2 did not answer /health within 20 s"
}

# wait_running PID NAME: waits for `furrow is running` in its log.
wait_running() {
  local i
  for i in $(seq 300); do
    grep -q 'furrow is running' "$work/$2.log" 2>/dev/null && return 0
    running "$1" || { cat "$work/$2.log" >&2; fail "$2 exited before it was running"; }
    sleep 0.1
  done
  cat "$work/$2.log" >&2
  fail "$2 was not running within 30 s"
}

# CPU[pid]: the last CPU seconds read of each process (a process's counters
# go with it once it is reaped, so they are sampled while it stops).
declare -A CPU
sample_cpu() {
  local p c
  for p in "$@"; do
    c=$(cpu_secs "$p")
    [ "$c" != 0 ] && CPU[$p]=$c
  done
  return 0
}

# stop_wait NAME TIMEOUT PID...: SIGTERM to each, waits for all to exit
# (sampling their CPU time), fails after TIMEOUT seconds or if one exits
# with a status other than 0.
stop_wait() {
  local name=$1 timeout=$2 t0 p rc left
  shift 2
  t0=$(now_ns)
  kill -TERM "$@"
  while :; do
    left=0
    for p in "$@"; do running "$p" && left=1; done
    [ "$left" = 0 ] && break
    sample_cpu "$@"
    [ "$(awk -v s="$(secs_since "$t0")" -v t="$timeout" 'BEGIN {print (s > t)}')" = 1 ] &&
      fail "$name did not exit within $timeout s of SIGTERM"
    sleep 0.05
  done
  for p in "$@"; do
    rc=0; wait "$p" || rc=$?
    [ "$rc" = 0 ] || FAILED+=("$name (pid $p) exited with status $rc")
  done
  return 0
}

# run_wrk DURATION: wrk with bench/pixel.lua against FURROW_ADDR; sets
# WRK_START (ns), WRK_SECS, REQS, ERRS, OK (2xx), RPS and WRK_CPU.
run_wrk() {
  local TIMEFORMAT='%U %S' sockerr
  WRK_START=$(now_ns)
  { time wrk -t"$THREADS" -c"$CONNS" -d"$1" --latency -s bench/pixel.lua "http://$FURROW_ADDR" >"$work/wrk.txt" 2>"$work/wrk.err"; } 2>"$work/wrk.time" \
    || { cat "$work/wrk.err" >&2; fail "wrk failed"; }
  WRK_SECS=$(secs_since "$WRK_START")
  REQS=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
  RPS=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$work/wrk.txt")
  ERRS=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$work/wrk.txt")
  ERRS=${ERRS:-0}
  OK=$((REQS - ERRS))
  WRK_CPU=$(awk '{printf "%.1f", $1 + $2}' "$work/wrk.time")
  sockerr=$(grep -o 'Socket errors:.*' "$work/wrk.txt" || true)
  [ -n "$sockerr" ] && log "wrk: $sockerr"
  log "wrk: $REQS requests ($ERRS non-2xx), $RPS req/s over $WRK_SECS s"
}

# The watcher: one JVM with a Kafka admin client, reading conditions from
# its standard input (fd 7 here) and waiting for each in turn, polling
# every WATCH_MS milliseconds (100: the enrich runs last a few seconds).
# "sum TARGET TOPIC..." holds once the topics' end offsets add up to
# TARGET; "lag GROUP TOPIC..." once GROUP's committed offsets reach the end
# offsets of every partition of the topics. It prints "ready", then "poll
# N MILLIS VALUE" at each poll of the Nth condition and "met N MILLIS
# VALUE" when it holds, MILLIS being the wall clock when the answer came.
write_watcher() {
  mkdir -p "$work/watch"
  cat >"$work/watch/Watch.java" <<'EOF2'
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;

public class Watch {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        long interval = Long.parseLong(args[1]);
        try (Admin admin = Admin.create(props)) {
            admin.describeCluster().nodes().get(30, TimeUnit.SECONDS);
            System.out.println("ready");
            System.out.flush();
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
            String line;
            int id = 0;
            while ((line = in.readLine()) != null) {
                String[] f = line.trim().split("\\s+");
                if (f.length < 3) {
                    continue;
                }
                id++;
                List<String> topics = Arrays.asList(f).subList(2, f.length);
                Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
                for (TopicDescription d : admin.describeTopics(topics).allTopicNames().get(30, TimeUnit.SECONDS).values()) {
                    for (TopicPartitionInfo p : d.partitions()) {
                        latest.put(new TopicPartition(d.name(), p.partition()), OffsetSpec.latest());
                    }
                }
                while (true) {
                    long v = 0;
                    boolean met;
                    try {
                        Map<TopicPartition, ListOffsetsResultInfo> ends = admin.listOffsets(latest).all().get(30, TimeUnit.SECONDS);
                        if (f[0].equals("sum")) {
                            for (ListOffsetsResultInfo e : ends.values()) {
                                v += e.offset();
                            }
                            met = v >= Long.parseLong(f[1]);
                        } else {
                            Map<TopicPartition, OffsetAndMetadata> committed =
                                admin.listConsumerGroupOffsets(f[1]).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
                            for (Map.Entry<TopicPartition, ListOffsetsResultInfo> e : ends.entrySet()) {
                                OffsetAndMetadata c = committed.get(e.getKey());
                                v += e.getValue().offset() - (c == null ? 0 : c.offset());
                            }
                            met = v == 0;
                        }
                    } catch (Exception e) {
                        System.out.println("error " + id + " " + System.currentTimeMillis() + " " + e);
                        System.out.flush();
                        Thread.sleep(interval);
                        continue;
                    }
                    System.out.println((met ? "met " : "poll ") + id + " " + System.currentTimeMillis() + " " + v);
                    System.out.flush();
                    if (met) {
                        break;
                    }
                    Thread.sleep(interval);
                }
            }
        }
    }
}
EOF2
  javac -nowarn -cp "$LIBS/*" -d "$work/watch" "$work/watch/Watch.java" >"$work/watch/javac.log" 2>&1 ||
    { cat "$work/watch/javac.log" >&2; fail "could not compile the watcher"; }
}

# watch_start: starts the watcher; watch_stop ends it.
WATCH_N=0
watch_start() {
  [ -f "$work/watch/Watch.class" ] || write_watcher
  rm -f "$work/watch.in" "$work/watch.out"
  mkfifo "$work/watch.in"
  java "${TOOL_JVM[@]}" "-Dlog4j2.configurationFile=$kdir/log4j2-tool.properties" -cp "$work/watch:$LIBS/*" \
    Watch "$BOOT" "$WATCH_MS" <"$work/watch.in" >"$work/watch.out" 2>"$work/watch.err" &
  WATCH_PID=$!
  pids+=("$WATCH_PID")
  exec 7>"$work/watch.in"
  WATCH_N=0
  local i
  for i in $(seq 300); do
    grep -q '^ready' "$work/watch.out" 2>/dev/null && return 0
    running "$WATCH_PID" || { cat "$work/watch.err" >&2; fail "the watcher exited"; }
    sleep 0.1
  done
  fail "the watcher was not ready within 30 s"
}
watch_stop() {
  exec 7>&-
  local i
  for i in $(seq 50); do running "$WATCH_PID" || break; sleep 0.1; done
  kill -KILL "$WATCH_PID" 2>/dev/null || true
  wait "$WATCH_PID" 2>/dev/null || true
}

# watch_for TIMEOUT WHAT CONDITION...: hands the watcher a condition and
# waits for it (sampling the CPU time of $WATCH_PIDS, failing if one of
# them exits), logging progress every 2 s; sets MET_NS, the time it held,
# and MET_VALUE.
WATCH_PIDS=()
watch_for() {
  local timeout=$1 what=$2 t0 line last=0 p
  shift 2
  WATCH_N=$((WATCH_N + 1))
  echo "$*" >&7
  t0=$(now_ns)
  while :; do
    line=$(grep "^met $WATCH_N " "$work/watch.out" || true)
    [ -n "$line" ] && break
    running "$WATCH_PID" || { cat "$work/watch.err" >&2; fail "the watcher exited"; }
    for p in "${WATCH_PIDS[@]}"; do
      running "$p" || fail "pid $p exited while waiting for $what"
    done
    sample_cpu "${WATCH_PIDS[@]}"
    if [ $(( ($(now_ns) - t0) / 2000000000 )) -gt "$last" ]; then
      last=$(( ($(now_ns) - t0) / 2000000000 ))
      log "  waiting for $what: $(grep -E "^(poll|error) $WATCH_N " "$work/watch.out" | tail -1 | awk '{$2 = $3 = ""; print}')"
    fi
    [ "$(awk -v s="$(secs_since "$t0")" -v t="$timeout" 'BEGIN {print (s > t)}')" = 1 ] &&
      fail "$what: not within $timeout s"
    sleep 0.1
  done
  sample_cpu "${WATCH_PIDS[@]}"
  read -r _ _ MET_NS MET_VALUE <<<"$line"
  MET_NS=${MET_NS}000000
}

# delta A B, rate N SECS, ratio A B.
delta() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", b - a}'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN {printf "%.0f", (s > 0 ? n / s : 0)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }
nsecs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b - a) / 1e9}'; }

machine_line() {
  echo "$(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); one Kafka 4.4.0 broker (KRaft), wrk and furrow on the same machine; load average at the start: $LOADAVG0"
}

# --- enrich: 1 and 2 `furrow enrich` processes on a filled raw topic -----
scenario_enrich() {
  log "enrich: creating topics..."
  create_topic enrich-raw 4
  create_topic enrich-raw-bad 1
  kafka_config "$work/enrich-fill.yaml" enrichfill enrich
  log "enrich: filling enrich-raw: furrow collect under wrk -t$THREADS -c$CONNS -d$FILL_DURATION..."
  start_furrow FILL_PID enrich-collect collect --listen "$FURROW_ADDR" --data-dir "$work/enrich-collect" --config "$work/enrich-fill.yaml"
  wait_health "$FILL_PID" enrich-collect
  run_wrk "$FILL_DURATION"
  local fill_ok=$OK fill_rps=$RPS
  stop_wait "furrow collect" 120 "$FILL_PID"
  local n
  n=$(topic_records enrich-raw)
  [ "$n" -ge "$fill_ok" ] || FAILED+=("enrich: enrich-raw holds $n records for $fill_ok 2xx requests")
  log "enrich: enrich-raw holds $n records ($fill_ok 2xx requests)"
  [ "$n" -gt 0 ] || fail "enrich: nothing to enrich"

  watch_start
  local k i secs b0 t0 good bad procs cpus
  local -a epids
  for k in 1 2; do
    create_topic "e$k-enriched" 4
    create_topic "e$k-bad" 1
    kafka_config "$work/enrich$k.yaml" "bench$k" enrich "e$k"
    log "enrich: $k process(es), group bench$k-enrich, -> e$k-enriched..."
    epids=()
    b0=$(cpu_secs "$BROKER_PID")
    read -r m0busy m0total < <(machine_cpu)
    t0=$(now_ns)
    for i in $(seq "$k"); do
      start_furrow EPID "enrich$k-$i" enrich --data-dir "$work/enrich$k-$i" --config "$work/enrich$k.yaml"
      epids+=("$EPID")
    done
    WATCH_PIDS=("${epids[@]}")
    watch_for 150 "e$k-enriched to hold $n records" sum "$n" "e$k-enriched"
    secs=$(nsecs "$t0" "$MET_NS")
    read -r m1busy m1total < <(machine_cpu)
    cpus=""
    for i in "${epids[@]}"; do cpus="$cpus ${CPU[$i]:-0}"; done
    # Stricter: until the group has committed the whole raw topic (furrow
    # enrich commits once a batch's outputs are acknowledged, at least
    # every second), as records enriched twice count in the sum above.
    watch_for 60 "bench$k-enrich to have lag 0 on enrich-raw" lag "bench$k-enrich" enrich-raw
    E_COMMIT[$k]=$(nsecs "$t0" "$MET_NS")
    E_SECS[$k]=$secs
    E_RATE[$k]=$(rate "$n" "$secs")
    E_CPU[$k]=${cpus# }
    E_BROKER[$k]=$(delta "$b0" "$(cpu_secs "$BROKER_PID")")
    E_BUSY[$k]=$(awk -v b="$((m1busy - m0busy))" -v t="$((m1total - m0total))" 'BEGIN {printf "%.0f", t ? 100 * b / t : 0}')
    E_BUSYSECS[$k]=$(awk -v b="$((m1busy - m0busy))" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", b / hz}')
    log "enrich: $k process(es): $n records in $secs s: ${E_RATE[$k]} ev/s (CPU s of each: ${E_CPU[$k]}); SIGTERM..."
    stop_wait "furrow enrich ($k)" 60 "${epids[@]}"
    cpus=""
    for i in "${epids[@]}"; do cpus="$cpus ${CPU[$i]:-0}"; done
    E_CPUEXIT[$k]=${cpus# }
    good=$(topic_records "e$k-enriched")
    bad=$(topic_records "e$k-bad")
    E_COUNTS[$k]="$good in e$k-enriched, $bad in e$k-bad"
    [ "$good" -ge "$n" ] || FAILED+=("enrich ($k): $good enriched for $n raw")
    [ "$bad" = 0 ] || FAILED+=("enrich ($k): $bad bad rows")
    # A rebalance while two members start may enrich a few records twice.
    if [ "$good" -gt "$n" ]; then log "enrich: $k process(es): $((good - n)) records enriched more than once"; fi
  done
  local watch_cpu
  watch_cpu=$(cpu_secs "$WATCH_PID")
  watch_stop
  WATCH_PIDS=()

  echo
  machine_line
  printf '%-58s %s\n' "enrich: raw topic enrich-raw (4 partitions), filled by collect:" "$n records ($fill_ok 2xx requests at $fill_rps req/s, wrk -c$CONNS -d$FILL_DURATION)"
  for k in 1 2; do
    printf '%-58s %s\n' "enrich: $k furrow enrich process(es), start -> e$k-enriched = N:" \
      "${E_RATE[$k]} ev/s ($n in ${E_SECS[$k]} s; all of enrich-raw committed at ${E_COMMIT[$k]} s: $(rate "$n" "${E_COMMIT[$k]}") ev/s)"
    printf '%-58s %s\n' "" "after SIGTERM: ${E_COUNTS[$k]}"
    printf '%-58s %s\n' "" "CPU s: enrich ${E_CPU[$k]} (at the end; ${E_CPUEXIT[$k]} at exit), broker ${E_BROKER[$k]}, machine ${E_BUSYSECS[$k]} of $(awk -v s="${E_SECS[$k]}" -v c="$(nproc)" 'BEGIN {printf "%.1f", s * c}') (${E_BUSY[$k]}% busy)"
  done
  printf '%-58s %s\n' "enrich: 2 processes / 1 process:" "$(ratio "${E_RATE[2]}" "${E_RATE[1]}")"
  echo "  (the watcher polling the offsets used $watch_cpu CPU s in all)"
}
declare -A E_COMMIT E_SECS E_RATE E_CPU E_CPUEXIT E_BROKER E_BUSY E_BUSYSECS E_COUNTS

# --- split: furrow run against collect + enrich + load -------------------
scenario_split() {
  local b0 secs rc
  # (a) furrow run: everything in one process, into DuckDB.
  cat >"$work/run.yaml" <<EOF2
drain_timeout: 10m
EOF2
  log "split (a): furrow run, wrk -t$THREADS -c$CONNS -d$DURATION..."
  start_furrow RUN_PID run run --listen "$FURROW_ADDR" --data-dir "$work/run" --config "$work/run.yaml"
  wait_health "$RUN_PID" run
  b0=$(cpu_secs "$BROKER_PID")
  run_wrk "$DURATION"
  local run_ok=$OK run_reqs=$REQS run_errs=$ERRS run_rps=$RPS run_wrk_cpu=$WRK_CPU run_wrk_secs=$WRK_SECS
  sample_cpu "$RUN_PID"
  local run_cpu_wrk=${CPU[$RUN_PID]:-0}
  log "split (a): SIGTERM, furrow run loads what it holds..."
  stop_wait "furrow run" 150 "$RUN_PID"
  local run_secs run_rate run_cpu=${CPU[$RUN_PID]:-0}
  run_secs=$(secs_since "$WRK_START")
  run_rate=$(rate "$run_ok" "$run_secs")
  local run_rows
  run_rows=$("$work/furrow" sql --data-dir "$work/run" --config "$work/run.yaml" "SELECT count(*) FROM atomic.events" 2>"$work/run-sql.err" | tail -1) ||
    { cat "$work/run-sql.err" >&2; run_rows="? (furrow sql failed)"; }
  # wrk does not count the requests in flight when it stops (up to CONNS):
  # furrow may have taken them.
  if ! [ "$run_rows" -ge "$run_ok" ] 2>/dev/null; then FAILED+=("split (a): DuckDB holds $run_rows events for $run_ok 2xx requests"); fi
  log "split (a): $run_ok events in $run_secs s: $run_rate ev/s; DuckDB holds $run_rows"

  # (b) collect + enrich + load on the broker.
  log "split (b): creating topics..."
  create_topic split-raw 4
  create_topic split-raw-bad 1
  create_topic split-enriched 4
  create_topic split-bad 1
  kafka_config "$work/split.yaml" split split
  watch_start
  start_furrow LOAD_PID split-load load --data-dir "$work/split-load" --config "$work/split.yaml"
  start_furrow ENR_PID split-enrich enrich --data-dir "$work/split-enrich" --config "$work/split.yaml"
  start_furrow COL_PID split-collect collect --listen "$FURROW_ADDR" --data-dir "$work/split-collect" --config "$work/split.yaml"
  wait_health "$COL_PID" split-collect
  wait_running "$ENR_PID" split-enrich
  wait_running "$LOAD_PID" split-load
  log "split (b): collect + enrich + load, wrk -t$THREADS -c$CONNS -d$DURATION..."
  b0=$(cpu_secs "$BROKER_PID")
  local e0 l0 w0
  e0=$(cpu_secs "$ENR_PID"); l0=$(cpu_secs "$LOAD_PID"); w0=$(cpu_secs "$WATCH_PID")
  read -r m0busy m0total < <(machine_cpu)
  run_wrk "$DURATION"
  local t0=$WRK_START
  sample_cpu "$COL_PID" "$ENR_PID" "$LOAD_PID"
  local during="collect ${CPU[$COL_PID]:-0}, enrich $(delta "$e0" "${CPU[$ENR_PID]:-0}"), load $(delta "$l0" "${CPU[$LOAD_PID]:-0}"), wrk $WRK_CPU, broker $(delta "$b0" "$(cpu_secs "$BROKER_PID")")"
  log "split (b): SIGTERM to collect (it drains into Kafka)..."
  stop_wait "furrow collect" 120 "$COL_PID"
  local col_exit
  col_exit=$(secs_since "$t0")
  WATCH_PIDS=("$ENR_PID" "$LOAD_PID")
  # What collect wrote: the 2xx requests and maybe some that wrk left in
  # flight (a condition met at once, to read the end offsets).
  watch_for 30 "split-raw's end offsets" sum 0 split-raw
  local rawn=$MET_VALUE
  [ "$rawn" -ge "$OK" ] || FAILED+=("split (b): $rawn records in split-raw for $OK 2xx requests")
  watch_for 150 "split-enriched to hold $rawn records" sum "$rawn" split-enriched
  local enr_secs
  enr_secs=$(nsecs "$t0" "$MET_NS")
  watch_for 150 "split-load-duckdb to have lag 0" lag split-load-duckdb split-enriched split-bad
  local split_secs split_rate
  split_secs=$(nsecs "$t0" "$MET_NS")
  split_rate=$(rate "$OK" "$split_secs")
  read -r m1busy m1total < <(machine_cpu)
  local busy busysecs broker_cpu watch_cpu
  busy=$(awk -v b="$((m1busy - m0busy))" -v t="$((m1total - m0total))" 'BEGIN {printf "%.0f", t ? 100 * b / t : 0}')
  busysecs=$(awk -v b="$((m1busy - m0busy))" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", b / hz}')
  broker_cpu=$(delta "$b0" "$(cpu_secs "$BROKER_PID")")
  watch_cpu=$(delta "$w0" "$(cpu_secs "$WATCH_PID")")
  local until_end="collect ${CPU[$COL_PID]:-0}, enrich $(delta "$e0" "${CPU[$ENR_PID]:-0}"), load $(delta "$l0" "${CPU[$LOAD_PID]:-0}"), broker $broker_cpu, watcher $watch_cpu"
  log "split (b): $OK events in DuckDB after $split_secs s: $split_rate ev/s; checking with ConsumerGroupCommand..."
  ktool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$BOOT" --describe --group split-load-duckdb \
    >"$work/split-describe.txt" 2>"$work/split-describe.err" || cat "$work/split-describe.err" >&2
  # The LAG column: "-" where the group has committed nothing (an empty
  # partition); its log-end offset is then the lag.
  local desc_lag
  desc_lag=$(awk '$1 == "GROUP" {for (i = 1; i <= NF; i++) {if ($i == "LAG") l = i; if ($i == "LOG-END-OFFSET") e = i}; next}
    l && NF >= l {n++; lag += ($l == "-" ? $e : $l)} END {printf "%d (%d partitions)", lag, n}' "$work/split-describe.txt")
  [ "${desc_lag%% *}" = 0 ] || { cat "$work/split-describe.txt" >&2; FAILED+=("split (b): ConsumerGroupCommand says lag $desc_lag"); }
  watch_stop
  WATCH_PIDS=()
  log "split (b): SIGTERM to load and enrich..."
  stop_wait "furrow load and enrich" 120 "$LOAD_PID" "$ENR_PID"
  local good bad split_rows
  good=$(topic_records split-enriched)
  bad=$(topic_records split-bad)
  split_rows=$("$work/furrow" sql --data-dir "$work/split-load" "SELECT count(*) FROM atomic.events" 2>"$work/split-sql.err" | tail -1) ||
    { cat "$work/split-sql.err" >&2; split_rows="? (furrow sql failed)"; }
  [ "$split_rows" = "$rawn" ] || FAILED+=("split (b): DuckDB holds $split_rows events for $rawn records in split-raw ($OK 2xx requests)")

  echo
  machine_line
  printf '%-58s %s\n' "split (a) furrow run, wrk -t$THREADS -c$CONNS -d$DURATION GET pixel:" "$run_rps req/s ($run_reqs requests, $run_errs non-2xx)"
  printf '%-58s %s\n' "split (a) end to end, wrk start -> furrow run exited:" "$run_rate ev/s ($run_ok events in $run_secs s: wrk $run_wrk_secs s + stop); DuckDB holds $run_rows for $run_ok 2xx requests"
  printf '%-58s %s\n' "" "CPU s: furrow run $run_cpu_wrk during wrk, $run_cpu until its exit; wrk $run_wrk_cpu"
  printf '%-58s %s\n' "split (b) collect + enrich + load, same wrk load:" "$RPS req/s ($REQS requests, $ERRS non-2xx)"
  printf '%-58s %s\n' "split (b) end to end, wrk start -> load's lag 0:" "$split_rate ev/s ($OK events in $split_secs s: collect exited at $col_exit s, split-enriched full at $enr_secs s)"
  printf '%-58s %s\n' "" "DuckDB holds $split_rows for $OK 2xx requests; $rawn in split-raw, $good in split-enriched, $bad in split-bad; ConsumerGroupCommand lag $desc_lag"
  printf '%-58s %s\n' "" "CPU s during wrk: $during"
  printf '%-58s %s\n' "" "CPU s until the end: $until_end; machine $busysecs ($busy% busy)"
  printf '%-58s %s\n' "split (b) / split (a):" "$(ratio "$split_rate" "$run_rate")"
}

# scenario NAME: runs it, noting the load average at its start.
scenario() {
  LOADAVG0=$(cut -d' ' -f1-3 /proc/loadavg)
  "scenario_$1"
}
case $SCENARIO in
  all) scenario collect; scenario enrich; scenario split ;;
  *) scenario "$SCENARIO" ;;
esac
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo
  for f in "${FAILED[@]}"; do echo "FAIL: $f"; done
  exit 1
fi
