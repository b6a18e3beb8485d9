#!/usr/bin/env bash
# Webhook ingestion benchmark: runs bin/tributary with one HMAC-SHA256
# webhook connector, drives it on loopback with 1 KB signed JSON deliveries
# (each with its own delivery id), and prints requests/s and latency
# percentiles, for the embedded stream and for Kafka.
#
#   bench/webhook.sh [embedded|kafka|ceiling ...]   default: embedded kafka
#
# `ceiling` runs the same load against bench/httpceiling, a net/http server
# that only reads the body and answers 200: what the machine allows at all.
#
# Throughput is measured with wrk when it is installed (it costs the shared
# cores less than a Go client), else with bench/webhookload; the steady
# 5k requests/s latency is always measured open loop by bench/webhookload.
# Environment: DURATION (default 15s), CONNS (default 64), RATE (default
# 5000), KAFKA_BROKERS (default 127.0.0.1:9092), TRIBUTARY_BIN (default
# bin/tributary), SIDECAR_LOG (copy the sidecar's log to $SIDECAR_LOG.<stream>).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-15s}
CONNS=${CONNS:-64}
RATE=${RATE:-5000}
KAFKA_BROKERS=${KAFKA_BROKERS:-127.0.0.1:9092}
BIN=${TRIBUTARY_BIN:-bin/tributary}
PORT=${PORT:-18080}
ADMIN_PORT=${ADMIN_PORT:-19464}
streams=("$@")
[ ${#streams[@]} -gt 0 ] || streams=(embedded kafka)

[ -x "$BIN" ] || go build -o "$BIN" ./cmd/tributary
work=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/webhookload" ./bench/webhookload
go build -o "$work/httpceiling" ./bench/httpceiling
url="http://127.0.0.1:$PORT/hooks/bench"
sig=$("$work/webhookload" -write-body "$work/body.json")

cat > "$work/request.lua" <<LUA
-- Sends the one signed body with a distinct delivery id per request.
local counter = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local f = io.open("$work/body.json", "rb")
local body = f:read("*a")
f:close()
local prefix = "wrk-" .. os.time() .. "-"
function init(args)
  prefix = prefix .. tid .. "-"
end
function request()
  counter = counter + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-Signature"] = "$sig",
    ["X-Delivery-Id"] = prefix .. counter,
  }, body)
end
LUA

stream_yaml() {
	case $1 in
	embedded) echo "stream: {type: embedded}" ;;
	kafka) echo "stream: {type: kafka, config: {brokers: [\"$KAFKA_BROKERS\"]}}" ;;
	ceiling) echo "" ;;
	*) echo "unknown stream $1: use embedded, kafka or ceiling" >&2; exit 2 ;;
	esac
}

for s in "${streams[@]}"; do
	rm -rf "$work/state"
	cat > "$work/tributary.yaml" <<YAML
version: 1
state_dir: $work/state
log: {level: warn, format: text}
admin: {address: 127.0.0.1:$ADMIN_PORT}
http: {address: 127.0.0.1:$PORT}
$(stream_yaml "$s")
catalog:
  - type: com.example.order.placed
    version: "1"
    description: A customer placed an order in the shop.
    schema:
      type: object
      required: [order_id, customer_id, total, currency]
      properties:
        order_id: {type: string, minLength: 1}
        customer_id: {type: string}
        total: {type: number, minimum: 0}
        currency: {type: string, pattern: "^[A-Z]{3}$"}
        lines: {type: integer, minimum: 0}
connectors:
  - name: bench_orders
    type: webhook
    config:
      path: /hooks/bench
      max_pending: 1000000
      max_pending_bytes: 1073741824
      verify: {preset: hmac, header: X-Signature, prefix: "sha256=", secrets: [bench-secret]}
      dedup: {header: X-Delivery-Id}
    emit:
      - name: order_placed
        when: payload.event == "order.placed"
        type: com.example.order.placed
        subject: payload.order.id
        partition_key: payload.order.id
        data:
          order_id: payload.order.id
          customer_id: payload.order.customer
          total: payload.order.total
          currency: payload.order.currency
          lines: len(payload.order.lines)
YAML
	if [ "$s" = ceiling ]; then
		"$work/httpceiling" -addr "127.0.0.1:$PORT" >"$work/sidecar.log" 2>&1 &
	else
		"$BIN" run -c "$work/tributary.yaml" >"$work/sidecar.log" 2>&1 &
	fi
	pid=$!
	for _ in $(seq 100); do
		code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url" -H 'Content-Type: application/json' \
			-H "X-Signature: $sig" -H "X-Delivery-Id: warmup-$s" --data-binary "@$work/body.json" || true)
		[ "$code" = 200 ] && break
		sleep 0.2
	done
	if [ "$code" != 200 ]; then
		echo "sidecar on $s stream did not accept a delivery (last status $code):" >&2
		cat "$work/sidecar.log" >&2
		exit 1
	fi
	if [ "$s" = ceiling ]; then
		echo "== ceiling: net/http reading the body and answering 200, nothing else"
	else
		echo "== $s stream: 1 KB JSON, HMAC-SHA256, 2xx once durable in the inbox"
	fi
	hz=$(getconf CLK_TCK)
	cpu0=$(awk '{print $14+$15}' "/proc/$pid/stat")
	if command -v wrk >/dev/null; then
		echo "-- wrk -t2 -c$CONNS -d$DURATION"
		wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$work/request.lua" "$url" >"$work/closed.out"
		grep -E 'Requests/sec|Non-2xx|Socket errors|^ +(50|90|99)%|requests in' "$work/closed.out"
		served=$(grep -o '[0-9]* requests in' "$work/closed.out" | grep -o '^[0-9]*' || true)
	else
		echo "-- webhookload -c $CONNS -d $DURATION"
		"$work/webhookload" -url "$url" -c "$CONNS" -d "$DURATION" -id-prefix "closed-$s" | tee "$work/closed.out"
		served=$(grep -o '2xx: [0-9]*' "$work/closed.out" | grep -o '[0-9]*$' || true)
	fi
	cpu1=$(awk '{print $14+$15}' "/proc/$pid/stat")
	# CPU of the server process only, over the closed-loop run: the load
	# generator's share of the two cores is not in it.
	awk -v n="${served:-0}" -v t="$((cpu1 - cpu0))" -v hz="$hz" 'BEGIN {
		if (n > 0) printf "-- server CPU %.0f us per request (closed loop, %d requests)\n", t/hz*1e6/n, n }'
	sleep 2 # let the stream drain the backlog before the latency run
	echo "-- webhookload -rate $RATE -d $DURATION (open loop)"
	"$work/webhookload" -url "$url" -c 512 -rate "$RATE" -d "$DURATION" -id-prefix "steady-$s"
	st=$(curl -s "http://127.0.0.1:$ADMIN_PORT/v1/connectors/bench_orders" || true)
	commits=$(grep -o '"inbox_commits": *[0-9]*' <<<"$st" | grep -o '[0-9]*$' || true)
	stored=$(grep -o '"inbox_stored": *[0-9]*' <<<"$st" | grep -o '[0-9]*$' || true)
	if [ -n "$commits" ] && [ "$commits" -gt 0 ]; then
		awk -v c="$commits" -v s="$stored" 'BEGIN {
			printf "-- inbox: %d deliveries in %d commits (%.1f per commit)\n", s, c, s/c }'
	fi
	kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
	if [ -n "${SIDECAR_LOG:-}" ]; then cp "$work/sidecar.log" "$SIDECAR_LOG.$s"; fi
done
