"""
The packaging lists every package of the source tree, so a plain
C{pip install .} ships all of them.
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed():
    """
    Each folder of C{twisted_sock} with an C{__init__.py} is one of
    C{[tool.setuptools] packages} in C{pyproject.toml} (they are listed by
    hand: a new sub-package left out would be missing from an installed
    copy, while the editable install used by the tests still finds it).
    """
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts)
             for init in (ROOT / "twisted_sock").rglob("__init__.py")}
    assert found - listed == set()


def test_every_data_file_is_listed():
    """
    Each non-Python file of C{twisted_sock} (the status page's template,
    C{py.typed}) matches a C{[tool.setuptools.package-data]} pattern of its
    package, so an installed copy has it.
    """
    from fnmatch import fnmatch

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    missing = []
    for path in (ROOT / "twisted_sock").rglob("*"):
        if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
            continue
        package = ".".join(path.parent.relative_to(ROOT).parts)
        if not any(fnmatch(path.name, pattern) for pattern in data.get(package, ())):
            missing.append(str(path.relative_to(ROOT)))
    assert missing == []
