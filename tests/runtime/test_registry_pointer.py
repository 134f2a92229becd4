"""The registry's CURRENT pointer and version listing (router_runtime.registry): moves, refusals,
garbage and missing pointers, and the pointer file's mode."""

from __future__ import annotations

import os

import pytest

from artifact_docs import make_doc, raises
from router_runtime.artifact import load_artifact, write_artifact
from router_runtime.registry import current_version, list_versions, set_current
from router_runtime.errors import ArtifactError, ArtifactIntegrityError, ArtifactNotFoundError, ContractError


def test_set_current_moves_the_pointer(reg):
    v1 = write_artifact(reg, dict(make_doc(), version="20260101T000000Z-00000001"), {}).name
    v2 = write_artifact(reg, dict(make_doc(), version="20260102T000000Z-00000002"), {}).name
    set_current(reg, v1)
    assert load_artifact(reg).version == v1
    set_current(reg, v2)
    assert load_artifact(reg).version == v2
    assert list_versions(reg) == [v1, v2]
    assert [p.name for p in reg.iterdir() if p.name.startswith(".")] == []  # no temp pointer left


def test_set_current_refuses_a_version_that_does_not_load_and_keeps_the_old_pointer(reg, vdir):
    set_current(reg, vdir.name)
    bad = write_artifact(reg, dict(make_doc(), version="20300101T000000Z-bbbbbbbb"), {})
    (bad / "router.json").write_bytes((bad / "router.json").read_bytes().replace(b"0.8", b"0.7"))
    pointer = (reg / "CURRENT").read_bytes()
    with pytest.raises(ArtifactIntegrityError):
        set_current(reg, bad.name)
    with pytest.raises(ArtifactNotFoundError):
        set_current(reg, "20300101T000000Z-cccccccc")
    assert (reg / "CURRENT").read_bytes() == pointer
    assert load_artifact(reg).version == vdir.name
    assert sorted(p.name for p in reg.iterdir()) == ["CURRENT", "versions"]


@pytest.mark.parametrize("name", ["../registry2/versions/x", ".", "..", "a/b", ""])
def test_set_current_refuses_names_that_are_not_plain(reg, vdir, name):
    set_current(reg, vdir.name)
    with pytest.raises((ArtifactError, ContractError)):
        set_current(reg, name)
    assert current_version(reg) == vdir.name


@pytest.mark.parametrize("content", [b"", b"\n", b"../../etc", b".tmp-x", b"a/b", b"\xff\xfe\x00",
                                     b"bad\x00name", b"two\nlines", b"has space"])
def test_current_with_garbage_content(reg, vdir, content):
    (reg / "CURRENT").write_bytes(content)
    raises(ArtifactError, lambda: load_artifact(reg), "CURRENT")
    raises(ArtifactError, lambda: current_version(reg), "CURRENT")


def test_current_pointing_at_a_missing_version(reg, vdir):
    (reg / "CURRENT").write_text("20990101T000000Z-12345678\n")
    raises(ArtifactNotFoundError, lambda: load_artifact(reg), "manifest.json", "missing")


def test_registry_without_current(reg, vdir):
    assert current_version(reg) is None
    raises(ArtifactNotFoundError, lambda: load_artifact(reg), "no CURRENT")


def test_empty_or_missing_directory(tmp_path):
    raises(ArtifactNotFoundError, lambda: load_artifact(tmp_path), "no artifact here")
    raises(ArtifactNotFoundError, lambda: load_artifact(tmp_path / "nope"), "no artifact here")
    assert list_versions(tmp_path) == [] and current_version(tmp_path) is None


def test_list_versions_ignores_temp_and_hidden_dirs_and_files(reg):
    a = write_artifact(reg, dict(make_doc(), version="20260102T000000Z-00000002"), {}).name
    b = write_artifact(reg, dict(make_doc(), version="20260101T000000Z-00000001"), {}).name
    (reg / "versions" / ".tmp-20260103T000000Z-xyz-abc").mkdir()
    (reg / "versions" / ".hidden").mkdir()
    (reg / "versions" / "stray-file").write_text("x")
    assert list_versions(reg) == [b, a]  # oldest first


# -- the pool ----------------------------------------------------------------------------------------

def test_current_file_is_world_readable_whatever_the_umask(reg, vdir):
    # A runtime running as another user must read the pointer: its mode is 0o644, not the umask's.
    umask = os.umask(0o077)
    try:
        set_current(reg, vdir.name)
    finally:
        os.umask(umask)
    assert (reg / "CURRENT").stat().st_mode & 0o777 == 0o644
