#!/usr/bin/env python3
"""A Tributary sink plugin in Python, speaking the sink role of the JSON
Lines protocol (plugin/PROTOCOL.md, "Sinks") on stdin and stdout. Standard
library only.

It stands for a legacy ledger that takes postings as lines of a file: each
delivered event becomes one JSON line {"id", "type", "subject", "posting"},
where posting is the sink's map (or the event's data), its amounts with a
fraction written as exact decimal strings ("129.90"). The event id goes
with every line, so a reader can drop the duplicates a redelivery brings.
An event whose posting has no "account" is refused for good (it goes to
the dead-letter topic); a file that cannot be written is retried.

It answers the "target" test hooks, so that `tributary plugin test` can run
the sink conformance kit against it: "received" lists the ids in the file,
"fail" and "refuse" make given ids fail until "recover".

Sidecar configuration:

    sinks:
      - name: ledger
        type: plugin
        events: ["com.example.invoice.*"]
        map:
          account: event.data.customer_id
          amount: event.data.total
        config:
          command: python3
          args: [examples/plugin-python-sink/ledger_sink.py]
          transport: jsonl
          config:
            file: /srv/ledger/postings.jsonl
"""

import json
import os
import select
import sys
import time

PROTOCOLS = (2, 1)


def log(level, msg, **attrs):
    sys.stderr.write(json.dumps({"level": level, "msg": msg, **attrs}) + "\n")
    sys.stderr.flush()


class Ledger:
    """The sink: configure, open, write, the target hooks, close."""

    def __init__(self):
        self.path = None
        self.require_account = True
        self.failing = set()
        self.refusing = set()

    def configure(self, name, config):
        problems = []
        self.path = config.get("file")
        if not isinstance(self.path, str) or not self.path:
            problems.append({"path": "file", "message": "is required: the file the postings are appended to"})
        self.require_account = bool(config.get("require_account", True))
        return problems

    def open(self, state_dir):
        if not os.path.isabs(self.path) and state_dir:
            self.path = os.path.join(state_dir, self.path)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self.failing, self.refusing = set(), set()

    def write(self, deliveries):
        """Returns one result per delivery. Once a delivery of a key is
        not delivered, the later ones of that key are not attempted."""
        results, held, lines = [], set(), []
        for d in deliveries:
            event = d.get("event") or {}
            key = event.get("partitionkey", "")
            posting = d.get("data", event.get("data"))
            if key in held:
                results.append({"status": "retry"})
                continue
            if event.get("id") in self.refusing:
                results.append({"status": "failed", "error": "refused by the test target"})
            elif event.get("id") in self.failing:
                results.append({"status": "retry", "error": "failing by the test target"})
            elif self.require_account and not (isinstance(posting, dict) and posting.get("account")):
                results.append({"status": "failed", "error": "the posting has no account", "response": json.dumps(posting)[:200]})
            else:
                lines.append(json.dumps({"id": event.get("id"), "type": event.get("type"),
                                         "subject": event.get("subject"), "posting": posting},
                                        separators=(",", ":")))
                results.append({"status": "delivered"})
            if results[-1]["status"] != "delivered":
                held.add(key)
        if lines:
            try:
                with open(self.path, "a") as f:
                    f.write("\n".join(lines) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                # Nothing of this write is known to be in the file.
                return [{"status": "retry", "error": "append to %s: %s" % (self.path, e)} if r["status"] == "delivered" else r
                        for r in results]
        return results

    def received(self):
        try:
            with open(self.path) as f:
                return [json.loads(line)["id"] for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def stage(self, mode, ids):
        if mode == "fail":
            self.failing.update(ids)
        elif mode == "refuse":
            self.refusing.update(ids)
        elif mode == "recover":
            self.failing, self.refusing = set(), set()
        else:
            raise ValueError("unknown target mode %r" % mode)


class Session:
    """The protocol: handshake, configure, open, then writes answered with
    results, in the order they come (this plugin writes one at a time)."""

    def __init__(self, sink):
        self.sink = sink
        self.buf = b""
        self.heartbeat = 1.0
        self.last_send = time.monotonic()

    def send(self, msg):
        sys.stdout.write(json.dumps(msg, separators=(",", ":")) + "\n")
        sys.stdout.flush()
        self.last_send = time.monotonic()

    def messages(self, timeout):
        """Yields the messages that arrive within timeout; None on EOF."""
        ready, _, _ = select.select([0], [], [], timeout)
        if ready:
            data = os.read(0, 1 << 20)
            if not data:
                yield None
                return
            self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if line.strip():
                # Numbers with a fraction stay the exact text the sidecar
                # sent (129.90, not the float 129.9): a ledger keeps amounts
                # exact, and writes them as decimal strings.
                yield json.loads(line, parse_float=str)

    def handle(self, msg):
        """Handles one message; returns False when the session ends."""
        kind = msg.get("type")
        if kind == "hello":
            if msg.get("role") != "sink":
                self.send({"type": "error", "fatal": True,
                           "error": "this is a sink plugin: name it in the sinks section, as a sink of type plugin"})
                return False
            common = [v for v in PROTOCOLS if v in msg.get("protocols", [])]
            if not common:
                self.send({"type": "error", "fatal": True,
                           "error": "sidecar speaks plugin protocols %s, this plugin speaks %s" % (msg.get("protocols"), list(PROTOCOLS))})
                return False
            self.send({"type": "hello", "protocol": common[0], "role": "sink", "capabilities": ["target"]})
        elif kind == "configure":
            self.send({"type": "configured", "problems": self.sink.configure(msg.get("name"), msg.get("config") or {})})
        elif kind == "open":
            self.heartbeat = msg.get("heartbeat_ms", 1000) / 1000.0
            try:
                self.sink.open(msg.get("state_dir"))
            except Exception as e:  # reported to the sidecar, which retries
                self.send({"type": "opened", "error": str(e)})
                return True
            self.send({"type": "opened"})
        elif kind == "write":
            self.send({"type": "results", "n": msg.get("n"), "results": self.sink.write(msg.get("deliveries") or [])})
        elif kind == "target":
            mode = msg.get("mode")
            reply = {"type": "target", "mode": mode}
            try:
                if mode == "received":
                    reply["ids"] = self.sink.received()
                else:
                    self.sink.stage(mode, msg.get("ids") or [])
            except Exception as e:
                reply["error"] = str(e)
            self.send(reply)
        elif kind == "close":
            self.send({"type": "closed"})
            return False
        # cancel: writes are answered before the next message is read, so
        # there is never one to cancel. Unknown types come from newer
        # sidecars: ignore them.
        return True

    def run(self):
        while True:
            for msg in self.messages(self.heartbeat / 2):
                if msg is None or not self.handle(msg):
                    return
            if time.monotonic() - self.last_send >= self.heartbeat / 2:
                self.send({"type": "heartbeat"})


if __name__ == "__main__":
    if os.environ.get("TRIBUTARY_PLUGIN") != "source-v1":
        sys.stderr.write("This program is a Tributary sink plugin: name it in a sidecar configuration.\n")
        sys.exit(1)
    Session(Ledger()).run()
