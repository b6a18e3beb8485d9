#!/usr/bin/env bash
# sql sink benchmark, beside a peer doing the same job in the same run.
#
# Tributary: rows/s written by the sql sink (insert mode, one row per 1 KB
# event of 64 keys, five columns) through the sink runtime into the
# PostgreSQL and MariaDB of scripts/services, from the embedded stream and
# from Kafka, with the sink's defaults and with the runtime's generic
# ones (connectors/sqlsink/bench_runtime_test.go, BenchmarkSinkRuntime,
# says what each figure is; it is timed from the runtime's start to the
# last delivery); then upsert mode into PostgreSQL with the same two
# (BenchmarkSinkRuntimeUpsert) and, without FILTER, the stream and the
# runtime alone with a sink that writes nothing (BenchmarkRuntimeNoSink).
#
# Peer: Kafka Connect's JDBC sink, Debezium's (io.debezium:
# debezium-connector-jdbc, Apache 2.0), in a Kafka Connect standalone
# worker of the broker's Kafka version, writing the same N events (the
# same ids, order_id, seq, total as a decimal, the 1 KB note) from a
# 3-partition topic, as JsonConverter records with their schema, into a
# PostgreSQL table of the same columns: insert mode, primary key event_id
# from the record, 3 tasks, batch.size and max.poll.records 2000, the
# driver's reWriteBatchedInserts on. It is timed from the first to the
# last row in its table (each row's insert time, a column default), so
# its startup is not counted; bench/jdbcpeer feeds and times it. The
# ratio printed is Tributary's rows/s from Kafka into PostgreSQL with the
# defaults over the peer's. Redpanda Connect's sql_insert output is not
# run: its module is not an open-source licence as a whole, and the MIT
# Benthos engine has no SQL output.
#
# The peer's jars come from Maven Central through `mvn` (bench/jdbcpeer/
# *-pom.xml) into PEER_CACHE, once; when Maven cannot fetch them the
# script says so and runs the rest.
#
#   bench/sqlsink.sh [FILTER]     FILTER narrows Tributary's sub-benchmarks,
#                                 such as kafka/postgres
#
# Environment: N (events per run, default 100000); PEER=0 skips the peer;
# PEER_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/tributary-bench/
# jdbcpeer); CONNECT_PORT (the worker's REST port, default 18083). The
# services' addresses come from scripts/services env.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/services env)"
export TRIBUTARY_REQUIRE_SERVICES=1
N=${N:-100000}
filter=${1:-}
PEER=${PEER:-1}
PEER_CACHE=${PEER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tributary-bench/jdbcpeer}
CONNECT_PORT=${CONNECT_PORT:-18083}
KAFKA_BROKERS=${TRIBUTARY_KAFKA_BROKERS:-127.0.0.1:9092}

work=$(mktemp -d)
jpid=""
cleanup() {
	if [ -n "$jpid" ]; then kill "$jpid" 2>/dev/null || true; wait "$jpid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

echo "== load: $(uptime)"
go test -run '^$' -bench "SinkRuntime${filter:+/$filter}" -benchtime "${N}x" ./connectors/sqlsink | tee "$work/tributary.txt"
if [ -z "$filter" ]; then
	go test -run '^$' -bench 'RuntimeNoSink' -benchtime "${N}x" ./connectors/sqlsink
fi
echo "== load: $(uptime)"

[ "$PEER" = 1 ] || exit 0

# peer_jars fetches the worker's and the connector's jars, once.
peer_jars() {
	[ -s "$PEER_CACHE/.complete" ] && return 0
	command -v mvn >/dev/null || { echo "mvn not found"; return 1; }
	command -v java >/dev/null || { echo "java not found"; return 1; }
	rm -rf "$PEER_CACHE/connect" "$PEER_CACHE/plugins"
	mkdir -p "$PEER_CACHE"
	local m=(mvn -q -B -s bench/jdbcpeer/settings.xml dependency:copy-dependencies -DincludeScope=runtime)
	"${m[@]}" -f bench/jdbcpeer/connect-pom.xml -DoutputDirectory="$PEER_CACHE/connect" >"$PEER_CACHE/maven.log" 2>&1 &&
		"${m[@]}" -f bench/jdbcpeer/plugin-pom.xml -DoutputDirectory="$PEER_CACHE/plugins/debezium-jdbc" >>"$PEER_CACHE/maven.log" 2>&1 ||
		{ echo "Maven could not fetch them (log: $PEER_CACHE/maven.log)"; return 1; }
	date >"$PEER_CACHE/.complete"
}

echo "== peer: Kafka Connect's JDBC sink (Debezium), from Kafka into PostgreSQL"
if ! why=$(peer_jars); then
	echo "== peer not run: $why"
	exit 0
fi
go build -o "$work/jdbcpeer" ./bench/jdbcpeer
stamp="$(date +%s)_$$"
topic="bench-jdbcpeer-$stamp"
table="peer_orders_$stamp"
"$work/jdbcpeer" feed -brokers "$KAFKA_BROKERS" -topic "$topic" -table "$table" -n "$N"
cat >"$work/worker.properties" <<EOF
bootstrap.servers=$KAFKA_BROKERS
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
value.converter.schemas.enable=true
offset.storage.file.filename=$work/connect.offsets
plugin.path=$PEER_CACHE/plugins
plugin.discovery=service_load
listeners=http://127.0.0.1:$CONNECT_PORT
consumer.max.poll.records=2000
EOF
{
	cat <<EOF
name=jdbc-peer-$stamp
connector.class=io.debezium.connector.jdbc.JdbcSinkConnector
tasks.max=3
topics=$topic
insert.mode=insert
primary.key.mode=record_value
primary.key.fields=event_id
schema.evolution=none
collection.name.format=$table
use.time.zone=UTC
batch.size=2000
EOF
	"$work/jdbcpeer" props | sed 's|^connection\.url=.*|&?reWriteBatchedInserts=true|'
} >"$work/connector.properties"
java -Dlog4j2.configurationFile=bench/jdbcpeer/log4j2.properties -cp "$PEER_CACHE/connect/*" \
	org.apache.kafka.connect.cli.ConnectStandalone "$work/worker.properties" "$work/connector.properties" >"$work/connect.log" 2>&1 &
jpid=$!
if ! "$work/jdbcpeer" wait -table "$table" -n "$N" | tee "$work/peer.txt"; then
	tail -n 30 "$work/connect.log"
	exit 1
fi
# The worker's CPU time (its start and JIT included): utime and stime of
# /proc/PID/stat, in 100ths of a second.
read -r ut st < <(sed 's/^.*) //' "/proc/$jpid/stat" | awk '{print $12, $13}')
echo "peer: $(((ut + st) * 10000 / N)) µs CPU per row in the Kafka Connect worker (its startup included)"
kill "$jpid" 2>/dev/null || true
wait "$jpid" 2>/dev/null || true
jpid=""
"$work/jdbcpeer" drop -table "$table"
echo "== load: $(uptime)"

ours=$(awk '/^BenchmarkSinkRuntime\/kafka\/postgres\/defaults/ { for (i = 1; i < NF; i++) if ($(i+1) == "rows/s") print $i }' "$work/tributary.txt")
theirs=$(awk '/^peer: .* rows\/s$/ { print $(NF-1) }' "$work/peer.txt")
if [ -n "$ours" ] && [ -n "$theirs" ]; then
	awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "== Tributary from Kafka into PostgreSQL, defaults: %.0f rows/s; peer %.0f rows/s: %.2fx the peer\n", a, b, a / b }'
else
	echo "== no ratio: Tributary's kafka/postgres defaults did not run (FILTER)"
fi
