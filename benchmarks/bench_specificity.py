"""Where zsRE's specificity goes (issue 14, item 2): the recipe for question-answer facts
writes 300 zsRE records at efficacy 0.96 and paraphrase 0.80, and costs the unrelated
Natural Questions prompts 0.03-0.04 of token accuracy against the 0.02 asked. One process,
SmolLM2-135M, the first n zsre-dev records, the recipe's z-vectors computed once (cached
under the memstore cache, bench-zs) and written by each solve below:

  - the statistics' spectrum per edited layer: the eigenvalues of E[k kᵀ] (percentiles)
    and the share of the variance in the directions below `nullspace_threshold`: what
    AlphaEdit's null-space projection leaves a write;
  - how far the subjects' keys stand out from ordinary text: kᵀ E[k kᵀ]⁻¹ k / d_in at the
    subject's last token of each question, against the tokens of the NQ prompts (1 for
    keys like the statistics' sample; a write reaches a key more cheaply the larger it is);
  - per solve: efficacy / paraphrase / specificity, how many NQ prompts lose accuracy, and
    the leak ‖ΔW k‖ / ‖W k‖ per layer over every token of the NQ prompts and their answers
    (the edit's change of the MLP output on text it was never asked to change); the last
    rows solve against E[k kᵀ] from the whole built-in Wikipedia sample (285,000 tokens,
    186·d_in) instead of the default 25·d_in.

    python benchmarks/bench_specificity.py --n 300 [--solves 7,8,9,10]
Writes benchmarks/results/specificity.{json,md} (with `--solves`, specificity-<rows>.{json,md})."""
from __future__ import annotations

import argparse
import math
import time

import torch
from bench_sequential import base_zs
from bench_zsre import QA_RECIPE
from common import DATA, command, write_results

from memstore.editing import default_settings, execute_memit, unapply_updates
from memstore.editing.keys import at_subject
from memstore.editing.layers import run_until
from memstore.editing.memit import templates_for
from memstore.editing.statistics import cached_statistics
from memstore.editing.tokens import target_ids
from memstore.eval.data import read_zsre
from memstore.eval.metrics import zsre_per_record
from memstore.models.hashing import model_hash
from memstore.models.loading import cache_dir, load_model

KEYS = ("efficacy", "paraphrase", "specificity")
SOLVE = {k: v for k, v in QA_RECIPE.items() if k not in ("clamp", "template_tokens")}
SOLVES = [("passes 1, λ grows with the facts (the default solve)",
           {k: None for k in SOLVE}),
          ("the recipe's solve: passes 2, context keys, λ 1536 fixed", {}),
          ("the recipe's solve, λ 3072", {"mom2_weight": 3072.0}),
          ("the recipe's solve, λ 3072, passes 3", {"mom2_weight": 3072.0, "passes": 3}),
          ("the recipe's solve, null space (threshold 0.02, the default)",
           {"history": "nullspace", "mom2_weight": None, "mom2_growth": None}),
          ("the recipe's solve, null space (threshold 0.005)",
           {"history": "nullspace", "nullspace_threshold": 0.005, "mom2_weight": None,
            "mom2_growth": None}),
          # E[k kᵀ] from the whole built-in Wikipedia sample instead of 25·d_in tokens
          ("the recipe's solve, statistics of 285,000 tokens", {"stats_tokens": 285000}),
          ("the recipe's solve, statistics of 285,000 tokens, λ 1024",
           {"stats_tokens": 285000, "mom2_weight": 1024.0}),
          ("the recipe's solve, statistics of 285,000 tokens, λ 768",
           {"stats_tokens": 285000, "mom2_weight": 768.0}),
          ("the recipe's solve, statistics of 285,000 tokens, λ 3072, passes 3",
           {"stats_tokens": 285000, "mom2_weight": 3072.0, "passes": 3}),
          ("the recipe's solve, statistics of 285,000 tokens, λ 2048",
           {"stats_tokens": 285000, "mom2_weight": 2048.0}),
          ("the recipe's solve, statistics of 285,000 tokens, λ 4096",
           {"stats_tokens": 285000, "mom2_weight": 4096.0})]


def mean(xs) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else float("nan")


def layer_keys(model, ad, layers, ids: list[int]) -> dict[int, torch.Tensor]:
    """The keys (the inputs of W_out) of every token of `ids`, per layer, float64."""
    with torch.no_grad():
        got = run_until(model, ad, max(layers), [(l, "key") for l in layers],
                        input_ids=torch.tensor([ids]))
    return {l: got[(l, "key")][0].double() for l in layers}


def answer_predictions(model, tok, records) -> list[tuple[list[int], list[int]]]:
    """Per NQ prompt: its answer's tokens and the model's top-1 at each (teacher forced)."""
    out = []
    for r in records:
        prompt, answer = tok(r.loc + "?").input_ids, target_ids(tok, r.loc_ans)
        with torch.no_grad():
            logits = model(torch.tensor([prompt + answer[:-1]])).logits[0]
        out.append((answer, logits[len(prompt) - 1:].argmax(-1).tolist()))
    return out


def continues_word(tok, token: int) -> bool:
    """Whether a token goes on with the word before it (no space, a letter or digit first)."""
    text = tok.decode([token])
    return bool(text) and text[0].isalnum()


def lost_tokens(tok, before, after) -> dict:
    """The answer tokens predicted right before the edit and wrong after it, and how many of
    them go on with a word, beside the same share among all tokens right before."""
    right = [(a[j], b[j] == a[j], c[j] == a[j]) for (a, b), (_, c) in zip(before, after)
             for j in range(len(a))]
    lost = [t for t, was, now in right if was and not now]
    was_right = [t for t, was, _ in right if was]
    return {"lost": len(lost), "gained": sum(now and not was for _, was, now in right),
            "lost_continuing": sum(continues_word(tok, t) for t in lost),
            "right_before": len(was_right),
            "right_before_continuing": sum(continues_word(tok, t) for t in was_right)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--solves", default="", help="only these rows of SOLVES (1-based, comma "
                    "separated); the results then go to specificity-<rows>.{json,md}")
    args = ap.parse_args()
    picked = [int(x) for x in args.solves.split(",") if x]
    if any(not 1 <= i <= len(SOLVES) for i in picked):
        raise SystemExit(f"--solves: rows 1-{len(SOLVES)}")
    solves = [SOLVES[i - 1] for i in picked] if picked else SOLVES
    torch.set_num_threads(2)
    started = time.perf_counter()
    lm = load_model("smollm2-135m")
    model, tok, ad = lm.model, lm.tokenizer, lm.adapter
    records = read_zsre(DATA / "zsre-dev.json")[: args.n]
    requests = [r.request for r in records]
    s = default_settings(model)
    qa = s.with_changes(**QA_RECIPE)
    model_id = model_hash(model)  # before any edit: unapplying one rounds the weights

    def statistics(tokens: int) -> dict:
        return cached_statistics(model, tok, ad, s.layers, model_id, cache_dir() / "stats",
                                 s.stats_source, tokens, s.seed)

    stats = statistics(s.stats_tokens)
    templates = templates_for(model, tok, qa)
    zs = base_zs(model, tok, ad, [records], qa, templates, model_id)[0]

    spectrum, inverse = {}, {}
    for l in s.layers:
        c = stats[l].mom2.double()
        e = torch.linalg.eigvalsh(c)
        inverse[l] = torch.linalg.inv(c)
        below = e < s.nullspace_threshold
        spectrum[l] = {"percentiles": e.quantile(torch.tensor([0.1, 0.5, 0.9, 0.99],
                                                              dtype=e.dtype)).tolist(),
                       "below": int(below.sum()), "variance_below": float(e[below].sum() / e.sum())}
    # the keys of the NQ prompts (question and answer) and of the subjects, unedited model
    nq = [layer_keys(model, ad, s.layers, tok(r.loc + "? " + r.loc_ans).input_ids)
          for r in records]
    standout = {}
    for l in s.layers:
        def score(k, l=l):  # kᵀ C⁻¹ k / d_in per row
            return ((k @ inverse[l]) * k).sum(-1) / k.shape[-1]
        subjects = at_subject(model, tok, ad, l, "key", [r.prompt for r in requests],
                              [r.subject for r in requests]).double()
        standout[l] = {"subjects": float(score(subjects).median()),
                       "nq": float(torch.cat([score(x[l][1:]) for x in nq]).median())}

    base = zsre_per_record(model, tok, records)
    base_predictions = answer_predictions(model, tok, records)
    rows = {"unedited": {k: mean(v) for k, v in base.items()}}
    for name, changes in solves:
        # None: the default's value (the z-vector settings stay the recipe's)
        solve = SOLVE | {k: getattr(s, k) if v is None else v for k, v in changes.items()}
        solve_stats = stats if "stats_tokens" not in solve else statistics(solve["stats_tokens"])
        t = time.perf_counter()
        res = execute_memit(model, tok, requests, qa.with_changes(**solve), solve_stats,
                            templates=templates, zs=zs, show_progress=False)
        solve_s = time.perf_counter() - t
        per = zsre_per_record(model, tok, records)
        tokens = lost_tokens(tok, base_predictions, answer_predictions(model, tok, records))
        unapply_updates(model, ad, res.updates)
        leak = {}
        for l, u in res.updates.items():
            w = ad.proj(model, l).weight.double()
            w = w.T if u.transposed else w
            ks = torch.cat([x[l][1:] for x in nq])
            dk = (ks @ u.V.double()) @ u.U.double().T
            leak[l] = float((dk.norm(dim=1) / (ks @ w.T).norm(dim=1)).mean())
        drop = [a - b for a, b in zip(per["specificity"], base["specificity"])]
        rows[name] = {k: mean(v) for k, v in per.items()} | {
            "nq_worse": sum(x < 0 for x in drop), "nq_better": sum(x > 0 for x in drop),
            "tokens": tokens, "leak": leak, "solve_seconds": solve_s, "settings": solve}
        print(name, {k: round(rows[name][k], 3) for k in KEYS},
              {l: round(v, 3) for l, v in leak.items()}, flush=True)
    out = {"command": command(), "n": len(records), "settings": qa.to_dict(), "rows": rows,
           "spectrum": spectrum, "standout": standout, "threshold": s.nullspace_threshold,
           "wall_seconds": time.perf_counter() - started}
    write_results("specificity" + "".join(f"-{i}" for i in picked), out, report(out, s.layers))


def report(out: dict, layers) -> list[str]:
    rows, base = out["rows"], out["rows"]["unedited"]
    lines = [(f"# zsRE specificity, SmolLM2-135M: {out['n']} zsre-dev records in one batch, "
             "the recipe's z-vectors written by each solve"), "",
             "| solve | efficacy | paraphrase | specificity | NQ prompts worse / better | "
              "NQ answer tokens lost / gained (lost that go on with a word) | "
             "leak ‖ΔW k‖ / ‖W k‖ on NQ tokens, layers " + ", ".join(map(str, layers)) + " |",
             "| --- | --- | --- | --- | --- | --- | --- |",
             (f"| unedited | {base['efficacy']:.3f} | {base['paraphrase']:.3f} | "
             f"{base['specificity']:.3f} | | | |")]
    for name, m in list(rows.items())[1:]:
        lines.append(f"| {name} | {m['efficacy']:.3f} | {m['paraphrase']:.3f} | "
                     f"{m['specificity']:.3f} ({m['specificity'] - base['specificity']:+.3f}) | "
                     f"{m['nq_worse']} / {m['nq_better']} | {m['tokens']['lost']} / "
                     f"{m['tokens']['gained']} ({m['tokens']['lost_continuing'] / max(1, m['tokens']['lost']):.0%}) | "
                     + " / ".join(f"{m['leak'][l]:.2f}" for l in layers) + " |")
    first = next(iter(list(rows.values())[1:]))["tokens"]
    lines += ["", (f"Of the {first['right_before']} answer tokens the unedited model predicts "
                   f"right, {first['right_before_continuing'] / max(1, first['right_before']):.0%} go on "
                   "with the word before them (no space, a letter or digit first).")]
    lines += ["", (f"The statistics E[k kᵀ] per edited layer: eigenvalue percentiles, and what "
              f"lies below the null-space threshold {out['threshold']:g}; how far keys stand "
              "out (median kᵀ E[k kᵀ]⁻¹ k / d_in):"), "",
              ("| layer | eigenvalues p10 / p50 / p90 / p99 | directions below | their share of "
              "the variance | subjects' keys | NQ tokens' keys |"), "| --- | --- | --- | --- | --- | --- |"]
    for l in layers:
        sp, so = out["spectrum"][l], out["standout"][l]
        lines.append(f"| {l} | " + " / ".join(f"{x:.4f}" for x in sp["percentiles"])
                     + f" | {sp['below']} | {sp['variance_below']:.2f} | {so['subjects']:.2f} | "
                     f"{so['nq']:.2f} |")
    lines += ["", f"Whole run {out['wall_seconds'] / 60:.1f} min.", "",
              f"Command: `{out['command']}`"]
    return lines


if __name__ == "__main__":
    main()
