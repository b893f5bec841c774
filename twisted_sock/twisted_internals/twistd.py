"""
twistd's private start-up handshake: a daemonized twistd's launching
process waits on a pipe (the C{statusPipe} entry of twistd's options) and
prints what it reads; it expects C{"1 "} before a failure's message.
"""

from __future__ import annotations

import os
from typing import Any


def report_start_failure(config: Any, message: str) -> None:
    """
    Tell the launching twistd (when daemonized) why the start failed.
    """
    status_pipe = config.get("statusPipe")
    if status_pipe is not None:
        # Daemonized: the launching twistd waits on this pipe and
        # prints what it reads (it expects "1 " before the message).
        try:
            os.write(status_pipe, b"1 " + message.encode("utf-8", "replace")[:98])
            os.close(status_pipe)
        except OSError:
            pass
