"""
When to restart a worker that ended (pure): at once after a long life,
with a doubling delay (up to L{MAX_DELAY}) when it keeps dying young.
"""

from __future__ import annotations

#: A worker that lived this many seconds was not crash-looping.
HEALTHY_LIFE = 10.0
FIRST_DELAY = 1.0
MAX_DELAY = 30.0
#: The restart delay of a worker that lived long.
AT_ONCE = 0.1


def restart_delay(lived: float, previous: float) -> float:
    """
    Seconds to wait before the next start of a worker that lived C{lived}
    seconds and was started C{previous} seconds after its predecessor.
    """
    if lived >= HEALTHY_LIFE:
        return AT_ONCE
    return min(MAX_DELAY, max(FIRST_DELAY, previous * 2))
