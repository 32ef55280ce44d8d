#!/usr/bin/env bash
# Puts the jars of an Apache Kafka 4.4.0 broker and its console tools in
# ${FURROW_KAFKA_LIBS:-$HOME/.cache/furrow/kafka-4.4.0/libs}, where
# internal/testutil/kafka.go runs them (java -cp 'DIR/*' kafka.Kafka).
# They come from Maven Central through Maven (see pom.xml beside this
# file), as the Kafka download site cannot be reached. Needs java and mvn.
#
# Idempotent: a directory that already holds the jars of this pom.xml (its
# .complete marker names the pom's checksum) is left as it is.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="${FURROW_KAFKA_LIBS:-$HOME/.cache/furrow/kafka-4.4.0/libs}"
marker="$dest/.complete"

fail() { echo "test/kafka/fetch.sh: $*" >&2; exit 1; }

want="$(sha256sum "$here/pom.xml" | cut -d' ' -f1)"
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ]; then
  echo "Kafka jars already in $dest"
  exit 0
fi

command -v java >/dev/null || fail "java not found: install a Java 17 runtime (apt-get install openjdk-17-jre-headless)"
command -v mvn >/dev/null || fail "mvn not found: install Maven (apt-get install maven)"

mkdir -p "$(dirname "$dest")"
tmp="$(mktemp -d "$dest.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "fetching the Kafka 4.4.0 jars from Maven Central into $dest"
# -B prints one line per file downloaded into the local Maven repository
# (nothing when it has them all): shown shortened as progress.
set +e
mvn -B -f "$here/pom.xml" \
  org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1 |
  tee "$tmp/mvn.log" | sed -n -u 's|^\[INFO\] Downloaded from [^:]*: .*/\([^/]*\.jar\) (.*|  downloaded \1|p'
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
  grep -E '\[ERROR\]' "$tmp/mvn.log" >&2 || tail -40 "$tmp/mvn.log" >&2
  fail "mvn could not fetch org.apache.kafka:kafka_2.13:4.4.0 and its dependencies (exit $rc; is Maven Central reachable?)"
fi
rm -f "$tmp/mvn.log"

n="$(find "$tmp" -name '*.jar' | wc -l)"
[ -f "$tmp/kafka_2.13-4.4.0.jar" ] && [ -f "$tmp/kafka-tools-4.4.0.jar" ] ||
  fail "mvn ran but the Kafka jars are not in its output ($n jars)"
echo "$want" >"$tmp/.complete"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "Kafka jars ready in $dest: $n jars"
