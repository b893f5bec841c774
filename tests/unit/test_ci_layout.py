"""
The CI layout: the matrix corners of C{tox.ini} run the unit tests and the
integration modules of C{MATRIX_MODULES}, which all exist (a renamed
module must not drop out of the corners unnoticed). No sockets.
"""

from __future__ import annotations

import configparser
from pathlib import Path

from tests.conftest import MATRIX_MODULES

ROOT = Path(__file__).resolve().parents[2]
CORNER_SELECTION = '-m "not integration or matrix"'


def test_every_matrix_module_exists():
    """
    Each module named in C{MATRIX_MODULES} is a file of
    C{tests/integration/}, with a reason given.
    """
    present = {path.name for path in (ROOT / "tests" / "integration").glob("test_*.py")}
    assert set(MATRIX_MODULES) - present == set()
    assert all(reason.strip() for reason in MATRIX_MODULES.values())


def test_the_corners_select_unit_and_matrix_tests():
    """
    Both matrix corners of C{tox.ini} run pytest with the unit tests and
    the C{matrix}-marked integration tests, and still pass C{posargs} on
    (so C{-- -m ""} runs the whole suite there).
    """
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    for env in ("twisted-oldest", "twisted-newest"):
        command = tox[f"testenv:{env}"]["commands"].strip()
        assert command == f"python -m pytest {CORNER_SELECTION} {{posargs}}", env
