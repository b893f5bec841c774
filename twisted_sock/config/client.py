"""
What a client connection needs, validated when built: L{ClientTLS} (the
client's TLS settings) and L{ConnectOptions} (target, local end, timeout,
TLS). Files are read and checked here, once, with the same loaders as the
server's C{[socket.tls]} (L{twisted_sock.config.tls}), so a missing CA file
or a key that does not match its certificate is a L{ConfigError} before any
connection is attempted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from twisted_sock.config import values
from twisted_sock.config.address import (
    Target,
    check_host,
    ip_literal,
    parse_address,
    parse_local,
    parse_local_address,
)
from twisted_sock.config.coerce import field_coercer
from twisted_sock.config.tls import (
    KeyMaterial,
    alpn_list,
    file_path,
    load_material,
    min_version_name,
    read_file,
)
from twisted_sock.errors import ConfigError

#: Default seconds for the whole opening: name resolution, connect, STARTTLS
#: and the TLS handshake.
DEFAULT_TIMEOUT = 30.0


def _rekeyed(error: ConfigError, keys: dict[str, str]) -> ConfigError:
    key = keys.get(error.key or "", error.key)
    if error.has_value:
        return ConfigError(error.problem, key=key, value=error.value)
    return ConfigError(error.problem, key=key)


@dataclass(frozen=True)
class ClientTLS:
    """
    TLS settings of one client connection.

    @ivar starttls: send C{STARTTLS}, wait for C{READY}, then handshake
        (instead of handshaking at once).
    @ivar verify: verify the server's certificate chain and name; C{False}
        is the explicit opt-out (C{--no-verify}).
    @ivar ca: CA certificates (PEM) to verify against; C{None}: the system
        trust store.
    @ivar certificate: client certificate (PEM, chain allowed), with
        C{private_key}.
    @ivar server_name: the name sent as SNI; also the verification name
        unless C{verify_hostname} is given. Default: the host, when it is a
        name. An IP address here is verified but never sent as SNI.
    @ivar verify_hostname: the name (or IP address) the certificate must be
        valid for, when it differs from C{server_name}.
    @ivar alpn: protocols offered, in preference order.
    @ivar alpn_required: fail with C{ALPN_SELECTION_FAILED} when the server
        selects none of them.
    @ivar min_version: C{TLSv1.2} (default) or C{TLSv1.3}.
    """

    starttls: bool = False
    verify: bool = True
    ca: str | None = None
    certificate: str | None = None
    private_key: str | None = None
    server_name: str | None = None
    verify_hostname: str | None = None
    alpn: Any = ()
    alpn_required: bool = False
    min_version: str = "TLSv1.2"
    material: KeyMaterial | None = field(init=False, compare=False, repr=False)
    ca_certificates: tuple[x509.Certificate, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__

        coerce = field_coercer(self)

        coerce("starttls", lambda v: values.boolean(v, "starttls"))
        coerce("verify", lambda v: values.boolean(v, "verify"))
        coerce("alpn_required", lambda v: values.boolean(v, "alpn_required"))
        for key in ("ca", "certificate", "private_key"):
            coerce(key, _optional_path(key))
        coerce("server_name", lambda v: None if v is None else check_host(_text(v, "server_name")))
        coerce("verify_hostname", lambda v: None if v is None else check_host(_text(v, "verify_hostname")))
        coerce("alpn", alpn_list)
        coerce("min_version", min_version_name)
        if self.certificate is not None and self.private_key is None:
            raise ConfigError("a client certificate needs its private key", key="private_key")
        if self.private_key is not None and self.certificate is None:
            raise ConfigError("a private key needs its certificate", key="certificate")
        if not self.verify and self.ca is not None:
            raise ConfigError("a CA file has no use without verification", key="ca", value=self.ca)
        if self.alpn_required and not self.alpn:
            raise ConfigError("alpn_required needs alpn", key="alpn")
        material = None
        if self.certificate is not None and self.private_key is not None:
            try:
                material = load_material(self.certificate, self.private_key, None)
            except ConfigError as e:
                raise _rekeyed(e, {"tls.certificate": "certificate", "tls.private_key": "private_key"}) \
                    from None
        set_(self, "material", material)
        cas: tuple[x509.Certificate, ...] = ()
        if self.ca is not None:
            try:
                pem = read_file(self.ca, "ca")
            except ConfigError as e:
                raise _rekeyed(e, {"tls.ca": "ca"}) from None
            try:
                cas = tuple(x509.load_pem_x509_certificates(pem))
            except ValueError:
                raise ConfigError("no PEM certificate in file", key="ca", value=self.ca) from None
        set_(self, "ca_certificates", cas)

    def names(self, host: str) -> tuple[str | None, str | None]:
        """
        C{(SNI name, verification name)} for a connection to C{host} (empty
        for a UNIX socket). No SNI is sent for an IP address; no name is
        verified when verification is off; a trailing dot is dropped.
        """
        sni = self.server_name if self.server_name is not None else (host or None)
        if sni is not None and ip_literal(sni) is not None:
            sni = None
        check = self.verify_hostname or self.server_name or host or None
        # A fully qualified "name." is sent and verified without its dot.
        sni = sni.rstrip(".") if sni is not None else None
        check = check.rstrip(".") if check is not None and self.verify else None
        return sni, check


def _optional_path(what: str) -> Callable[[Any], str | None]:
    def coerce(value: Any) -> str | None:
        return None if value is None else file_path(value, what)

    return coerce


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    return value


def _timeout(value: Any) -> float:
    number = values.non_negative_number(value, "timeout")
    if number == 0:
        raise ValueError("timeout must be more than 0 seconds")
    return number


@dataclass(frozen=True)
class ConnectOptions:
    """
    One client connection, validated: where to (L{Target}), from where,
    how long to try, and TLS.

    @ivar address: the address string (see
        L{twisted_sock.config.address.parse_address}) or a L{Target}.
    @ivar local: C{(address, port)} to bind before connecting (C{""} / 0 =
        any), or C{None}.
    @ivar timeout: seconds for the whole opening (resolve, connect,
        STARTTLS, handshake).
    @ivar tls: L{ClientTLS} or C{None} for plain.
    @ivar broadcast: UDP: may send to a broadcast address (C{SO_BROADCAST}).
    """

    address: Any
    local_address: str | None = None
    local_port: Any = None
    timeout: Any = DEFAULT_TIMEOUT
    tls: ClientTLS | None = None
    broadcast: bool = False
    target: Target = field(init=False, compare=False)
    local: tuple[str, int] | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if isinstance(self.address, Target):
            target = self.address
        else:
            try:
                target = parse_address(self.address)
            except ValueError as e:
                raise ConfigError(str(e), key="address", value=self.address) from None
        set_(self, "target", target)
        try:
            parse_local_address(self.local_address)
        except ValueError as e:
            raise ConfigError(str(e), key="local_address", value=self.local_address) from None
        try:
            local = parse_local(self.local_address, self.local_port)
        except ValueError as e:
            raise ConfigError(str(e), key="local_port", value=self.local_port) from None
        set_(self, "local", local)
        try:
            set_(self, "timeout", _timeout(self.timeout))
        except ValueError as e:
            raise ConfigError(str(e), key="timeout", value=self.timeout) from None
        self._check_together()

    def _check_together(self) -> None:
        target, local, tls = self.target, self.local, self.tls
        if target.transport == "unix" and local is not None:
            raise ConfigError("a local address or port does not apply to a UNIX socket",
                              key="local_address")
        if target.transport == "udp" and tls is not None:
            raise ConfigError("TLS does not apply to UDP", key="tls")
        if self.broadcast and target.transport != "udp":
            raise ConfigError("only applies to UDP (add --udp)", key="broadcast")
        if tls is not None and tls.verify and target.transport == "unix" and tls.names("")[1] is None:
            raise ConfigError("TLS over a UNIX socket needs server_name (the name to verify)",
                              key="server_name")
        if local is not None and local[0] and target.ip is not None:
            local_ip = ip_literal(local[0])
            if local_ip is not None and local_ip.version != target.ip.version:
                raise ConfigError(f"IPv{local_ip.version} cannot reach the IPv{target.ip.version} "
                                  f"address {target.host}", key="local_address", value=local[0])
