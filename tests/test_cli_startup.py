"""The commands that never touch the model start without torch and transformers (seconds of
imports): `--help`, every command's `-h`, and status, log, branch, tag, remote, push,
fetch, config, switch, reset, diff, blame and gc on a repository. Each list runs in one fresh interpreter
(the in-process tests have torch loaded already), which says after each command whether it
loaded either, so a top-level import of torch in any command module, or on any light
command's path, fails here, naming the command. Timings: benchmarks/bench_cli_startup.py."""
from __future__ import annotations

import json
import subprocess
import sys

from cli_support import ROOT, copy_repo, history_template, subprocess_env

HEAVY = ("torch", "transformers")

# Runs each argv (a JSON list of lists) in this interpreter; prints, per argv, its exit
# status and the heavy modules loaded so far, as one JSON list.
SCRIPT = """
import contextlib, io, json, sys
from cli.main import cli
out = []
for args in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(args, standalone_mode=False)
    out.append([args, code, [m for m in HEAVY if m in sys.modules]])
print(json.dumps(out))
""".replace("HEAVY", repr(HEAVY))


def _run(commands: list[list[str]]) -> list[tuple[list[str], int, list[str]]]:
    p = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(commands)], cwd=ROOT, check=False,
                       env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return [tuple(r) for r in json.loads(p.stdout)]


def _first_heavy(results) -> list:
    """The first command after which torch or transformers was loaded (empty: none), its
    arguments without the `-C REPO` in front."""
    return next(([args[2:] if args[0] == "-C" else args, loaded]
                 for args, _, loaded in results if loaded), [])


def _help_commands() -> list[list[str]]:
    """`--help`, and `-h` of every registered command and subcommand (remote's), found from
    the group: a command added later is checked without being listed here."""
    from cli.main import cli

    out = [["--help"]]

    def walk(group, path):
        for name, command in sorted(group.commands.items()):
            out.append([*path, name, "-h"])
            if hasattr(command, "commands"):
                walk(command, [*path, name])

    walk(cli, [])
    return out


def _printed(code: str):
    """What a fresh interpreter running `code` prints as JSON (it must exit 0)."""
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False, env=subprocess_env(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_help_of_every_command_loads_neither_torch_nor_transformers():
    commands = _help_commands()
    assert len(commands) > 30 and ["commit", "-h"] in commands  # the walk found them
    results = _run(commands)
    assert [code for _, code, _ in results] == [0] * len(commands)
    assert _first_heavy(results) == []


def test_commands_that_never_load_the_model_load_neither(base, tmp_path):
    repo = str(copy_repo(history_template(base)[0], tmp_path / "repo"))
    light = [["status"], ["status", "--json"], ["log"], ["log", "--oneline", "--graph"],
             ["branch", "side"], ["branch", "-v"], ["tag", "v1"], ["tag"],
             ["remote", "add", "origin", str(tmp_path / "remote")], ["remote", "-v"],
             ["push", "origin", "main"], ["push", "origin", "--tags"], ["fetch", "origin"],
             ["config"], ["config", "layers"], ["config", "--json"],
             ["switch", "side"], ["switch", "main"], ["switch", "-c", "work"],
             ["reset", "HEAD~1"], ["diff", "HEAD~1", "main"], ["blame"],
             ["switch", "main"], ["branch", "-D", "work"], ["gc"]]
    results = _run([["-C", repo, *args] for args in light])
    assert [(args[2:], code) for args, code, _ in results] == [(a, 0) for a in light]
    assert _first_heavy(results) == []


def test_show_reads_its_norms_with_torch_but_not_transformers(base, tmp_path):
    # the ‖ΔW‖ per layer is computed from the stored factors: torch on that path only
    repo = str(copy_repo(history_template(base)[0], tmp_path / "repo"))
    (_, code, loaded), = _run([["-C", repo, "show", "HEAD"]])
    assert code == 0 and loaded == ["torch"]


def test_editing_submodules_are_attributes_of_the_package_as_before():
    # before the names were lazy, `import memstore.editing` imported apply, memit, requests,
    # … so `memstore.editing.apply.build_state` (the README's) worked after it alone; a light
    # one is still imported without torch, and a name that is no submodule stays missing
    code = """
import json, sys
import memstore.editing as e
out = [e.requests.Request is e.Request, e.settings.EditSettings is e.EditSettings,
       hasattr(e, "no_such_module"), "torch" in sys.modules]
out.append(callable(e.apply.build_state))
print(json.dumps(out))
"""
    assert _printed(code) == [True, True, False, False, True]


def test_store_submodules_are_attributes_of_the_package_as_editing_s():
    # `import memstore.store as s; s.refs` was an AttributeError until memstore.store.refs
    # was imported by name; a light one is still imported without torch, and a name that
    # is no submodule stays missing
    code = """
import json, sys
import memstore.store as s
out = [s.refs.Head is s.Head, s.lock.RepositoryLock is s.RepositoryLock,
       callable(s.reflog.entries), hasattr(s, "no_such_module"), "torch" in sys.modules]
print(json.dumps(out))
"""
    assert _printed(code) == [True, True, True, False, False]


def test_dir_of_the_lazy_packages_lists_their_names_without_importing_torch():
    # `dir(memstore.editing)` listed none of its lazy names (build_state, EditSettings, the
    # submodules __getattr__ imports), so tab completion offered nothing; memstore.store's
    # likewise; listing them imports nothing heavy, and each listed name is there
    code = """
import json, sys
import memstore.editing as e, memstore.store as s
de, ds = dir(e), dir(s)
out = [all(n in de for n in ("build_state", "EditSettings", "apply", "zs", "statistics")),
       all(n in ds for n in ("Repository", "check_ref_name", "MissingObjectError", "refs")),
       "torch" in sys.modules, "transformers" in sys.modules,
       [n for n in de if not hasattr(e, n)], [n for n in ds if not hasattr(s, n)]]
print(json.dumps(out))
"""
    assert _printed(code) == [True, True, False, False, [], []]
