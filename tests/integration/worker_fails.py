"""
A handler module whose import fails in worker 1 while the file named by
C{TWISTED_SOCK_TEST_FAIL_WORKER} exists (so a new generation's second
worker cannot start while its first serves); elsewhere an echo handler.
"""

from __future__ import annotations

import json
import os
import sys

from twisted.protocols.wire import Echo

_marker = os.environ.get("TWISTED_SOCK_TEST_FAIL_WORKER", "")
if (_marker and os.path.exists(_marker) and sys.argv[0].endswith("worker.py")
        and json.loads(sys.argv[1])["index"] == 1):
    raise ImportError("worker 1 fails on purpose (test)")

__all__ = ["Echo"]
