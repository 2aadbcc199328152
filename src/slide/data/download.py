"""Download raw data (stdlib only): resumable, retried, sha256-verified, safely extracted, atomic.

- A download goes to `<dest>.part`; a later try resumes it with an HTTP Range request. A server that
  ignores Range (answers 200) restarts the file from byte 0; 416 on a complete `.part` means "done".
- Transient failures (connection errors, timeouts, 5xx, 408, 429, a short body) are retried with
  exponential backoff; other HTTP errors (404, 403, ...) fail at once.
- sha256: a mismatch deletes the file and fails. An unpinned sha256 (null) prints the computed one;
  with `strict` it fails instead (the finished `.part` stays, so pinning and rerunning costs nothing).
- Archives (zip, tar[.gz|.bz2|.xz]) are checked member by member before anything is extracted: absolute
  paths, `..`, links and special files are rejected; only the members the config names are extracted.
"""
from __future__ import annotations

import gzip
import http.client
import logging
import lzma
import os
import posixpath
import shutil
import stat
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from tqdm import tqdm

from ..atomic import atomic_path, sha256_file

log = logging.getLogger(__name__)

CHUNK = 1 << 20
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(RuntimeError):
    pass


class _Transient(Exception):
    """A failure worth retrying."""


def download(url: str, dest: str | os.PathLike, sha256: str | None = None, *, strict: bool = False,
             retries: int = 5, backoff: float = 2.0, timeout: float = 60.0, progress: bool = True) -> str:
    """Download `url` to `dest` (atomic rename from `dest.part`); return the file's sha256.

    `retries` extra attempts after the first, waiting backoff * 2**i seconds before attempt i+1.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if sha256 is not None:
        sha256 = sha256.strip().lower()
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout, progress)
            break
        except _Transient as e:
            if attempt == retries:
                raise DownloadError(f"{url}: giving up after {retries + 1} attempts: {e}") from None
            wait = backoff * 2 ** attempt
            log.warning("%s: %s; retrying in %.1f s (attempt %d of %d)", url, e, wait, attempt + 2, retries + 1)
            print(f"download: {e}; retrying in {wait:.1f} s", file=sys.stderr)
            time.sleep(wait)

    digest = sha256_file(part)
    try:
        verify(url, digest, sha256, strict)
    except DownloadError:
        if sha256 is not None:
            part.unlink(missing_ok=True)  # a mismatch: never keep (or resume) a wrong file
        raise
    os.replace(part, dest)
    return digest


def verify(what: str, digest: str, sha256: str | None, strict: bool) -> None:
    """Check a computed sha256 against the pinned one (None: print it; strict refuses that)."""
    if sha256 is None:
        msg = f"{what}: sha256 is not pinned; the downloaded file has sha256 {digest}"
        if strict:
            raise DownloadError(f"{msg}. Strict verification refuses unpinned files: put this sha256 in the config "
                                f"(after checking it against a trusted source) or set strict: false")
        print(f"download: {msg} (pin it in the config to verify future downloads)", file=sys.stderr)
        log.warning(msg)
    elif digest != sha256.strip().lower():
        raise DownloadError(f"{what}: sha256 mismatch: expected {sha256}, got {digest}; the download was deleted "
                            f"(wrong URL, a changed file upstream, or a corrupted transfer)")


def _fetch_once(url: str, part: Path, timeout: float, progress: bool) -> None:
    start = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "slide-repro/0.1", "Accept-Encoding": "identity"})
    if start:
        req.add_header("Range", f"bytes={start}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:
            total = _range_total(e.headers.get("Content-Range"))
            if total == start:  # the .part is already complete
                return
            part.unlink()  # a stale or over-long partial file: start again
            raise _Transient(f"HTTP 416 for a partial file of {start} bytes; restarting from 0") from None
        if e.code in _RETRY_STATUS:
            raise _Transient(f"HTTP {e.code} {e.reason}") from None
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
        raise _Transient(f"{type(e).__name__}: {getattr(e, 'reason', e)}") from None

    with resp:
        if resp.status == 206:
            first = _range_first(resp.headers.get("Content-Range"))
            if first != start:
                part.unlink()
                raise _Transient(f"server resumed at byte {first}, not {start}; restarting from 0")
            mode = "ab"
        else:  # 200: the server ignored Range (or there was nothing to resume): whole file from byte 0
            if start:
                log.info("%s: server ignored the Range request; restarting from byte 0", url)
            start, mode = 0, "wb"
        if start == 0 and "text/html" in (resp.headers.get("Content-Type") or ""):
            raise DownloadError(f"{url}: the server sent an HTML page instead of the data (a login or "
                                f"confirmation page?); download the file by hand and use dataset.source: local")
        length = resp.headers.get("Content-Length")
        expected = start + int(length) if length is not None else None
        got = start
        try:
            with open(part, mode) as f, tqdm(total=expected, initial=start, unit="B", unit_scale=True,
                                             desc=part.name.removesuffix(".part"), disable=not progress,
                                             file=sys.stderr, mininterval=1.0) as bar:
                while True:
                    try:
                        chunk = resp.read(CHUNK)
                    except (TimeoutError, OSError, http.client.HTTPException) as e:  # e.g. IncompleteRead, reset
                        raise _Transient(f"connection lost after {got} bytes ({type(e).__name__}: {e})") from None
                    if not chunk:
                        break
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
        except OSError as e:  # the local side (a full disk, a quota, permissions): retrying would not help
            raise DownloadError(f"{part}: cannot write the download ({e.strerror or e}); what was written stays "
                                "there and the next run resumes from it") from None
        if expected is not None and got != expected:
            raise _Transient(f"connection closed after {got} of {expected} bytes")


def _range_first(content_range: str | None) -> int | None:
    # "bytes 100-199/200"
    try:
        return int(content_range.split()[1].split("-")[0])
    except (AttributeError, IndexError, ValueError):
        return None


def _range_total(content_range: str | None) -> int | None:
    # "bytes */200"
    try:
        return int(content_range.rsplit("/", 1)[1])
    except (AttributeError, IndexError, ValueError):
        return None


# ---- archives ----------------------------------------------------------------------------------

def _unsafe_name(name: str) -> str | None:
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    norm = posixpath.normpath(name.replace("\\", "/"))
    if norm == ".." or norm.startswith("../") or "/../" in f"/{norm}/":
        return "a path escaping the target folder ('..')"
    return None


def _check_member(archive: Path, name: str, kind: str | None) -> None:
    why = _unsafe_name(name)
    if why is None and kind is not None:
        why = kind
    if why:
        raise DownloadError(f"{archive}: unsafe archive member {name!r}: {why}; refusing to extract")


# What reading a damaged zip or tar (gzip, bzip2, xz) raises: bad CRCs, truncated streams, bad headers.
_DAMAGED = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)


def extract_members(archive: str | os.PathLike, members: dict[str, str | os.PathLike]) -> None:
    """Extract archive members {member name: destination path} after checking every member is safe.

    Each destination is written atomically. Directories are fine; links, devices and names that are
    absolute or contain `..` fail the whole archive (nothing is written). A damaged archive is a
    DownloadError naming it and saying to delete it.
    """
    archive = Path(archive)
    try:
        _extract(archive, members)
    except _DAMAGED as e:
        raise DownloadError(f"{archive}: the archive is damaged ({e}); delete {archive} and rerun to download it "
                            "again") from None
    except OSError as e:  # bz2 reports a damaged stream as a plain OSError; writing errors name their file
        if e.filename is not None:
            raise
        raise DownloadError(f"{archive}: the archive is damaged ({e}); delete {archive} and rerun to download it "
                            "again") from None


def _extract(archive: Path, members: dict[str, str | os.PathLike]) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            infos = {i.filename: i for i in z.infolist()}
            for info in infos.values():
                mode = info.external_attr >> 16  # Unix mode when made on Unix; the type bits may be 0
                kind = None
                if stat.S_ISLNK(mode):
                    kind = "a symbolic link"
                elif stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    kind = "not a regular file"
                _check_member(archive, info.filename, kind)
            _require(archive, members, infos)
            for name, dest in members.items():
                with z.open(infos[name]) as src, atomic_path(dest) as tmp, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
        return
    try:
        tar = tarfile.open(archive, "r:*")
    except tarfile.TarError:
        raise DownloadError(f"{archive}: not a zip or tar archive, or a damaged one; delete {archive} and rerun to "
                            "download it again") from None
    with tar:
        infos = {}
        for info in tar.getmembers():
            kind = None
            if info.issym() or info.islnk():
                kind = f"a link to {info.linkname!r}"
            elif not (info.isfile() or info.isdir()):
                kind = "not a regular file"
            _check_member(archive, info.name, kind)
            infos[info.name] = info
        _require(archive, members, infos)
        for name, dest in members.items():
            src = tar.extractfile(infos[name])
            with src, atomic_path(dest) as tmp, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)


def _require(archive: Path, members: dict, infos: dict) -> None:
    missing = [m for m in members if m not in infos]
    if missing:
        files = sorted(n for n in infos if not n.endswith("/"))
        raise DownloadError(f"{archive}: no member {missing[0]!r}; the archive holds {files[:20]}")


# ---- a configured dataset ----------------------------------------------------------------------

def fetch_dataset(cfg: dict, train: str | os.PathLike, test: str | os.PathLike, cache: str | os.PathLike,
                  progress: bool = True) -> dict:
    """Fetch the distribution `cfg["distribution"]` of a `dataset.download` config into train/test.

    A distribution is either one archive {url, sha256, members: {train: name, test: name}, filename} or plain
    files {train: {url, sha256}, test: {url, sha256}}. Archives are kept in `cache` (delete them to
    free the space). Returns {file: sha256} of what was downloaded.
    """
    name = cfg.get("distribution")
    dists = cfg.get("distributions") or {}
    if name not in dists:
        raise ValueError(f"dataset.download.distribution: {name!r} is not one of {sorted(dists)}")
    dist = dists[name]
    opts = {"strict": bool(cfg.get("strict", False)), "retries": int(cfg.get("retries", 5)),
            "backoff": float(cfg.get("backoff", 2.0)), "timeout": float(cfg.get("timeout", 60.0)),
            "progress": progress}
    if "url" in dist:
        members = dist.get("members") or {}
        if set(members) != {"train", "test"}:
            raise ValueError(f"dataset.download.distributions.{name}.members: expected train and test member names")
        # `filename` names the cached archive when the URL's path does not (e.g. .../download?id=...)
        archive = Path(cache) / (dist.get("filename") or posixpath.basename(dist["url"].split("?")[0]))
        if archive.exists():  # cached by an earlier run (or put there by hand): verify it like a download
            digest = sha256_file(archive)
            try:
                verify(str(archive), digest, dist.get("sha256"), opts["strict"])
            except DownloadError as e:
                if dist.get("sha256") is None:
                    raise
                log.warning("%s; downloading it again", e)
                archive.unlink()
        if not archive.exists():
            digest = download(dist["url"], archive, dist.get("sha256"), **opts)
        try:
            extract_members(archive, {members["train"]: train, members["test"]: test})
        except DownloadError as e:
            if dist.get("sha256") is None and "damaged" in str(e):  # why the damage was not caught earlier
                raise DownloadError(f"{e} (dataset.download.distributions.{name}.sha256 is null, so the cached "
                                    f"archive could not be checked; pin it only once one extracts)") from None
            raise
        return {archive.name: digest}
    out = {}
    for split, dest in (("train", train), ("test", test)):
        entry = dist.get(split)
        if not isinstance(entry, dict) or "url" not in entry:
            raise ValueError(f"dataset.download.distributions.{name}: expected url+members or train/test urls")
        out[Path(dest).name] = download(entry["url"], dest, entry.get("sha256"), **opts)
    return out
