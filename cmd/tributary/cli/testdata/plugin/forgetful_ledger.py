#!/usr/bin/env python3
"""The Python ledger sink with one defect, for the `plugin test` test: it
reports every posting delivered but writes only every other one, as a
sink that answers before its target took the event would."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "..", "examples", "plugin-python-sink"))

import ledger_sink  # noqa: E402


class Forgetful(ledger_sink.Ledger):
    def __init__(self):
        super().__init__()
        self.count = 0

    def write(self, deliveries):
        kept = []
        for d in deliveries:
            self.count += 1
            if self.count % 2:
                kept.append(d)
        super().write(kept)
        return [{"status": "delivered"} for _ in deliveries]


if __name__ == "__main__":
    ledger_sink.Session(Forgetful()).run()
