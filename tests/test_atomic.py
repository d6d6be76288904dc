"""Atomic writes: the target is complete or absent, never half written, with the usual file mode."""

from __future__ import annotations

import os
import stat

import pytest

from lightning_spiral.atomic import atomic_write_bytes, atomic_write_text


def test_written_file_has_the_umask_mode_and_no_temp_file_is_left(tmp_path) -> None:
    atomic_write_text(tmp_path / "a" / "report.json", "{}")
    mode = stat.S_IMODE(os.stat(tmp_path / "a" / "report.json").st_mode)
    mask = os.umask(0)
    os.umask(mask)
    assert mode == 0o666 & ~mask
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["report.json"]


def test_a_failing_write_leaves_the_old_file_untouched(tmp_path) -> None:
    atomic_write_bytes(tmp_path / "model.pt", b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "model.pt", object())  # type: ignore[arg-type]
    assert (tmp_path / "model.pt").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
