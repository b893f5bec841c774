"""
The shipped systemd units (C{docs/examples/twisted-sock.socket} and
C{.service}): valid for C{systemd-analyze verify} with the virtual
environment in place of C{/opt/twisted-sock}, and hardened: C{systemd-analyze
security --offline=true} rates the service at most 3.0.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.integration.test_twistd import BIN, run

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
VENV = "/opt/twisted-sock"
MAX_EXPOSURE = 3.0


def installed_units(tmp_path: Path) -> Path:
    """
    The two units as an installation would have them, with this test's
    virtual environment where the shipped unit says C{/opt/twisted-sock}.
    """
    service = (EXAMPLES / "twisted-sock.service").read_text()
    assert f"ExecStart={VENV}/bin/twistd " in service
    (tmp_path / "twisted-sock.service").write_text(service.replace(VENV, str(BIN.parent)))
    shutil.copy(EXAMPLES / "twisted-sock.socket", tmp_path / "twisted-sock.socket")
    return tmp_path


def test_units_verify(tmp_path):
    """
    C{systemd-analyze verify} accepts both units without a word (an unknown
    key or a missing executable would be reported).
    """
    analyze = require_tool("systemd-analyze")
    units = installed_units(tmp_path)
    done = run(analyze, "verify", "--man=false", str(units / "twisted-sock.socket"),
               str(units / "twisted-sock.service"), cwd=str(units))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_service_is_hardened(tmp_path):
    """
    C{systemd-analyze security --offline=true} rates the service's exposure
    at most 3.0.
    """
    analyze = require_tool("systemd-analyze")
    units = installed_units(tmp_path)
    done = run(analyze, "security", "--offline=true", str(units / "twisted-sock.service"), cwd=str(units))
    match = re.search(r"Overall exposure level for twisted-sock.service: (\d+\.\d+)", done.stdout)
    assert match is not None, done.stdout + done.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, done.stdout
