"""sandbox/workspace.py: a session's directory, read and written without following links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox import DiskUsage, FileEntry, FileTooLarge, QuotaExceeded, Workspace


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    target = tmp_path / "outside"
    target.mkdir()
    (target / "secret.txt").write_text("host secret")
    return target


@pytest.fixture
def space(tmp_path: Path, outside: Path) -> Workspace:
    root = tmp_path / "session"
    root.mkdir()
    # What a guest can make in its directory: links out, relative and absolute.
    os.symlink("../outside/secret.txt", root / "file-link")
    os.symlink(str(outside), root / "dir-link")
    return Workspace(root, quota_bytes=1000)


def test_write_read_list_delete(space: Workspace) -> None:
    space.write("data/in.csv", b"a,b\n")
    space.write("top.txt", b"x")
    assert space.read("data/in.csv", 100) == b"a,b\n"
    assert space.files() == [FileEntry("data/in.csv", 4), FileEntry("top.txt", 1)]
    assert space.usage_bytes() == 5
    space.delete("data")
    assert space.files() == [FileEntry("top.txt", 1)]
    with pytest.raises(FileNotFoundError):
        space.read("data/in.csv", 100)


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a//b", "a/./b", "a\\b", "", "a/"])
def test_paths_outside_or_odd_are_refused(space: Workspace, path: str) -> None:
    with pytest.raises(ValueError):
        space.write(path, b"x")
    with pytest.raises(ValueError):
        space.read(path, 10)
    with pytest.raises(ValueError):
        space.delete(path)


def test_links_are_never_followed(space: Workspace, outside: Path) -> None:
    with pytest.raises(FileNotFoundError):
        space.read("file-link", 100)
    with pytest.raises(OSError):
        space.read("dir-link/secret.txt", 100)
    with pytest.raises(NotADirectoryError):
        space.write("dir-link/planted.txt", b"x")
    assert not (outside / "planted.txt").exists()
    # A PUT onto a link replaces the link, never what it points to.
    space.write("file-link", b"replaced")
    assert (outside / "secret.txt").read_text() == "host secret"
    assert space.read("file-link", 100) == b"replaced"
    # Deleting a link to a directory removes the link, not the directory's files.
    space.delete("dir-link")
    assert (outside / "secret.txt").exists()
    # Listing and sizes never count what links point to.
    assert space.files() == [FileEntry("file-link", 8)]


def test_a_link_inside_a_directory_being_deleted_is_only_unlinked(
    space: Workspace, outside: Path
) -> None:
    space.write("tree/a.txt", b"a")
    os.symlink(str(outside), space.root / "tree" / "escape")
    space.delete("tree")
    assert (outside / "secret.txt").read_text() == "host secret"


def test_the_quota_counts_regular_files(space: Workspace) -> None:
    space.write("a.bin", b"x" * 600)
    with pytest.raises(QuotaExceeded, match="quota is 1000 bytes"):
        space.write("b.bin", b"x" * 500)
    space.write("a.bin", b"y" * 900)  # replacing counts the new size only
    assert space.usage_bytes() == 900


def test_usage_counts_every_entry_and_says_when_it_stopped(
    space: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    space.write("a.bin", b"x" * 600)
    assert space.usage() == DiskUsage(600, 3, True)  # the file and the two links
    assert not space.usage().over(1000) and space.usage().over(599)
    # Past the count's cap, bytes would hide behind empty files: that is over the quota.
    monkeypatch.setattr("sandbox.workspace.MAX_COUNTED_ENTRIES", 20)
    for n in range(20):
        (space.root / f"0{n:03}").touch()
    usage = space.usage()
    assert (usage.complete, usage.entries, usage.over(10**12)) == (False, 20, True)


def test_usage_says_when_files_are_deeper_than_it_looks(space: Workspace) -> None:
    deep = space.root.joinpath(*["d"] * 33)
    deep.mkdir(parents=True)
    assert space.usage().complete  # an empty directory down there hides nothing
    (deep / "hidden.bin").write_bytes(b"x" * 10_000)
    assert space.usage().over(10**12)


def test_reads_are_capped(space: Workspace) -> None:
    space.write("big.bin", b"x" * 100)
    with pytest.raises(FileTooLarge):
        space.read("big.bin", 99)
    assert len(space.read("big.bin", 100)) == 100


def test_special_files_are_not_read(space: Workspace) -> None:
    os.mkfifo(space.root / "pipe")
    with pytest.raises(FileNotFoundError):
        space.read("pipe", 100)  # and never blocks on it
    assert [entry.path for entry in space.files()] == []


# -- the guest's /tmp beside the directory (the wasmtime engine's) ------------------


@pytest.fixture
def with_tmp(tmp_path: Path, outside: Path) -> Workspace:
    space = Workspace.with_tmp(tmp_path / "run", quota_bytes=1000)
    assert space.tmp == tmp_path / "run-tmp"
    space.root.mkdir()
    space.tmp.mkdir()
    os.symlink(str(outside), space.tmp / "dir-link")
    return space


def test_the_quota_counts_tmp_but_the_file_api_never_reaches_it(with_tmp: Workspace) -> None:
    assert with_tmp.tmp is not None
    (with_tmp.tmp / "scratch.bin").write_bytes(b"x" * 700)
    with_tmp.write("a.bin", b"x" * 200)
    assert with_tmp.usage() == DiskUsage(900, 3, True)  # a.bin, scratch.bin, the link
    with pytest.raises(QuotaExceeded, match="with those in its /tmp"):
        with_tmp.write("b.bin", b"x" * 200)
    assert with_tmp.files() == [FileEntry("a.bin", 200)]
    assert set(with_tmp.tree()) == {"a.bin"}
    with pytest.raises(FileNotFoundError):
        with_tmp.read("scratch.bin", 1000)


def test_the_count_of_entries_covers_both_directories(
    with_tmp: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert with_tmp.tmp is not None
    monkeypatch.setattr("sandbox.workspace.MAX_COUNTED_ENTRIES", 20)
    for n in range(12):
        (with_tmp.root / f"w{n:03}").touch()
        (with_tmp.tmp / f"t{n:03}").touch()
    usage = with_tmp.usage()
    assert (usage.complete, usage.entries, usage.over(10**12)) == (False, 20, True)


def test_remove_takes_tmp_too_and_leaves_what_links_point_to(
    with_tmp: Workspace, outside: Path
) -> None:
    assert with_tmp.tmp is not None
    (with_tmp.tmp / "x.txt").write_text("x")
    with_tmp.remove()
    assert not with_tmp.root.exists() and not with_tmp.tmp.exists()
    assert (outside / "secret.txt").read_text() == "host secret"
    with_tmp.remove()  # idempotent


def test_a_missing_tmp_counts_nothing(tmp_path: Path) -> None:
    # Pyodide's sessions have their /tmp in memory: no directory beside theirs.
    (tmp_path / "s").mkdir()
    space = Workspace.with_tmp(tmp_path / "s", quota_bytes=10)
    space.write("a", b"abc")
    assert space.usage() == DiskUsage(3, 1, True)
