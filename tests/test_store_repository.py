import os

import pytest
from test_store_support import BASE_HASH, commit_on_head

from memstore.editing.settings import EditSettings
from memstore.errors import MemstoreError, ValidationError
from memstore.store.repository import NotARepositoryError, Repository

SETTINGS = EditSettings(layers=(1, 2), mom2_weight=1e4)


def test_init_creates_a_repository_and_refuses_a_second(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"w" * 100)
    repo = Repository.init(tmp_path / "work", "smollm2-135m", BASE_HASH, {"family": "llama"},
                           SETTINGS, base_path=weights)
    names = {p.name for p in (tmp_path / "work" / ".memstore").iterdir()}
    assert names - {"index.db-wal", "index.db-shm"} == {"index.db", "lock", "objects"}
    assert [p.name for p in (tmp_path / "work").iterdir()] == [".memstore"]  # no temp dir left
    b = repo.base
    assert (b.spec, b.hash, b.info, b.path) == ("smollm2-135m", BASE_HASH, {"family": "llama"},
                                                str(weights))
    assert b.snapshot["size"] == 100 and repo.base_unchanged() is True
    assert repo.settings == SETTINGS and repo.head().branch == "main"
    assert repo.fsck() == []
    with pytest.raises(MemstoreError, match="already exists"):
        Repository.init(tmp_path / "work", "x", BASE_HASH)


def test_a_failed_init_leaves_nothing(tmp_path):
    with pytest.raises(ValidationError, match="hash"):
        Repository.init(tmp_path, "x", "")
    with pytest.raises(ValidationError, match="invalid branch name"):
        Repository.init(tmp_path, "x", BASE_HASH, branch="no good")
    assert list(tmp_path.iterdir()) == []


def test_open_walks_up_from_a_subdirectory(tmp_path, monkeypatch):
    Repository.init(tmp_path, "x", BASE_HASH)
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    assert Repository.open(sub).root == tmp_path.resolve()
    monkeypatch.chdir(sub)
    assert Repository.open().root == tmp_path.resolve()


def test_open_outside_a_repository(tmp_path):
    with pytest.raises(NotARepositoryError,
                       match=f"not a memstore repository \\(or any parent\\): {tmp_path}"):
        Repository.open(tmp_path)


def test_settings_and_config_persist(tmp_path):
    repo = Repository.init(tmp_path, "x", BASE_HASH)
    assert repo.settings is None and repo.get_config("missing", 7) == 7
    repo.set_settings(SETTINGS.with_changes(mom2_weight=5.0, layers=(3,)))
    repo.set_config("user", {"name": "me"})
    again = Repository.open(tmp_path)
    assert again.settings == SETTINGS.with_changes(mom2_weight=5.0, layers=(3,))
    assert again.get_config("user") == {"name": "me"}


def test_base_snapshot_notices_a_changed_base(tmp_path):
    weights = tmp_path / "model"
    weights.mkdir()
    (weights / "a.bin").write_bytes(b"1234")
    repo = Repository.init(tmp_path / "r", "local", BASE_HASH, base_path=weights)
    assert repo.base.snapshot["files"] == 1 and repo.base_unchanged() is True
    (weights / "a.bin").write_bytes(b"12345")
    assert repo.base_unchanged() is False
    repo.set_base_path(weights)  # after the caller re-checked the hash
    assert repo.base_unchanged() is True and repo.base.hash == BASE_HASH
    (weights / "a.bin").unlink()
    weights.rmdir()
    assert repo.base_unchanged() is False
    assert Repository.memory().base_unchanged() is None


def test_commits_from_another_base_are_refused():
    repo = Repository.memory(base_hash="1" * 64)
    c = commit_on_head(repo)
    repo.set_config("base", {**repo.get_config("base"), "hash": "2" * 64})
    with pytest.raises(ValidationError, match="another base model"):
        commit_on_head(repo)
    assert repo.head().commit == c.id


def test_repository_files_are_created_with_sane_permissions(tmp_path):
    repo = Repository.init(tmp_path, "x", BASE_HASH)
    c = commit_on_head(repo)
    path = repo.objects.path(c.id)
    assert oct(os.stat(path).st_mode & 0o777) == "0o444"
