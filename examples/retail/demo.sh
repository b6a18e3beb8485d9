#!/usr/bin/env bash
# The retail demo: `make demo` (up) and `make demo-down` (down).
#
# up: starts PostgreSQL and MariaDB (scripts/services), the simulated
# legacy systems (bin/retailsim) and one sidecar on the embedded stream
# (bin/tributary with examples/retail/tributary.yaml), places a handful of
# orders and prints each order's timeline as it moves, then leaves
# everything running and prints what to try. down: stops the simulator
# and the sidecar and drops the demo's replication slot (the services stay
# up: scripts/services down stops them).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DEMO="$ROOT/.demo"
ORDERS=${ORDERS:-10}
export RETAIL_STATE="$DEMO/state" RETAIL_SHIPPING_DIR="$DEMO/shipping"
export RETAIL_ADMIN=${RETAIL_ADMIN:-127.0.0.1:9470} RETAIL_HTTP=${RETAIL_HTTP:-127.0.0.1:8090} RETAIL_SIM=${RETAIL_SIM:-127.0.0.1:8091}

stop() {
	for p in retailsim tributary; do
		if [[ -s "$DEMO/$p.pid" ]] && kill -0 "$(cat "$DEMO/$p.pid")" 2>/dev/null; then
			kill "$(cat "$DEMO/$p.pid")" && echo "stopped $p"
			for _ in $(seq 50); do kill -0 "$(cat "$DEMO/$p.pid")" 2>/dev/null || break; sleep 0.2; done
		fi
		rm -f "$DEMO/$p.pid"
	done
}

# forget drops the demo's replication slot and publication, which would
# otherwise hold the server's WAL while the demo is down; the next `up`
# starts afresh.
forget() {
	if scripts/services status postgres >/dev/null 2>&1 && command -v psql >/dev/null; then
		eval "$(scripts/services env postgres)"
		for _ in $(seq 25); do
			psql "$TRIBUTARY_POSTGRES_URL" -qAtc "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'tributary_retail_order_entry' AND NOT active" >/dev/null 2>&1 || true
			n=$(psql "$TRIBUTARY_POSTGRES_URL" -qAtc "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'tributary_retail_order_entry'" 2>/dev/null || echo 0)
			[ "$n" = 0 ] && break
			sleep 0.2
		done
		psql "$TRIBUTARY_POSTGRES_URL" -qAtc "DROP PUBLICATION IF EXISTS tributary_retail_order_entry" >/dev/null 2>&1 || true
	fi
	rm -rf "$DEMO/state" "$DEMO/shipping"
}

case "${1:-up}" in
down)
	stop
	forget
	exit 0
	;;
up) ;;
*)
	echo "usage: examples/retail/demo.sh up|down" >&2
	exit 2
	;;
esac

stop
forget
mkdir -p "$DEMO"
# The simulator places its orders once the sidecar is ready, so nothing
# needs snapshotting; earlier demos' orders stay in the tables, unread.
export RETAIL_SNAPSHOT=never
scripts/services up postgres mariadb
eval "$(scripts/services env postgres mariadb)"
export RETAIL_PG_URL="$TRIBUTARY_POSTGRES_URL" RETAIL_MYSQL_DSN="$TRIBUTARY_MYSQL_DSN"
go build -o bin/tributary ./cmd/tributary
go build -o bin/retailsim ./examples/retail/retailsim

prefix="d$(date +%H%M%S)-"
bin/retailsim serve -prefix "$prefix" -orders "$ORDERS" -start-after "http://$RETAIL_ADMIN/readyz" >"$DEMO/retailsim.log" 2>&1 &
echo $! >"$DEMO/retailsim.pid"
bin/tributary run -c examples/retail/tributary.yaml >"$DEMO/tributary.log" 2>&1 &
echo $! >"$DEMO/tributary.pid"

echo "== $ORDERS orders travelling through order entry, billing, the warehouse and shipping"
if ! bin/retailsim watch -admin "$RETAIL_ADMIN" -prefix "$prefix" -orders "$ORDERS" -for 120s; then
	echo "-- the sidecar's log ($DEMO/tributary.log):" >&2
	tail -n 20 "$DEMO/tributary.log" >&2
	exit 1
fi
cat <<EOT

Everything is still running (sidecar admin http://$RETAIL_ADMIN, logs in $DEMO). Try:
  export RETAIL_STATE=$RETAIL_STATE RETAIL_ADMIN=$RETAIL_ADMIN
  bin/tributary trace -c examples/retail/tributary.yaml order ${prefix}ord-0001
  bin/tributary events search -c examples/retail/tributary.yaml --subject ${prefix}ord-0001
  bin/tributary catalog graph -c examples/retail/tributary.yaml --entity order --format mermaid
  curl -s http://$RETAIL_ADMIN/v1/sinks | head -c 800; echo
  curl -s "http://$RETAIL_ADMIN/v1/entities/order?state=billed"
  ls $RETAIL_SHIPPING_DIR
Stop it with: make demo-down
EOT
