#!/usr/bin/env bash
# Webhook ingestion benchmark, side by side in one run: the same signed
# 1 KB JSON deliveries (each with its own delivery id) on loopback against
#
#   ceiling   bench/httpceiling, a net/http server that only reads the body
#             and answers 200: what the machine's HTTP stack allows at all
#   durable   bench/httpceiling -durable: the same, answering 200 only once
#             the body is fdatasynced, by the inbox's group commit (one
#             writer, at most one commit a millisecond): the floor of a
#             durable 2xx on this disk, with no other work
#   source    bench/webhooksource: the webhook connector alone (the bench
#             connector, its inbox, a reader acknowledging at once), with
#             no runtime and no stream (not in the default set)
#   peer      the Benthos engine v4.60.0 (the MIT core of Redpanda Connect,
#             built from the Go module proxy into $PEER_CACHE, as
#             bench/sink.sh does): http_server input, the HMAC-SHA256
#             checked in Bloblang (a mismatch is refused), file output (no
#             fsync). Redpanda Connect's own module is not built: it is
#             marked not for use here (see bench/sink.sh)
#   embedded  bin/tributary with one HMAC-SHA256 webhook connector on the
#             embedded stream, 2xx once the delivery is durable
#   kafka     the same on the Kafka stream (KAFKA_BROKERS)
#
#   bench/webhook.sh [ceiling|durable|source|peer|embedded|kafka ...]
#                       default: ceiling durable peer embedded kafka
#
# embedded and kafka take the connector's ack mode after a colon
# (embedded:inbox, kafka:stream; without one, $ACK, else the connector's
# default), so that both modes run side by side:
#
#   bench/webhook.sh ceiling peer embedded:inbox embedded:stream kafka:inbox kafka:stream
#
# Closed loop: wrk -t2 -c$CONNS with a Lua script giving each request its
# own delivery id. wrk is required (the script installs Debian's package
# when it is missing): a Go load generator on the same two cores takes
# most of the CPU and reports a quarter of what the servers do (19k req/s
# for the bare server against 70k+ under wrk). Then open loop at $RATE
# req/s with bench/webhookload (latency from each request's scheduled
# time). Each server's CPU per request is read from /proc over the closed
# loop. The summary at the end gives the ratios to the ceiling and to the
# peer.
# Environment: DURATION (default 15s), CONNS (default 64), RATE (default
# 5000), WARMUP (closed loop before the measured one, default 5s; 0 for
# none), KAFKA_BROKERS (default 127.0.0.1:9092), TRIBUTARY_BIN (default
# bin/tributary), PEER_CACHE (where the peer is built, default
# ${XDG_CACHE_HOME:-$HOME/.cache}/tributary-bench), SIDECAR_LOG (copy the
# sidecar's log to $SIDECAR_LOG.<stream>), ACK (the ack mode of servers
# named without one: inbox or stream), PROFILE_DIR (take a CPU profile of
# each Tributary server over the closed loop, from admin.debug's
# /debug/pprof/, into $PROFILE_DIR/<stream>.cpu.pprof, for go tool pprof,
# and the allocations over the same span into <stream>.allocs.pprof; then
# one over the open loop into <stream>.steady.cpu.pprof; a profile costs
# the server a few percent while it runs).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-15s}
CONNS=${CONNS:-64}
RATE=${RATE:-5000}
WARMUP=${WARMUP:-5s}
KAFKA_BROKERS=${KAFKA_BROKERS:-127.0.0.1:9092}
BIN=${TRIBUTARY_BIN:-bin/tributary}
PORT=${PORT:-18080}
ADMIN_PORT=${ADMIN_PORT:-19464}
ACK=${ACK:-}
PEER_CACHE=${PEER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tributary-bench}
streams=("$@")
[ ${#streams[@]} -gt 0 ] || streams=(ceiling durable peer embedded kafka)

if ! command -v wrk >/dev/null; then
	echo "installing wrk (Debian package)" >&2
	if [ "$(id -u)" = 0 ]; then
		apt-get install -y wrk >/dev/null
	else
		sudo apt-get install -y wrk >/dev/null
	fi
fi
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }

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
go build -o "$work/webhooksource" ./bench/webhooksource
peer_ok=""
if [[ " ${streams[*]} " == *" peer "* ]]; then
	mkdir -p "$PEER_CACHE"
	if (cd bench/sinkpeer && go build -o "$PEER_CACHE/sinkpeer" .); then
		peer_ok=1
	else
		echo "the peer (bench/sinkpeer, Benthos v4.60.0) did not build from the module proxy; running the rest" >&2
	fi
fi
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
	ceiling | durable | source | peer) echo "" ;;
	*) echo "unknown stream $1: use ceiling, durable, source, peer, embedded or kafka (with :inbox or :stream)" >&2; exit 2 ;;
	esac
}

declare -A rps cpu scpu p99 p999 rssmb load
for s in "${streams[@]}"; do
	if [ "$s" = peer ] && [ -z "$peer_ok" ]; then continue; fi
	typ=${s%%:*}
	ack=${s#*:}
	[ "$ack" != "$s" ] || ack=$ACK
	case $ack in
	"") ack_yaml="" ;;
	inbox | stream) ack_yaml="ack: $ack" ;;
	*) echo "unknown ack mode $ack in $s: use inbox or stream" >&2; exit 2 ;;
	esac
	rm -rf "$work/state"
	cat > "$work/tributary.yaml" <<YAML
version: 1
state_dir: $work/state
log: {level: warn, format: text}
admin: {address: 127.0.0.1:$ADMIN_PORT, debug: true}
http: {address: 127.0.0.1:$PORT}
$(stream_yaml "$typ")
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
      $ack_yaml
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
	cat > "$work/peer.yaml" <<YAML
http: {enabled: false}
logger: {level: WARN}
input:
  http_server:
    address: 127.0.0.1:$PORT
    path: /hooks/bench
    allowed_verbs: [POST]
pipeline:
  processors:
    # A mapping, not a mutation: a mutation's content() of a JSON body is
    # the document encoded again, whose bytes need not be the signed ones.
    - mapping: |
        root = if metadata("X-Signature") != "sha256=" + content().hash("hmac_sha256", "bench-secret").encode("hex") {
          throw("signature does not match")
        } else {
          content()
        }
# A delivery whose signature does not match is refused (502), not written.
output:
  reject_errored:
    file:
      path: $work/peer.jsonl
      codec: lines
YAML
	if [ "$s" = ceiling ]; then
		"$work/httpceiling" -addr "127.0.0.1:$PORT" >"$work/sidecar.log" 2>&1 &
	elif [ "$s" = durable ]; then
		"$work/httpceiling" -addr "127.0.0.1:$PORT" -durable "$work/state" >"$work/sidecar.log" 2>&1 &
	elif [ "$s" = source ]; then
		"$work/webhooksource" -addr "127.0.0.1:$PORT" -state "$work/state" >"$work/sidecar.log" 2>&1 &
	elif [ "$s" = peer ]; then
		"$PEER_CACHE/sinkpeer" run "$work/peer.yaml" >"$work/sidecar.log" 2>&1 &
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
	elif [ "$s" = durable ]; then
		echo "== durable: net/http answering 200 once the body is fdatasynced (group commit, 1 ms window), nothing else"
	elif [ "$s" = source ]; then
		echo "== source: the webhook connector alone, 2xx once durable in the inbox, acknowledged at once (no runtime, no stream)"
	elif [ "$s" = peer ]; then
		echo "== peer: Benthos v4.60.0 http_server, HMAC-SHA256 in Bloblang, file output (no fsync)"
	else
		mode=$(curl -s "http://127.0.0.1:$ADMIN_PORT/v1/connectors/bench_orders" | grep -o '"ack": *"[a-z]*"' | grep -o '[a-z]*"$' | tr -d '"' || true)
		case $mode in
		stream) what="2xx once its events are durable on the stream (ack: stream, no inbox write)" ;;
		inbox) what="2xx once durable in the inbox (ack: inbox)" ;;
		*) what="2xx once durable" ;;
		esac
		echo "== $s: $typ stream, 1 KB JSON, HMAC-SHA256, $what"
	fi
	# A warm-up under the same load, not counted: a server's first seconds
	# (heap growth, caches, and on Kafka the broker's JIT compiler, which
	# on a freshly started broker took up to three times the CPU per event
	# of a warm one, on the same two cores) are not its steady state.
	if [ "$WARMUP" != 0 ]; then
		echo "-- warm-up: wrk -t2 -c$CONNS -d$WARMUP (not counted)"
		wrk -t2 -c"$CONNS" -d"$WARMUP" -s "$work/request.lua" "$url" >/dev/null
		sleep 2 # let the stream drain the warm-up's backlog
	fi
	# The peak RSS through start-up and the warm-up, then the peak is
	# reset (clear_refs 5), so that the measured runs' own peak shows
	# beside it: a stream slow to take its first events (a broker's first
	# produce) queues a backlog in memory during the warm-up.
	warm_rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$pid/status" 2>/dev/null || true)
	echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || warm_rss=""
	# The machine's other load moves every figure: say what it was.
	load0=$(cut -d' ' -f1 /proc/loadavg)
	hz=$(getconf CLK_TCK)
	cpu0=$(awk '{print $14+$15}' "/proc/$pid/stat")
	echo "-- wrk -t2 -c$CONNS -d$DURATION"
	profiling=""
	if [ -n "${PROFILE_DIR:-}" ] && [ "$s" != ceiling ] && [ "$s" != durable ] && [ "$s" != source ] && [ "$s" != peer ]; then
		mkdir -p "$PROFILE_DIR"
		secs=$(( $(echo "$DURATION" | tr -dc '0-9') - 2 ))
		[ "$secs" -ge 1 ] || secs=1
		(sleep 1; curl -sf -o "$PROFILE_DIR/${s//:/-}.cpu.pprof" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/profile?seconds=$secs" &
			curl -sf -o "$PROFILE_DIR/${s//:/-}.allocs.pprof" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/allocs?seconds=$secs" &
			wait) &
		profiling=$!
	fi
	wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$work/request.lua" "$url" >"$work/closed.out"
	if [ -n "$profiling" ]; then
		wait "$profiling"
		if [ -s "$PROFILE_DIR/${s//:/-}.cpu.pprof" ]; then
			echo "-- CPU profile: go tool pprof -top $BIN $PROFILE_DIR/${s//:/-}.cpu.pprof"
			echo "-- allocations over the same span: go tool pprof -sample_index=alloc_space -top $BIN $PROFILE_DIR/${s//:/-}.allocs.pprof"
		else
			echo "-- no CPU profile (admin.debug's /debug/pprof/ did not answer)"
		fi
	fi
	grep -E 'Requests/sec|Non-2xx|Socket errors|^ +(50|90|99)%|requests in' "$work/closed.out"
	served=$(grep -o '[0-9]* requests in' "$work/closed.out" | grep -o '^[0-9]*' || true)
	cpu1=$(awk '{print $14+$15}' "/proc/$pid/stat")
	rps[$s]=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$work/closed.out")
	# CPU of the server process only, over the closed-loop run: the load
	# generator's share of the two cores is not in it.
	cpu[$s]=$(awk -v n="${served:-0}" -v t="$((cpu1 - cpu0))" -v hz="$hz" 'BEGIN {
		if (n > 0) printf "%.0f", t/hz*1e6/n }')
	echo "-- server CPU ${cpu[$s]} us per request (closed loop, $served requests)"
	sleep 2 # let the stream drain the backlog before the latency run
	echo "-- webhookload -rate $RATE -d $DURATION (open loop)"
	cpu2=$(awk '{print $14+$15}' "/proc/$pid/stat")
	profiling=""
	if [ -n "${PROFILE_DIR:-}" ] && [ "$s" != ceiling ] && [ "$s" != durable ] && [ "$s" != source ] && [ "$s" != peer ]; then
		(sleep 1; curl -sf -o "$PROFILE_DIR/${s//:/-}.steady.cpu.pprof" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/profile?seconds=$secs") &
		profiling=$!
	fi
	"$work/webhookload" -url "$url" -c 512 -rate "$RATE" -d "$DURATION" -id-prefix "steady-$s" | tee "$work/open.out"
	if [ -n "$profiling" ]; then
		wait "$profiling" && echo "-- CPU profile at $RATE req/s: go tool pprof -top $BIN $PROFILE_DIR/${s//:/-}.steady.cpu.pprof" || true
	fi
	cpu3=$(awk '{print $14+$15}' "/proc/$pid/stat")
	# CPU per request at the steady rate too: the batches every stage
	# forms (group commits, reads, publishes) are smaller than under the
	# closed loop, so the per-delivery cost differs.
	steady=$(grep -o '^2xx: [0-9]*' "$work/open.out" | grep -o '[0-9]*$' || true)
	scpu[$s]=$(awk -v n="${steady:-0}" -v t="$((cpu3 - cpu2))" -v hz="$hz" 'BEGIN {
		if (n > 0) printf "%.0f", t/hz*1e6/n }')
	echo "-- server CPU ${scpu[$s]} us per request (open loop, ${steady:-0} answered 2xx)"
	p99[$s]=$(grep -o 'p99 [^ ]*' "$work/open.out" | head -n1 | cut -d' ' -f2)
	p999[$s]=$(grep -o 'p99.9 [^ ]*' "$work/open.out" | head -n1 | cut -d' ' -f2)
	rss=$(awk '/VmHWM/ {printf "%.0f MB", $2/1024}' "/proc/$pid/status" 2>/dev/null || true)
	if [ -n "$warm_rss" ] && [ -n "$rss" ]; then
		echo "-- peak RSS $rss over the measured runs, $warm_rss MB through start-up and the warm-up"
		[ "${rss% MB}" -ge "$warm_rss" ] || rss="$warm_rss MB"
	fi
	[ -z "$rss" ] || echo "-- peak RSS $rss"
	# What the RSS is made of once the load ends: the binary's file pages
	# count in it, and are shared and reclaimable.
	awk '/^Rss(Anon|File|Shmem):/ {printf "%s%s %.0f MB", sep, $1, $2/1024; sep=", "} END {if (sep) print ""}' "/proc/$pid/status" 2>/dev/null | sed 's/^/-- RSS after the load: /' || true
	rssmb[$s]=${rss% MB}
	load[$s]="$load0-$(cut -d' ' -f1 /proc/loadavg)"
	echo "-- load average ${load[$s]} (1 min, start-end of this server's runs)"
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

echo
echo "== summary (closed loop req/s and server CPU per request; at $RATE req/s: CPU per request, p99 and p99.9; peak RSS, load average; ratios to the ceiling and to the peer)"
for s in "${streams[@]}"; do
	[ -n "${rps[$s]:-}" ] || continue
	awk -v s="$s" -v r="${rps[$s]}" -v c="${cpu[$s]:-?}" -v sc="${scpu[$s]:-?}" -v p="${p99[$s]:-?}" -v p9="${p999[$s]:-?}" -v m="${rssmb[$s]:-?}" -v l="${load[$s]:-?}" -v ceil="${rps[ceiling]:-0}" -v peer="${rps[peer]:-0}" 'BEGIN {
		line = sprintf("%-15s %7d req/s  %4s us/req  steady %4s us/req  p99 %-8s p99.9 %-8s %4s MB  load %-9s", s, r, c, sc, p, p9, m, l)
		if (ceil > 0) line = line sprintf("  %.2fx ceiling", r/ceil)
		if (peer > 0) line = line sprintf("  %.2fx peer", r/peer)
		print line }'
done
