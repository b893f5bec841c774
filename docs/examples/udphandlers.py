"""
Datagram handlers for the UDP examples.

Put this module on the Python path (PYTHONPATH=docs/examples) and name its
objects as "udphandlers:NAME" in the configuration.
"""

from twisted.internet.protocol import DatagramProtocol


class Upper(DatagramProtocol):
    """
    A DatagramProtocol class: handler = "udphandlers:Upper". twisted-sock
    makes one instance per listener.
    """

    def datagramReceived(self, data, addr):
        self.transport.write(data.upper(), addr)


class Counter(DatagramProtocol):
    """Answers each datagram with how many this listener has seen."""

    def __init__(self, label):
        self.label = label
        self.seen = 0

    def datagramReceived(self, data, addr):
        self.seen += 1
        self.transport.write(f"{self.label} #{self.seen}: {len(data)} bytes\n".encode(), addr)


def make_counter():
    """A zero-argument factory: handler = "udphandlers:make_counter"."""
    return Counter("counter")
