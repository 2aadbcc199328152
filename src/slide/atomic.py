"""File I/O shared by every stage: atomic writes (readers and Snakemake never see a half-written output)
and JSON reading with one-line errors."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path next to `path`; fsync it and rename it onto `path` only if the block succeeds.

    `suffix` keeps an extension that a writer insists on (numpy adds `.npz` otherwise). The temporary's
    name carries the writer's pid, so the next writer of `path` removes what a killed writer left.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp creates 0600; give outputs the usual permissions
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise _naming_the_output(e, path)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield a temporary folder next to `path` to fill; if the block succeeds, fsync it and put it in place of
    `path` (an earlier folder there is moved aside first and removed after, so `path` is never half-written).

    The temporary's name carries the writer's pid, as atomic_path's, so a killed writer's leftovers are removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}-", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp creates 0700; give it a plain mkdir's permissions
        yield tmp
        fsync_tree(tmp)
        old = path.with_name(f".{path.name}.{os.getpid()}-old")
        if path.exists() or path.is_symlink():
            os.rename(path, old)
        os.rename(tmp, path)
        fsync_path(path.parent)
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        elif old.exists() or old.is_symlink():
            old.unlink()
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _naming_the_output(e, path)


def _naming_the_output(e: BaseException, path: Path) -> BaseException:
    """A failed write (a full disk, a quota) says `[Errno 28] No space left on device` and no file: the same error
    naming the output it was for, or `e` itself when it names one already."""
    if isinstance(e, OSError) and e.filename is None and e.errno is not None:
        named = OSError(e.errno, e.strerror, str(path))
        named.__cause__ = e
        return named
    return e


def remove_stale_temporaries(path: str | os.PathLike) -> None:
    """Remove temporaries of `path` (see atomic_path) whose writing process no longer exists."""
    path = Path(path)
    prefix = f".{path.name}."
    with contextlib.suppress(FileNotFoundError):
        for entry in path.parent.iterdir():
            pid = entry.name[len(prefix):].partition("-")[0] if entry.name.startswith(prefix) else ""
            if pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(FileNotFoundError):
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's or a directory's data (a directory: its entries, e.g. a rename) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | os.PathLike) -> None:
    """fsync every file and directory under `root` (bottom-up), then `root` itself."""
    for dirpath, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            fsync_path(os.path.join(dirpath, name))
        fsync_path(dirpath)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_json(path: str | os.PathLike) -> dict:
    """Parse a JSON object; a bad file raises one line naming file, line and problem."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
