"""`python -m slide.build`: which sources it builds."""
from __future__ import annotations

import pytest

from slide import build


def test_source_defaults_to_the_packages_native_dir(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(build, "build", lambda out, *a, source, **kw: seen.update(out=out, source=source) or {})
    build.main([str(tmp_path / "out")])
    assert seen["source"] == build.NATIVE_SRC and (build.NATIVE_SRC / "CMakeLists.txt").is_file()


def test_another_checkouts_sources_are_built(monkeypatch, tmp_path):
    old = tmp_path / "old" / "native"
    old.mkdir(parents=True)
    (old / "CMakeLists.txt").write_text("")
    seen = {}
    monkeypatch.setattr(build, "build", lambda out, *a, source, **kw: seen.update(source=source) or {})
    build.main([str(tmp_path / "out"), "--source", str(old)])
    assert seen["source"] == old


def test_a_source_without_cmakelists_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="no CMakeLists.txt"):
        build.main([str(tmp_path / "out"), "--source", str(tmp_path)])
