"""Serving exports on SmolLM2-135M (issue 12): a commit of N CounterFact dev records exported
as a full checkpoint, as a PEFT LoRA adapter and as a GGUF file; the quality of each, measured
through what loads it (transformers for the checkpoint, peft on the base for the adapter,
transformers' GGUF loader for the GGUF file), and their sizes. Then a commit of M records
exported with --max-rank K: the relative error per layer and the efficacy before and after
the truncation.

    python benchmarks/bench_serving.py [--n 100] [--n-rank 300] [--max-rank 32]
Writes benchmarks/results/serving.{json,md}. A quick smoke run: --n 3 --n-rank 5 --max-rank 2
(--name keeps its results apart)."""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from common import DATA, command, write_results

from memstore.eval.data import read_counterfact_records
from memstore.eval.metrics import counterfact_metrics
from memstore.models.loading import local_dir, smollm2_gguf
from memstore.store import porcelain

KEYS = ("efficacy", "paraphrase", "neighborhood", "score")


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() \
        else path.stat().st_size


def quality(model, tok, records) -> dict:
    t = time.perf_counter()
    m = counterfact_metrics(model, tok, records)
    return {k: m[k] for k in KEYS} | {"seconds": time.perf_counter() - t}


def committed(root: Path, records: list, message: str, model: str = "smollm2-135m"):
    """A fresh repository on `model` with one commit of `records`."""
    repo = porcelain.init(root, model)
    t = time.perf_counter()
    porcelain.commit(repo, [r.request for r in records], message)
    return repo, time.perf_counter() - t


def serving_formats(tmp: Path, records: list, out: dict) -> None:
    import transformers
    from peft import PeftModel

    repo, out["commit_seconds"] = committed(tmp / "repo", records, f"{len(records)} records")
    timings = {}
    for fmt in ("full", "peft", "gguf"):
        t = time.perf_counter()
        out[f"{fmt}_manifest"] = porcelain.export_as(repo, None, tmp / fmt, format=fmt)
        timings[fmt] = time.perf_counter() - t
    repo.close()
    out["export_seconds"] = timings
    out["sizes"] = {"full": size_of(tmp / "full"),
                    "adapter": size_of(tmp / "peft" / "adapter_model.safetensors"),
                    "gguf": size_of(tmp / "gguf" / "model.gguf"), "gguf_base": size_of(smollm2_gguf())}
    tok = transformers.AutoTokenizer.from_pretrained(tmp / "full")
    full = transformers.AutoModelForCausalLM.from_pretrained(tmp / "full", dtype=torch.float32).eval()
    out["full"] = quality(full, tok, records)
    base = transformers.AutoModelForCausalLM.from_pretrained(local_dir("smollm2-135m"),
                                                             dtype=torch.float32).eval()
    # the LoRA modules run in the forward pass (not merged); scoring takes the wrapped model
    lora = PeftModel.from_pretrained(base, tmp / "peft").eval().get_base_model()
    out["peft"] = quality(lora, tok, records)
    gguf = transformers.AutoModelForCausalLM.from_pretrained(
        tmp / "gguf", gguf_file="model.gguf", dtype=torch.float32).eval()
    full_state = full.state_dict()
    out["gguf_identical_to_full"] = all(torch.equal(w, full_state[n])
                                        for n, w in gguf.state_dict().items())
    out["gguf"] = quality(gguf, tok, records)
    print(json.dumps({k: out[k] for k in ("sizes", "full", "peft", "gguf")}, default=float),
          flush=True)


def truncation(tmp: Path, records: list, max_rank: int, out: dict) -> None:
    repo, out["commit_seconds"] = committed(tmp / "repo-rank", records, f"{len(records)} records")
    t = time.perf_counter()
    exact = porcelain.export_as(repo, None, tmp / "rank-exact", format="peft")
    out["manifest"] = porcelain.export_as(repo, None, tmp / "rank", format="peft",
                                          max_rank=max_rank)
    out["export_seconds"] = time.perf_counter() - t
    out["exact_rank"] = exact["rank"]
    out["exact_adapter_bytes"] = size_of(tmp / "rank-exact" / "adapter_model.safetensors")
    out["adapter_bytes"] = size_of(tmp / "rank" / "adapter_model.safetensors")
    repo.close()


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def report(out: dict) -> list[str]:
    s, a = out["serving"], out["rank"]
    sizes = s["sizes"]
    row = "| {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {} |"
    lines = [f"# Serving exports, SmolLM2-135M, CounterFact dev ({out['n']} records, one commit)",
             "", "| export, loaded by | ES | PS | NS | S | size |",
             "| --- | --- | --- | --- | --- | --- |"]
    for key, label, size in (("full", "full checkpoint, transformers", sizes["full"]),
                             ("peft", "PEFT adapter, peft on the base", sizes["adapter"]),
                             ("gguf", "GGUF, transformers' GGUF loader", sizes["gguf"])):
        lines.append(row.format(label, *(s[key][k] for k in KEYS), mb(size)))
    p = s["peft_manifest"]
    lines += ["", (f"Adapter: rank {p['rank']} on {len(p['layers'])} modules, "
              f"{mb(sizes['adapter'])} against {mb(sizes['full'])} for the checkpoint "
              f"({sizes['full'] / sizes['adapter']:.0f}×). GGUF: {mb(sizes['gguf'])} beside the "
              f"base file's {mb(sizes['gguf_base'])}; its weights identical to the full "
              f"export's: {s['gguf_identical_to_full']}."), "",
              "| layer | GGUF tensor | base type | ΔW kept / relative error if re-quantised |",
              "| --- | --- | --- | --- |"]
    for layer, r in s["gguf_manifest"]["layers"].items():
        q = r["requantized"]
        figure = "–" if q is None else f"{q['kept']:.3f} / {q['error']:.3f}"
        lines.append(f"| {layer} | {r['tensor']} | {r['base_type']} | {figure} |")
    m = a["manifest"]
    t = m["truncation"] or {}
    lines += ["", (f"## {a['n']} records, `--max-rank {a['max_rank']}` (exact rank "
              f"{a['exact_rank']}, {mb(a['exact_adapter_bytes'])} → {mb(a['adapter_bytes'])})"),
              "", "| layer | rank | kept | relative Frobenius error |", "| --- | --- | --- | --- |"]
    for layer, r in m["layers"].items():
        lines.append(f"| {layer} | {r['numerical_rank']} | {r['rank']} | {r['error']:.4f} |")
    if t.get("n_facts"):
        e, tr = t["exact"], t["truncated"]
        lines += ["", (f"Efficacy on the {t['n_facts']} facts (edit prompts): ES {e['efficacy']:.3f} "
                  f"exact → {tr['efficacy']:.3f} truncated; mean P(new) {e['p_new']:.3f} → "
                  f"{tr['p_new']:.3f}.")]
    lines += ["", (f"Commits {s['commit_seconds']:.0f} s and {a['commit_seconds']:.0f} s; whole "
              f"run {out['wall_seconds'] / 60:.1f} min. Command: `{out['command']}`")]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100, help="records of the exported commit")
    ap.add_argument("--n-rank", type=int, default=300, help="records of the truncated commit")
    ap.add_argument("--max-rank", type=int, default=32)
    ap.add_argument("--name", default="serving", help="results file name")
    args = ap.parse_args()
    torch.set_num_threads(2)
    started = time.perf_counter()
    records = read_counterfact_records(DATA / "counterfact-dev.json")
    out: dict = {"command": command(), "n": args.n,
                 "serving": {}, "rank": {"n": args.n_rank, "max_rank": args.max_rank}}
    with tempfile.TemporaryDirectory() as tmp:
        serving_formats(Path(tmp), records[: args.n], out["serving"])
    with tempfile.TemporaryDirectory() as tmp:
        truncation(Path(tmp), records[: args.n_rank], args.max_rank, out["rank"])
    out["wall_seconds"] = time.perf_counter() - started
    write_results(args.name, out, report(out))


if __name__ == "__main__":
    main()
