"""What a remote stores at a ref's name, besides the ref: a folder a push or a delete killed
outright left (empty, or holding a dead push's temporary), a ref of the same folder. A
leftover never keeps a later ref from being written; anything else at its name refuses
the push with one line, writing no ref.

The kills are those of tests/test_remote_crash_refs.py: a process forked from a
forkserver SIGKILLs itself at a chosen step (crash_points.self_kill_at)."""
from __future__ import annotations

import multiprocessing

import pytest
from crash_points import run_round, self_kill_at
from remote_support import make_repo
from test_store_support import commit_on_head, fake_result

from memstore.remote.push import push
from memstore.remote.push_delete import push_delete
from memstore.remote.transport import RemoteError, open_transport
from memstore.store.repository import Repository


@pytest.fixture(scope="module")
def forkserver():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["memstore.remote.push", "memstore.remote.push_delete",
                                "memstore.remote.folder", "test_store_support", __name__])
    return ctx


def killed_delete(path: str, env: dict, kind: str, step: int, seed: int, ready) -> None:
    """push --delete of branch topic/x, killed before its first rmdir (after the unlink)."""
    repo = Repository.open(path)
    self_kill_at(step, ("rmdir",))
    ready.set()
    push_delete(repo, "origin", ["topic/x"])


def pushed_topic_x(tmp_path, url):
    """A repository whose main and topic/x are pushed to `url`; then topic/x is deleted
    here (a teammate may now push a branch 'topic')."""
    repo = make_repo(tmp_path / "local", url)
    commit_on_head(repo, fake_result(1))
    push(repo)
    repo.create_branch("topic/x", "main")
    push(repo, branch="topic/x")
    return repo


def test_a_killed_delete_s_empty_folder_does_not_block_a_branch(tmp_path, forkserver):
    url = str(tmp_path / "remote")
    repo = pushed_topic_x(tmp_path, url)
    repo.close()
    run_round(forkserver, killed_delete, tmp_path / "local", {}, "file", "self", 1, 1, 0,
              None)
    left = tmp_path / "remote" / "refs" / "heads" / "topic"
    assert left.is_dir() and not any(left.iterdir())  # the kill came between the two
    transport = open_transport(url)
    assert set(transport.branches()) == {"main"}
    with Repository.open(tmp_path / "local") as repo:
        repo.delete_branch("topic/x", force=True)
        repo.create_branch("topic", "main")
        push(repo, branch="topic")
        assert transport.branches() == {"main": repo.resolve("main"),
                                        "topic": repo.resolve("main")}
    assert (tmp_path / "remote" / "refs" / "heads" / "topic").is_file()


def test_a_folder_holding_a_link_at_a_ref_s_name_refuses_the_push(tmp_path):
    """A folder at the ref's name that holds a symbolic link (which no listing shows as a
    branch) is neither followed nor removed: the push is refused, one line naming the link,
    and no ref is written."""
    url = str(tmp_path / "remote")
    repo = pushed_topic_x(tmp_path, url)
    repo.delete_branch("topic/x", force=True)
    push_delete(repo, "origin", ["topic/x"])
    outside = tmp_path / "outside"
    (outside / "empty").mkdir(parents=True)
    link = tmp_path / "remote" / "refs" / "heads" / "topic" / "link"
    link.parent.mkdir()
    link.symlink_to(outside)
    repo.create_branch("topic", "main")
    with pytest.raises(RemoteError) as e:
        push(repo, branch="topic")
    assert "refs/heads/topic/link" in str(e.value) and "\n" not in str(e.value)
    assert link.is_symlink() and (outside / "empty").is_dir()
    assert set(open_transport(url).branches()) == {"main"}
    repo.close()
