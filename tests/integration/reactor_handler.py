"""
A handler module that imports the reactor when it is imported, as much
Twisted code does: the fork server must not import it (the workers forked
from it would share the reactor's descriptors).
"""

from __future__ import annotations

from twisted.internet import reactor  # noqa: F401 - the point of this module
from twisted.internet.protocol import Factory
from twisted.protocols.wire import Echo

factory = Factory.forProtocol(Echo)
