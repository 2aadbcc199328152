"""Loading the compiled core, slide._native.

`pip install .` builds a portable extension into the package. The pipeline's `build_native` rule builds
one tuned for the checked host into results/build/; `use_build(dir)` makes that one *the* slide._native
for this process (call it before anything imports the extension).
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

ENV_VAR = "SLIDE_NATIVE_DIR"


def use_build(build_dir: str | os.PathLike) -> Path:
    """Register the extension found in `build_dir` as slide._native; return its path."""
    build_dir = Path(build_dir)
    candidates = [p for suffix in importlib.machinery.EXTENSION_SUFFIXES for p in build_dir.glob(f"_native{suffix}")]
    if not candidates:
        raise ImportError(f"{build_dir}: no compiled _native extension for this Python "
                          f"(expected _native{importlib.machinery.EXTENSION_SUFFIXES[0]}); run the build_native rule")
    loaded = sys.modules.get("slide._native")
    if loaded is not None:
        if Path(loaded.__file__).resolve() == candidates[0].resolve():
            return candidates[0]
        raise ImportError(f"slide._native was already imported from {loaded.__file__}; call use_build() first")
    spec = importlib.util.spec_from_file_location("slide._native", candidates[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["slide._native"] = module
    import slide

    slide._native = module
    return candidates[0]


def native():
    """The extension module (the build named by $SLIDE_NATIVE_DIR if set, else the installed one)."""
    if "slide._native" not in sys.modules and os.environ.get(ENV_VAR):
        use_build(os.environ[ENV_VAR])
    try:
        from . import _native
    except ImportError as e:
        raise ImportError("slide._native is not built: run `pip install -e .` in the repository root, "
                          "with a C++17 compiler and CMake on PATH (without them only the Python part installs)") from e
    return _native
