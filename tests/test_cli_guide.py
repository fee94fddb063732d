"""What the README (the user's guide) promises of the commands, checked through the CLI:
progress bars on the long commands on a terminal and none when stderr is piped (where a
long commit says what it is doing in plain lines), and the
option table's flags."""
from __future__ import annotations

import json
import time

import pytest
from cli_support import facts_files, ok
from tqdm.auto import tqdm

import memstore.editing.progress as progress_module


@pytest.fixture
def bars(monkeypatch):
    """Every progress bar a command opens: (desc, drawn), drawn False when it is quiet.
    No bar is drawn in the test (each is made disabled)."""
    opened: list[tuple[str, bool]] = []

    def recorder(*args, **kwargs):
        opened.append((kwargs.get("desc"), not kwargs.get("disable")))
        return tqdm(*args, **{**kwargs, "disable": True})

    monkeypatch.setattr(progress_module, "tqdm", recorder)
    return opened


def test_long_commands_draw_bars_on_a_terminal(base, history, bars, monkeypatch, tmp_path):
    """eval (scoring, generation), fsck and fsck of a remote (re-hashing every object) and
    verify (comparing every tensor) show a bar on a terminal; they showed none."""
    repo, _ = history
    monkeypatch.setattr(progress_module, "on_terminal", lambda: True, raising=False)
    facts = facts_files(base)["a"]
    ok("eval", facts, "--generation", cwd=repo)
    assert ("scoring", True) in bars and ("generating", True) in bars
    bars.clear()
    ok("fsck", cwd=repo)
    assert bars == [("checking objects", True)]
    ok("remote", "add", "origin", tmp_path / "remote", cwd=repo)
    ok("push", cwd=repo)
    bars.clear()
    ok("fsck", "origin", cwd=repo)
    assert bars == [("checking objects", True)]
    ok("export", tmp_path / "out", cwd=repo)
    bars.clear()
    ok("verify", tmp_path / "out", cwd=repo)
    assert ("comparing tensors", True) in bars


def test_piped_stderr_gets_no_bar(base, history, bars, tmp_path):
    """With stderr not a terminal (CliRunner's), every bar is quiet: no carriage return."""
    repo, _ = history
    facts = facts_files(base)["a"]
    results = [ok("eval", facts, "--generation", cwd=repo), ok("fsck", cwd=repo),
               ok("export", tmp_path / "out", cwd=repo),
               ok("verify", tmp_path / "out", cwd=repo)]
    assert bars and not any(drawn for _, drawn in bars)
    assert not any("\r" in r.stderr for r in results)
    assert json.loads(ok("fsck", "--json", cwd=repo).stdout)["ok"] is True


def test_a_long_commit_off_a_terminal_says_what_it_is_doing(base, history, monkeypatch):
    """With stderr piped, where no bar is drawn, each phase of a commit still running after
    PHASE_AFTER seconds says on stderr what it does, then when it is done, in plain lines
    (here PHASE_AFTER is 0: the z-vectors and the solve take longer than that); a phase
    shorter than PHASE_AFTER says nothing, and nothing is said under MEMSTORE_QUIET."""
    repo, _ = history
    files = facts_files(base)
    monkeypatch.delenv("MEMSTORE_QUIET", raising=False)
    monkeypatch.setattr(progress_module, "PHASE_AFTER", 0.0)
    err = ok("commit", files["d"], cwd=repo).stderr
    writing = "memstore: writing 1 fact (its z-vector, then the update)"  # not 'their'
    assert f"{writing}… (running for " in err and f"{writing}: done in " in err
    assert err.index(f"{writing}…") < err.index(f"{writing}: done in ")
    assert "\r" not in err
    monkeypatch.setenv("MEMSTORE_QUIET", "1")
    assert "memstore: " not in ok("commit", files["e"], cwd=repo).stderr


def test_revert_squash_and_merge_say_what_they_are_doing_off_a_terminal(base, history,
                                                                       monkeypatch):
    """A rewrite of a long history replays or solves for as long as a commit writes: off a
    terminal each of its phases says so (here PHASE_AFTER is 0, so every phase that runs
    long enough for the timer speaks; the names are what a user reads)."""
    from memstore.store import rewrite

    repo, ids = history
    entered: list[str] = []
    real = rewrite.phase

    def recording(what):
        entered.append(what)
        return real(what)

    monkeypatch.delenv("MEMSTORE_QUIET", raising=False)
    monkeypatch.setattr(progress_module, "PHASE_AFTER", 0.0)
    monkeypatch.setattr(rewrite, "phase", recording)
    ok("squash", ids[0], cwd=repo)  # C2 and C3 become one solve on C1's state
    assert "solving the 3 facts from their cached z-vectors" in entered, entered
    entered.clear()
    ok("revert", ids[0], cwd=repo)  # C1's set is taken out, the squash's replayed on the base
    assert "replaying the 2 update sets from their cached z-vectors" in entered, entered
    assert "measuring the 3 live and 2 reverted facts" in entered
    entered.clear()
    ok("switch", "-c", "side", cwd=repo)
    ok("commit", facts_files(base)["d"], cwd=repo)
    ok("switch", "main", cwd=repo)
    ok("commit", facts_files(base)["e"], cwd=repo)
    err = ok("merge", "side", cwd=repo).stderr
    assert any(w.startswith("solving the ") for w in entered), entered
    assert "memstore: loading the state the merge builds on" in err


def test_a_phase_says_nothing_on_a_terminal_nor_when_short(monkeypatch, capsys):
    """On a terminal the bars show progress: `phase` prints nothing there; off one, a
    phase shorter than PHASE_AFTER prints nothing either."""
    monkeypatch.delenv("MEMSTORE_QUIET", raising=False)
    monkeypatch.setattr(progress_module, "PHASE_AFTER", 0.0)
    monkeypatch.setattr(progress_module.sys.stderr, "isatty", lambda: True)
    with progress_module.phase("waiting"):
        time.sleep(0.2)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(progress_module.sys.stderr, "isatty", lambda: False)
    with progress_module.phase("waiting"):
        time.sleep(0.2)
    assert capsys.readouterr().err.startswith("memstore: waiting… (running for ")
    monkeypatch.setattr(progress_module, "PHASE_AFTER", 3600.0)
    with progress_module.phase("waiting"):
        time.sleep(0.2)
    assert capsys.readouterr().err == ""


def test_config_key_value_json_prints_that_setting(history):
    """`config KEY VALUE --json` prints {KEY: the value stored}, as `config KEY --json`
    does (it printed every setting)."""
    repo, _ = history
    assert json.loads(ok("config", "clamp", "0.7", "--json", cwd=repo).stdout) == {"clamp": 0.7}
    assert json.loads(ok("config", "clamp", "--json", cwd=repo).stdout) == {"clamp": 0.7}


# Documented once for every command that loads the model (README, "Devices and precision").
RUNTIME_FLAGS = {"--device", "--dtype", "--device-map"}


def _readme_table() -> dict[str, set[str]]:
    """command → the flags its row of the README's command table names (first cell)."""
    import re

    from cli_support import ROOT

    text = (ROOT / "README.md").read_text()
    table = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, set[str]] = {}
    for line in table.splitlines():
        if not line.startswith("| `") or line.startswith("| `command"):
            continue
        cell = line.split(" | ", 1)[0]
        name = re.match(r"\| `([\w-]+)", cell).group(1)
        rows.setdefault(name, set()).update(re.findall(r"(?<![\w-])--?[a-zA-Z][\w-]*", cell))
    return rows


def test_readme_command_table_names_every_flag():
    """Every command has a row, and its row names every option its --help lists (one
    spelling of each is enough: -m or --message) and none it lacks; the table had left out
    e.g. log -n, fsck --quick and --json, switch --detach, tag -d, branch -D."""
    import click

    from cli.main import cli

    def options(command):
        return [p for p in command.params
                if isinstance(p, click.Option) and not set(p.opts) & ({"--help"} | RUNTIME_FLAGS)]

    rows = _readme_table()
    assert set(rows) == set(cli.commands)
    for name, command in cli.commands.items():
        documented = rows[name]
        missing = [p.opts for p in options(command) if not set(p.opts) & documented]
        assert not missing, f"README's row of {name} lacks {missing}"
        # a flag's secondary spelling (--gpg-sign/--no-gpg-sign) is an option it takes too
        taken = {o for p in options(command) for o in (*p.opts, *p.secondary_opts)}
        for sub in getattr(command, "commands", {}).values():  # remote list --json
            taken |= {o for p in options(sub) for o in (*p.opts, *p.secondary_opts)}
        assert documented <= taken, f"README's row of {name} names {documented - taken}"


def test_branch_summary_names_rename():
    """`memstore --help` summed branch up as "List, create or delete branches", leaving out
    `branch -m`, which the README's row and `branch --help` have."""
    from cli.main import cli

    assert "rename" in cli.commands["branch"].get_short_help_str(limit=80)


def test_every_json_command_says_what_its_json_holds():
    """The README says each command's --help lists its --json fields; diff, ask, status,
    push, fetch, clone, fsck, gc, config, stats, branch, tag and remote list said nothing."""
    import click

    from cli.main import cli

    def commands(group):
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from commands(command)
            else:
                yield name, command

    for name, command in commands(cli):
        if any("--json" in p.opts for p in command.params if isinstance(p, click.Option)):
            assert "--json" in (command.help or ""), f"{name} --help lists no --json fields"


def test_fsck_help_names_a_remotes_tags():
    """fsck of a remote checks every tag's history and `--repair` writes back what its tags
    need (README); its --help named the branches alone."""
    text = " ".join(ok("fsck", "--help").stdout.split())
    assert "every branch's and tag's history whole" in text
    assert "its branches, tags and statistics need and lack" in text
