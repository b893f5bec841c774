"""
C{upgrade} is not supported with workers: the admin socket's C{upgrade}
and C{SIGUSR2} are refused with one line and change nothing (the main
process and its workers keep serving).
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.integration.test_twistd import TWISTED_SOCK, run
from tests.integration.test_workers import served, status, until, workers

pytestmark = pytest.mark.integration


def test_upgrade_with_workers_is_refused_with_one_line(tmp_path):
    """
    With two workers, C{twisted-sock upgrade} exits non-zero with one line
    naming workers, and C{SIGUSR2} does not end the main process; the same
    two workers still serve afterwards.
    """
    conf = tmp_path / "sock.toml"
    conf.write_text('[sock]\nworkers = 2\nadmin_socket = "admin.sock"\n\n[[socket]]\nname = "s"\n'
                    'local_ports = [0]\nhttp_ports = [0]\ninterfaces = "lo"\nincoming = "any-ip-any-port"\n')
    with workers("--config", str(conf)) as server:
        before = sorted(w["pid"] for w in status(server)["workers"])
        done = run(TWISTED_SOCK, "upgrade", str(conf))
        lines = (done.stdout + done.stderr).strip().splitlines()
        assert done.returncode != 0 and len(lines) == 1 and "workers" in lines[0], lines
        os.kill(server.proc.pid, signal.SIGUSR2)
        server.wait_for("upgrade is not supported with workers", 30)
        assert server.proc.poll() is None
        assert until(lambda: served(server.port(), "127.0.0.1"))
        assert sorted(w["pid"] for w in status(server)["workers"]) == before
