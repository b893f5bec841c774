"""
A handler for a new generation whose second worker cannot start while its
first serves: while the file named by C{TWISTED_SOCK_TEST_FAIL_WORKER}
exists, building the handler's factory in worker 1 waits (bounded) for
the file C{NAME.go} and then fails. Elsewhere an echo handler. (In the
worker, not at import: the workers are forked from a process that has
imported the module already.)
"""

from __future__ import annotations

import json
import os
import sys
import time

from twisted.internet.protocol import Factory
from twisted.protocols.wire import Echo


def make() -> Factory:
    marker = os.environ.get("TWISTED_SOCK_TEST_FAIL_WORKER", "")
    if (marker and os.path.exists(marker) and sys.argv[0].endswith("worker.py")
            and json.loads(sys.argv[1])["index"] == 1):
        deadline = time.monotonic() + 60
        while not os.path.exists(marker + ".go") and time.monotonic() < deadline:
            time.sleep(0.05)
        raise RuntimeError("worker 1 fails on purpose (test)")
    return Factory.forProtocol(Echo)


__all__ = ["Echo", "make"]
