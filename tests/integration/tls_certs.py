"""
More server certificates from a test PKI's CA (L{twisted_sock.testing.make_pki}):
one per host name for the SNI tests, RSA keys for the static-RSA tests.
"""

from __future__ import annotations

import subprocess

from twisted_sock.testing import TestPKI, issue_server_certificate


def issue(pki: TestPKI, directory: str, stem: str, names: tuple[str, ...],
          use_rsa: bool = False) -> tuple[str, str]:
    """
    Write C{stem}.pem and C{stem}.key: a server certificate for the DNS
    C{names}, signed by C{pki}'s CA (ECDSA P-256, or RSA 2048); returns
    their paths (L{twisted_sock.testing.issue_server_certificate}).
    """
    return issue_server_certificate(pki, directory, stem, names, use_rsa=use_rsa)


def s_client(openssl: str, port: int, *args: str, timeout: float = 30.0) -> tuple[bool, str]:
    """
    Run C{openssl s_client} against C{127.0.0.1:port} with C{args} (no
    input): whether a handshake completed, and its output.
    """
    done = subprocess.run([openssl, "s_client", "-connect", f"127.0.0.1:{port}", *args],
                          input=b"", capture_output=True, timeout=timeout)
    out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    completed = done.returncode == 0 and "Cipher is (NONE)" not in out and "Cipher    : 0000" not in out
    return completed, out
