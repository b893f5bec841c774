"""
The client address parser (C{twisted_sock.config.address}): every accepted
form and every refusal, as tables; plus the local-end parser.
"""

from __future__ import annotations

import pytest

from twisted_sock.config.address import (
    MAX_UNIX_PATH,
    Target,
    check_host,
    check_hostname,
    parse_address,
    parse_local,
    parse_local_address,
)


@pytest.mark.parametrize(
    ("text", "transport", "expected", "shown"),
    [
        ("127.0.0.1:8001", None, Target("tcp", "127.0.0.1", 8001), "127.0.0.1:8001"),
        ("localhost:1", None, Target("tcp", "localhost", 1), "localhost:1"),
        ("example.com.:65535", None, Target("tcp", "example.com.", 65535), "example.com.:65535"),
        ("my_host-1.lan:22", None, Target("tcp", "my_host-1.lan", 22), "my_host-1.lan:22"),
        ("[::1]:8001", None, Target("tcp", "::1", 8001), "[::1]:8001"),
        ("[0:0::1]:80", None, Target("tcp", "::1", 80), "[::1]:80"),
        ("[fe80::1%lo]:80", None, Target("tcp", "fe80::1%lo", 80), "[fe80::1%lo]:80"),
        ("[::ffff:127.0.0.1]:80", None, Target("tcp", "127.0.0.1", 80), "127.0.0.1:80"),
        ("tcp:127.0.0.1:80", None, Target("tcp", "127.0.0.1", 80), "127.0.0.1:80"),
        ("TCP:[::1]:80", None, Target("tcp", "::1", 80), "[::1]:80"),
        ("udp:127.0.0.1:9001", None, Target("udp", "127.0.0.1", 9001), "udp:127.0.0.1:9001"),
        ("udp:[::1]:9001", None, Target("udp", "::1", 9001), "udp:[::1]:9001"),
        ("127.0.0.1:9001", "udp", Target("udp", "127.0.0.1", 9001), "udp:127.0.0.1:9001"),
        ("udp:localhost:53", "udp", Target("udp", "localhost", 53), "udp:localhost:53"),
        ("unix:/run/app.sock", None, Target("unix", path="/run/app.sock"), "unix:/run/app.sock"),
        ("unix:relative.sock", None, Target("unix", path="relative.sock"), "unix:relative.sock"),
        ("unix:@app", None, Target("unix", path="\0app"), "unix:@app"),
        ("unix:/" + "x" * (MAX_UNIX_PATH - 1), None, Target("unix", path="/" + "x" * (MAX_UNIX_PATH - 1)),
         "unix:/" + "x" * (MAX_UNIX_PATH - 1)),
        ("bücher.example:80", None, Target("tcp", "bücher.example", 80), "bücher.example:80"),
        ("localhost:0080", None, Target("tcp", "localhost", 80), "localhost:80"),
    ],
)
def test_valid_addresses(text, transport, expected, shown):
    """
    Each accepted form parses to the expected target (IPv6 normalised and
    without brackets, an IPv4-mapped address as IPv4, the transport prefix
    case-insensitive) and prints back in its canonical form.
    """
    target = parse_address(text, transport)
    assert target == expected
    assert str(target) == shown


@pytest.mark.parametrize(
    ("text", "transport", "problem"),
    [
        ("", None, "empty address"),
        ("localhost", None, "no port (write host:port)"),
        ("localhost:", None, "no port number after :"),
        (":80", None, "no host before :port"),
        ("localhost:0", None, "port 0 is outside 1-65535"),
        ("localhost:65536", None, "port 65536 is outside 1-65535"),
        ("localhost:99999", None, "port 99999 is outside 1-65535"),
        ("localhost:-1", None, "'-1' is not a port number"),
        ("localhost:+80", None, "'+80' is not a port number"),
        ("localhost:http", None, "'http' is not a port number"),
        ("localhost:８０", None, "'８０' is not a port number"),
        ("::1:80", None, "an IPv6 address needs brackets: [address]:port"),
        ("[::1]", None, "no port (write [host]:port)"),
        ("[::1:80", None, "missing ] after an IPv6 address"),
        ("[::1]80", None, "unexpected '80' after ]"),
        ("[127.0.0.1]:80", None, "[127.0.0.1] is not an IPv6 address (brackets are for IPv6)"),
        ("[nonsense]:80", None, "[nonsense] is not an IPv6 address (brackets are for IPv6)"),
        ("300.1.1.1:80", None, "'300.1.1.1' is not an IPv4 address"),
        ("1.2.3:80", None, "'1.2.3' is not an IPv4 address"),
        ("bad_-.:80", None, "'bad_-.' is not a valid host name"),
        ("-lead.example:80", None, "'-lead.example' is not a valid host name"),
        ("a..b:80", None, "'a..b' is not a valid host name"),
        ("a/b:80", None, "'a/b' is not a valid host name"),
        ("user@host:80", None, "'user@host' is not a valid host name"),
        (("a" * 64) + ".example:80", None, "is not a valid host name"),
        (".".join(["a" * 60] * 5) + ":80", None, "is not a valid host name"),
        ("local host:80", None, "an address cannot contain spaces or control characters"),
        ("localhost:80\n", None, "an address cannot contain spaces or control characters"),
        ("unix:", None, "no path after unix:"),
        ("unix:@", None, "no name after unix:@"),
        ("unix:/" + "x" * MAX_UNIX_PATH, None, f"a UNIX socket path is at most {MAX_UNIX_PATH} bytes"),
        ("unix:/run/app.sock", "udp", "a unix: address, but udp was asked for"),
        ("tcp:127.0.0.1:80", "udp", "a tcp: address, but udp was asked for"),
        ("127.0.0.1:80", "sctp", "unknown transport 'sctp'"),
        (None, None, "an address must be a string"),
    ],
)
def test_invalid_addresses(text, transport, problem):
    """
    Every malformed address is refused with a ValueError whose short
    message names the problem (the caller adds ADDRESS_INVALID and the
    address).
    """
    with pytest.raises(ValueError) as caught:
        parse_address(text, transport)
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)


def test_nul_in_unix_path_refused():
    """
    A NUL inside a UNIX path (which would silently cut it) is refused;
    the control-character check catches it first.
    """
    with pytest.raises(ValueError, match="control characters"):
        parse_address("unix:/a\0b")


@pytest.mark.parametrize(
    ("text", "ip"),
    [("127.0.0.1:1", "127.0.0.1"), ("[::1]:1", "::1"), ("localhost:1", None), ("unix:/x", None)],
)
def test_target_ip(text, ip):
    """
    C{Target.ip} is the host as an address, or None for a name or a path.
    """
    target = parse_address(text)
    assert (str(target.ip) if target.ip is not None else None) == ip


@pytest.mark.parametrize(
    ("host", "result"),
    [("127.0.0.1", "127.0.0.1"), ("::FFFF:10.1.2.3", "10.1.2.3"), ("0::1", "::1"),
     ("Example.COM", "Example.COM")],
)
def test_check_host(host, result):
    """
    check_host normalises IP addresses and returns names as given.
    """
    assert check_host(host) == result


@pytest.mark.parametrize("name", ["", ".", "a" * 254, "x.-y", "*.example"])
def test_check_hostname_refuses(name):
    """
    Empty names, over-long names, bad labels and wildcards are not host
    names.
    """
    with pytest.raises(ValueError):
        check_hostname(name)


@pytest.mark.parametrize(
    ("address", "port", "expected"),
    [
        (None, None, None),
        ("", 0, None),
        ("127.0.0.1", None, ("127.0.0.1", 0)),
        ("[::1]", "0", ("::1", 0)),
        ("::1", 40000, ("::1", 40000)),
        (None, "40000", ("", 40000)),
        ("::ffff:127.0.0.1", 5, ("127.0.0.1", 5)),
    ],
)
def test_parse_local(address, port, expected):
    """
    The local end: an IP address (normalised, a mapped one as IPv4) and/or
    a port (0 = any); None when neither is given.
    """
    assert parse_local(address, port) == expected


@pytest.mark.parametrize(
    ("address", "port", "problem"),
    [
        ("localhost", None, "'localhost' is not an IP address (the local address must be one)"),
        ("127.0.0.1", 70000, "port 70000 is outside 0-65535"),
        ("127.0.0.1", "x", "'x' is not a port number"),
        (5, None, "the local address must be a string"),
    ],
)
def test_parse_local_refuses(address, port, problem):
    """
    The local address must be an IP address (binding must not resolve a
    name) and the port 0-65535.
    """
    with pytest.raises(ValueError) as caught:
        parse_local(address, port)
    assert str(caught.value) == problem


def test_parse_local_address_alone():
    """
    parse_local_address normalises the address and maps "no address" to
    "" (any).
    """
    assert parse_local_address("0:0::1") == "::1"
    assert parse_local_address(None) == ""
