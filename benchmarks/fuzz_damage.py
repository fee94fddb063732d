"""A damage fuzzer over every command (not a test: minutes to hours; see benchmarks/README.md,
'Damage fuzzer').

Builds once, under --dir, a world of the tests' tiny model: a repository with a few commits
(main ahead of its upstream by one, its tip signed by a key of DIR/keys that the allowed
signers name), a branch, a tag, a folder remote (origin/HEAD naming origin/main) holding another
clone's branch, and an export; a commit dropped by a reset and a branch moved by `branch -f`
(reflog entries naming commits no branch holds), a tag never pushed, and a bisect TEXT that
tells v1's answer from HEAD's (DIR/bisect.json); it is kept as a snapshot. For each damage (a file or folder
of `.memstore/`, of the remote or of the export truncated, flipped, extended, replaced by a
folder or by a symlink out of it, removed; or one row of the index set to NULL, to text,
to a number, or deleted) the snapshot is copied back and the commands run on it, each in
a fork of one process that imported the CLI once, on a fresh copy of the damaged world
each. Flagged, one JSON line each to --dir/flags-PIECE.jsonl:
  traceback   stderr holds a traceback (or an exit status other than 0, 1, 2)
  no-line     a non-zero exit without a `memstore: error:` line
  changed     a command that failed changed `.memstore/` (objects, rows of the index)
  outside     a command wrote outside `.memstore/`, the remote (push) and its named output
  hang        no exit within the time limit
and, to be judged by hand, `differs` (exit 0, but stdout other than on the undamaged world)
and `fsck-ok` (fsck exit 0 on a damaged `.memstore/`).

    nice -n 19 python benchmarks/fuzz_damage.py --dir /tmp/fz --piece build
    nice -n 19 python benchmarks/fuzz_damage.py --dir /tmp/fz --piece repo-files
"""
from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# -- the world ------------------------------------------------------------------------------


def build(d: Path) -> None:
    """d/snap/{repo,remote,export,outside}: built with the tests' helpers (tiny model)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from cli_support import facts_files, history_template, ok, write_facts

    world = d / "world"
    ours(d, making=True)
    for p in (d / "build", world, d / "snap"):
        if p.exists():
            shutil.rmtree(p)
    (d / "build").mkdir()
    template, ids = history_template(d / "build")
    repo, remote = world / "repo", world / "remote"
    shutil.copytree(template, repo)
    f = facts_files(d / "build")
    ok("tag", "v1", ids[1], cwd=repo)
    ok("branch", "side", ids[1], cwd=repo)
    ok("switch", "side", cwd=repo)
    ok("commit", f["d"], "-m", "facts d", cwd=repo)
    ok("switch", "main", cwd=repo)
    ok("remote", "add", "origin", str(remote), cwd=repo)
    for args in (["main"], ["side"], ["--tags"]):
        ok("push", "origin", *args, cwd=repo)
    ok("remote", "set-head", "origin", "-a", cwd=repo)  # origin/HEAD -> origin/main, as a clone's
    other = d / "build" / "other"
    ok("clone", str(remote), str(other), "--base", str(d / "build" / "tiny-llama"))
    ok("switch", "-c", "theirs", cwd=other)
    ok("commit", f["e"], "-m", "their facts e", cwd=other)
    ok("push", "origin", "theirs", cwd=other)
    ok("branch", "--set-upstream-to", "origin/main", cwd=repo)
    # main's tip signed by a key the allowed-signers file names (verify-commit, log and show
    # --show-signature); the keys in DIR/keys, outside the world: not damaged
    for key, value in signing_keys(d).items():
        ok("config", key, value, cwd=repo)
    ok("commit", f["e"], "-m", "facts e", "-S", cwd=repo)  # main: one ahead of origin/main
    # the rows damaged as each table's last one are the rows as they are here (main's tip's)
    (d / LAST_ROWS).write_text(json.dumps(
        {t: max((r[0] for r in rows), default=0)
         for t, (_, rows) in _table_rows(repo / ".memstore" / "index.db").items()}))
    # ahead: one commit ahead of main (merge --ff-only/--no-ff have work), made by a switch
    # back and forth, so that `switch -` goes back to it
    g = write_facts(d / "build" / "g.jsonl", [("Lionel Messi", "{} was born in", "Paris",
                                              "Rosario")])
    ok("switch", "-c", "ahead", cwd=repo)
    ok("commit", g, "-m", "facts g", cwd=repo)
    ok("switch", "main", cwd=repo)
    # reflog entries that name commits no branch holds: a commit on main dropped by a reset
    # (main@{1}), a branch moved there and away by branch -f; a tag never pushed (fetch -P
    # prunes it, push --follow-tags pushes it)
    h = write_facts(d / "build" / "h.jsonl", [("Danielle Darrieux", "{}'s mother tongue is",
                                              "English", "French")])
    ok("commit", h, "-m", "facts h, dropped", cwd=repo)
    ok("reset", "HEAD~1", cwd=repo)
    ok("branch", "spare", ids[0], cwd=repo)
    ok("branch", "-f", "spare", "main@{1}", cwd=repo)
    ok("branch", "-f", "spare", ids[0], cwd=repo)
    ok("tag", "local", "HEAD~1", cwd=repo)
    # bisect: --reject a character of HEAD's answer that v1's lacks, or --expect the start of
    # v1's answer that HEAD's lacks (v1 good, HEAD bad)
    good, bad = (json.loads(ok("ask", BISECT_PROMPT, "--rev", rev, "--max-tokens", "4",
                               "--json", cwd=repo).stdout)["answers"][0]["completion"].lstrip()
                 for rev in ("v1", "HEAD"))
    test = next((["--reject", c] for c in bad if c.strip() and c not in good), None) or next(
        (["--expect", good[:n]] for n in range(1, len(good) + 1)
         if good[:n].strip() and not bad.startswith(good[:n])), None)
    if test is None:
        sys.exit(f"fuzz_damage: no bisect TEXT tells v1's answer {good!r} from HEAD's {bad!r}")
    (d / BISECT).write_text(json.dumps(test))
    ok("bisect", BISECT_PROMPT, "--good", "v1", *test, "--max-tokens", "4", cwd=repo)
    ok("export", "HEAD~1", str(world / "export"), cwd=repo)
    (world / "outside").mkdir()
    (world / "outside" / "keep.txt").write_text("outside the repository\n")
    (world / "request.jsonl").write_text(f["b"].read_text())
    shutil.copytree(world, d / "snap", symlinks=True)


def signing_keys(d: Path) -> dict[str, str]:
    """A new SSH key in d/keys and an allowed-signers file naming it: the config settings
    that sign with it and trust it."""
    import subprocess

    keys = d / "keys"
    if keys.exists():
        shutil.rmtree(keys)
    keys.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fuzz", "-f",
                    str(keys / "fuzz")], check=True)
    kind, blob = (keys / "fuzz.pub").read_text().split()[:2]
    (keys / "allowed_signers").write_text(f"fuzz@example.com {kind} {blob}\n")
    return {"user.signingkey": str(keys / "fuzz"),
            "gpg.ssh.allowedSignersFile": str(keys / "allowed_signers")}


BISECT = "bisect.json"  # in --dir: ["--reject" or "--expect", TEXT]: v1 good, HEAD bad
BISECT_PROMPT = "Michael Jordan plays"
LAST_ROWS = "last-rows.json"  # in --dir: each table's last rowid before `ahead` was made
MARKER = ".fuzz_damage"  # in a --dir this script made: only there does it remove folders


def ours(d: Path, making: bool = False) -> None:
    """Exits in one line unless `d` is a folder this script made (with `making`: or a new or
    empty one, marked then)."""
    if (d / MARKER).is_file():
        return
    if making and (not d.exists() or (d.is_dir() and not any(d.iterdir()))):
        d.mkdir(parents=True, exist_ok=True)
        (d / MARKER).write_text("made by benchmarks/fuzz_damage.py\n")
        return
    sys.exit(f"fuzz_damage: {d} is not a folder this script made (no {MARKER}); "
             + ("name a new or empty one" if making else "run --piece build first"))


def restore(d: Path) -> Path:
    world = d / "world"
    if world.exists():
        shutil.rmtree(world)
    shutil.copytree(d / "snap", world, symlinks=True)
    return world


# -- damages --------------------------------------------------------------------------------

FILE_DAMAGES = ("zero", "half", "flip", "append", "folder", "symlink-copy", "symlink-away",
                "remove")


def damage_path(path: Path, how: str, outside: Path) -> None:
    if how == "remove":
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    elif how == "folder":
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        path.mkdir()
    elif how in ("symlink-copy", "symlink-away"):
        copy = outside / f"copy-{path.name}"
        if how == "symlink-copy":  # the same bytes, from outside: still to be refused
            (shutil.copytree if path.is_dir() else shutil.copyfile)(path, copy)
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        path.symlink_to(copy if how == "symlink-copy" else outside / "keep.txt")
    elif path.is_dir():
        raise ValueError(f"{how} of a folder")
    else:
        data = path.read_bytes()
        if how == "zero":
            data = b""
        elif how == "half":
            data = data[:len(data) // 2]
        elif how == "flip":
            b = bytearray(data)
            b[len(b) // 2] ^= 0x20
            data = bytes(b)
        elif how == "append":
            data += b"\x00garbage\n"
        path.write_bytes(data)


ROW_VALUES = (("null", None), ("text", "garbage"), ("number", -7))


def _table_rows(db: Path) -> dict[str, tuple[list[str], list[tuple]]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        out = {}
        for t in names:
            cols = [c[1] for c in con.execute(f"pragma table_info([{t}])")]
            out[t] = (cols, con.execute(f"select rowid, * from [{t}]").fetchall())
        return out
    finally:
        con.close()


def row_damages(db: Path, last: dict[str, int] | None = None) -> list[dict]:
    """Every column of a few rows of every table: refs and config rows all, of reflog the
    newest of HEAD's log and of main's, of the others
    the last row (the newest commit, snapshot, ...: main's tip's; with `last`, the last of
    rowid at most last[table], the last before the branch `ahead` was made)."""
    out = []
    order = ("refs", "config", "reflog", "commits", "objects", "snapshots", "requests",
             "statistics")
    tables = _table_rows(db)
    for table in sorted(tables, key=lambda t: order.index(t) if t in order else len(order)):
        cols, rows = tables[table]
        if table in ("refs", "config"):
            chosen = rows
        elif table == "reflog":  # the newest entry of HEAD's and of main's log (@{0}, @{1})
            ref = cols.index("ref") + 1
            chosen = [[r for r in rows if r[ref] == name][-1]
                      for name in ("HEAD", "refs/heads/main")]
        else:
            chosen = [r for r in rows if last is None or r[0] <= last.get(table, r[0])][-1:]
        for row in chosen:
            label = f"{table}[{row[1]}]" if table in ("refs", "config") else \
                f"reflog[{row[cols.index('ref') + 1]}]" if table == "reflog" else f"{table}[last]"
            out.append({"target": label, "how": "delete", "table": table, "rowid": row[0]})
            for i, col in enumerate(cols):
                for name, value in ROW_VALUES:
                    if row[i + 1] == value and type(row[i + 1]) is type(value):
                        continue  # no damage (HEAD's target is NULL): fsck rightly passes it
                    out.append({"target": f"{label}.{col}", "how": name, "table": table,
                                "rowid": row[0], "column": col, "value": value})
    return out


def apply_row(db: Path, dmg: dict) -> None:
    con = sqlite3.connect(db)
    try:
        with con:
            con.execute("PRAGMA ignore_check_constraints = ON")
            if dmg["how"] == "delete":
                con.execute(f"delete from [{dmg['table']}] where rowid = ?", (dmg["rowid"],))
            else:
                con.execute(f"update [{dmg['table']}] set [{dmg['column']}] = ? where rowid = ?",
                            (dmg["value"], dmg["rowid"]))
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


# -- commands -------------------------------------------------------------------------------

# run in world/repo; {W} is the world folder, {B} the base model, {R} bisect's --reject TEXT
# or --expect TEXT (DIR/bisect.json); `A && B`: B runs after A, on A's world, when A exits 0 (B judged)
READS = [
    ["log"], ["log", "origin/side"], ["show", "HEAD"], ["show", "v1"],
    ["diff", "HEAD~2", "HEAD"], ["status"], ["blame"], ["branch"], ["branch", "-a"], ["tag"],
    ["remote", "list"],
    ["config"], ["stats"], ["fsck"], ["verify", "{W}/export"], ["export", "HEAD", "{W}/out"],
    ["ask", "Michael Jordan plays", "--max-tokens", "2"],
    ["remote", "get-url", "origin"], ["remote", "prune", "-n", "origin"],
    ["log", "--grep", "facts", "--since", "2020-01-01", "--reverse"],
    ["reflog"], ["reflog", "show", "main", "-n", "2"], ["reflog", "show", "spare"],
    ["reflog", "exists", "main"], ["show", "main@{1}"], ["log", "HEAD@{2}"], ["show", "@{-1}"],
    ["diff", "main@{1}", "spare@{1}"], ["reflog", "expire", "-n", "--expire=now", "--all"],
    ["bisect", BISECT_PROMPT, "--good", "v1", "{R}", "--max-tokens", "4"],
    ["verify-commit", "HEAD"], ["verify-commit", "--json", "HEAD"],
    ["log", "--show-signature"], ["show", "HEAD", "--show-signature", "--json"],
    ["log", "origin"], ["branch", "-r"],
]
WRITES = [
    ["commit", "{W}/request.jsonl", "-m", "fuzz"], ["revert", "HEAD~1"], ["merge", "side"],
    ["cherry-pick", "side"], ["switch", "side"], ["switch", "-c", "new"], ["reset", "HEAD~1"],
    ["squash", "HEAD~2"], ["tag", "v2"], ["tag", "-d", "v1"], ["branch", "-D", "side"],
    ["branch", "-d", "-r", "origin/side"],
    ["gc"], ["fsck", "--repair"], ["push"], ["fetch"], ["pull"], ["config", "z_steps", "6"],
    ["verify", "--base"],
    ["rebase", "side"], ["rebase"], ["pull", "--rebase"], ["merge", "--ff-only", "ahead"],
    ["merge", "--no-ff", "ahead"], ["switch", "-"], ["switch", "-c", "x", "origin/side",
                                                     "--no-track"],
    ["remote", "rename", "origin", "up"], ["remote", "prune", "origin"], ["fetch", "--all"],
    ["reset", "--hard", "main@{1}"], ["reflog", "expire", "--expire=now", "--all"],
    ["reflog", "expire", "--expire=now", "--all", "&&", "gc"], ["reflog", "delete", "HEAD@{1}"],
    ["branch", "-f", "spare", "@{-1}"], ["switch", "@{-1}"], ["fetch", "-P", "origin"],
    ["push", "--follow-tags", "origin"], ["remote", "set-head", "origin", "side"],
    ["remote", "set-head", "origin", "-d"], ["remote", "remove", "origin"],
    ["fetch", "--tags", "--force"],
]
REMOTE_COMMANDS = [["fetch"], ["push"], ["pull"], ["fsck", "origin"], ["push", "--tags"],
                   ["clone", "{W}/remote", "{W}/out", "--base", "{B}"],
                   ["pull", "--rebase"], ["remote", "prune", "origin"],
                   ["remote", "prune", "-n", "origin"], ["fetch", "--all"],
                   ["fetch", "-P", "origin"], ["push", "--follow-tags", "origin"],
                   ["remote", "set-head", "origin", "-a"], ["fetch", "--tags"]]
EXPORT_COMMANDS = [["verify", "{W}/export"], ["export", "--force", "HEAD", "{W}/export"]]
NAMED_OUTPUT = {"export": "{W}/out", "clone": "{W}/out"}


def ask_supported() -> bool:
    from cli.main import cli

    return "ask" in cli.commands


def run_cli(args: list[str], cwd: Path, log: Path, timeout: float = 300) -> dict:
    """`memstore ARGS` in a fork of this process: exit status, stdout, stderr."""
    from cli.main import cli

    out, err = log.with_suffix(".out"), log.with_suffix(".err")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: as `memstore ARGS` run in cwd
        code = 1
        try:
            os.chdir(cwd)
            for fd, path in ((1, out), (2, err)):
                f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(f, fd)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            code = cli.main(args=args, prog_name="memstore", standalone_mode=False)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - what Python prints for an uncaught one
            traceback.print_exc()
            code = 1
        try:
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 0)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return {"code": None, "stdout": "", "stderr": "hang"}
        time.sleep(0.02)
    return {"code": os.waitstatus_to_exitcode(status), "stdout": out.read_text(errors="replace"),
            "stderr": err.read_text(errors="replace")}


# -- states ---------------------------------------------------------------------------------

SKIP = {"lock"}  # its bytes change on every open (as SQLite's -wal and -shm)


def _db_state(db: Path) -> str:
    """The rows of the index (through a copy, so that reading it writes nothing here), or its
    bytes where SQLite cannot read it."""
    raw = hashlib.sha256()
    for p in (db, Path(f"{db}-wal")):
        if p.is_file() and not p.is_symlink():
            raw.update(p.read_bytes())
    with tempfile.TemporaryDirectory() as t:
        try:
            shutil.copyfile(db, Path(t) / "i.db")
            if Path(f"{db}-wal").is_file():
                shutil.copyfile(f"{db}-wal", Path(t) / "i.db-wal")
            con = sqlite3.connect(Path(t) / "i.db")
            try:
                return "rows:" + hashlib.sha256("\n".join(con.iterdump()).encode()).hexdigest()
            finally:
                con.close()
        except (sqlite3.Error, OSError):
            return "bytes:" + raw.hexdigest()


def tree_state(top: Path, leave_out: tuple[Path, ...] = ()) -> dict[str, str]:
    state = {}
    if not top.exists() and not top.is_symlink():
        return state
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath)
        dirnames[:] = [n for n in dirnames if here / n not in leave_out]
        for n in dirnames + filenames:
            p = here / n
            if p in leave_out or n in SKIP or n.endswith(("-wal", "-shm", "-journal")):
                continue
            rel = str(p.relative_to(top))
            if p.is_symlink():
                state[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                state[rel] = "dir"
            elif n == "index.db":
                state[rel] = _db_state(p)
            else:
                try:
                    state[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
                except OSError as e:
                    state[rel] = f"unreadable:{e.errno}"
    return state


def _diff(a: dict, b: dict) -> list[str]:
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


# -- the sweep ------------------------------------------------------------------------------


def judge(args: list[str], result: dict, before: dict, after: dict, pristine: dict | None,
          read: bool, fsck_damaged: bool) -> list[tuple[str, str]]:
    flags = []
    code, err = result["code"], result["stderr"]
    if code is None:
        return [("hang", "")]
    if "Traceback" in err or code not in (0, 1, 2):
        flags.append(("traceback", err.strip().splitlines()[-1] if err.strip() else str(code)))
    elif code != 0 and not any(line.startswith("memstore: error: ") for line in err.splitlines()) \
            and not (args[0] in ("fsck", "verify") and "problem(s)" in err):
        flags.append(("no-line", err.strip()[-300:]))
    changed = _diff(before["memstore"], after["memstore"])
    if code != 0 and changed:
        flags.append(("changed", ", ".join(changed[:5])))
    outside = _diff(before["outside"], after["outside"])
    if outside:
        flags.append(("outside", ", ".join(outside[:5])))
    if code == 0 and read and pristine is not None \
            and result["stdout"] != pristine["stdout"]:
        flags.append(("differs", ""))
    if code == 0 and fsck_damaged and args[0] == "fsck" and len(args) == 1:
        flags.append(("fsck-ok", ""))
    return flags


def states(world: Path, args: list[str]) -> dict:
    named = tuple(Path(a) for a in args if a.startswith(str(world / "out")))
    remote_writes = args[0] in ("push",) or (args[0] == "fsck" and "--repair" in args
                                             and len(args) > 2)
    leave = (world / "repo" / ".memstore", *named) + ((world / "remote",) if remote_writes
                                                       else ())
    if args[:1] == ["export"] and "--force" in args:
        leave += (world / "export",)
    return {"memstore": tree_state(world / "repo" / ".memstore"),
            "outside": tree_state(world, leave)}


def sweep(d: Path, cases: list[dict], commands: list[list[str]], flags_path: Path,
          base_model: Path) -> None:
    logs = d / "logs"
    logs.mkdir(exist_ok=True)
    pristine: dict[str, dict] = {}
    pristine_file = d / "pristine.json"
    if pristine_file.exists():
        pristine = json.loads(pristine_file.read_text())

    test = json.loads((d / BISECT).read_text()) if (d / BISECT).is_file() else []

    def expand(args: list[str], world: Path) -> list[str]:
        return [b for a in args for b in (
            test if a == "{R}" else [a.replace("{W}", str(world)).replace("{B}", str(base_model))])]

    def one(case: dict | None, args: list[str]) -> tuple[dict, list]:
        world = restore(d)
        if case is not None:
            apply(case, world)
        steps = [[]]
        for a in expand(args, world):
            steps.append([]) if a == "&&" else steps[-1].append(a)
        for full in steps:  # the last run is judged: the first that fails, or the last
            before = states(world, full)
            result = run_cli(full, world / "repo", logs / "cmd")
            after = states(world, full)
            if result["code"] != 0:
                break
        key = " ".join(args)
        if case is None:
            pristine[key] = result
            return result, []
        fsck_damaged = case["area"] == "repo"
        return result, judge(full, result, before, after, pristine.get(key), args in READS,
                             fsck_damaged)

    for args in commands:
        if " ".join(args) not in pristine:
            one(None, args)
    pristine_file.write_text(json.dumps(pristine))
    with flags_path.open("a") as out:
        for case in cases:
            t0 = time.monotonic()
            n = 0
            try:  # a damage SQLite refuses (NULL in a NOT NULL column) is none to run
                apply(case, restore(d))
            except sqlite3.IntegrityError as e:
                print(f"{case['target']} {case['how']}: skipped ({e})", flush=True)
                continue
            for args in commands:
                result, flags = one(case, args)
                n += bool(flags)
                for kind, said in flags:
                    out.write(json.dumps({"target": case["target"], "how": case["how"],
                                          "command": " ".join(args), "flag": kind,
                                          "code": result["code"], "said": said,
                                          "stderr": result["stderr"][-2000:]}) + "\n")
                out.flush()
            print(f"{case['target']} {case['how']}: {n} flagged commands "
                  f"({time.monotonic() - t0:.0f}s)", flush=True)


def apply(case: dict, world: Path) -> None:
    if case["how"] in FILE_DAMAGES:
        damage_path(world / case["path"], case["how"], world / "outside")
    else:
        apply_row(world / "repo" / ".memstore" / "index.db", case)


def file_cases(d: Path, area: str) -> list[dict]:
    snap = d / "snap"
    if area == "repo":
        ms = snap / "repo" / ".memstore"
        con = sqlite3.connect(f"file:{ms / 'index.db'}?mode=ro", uri=True)
        kinds = dict(con.execute("select kind, min(id) from objects group by kind").fetchall())
        head = con.execute("select target from refs where name = 'refs/heads/main'").fetchone()[0]
        con.close()
        kinds["commit"] = head
        targets = ["repo/.memstore/index.db", "repo/.memstore/lock", "repo/.memstore/objects",
                   f"repo/.memstore/objects/{head[:2]}"]
        targets += [f"repo/.memstore/objects/{oid[:2]}/{oid[2:]}" for oid in kinds.values()]
    elif area == "remote":
        theirs = (snap / "remote" / "refs" / "heads" / "theirs").read_text().strip()
        targets = ["remote/memstore-remote.json", "remote/lock", "remote/HEAD",
                   "remote/refs/heads/main", "remote/refs/heads/theirs", "remote/refs/tags/v1",
                   "remote/refs", "remote/objects", f"remote/objects/{theirs[:2]}/{theirs[2:]}"]
    else:
        targets = ["export/memstore-manifest.json", "export/model.safetensors",
                   "export/README.md", "export/config.json"]
    out = []
    for t in targets:
        is_dir = (snap / t).is_dir()
        for how in FILE_DAMAGES:
            if is_dir and how in ("zero", "half", "flip", "append"):
                continue
            out.append({"area": area, "target": t, "path": t, "how": how})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--piece", required=True,
                    choices=["build", "repo-files", "remote-files", "export-files", "rows"])
    ap.add_argument("--only", default="", help="only targets containing this text")
    ap.add_argument("--commands", action="append", default=[],
                    help="only the commands whose words start with these (`switch -` is not "
                         "`switch -c new`; `branch` is every branch command); repeatable")
    a = ap.parse_args()
    d = a.dir.resolve()
    os.environ.update(MEMSTORE_QUIET="1", MEMSTORE_STATS_CACHE=str(d / "stats-cache"),
                      MEMSTORE_CACHE=str(d / "cache"), OMP_NUM_THREADS="1",
                      MEMSTORE_AUTHOR="Fuzz <fuzz@example.com>", TQDM_DISABLE="1")
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(1)
    if a.piece == "build":
        build(d)
        return
    ours(d)
    import transformers  # noqa: F401 - imported once, not in every fork

    import cli.main  # noqa: F401

    if a.piece == "rows":
        last = json.loads((d / LAST_ROWS).read_text()) if (d / LAST_ROWS).is_file() else None
        cases = [{"area": "repo", **c}
                 for c in row_damages(d / "snap/repo/.memstore/index.db", last)]
        commands = READS + WRITES
    else:
        area = a.piece.split("-")[0]
        cases = file_cases(d, area)
        commands = {"repo": READS + WRITES, "remote": REMOTE_COMMANDS,
                    "export": EXPORT_COMMANDS}[area]
    if not ask_supported():
        commands = [c for c in commands if c[0] != "ask"]
    cases = [c for c in cases if a.only in f"{c['target']} {c['how']}"]
    if a.commands:
        commands = [c for c in commands
                    if any(c[:len(w)] == w for w in (t.split() for t in a.commands))]
    sweep(d, cases, commands, d / f"flags-{a.piece}.jsonl", d / "build" / "tiny-llama")


if __name__ == "__main__":
    main()
