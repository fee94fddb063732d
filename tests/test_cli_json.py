"""--json of the commands that write or check (commit, revert, squash, merge, pull, export,
verify, switch, init): one JSON document on stdout, checked against what other commands
and the files say; warnings still on stderr, errors still one line."""
from __future__ import annotations

import json
import shutil

import pytest
from cli_support import (
    copy_repo,
    error_line,
    facts_files,
    history_template,
    last_line,
    log_json,
    model_dir,
    ok,
    run,
    write_facts,
)

MANIFEST = "memstore-manifest.json"


def as_json(*args, cwd=None, code: int = 0) -> dict:
    """`memstore ARGS --json`: its exit status, and stdout parsed as one JSON document."""
    r = run(*args, "--json", cwd=cwd)
    assert r.exit_code == code, (r.exit_code, r.output)
    return json.loads(r.stdout)


def shown(repo, rev="HEAD") -> dict:
    return json.loads(ok("show", rev, "--json", cwd=repo).stdout)


def test_commit_json(base, history, tmp_path):
    repo, (_, _, c3) = history
    fact = {"subject": "Apple A5", "prompt": "{} was created by", "target_new": "Microsoft",
            "target_true": "Google"}
    other = {**fact, "subject": "Honda Civic", "target_new": "Apple", "target_true": "Honda"}
    f = tmp_path / "facts.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in (fact, other, fact)) + "\n")
    r = run("commit", f, "-m", "two facts", "--json", cwd=repo)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)  # the memory estimate too went to stderr: stdout is JSON only
    entry = log_json(repo)[0]
    assert d["commit"] == entry["id"] and d["parents"] == [c3] == entry["parents"]
    assert d["branch"] == "main" and d["operation"] == "commit" == entry["operation"]
    assert d["message"] == "two facts"
    lines = f.read_text().splitlines()
    assert d["requests_in_file"] == len(lines) == 3
    assert d["n_facts"] == len(set(lines)) == entry["n_requests"] == 2 and d["repeated"] == 1
    dedupe = "1 repeated request(s) (the same subject, prompt and target) written once"
    assert dedupe in d["notes"] and dedupe in r.stderr
    assert d["metrics"] == entry["metrics"] and d["metrics"]["n"] == 2
    assert 0 <= d["metrics"]["efficacy"] <= 1
    assert d["solves"] == len(shown(repo)["update_sets"]) == 1
    assert d["layers"] == [1, 2]  # cli_support.SETTINGS
    assert d["memory"] and d["memory"] in r.stderr and d["file"] == str(f)
    assert d["warning"] is None


def test_revert_json(base, history):
    repo, (c1, c2, c3) = history
    d = as_json("revert", c2, cwd=repo)
    entry = log_json(repo)[0]
    assert d["commit"] == entry["id"] and d["parents"] == [c3]
    assert d["operation"] == "revert" and d["branch"] == "main"
    assert d["reverted"] == c2 and d["replayed"] == [c3]
    assert d["n_removed"] == len(facts_files(base)["b"].read_text().splitlines()) == 1
    assert d["n_restored"] == 0  # only a revert of a merge puts facts back
    assert d["n_facts"] == entry["n_requests"] == 2  # C3's facts, replayed on C1's state
    assert d["metrics"] == entry["metrics"] and "reverted" in d["metrics"]
    assert shown(repo)["basis"] == c1


def test_squash_json(history):
    repo, (c1, c2, c3) = history
    r = run("squash", c1, "--json", cwd=repo)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert "efficacy before" not in r.stderr  # that text is the object's `before` here
    log = log_json(repo)
    assert [e["id"] for e in log] == [d["commit"], c1] and d["parents"] == [c1]
    assert d["operation"] == "squash" and d["squashed"] == [c3, c2]
    assert d["n_facts"] == log[0]["n_requests"] == 3  # facts b and c
    assert d["before"] == shown(repo)["metrics"]["before"] and d["before"]["n"] == 3
    assert d["metrics"]["efficacy"] == log[0]["metrics"]["efficacy"]
    # the squashed commits no branch or tag holds now, as reset's and rebase's --json
    assert d["left_behind"] == [c3, c2] and d["warning"].startswith(
        f"leaving 2 commit(s) that no branch or tag holds, the newest {c3[:12]}; "
        f"`memstore reset {c3[:12]}` goes back")
    assert r.stderr.count("warning: leaving 2 commit(s)") == 1


def test_merge_json_says_which_kind(base, history):
    repo, (c1, c2, c3) = history
    files = facts_files(base)
    ok("branch", "side", c2, cwd=repo)
    ok("switch", "side", cwd=repo)
    side = last_line(ok("commit", files["d"], cwd=repo))
    ok("switch", "main", cwd=repo)
    d = as_json("merge", "side", cwd=repo)
    entry = log_json(repo)[0]
    assert d["kind"] == "merge" and d["commit"] == d["head"] == entry["id"]
    assert d["parents"] == [c3, side] == entry["parents"] and d["branch"] == "main"
    assert d["operation"] == "merge" and d["merge_base"] == c2
    solved = shown(repo)["update_sets"]
    assert d["solved"] == sum(len(s["requests"]) for s in solved) == 3  # facts c and d
    assert d["metrics"] == entry["metrics"]

    d = as_json("merge", "side", cwd=repo)
    assert d == {"kind": "up-to-date", "commit": None, "head": entry["id"], "branch": "main"}

    ok("branch", "behind", c1, cwd=repo)
    ok("switch", "behind", cwd=repo)
    d = as_json("merge", "main", cwd=repo)
    assert d == {"kind": "fast-forward", "commit": None, "head": entry["id"], "branch": "behind"}
    assert log_json(repo)[0]["id"] == entry["id"]  # HEAD (behind) moved there


def test_pull_json(base, history, tmp_path):
    a, ids = history
    b = copy_repo(history_template(base)[0], tmp_path / "b")
    url = f"file://{tmp_path / 'remote'}"
    for repo in (a, b):
        ok("remote", "add", "origin", url, cwd=repo)
    files = facts_files(base)
    ok("push", cwd=a)
    new = last_line(ok("commit", files["d"], cwd=a))
    ok("push", cwd=a)
    d = as_json("pull", cwd=b)
    assert d["kind"] == "fast-forward" and d["commit"] is None and d["head"] == new
    assert d["branch"] == "main" and log_json(b)[0]["id"] == new
    remotes = json.loads(ok("remote", "--json", cwd=b).stdout)
    assert d["fetched"]["remote"] == "origin" and [d["fetched"]["url"]] == [
        x["url"] for x in remotes]
    assert d["fetched"]["updates"] == [{"branch": "main", "old": None, "new": new,
                                        "forced": False}]
    assert d["fetched"]["commits"] == 1  # only the commit b lacked moved

    theirs = last_line(ok("commit", files["e"], "-m", "e on a", cwd=a))
    ok("push", cwd=a)
    ours = last_line(ok("commit", write_facts(tmp_path / "f.jsonl", [
        ("Lionel Messi", "{} plays", "golf", "soccer")]), "--supersede", cwd=b))
    d = as_json("pull", cwd=b)
    entry = log_json(b)[0]
    assert d["kind"] == "merge" and d["commit"] == entry["id"] == d["head"]
    assert d["parents"] == [ours, theirs] and d["merge_base"] == new
    # git's words, the URL as recorded (a file:// one as its path); into main: no "into"
    assert entry["message"] == f"Merge branch 'main' of {d['fetched']['url']}"
    assert d["solved"] == 2 and d["n_facts"] == entry["n_requests"]
    assert d["fetched"]["updates"] == [{"branch": "main", "old": new, "new": theirs,
                                        "forced": False}]
    assert d["fetched"]["commits"] == 1
    assert ids[-1] in [e["id"] for e in log_json(b)]


def test_export_and_verify_json(history, tmp_path):
    from safetensors.torch import load_file, save_file

    repo, ids = history
    out = tmp_path / "out"
    d = as_json("export", ids[1], out, cwd=repo)
    manifest = json.loads((out / MANIFEST).read_text())
    assert d["out_dir"] == str(out) and d["format"] == "full" and d["rev"] == ids[1]
    assert d["commit"] == ids[1] == manifest["commit"] and d["base"] == manifest["base"]
    assert sorted(d["files"]) == sorted(p.name for p in out.iterdir())
    assert d["files"][-1] == MANIFEST and d["tensors"] == len(manifest["tensors"]) > 0
    assert d["built_with"] == manifest["built_with"] and d["warning"] is None

    v = as_json("verify", out, cwd=repo)
    assert v["ok"] is True and v["problems"] == [] and v["commit"] == ids[1]
    assert v["tensors"] == len(manifest["tensors"]) and v["out_dir"] == str(out)
    assert "base" not in v

    weights = out / "model.safetensors"
    tensors = load_file(weights)
    name = "model.layers.1.mlp.down_proj.weight"
    tensors[name][0, 0] += 1e-3
    save_file(tensors, weights, metadata={"format": "pt"})
    r = run("verify", out, "--json", cwd=repo)
    assert r.exit_code == 1 and "Traceback" not in r.output
    v = json.loads(r.stdout)
    assert v["ok"] is False and v["commit"] == ids[1]
    assert f"{name}: differs from the rebuilt model" in v["problems"]
    assert "model.safetensors: differs from the manifest" in v["problems"]


def test_export_peft_json(history, tmp_path):
    repo, ids = history
    out = tmp_path / "adapter"
    d = as_json("export", out, "--format", "peft", "--since", ids[0], cwd=repo)
    manifest = json.loads((out / MANIFEST).read_text())
    assert d["format"] == "peft" and d["commit"] == ids[2] and d["since"] == ids[0]
    assert d["rank"] == manifest["rank"] and d["layers"] == manifest["layers"]
    assert sorted(d["layers"]) == ["1", "2"] and d["max_rank"] is None
    assert d["adapter_bytes"] == (out / "adapter_model.safetensors").stat().st_size
    assert sorted(d["files"]) == sorted(p.name for p in out.iterdir())
    assert json.loads(ok("verify", out, "--json", cwd=repo).stdout)["ok"] is True


def test_init_and_verify_base_json(base, tmp_path):
    from safetensors.torch import load_file, save_file

    model = shutil.copytree(model_dir(base), tmp_path / "model")
    repo = tmp_path / "repo"
    d = as_json("init", repo, "--base", model)
    status = json.loads(ok("status", "--json", cwd=repo).stdout)
    settings = json.loads(ok("config", "--json", cwd=repo).stdout)
    assert d["path"] == str(repo.resolve()) and d["dir"] == str(repo.resolve() / ".memstore")
    assert d["branch"] == "main" == status["branch"]
    assert d["base"]["hash"] == status["base"]["hash"] and len(d["base"]["hash"]) == 64
    assert d["base"]["spec"] == status["base"]["spec"] and d["base"]["n_layers"] == 4
    assert d["settings"].items() <= settings.items() and d["settings"]["layers"]
    assert set(d["derived"]) <= set(d["settings"]) and d["derived"]
    assert isinstance(d["warnings"], list)

    v = as_json("verify", "--base", cwd=repo)
    assert v == {"ok": True, "base": {"ok": True, "path": str(model.resolve()),
                                      "recorded": d["base"]["hash"],
                                      "actual": d["base"]["hash"], "changed_files": []}}
    weights = model / "model.safetensors"
    tensors = load_file(weights)
    tensors[next(iter(tensors))].view(-1)[0] += 1.0
    save_file(tensors, weights, metadata={"format": "pt"})
    v = as_json("verify", "--base", cwd=repo, code=1)
    assert v["ok"] is False and v["base"]["ok"] is False
    assert v["base"]["recorded"] == d["base"]["hash"] != v["base"]["actual"]


def test_switch_json(base, history):
    repo, (c1, _, c3) = history
    d = as_json("switch", "--detach", c1, cwd=repo)
    assert d == {"branch": None, "commit": c1, "detached": True, "created": False,
                 "left_behind": [], "warning": None, "upstream": None}
    lost = last_line(ok("commit", facts_files(base)["d"], cwd=repo))
    r = run("switch", "main", "--json", cwd=repo)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["branch"] == "main" and d["commit"] == c3 and d["detached"] is False
    assert d["left_behind"] == [lost] and lost[:12] in d["warning"]
    assert f"warning: {d['warning']}" in r.stderr  # still said on stderr
    d = as_json("switch", "-c", "feature", cwd=repo)
    assert d["created"] is True and d["branch"] == "feature" and d["commit"] == c3


@pytest.mark.parametrize("args, code, says", [
    (("revert", "nosuch"), 2, "nosuch"),
    (("switch", "nosuch"), 2, "nosuch"),
    (("verify", "nowhere"), 2, "nowhere"),
])
def test_errors_stay_one_line_with_json(history, args, code, says):
    repo, _ = history
    r = run(*args, "--json", cwd=repo)
    error_line(r, code, says)
    assert r.stdout == ""


def test_log_json_parents_are_the_recorded_ones_with_graph_too(history):
    """`log --graph` of a range draws each commit's parents rewritten to those listed
    (50792fd), and --json printed those: C2's parents [] in `log --graph --json C1..C3`,
    as if it were a root. --json says the recorded parents, --graph or not."""
    repo, (c1, c2, c3) = history
    plain = log_json(repo, f"{c1}..{c3}")
    assert [(c["id"], c["parents"]) for c in plain] == [(c3, [c2]), (c2, [c1])]
    assert log_json(repo, "--graph", f"{c1}..{c3}") == plain
    assert log_json(repo, "--graph", f"{c1}...{c3}") == log_json(repo, f"{c1}...{c3}")
