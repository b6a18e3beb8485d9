#!/usr/bin/env python3
"""A Tributary connector plugin in Python, speaking the JSON Lines protocol
(plugin/PROTOCOL.md, version 2 or 1: the two are the same over JSON Lines) on stdin and stdout. Standard library only.

It follows a CSV export that a legacy order system appends to:

    id,status,total,currency
    SO-1001,ACCEPTED,129.90,EUR

Each row becomes a "create" change whose position is the row number, so a
restart resumes after the last committed row. Logs go to stderr as JSON
lines, which the sidecar forwards to its own log under the plugin's name.

Sidecar configuration:

    connectors:
      - name: legacy_orders
        type: plugin
        config:
          command: python3
          args: [examples/plugin-python/orders_plugin.py]
          transport: jsonl
          config:
            file: /data/exports/orders.csv
"""

import base64
import csv
import json
import os
import select
import sys
import time

# The protocol versions this plugin speaks, newest first. Over JSON Lines
# versions 1 and 2 are the same; 2 changed only the gRPC transport.
PROTOCOLS = (2, 1)
COLUMNS = ["id", "status", "total", "currency"]


def log(level, msg, **attrs):
    sys.stderr.write(json.dumps({"level": level, "msg": msg, **attrs}) + "\n")
    sys.stderr.flush()


def encode_position(n):
    return {"v": 1, "d": base64.b64encode(str(n).encode()).decode()}


def decode_position(p):
    if p.get("v") != 1:
        raise ValueError("position version %r, this plugin reads version 1" % p.get("v"))
    return int(base64.b64decode(p["d"]).decode())


class OrdersExport:
    """The source: configure, open, poll, ack, produce, close."""

    def __init__(self):
        self.path = None
        self.poll_interval = 1.0
        self.batch_size = 500
        self.f = None
        self.row = 0  # rows read, header excluded

    def configure(self, name, config):
        problems = []
        known = {"file", "poll_interval_ms", "batch_size"}
        for key in sorted(set(config) - known):
            problems.append({"path": key, "message": "unknown key; known keys are %s" % ", ".join(sorted(known))})
        self.path = config.get("file")
        if not isinstance(self.path, str) or not self.path:
            problems.append({"path": "file", "message": "is required: the path of the CSV export"})
        interval = config.get("poll_interval_ms", 1000)
        if not isinstance(interval, int) or interval <= 0:
            problems.append({"path": "poll_interval_ms", "message": "must be a positive number of milliseconds"})
        else:
            self.poll_interval = interval / 1000.0
        batch = config.get("batch_size", 500)
        if not isinstance(batch, int) or batch <= 0:
            problems.append({"path": "batch_size", "message": "must be a positive integer"})
        else:
            self.batch_size = batch
        return problems

    def open(self, position, state_dir):
        if not os.path.isabs(self.path):
            # A relative file lives in the connector's state directory.
            self.path = os.path.join(state_dir or ".", self.path)
        self.row = decode_position(position) if position else 0
        if not os.path.exists(self.path):
            with open(self.path, "w", newline="") as f:
                f.write(",".join(COLUMNS) + "\n")
        self.f = open(self.path, "r", newline="")
        header = self.f.readline()
        if header.strip().split(",") != COLUMNS:
            raise ValueError("%s: header %r, want %s" % (self.path, header.strip(), ",".join(COLUMNS)))
        for _ in range(self.row):
            self.f.readline()
        log("info", "export opened", file=self.path, from_row=self.row)

    def poll(self, limit):
        changes = []
        while len(changes) < limit:
            at = self.f.tell()
            line = self.f.readline()
            if not line.endswith("\n"):
                self.f.seek(at)  # nothing new, or a row still being written
                break
            self.row += 1
            rec = dict(zip(COLUMNS, next(csv.reader([line]))))
            changes.append({
                "op": "create",
                "key": {"id": rec["id"]},
                "after": rec,
                "source": {"system": "legacy_orders", "table": "orders.csv"},
                "position": encode_position(self.row),
                "raw": base64.b64encode(line.rstrip("\n").encode()).decode(),
            })
        return changes

    def ack(self, position):
        pass  # the export belongs to the legacy system: nothing to release

    def produce(self, n):
        with open(self.path, "a", newline="") as f:
            for i in range(n):
                f.write("SO-%d-%d,ACCEPTED,%d.90,EUR\n" % (os.getpid(), int(time.time() * 1e6) + i, 10 + i))

    def close(self):
        if self.f:
            self.f.close()
            self.f = None


class Session:
    """The protocol: handshake, configure, open, then changes under credits."""

    def __init__(self, source):
        self.source = source
        self.buf = b""
        self.credits = 0
        self.heartbeat = 1.0
        self.last_send = time.monotonic()
        self.opened = False
        self.failed = False

    def send(self, msg):
        sys.stdout.write(json.dumps(msg, separators=(",", ":")) + "\n")
        sys.stdout.flush()
        self.last_send = time.monotonic()

    def messages(self, timeout):
        """Yields the messages that arrive within timeout; None on EOF."""
        ready, _, _ = select.select([0], [], [], timeout)
        if ready:
            data = os.read(0, 1 << 16)
            if not data:
                yield None
                return
            self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)

    def handle(self, msg):
        """Handles one message; returns False when the session ends."""
        kind = msg.get("type")
        if kind == "hello":
            offered = msg.get("protocols", [])
            common = [v for v in PROTOCOLS if v in offered]
            if not common:
                self.send({"type": "error", "fatal": True,
                           "error": "sidecar speaks plugin protocols %s, this plugin speaks %s: upgrade the older of the two" % (offered, list(PROTOCOLS))})
                return False
            self.send({"type": "hello", "protocol": common[0], "capabilities": ["produce"]})
        elif kind == "configure":
            self.send({"type": "configured", "problems": self.source.configure(msg.get("name"), msg.get("config") or {})})
        elif kind == "open":
            self.credits = msg.get("credits", 0)
            self.heartbeat = msg.get("heartbeat_ms", 1000) / 1000.0
            try:
                self.source.open(msg.get("position"), msg.get("state_dir"))
            except Exception as e:  # reported to the sidecar, which retries
                self.send({"type": "opened", "error": str(e)})
                return True
            self.opened = True
            self.send({"type": "opened"})
        elif kind == "credit":
            self.credits += msg.get("n", 0)
        elif kind == "ack":
            self.source.ack(msg.get("position"))
        elif kind == "produce":
            self.source.produce(msg.get("n", 0))
            self.send({"type": "produced", "n": msg.get("n", 0)})
        elif kind == "close":
            self.source.close()
            self.send({"type": "closed"})
            return False
        # Unknown types come from newer sidecars: ignore them.
        return True

    def run(self):
        idle = False
        while True:
            ready = self.opened and self.credits > 0 and not self.failed
            wait = min(self.source.poll_interval, self.heartbeat / 2) if idle or not ready else 0
            for msg in self.messages(wait):
                if msg is None or not self.handle(msg):
                    self.source.close()
                    return
            ready = self.opened and self.credits > 0 and not self.failed
            idle = False
            if ready:
                try:
                    changes = self.source.poll(min(self.credits, self.source.batch_size))
                except Exception as e:
                    self.send({"type": "error", "error": "read %s: %s" % (self.source.path, e)})
                    self.failed = True
                    changes = []
                if changes:
                    self.credits -= len(changes)
                    self.send({"type": "changes", "changes": changes})
                idle = not changes
            if time.monotonic() - self.last_send >= self.heartbeat / 2:
                self.send({"type": "heartbeat"})


if __name__ == "__main__":
    if os.environ.get("TRIBUTARY_PLUGIN") != "source-v1":
        sys.stderr.write("This program is a Tributary connector plugin: name it in a sidecar configuration.\n")
        sys.exit(1)
    Session(OrdersExport()).run()
