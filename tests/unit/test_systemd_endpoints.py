"""
Tests for C{systemd:} endpoint strings (L{twisted_sock.config.endpoints},
L{twisted_sock.ops.activated}), without sockets: the forms Twisted's
C{systemd:} parser takes, the entry resolved against the sockets systemd
passed (described as plain data), the listener plan it makes (address and
port read back from the socket; duplicates refused), the socket rules,
the environment read once and handed to the next generation.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from twisted_sock.config.endpoints import Endpoint, flag_protocol, parse_endpoint
from twisted_sock.config.flags import config_from_flags
from twisted_sock.config.model import SocketConfig
from twisted_sock.errors import ConfigError
from twisted_sock.net.interfaces import ListenerSpec, plan_listeners, plan_service
from twisted_sock.ops import activated, adopt
from twisted_sock.ops.activated import decode, encode, entry_sockets, pick, read_environment
from twisted_sock.ops.inherit import Inherited, InheritError

TABLE = {"lo": ("127.0.0.1",)}
TCP4 = Inherited(3, "tcp", "127.0.0.1", 8080, True, "web")
TCP6 = Inherited(4, "tcp", "::1", 8443, True, "web6")
UDP4 = Inherited(5, "udp", "127.0.0.1", 5353, False, "dns")
UNIX = Inherited(6, "unix", "/run/x.sock", 0, True, "local")
UNIX_DGRAM = Inherited(7, "unix", "/run/d.sock", 0, False, "")
PASSED = (TCP4, TCP6, UDP4, UNIX, UNIX_DGRAM)


@pytest.mark.parametrize("text, domain, index, name", [
    ("systemd:domain=INET:index=0", "INET", 0, None),
    ("systemd:INET6:index=2", "INET6", 2, None),
    ("systemd:domain=UNIX:name=local", "UNIX", None, "local"),
    ("systemd:index=1:domain=INET", "INET", 1, None),
])
def test_forms(text, domain, index, name):
    """
    C{systemd:} strings are read with the keyword names of Twisted's own
    C{systemd:} parser (C{domain} positional or named; C{index} or C{name}).
    """
    assert parse_endpoint(text) == Endpoint(text, "systemd", domain=domain, index=index, fd_name=name)


@pytest.mark.parametrize("text, problem", [
    ("systemd:index=0", "missing a required argument: 'domain'"),
    ("systemd:domain=NETLINK:index=0", "domain must be INET, INET6 or UNIX, not 'NETLINK'"),
    ("systemd:domain=INET", "give exactly one of index=N"),
    ("systemd:domain=INET:index=0:name=web", "give exactly one of index=N"),
    ("systemd:domain=INET:index=first", "not a number: 'first'"),
    ("systemd:domain=INET:index=-1", "index must be 0 or more, not -1"),
    ("systemd:domain=INET:index=0:port=80", "unknown parameter 'port'"),
    ("systemd:domain=INET:index=0:backlog=5", "backlog is set per socket"),
    ("systemd:INET:0:web:extra", "too many positional arguments"),
])
def test_errors(text, problem):
    """
    A C{systemd:} string Twisted's parser would refuse, or that names no
    one socket, is one line naming the entry.
    """
    with pytest.raises(ConfigError) as e:
        parse_endpoint(text)
    assert str(e.value).startswith(f"{text!r}: {problem}")
    assert "\n" not in str(e.value)


def entry(text: str) -> Endpoint:
    return parse_endpoint(text)


TCP_SOCKET = SocketConfig(listen=["systemd:domain=INET:index=0"])


@pytest.mark.parametrize("text, found", [
    ("systemd:domain=INET:index=0", TCP4),
    ("systemd:domain=INET6:index=1", TCP6),
    ("systemd:domain=INET6:name=web6", TCP6),
])
def test_pick(text, found):
    """
    An entry takes the socket at its index in C{LISTEN_FDS}, or the one its
    name (C{LISTEN_FDNAMES}) gives.
    """
    assert pick(entry(text), PASSED, TCP_SOCKET) == found


@pytest.mark.parametrize("text, passed, problem", [
    ("systemd:domain=INET:index=0", (),
     "systemd passed this process no socket (no LISTEN_FDS for its pid"),
    ("systemd:domain=INET:index=5", PASSED,
     "index 5 is out of range: systemd passed 5 socket(s), index 0 to 4"),
    ("systemd:domain=INET:name=nope", PASSED, "systemd passed no socket(s) named 'nope' (LISTEN_FDNAMES: "
                                              "'web', 'web6', 'dns', 'local', ''); use index=N"),
    ("systemd:domain=INET:name=web", (TCP4, TCP4), "systemd passed 2 socket(s) named 'web'"),
    ("systemd:domain=INET6:index=0", PASSED,
     "systemd passed fd 3 (web): tcp 127.0.0.1:8080 at index 0, not the INET6 stream socket this entry"),
    ("systemd:domain=INET:index=2", PASSED,
     "systemd passed fd 5 (dns): udp 127.0.0.1:5353 at index 2, not the INET stream socket"),
    ("systemd:domain=INET:index=3", PASSED, "fd 6 (local): unix /run/x.sock at index 3, not the INET stream"),
])
def test_pick_errors(text, passed, problem):
    """
    No socket passed, an index out of range, an unknown or repeated name,
    or a socket of another family or type than the entry and its socket
    need: one line naming the socket and the index.
    """
    with pytest.raises(ConfigError) as e:
        pick(entry(text), passed, TCP_SOCKET)
    assert str(e.value).startswith(f"socket 'sock0': listen = {text!r}: "), str(e.value)
    assert problem in str(e.value)
    assert "\n" not in str(e.value)


def test_tcp_plan():
    """
    On a TCP socket a C{systemd:} entry is a data listener with the address
    and port its socket is bound to, and its descriptor; left out of a plan
    made without the passed sockets (C{twisted-sock check}); STARTTLS as
    the socket's other plain data listeners.
    """
    config = SocketConfig(local_ports=[9000], interfaces="lo", listen=["systemd:domain=INET:index=0"])
    assert plan_listeners(config, TABLE, passed=PASSED) == [
        ListenerSpec("sock0", "127.0.0.1", 9000, "data"),
        ListenerSpec("sock0", "127.0.0.1", 8080, "data", systemd_fd=3),
    ]
    assert plan_listeners(config, TABLE) == [ListenerSpec("sock0", "127.0.0.1", 9000, "data")]
    assert str(plan_listeners(config, TABLE, passed=PASSED)[1]) == "127.0.0.1:8080"


@pytest.mark.parametrize("config, problem", [
    (SocketConfig(local_ports=[8080], interfaces="lo", listen=["systemd:domain=INET:index=0"]),
     "'systemd:domain=INET:index=0' duplicates the data listener 127.0.0.1:8080"),
    (SocketConfig(http_ports=[8080], interfaces="*", listen=["systemd:domain=INET:index=0"]),
     "'systemd:domain=INET:index=0' duplicates the http listener [::]:8080"),
    (SocketConfig(listen=["systemd:domain=INET:index=0", "systemd:domain=INET:name=web"]),
     "'systemd:domain=INET:name=web' duplicates the data listener 127.0.0.1:8080"),
    (SocketConfig(listen=["tcp:8080:interface=127.0.0.1", "systemd:domain=INET:index=0"]),
     "'systemd:domain=INET:index=0' duplicates the data listener 127.0.0.1:8080"),
])
def test_duplicates(config, problem):
    """
    A C{systemd:} entry whose socket has the address and port of another
    listener (of the port lists, another entry, or the same socket named
    twice) is one line: one socket would be served twice, or a bind fail.
    """
    with pytest.raises(ConfigError) as e:
        plan_listeners(config, TABLE, passed=PASSED)
    assert problem in str(e.value)


def test_two_sockets_same_systemd_socket():
    """
    Two sockets naming the same passed socket: one line, as for two sockets
    on the same port.
    """
    configs = [SocketConfig(name="a", listen=["systemd:domain=INET:index=0"]),
               SocketConfig(name="b", listen=["systemd:domain=INET:name=web"])]
    with pytest.raises(ConfigError, match="port 8080 on 127.0.0.1 is also used by socket 'a'"):
        plan_service(configs, TABLE, passed=PASSED)


def test_unix_plan():
    """
    A unix socket with a C{systemd:domain=UNIX} entry (and no path) listens
    on the passed socket's path; a datagram unix socket needs a datagram
    socket.
    """
    config = SocketConfig(protocol="unix", listen=["systemd:domain=UNIX:index=3"])
    assert config.path is None
    assert plan_listeners(config, TABLE, passed=PASSED) == [
        ListenerSpec("sock0", "/run/x.sock", 0, "data", "plain", "unix", systemd_fd=6)]
    assert plan_listeners(config, TABLE) == []
    dgram = SocketConfig(protocol="unix", datagram=True, listen=["systemd:domain=UNIX:index=4"])
    assert plan_listeners(dgram, TABLE, passed=PASSED)[0].systemd_fd == 7
    with pytest.raises(ConfigError, match="at index 3, not the UNIX datagram socket"):
        plan_listeners(SocketConfig(protocol="unix", datagram=True, listen=["systemd:domain=UNIX:index=3"]),
                       TABLE, passed=PASSED)


@pytest.mark.parametrize("kwargs, problem", [
    (dict(listen=["systemd:domain=UNIX:index=0"]), "a systemd: endpoint of domain UNIX needs a unix socket"),
    (dict(protocol="unix", listen=["systemd:domain=INET:index=0"]), "a unix socket takes one unix: or "
                                                                    "systemd:domain=UNIX endpoint"),
    (dict(protocol="unix", path="/run/y.sock", listen=["systemd:domain=UNIX:index=0"]), "and no path key"),
    (dict(protocol="unix", listen=["systemd:domain=UNIX:index=0", "systemd:domain=UNIX:index=1"]),
     "takes one unix: or systemd:domain=UNIX endpoint"),
    (dict(protocol="udp", local_ports=1, listen=["systemd:domain=INET:index=0"]), "listen"),
])
def test_socket_rules(kwargs, problem):
    """
    UNIX entries belong to unix sockets (one, instead of the path), INET
    ones to TCP sockets: otherwise one line.
    """
    with pytest.raises(ConfigError) as e:
        SocketConfig(**kwargs)
    assert problem in str(e.value)


def test_flags():
    """
    C{--listen systemd:domain=UNIX:...} alone builds a unix socket, an INET
    entry a TCP socket.
    """
    assert flag_protocol(["systemd:domain=UNIX:index=0"]) == "unix"
    assert flag_protocol(["systemd:domain=INET6:index=0"]) == "tcp"
    assert config_from_flags({"listen": ("systemd:domain=UNIX:index=0",)}).sockets[0].protocol == "unix"
    sock = config_from_flags({"listen": ("systemd:domain=INET:index=0",), "tcp": "0"}).sockets[0]
    assert (sock.protocol, sock.listen[0].index) == ("tcp", 0)
    with pytest.raises(ConfigError) as e:
        config_from_flags({"listen": ("systemd:domain=UNIX:index=0",), "tcp": "0"})
    assert str(e.value).startswith("socket 'sock0': --listen = 'systemd:domain=UNIX:index=0': a systemd: "
                                   "endpoint of domain UNIX needs a unix socket")


def test_read_environment():
    """
    C{LISTEN_*} for this pid are read (each descriptor described) and
    removed; for another pid nothing is passed, and they are removed too;
    in an upgraded generation the descriptions come from the old one's
    variable (removed as well).
    """
    environ = {"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "web:web6", "PATH": "/bin"}
    seen: list[tuple[int, str]] = []

    def describe(fd: int, name: str) -> Inherited:
        seen.append((fd, name))
        return (TCP4, TCP6)[fd - 3]

    assert read_environment(environ, 42, describe) == (TCP4, TCP6)
    assert seen == [(3, "web"), (4, "web6")] and environ == {"PATH": "/bin"}
    environ = {"LISTEN_PID": "41", "LISTEN_FDS": "1"}
    assert read_environment(environ, 42, describe) == () and environ == {}
    environ = {activated.TABLE_VARIABLE: encode(PASSED)}
    assert read_environment(environ, 42, describe) == PASSED and environ == {}


def test_table_round_trip():
    """
    The descriptions handed to the next generation read back the same;
    an unreadable value reads as none.
    """
    assert decode(encode(PASSED)) == PASSED
    assert decode("not json") == () and decode("[[1]]") == ()


def test_entry_sockets():
    """
    At start, the listeners of C{systemd:} entries take their socket by
    descriptor, whatever the address matching would do.
    """
    specs = [ListenerSpec("s", "127.0.0.1", 8080, "data"),
             ListenerSpec("s", "127.0.0.1", 8080, "data", systemd_fd=3)]
    assert entry_sockets(specs, {3: TCP4, 4: TCP6}) == {1: TCP4}
    assert entry_sockets(specs[:1], {3: TCP4}) == {}


def test_closed_systemd_socket_not_bound_again():
    """
    A C{systemd:} entry's listener whose socket is not waiting (closed
    since the start, then added back by a reload) is one line, never a new
    bind of the same address.
    """
    spec = ListenerSpec("s", "127.0.0.1", 8080, "data", systemd_fd=3)
    with pytest.raises(InheritError, match="the socket systemd passed \\(descriptor 3\\) was closed"):
        adopt.preset(object(), spec)
    assert adopt.preset(object(), ListenerSpec("s", "127.0.0.1", 8080, "data")) is False


def test_endpoint_parser_import_keeps_listen_fds():
    """
    Importing Twisted's endpoint parsers removes C{LISTEN_PID} and
    C{LISTEN_FDS} from the environment; through
    L{twisted_sock.twisted_internals.endpoints} they stay.
    """
    code = ("import os; os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='0'); import {}; "
            "print(os.environ.get('LISTEN_PID') == str(os.getpid()), os.environ.get('LISTEN_FDS'))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    for module, expected in (("twisted.internet.endpoints", "False None"),
                             ("twisted_sock.twisted_internals.endpoints", "True 0")):
        done = subprocess.run([sys.executable, "-c", code.format(module)], capture_output=True, text=True,
                              timeout=60, env=env)
        assert done.stdout.strip() == expected, (module, done.stdout, done.stderr)
