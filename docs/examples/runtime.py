"""
Run-time changes from Python: ports moved while a connection stays open,
a change that cannot bind (nothing changes), a key that needs a restart,
sockets added and removed with apply_config, and a rename (the listener
is handed over).
Run it with:  python docs/examples/runtime.py
"""

import socket

from twisted.internet import defer, task, threads

from twisted_sock import BindError, ConfigError, ServiceConfig, SocketConfig, SockService


def ask(port, text=b"ping", held=None):
    """Send text to 127.0.0.1:port and return the echo (or what went wrong)."""
    s = held or socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(text)
        return s.recv(100)
    except OSError as e:
        return type(e).__name__
    finally:
        if held is None:
            s.close()


def ports(service, name):
    return sorted({li.port for li in service.sockets[name].statistics().listeners})


async def main(reactor):
    data = SocketConfig(name="data", incoming="any-ip-any-port", interfaces="lo",
                        local_ports="18711")
    service = SockService([data])
    service.startService()
    live = service.sockets["data"]

    held = socket.create_connection(("127.0.0.1", 18711), timeout=5)
    print("held on 18711:", await threads.deferToThread(ask, 18711, b"before", held))

    await live.reconfigure(local_ports="18712")
    print("after reconfigure(local_ports='18712'): listening on", ports(service, "data"))
    print("  held connection:", await threads.deferToThread(ask, 18711, b"still here", held))
    try:
        await threads.deferToThread(ask, 18711)
    except ConnectionRefusedError:
        print("  new connection to 18711: ConnectionRefusedError")
    print("  new connection to 18712:", await threads.deferToThread(ask, 18712))

    busy = socket.socket()
    busy.bind(("127.0.0.1", 18713))
    busy.listen()
    try:
        await live.reconfigure(local_ports="18712,18713,18714")
    except BindError as e:
        print("all or nothing:", e)
        print("  still listening on", ports(service, "data"), "with", live.config.local_ports)
    busy.close()

    try:
        live.reconfigure(handler="discard")
    except ConfigError as e:
        print("restart needed:", e)

    extra = SocketConfig(name="extra", incoming="any-ip-any-port", interfaces="lo",
                         local_ports="18715", handler="discard")
    await service.apply_config(ServiceConfig((live.config, extra)))
    print("apply_config, socket added:", list(service.sockets), ports(service, "extra"))
    await service.apply_config(ServiceConfig((extra,)))
    print("apply_config, 'data' removed:", list(service.sockets))
    print("  held connection:", await threads.deferToThread(ask, 18711, b"outlived its socket", held))

    renamed = extra.replace(name="sink")
    await service.apply_config(ServiceConfig((renamed,)))
    print("renamed with the same ports:", list(service.sockets), ports(service, "sink"))

    held.close()
    await service.stopService()


task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
