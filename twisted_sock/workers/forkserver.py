"""
The fork server: C{python -m twisted_sock.workers.forkserver ARGS}, the
process every worker is forked from (SPEC section 8: the session-ticket
keys are shared by all workers). OpenSSL gives each new TLS context random
ticket keys and pyOpenSSL has no way to set them, so the only way for
workers to hold the same keys is to inherit the same contexts: this
process builds every socket's default server contexts once
(L{twisted_sock.net.tls_options.prebuild}), then forks each worker the
main process asks for. A worker finds them and uses them instead of
building its own (L{twisted_sock.net.tls_context.ServerContexts}).

It runs no reactor and starts no thread (a fork copies only the calling
thread; an event loop's descriptors would be shared by every child). It
reads the main process's requests from descriptor 3 (C{SOCK_SEQPACKET}:
one message of JSON per worker, then its descriptors in messages of at
most L{FDS_PER_MESSAGE}) and reports on descriptor 4, one line each:
C{started SLOT PID} and C{ended PID STATUS} (the wait status). It exits
once the main process has closed descriptor 3 and its last worker has
ended, also when the main process is gone (L{serve}).

Its messages are checked by L{twisted_sock.workers.forked}, the main
process's end.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import socket
import sys
import traceback
from collections.abc import Sequence
from typing import Any

#: Descriptors per message (Linux's C{SCM_MAX_FD} is 253).
FDS_PER_MESSAGE = 250
#: The largest request message (the worker's JSON arguments).
MAX_MESSAGE = 1 << 20
#: Where the received descriptors are moved before they are put in place
#: (above every target, so none is overwritten before it is moved).
HIGH_FD = 1000
REQUESTS, REPORTS = 3, 4


def place(received: Sequence[int], targets: Sequence[int]) -> None:
    """
    Put descriptor C{received[i]} at number C{targets[i]} (inheritable)
    and close every other descriptor but 0, 1 and 2, as C{spawnProcess}
    leaves a child's descriptors.
    """
    floor = max([HIGH_FD, *targets, *received]) + 1
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor) for fd in received]
    for fd, target in zip(high, targets, strict=True):
        os.dup2(fd, target)  # the new descriptor is inheritable
    keep = {0, 1, 2, *targets}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own descriptor, closed by now


def receive(requests: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """
    The next request: its JSON and its descriptors (C{None}: the main
    process closed the socket).
    """
    data, fds, flags, _ = socket.recv_fds(requests, MAX_MESSAGE, FDS_PER_MESSAGE, socket.MSG_CMSG_CLOEXEC)
    if not data:
        return None
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        raise ValueError("a request was cut short")
    request = json.loads(data)
    while len(fds) < request["fds"]:
        more = socket.recv_fds(requests, 16, FDS_PER_MESSAGE, socket.MSG_CMSG_CLOEXEC)[1]
        if not more:
            raise ValueError("a request's descriptors are missing")
        fds.extend(more)
    return request, fds


def run_worker(request: dict[str, Any], fds: list[int], requests: socket.socket) -> int:
    """
    In the forked child: the worker, its descriptors in place.
    """
    requests.detach()  # its number is the worker's now: never closed by this object
    signal.set_wakeup_fd(-1)
    for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(number, signal.SIG_DFL)
    place(fds, request["targets"])
    args = json.dumps(dict(request["args"], parent=os.getppid()))
    from twisted_sock.workers import worker

    sys.argv = [worker.__file__, args]  # as a worker's own process would have it
    worker.name_process(f"sock worker {request['args']['index']}")
    return worker.main([args])


def fork(request: dict[str, Any], fds: list[int], requests: socket.socket, reports: int) -> None:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = run_worker(request, fds, requests)
        except SystemExit as e:  # e.g. the main process gone before the worker started
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:  # the child must never return into this loop
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    for fd in fds:
        os.close(fd)
    report(reports, f"started {request['slot']} {pid}")


def report(reports: int, line: str) -> None:
    """
    One line to the main process (none once it is gone: the workers are
    still waited for).
    """
    try:
        os.write(reports, f"{line}\n".encode("ascii"))
    except OSError:
        pass


def reap(reports: int) -> int:
    """
    Report every child that has ended; the number reaped.
    """
    count = 0
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return count
        if pid == 0:
            return count
        count += 1
        report(reports, f"ended {pid} {status}")


def serve(requests: socket.socket, reports: int) -> None:
    """
    Fork a worker for each request until the main process closes
    C{requests}; then wait for the last worker to end.

    C{SIGTERM} and C{SIGINT} are ignored: sent to the whole process group
    (C{Ctrl-C}, C{timeout}, systemd's C{KillMode=control-group}) they
    reach the workers themselves, which drain; this process must outlive
    them to report their ends. With the main process gone (the end of
    C{requests}) it waits for them too (they stop: their control
    connection ended).
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children = 0
    open_ = True
    while open_ or children:
        watched: list[Any] = [wake_read, requests] if open_ else [wake_read]
        try:
            readable, _, _ = select.select(watched, [], [], 1.0 if open_ else 0.2)
        except InterruptedError:
            readable = []
        if wake_read in readable:
            os.read(wake_read, 512)
        children -= reap(reports)
        if requests in readable:
            got = receive(requests)
            if got is None:
                open_ = False
            else:
                fork(*got, requests, reports)
                children += 1


def build(flags: dict[str, Any]) -> None:
    """
    The server contexts of every socket the workers serve, for both modes.
    The user's code is not imported (L{skip_imports}).
    """
    from twisted_sock.config.flags import config_from_flags
    from twisted_sock.config.refs import skip_imports
    from twisted_sock.config.tls import tls_of
    from twisted_sock.net.tls_options import prebuild

    skip_imports()
    for _, tls in tls_of(config_from_flags(flags).sockets):
        for mode in ("data", "http"):
            prebuild(tls, mode)


def main(argv: list[str]) -> int:
    args = json.loads(argv[0])
    from twisted_sock.workers.worker import die_with_parent, name_process

    die_with_parent(args["parent"])
    name_process("sock forkserver")
    try:
        build(args["flags"])
    except Exception as e:  # noqa: BLE001 - the workers report it better, from their own start
        sys.stderr.write(f"twistd sock: fork server: TLS contexts not built ({e}): each worker builds "
                         "its own (session-ticket keys not shared)\n")
    if "twisted.internet.reactor" in sys.modules:  # its descriptors would be every worker's
        sys.stderr.write("twistd sock: fork server: the reactor was imported before the fork\n")
        return 1
    requests = socket.socket(fileno=REQUESTS)
    serve(requests, REPORTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
