"""
The versions twisted-sock reports: its own, Twisted's and the OpenSSL that
pyOpenSSL (and so Twisted's TLS) uses.
"""

from __future__ import annotations


def versions() -> dict[str, str]:
    """
    C{{"twisted_sock": ..., "twisted": ..., "openssl": ...}}.
    """
    import twisted
    from twisted_sock import __version__

    try:
        from OpenSSL import SSL

        openssl = SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode("ascii", "replace")
    except ImportError:  # pragma: no cover - pyOpenSSL is a dependency
        import ssl

        openssl = ssl.OPENSSL_VERSION
    return {"twisted_sock": __version__, "twisted": twisted.__version__, "openssl": openssl}


def version_text() -> str:
    """
    What C{--version} prints: C{twisted-sock X.Y.Z} on the first line, then
    Twisted's and OpenSSL's versions.
    """
    found = versions()
    return f"twisted-sock {found['twisted_sock']}\nTwisted {found['twisted']}\n{found['openssl']}\n"
