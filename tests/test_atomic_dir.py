"""slide.atomic.atomic_dir: a model folder is replaced whole or not at all (the TF and Parabel baselines' saves)."""
from __future__ import annotations

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
