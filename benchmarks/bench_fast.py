"""A commit twice as fast, and how far from the floor (issue: past the state of the art).

On SmolLM2-135M, 100 counterfact-dev records, side by side in one run, each a `commit` in a
fresh repository with its statistics already stored:
  - the previous defaults, kept as settings (`memstore config z_lr 0.5`, `z_stop_loss 0.05`,
    `n_templates 5`, `stats_tokens 20000`, `clamp 0.75`, `template_tokens 10`),
    float32;
  - the current defaults, float32;
  - the current defaults with the context keys kept (`memstore config context_weight 1`);
  - the current defaults with bfloat16 weights (`--dtype bfloat16`);
with wall time, time in z-vectors and in the solve, mean steps, and ES / PS / NS / S.

The floor of one z-vector step: the multiply-adds it needs (the layers after L on the
suffix tokens only — from each subject's last token on — attention over prefix and suffix,
logits only where the loss reads them, and the backward pass to δ through the same
matmuls: the weights are frozen), and this CPU's measured float32 and bfloat16 matmul
rates, printed beside the measured time of one step over every row.

    python benchmarks/bench_fast.py [--n 100]
Writes benchmarks/results/fast.json and fast.md."""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from common import DATA, command, write_results

from memstore.editing.memit import templates_for
from memstore.editing.zs import (
    buckets,
    build_rows,
    eager_attention,
    full_pass,
    request_losses,
    to_suffix,
)
from memstore.eval.data import read_counterfact_records
from memstore.eval.metrics import counterfact_metrics
from memstore.store import porcelain
from memstore.store.states import forget_loaded, set_runtime_flags, state_of, statistics

KEYS = ("efficacy", "paraphrase", "neighborhood", "score")
PREVIOUS = {"z_lr": "0.5", "z_stop_loss": "0.05", "n_templates": "5", "stats_tokens": "20000",
            "clamp": "0.75", "template_tokens": "10"}


def matmul_rate(dtype: torch.dtype, shape=(4096, 576, 1536), repeat: int = 20) -> float:
    """Measured multiply-adds per second of one (m × k) @ (k × n) product."""
    m, k, n = shape
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return m * k * n * repeat / (time.perf_counter() - t)


def step_floor(model, adapter, groups, settings) -> dict:
    """Multiply-adds of one z-vector step (forward and backward to δ) over these rows."""
    cfg = model.config.get_text_config()
    h, inter, vocab = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or h // heads
    kv = getattr(cfg, "num_key_value_heads", heads) * head_dim
    after = adapter.n_layers(model) - settings.last_layer - 1
    per_token = h * h + 2 * h * kv + heads * head_dim * h + 3 * h * inter  # q, k, v, o, MLP
    fwd, tokens, loss_positions = 0, 0, 0
    for rows, _ in groups:
        width = rows.input_ids.shape[1]
        prefix = rows.attention_mask[:, :-width].sum(1) if rows.past is not None else 0
        suffix = rows.attention_mask[:, -width:].sum(1)
        ctx = prefix + suffix
        fwd += after * int((suffix * per_token + suffix * heads * head_dim * ctx * 2).sum())
        tokens += int(suffix.sum())
        loss_positions += len(rows.tgt_id) + int(rows.is_kl.sum())
    fwd += loss_positions * h * vocab
    return {"macs": 2 * fwd, "suffix_tokens": tokens, "loss_positions": loss_positions,
            "layers_after_L": after}


def measure_step(model, tok, adapter, requests, settings) -> tuple[dict, float]:
    """The floor and the measured time of one step with every row active (best of 3)."""
    templates = templates_for(model, tok, settings)
    rows = build_rows(tok, requests, templates)
    with eager_attention(model):
        h_l, past = full_pass(model, adapter, rows, settings.last_layer)
        groups = [to_suffix(rows, h_l, past, keep) for keep in buckets(rows)]
        n = len(requests)
        bare = torch.tensor([int(torch.nonzero(rows.request == i)[0]) for i in range(n)])
        h_init = h_l[bare, rows.subject_pos[bare]]
        delta, h_norm = torch.zeros_like(h_init), h_init.norm(dim=1)
        with torch.no_grad():
            _, _, kl = request_losses(model, adapter, groups, delta, None, h_norm, settings)
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            d = delta.clone().requires_grad_(True)
            loss, _, _ = request_losses(model, adapter, groups, d, kl, h_norm, settings)
            loss.sum().backward()
            best = min(best, time.perf_counter() - t)
    return step_floor(model, adapter, groups, settings), best


def commit_path(name: str, records, work: Path, changes: dict, dtype: str) -> dict:
    set_runtime_flags(dtype=dtype)
    repo = porcelain.init(work / name, "smollm2-135m")
    for key, value in changes.items():
        porcelain.config(repo, key, value)
    settings = porcelain.current_settings(repo)
    base = porcelain.open_base(repo)
    statistics(repo, base, settings)  # stored before the clock starts
    state_of(repo, None)
    floor, step_s = measure_step(base.model, base.tokenizer, base.adapter,
                                 [r.request for r in records], settings)
    report = porcelain.commit(repo, [r.request for r in records], name)
    info = report.notes["info"]
    base = state_of(repo, report.commit.id)
    m = counterfact_metrics(base.model, base.tokenizer, records)
    repo.close()
    forget_loaded()
    set_runtime_flags()
    return {"path": name, "dtype": dtype, "settings": settings.to_dict(),
            "commit_s": report.seconds, "time_zs": info["time_zs"],
            "time_solve": info["time_solve"],
            "mean_steps": sum(info["z_steps"]) / len(records),
            "step_s": step_s, "floor": floor, **{k: m[k] for k in KEYS}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.environ["MEMSTORE_STATS_CACHE"] = "off"
    records = read_counterfact_records(DATA / "counterfact-dev.json")[: args.n]
    rates = {"float32": matmul_rate(torch.float32), "bfloat16": matmul_rate(torch.bfloat16)}
    paths = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        repo = porcelain.init(work / "unedited", "smollm2-135m")
        base = porcelain.open_base(repo)
        unedited = counterfact_metrics(base.model, base.tokenizer, records)
        repo.close()
        for name, changes, dtype in (("previous defaults", PREVIOUS, "float32"),
                                     ("current defaults", {}, "float32"),
                                     ("current defaults, context keys",
                                      {"context_weight": "1"}, "float32"),
                                     ("current defaults, bfloat16 weights", {}, "bfloat16")):
            paths.append(commit_path(name, records, work, changes, dtype))
            print(paths[-1], flush=True)
    ref = paths[0]
    lines = [(f"SmolLM2-135M, {args.n} counterfact-dev records in one commit, "
             f"{torch.get_num_threads()} CPU threads, side by side in one run."), "",
             "| path | commit | ratio | z-vectors | mean steps | solve | ES | PS | NS | S |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
             (f"| unedited | | | | | | {unedited['efficacy']:.3f} | {unedited['paraphrase']:.3f} "
              f"| {unedited['neighborhood']:.3f} | {unedited['score']:.3f} |")]
    for p in paths:
        lines.append(f"| {p['path']} | {p['commit_s']:.0f} s | {p['commit_s'] / ref['commit_s']:.2f}× "
                     f"| {p['time_zs']:.0f} s | {p['mean_steps']:.1f} | {p['time_solve']:.1f} s | "
                     f"{p['efficacy']:.3f} | {p['paraphrase']:.3f} | {p['neighborhood']:.3f} | "
                     f"{p['score']:.3f} |")
    lines += ["", "One z-vector step over every row (forward and backward to δ), against its floor:",
              "", ("| path | multiply-adds | suffix tokens | loss positions | floor at the "
              "measured rate | measured | measured / floor |"), "| --- | --- | --- | --- | --- | --- | --- |"]
    for p in paths:
        f = p["floor"]
        rate = rates["bfloat16" if p["dtype"] == "bfloat16" else "float32"]
        floor_s = f["macs"] / rate
        lines.append(f"| {p['path']} | {f['macs'] / 1e9:.0f} G | {f['suffix_tokens']} | "
                     f"{f['loss_positions']} | {floor_s:.2f} s | {p['step_s']:.2f} s | "
                     f"{p['step_s'] / floor_s:.1f}× |")
    lines += ["", (f"Measured matmul rate (4096×576 @ 576×1536): float32 "
              f"{rates['float32'] / 1e9:.0f} G multiply-adds/s, bfloat16 {rates['bfloat16'] / 1e9:.0f} "
              f"G/s ({rates['bfloat16'] / rates['float32']:.2f}×)."), "", f"Command: `{command()}`"]
    write_results("fast", {"n": args.n, "unedited": {k: unedited[k] for k in KEYS},
                           "rates": rates, "paths": paths, "command": command()}, lines)


if __name__ == "__main__":
    main()
