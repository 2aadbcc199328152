"""Build the native core with CMake into a directory (the pipeline's `build_native` rule, and developers).

    python -m slide.build results/build [--portable] [--build-type RelWithDebInfo] [--sanitize]

Writes the extension and `build.json` (compiler, flags, ISA levels, sha256 of the extension).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from .atomic import write_json

NATIVE_SRC = Path(__file__).resolve().parents[2] / "native"


def _run(cmd: list[str], log) -> str:
    print("+", " ".join(cmd), file=log, flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(p.stdout, file=log, flush=True)
    if p.returncode != 0:
        tail = "\n".join(p.stdout.strip().splitlines()[-15:])
        raise RuntimeError(f"command failed ({p.returncode}): {' '.join(cmd)}\n{tail}")
    return p.stdout


def build(out_dir: str | os.PathLike, portable: bool = False, build_type: str = "Release", sanitize: bool = False,
          jobs: int | None = None, source: Path = NATIVE_SRC, host: dict | None = None, log=sys.stderr) -> dict:
    """Configure and build `source` into out_dir/cmake, copy the extension to out_dir, write build.json."""
    import pybind11

    out = Path(out_dir).resolve()
    cmake_dir = out / "cmake"
    cmake = shutil.which("cmake") or "cmake"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    _run([cmake, "-S", str(source), "-B", str(cmake_dir), *gen,
          f"-DCMAKE_BUILD_TYPE={build_type}", f"-DSLIDE_PORTABLE={'ON' if portable else 'OFF'}",
          f"-DSLIDE_SANITIZE={'ON' if sanitize else 'OFF'}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
          f"-DPython_EXECUTABLE={sys.executable}", "-DCMAKE_VERBOSE_MAKEFILE=OFF"], log)
    _run([cmake, "--build", str(cmake_dir), "-j", str(jobs or os.cpu_count() or 1)], log)
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    built = next(cmake_dir.glob(f"_native{suffix}"), None)
    if built is None:
        raise RuntimeError(f"{cmake_dir}: the build produced no _native{suffix}")
    target = out / built.name
    tmp = out / f".{built.name}.tmp"
    shutil.copy2(built, tmp)
    os.replace(tmp, target)
    cache = _cmake_cache(cmake_dir / "CMakeCache.txt")
    info = {
        "extension": target.name,
        "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "sources_sha256": _tree_sha256(source),
        "compiler": cache.get("CMAKE_CXX_COMPILER", ""),
        "compiler_version": _compiler_version(cache.get("CMAKE_CXX_COMPILER", "c++")),
        "build_type": build_type,
        "portable": portable,
        "sanitize": sanitize,
        "flags": "-O3 -fno-math-errno" + ("" if portable else " -march=native"),
        "kernels_compiled": ["avx512_bf16", "avx512", "avx2", "scalar"],
        "python": sysconfig.get_python_version(),
        "host_isa": (host or {}).get("isa"),
    }
    write_json(out / "build.json", info)
    return info


def _cmake_cache(path: Path) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        if ":" in line and "=" in line and not line.startswith(("//", "#")):
            key, _, value = line.partition("=")
            out[key.split(":")[0]] = value
    return out


def _compiler_version(cxx: str) -> str:
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "unknown"


def _tree_sha256(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Build slide._native with CMake.")
    ap.add_argument("out_dir")
    ap.add_argument("--portable", action="store_true", help="no -march=native (runtime dispatch only)")
    ap.add_argument("--build-type", default="Release")
    ap.add_argument("--sanitize", action="store_true", help="ASan + UBSan")
    ap.add_argument("--source", type=Path, default=NATIVE_SRC,
                    help="the native/ directory to build (default: this package's; another checkout's to compare builds)")
    a = ap.parse_args(argv)
    if not (a.source / "CMakeLists.txt").is_file():
        raise SystemExit(f"{a.source}: no CMakeLists.txt (expected a checkout's native/ directory)")
    print(json.dumps(build(a.out_dir, a.portable, a.build_type, a.sanitize, source=a.source), indent=2))


if __name__ == "__main__":
    main()
