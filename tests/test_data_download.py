"""Downloader against a local HTTP server on 127.0.0.1 (random port): full, interrupted + resumed,
wrong checksum, no Range support, 404, HTML page, unpinned sha256, and unsafe archive members."""
import hashlib
import io
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from slide.data.download import DownloadError, download, extract_members, fetch_dataset

FAST = {"retries": 2, "backoff": 0.01, "timeout": 5, "progress": False}
PAYLOAD = bytes(range(256)) * 400  # 100 KiB


class Server:
    """Serves `files`; knobs: range support, truncating the first `cut` responses, fixed statuses."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.content_type: dict[str, str] = {}
        self.ranges = True
        self.cut = 0          # responses to truncate halfway (Content-Length stays the full size)
        self.requests = []    # (path, Range header)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Range")))
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                start, status = 0, 200
                rng = self.headers.get("Range")
                if rng and outer.ranges:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                part = body[start:]
                self.send_response(status)
                self.send_header("Content-Type", outer.content_type.get(self.path, "application/octet-stream"))
                self.send_header("Content-Length", str(len(part)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                if outer.cut > 0:
                    outer.cut -= 1
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(part)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    s.files["/data.bin"] = PAYLOAD
    yield s
    s.close()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_full_download(server, tmp_path):
    dest = tmp_path / "data.bin"
    assert download(server.url + "/data.bin", dest, sha(PAYLOAD), **FAST) == sha(PAYLOAD)
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def test_interrupted_then_resumed(server, tmp_path):
    server.cut = 1
    dest = tmp_path / "data.bin"
    download(server.url + "/data.bin", dest, sha(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[0][1] is None
    assert server.requests[1][1] == f"bytes={len(PAYLOAD) // 2}-"  # resumed where the first try stopped


def test_resume_partial_file_from_an_earlier_run(server, tmp_path):
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:1000])
    download(server.url + "/data.bin", dest, sha(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD and server.requests == [("/data.bin", "bytes=1000-")]


def test_complete_part_file_416(server, tmp_path):
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    download(server.url + "/data.bin", dest, sha(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD


def test_server_without_range_support_restarts(server, tmp_path):
    server.ranges = False
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(b"garbage that must not survive")
    download(server.url + "/data.bin", dest, sha(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD


def test_no_range_support_and_interrupted(server, tmp_path):
    server.ranges, server.cut = False, 1
    dest = tmp_path / "data.bin"
    download(server.url + "/data.bin", dest, sha(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD and len(server.requests) == 2


def test_wrong_checksum_deletes_and_fails(server, tmp_path):
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match=f"sha256 mismatch: expected {'0' * 64}, got {sha(PAYLOAD)}"):
        download(server.url + "/data.bin", dest, "0" * 64, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_404_fails_without_retrying(server, tmp_path):
    with pytest.raises(DownloadError, match=r"/missing.bin: HTTP 404"):
        download(server.url + "/missing.bin", tmp_path / "x", None, **FAST)
    assert len(server.requests) == 1 and list(tmp_path.iterdir()) == []


def test_gives_up_after_bounded_retries(server, tmp_path):
    server.cut, server.ranges = 10, False
    with pytest.raises(DownloadError, match="giving up after 3 attempts"):
        download(server.url + "/data.bin", tmp_path / "x", None, **FAST)
    assert len(server.requests) == 3


def test_html_page_instead_of_data(server, tmp_path):
    server.files["/page"] = b"<html>confirm</html>"
    server.content_type["/page"] = "text/html; charset=utf-8"
    with pytest.raises(DownloadError, match="HTML page instead of the data"):
        download(server.url + "/page", tmp_path / "x", None, **FAST)


def test_unpinned_sha256_prints_it_and_strict_refuses(server, tmp_path, capsys):
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match=f"not pinned; the downloaded file has sha256 {sha(PAYLOAD)}.*strict"):
        download(server.url + "/data.bin", dest, None, strict=True, **FAST)
    assert not dest.exists()
    n = len(server.requests)
    assert download(server.url + "/data.bin", dest, None, **FAST) == sha(PAYLOAD)
    assert sha(PAYLOAD) in capsys.readouterr().err
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[n][1] == f"bytes={len(PAYLOAD)}-"  # the finished .part was kept, not refetched


def _zip(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            z.writestr(info, target)
    return buf.getvalue()


def _tar(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            t.addfile(info)
    return buf.getvalue()


TRAIN, TEST = b"1 4 2\n0 1:1\n", b"1 4 2\n1 2:1\n"


def test_fetch_dataset_from_zip(server, tmp_path):
    server.files["/Amazon670K.bow.zip"] = _zip({"Amazon670K.bow/train.txt": TRAIN, "Amazon670K.bow/test.txt": TEST})
    cfg = {"distribution": "xmlrepo", "retries": 1, "backoff": 0.01, "distributions": {"xmlrepo": {
        "url": server.url + "/Amazon670K.bow.zip", "sha256": sha(server.files["/Amazon670K.bow.zip"]),
        "members": {"train": "Amazon670K.bow/train.txt", "test": "Amazon670K.bow/test.txt"}}}}
    out = fetch_dataset(cfg, tmp_path / "raw/train.txt", tmp_path / "raw/test.txt", tmp_path / "cache", progress=False)
    assert (tmp_path / "raw/train.txt").read_bytes() == TRAIN and (tmp_path / "raw/test.txt").read_bytes() == TEST
    assert out == {"Amazon670K.bow.zip": sha(server.files["/Amazon670K.bow.zip"])}
    # the cached archive is reused: no second request
    n = len(server.requests)
    fetch_dataset(cfg, tmp_path / "raw/train.txt", tmp_path / "raw/test.txt", tmp_path / "cache", progress=False)
    assert len(server.requests) == n


def test_fetch_dataset_plain_files_and_missing_member(server, tmp_path):
    server.files["/amazon_train.txt"], server.files["/amazon_test.txt"] = TRAIN, TEST
    cfg = {"distribution": "plain", "distributions": {"plain": {
        "train": {"url": server.url + "/amazon_train.txt", "sha256": sha(TRAIN)},
        "test": {"url": server.url + "/amazon_test.txt", "sha256": None}}}}
    fetch_dataset(cfg, tmp_path / "train.txt", tmp_path / "test.txt", tmp_path / "cache", progress=False)
    assert (tmp_path / "test.txt").read_bytes() == TEST
    server.files["/a.tgz"] = _tar({"d/train.txt": TRAIN})
    cfg = {"distribution": "t", "distributions": {"t": {"url": server.url + "/a.tgz", "sha256": None,
                                                        "members": {"train": "d/train.txt", "test": "d/test.txt"}}}}
    with pytest.raises(DownloadError, match=r"no member 'd/test.txt'; the archive holds \['d/train.txt'\]"):
        fetch_dataset(cfg, tmp_path / "r/train.txt", tmp_path / "r/test.txt", tmp_path / "cache", progress=False)
    assert not (tmp_path / "r").exists()


UNSAFE = [
    ("zip_dotdot", "a.zip", lambda: _zip({"train.txt": TRAIN, "../evil.txt": b"x"}), "'../evil.txt'"),
    ("zip_absolute", "a.zip", lambda: _zip({"train.txt": TRAIN, "/etc/evil": b"x"}), "'/etc/evil': an absolute path"),
    ("zip_symlink", "a.zip", lambda: _zip({"train.txt": TRAIN}, {"link": "/etc/passwd"}), "'link': a symbolic link"),
    ("tar_dotdot", "a.tgz", lambda: _tar({"train.txt": TRAIN, "d/../../evil": b"x"}), "'d/../../evil'"),
    ("tar_symlink_escape", "a.tgz", lambda: _tar({"train.txt": TRAIN}, {"s": "../../etc/passwd"}), "a link to"),
]


@pytest.mark.parametrize("fname,make,expect", [u[1:] for u in UNSAFE], ids=[u[0] for u in UNSAFE])
def test_unsafe_archive_member(tmp_path, fname, make, expect):
    archive = tmp_path / fname
    archive.write_bytes(make())
    out = tmp_path / "out"
    with pytest.raises(DownloadError, match="unsafe archive member") as err:
        extract_members(archive, {"train.txt": out / "train.txt"})
    assert expect in str(err.value)
    assert not out.exists() and not (tmp_path.parent / "evil.txt").exists()


def test_cached_archive_is_verified(server, tmp_path):
    good = _zip({"a/train.txt": TRAIN, "a/test.txt": TEST})
    server.files["/d.zip"] = good
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "d.zip").write_bytes(_zip({"a/train.txt": b"stale", "a/test.txt": b"stale"}))
    dist = {"url": server.url + "/d.zip", "sha256": sha(good), "members": {"train": "a/train.txt", "test": "a/test.txt"}}
    cfg = {"distribution": "d", "retries": 0, "distributions": {"d": dist}}
    fetch_dataset(cfg, tmp_path / "train.txt", tmp_path / "test.txt", cache, progress=False)
    assert (tmp_path / "train.txt").read_bytes() == TRAIN and len(server.requests) == 1  # stale cache replaced
    dist["sha256"] = None
    cfg["strict"] = True
    with pytest.raises(DownloadError, match=f"d.zip: sha256 is not pinned; the downloaded file has sha256 {sha(good)}"):
        fetch_dataset(cfg, tmp_path / "train.txt", tmp_path / "test.txt", cache, progress=False)


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_damaged_cached_archive_without_sha256_names_it_and_says_to_delete_it(server, tmp_path, kind):
    """With `sha256: null` nothing catches a damaged cached archive before extraction: the error must name
    the cached file and say to delete it (every rerun would otherwise fail the same way)."""
    member = b"1 4 2\n" + b"0 1:1\n" * 2000  # long enough that the damage lands in compressed data
    archive = (_zip if kind == "zip" else _tar)({"a/train.txt": member, "a/test.txt": TEST})
    damaged = bytearray(archive)
    damaged[len(damaged) // 4] ^= 0xFF
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"d.{kind}").write_bytes(bytes(damaged))
    dist = {"url": server.url + f"/d.{kind}", "sha256": None, "members": {"train": "a/train.txt", "test": "a/test.txt"}}
    cfg = {"distribution": "d", "retries": 0, "distributions": {"d": dist}}
    cached = cache / f"d.{kind}"
    with pytest.raises(DownloadError) as e:
        fetch_dataset(cfg, tmp_path / "raw/train.txt", tmp_path / "raw/test.txt", cache, progress=False)
    msg = str(e.value)
    assert msg.startswith(f"{cached}: ") and "damaged" in msg
    assert f"delete {cached} and rerun to download it again" in msg and "sha256 is null" in msg
    assert not (tmp_path / "raw" / "train.txt").exists() and server.requests == []


def test_a_full_disk_is_not_a_lost_connection(server, tmp_path):
    """A write that fails (here a file size limit; a full disk alike) is the local side's problem: said at once,
    naming the file, not retried as "connection lost"; the bytes written stay for the next run to resume."""
    import resource
    import signal

    dest = tmp_path / "data.bin"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))
    try:
        with pytest.raises(DownloadError, match=r"data\.bin\.part: cannot write the download \(File too large\); "
                                                r"what was written stays there and the next run resumes from it"):
            download(server.url + "/data.bin", dest, sha(PAYLOAD), **FAST)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    assert len(server.requests) == 1  # no retry
    kept = (tmp_path / "data.bin.part").stat().st_size
    assert 0 < kept <= 20_000
    download(server.url + "/data.bin", dest, sha(PAYLOAD), **FAST)  # room again: resumes
    assert dest.read_bytes() == PAYLOAD and server.requests[-1] == ("/data.bin", f"bytes={kept}-")
