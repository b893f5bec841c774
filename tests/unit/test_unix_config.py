"""
Local (UNIX) sockets without sockets: the credentials decision table, the
path/mode/user coercers, which keys fit, the plan and the --unix flag.
"""

from __future__ import annotations

import os

import pytest

from twisted_sock import ConfigError, SocketConfig
from twisted_sock.config.flags import config_from_flags
from twisted_sock.net.interfaces import ListenerSpec, plan_service
from twisted_sock.policy.incoming import (
    ACCEPT,
    REFUSE_CREDENTIALS,
    REFUSE_MASTER,
    REFUSE_MODE,
    IncomingMode,
    decide_credentials,
)

ANY = IncomingMode.ANY_IP_ANY_PORT
U = frozenset({1000})
G = frozenset({50})


@pytest.mark.parametrize(
    "enabled, mode, uid, gid, uids, gids, expected",
    [
        (False, ANY, 1000, 50, None, None, REFUSE_MASTER),
        (True, IncomingMode.NONE, 1000, 50, U, G, REFUSE_MODE),
        (True, ANY, 1000, 50, None, None, ACCEPT),
        (True, ANY, None, None, None, None, ACCEPT),
        (True, ANY, 1000, 99, U, None, ACCEPT),
        (True, ANY, 1001, 50, U, None, REFUSE_CREDENTIALS),
        (True, ANY, 1001, 50, None, G, ACCEPT),
        (True, ANY, 1000, 51, None, G, REFUSE_CREDENTIALS),
        (True, ANY, 1001, 50, U, G, ACCEPT),
        (True, ANY, 1000, 51, U, G, ACCEPT),
        (True, ANY, 1001, 51, U, G, REFUSE_CREDENTIALS),
        (True, ANY, None, None, U, G, REFUSE_CREDENTIALS),
        (False, IncomingMode.NONE, 1000, 50, U, G, REFUSE_MASTER),
    ],
)
def test_decide_credentials(enabled, mode, uid, gid, uids, gids, expected):
    """
    Master switch, then none, then either list admits the peer; no lists
    admit everyone; unknown credentials pass only without lists.
    """
    assert decide_credentials(enabled, mode, uid, gid, uids, gids) is expected


def test_unix_defaults_and_coercion(tmp_path):
    """
    A unix socket defaults to any-ip-any-port (the credentials are its
    guard) and mode 0600; modes, users and groups are coerced.
    """
    config = SocketConfig(protocol="unix", path=str(tmp_path / "a.sock"), mode="0660",
                          allowed_uids=["root", 1000], allowed_gids="0")
    assert config.incoming is IncomingMode.ANY_IP_ANY_PORT
    assert (config.mode, config.allowed_uids, config.allowed_gids) == (0o660, frozenset({0, 1000}),
                                                                       frozenset({0}))
    assert SocketConfig(protocol="unix", path=str(tmp_path / "b.sock")).mode == 0o600
    assert SocketConfig(protocol="unix", path="@abstract-name").abstract


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "path: a unix socket needs a path"),
        ({"path": "/no-such-dir-x/a.sock"}, "directory '/no-such-dir-x' does not exist"),
        ({"path": "/tmp/" + "y" * 110}, "over the 107-byte limit of UNIX socket paths"),
        ({"path": "@"}, "an abstract name needs 1 to 107 bytes after @"),
        ({"path": "PATH", "mode": "rw-"}, "mode = 'rw-': 'rw-' is not an octal file mode"),
        ({"path": "PATH", "mode": 0o1777}, "is not a file mode (0000-0777)"),
        ({"path": "PATH", "allowed_uids": ["no-such-user-x"]}, "unknown user 'no-such-user-x'"),
        ({"path": "PATH", "group": "no-such-group-x"}, "unknown group 'no-such-group-x'"),
        ({"path": "PATH", "local_ports": [1]}, "local_ports: does not apply to protocol 'unix'"),
        ({"path": "PATH", "interfaces": "lo"}, "interfaces: does not apply to protocol 'unix'"),
        ({"path": "PATH", "incoming": "specific-ip-any-port"}, "does not apply to unix sockets"),
        ({"path": "PATH", "datagram": True, "serve": "http"}, "serve = 'http' needs a stream socket"),
        ({"path": "PATH", "datagram": True, "handler": "chat"}, "chat is a stream handler"),
        ({"path": "PATH", "datagram": True, "idle_timeout": 5}, "does not apply to datagram sockets"),
        ({"path": "PATH", "serve": "ftp"}, "unknown serve 'ftp'"),
        ({"path": "@x", "owner": "root"}, "an abstract socket has no file to own"),
    ],
)
def test_unix_bad_input(kwargs, message, tmp_path):
    """
    Every bad local-socket setting is one line naming the socket and key.
    """
    if kwargs.get("path") == "PATH":
        kwargs["path"] = str(tmp_path / "a.sock")
    with pytest.raises(ConfigError) as caught:
        SocketConfig(protocol="unix", **kwargs)
    text = str(caught.value)
    assert "\n" not in text and text.startswith("socket 'sock0': ") and message in text


@pytest.mark.parametrize("key, value", [("path", "/tmp/x.sock"), ("mode", "0660"),
                                        ("allowed_uids", [0]), ("datagram", True)])
def test_unix_keys_refused_elsewhere(key, value):
    """
    The local-socket keys do not fit tcp sockets.
    """
    with pytest.raises(ConfigError, match=f"{key}: does not apply to protocol 'tcp'"):
        SocketConfig(local_ports=[1], **{key: value})


def test_unix_plan_and_duplicate_paths(tmp_path):
    """
    A unix socket is one listener on its path (http when serve = http);
    two sockets on one path are refused.
    """
    path = str(tmp_path / "a.sock")
    a = SocketConfig(name="a", protocol="unix", path=path, serve="http")
    b = SocketConfig(name="b", protocol="unix", path=str(tmp_path / "b.sock"), datagram=True)
    plan = plan_service([a, b], {})
    assert plan == [ListenerSpec("a", path, 0, "http", "plain", "unix"),
                    ListenerSpec("b", str(tmp_path / "b.sock"), 0, "data", "datagram", "unix")]
    assert [str(s) for s in plan] == [path, str(tmp_path / "b.sock")]
    with pytest.raises(ConfigError, match=f"path {path} is also used by socket 'a'"):
        plan_service([a, SocketConfig(name="c", protocol="unix", path=path)], {})


def test_unix_flag(tmp_path):
    """
    --unix PATH --mode 0660 builds one unix socket; a relative path is
    relative to the working directory.
    """
    (sock,) = config_from_flags({"unix": str(tmp_path / "f.sock"), "mode": "0660"}).sockets
    assert (sock.protocol, sock.path, sock.mode) == ("unix", str(tmp_path / "f.sock"), 0o660)
    with pytest.raises(ConfigError) as caught:
        config_from_flags({"unix": "/no-such-dir-y/f.sock"})
    assert str(caught.value) == ("socket 'sock0': --unix = '/no-such-dir-y/f.sock': directory "
                                 "'/no-such-dir-y' does not exist")
    _ = os
