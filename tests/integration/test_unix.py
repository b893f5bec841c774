"""
UNIX sockets for local IPC against independent clients (Python's socket
with AF_UNIX, socat, curl --unix-socket): stream and datagram echo, file
permissions, the abstract namespace, stale files, a live server left alone,
peer-credential checks (also from another uid, as root can arrange).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest
import pytest_twisted
from twisted.internet import threads

from tests.conftest import require_tool
from tests.integration.clients import TIMEOUT, curl
from tests.integration.conftest import until
from tests.integration.test_twistd import TWISTD, Twistd, run
from twisted_sock import BindError, SocketConfig, SockService

NOBODY = 65534


def local(path, **kwargs) -> SocketConfig:
    kwargs.setdefault("protocol", "unix")
    return SocketConfig(path=str(path), **kwargs)


def stream_exchange(address: str, payload: bytes) -> bytes | None:
    """
    Send C{payload} over a UNIX stream connection; the echo, or None when
    the server closed the connection without answering.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT)
        s.connect(address)
        try:
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                chunk = s.recv(65536)
                if not chunk:
                    return None
                got += chunk
            return got
        except (ConnectionResetError, BrokenPipeError):
            return None


def datagram_exchange(address: str, payload: bytes, client_path: str) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.settimeout(TIMEOUT)
        s.bind(client_path)
        s.sendto(payload, address)
        return s.recv(65536)


def other_user_python() -> str:
    """
    A Python interpreter another user can run (this test run's own may
    live under /root): the system's python3, or a skip.
    """
    for candidate in ("/usr/bin/python3", sys.executable):
        if os.path.exists(candidate) and os.stat(candidate).st_mode & 0o001:
            parent = os.path.dirname(candidate)
            if all(os.stat(d).st_mode & 0o001 for d in _parents(parent)):
                return candidate
    pytest.skip("no Python interpreter that another user may run")


def _parents(path: str) -> list[str]:
    parts = []
    while path not in ("/", ""):
        parts.append(path)
        path = os.path.dirname(path)
    return parts


def as_user(uid: int, code: str) -> subprocess.CompletedProcess[str]:
    """
    Run Python code as another user (root only).
    """
    return subprocess.run([other_user_python(), "-c", code], capture_output=True, text=True,
                          timeout=TIMEOUT + 5, preexec_fn=lambda: (os.setgid(uid), os.setuid(uid)))


@pytest_twisted.ensureDeferred
async def test_stream_echo_python_and_socat(serve, tmp_path):
    """
    A UNIX stream socket echoes for Python's socket and socat; the file has
    mode 0600 by default and is removed on a clean stop.
    """
    socat = require_tool("socat")
    path = str(tmp_path / "echo.sock")
    service = serve(local(path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert await threads.deferToThread(stream_exchange, path, b"over unix") == b"over unix"

    def via_socat():
        return subprocess.run([socat, "-t", "2", "-", f"UNIX-CONNECT:{path}"], input=b"socat\n",
                              capture_output=True, timeout=TIMEOUT).stdout

    assert await threads.deferToThread(via_socat) == b"socat\n"
    (listener,) = service.sockets["sock0"].statistics().listeners
    assert (listener.address, listener.port, listener.kind) == (path, None, "plain")
    await service.stopService()
    assert not os.path.exists(path)


@pytest_twisted.ensureDeferred
async def test_mode_and_datagram_echo(serve, tmp_path):
    """
    mode = "0660" is the file's mode on disk; a datagram socket echoes to a
    bound client.
    """
    path = str(tmp_path / "dgram.sock")
    serve(local(path, datagram=True, mode="0660"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    got = await threads.deferToThread(datagram_exchange, path, b"dgram", str(tmp_path / "client.sock"))
    assert got == b"dgram"


@pytest_twisted.ensureDeferred
async def test_abstract_namespace(serve):
    """
    path = "@name" listens in the Linux abstract namespace: no file.
    """
    name = f"twisted-sock-test-{os.getpid()}"
    serve(local(f"@{name}"))
    assert await threads.deferToThread(stream_exchange, "\0" + name, b"abstract") == b"abstract"


@pytest_twisted.ensureDeferred
async def test_allowed_uids_refuse_and_accept(serve, tmp_path):
    """
    allowed_uids without our uid: the connection is closed before the
    handler sees it, counted as peer-credentials; with our uid: served, and
    connection_info carries the peer's pid/uid/gid.
    """
    me = os.getuid()
    refused_path = str(tmp_path / "refused.sock")
    allowed_path = str(tmp_path / "allowed.sock")
    service = serve(local(refused_path, name="strict", allowed_uids=[me + 1]),
                    local(allowed_path, name="mine", allowed_uids=[me],
                          handler="tests.integration.handlers_for_tests:data_recorder_factory"))
    assert await threads.deferToThread(stream_exchange, refused_path, b"x") is None
    assert service.sockets["strict"].statistics().refused_by["peer-credentials"] == 1
    from tests.integration import handlers_for_tests as rec

    rec.INFOS.clear()
    assert await threads.deferToThread(stream_exchange, allowed_path, b"ok") == b"ok"
    credentials = rec.INFOS[-1].peer_credentials
    assert credentials[0] == os.getpid() and credentials[1:] == (me, os.getgid())


@pytest.fixture
def shared_dir():
    """
    A directory every user can reach (pytest's tmp_path sits under a 0700
    directory of root's).
    """
    import shutil
    import tempfile
    from pathlib import Path

    directory = tempfile.mkdtemp(prefix="twisted-sock-")
    os.chmod(directory, 0o777)
    yield Path(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest_twisted.ensureDeferred
async def test_another_uid_is_refused_then_allowed(shared_dir, serve):
    """
    A client running as another user (nobody) is refused by allowed_uids
    = [root] and accepted by allowed_gids listing its group; the same holds
    for datagrams (credentials from SCM_CREDENTIALS).
    """
    if os.getuid() != 0:
        pytest.skip("needs root to run a client as another uid")
    tmp_path = shared_dir
    strict = str(tmp_path / "strict.sock")
    groups = str(tmp_path / "groups.sock")
    dgram = str(tmp_path / "dgram.sock")
    serve(local(strict, name="strict", allowed_uids=["root"], mode="0666"),
          local(groups, name="groups", allowed_uids=[0], allowed_gids=[NOBODY], mode="0666"),
          local(dgram, name="dgram", datagram=True, allowed_uids=[0], mode="0666"))
    code = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])\n"
        "s.sendall(b'hi'); print(repr(s.recv(10)))\n"
    )

    def client(path):
        done = as_user(NOBODY, code.replace("sys.argv[1]", repr(path)))
        return done.stdout.strip() or done.stderr.strip().splitlines()[-1]

    refused = await threads.deferToThread(client, strict)
    assert refused == "b''" or refused.startswith(("ConnectionResetError", "BrokenPipeError"))
    assert await threads.deferToThread(client, groups) == "b'hi'"
    dcode = (
        "import socket\n"
        f"s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind({str(tmp_path / 'n.sock')!r})\n"
        f"s.sendto(b'from nobody', {dgram!r})\n"
    )
    sent = await threads.deferToThread(as_user, NOBODY, dcode)
    assert sent.returncode == 0, sent.stderr
    assert await threads.deferToThread(datagram_exchange, dgram, b"from root",
                                       str(tmp_path / "root.sock")) == b"from root"


@pytest_twisted.ensureDeferred
async def test_serve_http_with_curl(serve, tmp_path):
    """
    serve = "http" serves the status resource over the UNIX socket:
    curl --unix-socket gets /status.json.
    """
    path = str(tmp_path / "http.sock")
    serve(local(path, serve="http"))
    done = await threads.deferToThread(curl, "http://localhost/status.json", "--unix-socket", path)
    status = json.loads(done.stdout)
    (sock,) = status["sockets"]
    assert sock["protocol"] == "unix" and sock["listeners"][0]["address"] == path
    assert sock["listeners"][0]["mode"] == "http"


@pytest_twisted.ensureDeferred
async def test_live_server_is_not_disturbed(serve, tmp_path):
    """
    Starting a second service on a path where a server is listening fails
    with BIND_FAILED and leaves the first one serving.
    """
    path = str(tmp_path / "live.sock")
    serve(local(path))
    second = SockService([local(path, name="second")])
    with pytest.raises(BindError) as caught:
        second.startService()
    assert str(caught.value) == (f"BIND_FAILED {path}: another server is already listening on it "
                                 "(socket 'second')")
    assert await threads.deferToThread(stream_exchange, path, b"still") == b"still"


@pytest_twisted.ensureDeferred
async def test_path_that_is_not_a_socket_is_kept(serve, tmp_path):
    """
    A regular file at the path is never deleted: BIND_FAILED.
    """
    path = tmp_path / "precious.txt"
    path.write_text("keep me")
    with pytest.raises(BindError, match="the path exists and is not a socket"):
        SockService([local(path)]).startService()
    assert path.read_text() == "keep me"


def test_stale_socket_after_kill_9(tmp_path):
    """
    A socket file left by a server killed with SIGKILL does not prevent the
    next start: the stale file is detected (nothing listening) and replaced.
    """
    path = str(tmp_path / "stale.sock")
    first = Twistd("--unix", path, cwd=str(tmp_path))
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=TIMEOUT)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    second = Twistd("--unix", path, cwd=str(tmp_path))
    try:
        assert stream_exchange(path, b"after crash") == b"after crash"
    finally:
        log = second.stop()
    assert "removed stale socket file" in log


def test_twistd_unix_flag_with_mode(tmp_path):
    """
    twistd -n sock --unix PATH --mode 0660 creates the socket with that mode.
    """
    path = str(tmp_path / "flag.sock")
    server = Twistd("--unix", path, "--mode", "0660", cwd=str(tmp_path))
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        assert stream_exchange(path, b"flag") == b"flag"
    finally:
        server.stop()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--unix", "/tmp/" + "x" * 120], "over the 107-byte limit"),
        (["--unix", "/nonexistent-dir/app.sock"], "directory '/nonexistent-dir' does not exist"),
        (["--unix", "app.sock", "--mode", "0999"], "--mode = '0999': '0999' is not an octal file mode"),
        (["--unix", "app.sock", "--incoming", "specific-ip-any-port"], "does not apply to unix"),
        (["--tcp", "1", "--mode", "0600"], "--mode applies to --unix sockets"),
    ],
)
def test_bad_unix_input_is_one_line(args, needle, tmp_path):
    """
    Bad UNIX settings: exit status 2, one line, no traceback.
    """
    done = run(TWISTD, "-n", "--pidfile=", "sock", *args, cwd=str(tmp_path))
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], done.stderr


def test_unknown_user_and_group_in_config(tmp_path):
    """
    Unknown user or group names in allowed_uids/allowed_gids/owner are
    configuration errors naming the key.
    """
    from twisted_sock import ConfigError

    for key in ("allowed_uids", "owner"):
        with pytest.raises(ConfigError, match=f"{key} = .*unknown user 'no-such-user-x'"):
            local(tmp_path / "a.sock", **{key: ["no-such-user-x"] if key != "owner" else "no-such-user-x"})
    with pytest.raises(ConfigError, match="allowed_gids = .*unknown group 'no-such-group-x'"):
        local(tmp_path / "a.sock", allowed_gids=["no-such-group-x"])


@pytest_twisted.ensureDeferred
async def test_master_switch_and_none_on_unix(serve, tmp_path):
    """
    The master switch and incoming = none refuse local connections too.
    """
    path = str(tmp_path / "m.sock")
    service = serve(local(path))
    service.incoming_enabled = False
    assert await threads.deferToThread(stream_exchange, path, b"x") is None
    service.incoming_enabled = True
    assert await threads.deferToThread(stream_exchange, path, b"y") == b"y"
    await service.sockets["sock0"].reconfigure(incoming="none")
    assert await threads.deferToThread(stream_exchange, path, b"z") is None
    await until(lambda: service.sockets["sock0"].statistics().refused == 2)
    _ = time


@pytest_twisted.ensureDeferred
async def test_rename_keeps_the_socket_file(serve, tmp_path):
    """
    A local stream socket renamed with the same path keeps its listening
    socket (and file: same inode); a connection held on the old name keeps
    working. A rename that also changes the file mode is refused as before
    (the path is taken) and changes nothing.
    """
    from twisted_sock import ServiceConfig

    path = tmp_path / "app.sock"
    service = serve(local(path, name="old"))
    inode = os.stat(path).st_ino
    held = socket.socket(socket.AF_UNIX)
    held.settimeout(TIMEOUT)
    await threads.deferToThread(held.connect, str(path))
    with held:
        await service.apply_config(ServiceConfig((local(path, name="new"),)))
        assert list(service.sockets) == ["new"] and os.stat(path).st_ino == inode
        assert await threads.deferToThread(stream_exchange, str(path), b"renamed") == b"renamed"
        await until(lambda: service.sockets["new"].statistics().accepted == 1)
        held.sendall(b"held")
        assert await threads.deferToThread(held.recv, 10) == b"held"

        with pytest.raises(BindError):
            await service.apply_config(ServiceConfig((local(path, name="other", mode="0660"),)))
        assert list(service.sockets) == ["new"] and os.stat(path).st_ino == inode
    assert await threads.deferToThread(stream_exchange, str(path), b"still") == b"still"
