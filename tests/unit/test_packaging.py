"""
The packaging: every package of the source tree is listed (so a plain
C{pip install .} ships all of them), and the versions the package claims
are the versions that are tested: C{pyproject.toml}'s Python classifiers
and Twisted range against the C{tox} matrix (which C{.ci/run} runs) and the
wheel check.
"""

from __future__ import annotations

import configparser
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def pyproject() -> dict:
    """
    The C{[project]} table of C{pyproject.toml}.
    """
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def tox() -> configparser.ConfigParser:
    """
    C{tox.ini}, parsed.
    """
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "tox.ini")
    return parser


def version(text: str) -> tuple[int, ...]:
    """
    C{"26.4"} or C{"26.4.0"} as a comparable tuple, trailing zeros dropped.
    """
    parts = [int(p) for p in text.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def classifier_pythons() -> list[str]:
    """
    The C{X.Y} versions of the C{Programming Language :: Python :: X.Y}
    classifiers, lowest first.
    """
    found = [m.group(1) for c in pyproject()["classifiers"]
             if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))]
    return sorted(found, key=version)


def twisted_range() -> tuple[str, str]:
    """
    The floor and the upper bound of the Twisted requirement.
    """
    [spec] = [d for d in pyproject()["dependencies"] if re.match(r"twisted\b", d, re.I)]
    match = re.fullmatch(r"twisted(?:\[[^]]*\])?>=([\d.]+),<([\d.]+)", spec.replace(" ", ""), re.I)
    assert match is not None, f"{spec!r}: expected twisted>=FLOOR,<BOUND"
    return match.group(1), match.group(2)


def test_classifiers_are_the_tox_pythons() -> None:
    """
    One classifier per supported Python, starting at C{requires-python}'s
    floor, and C{tox} has a C{pyXY} environment for each of them and no
    other.
    """
    pythons = classifier_pythons()
    assert pythons, "no Programming Language :: Python :: 3.X classifier"
    assert pyproject()["requires-python"] == f">={pythons[0]}"
    assert "Programming Language :: Python :: 3 :: Only" in pyproject()["classifiers"]
    envs = [e.strip() for e in tox()["tox"]["envlist"].split(",")]
    assert [e for e in envs if re.fullmatch(r"py\d+", e)] == ["py" + p.replace(".", "") for p in pythons]


def test_twisted_range_is_the_tested_range() -> None:
    """
    The Twisted floor is the version C{tox -e twisted-oldest} pins, on the
    lowest supported Python; C{twisted-newest} runs on the highest; the
    range has an upper bound above the floor.
    """
    floor, bound = twisted_range()
    config = tox()
    pythons = classifier_pythons()
    [pin] = re.findall(r"twisted(?:\[[^]]*\])?==([\d.]+)", config["testenv:twisted-oldest"]["deps"], re.I)
    assert version(pin) == version(floor)
    assert version(bound) > version(floor)
    assert config["testenv:twisted-oldest"]["basepython"] == f"python{pythons[0]}"
    assert config["testenv:twisted-newest"]["basepython"] == f"python{pythons[-1]}"


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
