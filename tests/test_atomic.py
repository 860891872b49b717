"""atomic: whole files or nothing, with the mode a plain write gives."""

from __future__ import annotations

import os
import stat

import pytest

from harmonize_bids import atomic


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_write_text_replaces_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "deep" / "table.tsv"
    atomic.write_text(target, "a\n")
    atomic.write_text(target, "b\n")
    assert target.read_text() == "b\n"
    assert os.listdir(target.parent) == ["table.tsv"]
    plain = tmp_path / "plain"
    plain.write_text("x")
    assert _mode(target) == _mode(plain)


def test_a_failing_writer_keeps_the_old_file(tmp_path):
    target = tmp_path / "figure.png"
    target.write_bytes(b"old")
    seen = []

    def writer(partial):
        seen.append(partial)
        partial.write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic.write_with(target, writer)
    assert target.read_bytes() == b"old"
    assert seen[0].suffix == ".png" and not seen[0].exists()
    assert os.listdir(tmp_path) == ["figure.png"]


def test_create_once_never_overwrites(tmp_path):
    target = tmp_path / "dataset_description.json"
    assert atomic.create_once(target, "first")
    assert not atomic.create_once(target, "second")
    assert target.read_text() == "first"
    assert os.listdir(tmp_path) == ["dataset_description.json"]


def test_move_into_place_and_replace_folder(tmp_path):
    staged = tmp_path / "staged.nii.gz"
    staged.write_bytes(b"data")
    moved = atomic.move_into_place(staged, tmp_path / "out" / "image.nii.gz")
    assert moved.read_bytes() == b"data" and not staged.exists()
    old, new = tmp_path / "model", tmp_path / ".model.new"
    old.mkdir()
    (old / "weights").write_text("old")
    new.mkdir()
    (new / "weights").write_text("new")
    atomic.replace_folder(new, old)
    assert (old / "weights").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["model", "out"]
