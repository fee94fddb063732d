"""History operations on SmolLM2-135M (issue: the repository, acceptance 4 and 7).

An anchor commit, then 5 commits × 20 CounterFact dev records; `memstore squash` onto the
anchor re-solves the 100 facts once from their cached z-vectors. Reports efficacy over the
100 facts before (the 5-commit history) and after the squash, the time of each step, the
bytes each commit adds against the size of a full exported checkpoint, and export/verify
times.

    python benchmarks/bench_history.py
Writes benchmarks/results/history.json and history.md."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from common import DATA as DATA_DIR
from common import ROOT, memstore

DATA = DATA_DIR / "counterfact-dev.json"


def timed(*args: str, cwd: Path) -> tuple[str, float]:
    t = time.perf_counter()
    out = memstore(*args, cwd=cwd)
    return out, time.perf_counter() - t


def main() -> None:
    records = json.loads(DATA.read_text())
    out: dict = {"commits": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        repo = tmp / "repo"
        memstore("init", str(repo), "--base", "smollm2-135m", cwd=tmp)
        memstore("stats", cwd=repo)
        (tmp / "anchor.json").write_text(json.dumps(records[100:105]))
        memstore("commit", str(tmp / "anchor.json"), "-m", "anchor", cwd=repo)
        memstore("tag", "anchor", cwd=repo)
        for i in range(5):
            f = tmp / f"batch{i}.json"
            f.write_text(json.dumps(records[20 * i: 20 * (i + 1)]))
            _text, secs = timed("commit", str(f), "-m", f"batch {i}", cwd=repo)
            show = json.loads(memstore("show", "HEAD", "--json", cwd=repo))
            out["commits"].append({"seconds": secs, "bytes": show.get("bytes")})
        facts = tmp / "all.json"
        facts.write_text(json.dumps(records[:100]))
        history = json.loads(memstore("eval", str(facts), "--json", cwd=repo))
        _, out["squash_seconds"] = timed("squash", "anchor", cwd=repo)
        squashed = json.loads(memstore("eval", str(facts), "--json", cwd=repo))
        show = json.loads(memstore("show", "HEAD", "--json", cwd=repo))
        out["squash_bytes"] = show.get("bytes")
        _, out["export_seconds"] = timed("export", "HEAD", str(tmp / "ckpt"), cwd=repo)
        out["checkpoint_bytes"] = sum(p.stat().st_size for p in (tmp / "ckpt").rglob("*") if p.is_file())
        _, out["verify_seconds"] = timed("verify", str(tmp / "ckpt"), cwd=repo)
    keys = ("efficacy", "paraphrase", "neighborhood", "score")
    out["history"] = {k: history[k] for k in keys}
    out["squashed"] = {k: squashed[k] for k in keys}
    res = ROOT / "benchmarks" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "history.json").write_text(json.dumps(out, indent=2))
    per_commit = sum(c["bytes"] for c in out["commits"]) / len(out["commits"])
    lines = [
        "# History operations, SmolLM2-135M: 5 commits × 20 CounterFact records, then squash",
        "",
        "| state of the 100 facts | ES | PS | NS | S |",
        "| --- | --- | --- | --- | --- |",
        "| 5-commit history | {:.3f} | {:.3f} | {:.3f} | {:.3f} |".format(*tuple(out["history"][k] for k in keys)),
        "| after `squash` (one re-solve, cached z) | {:.3f} | {:.3f} | {:.3f} | {:.3f} |".format(*tuple(out["squashed"][k] for k in keys)),
        "",
        "| what | measured |",
        "| --- | --- |",
        "| commit of 20 records | {} s |".format(", ".join(f"{c['seconds']:.0f}" for c in out["commits"])),
        f"| squash of 100 facts (no z optimisation) | {out['squash_seconds']:.0f} s |",
        f"| bytes per commit of 20 facts | {per_commit / 1e6:.2f} MB |",
        f"| bytes of the squashed commit (100 facts) | {out['squash_bytes'] / 1e6:.2f} MB |",
        (f"| full exported checkpoint | {out['checkpoint_bytes'] / 1e6:.0f} MB "
        f"({out['checkpoint_bytes'] / out['squash_bytes']:.0f}× the 100-fact commit) |"),
        f"| export / verify | {out['export_seconds']:.0f} s / {out['verify_seconds']:.0f} s |",
        "",
        "Command: `python benchmarks/bench_history.py`",
    ]
    (res / "history.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
