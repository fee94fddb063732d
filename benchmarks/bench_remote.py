"""Sharing a repository on SmolLM2-135M (issue 13: remotes).

A repository with one commit of N CounterFact records is pushed to a remote, cloned on the
other side (which names its own copy of the base model and hashes it) and exported there;
bytes moved and times are printed beside a plain export of the same checkpoint on the
pushing side, the alternative a team has without a remote: ship the checkpoint. The two
exports must be bit-identical.

    python benchmarks/bench_remote.py [--n 100] [--remote URL]
Default remote: a temporary folder; give s3://BUCKET/PREFIX (credentials from the
environment) to measure a store. Writes benchmarks/results/remote.json and remote.md."""
from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

from common import DATA, command, memstore, write_results


def timed(*args: str, cwd: Path) -> tuple[str, float]:
    t = time.perf_counter()
    out = memstore(*args, cwd=cwd)
    return out, time.perf_counter() - t


def checkpoint(directory: Path) -> tuple[int, dict[str, str]]:
    """Bytes of every file of an exported checkpoint, and the sha256 of its weights."""
    files = [p for p in directory.rglob("*") if p.is_file()]
    return (sum(p.stat().st_size for p in files),
            {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(directory.glob("*.safetensors"))})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100, help="CounterFact records in the commit")
    ap.add_argument("--remote", help="remote URL (default: a temporary folder)")
    args = ap.parse_args()
    records = json.loads((DATA / "counterfact-dev.json").read_text())[: args.n]
    out: dict = {"command": command(), "n": args.n}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        url = args.remote or str(tmp / "remote")
        origin, other = tmp / "origin", tmp / "other"
        memstore("init", str(origin), "--base", "smollm2-135m", cwd=tmp)
        (tmp / "facts.json").write_text(json.dumps(records))
        _, out["commit_seconds"] = timed("commit", str(tmp / "facts.json"), "-m",
                                         f"{args.n} facts", cwd=origin)
        memstore("remote", "add", "origin", url, cwd=origin)
        text, out["push_seconds"] = timed("push", "--json", cwd=origin)
        out["push"] = json.loads(text)
        text, out["clone_seconds"] = timed("clone", url, str(other), "--base", "smollm2-135m",
                                           "--json", cwd=tmp)
        out["clone"] = json.loads(text)
        _, out["export_origin_seconds"] = timed("export", "HEAD", str(tmp / "ckpt-origin"),
                                                cwd=origin)
        _, out["export_clone_seconds"] = timed("export", "HEAD", str(tmp / "ckpt-clone"),
                                               cwd=other)
        out["checkpoint_bytes"], weights = checkpoint(tmp / "ckpt-origin")
        out["identical"] = weights == checkpoint(tmp / "ckpt-clone")[1]
    push_b, clone_b, ckpt = out["push"]["bytes"], out["clone"]["bytes"], out["checkpoint_bytes"]
    where = args.remote or "a local folder"
    pushed = f"{out['push']['commits']} commit, {out['push']['objects']} objects"
    shipped = f"{ckpt / 1e6:.0f} MB to ship ({ckpt / max(push_b, 1):.0f}x the push)"
    same = "bit-identical" if out["identical"] else "DIFFERENT"
    lines = [
        f"# Sharing a repository, SmolLM2-135M: one commit of {args.n} CounterFact records",
        "",
        f"Remote: {where}. Command: `{out['command']}`",
        "",
        "| step | time | bytes moved |",
        "| --- | --- | --- |",
        f"| `memstore push` ({pushed}) | {out['push_seconds']:.1f} s | {push_b / 1e6:.2f} MB |",
        (f"| `memstore clone` (hashes its base copy, fetches the history) "
         f"| {out['clone_seconds']:.1f} s | {clone_b / 1e6:.2f} MB |"),
        f"| `memstore export` on the clone | {out['export_clone_seconds']:.1f} s | |",
        (f"| comparison: `memstore export` on the origin "
         f"| {out['export_origin_seconds']:.1f} s | {shipped} |"),
        "",
        f"The two exports are {same}.",
    ]
    write_results("remote", out, lines)
    if not out["identical"]:
        raise SystemExit("the clone's export differs from the origin's")


if __name__ == "__main__":
    main()
