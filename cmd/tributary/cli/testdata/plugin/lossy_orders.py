#!/usr/bin/env python3
"""The Python example plugin (examples/plugin-python) with one defect, for
the tests of `tributary plugin test`: reopened from a committed row, it
resumes five rows too far, so the rows after the checkpoint that were read
but not yet committed are lost. The conformance kit must fail it."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "..", "examples", "plugin-python"))

import orders_plugin  # noqa: E402


class LossyExport(orders_plugin.OrdersExport):
    def open(self, position, state_dir):
        super().open(position, state_dir)
        if position:
            for _ in range(5):
                if self.f.readline().endswith("\n"):
                    self.row += 1


if __name__ == "__main__":
    orders_plugin.Session(LossyExport()).run()
