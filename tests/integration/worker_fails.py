"""
A handler module for a new generation whose second worker cannot start
while its first serves: while the file named by
C{TWISTED_SOCK_TEST_FAIL_WORKER} exists, its import in worker 1 waits
(bounded) for the file C{NAME.go} and then fails. Elsewhere an echo
handler.
"""

from __future__ import annotations

import json
import os
import sys
import time

from twisted.protocols.wire import Echo

_marker = os.environ.get("TWISTED_SOCK_TEST_FAIL_WORKER", "")
if (_marker and os.path.exists(_marker) and sys.argv[0].endswith("worker.py")
        and json.loads(sys.argv[1])["index"] == 1):
    _deadline = time.monotonic() + 60
    while not os.path.exists(_marker + ".go") and time.monotonic() < _deadline:
        time.sleep(0.05)
    raise ImportError("worker 1 fails on purpose (test)")

__all__ = ["Echo"]
