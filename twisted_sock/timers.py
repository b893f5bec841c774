"""
Delayed calls (timeouts, back-offs) as every part of twisted-sock cancels
them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall


def cancel_call(call: IDelayedCall | None) -> None:
    """
    Cancel a delayed call unless it is C{None}, has run or was cancelled.
    """
    if call is not None and call.active():
        call.cancel()
