#!/usr/bin/env bash
# MySQL/MariaDB CDC catch-up benchmark: commits ROWS single-row inserts in
# 1k-row transactions into the MariaDB of scripts/services while the
# mysql_cdc connectors are stopped, then times, in the same run,
# mariadb-binlog --read-from-remote-server reading that binlog into
# /dev/null (the raw read), and the runtime catching up into the embedded
# stream and into Kafka until every change's event is durable and its
# checkpoint stored; it prints changes/s, the share of the raw read and the
# peak RSS of each catch-up (BenchmarkCatchUp in connectors/mysql); then
# a steady 5,000 changes/s into Kafka for SECONDS_RUN (default 10) with its
# commit-to-ack percentiles (BenchmarkSteady5k).
#
#   bench/mysql.sh               ROWS=1000000, max_in_flight 10000 and 4000
#
# Environment: ROWS (default 1000000), SECONDS_RUN (default 10), INFLIGHT (the connectors'
# max_in_flight values to run, default "0 4000"; 0 is the runtime's
# default).
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-1000000}
INFLIGHT=${INFLIGHT:-"0 4000"}
scripts/services up mariadb kafka >/dev/null
eval "$(scripts/services env mariadb kafka)"
export TRIBUTARY_REQUIRE_SERVICES=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/mysql.test" ./connectors/mysql
for f in $INFLIGHT; do
	echo "max_in_flight ${f/#0/10000 (default)}, $ROWS rows"
	TRIBUTARY_BENCH_ROWS=$ROWS TRIBUTARY_BENCH_INFLIGHT=$f \
		"$work/mysql.test" -test.run '^$' -test.bench CatchUp -test.benchtime 1x | grep '^Benchmark'
done
echo "steady 5,000 changes/s into Kafka, ${SECONDS_STEADY:=${SECONDS_RUN:-10}}s"
TRIBUTARY_BENCH_SECONDS=$SECONDS_STEADY "$work/mysql.test" -test.run '^$' -test.bench Steady5k -test.benchtime 1x | grep '^Benchmark'
