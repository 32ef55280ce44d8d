#!/usr/bin/env bash
# Kafka benchmark: `furrow collect` forwarding to a real Apache Kafka 4.4.0
# broker, against Kafka's own producer performance tool on the same broker,
# on this machine, in one run (about 1 to 2 minutes).
#
# Reference: org.apache.kafka.tools.ProducerPerformance writes REF_RECORDS
# records of 830 bytes (the size of a raw Thrift payload of the GET pixel
# in bench/pixel.lua) to a 3-partition topic, with the settings furrow's
# producer uses (acks=all, idempotent, linger.ms=5): its records/s is what
# one client can push into this broker here.
#
# furrow: `furrow collect` with streams.type kafka, loaded by wrk for
# DURATION with bench/pixel.lua, then stopped with SIGTERM: it stops taking
# requests and exits once its local log is drained into Kafka. End to end
# is the number of requests answered 2xx divided by the time from wrk's
# start to furrow's exit, i.e. until every acknowledged event is in Kafka.
# The raw topic's end offsets must add up to at least that many requests.
#
#   bench/kafka.sh                        # 15 s of wrk, 64 connections
#   DURATION=30s CONNS=128 bench/kafka.sh
#   REF_RECORDS=3000000 bench/kafka.sh    # records for the reference run
#   FURROW_BIN=/path/to/furrow bench/kafka.sh   # a prebuilt binary
#
# Needs java (17), wrk, and the Kafka jars of test/kafka/fetch.sh in
# ${FURROW_KAFKA_LIBS:-$HOME/.cache/furrow/kafka-4.4.0/libs}. The broker
# (one KRaft node, as internal/testutil/kafka.go runs it) listens on free
# ports of 127.0.0.1 and lives in a temporary directory removed at exit.
# It also reports the CPU time the broker, the producer tool, wrk and
# furrow used in each phase, as they share this machine's cores.
set -euo pipefail

DURATION=${DURATION:-15s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
REF_RECORDS=${REF_RECORDS:-1000000}
FURROW_ADDR=127.0.0.1:9098
LIBS=${FURROW_KAFKA_LIBS:-$HOME/.cache/furrow/kafka-4.4.0/libs}
RAW_TOPIC=snowplow-collector-payloads
BAD_TOPIC=snowplow-collector-bad

cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
command -v java >/dev/null || { echo "java is required: apt-get install openjdk-17-jre-headless" >&2; exit 1; }
[ -f "$LIBS/.complete" ] || { echo "no Kafka jars in $LIBS: run test/kafka/fetch.sh" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

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
log "creating topics..."
create_topic perf-ref 3
create_topic "$RAW_TOPIC" 3
create_topic "$BAD_TOPIC" 1

# topic_records TOPIC: the sum of the topic's end offsets (GetOffsetShell
# prints topic:partition:offset, the latest offsets by default).
topic_records() {
  ktool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BOOT" --topic "$1" |
    awk -F: 'NF >= 3 {n += $NF} END {print n + 0}'
}

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
echo "$(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); one Kafka 4.4.0 broker (KRaft), wrk and furrow on the same machine"
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
[ "$check" = OK ] || exit 1
