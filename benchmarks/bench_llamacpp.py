"""The serving exports run by llama.cpp itself (SmolLM2-135M): a commit of N CounterFact dev
records exported as a GGUF file (`--format gguf`) and as a PEFT adapter converted with
llama.cpp's own `convert_lora_to_gguf.py`; ES / PS / NS scored through llama.cpp's forward
pass (llama-cpp-python) for the unedited base GGUF, the edited GGUF and the base GGUF with
the LoRA, beside transformers on memstore's state; the greedy completion of each edit
prompt by llama.cpp's own tokenizer and sampler.

llama.cpp is not a dependency of memstore and is not on PyPI as a wheel: build
llama-cpp-python from its sdist (`pip install --no-build-isolation llama-cpp-python`, with
scikit-build-core and a C++ compiler; ~25 min on 2 cores) and point `--llama-cpp` at the
unpacked sdist's `vendor/llama.cpp` (for the converter and its gguf-py).

    python benchmarks/bench_llamacpp.py --llama-cpp /path/to/llama_cpp_python-X/vendor/llama.cpp [--n 100]
Writes benchmarks/results/llamacpp.{json,md}."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_serving import committed
from common import DATA, command, write_results

from memstore.eval.data import read_counterfact_records
from memstore.eval.metrics import _aggregate, _request_scores, counterfact_metrics
from memstore.eval.scoring import encode_pairs, score_targets
from memstore.models.loading import DEFAULT_MODEL, QWEN, local_dir, resolve
from memstore.store import porcelain

KEYS = ("efficacy", "paraphrase", "neighborhood")


def llama_nll(llm, pairs: list[tuple[list[int], list[int]]]) -> list[float]:
    """Mean NLL of each target after its prompt, by llama.cpp's forward pass on the same
    token ids transformers scores (so only the weights and kernels differ)."""
    import numpy as np

    out = []
    for prompt, target in pairs:
        ids = prompt + target
        llm.reset()
        llm.eval(ids)
        logits = np.asarray(llm.scores[: len(ids)], dtype=np.float64)
        rows = logits[len(prompt) - 1: len(ids) - 1]
        rows = rows - rows.max(axis=1, keepdims=True)
        logp = rows - np.log(np.exp(rows).sum(axis=1, keepdims=True))
        out.append(float(-np.mean([logp[i, t] for i, t in enumerate(target)])))
    return out


def pairs_of(records) -> tuple[list[str], list[str], list[tuple[int, int, int]]]:
    """Every (prompt, target) pair `counterfact_metrics` scores, in its order."""
    prompts, targets, counts = [], [], []
    for r in (x.request for x in records):
        for p in (r.text, *r.paraphrases, *r.neighborhood):
            prompts += [p, p]
            targets += [r.target_new, r.target_true]
        counts.append((1, len(r.paraphrases), len(r.neighborhood)))
    return prompts, targets, counts


def llama_metrics(llm, tok, records) -> tuple[dict, list[float]]:
    """ES / PS / NS as `counterfact_metrics` defines them, the NLLs from llama.cpp; and the
    NLLs."""
    prompts, targets, counts = pairs_of(records)
    nll = llama_nll(llm, encode_pairs(tok, prompts, targets))
    per, at = [], 0
    for c in counts:
        parts = []
        for k in c:
            parts.append((nll[at: at + 2 * k: 2], nll[at + 1: at + 2 * k: 2]))
            at += 2 * k
        per.append(_request_scores(parts))
    return {k: v for k, v in _aggregate(per).items() if k in KEYS}, nll


def completions(llm, records, tokens: int = 6) -> list[dict]:
    """Greedy continuations of each edit prompt, tokenized by llama.cpp itself."""
    out = []
    for r in (x.request for x in records):
        llm.reset()
        text = llm(r.text, max_tokens=tokens, temperature=0.0)["choices"][0]["text"]
        out.append({"prompt": r.text, "target_new": r.target_new, "completion": text,
                    "hit": text.strip().startswith(r.target_new.strip())})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", type=Path, required=True,
                    help="llama.cpp source tree (convert_lora_to_gguf.py, gguf-py)")
    ap.add_argument("--n", type=int, default=100, help="records of the exported commit")
    ap.add_argument("--model", default=DEFAULT_MODEL, choices=[DEFAULT_MODEL, QWEN])
    ap.add_argument("--gguf-dtype", default="f32", choices=["f32", "f16"],
                    help="the edited tensors' type in the GGUF export")
    ap.add_argument("--name", default="llamacpp", help="results file name")
    args = ap.parse_args()
    import llama_cpp
    import transformers

    torch.set_num_threads(2)
    started = time.perf_counter()
    records = read_counterfact_records(DATA / "counterfact-dev.json")[: args.n]
    out: dict = {"command": command(), "n": args.n, "model": args.model,
                 "gguf_dtype": args.gguf_dtype, "llama_cpp_python": llama_cpp.__version__}
    base_gguf = resolve(args.model)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        repo, out["commit_seconds"] = committed(tmp / "repo", records, f"{args.n} records",
                                                args.model)
        porcelain.export_as(repo, None, tmp / "gguf", format="gguf",
                            gguf_dtype=None if args.gguf_dtype == "f32" else args.gguf_dtype)
        out["rank"] = porcelain.export_as(repo, None, tmp / "peft", format="peft")["rank"]
        porcelain.export_as(repo, "base", tmp / "base")
        repo.close()
        env = {**os.environ, "PYTHONPATH": str(args.llama_cpp / "gguf-py")}
        convert = [sys.executable, str(args.llama_cpp / "convert_lora_to_gguf.py"),
                   str(tmp / "peft"), "--base", str(tmp / "base"), "--outtype", "f32",
                   "--outfile", str(tmp / "lora.gguf")]
        subprocess.run(convert, check=True, env=env, capture_output=True)
        tok = transformers.AutoTokenizer.from_pretrained(local_dir(args.model))
        full = transformers.AutoModelForCausalLM.from_pretrained(
            tmp / "gguf", gguf_file="model.gguf", dtype=torch.float32).eval()
        out["transformers_edited"] = {k: v for k, v in
                                      counterfact_metrics(full, tok, records).items() if k in KEYS}
        prompts, targets, _ = pairs_of(records)
        reference = score_targets(full, tok, prompts, targets).nll.tolist()
        del full
        unedited = transformers.AutoModelForCausalLM.from_pretrained(
            local_dir(args.model), dtype=torch.float32).eval()
        reference_base = score_targets(unedited, tok, prompts, targets).nll.tolist()
        del unedited
        runs = {"llama_cpp_base": (base_gguf, None),
                "llama_cpp_gguf_export": (tmp / "gguf" / "model.gguf", None),
                "llama_cpp_base_plus_lora": (base_gguf, tmp / "lora.gguf")}
        for key, (model, lora) in runs.items():
            t = time.perf_counter()
            llm = llama_cpp.Llama(model_path=str(model), lora_path=str(lora) if lora else None,
                                  n_ctx=512, n_threads=2, logits_all=True, seed=0,
                                  verbose=False)
            out[key], nll = llama_metrics(llm, tok, records)
            # the same weights' NLL by transformers, float32
            gaps = [abs(a - b) for a, b in zip(nll, reference_base if key == "llama_cpp_base"
                                               else reference)]
            out[key]["nll_gap"] = {"mean": sum(gaps) / len(gaps), "max": max(gaps)}
            out[key]["completions"] = completions(llm, records)
            out[key]["seconds"] = time.perf_counter() - t
            del llm
            print(key, {k: out[key][k] for k in KEYS}, flush=True)
    out["wall_seconds"] = time.perf_counter() - started
    write_results(args.name, out, report(out))


def report(out: dict) -> list[str]:
    row = "| {} | {:.3f} | {:.3f} | {:.3f} | {} |"
    lines = [(f"# The exports through llama.cpp, {out['model']}, CounterFact dev ({out['n']} "
              f"records, one commit; edited GGUF tensors {out['gguf_dtype']})"), "",
             "| model, run by | ES | PS | NS | greedy completion starts with the new object |",
             "| --- | --- | --- | --- | --- |"]
    t = out["transformers_edited"]
    lines.append(row.format("edited GGUF export, transformers (dequantized, float32)",
                            t["efficacy"], t["paraphrase"], t["neighborhood"], "–"))
    for key, label in (("llama_cpp_base", "base GGUF, llama.cpp (unedited)"),
                       ("llama_cpp_gguf_export", "edited GGUF export, llama.cpp"),
                       ("llama_cpp_base_plus_lora",
                        f"base GGUF + converted adapter (rank {out['rank']}), llama.cpp")):
        m = out[key]
        hits = sum(c["hit"] for c in m["completions"])
        lines.append(row.format(label, m["efficacy"], m["paraphrase"], m["neighborhood"],
                                f"{hits} / {len(m['completions'])}"))
    gaps = {k: out[k]["nll_gap"] for k in ("llama_cpp_base", "llama_cpp_gguf_export",
                                           "llama_cpp_base_plus_lora")}
    lines += ["", ("Per (prompt, target) pair, |NLL by llama.cpp − NLL by transformers on the "
              "same weights dequantized to float32| (mean / max, nats per token): the unedited "
              f"base {gaps['llama_cpp_base']['mean']:.4f} / {gaps['llama_cpp_base']['max']:.4f} "
              "(llama.cpp's kernels on the quantized base), the GGUF export "
              f"{gaps['llama_cpp_gguf_export']['mean']:.4f} / "
              f"{gaps['llama_cpp_gguf_export']['max']:.4f}, the base with the adapter "
              f"{gaps['llama_cpp_base_plus_lora']['mean']:.4f} / "
              f"{gaps['llama_cpp_base_plus_lora']['max']:.4f}.")]
    lines += ["", (f"llama-cpp-python {out['llama_cpp_python']}; commit {out['commit_seconds']:.0f} s; "
              f"whole run {out['wall_seconds'] / 60:.1f} min. Command: `{out['command']}`")]
    return lines


if __name__ == "__main__":
    main()
