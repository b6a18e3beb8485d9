#!/usr/bin/env bash
# Sink benchmark: Tributary's http sink beside a peer doing the same job.
# Fills a Kafka topic with N CloudEvents of about 1 KB of JSON data (64
# partition keys, 3 partitions, written by bench/sinkload through
# Tributary's own Kafka stream), then lets each consumer deliver the whole
# topic, through a consumer group of its own, as one POST per event to
# bench/sinkrecv, a receiver that reads each body and answers 200 at once,
# and prints events/s for each (first to last request at the receiver) and
# its CPU time per event:
#   tributary  bin/tributary run with one http sink (defaults: 16 Writes of
#              64 deliveries at once, 16 requests in flight, structured
#              CloudEvents, per-key order kept)
#   peer       the Benthos stream engine (github.com/redpanda-data/benthos/v4
#              v4.60.0, the MIT engine inside Redpanda Connect) with its
#              http_client output, max_in_flight 16, one request per message
#              (the record's value: the event's data), from a consumer-group
#              Kafka input on franz-go; see bench/sinkpeer. Redpanda Connect's
#              own module (github.com/redpanda-data/connect/v4, whose
#              kafka_franz input this replaces) is marked not for use on
#              this project's machines (not an open-source licence as a
#              whole), so it is not built here.
#
#   bench/sink.sh [tributary|peer ...]     default: tributary peer
#
# Environment: N (default 200000), KAFKA_BROKERS (default 127.0.0.1:9092),
# TRIBUTARY_BIN (default bin/tributary), PEER_CACHE (where the peer is built,
# default ${XDG_CACHE_HOME:-$HOME/.cache}/tributary-bench).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-200000}
KAFKA_BROKERS=${KAFKA_BROKERS:-127.0.0.1:9092}
BIN=${TRIBUTARY_BIN:-bin/tributary}
PEER_CACHE=${PEER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tributary-bench}
RECV_PORT=${RECV_PORT:-18090}
ADMIN_PORT=${ADMIN_PORT:-19465}
PEER_PORT=${PEER_PORT:-19466}
consumers=("$@")
[ ${#consumers[@]} -gt 0 ] || consumers=(tributary peer)

work=$(mktemp -d)
pid=""
rpid=""
cleanup() {
	for p in $pid $rpid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

echo "== building"
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/tributary
go build -o "$work/sinkload" ./bench/sinkload
go build -o "$work/sinkrecv" ./bench/sinkrecv
mkdir -p "$PEER_CACHE"
# The peer is its own module: the project's go.mod never requires it.
(cd bench/sinkpeer && go build -o "$PEER_CACHE/sinkpeer" .)

topic="bench-sink-$(date +%s)-$$"
echo "== filling $topic with $N events"
"$work/sinkload" -brokers "$KAFKA_BROKERS" -topic "$topic" -n "$N"

brokers_yaml=$(echo "$KAFKA_BROKERS" | sed 's/,/", "/g')
for c in "${consumers[@]}"; do
	case $c in
	tributary)
		cat > "$work/tributary.yaml" <<YAML
version: 1
state_dir: $work/state
log: {level: warn, format: text}
admin: {address: 127.0.0.1:$ADMIN_PORT}
http: {address: ""}
stream:
  type: kafka
  topics: {mode: single, name: $topic}
  config: {brokers: ["$brokers_yaml"]}
sinks:
  - name: bench_out
    type: http
    config: {url: "http://127.0.0.1:$RECV_PORT/orders"}
YAML
		cmd=("$BIN" run -c "$work/tributary.yaml")
		what="tributary: http sink through the sink runtime"
		;;
	peer)
		cat > "$work/peer.yaml" <<YAML
http: {address: 127.0.0.1:$PEER_PORT}
logger: {level: warn}
input:
  kafka_group:
    seed_brokers: ["$brokers_yaml"]
    topic: $topic
    consumer_group: bench-peer-$$
    max_batch: 64
output:
  http_client:
    url: http://127.0.0.1:$RECV_PORT/orders
    verb: POST
    headers: {Content-Type: application/json}
    max_in_flight: 16
YAML
		cmd=("$PEER_CACHE/sinkpeer" run "$work/peer.yaml")
		what="peer: Benthos http_client output from a Kafka consumer group"
		;;
	*) echo "unknown consumer $c: use tributary or peer" >&2; exit 2 ;;
	esac
	"$work/sinkrecv" -addr "127.0.0.1:$RECV_PORT" -n "$N" -timeout 10m >"$work/recv.out" &
	rpid=$!
	sleep 0.3
	"${cmd[@]}" >"$work/$c.log" 2>&1 &
	pid=$!
	hz=$(getconf CLK_TCK)
	cpu0=$(awk '{print $14+$15}' "/proc/$pid/stat")
	if ! wait "$rpid"; then
		echo "$c did not deliver every event:" >&2
		cat "$work/$c.log" >&2
		exit 1
	fi
	rpid=""
	cpu1=$(awk '{print $14+$15}' "/proc/$pid/stat")
	kill "$pid"; wait "$pid" 2>/dev/null || true
	pid=""
	echo "== $what"
	echo "$(cat "$work/recv.out"); $(awk -v t=$((cpu1 - cpu0)) -v hz="$hz" -v n="$N" 'BEGIN{printf "%.1f", t/hz*1e6/n}') µs CPU per event"
done
