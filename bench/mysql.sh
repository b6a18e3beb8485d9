#!/usr/bin/env bash
# MySQL/MariaDB CDC catch-up benchmark: commits ROWS single-row inserts in
# 1k-row transactions into the MariaDB of scripts/services while the
# mysql_cdc connectors are stopped, then, in the same run, reads that
# binlog CEILING_RUNS times with each ceiling (mariadb-binlog
# --read-from-remote-server into /dev/null without and with rows decoded,
# bench/binlogread's go-mysql syncer without decoding events, decoding
# every row and dropping it (the ceiling of the library the connector
# reads with) and writing rows as text), and times the runtime catching
# up into the embedded stream or into Kafka (one per process, rules engine
# mapping each row whole) until every change's event is durable and its
# checkpoint stored (BenchmarkCatchUp in connectors/mysql). It prints, per
# catch-up, a table: each reader's median changes/s, the spread of its
# rates, its CPU time per change and the cores it kept busy, and the
# catch-up's share of each ceiling's rate and multiple of its CPU per
# change, and the binlog's rows and bytes per change of the load (other
# writers to the server put their events in it too); the load average
# before and after each run says how quiet the machine was. Then a steady
# 5,000 changes/s into Kafka for SECONDS_RUN
# (default 10) with its commit-to-ack percentiles (BenchmarkSteady5k).
#
#   ROWS=1000000 bench/mysql.sh
#
# Environment: ROWS (default 1000000); CATCHUP_RUNS (loads and
# catch-ups per process, default 3); CEILING_RUNS (reads per ceiling
# after each load, default 5); STREAMS (default "embedded kafka"); INFLIGHT (the
# connectors' max_in_flight values to run, default "0 10000"; 0 is the
# default the sidecar gives a mysql_cdc entry without max_in_flight, 10000
# the runtime's); SECONDS_RUN (0 skips the steady run).
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-1000000}
INFLIGHT=${INFLIGHT:-"0 10000"}
STREAMS=${STREAMS:-"embedded kafka"}
CEILING_RUNS=${CEILING_RUNS:-5}
CATCHUP_RUNS=${CATCHUP_RUNS:-3}
scripts/services up mariadb kafka >/dev/null
eval "$(scripts/services env mariadb kafka)"
export TRIBUTARY_REQUIRE_SERVICES=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/mysql.test" ./connectors/mysql
go build -o "$work/binlogread" ./bench/binlogread
export TRIBUTARY_BENCH_BINLOGREAD="$work/binlogread"
# table turns BenchmarkCatchUp's metrics ("value name" pairs) into a table
# for the catch-up of stream $1.
table() {
	awk -v st="$1" '
	/^Benchmark/ {
		for (i = 3; i < NF; i += 2) m[$(i + 1)] = $i
		split("raw:mariadb-binlog -r /dev/null (no row decoding),gomysql-raw:go-mysql syncer raw (no event decoding),raw-decoded:mariadb-binlog -v (rows as text),gomysql:go-mysql decoding rows (the library),gomysql-text:go-mysql rows as text", rd, ",")
		printf "  %-48s %12s %8s %10s %6s %10s %10s\n", "reader", "changes/s", "spread", "cpu ns/ch", "cores", "share", "cpu x"
		printf "  %-48s %12.0f %7.0f%% %10.0f %6.2f %10s %10s   peak RSS %.0f MB\n", "catch-up into " st, m[st "-changes/s"], m[st "-spread-%"], m[st "-cpu-ns/change"], m[st "-cores"], "", "", m[st "-peak-rss-MB"]
		for (i = 1; i in rd; i++) {
			split(rd[i], kv, ":")
			k = kv[1]
			if (!((k "-changes/s") in m)) continue
			printf "  %-48s %12.0f %7.0f%% %10.0f %6.2f %9.1f%% %9.1fx\n", kv[2], m[k "-changes/s"], m[k "-spread-%"], m[k "-cpu-ns/change"], m[k "-cores"], m[st "-%-of-" k], m[st "-cpu-x-" k]
		}
		if ("binlog-rows/change" in m)
			printf "  binlog read per change of the load: %.2f rows, %.0f bytes (more than 1 row: other writers shared the binlog, and every figure is disturbed)\n", m["binlog-rows/change"], m["binlog-bytes/change"]
	}'
}
for f in $INFLIGHT; do
	for s in $STREAMS; do
		# Each stream in a process of its own, as the sidecar runs one.
		echo "max_in_flight ${f/#0/default}, $ROWS rows, $s stream, $CATCHUP_RUNS catch-ups, $CEILING_RUNS reads per ceiling each; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
		out=$(TRIBUTARY_BENCH_ROWS=$ROWS TRIBUTARY_BENCH_INFLIGHT=$f TRIBUTARY_BENCH_STREAMS=$s TRIBUTARY_BENCH_CEILING_RUNS=$CEILING_RUNS \
			"$work/mysql.test" -test.run '^$' -test.bench CatchUp -test.benchtime "${CATCHUP_RUNS}x" 2>&1) || { echo "$out"; exit 1; }
		out=$(grep '^Benchmark' <<<"$out")
		echo "$out"
		table "$s" <<<"$out"
		echo "  load after: $(cut -d' ' -f1-3 /proc/loadavg)"
	done
done
[ "${SECONDS_RUN:-10}" = 0 ] && exit 0
echo "steady 5,000 changes/s into Kafka, ${SECONDS_STEADY:=${SECONDS_RUN:-10}}s"
out=$(TRIBUTARY_BENCH_SECONDS=$SECONDS_STEADY "$work/mysql.test" -test.run '^$' -test.bench Steady5k -test.benchtime 1x 2>&1) || { echo "$out"; exit 1; }
grep '^Benchmark' <<<"$out"
