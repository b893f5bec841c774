"""
Rates over the last seconds: a small ring of per-socket counter samples,
taken once a second, and the rates between the oldest sample in the window
and a snapshot.
"""

from __future__ import annotations

from collections import deque

from twisted_sock.stats import ServiceStatistics, SocketStatistics

#: What the status page shows a rate of, per socket.
RATE_FIGURES = ("accepted", "refused", "bytes_in", "bytes_out")


def _figures(sock: SocketStatistics) -> tuple[int, int, int, int]:
    """
    The counters rates are taken of: refusals include the UDP kernel drops;
    bytes are those of the ended and the listed open connections.
    """
    return (sock.accepted, sock.refused + (sock.kernel_drops or 0),
            sock.bytes_in + sum(c.bytes_in or 0 for c in sock.open),
            sock.bytes_out + sum(c.bytes_out or 0 for c in sock.open))


class Rates:
    """
    Samples of a service's counters over the last C{window} seconds.
    """

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, dict[str, tuple[int, int, int, int]]]] = deque(
            maxlen=int(window) + 2)

    def sample(self, now: float, stats: ServiceStatistics) -> None:
        self._samples.append((now, {s.name: _figures(s) for s in stats.sockets}))

    def rates(self, now: float, stats: ServiceStatistics) -> dict[str, dict[str, float]]:
        """
        Per socket name, the per-second rate of each of L{RATE_FIGURES}
        since the oldest sample at most C{window} seconds old; none before
        the first sample or for a socket not sampled then.
        """
        base = next(((t, s) for t, s in self._samples if now - t <= self.window + 0.5), None)
        if base is None or now - base[0] <= 0:
            return {}
        then, old = base
        out = {}
        for sock in stats.sockets:
            if sock.name in old:
                deltas = zip(_figures(sock), old[sock.name], strict=True)
                out[sock.name] = {k: max(0, new - was) / (now - then)
                                  for k, (new, was) in zip(RATE_FIGURES, deltas, strict=True)}
        return out
