"""
The C{[sock] workers} value: how many worker processes serve the listeners.
"""

from __future__ import annotations

import os
from typing import Any


def parse_workers(value: Any, cpus: int | None = None) -> int:
    """
    A positive integer, or C{"auto"}: the number of CPUs (C{cpus}, default
    the machine's). C{1} is a single process (no workers).

    @raise ValueError: with the one-line reason.
    """
    if isinstance(value, str) and value.strip().lower() == "auto":
        return max(1, cpus if cpus is not None else (os.cpu_count() or 1))
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"workers must be a positive integer or \"auto\", not {value!r}")
    return value
