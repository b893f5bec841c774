"""
The AMP commands between the main process and its workers (one
C{socketpair} per worker).

Main to worker: L{Snapshot} (its statistics); a reload in two phases:
L{Offer} (a listening socket the reload adds, as a descriptor), L{Prepare}
(everything that can fail, for the configuration file the main process
validated; nothing running changes), then L{Commit} (in force) or L{Abort}
(given up) in every worker; L{HandOver} (in an upgrade: the next
generation serves the listening sockets now). Worker to main: L{Ready}
(its listeners serve), L{Gather} (the whole service's status, for a status
page the worker serves). Stopping is a C{SIGTERM} (the worker drains).
"""

from __future__ import annotations

from twisted.protocols import amp


class Ready(amp.Command):
    arguments = [(b"pid", amp.Integer())]


class Snapshot(amp.Command):
    #: L{twisted_sock.workers.aggregate.pack} of the status dictionary and
    #: the worker's row.
    response = [(b"status", amp.String())]


class Gather(amp.Command):
    response = [(b"status", amp.String())]


class Offer(amp.Command):
    #: C{spec}: the listener (a L{twisted_sock.net.interfaces.ListenerSpec}
    #: as JSON); C{fd}: its socket for this worker.
    arguments = [(b"spec", amp.Unicode()), (b"fd", amp.Descriptor())]


class Prepare(amp.Command):
    #: C{path}: the configuration file (empty: the configuration in force,
    #: planned again); C{rows}: every socket's row of the shared counters,
    #: as JSON.
    arguments = [(b"path", amp.Unicode()), (b"rows", amp.Unicode())]
    response = [(b"result", amp.Unicode())]


class Commit(amp.Command):
    response = [(b"result", amp.Unicode())]


class Abort(amp.Command):
    pass


class HandOver(amp.Command):
    """
    The next generation's workers serve this worker's listening sockets:
    stop accepting on them at once, without shutting them down, filtering
    them or removing a socket file (a C{SIGTERM} follows: the drain).
    """
