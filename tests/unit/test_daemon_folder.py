"""The watched folder: which files are read, when, and what is applied from each."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from controller.daemon.folder import Folder, FolderMissing, implicated, is_manifest, select
from controller.errors import Problem
from controller.model import Document

C = "apiVersion: netctl/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec: {{networks: [bridge]}}\n"
BAD = "apiVersion: netctl/v1\nkind: Container\nmetadata: {name: bad}\nspec:\n  networks: 7\n"


def names(docs: Sequence[Document]) -> list[str]:
    return [d.name for d in docs]


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("a.yaml", True),
        ("sub/dir/b.yml", True),
        (".hidden.yaml", False),
        (".git/objects/x.yaml", False),
        ("#a.yaml#", False),
        ("a.yaml~", False),
        (".a.yaml.swp", False),
        ("a.yaml.swp", False),
        ("4913", False),  # vim's probe file
        ("a.json", False),
        ("a.yaml.tmp", False),
    ],
)
def test_which_names_are_manifests(rel: str, expected: bool) -> None:
    assert is_manifest("/srv/m", os.path.join("/srv/m", rel)) is expected


def test_scan_reads_only_manifests_and_rereads_only_changed_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(C.format(name="a"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text(C.format(name="b"))
    (tmp_path / ".a.yaml.swp").write_text("garbage")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "c.yaml").write_text("garbage: [")
    folder = Folder(str(tmp_path))
    snap = folder.scan()
    assert sorted(snap.files) == [str(tmp_path / "a.yaml"), str(tmp_path / "sub" / "b.yml")]
    assert folder.reads == 2
    first = snap.fingerprint
    assert folder.scan().fingerprint == first and folder.reads == 2  # nothing re-read
    (tmp_path / "a.yaml").write_text(C.format(name="a2"))
    snap = folder.scan()
    assert folder.reads == 3 and snap.fingerprint != first
    parsed = snap.files[str(tmp_path / "a.yaml")]
    assert parsed is not None and parsed.documents is not None and names(parsed.documents) == ["a2"]


def test_an_invalid_file_is_not_parsed_again_until_it_changes(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD)
    folder = Folder(str(tmp_path))
    parsed = folder.scan().files[str(tmp_path / "bad.yaml")]
    assert parsed is not None and parsed.documents is None
    assert [(p.line, p.path) for p in parsed.problems] == [(5, "spec.networks")]
    for _ in range(3):
        folder.scan()
    assert folder.reads == 1


def test_files_being_written_are_not_read(tmp_path: Path) -> None:
    path = tmp_path / "half.yaml"
    path.write_text("apiVersion: netctl/v1\nkind: Contai")
    folder = Folder(str(tmp_path))
    snap = folder.scan(incomplete={str(path)})
    assert snap.files == {str(path): None} and folder.reads == 0


def test_a_missing_folder_is_an_error_not_an_empty_desired_state(tmp_path: Path) -> None:
    with pytest.raises(FolderMissing):
        Folder(str(tmp_path / "gone")).scan()


def test_selection_keeps_last_good_documents_of_invalid_and_incomplete_files(tmp_path: Path) -> None:
    good, bad, half = (str(tmp_path / n) for n in ("good.yaml", "bad.yaml", "half.yaml"))
    (tmp_path / "good.yaml").write_text(C.format(name="g"))
    (tmp_path / "bad.yaml").write_text(C.format(name="b"))
    (tmp_path / "half.yaml").write_text(C.format(name="h"))
    folder = Folder(str(tmp_path))
    last_good = dict(select(folder.scan(), {}).chosen)
    (tmp_path / "bad.yaml").write_text(BAD)
    (tmp_path / "half.yaml").write_text(C.format(name="h2"))
    sel = select(folder.scan(incomplete={half}), last_good)
    assert names(sel.documents()) == ["b", "g", "h"]  # the old b and h
    assert sel.held == {bad} and sel.pending == {half}
    assert sel.failed[bad][0].startswith(f"{bad}:5 spec.networks")
    assert sel.changed(last_good) == set()
    # A deleted file is pruned (not chosen); reverting it keeps its objects.
    os.unlink(good)
    sel = select(folder.scan(incomplete={half}), last_good)
    assert sel.changed(last_good) == {good}
    sel.revert([good], last_good, ["still needed"])
    assert "g" in names(sel.documents()) and sel.failed[good] == ["still needed"]


def test_a_conflict_implicates_both_files() -> None:
    a, b, c = "/m/a.yaml", "/m/b.yaml", "/m/c.yaml"
    problem = Problem(b, 4, "metadata.name", f"duplicate Container 'web': already defined at {a}:3")
    blamed = implicated([problem], [a, b, c])
    assert set(blamed) == {a, b}
    assert blamed[a] == blamed[b] == [str(problem)]
    assert implicated([Problem("/elsewhere/x.yaml", 1, "", "bad")], [a, b]) == {}
