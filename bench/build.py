"""
Compile the C load generator (bench/loadgen.c) with gcc into bench/_build/,
again whenever the source or the flags change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.procs import BenchError

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "loadgen.c"
BUILD_DIR = HERE / "_build"
CFLAGS = ["-O2", "-Wall", "-Wextra", "-std=gnu11"]


def loadgen() -> Path:
    """
    The path of the compiled load generator, building it if needed (the
    binary's name carries a hash of source and flags; the build is atomic,
    so concurrent runners do not trip over each other).
    """
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise BenchError("gcc is not installed (Debian package gcc): it builds bench/loadgen.c")
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(CFLAGS).encode()).hexdigest()[:12]
    target = BUILD_DIR / f"loadgen-{digest}"
    if target.exists():
        return target
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=BUILD_DIR, prefix=".loadgen-")
    os.close(fd)
    try:
        result = subprocess.run([gcc, *CFLAGS, "-o", tmp, str(SOURCE)], capture_output=True, text=True)
        if result.returncode != 0:
            raise BenchError(f"gcc failed on {SOURCE}:\n{result.stderr}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def export_commit(rev: str) -> tuple[Path, str]:
    """
    The twisted_sock package as of commit C{rev}, exported (git archive)
    into bench/_build/tree-SHA/, so a run can measure a commit while the
    working tree is being edited. Returns the directory and the full SHA.
    """
    repo = HERE.parent
    result = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchError(f"not a commit: {rev}")
    sha = result.stdout.strip()
    target = BUILD_DIR / f"tree-{sha[:12]}"
    if (target / "twisted_sock" / "__init__.py").exists():
        return target, sha
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=BUILD_DIR, prefix=".tree-"))
    try:
        archive = subprocess.run(["git", "-C", str(repo), "archive", sha, "twisted_sock"],
                                 capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
        os.replace(tmp, target)
    except (subprocess.CalledProcessError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if (target / "twisted_sock" / "__init__.py").exists():
            return target, sha
        raise BenchError(f"could not export {rev}: {e}") from None
    return target, sha
