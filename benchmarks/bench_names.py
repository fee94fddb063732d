"""The statistics of names added to the solve's preservation term: A = λ (E[k kᵀ] + ρ E_names[k kᵀ]).

MEMIT reads a fact at the subject's last token, and what an edit spills onto other facts
(CounterFact's neighbourhood prompts: other subjects, the same relation) is read there too —
at the last token of a name. E[k kᵀ] is taken over every token of ordinary text, mostly
function words and pieces of words; E_names[k kᵀ] here is taken only at the last token of
capitalised names in the same Wikipedia sample (a run of capitalised words, a lone
sentence-initial word left out), so that ρ weighs, in the preservation term, the directions
in which names differ from one another. An experiment, not a setting: the statistics are
computed here and added to the engine's before every solve.

    python benchmarks/bench_names.py one-batch --commits 10 --size 100 --variants fixed:0,fixed:1,fixed:4,grow:1
      (bench_one_batch's records and base-model z-vectors, one solve each; fixed: λ fixed,
      grow: λ grown with the facts as by default; the number is ρ)
    python benchmarks/bench_names.py sequential --rho 1 --commits 10 --size 100 --zs base --final-sample 400
      (bench_sequential.py's history with the names' statistics, method preserve-names<ρ>, or
      preserve-fixed-names<ρ> with --lambda-fixed; the other arguments are bench_sequential.py's)
Writes benchmarks/results/names-one-batch-<commits>x<size>.{json,md}, or what
bench_sequential.py writes."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import torch
from common import cached, command, spread, write_results

from memstore.data import wikipedia_paragraphs
from memstore.editing import default_settings
from memstore.editing.layers import run_until
from memstore.editing.statistics import token_chunks
from memstore.editing.tokens import pad_right

NAME_TOKENS = 100_000  # tokens of the Wikipedia sample read for the names (~6.5% are name ends)


def name_ends(tokenizer, ids: list[int]) -> list[int]:
    """Positions of the last token of each capitalised name in `ids`: a maximal run of
    capitalised words (a word: tokens from one that opens with a space or follows
    punctuation), a single capitalised word left out where it opens a sentence."""
    toks = tokenizer.convert_ids_to_tokens(ids)
    words: list[list[int]] = []  # [first, last] token of each word or punctuation piece
    for i, t in enumerate(toks):
        if (i == 0 or t.startswith(("Ġ", "▁")) or not t.lstrip("Ġ▁")[:1].isalnum()
                or not toks[i - 1][-1:].isalnum()):
            words.append([i, i])
        else:
            words[-1][1] = i

    def text(w: list[int]) -> str:
        return tokenizer.convert_tokens_to_string(toks[w[0]:w[1] + 1]).strip()

    capital = [text(w)[:1].isupper() for w in words]
    out, j = [], 0
    while j < len(words):
        if not capital[j]:
            j += 1
            continue
        k = j
        while k + 1 < len(words) and capital[k + 1]:
            k += 1
        opens_sentence = j == 0 or text(words[j - 1]).endswith((".", "!", "?", '"', ":"))
        if words[k][1] > 0 and not (k == j and opens_sentence):
            out.append(words[k][1])
        j = k + 1
    return out


@torch.no_grad()
def name_statistics(model, tokenizer, adapter, layers: tuple[int, ...], model_id: str,
                    n_tokens: int = NAME_TOKENS) -> dict[int, torch.Tensor]:
    """E_names[k kᵀ] per layer (float64), cached (common.cached)."""
    def compute() -> dict:
        t = time.perf_counter()
        chunks = token_chunks(tokenizer, wikipedia_paragraphs(), n_tokens, 256)
        sums: dict[int, torch.Tensor] = {}
        count = 0
        for a in range(0, len(chunks), 16):
            batch = chunks[a:a + 16]
            ids, mask = pad_right(tokenizer.pad_token_id, batch)
            got = run_until(model, adapter, max(layers), [(l, "key") for l in layers],
                            input_ids=ids, attention_mask=mask)
            picks = [(r, p) for r, c in enumerate(batch) for p in name_ends(tokenizer, c)]
            rows = torch.tensor([r for r, _ in picks], dtype=torch.long)
            cols = torch.tensor([p for _, p in picks], dtype=torch.long)
            count += len(picks)
            for l in layers:
                k = got[(l, "key")][rows, cols].double()
                sums[l] = sums[l] + k.T @ k if l in sums else k.T @ k
        print(f"names' statistics: {count} name ends in {n_tokens} tokens, "
              f"{time.perf_counter() - t:.0f}s", flush=True)
        return {str(l): s / count for l, s in sums.items()} | {"count": torch.tensor(count)}

    key = json.dumps(["names", model_id, list(layers), n_tokens])
    got = cached("names", key, compute)
    return {l: got[str(l)] for l in layers}


def with_names(stats: dict, names: dict[int, torch.Tensor], rho: float) -> dict:
    """The engine's statistics with ρ·E_names[k kᵀ] added (new objects; the cached ones are
    not modified)."""
    return {l: dataclasses.replace(s, mom2=s.mom2 + rho * names[l]) for l, s in stats.items()}


def one_batch(argv: list[str]) -> None:
    from bench_sequential import base_zs, efficacy, subject_batches

    from memstore.editing import execute_memit, unapply_updates
    from memstore.editing.memit import templates_for
    from memstore.editing.statistics import cached_statistics
    from memstore.eval.metrics import counterfact_metrics
    from memstore.models.hashing import model_hash
    from memstore.models.loading import cache_dir, load_model

    ap = argparse.ArgumentParser(prog="bench_names.py one-batch")
    ap.add_argument("--commits", type=int, default=10)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--final-sample", type=int, default=400)
    ap.add_argument("--variants", default="fixed:0,fixed:1,fixed:4,grow:0,grow:1",
                    help="fixed|grow:ρ, comma-separated")
    args = ap.parse_args(argv)
    try:
        variants = [(kind, float(rho)) for kind, rho in (v.split(":") for v in args.variants.split(","))]
        assert all(kind in ("fixed", "grow") for kind, _ in variants)
    except (ValueError, AssertionError):
        raise SystemExit(f"--variants: fixed:ρ or grow:ρ, comma-separated, not {args.variants!r}")
    torch.set_num_threads(2)
    started = time.perf_counter()
    lm = load_model("smollm2-135m")
    model, tok, ad = lm.model, lm.tokenizer, lm.adapter
    s0 = default_settings(model)
    model_id = model_hash(model)
    stats = cached_statistics(model, tok, ad, s0.layers, model_id, cache_dir() / "stats",
                              s0.stats_source, s0.stats_tokens, s0.seed)
    names = name_statistics(model, tok, ad, s0.layers, model_id)
    batches = subject_batches(args.commits, args.size)
    records = [r for b in batches for r in b]
    templates = templates_for(model, tok, s0)
    zs = torch.cat(base_zs(model, tok, ad, batches, s0, templates, model_id))
    requests = [r.request for r in records]
    sample = spread(records, args.final_sample)
    rows = {"unedited": counterfact_metrics(model, tok, sample)}
    runs = {}
    for kind, rho in variants:
        s = s0.with_changes(mom2_growth=0.0) if kind == "fixed" else s0
        t = time.perf_counter()
        res = execute_memit(model, tok, requests, s, with_names(stats, names, rho),
                            templates=templates, zs=zs, show_progress=False)
        solve = time.perf_counter() - t
        name = f"{kind}:{rho:g}"
        rows[name] = counterfact_metrics(model, tok, sample)
        runs[name] = {"first_es": efficacy(model, tok, batches[0]), "solve_seconds": solve,
                      "lambda": res.info.get("lambda")}
        unapply_updates(model, ad, res.updates)
        print(name, {k: round(rows[name][k], 3) for k in ("efficacy", "paraphrase", "neighborhood")},
              runs[name], flush=True)
    out = {"command": command(), "settings": s0.to_dict(), "commits": args.commits,
           "size": args.size, "final_sample": args.final_sample, "name_tokens": NAME_TOKENS,
           "rows": rows, "runs": runs, "wall_seconds": time.perf_counter() - started}
    write_results(f"names-one-batch-{args.commits}x{args.size}", out, report(out))


def report(out: dict) -> list[str]:
    from bench_one_batch import report as table

    return table(out, " with the names' statistics",
                 f"A = λ (E[k kᵀ] + ρ E_names[k kᵀ]), E_names over the name ends of the first "
                 f"{out['name_tokens']} tokens of the Wikipedia sample; the records and base-model "
                 f"z-vectors of bench_one_batch.py; ES / PS / NS over {out['final_sample']} spread "
                 f"over all, ES of the first {out['size']}.", "λ, ρ")


def sequential(argv: list[str]) -> None:
    import bench_sequential

    ap = argparse.ArgumentParser(prog="bench_names.py sequential", add_help=False)
    ap.add_argument("--rho", type=float, default=1.0)
    ap.add_argument("--lambda-fixed", action="store_true", help="mom2_growth 0 (λ not grown)")
    args, rest = ap.parse_known_args(argv)
    shown = command()
    name = f"preserve-{'fixed-' if args.lambda_fixed else ''}names{args.rho:g}"
    bench_sequential.METHODS[name] = {"history": "preserve"} | (
        {"mom2_growth": 0.0} if args.lambda_fixed else {})
    load_stats = bench_sequential.cached_statistics

    def stats_with_names(model, tok, adapter, layers, model_id, *a, **kw):
        stats = load_stats(model, tok, adapter, layers, model_id, *a, **kw)
        return with_names(stats, name_statistics(model, tok, adapter, layers, model_id), args.rho)

    bench_sequential.cached_statistics = stats_with_names
    bench_sequential.command = lambda: shown  # the results name this script, not its host
    sys.argv = ["bench_sequential.py", *rest, "--methods", name]
    bench_sequential.main()


def main() -> None:
    modes = {"one-batch": one_batch, "sequential": sequential}
    if len(sys.argv) < 2 or sys.argv[1] not in modes:
        raise SystemExit(f"usage: bench_names.py {{{'|'.join(modes)}}} [options]")
    modes[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
