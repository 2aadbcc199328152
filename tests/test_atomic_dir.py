"""slide.atomic.atomic_dir: a model folder is replaced whole or not at all (the TF and Parabel baselines' saves)."""
from __future__ import annotations

import os

import pytest

from slide.atomic import atomic_dir


def test_replaces_an_earlier_folder_whole(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "old.bin").write_text("old")
    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "new.bin").write_text("new")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporaries left


def test_a_failed_write_leaves_the_earlier_folder(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "old.bin").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "model") as tmp:
            (tmp / "half.bin").write_text("half")
            raise RuntimeError("killed")
    assert (tmp_path / "model" / "old.bin").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_dead_writers_temporary_is_removed(tmp_path):
    dead = tmp_path / ".model.999999999-abc"  # the pid of no process
    dead.mkdir()
    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "x").write_text("x")
    assert not dead.exists()
    assert (tmp_path / "model" / "x").exists()


@pytest.mark.parametrize("writer", ["atomic_path", "atomic_dir"])
def test_a_full_disk_names_the_output(tmp_path, writer):
    """A write that fails for lack of space reports no file name of its own ([Errno 28] from write())."""
    import errno

    from slide import atomic

    target = tmp_path / "results" / "train.npz"
    with pytest.raises(OSError) as info:
        with getattr(atomic, writer)(target):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert str(info.value) == f"[Errno 28] No space left on device: '{target}'"
    assert list(target.parent.iterdir()) == []  # no temporary left behind
    with pytest.raises(FileNotFoundError) as named:  # an error that names its file already is kept as it is
        with atomic.atomic_path(target):
            open(tmp_path / "missing" / "x")
    assert named.value.filename == str(tmp_path / "missing" / "x")
