"""
The file of a UNIX socket bound in the filesystem: made free before bind
(a stale socket nobody listens on is removed; anything else is left
alone), created with its mode from the start, and removed on stop only
when the path still holds the very file this process created.

Every check uses C{lstat}: a symbolic link at the path is never followed,
and never removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from twisted.logger import Logger

from twisted_sock.errors import BindError
from twisted_sock.net.binding import os_reason

log = Logger(namespace="twisted_sock")


def is_abstract(path: str) -> bool:
    """
    Whether C{path} names the Linux abstract namespace (C{@name}, or the
    C{"\\0name"} it is bound as): no file.
    """
    return path.startswith(("@", "\0"))


@contextlib.contextmanager
def creation_umask(mode: int) -> Iterator[None]:
    """
    Create files with exactly C{mode} (the umask masks all other bits).
    """
    old = os.umask(0o777 ^ mode)
    try:
        yield
    finally:
        os.umask(old)


@dataclass(frozen=True, slots=True)
class SocketFile:
    """
    The socket file a listener created: its path and identity (device and
    inode, read with C{lstat} right after C{bind}).
    """

    path: str
    device: int
    inode: int

    @classmethod
    def created(cls, path: str) -> SocketFile | None:
        """
        Record the file just bound at C{path}; C{None} for an abstract name
        (or when the path no longer holds a socket: nothing will be removed).
        """
        if is_abstract(path):
            return None
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if not stat.S_ISSOCK(st.st_mode):
            return None
        return cls(path, st.st_dev, st.st_ino)

    def is_ours(self, st: os.stat_result) -> bool:
        """
        Whether C{st} (an C{lstat} of the path) is this very socket file.
        """
        return stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == (self.device, self.inode)

    def remove(self) -> bool:
        """
        Unlink the path if it still holds this socket file; leave anything
        else there (another file, another server's socket, a symbolic link)
        untouched.

        @return: whether the file was removed.
        """
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return False
        if not self.is_ours(st):
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        return True


def remove_created(created: SocketFile | None) -> None:
    """
    On stop: L{SocketFile.remove} when a file was recorded, with one log
    line when something else has taken the path since.
    """
    if created is not None and not created.remove() and os.path.lexists(created.path):
        log.warn("left {path} alone: it is no longer the socket file this process created",
                 path=created.path)


def clear_stale(path: str, kind: int) -> None:
    """
    Make C{path} free for a new socket: nothing there is fine; a socket
    nobody listens on (left by a crashed process) is removed; a live
    server's socket, a symbolic link or any other file is left alone and
    named in a L{BindError}.
    """
    if is_abstract(path):
        return
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise BindError(path, None, "the path is a symbolic link (give the real path)")
    if not stat.S_ISSOCK(st.st_mode):
        raise BindError(path, None, "the path exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, kind)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except ConnectionRefusedError:
        stale = SocketFile(path, st.st_dev, st.st_ino)
        if stale.remove():  # only if it is still the socket we probed
            log.info("removed stale socket file {path} (nothing was listening)", path=path)
        return
    except OSError as e:
        if e.errno == errno.EPROTOTYPE:
            raise BindError(path, None, "a socket of another type is listening on it") from None
        raise BindError(path, None, os_reason(e)) from None
    finally:
        probe.close()
    raise BindError(path, None, "another server is already listening on it")
