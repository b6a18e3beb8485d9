#!/usr/bin/env bash
# MySQL/MariaDB CDC catch-up benchmark: commits ROWS single-row inserts in
# 1k-row transactions into the MariaDB of scripts/services while the
# mysql_cdc connectors are stopped, then times, in the same run,
# mariadb-binlog --read-from-remote-server reading that binlog into
# /dev/null (the raw read, without and with rows decoded), bench/binlogread
# (go-mysql's syncer decoding every row and dropping it: the ceiling of
# the library the connector reads with), and the runtime catching up into
# the embedded stream or into Kafka (one per process) until every change's
# event is durable and its checkpoint stored; it prints changes/s, the
# share of each ceiling and the peak RSS of each catch-up
# (BenchmarkCatchUp in connectors/mysql); then
# a steady 5,000 changes/s into Kafka for SECONDS_RUN (default 10) with its
# commit-to-ack percentiles (BenchmarkSteady5k).
#
#   bench/mysql.sh               ROWS=1000000, max_in_flight 1000 (mysql_cdc's default) and 10000
#
# Environment: ROWS (default 1000000), SECONDS_RUN (default 10), INFLIGHT (the connectors'
# max_in_flight values to run, default "0 10000"; 0 is the default the
# sidecar gives a mysql_cdc entry without max_in_flight, 10000 the
# runtime's).
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-1000000}
INFLIGHT=${INFLIGHT:-"0 10000"}
scripts/services up mariadb kafka >/dev/null
eval "$(scripts/services env mariadb kafka)"
export TRIBUTARY_REQUIRE_SERVICES=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/mysql.test" ./connectors/mysql
go build -o "$work/binlogread" ./bench/binlogread
export TRIBUTARY_BENCH_BINLOGREAD="$work/binlogread"
for f in $INFLIGHT; do
	for s in embedded kafka; do
		# Each stream in a process of its own, as the sidecar runs one.
		echo "max_in_flight ${f/#0/default}, $ROWS rows, $s stream"
		TRIBUTARY_BENCH_ROWS=$ROWS TRIBUTARY_BENCH_INFLIGHT=$f TRIBUTARY_BENCH_STREAMS=$s \
			"$work/mysql.test" -test.run '^$' -test.bench CatchUp -test.benchtime 1x | grep '^Benchmark'
	done
done
echo "steady 5,000 changes/s into Kafka, ${SECONDS_STEADY:=${SECONDS_RUN:-10}}s"
TRIBUTARY_BENCH_SECONDS=$SECONDS_STEADY "$work/mysql.test" -test.run '^$' -test.bench Steady5k -test.benchtime 1x | grep '^Benchmark'
