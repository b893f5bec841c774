"""
The UDP incoming decision and its kernel prefilter, watched through
statistics(): where a refused datagram is dropped (kernel or Python), and
how run-time changes re-attach the prefilter.

Run it with:  python docs/examples/udp_prefilter.py
"""

import socket

from twisted.internet import defer, task, threads

from twisted_sock import SocketConfig, SockService


def send_from(source, port):
    """Send one datagram from `source`; the answer, or None after 0.5 s."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.bind((source, 0))
        s.sendto(b"ping", ("127.0.0.1", port))
        try:
            return s.recv(100)
        except TimeoutError:
            return None


@defer.inlineCallbacks
def round_trip(live, port, title):
    print(title)
    for source in ("127.0.0.1", "127.0.0.2"):
        answer = yield threads.deferToThread(send_from, source, port)
        print(f"  from {source}: {'answered' if answer else 'dropped'}")
    stats = live.statistics()
    li = stats.listeners[0]
    print(f"  prefilter={li.prefilter} kernel_drops={li.kernel_drops} datagrams={li.datagrams}"
          f" | accepted={stats.accepted} refused={stats.refused}")


@defer.inlineCallbacks
def main(reactor):
    for prefilter in (True, False):
        config = SocketConfig(name="sensors", protocol="udp", local_ports=[0],
                              interfaces="lo", incoming="specific-ip-any-port",
                              target_ip="127.0.0.2", prefilter=prefilter)
        service = SockService([config], reactor=reactor)
        service.startService()
        live = service.sockets["sensors"]
        port = live.statistics().listeners[0].port
        yield round_trip(live, port, f"prefilter = {str(prefilter).lower()}, target_ip 127.0.0.2:")
        if prefilter:
            yield live.reconfigure(incoming="any-ip-any-port")
            yield round_trip(live, port, "after reconfigure(incoming='any-ip-any-port'):")
            service.incoming_enabled = False
            yield round_trip(live, port, "master switch off:")
        yield service.stopService()


if __name__ == "__main__":
    task.react(main)
