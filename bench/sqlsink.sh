#!/usr/bin/env bash
# sql sink benchmark: rows/s written by the sql sink (insert mode, one row
# per 1 KB event of 64 keys, five columns) through the sink runtime into
# the PostgreSQL and MariaDB of scripts/services, from the embedded stream
# and from Kafka, with the runtime's defaults and two tuned settings
# (connectors/sqlsink/bench_runtime_test.go, BenchmarkSinkRuntime, says
# what each figure is).
#
#   bench/sqlsink.sh [FILTER]     FILTER narrows the sub-benchmarks, such
#                                 as kafka/postgres
#
# Environment: N (events per run, default 100000); the services' addresses
# come from scripts/services env.
#
# No peer runs beside it: Redpanda Connect's sql_insert output lives in
# its own module (github.com/redpanda-data/connect/v4, internal/impl/sql),
# not in the MIT Benthos engine that bench/sinkpeer builds, and that module
# is not built on this project's machines (see bench/sink.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/services env)"
export TRIBUTARY_REQUIRE_SERVICES=1
N=${N:-100000}
filter=${1:-}
echo "== load: $(uptime)"
go test -run '^$' -bench "SinkRuntime${filter:+/$filter}" -benchtime "${N}x" ./connectors/sqlsink
echo "== load: $(uptime)"
