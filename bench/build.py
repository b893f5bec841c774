"""
Compile the C load generators (bench/loadgen.c; bench/tlsgen.c, linked with
BoringSSL or OpenSSL's libssl) with gcc into bench/_build/, again whenever the
source or the flags change.
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
TLS_SOURCE = HERE / "tlsgen.c"
BUILD_DIR = HERE / "_build"
CFLAGS = ["-O2", "-Wall", "-Wextra", "-std=gnu11"]


def loadgen() -> Path:
    """
    The path of the compiled load generator, building it if needed (the
    binary's name carries a hash of source and flags; the build is atomic,
    so concurrent runners do not trip over each other).
    """
    return _compile(SOURCE, "loadgen", [])


def tlsgen() -> Path:
    """
    The path of the compiled TLS load generator (bench/tlsgen.c). Linked
    with BoringSSL where Debian's android-libboringssl-dev is installed:
    OpenSSL 3.0's client spends about as much CPU on a handshake as a Python
    server (its certificate decoding alone is a third of it), BoringSSL's
    half of that. Otherwise with the system's OpenSSL (libssl-dev).
    C{BENCH_TLS_LIBRARY=openssl} or C{=boringssl} forces the choice.
    """
    return _compile(TLS_SOURCE, "tlsgen", tls_flags())


def tls_flags() -> list[str]:
    choice = os.environ.get("BENCH_TLS_LIBRARY", "")
    if choice not in ("", "openssl", "boringssl"):
        raise BenchError(f"BENCH_TLS_LIBRARY={choice}: choose openssl or boringssl")
    if choice != "openssl":
        libs = sorted(Path("/usr/lib").glob("*/android/libssl.so"))
        if Path("/usr/include/android/openssl/ssl.h").exists() and libs:
            lib_dir = str(libs[0].parent)
            return ["-I/usr/include/android", f"-L{lib_dir}", f"-Wl,-rpath,{lib_dir}", "-lssl", "-lcrypto"]
        if choice == "boringssl":
            raise BenchError("BENCH_TLS_LIBRARY=boringssl: install android-libboringssl-dev")
    return ["-lssl", "-lcrypto"]


def _compile(source: Path, stem: str, libs: list[str]) -> Path:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise BenchError(f"gcc is not installed (Debian package gcc): it builds bench/{source.name}")
    digest = hashlib.sha256(source.read_bytes() + " ".join(CFLAGS + libs).encode()).hexdigest()[:12]
    target = BUILD_DIR / f"{stem}-{digest}"
    if target.exists():
        return target
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=BUILD_DIR, prefix=f".{stem}-")
    os.close(fd)
    try:
        result = subprocess.run([gcc, *CFLAGS, "-o", tmp, str(source), *libs], capture_output=True, text=True)
        if result.returncode != 0:
            hint = " (install libssl-dev or android-libboringssl-dev)" if "openssl/" in result.stderr else ""
            raise BenchError(f"gcc failed on {source}{hint}:\n{result.stderr}")
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
