"""
Tests for the public facade (C{twisted_sock.__all__}), the one-line errors
and the L{ShutdownReason} names.
"""

from __future__ import annotations

import importlib

import pytest

import twisted_sock
from twisted_sock.errors import BindError, ConfigError, SockError
from twisted_sock.reasons import ShutdownReason

PUBLIC_NAMES = [
    "BindError",
    "ConfigError",
    "ConnectionFailed",
    "ConnectionInfo",
    "IncomingMode",
    "ServiceConfig",
    "ShutdownReason",
    "SockService",
    "SocketConfig",
    "TLSConfig",
    "TLSHandshakeError",
    "connection_info",
    "load_config",
    "open_socket",
    "start_tls",
]

#: SPEC section 4's import list.
SPEC_NAMES = ["SocketConfig", "IncomingMode", "SockService", "ShutdownReason", "load_config",
              "connection_info", "start_tls", "ServiceConfig", "ConfigError"]


def test_all_is_pinned():
    """
    C{__all__} lists exactly the public names, sorted, with no duplicates.
    """
    assert twisted_sock.__all__ == PUBLIC_NAMES


def test_spec_names_exported():
    """
    Every name SPEC section 4 imports (other than the TLS one) is public.
    """
    assert set(SPEC_NAMES) <= set(twisted_sock.__all__)


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_name_importable(name):
    """
    Each public name can be imported from the package (C{from twisted_sock
    import NAME}) and is defined (not None).
    """
    module = importlib.import_module("twisted_sock")
    assert getattr(module, name) is not None
    namespace: dict[str, object] = {}
    exec(f"from twisted_sock import {name}", namespace)
    assert namespace[name] is getattr(twisted_sock, name)


def test_star_import():
    """
    C{from twisted_sock import *} brings exactly the public names.
    """
    namespace: dict[str, object] = {}
    exec("from twisted_sock import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(PUBLIC_NAMES)


def test_version():
    """
    The package has a version string matching the distribution.
    """
    assert twisted_sock.__version__ == "0.1.0"


# --------------------------------------------------------------------------
# errors

@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("127.0.0.1", 8001, "reason"), "BIND_FAILED 127.0.0.1:8001: reason"),
        (("::1", 8001, "Address already in use"), "BIND_FAILED [::1]:8001: Address already in use"),
        (("::", 80, "Permission denied"), "BIND_FAILED [::]:80: Permission denied"),
        (("fe80::1%eth0", 9, "x"), "BIND_FAILED [fe80::1%eth0]:9: x"),
        (("0.0.0.0", 8001, "in use", "sock0"), "BIND_FAILED 0.0.0.0:8001: in use (socket 'sock0')"),
    ],
)
def test_bind_error_one_line(args, text):
    """
    A bind failure renders as C{BIND_FAILED host:port: reason}, IPv6 hosts
    in brackets, with the socket when known.
    """
    error = BindError(*args)
    assert str(error) == text
    assert "\n" not in str(error)
    assert (error.address, error.port, error.reason) == args[:3]
    assert isinstance(error, SockError)
    assert isinstance(error, OSError)


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({}, "bad"),
        ({"file": "s.toml"}, "s.toml: bad"),
        ({"socket": "a"}, "socket 'a': bad"),
        ({"key": "local_ports"}, "local_ports: bad"),
        ({"key": "local_ports", "value": "x"}, "local_ports = 'x': bad"),
        ({"value": 5}, "5: bad"),
        ({"key": "k", "value": None}, "k = None: bad"),
        ({"file": "s.toml", "socket": "a", "key": "k", "value": [1]}, "s.toml: socket 'a': k = [1]: bad"),
        ({"key": "k", "value": "two\nlines"}, "k = 'two\\nlines': bad"),
    ],
)
def test_config_error_one_line(kwargs, text):
    """
    A ConfigError is one line: file, socket, key = value, problem, each
    part only when known; a value with a newline is shown escaped.
    """
    error = ConfigError("bad", **kwargs)
    assert str(error) == text
    assert "\n" not in str(error)
    assert error.args == (text,)
    assert isinstance(error, ValueError)
    assert isinstance(error, SockError)


def test_config_error_located():
    """
    C{located()} fills in missing location fields and keeps those already
    set (and the value).
    """
    error = ConfigError("bad", key="local_ports", value="x")
    located = error.located(file="s.toml", socket="a", key="ignored")
    assert (located.file, located.socket, located.key, located.value, located.problem) == (
        "s.toml", "a", "local_ports", "x", "bad",
    )
    assert str(located) == "s.toml: socket 'a': local_ports = 'x': bad"
    assert str(error) == "local_ports = 'x': bad"
    assert ConfigError("bad").located(key="k").has_value is False


# --------------------------------------------------------------------------
# ShutdownReason

def test_shutdown_reason_names():
    """
    The reasons are exactly the SPEC list, each printing as its name.
    """
    assert [r.name for r in ShutdownReason] == [
        "NORMAL", "BY_PEER", "LOST", "ADDRESS_INVALID", "OPEN_FAILED", "CONNECT_FAILED",
        "CONNECT_REJECTED", "BIND_FAILED", "LISTEN_FAILED", "ACCEPT_FAILED", "TLS_HANDSHAKE_FAILED",
        "ALPN_SELECTION_FAILED", "ADDR_IN_USE", "REJECTED", "IDLE_TIMEOUT", "REPLACED",
    ]
    for reason in ShutdownReason:
        assert str(reason) == reason.name == reason.value


def test_pure_layers_import_no_twisted_networking():
    """
    Importing the package and its pure layers (decision, configuration)
    loads no Twisted networking, TLS or web module: the public names are
    imported on first use (PEP 562).
    """
    import subprocess
    import sys

    code = ("import sys, twisted_sock, twisted_sock.policy.incoming, twisted_sock.config\n"
            "print(sorted(m for m in sys.modules if m.startswith("
            "('twisted.internet', 'twisted.web', 'OpenSSL', 'twisted.protocols'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_unknown_attribute_is_an_attribute_error():
    """
    A name the package does not export raises C{AttributeError} (so
    C{hasattr} and C{from twisted_sock import nothing} behave).
    """
    with pytest.raises(AttributeError):
        twisted_sock.nothing_here  # noqa: B018
    assert "SockService" in dir(twisted_sock)
