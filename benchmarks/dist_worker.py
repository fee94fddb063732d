"""One process of a torchrun job (bench_speed.py --parts processes): statistics and the
z-vectors of N requests on SmolLM2, spread over the job's processes (gloo), one thread
each. Rank 0 prints the wall time of each phase and a digest of the results as JSON."""
from __future__ import annotations

import argparse
import hashlib
import json
import time

import torch
import torch.distributed as dist
from common import DATA

from memstore.editing import default_settings
from memstore.editing.distributed import init_from_env, world
from memstore.editing.memit import templates_for
from memstore.editing.statistics import collect, token_chunks, wikipedia_paragraphs
from memstore.editing.zs import compute_zs
from memstore.eval.data import read_counterfact
from memstore.models.loading import load_model


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--stats-tokens", type=int, default=8000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    init_from_env()
    lm = load_model("smollm2-135m")
    s = default_settings(lm.model, z_chunk=max(1, args.requests // 4))  # 4 chunks of requests
    chunks = token_chunks(lm.tokenizer, wikipedia_paragraphs(), args.stats_tokens, 128)
    requests = read_counterfact(DATA / "counterfact-dev.json")[: args.requests]
    templates = templates_for(lm.model, lm.tokenizer, s)
    if dist.is_initialized():
        dist.barrier()
    t = time.perf_counter()
    sums, _ = collect(lm.model, lm.adapter, chunks, s.layers, lm.tokenizer.pad_token_id,
                      batch_tokens=1024)
    t_stats = time.perf_counter() - t
    t = time.perf_counter()
    zs, _ = compute_zs(lm.model, lm.tokenizer, lm.adapter, requests, templates, s, False)
    t_zs = time.perf_counter() - t
    if world()[0] == 0:
        print(json.dumps({"processes": world()[1], "stats_s": t_stats, "zs_s": t_zs,
                          "stats": digest(sums[s.layers[0]]), "zs": digest(zs)}), flush=True)


if __name__ == "__main__":
    main()
