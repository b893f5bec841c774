"""
The socket files of UNIX listeners and of the admin socket: stop removes
only the file this process created (same device and inode), whatever has
been put at the path since; the stale-file recovery at start never
removes or follows anything but a socket.
"""

from __future__ import annotations

import os
import socket

import pytest
import pytest_twisted

from twisted_sock import BindError, ServiceConfig, SocketConfig, SockService

pytestmark = pytest.mark.integration


def _service(tmp_path) -> tuple[SockService, dict[str, str]]:
    """
    A started service with a UNIX stream socket, a UNIX datagram socket and
    an admin socket, all in C{tmp_path}; their paths by role.
    """
    paths = {role: str(tmp_path / f"{role}.sock") for role in ("stream", "datagram", "admin")}
    config = ServiceConfig(
        (SocketConfig(name="stream", protocol="unix", path=paths["stream"]),
         SocketConfig(name="datagram", protocol="unix", path=paths["datagram"], datagram=True)),
        admin_socket=paths["admin"])
    service = SockService.from_config(config)
    service.startService()
    for path in paths.values():
        assert os.path.exists(path)
    return service, paths


def _regular_file(path: str, holder: list[socket.socket]) -> object:
    with open(path, "w") as f:
        f.write("another user's file")
    return lambda: open(path).read() == "another user's file"


def _other_socket(path: str, holder: list[socket.socket]) -> object:
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(path)
    other.listen(1)
    holder.append(other)
    inode = os.lstat(path).st_ino

    def intact() -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.connect(path)  # still the test's listening socket
        return os.lstat(path).st_ino == inode

    return intact


def _symlink(path: str, holder: list[socket.socket]) -> object:
    target = path + ".target"
    with open(target, "w") as f:
        f.write("pointed at")
    os.symlink(target, path)
    return lambda: os.readlink(path) == target and open(target).read() == "pointed at"


@pytest.mark.parametrize("plant", [_regular_file, _other_socket, _symlink],
                         ids=["regular file", "another socket", "symlink"])
@pytest_twisted.ensureDeferred
async def test_stop_leaves_what_replaced_our_socket_file(tmp_path, plant):
    """
    After the service's socket files (stream, datagram, admin) are replaced
    by a regular file, another process's listening socket or a symbolic
    link, stop leaves each of them as it is.
    """
    service, paths = _service(tmp_path)
    held: list[socket.socket] = []
    checks = {}
    try:
        for role, path in paths.items():
            os.unlink(path)
            checks[role] = plant(path, held)
        await service.stopService()
        for role, intact in checks.items():
            assert os.path.lexists(paths[role]), role
            assert intact(), role
    finally:
        for s in held:
            s.close()


@pytest_twisted.ensureDeferred
async def test_stop_removes_our_own_socket_files(tmp_path):
    """
    Normally stop removes the socket files it created (stream, datagram and
    admin socket); a file already removed by someone else is no error.
    """
    service, paths = _service(tmp_path)
    os.unlink(paths["datagram"])
    await service.stopService()
    for role, path in paths.items():
        assert not os.path.lexists(path), role


def test_start_refuses_a_symlink_and_leaves_it(tmp_path):
    """
    A symbolic link at a UNIX socket's path -- even to a stale socket -- is
    neither followed nor removed at start: one BIND_FAILED line, and the
    link and the socket it points to are still there.
    """
    stale = str(tmp_path / "stale.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(stale)  # closed without listening: a stale socket file
    link = str(tmp_path / "link.sock")
    os.symlink(stale, link)
    for config in (ServiceConfig((SocketConfig(name="u", protocol="unix", path=link),)),
                   ServiceConfig((), admin_socket=link)):
        with pytest.raises(BindError) as caught:
            SockService.from_config(config).startService()
        assert f"BIND_FAILED {link}: the path is a symbolic link (give the real path)" in str(caught.value)
        assert os.readlink(link) == stale and os.path.exists(stale)
