"""zsRE on SmolLM2-135M: one MEMIT batch of the first n zsre-dev records (default 300),
with the unedited model beside it: efficacy, paraphrase and specificity (top-1 token
accuracy, teacher forced, as in ROME/MEMIT), overall and by answer length in tokens.

Why efficacy stops short, measured in the same run:
  - the z-vectors' own steps (how many requests hit the step cap);
  - the z-oracle: h^L at the subject's last token of the bare prompt replaced by z (a hook),
    on the unedited model (are the z-vectors right?) and on the edited one (what the edit
    does to the other positions, with the subject's h^L where it should be); the same at
    the subject of each rephrasing (how far z itself carries to other wordings);
  - the reach of the edit: ‖h^L_after − z‖ / ‖z − h^L_before‖ per request;
  - the same z-vectors written with `passes` 1 (the default) and 2 (the residual measured
    again and written again), each without and with the context keys (the keys of the
    question after the subject and of the answer's tokens kept in place by the update:
    `context_weight` 0, the default, and 1), and the last with λ fixed, side by side;
  - the recipe for question-answer facts (README, "Questions and exact answers"): z-vectors
    computed again with a wider clamp, written with passes 2, the context keys and λ fixed.

    python benchmarks/bench_zsre.py --n 300
Writes benchmarks/results/zsre.{json,md}."""
from __future__ import annotations

import argparse
import time

import torch
from common import DATA, command, write_results

from memstore.editing import default_settings, execute_memit, unapply_updates
from memstore.editing.keys import current_hidden
from memstore.editing.memit import templates_for
from memstore.editing.statistics import cached_statistics
from memstore.editing.tokens import subject_last_token, target_ids
from memstore.errors import ValidationError
from memstore.eval.data import read_zsre
from memstore.eval.metrics import zsre_per_record
from memstore.models.hashing import model_hash
from memstore.models.loading import cache_dir, load_model

KEYS = ("efficacy", "paraphrase", "specificity")
LENGTHS = ((1, 1), (2, 2), (3, 3), (4, 5), (6, 99))
GROUPS = ("subject once in the batch", "subject twice or more, one answer",
          "subject also asked with another answer")
# settings for question-answer facts with exact multi-token answers (README)
QA_RECIPE = {"clamp": 1.25, "passes": 2, "context_weight": 1.0, "mom2_growth": 0.0,
             "mom2_weight": 1536.0, "template_tokens": 10}


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def z_oracle(model, tok, ad, layer: int, records, zs: torch.Tensor,
             paraphrases: bool = False) -> list[float]:
    """Top-1 accuracy of each answer after the bare question (or, `paraphrases`, the mean
    over its rephrasings that hold the subject verbatim) with h^layer at the subject's last
    token set to z. Records with no such rephrasing are left out."""
    out = []
    for i, rec in enumerate(records):
        r = rec.request
        prompts = ([p.replace(r.subject, "{}", 1) for p in r.paraphrases if r.subject in p]
                   if paraphrases else [r.prompt])
        tgt = target_ids(tok, r.target_new)
        accs = []
        for prompt in prompts:
            try:
                ids, pos = subject_last_token(tok, prompt, r.subject)
            except ValidationError:  # the subject runs on into the next word here
                continue

            def put_z(_m, _i, output, z=zs[i], pos=pos):
                h = output[0] if isinstance(output, tuple) else output
                h = h.clone()
                h[0, pos] = z.to(h.dtype)
                return (h, *output[1:]) if isinstance(output, tuple) else h

            hook = ad.layer(model, layer).register_forward_hook(put_z)
            try:
                with torch.no_grad():
                    logits = model(torch.tensor([ids + tgt[:-1]])).logits[0]
            finally:
                hook.remove()
            pred = logits[len(ids) - 1: len(ids) - 1 + len(tgt)].argmax(-1).tolist()
            accs.append(sum(p == t for p, t in zip(pred, tgt)) / len(tgt))
        if accs:
            out.append(sum(accs) / len(accs))
    return out


def subject_groups(requests) -> list[str]:
    """Each request's subject in the batch: alone, shared with records of the same answer
    only, or shared with a record that asks for another answer."""
    answers: dict[str, set[str]] = {}
    count: dict[str, int] = {}
    for r in requests:
        answers.setdefault(r.subject, set()).add(r.target_new)
        count[r.subject] = count.get(r.subject, 0) + 1
    return [GROUPS[0] if count[r.subject] == 1 else
            GROUPS[1] if len(answers[r.subject]) == 1 else GROUPS[2] for r in requests]


def summary(per: dict[str, list[float]], lengths: list[int], groups: list[str]) -> dict:
    out = {k: mean(v) for k, v in per.items()}
    out["by_length"], out["by_subject"] = {}, {}
    for lo, hi in LENGTHS:
        idx = [i for i, n in enumerate(lengths) if lo <= n <= hi]
        name = str(lo) if lo == hi else (f"{lo}-{hi}" if hi < 99 else f"{lo}+")
        out["by_length"][name] = {"n": len(idx)} | {k: mean([v[i] for i in idx]) for k, v in per.items()}
    for g in GROUPS:
        idx = [i for i, x in enumerate(groups) if x == g]
        out["by_subject"][g] = {"n": len(idx)} | {k: mean([v[i] for i in idx]) for k, v in per.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--distinct-subjects", action="store_true",
                    help="the first n records whose subject no earlier one has")
    args = ap.parse_args()
    torch.set_num_threads(2)
    started = time.perf_counter()
    lm = load_model("smollm2-135m")
    model, tok, ad = lm.model, lm.tokenizer, lm.adapter
    records = read_zsre(DATA / "zsre-dev.json")
    if args.distinct_subjects:
        seen: set[str] = set()
        records = [r for r in records
                   if r.request.subject not in seen and not seen.add(r.request.subject)]
    records = records[: args.n]
    requests = [r.request for r in records]
    lengths = [len(target_ids(tok, r.target_new)) for r in requests]
    groups = subject_groups(requests)
    s = default_settings(model)
    L = s.last_layer
    stats = cached_statistics(model, tok, ad, s.layers, model_hash(model), cache_dir() / "stats",
                              s.stats_source, s.stats_tokens, s.seed)
    templates = templates_for(model, tok, s)
    rows = {"unedited": summary(zsre_per_record(model, tok, records), lengths, groups)}
    h0 = current_hidden(model, tok, ad, L, requests)
    t = time.perf_counter()
    res = execute_memit(model, tok, requests, s, stats, templates=templates, show_progress=False)
    edit_s = time.perf_counter() - t
    zs, steps, z_s = res.zs, res.info["z_steps"], res.info["time_zs"]
    runs = {}

    def score(name: str, res, **extra) -> None:
        """The edited model's row (metrics, z-oracles, miss), then the edit undone."""
        zs = res.zs
        miss = ((current_hidden(model, tok, ad, L, requests) - zs).norm(dim=1)
                / (zs - h0).norm(dim=1))
        rows[name] = summary(zsre_per_record(model, tok, records), lengths, groups)
        rows[name]["oracle on the edited model"] = mean(z_oracle(model, tok, ad, L, records, zs))
        rows[name]["paraphrase oracle on the edited model"] = mean(
            z_oracle(model, tok, ad, L, records, zs, paraphrases=True))
        runs[name] = {"solve_seconds": res.info["time_solve"], "lambda": res.info.get("lambda"),
                      "miss_quantiles": miss.quantile(torch.tensor([0.5, 0.9])).tolist(), **extra}
        print(name, {k: round(rows[name][k], 3) for k in KEYS}, runs[name], flush=True)
        unapply_updates(model, ad, res.updates)

    variants = [("passes 1 (default)", {}),
                ("passes 1, context keys", {"context_weight": 1.0}),
                ("passes 2", {"passes": 2}),
                ("passes 2, context keys", {"passes": 2, "context_weight": 1.0}),
                ("passes 2, context keys, λ fixed", {"passes": 2, "context_weight": 1.0,
                                                     "mom2_growth": 0.0})]
    for k, (name, changes) in enumerate(variants):
        if k > 0:  # the same z-vectors, solved again
            res = execute_memit(model, tok, requests, s.with_changes(**changes), stats,
                                templates=templates, zs=zs, show_progress=False)
        score(name, res)
    # the recipe: its own z-vectors (a wider clamp), then its solve
    qa = s.with_changes(**QA_RECIPE)
    res = execute_memit(model, tok, requests, qa, stats, templates=templates_for(model, tok, qa),
                        show_progress=False)
    score("recipe: " + ", ".join(f"{k} {v:g}" for k, v in QA_RECIPE.items()), res,
          z_seconds=res.info["time_zs"], mean_z_steps=mean(res.info["z_steps"]))
    recipe_para_oracle = mean(z_oracle(model, tok, ad, L, records, res.zs, paraphrases=True))
    oracle = z_oracle(model, tok, ad, L, records, zs)  # the model is unedited again
    para_oracle = z_oracle(model, tok, ad, L, records, zs, paraphrases=True)
    out = {"command": command(), "settings": s.to_dict(), "n": len(records), "rows": rows,
           "runs": runs, "edit_seconds": edit_s, "z_seconds": z_s,
           "mean_z_steps": mean(steps), "capped": sum(x >= s.z_steps for x in steps),
           "oracle_unedited": mean(oracle), "paraphrase_oracle_unedited": mean(para_oracle),
           "paraphrase_oracle_records": len(para_oracle),
           "recipe": QA_RECIPE, "recipe_paraphrase_oracle_unedited": recipe_para_oracle,
           "oracle_unedited_by_length": summary({"oracle": oracle}, lengths, groups)["by_length"],
           "distinct_subjects": args.distinct_subjects,
           "wall_seconds": time.perf_counter() - started}
    write_results("zsre-distinct" if args.distinct_subjects else "zsre", out, report(out, s.z_steps))


def report(out: dict, z_steps: int) -> list[str]:
    rows = out["rows"]
    which = "records, no subject twice," if out.get("distinct_subjects") else "records"
    lines = [f"# zsRE, SmolLM2-135M: {out['n']} zsre-dev {which} in one batch", "",
             ("| | efficacy | paraphrase | specificity | z-oracle, edited model: question / "
             "rephrasings | miss median / p90 | solve |"),
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, m in rows.items():
        run = out["runs"].get(name)
        extra = (f" {m['oracle on the edited model']:.3f} / "
                 f"{m['paraphrase oracle on the edited model']:.3f} | {run['miss_quantiles'][0]:.3f} / "
                 f"{run['miss_quantiles'][1]:.3f} | {run['solve_seconds']:.0f} s |") if run else " | | |"
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.3f}" for k in KEYS) + " |" + extra)
    lines += ["", "By answer length (tokens): efficacy / paraphrase / specificity", "",
              "| | " + " | ".join(f"{k} ({v['n']})" for k, v in rows["unedited"]["by_length"].items())
              + " |", "| --- |" + " --- |" * len(LENGTHS)]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{v['efficacy']:.2f} / {v['paraphrase']:.2f} / {v['specificity']:.2f}"
            for v in m["by_length"].values()) + " |")
    lines.append("| z-oracle, unedited model | " + " | ".join(
        f"{v['oracle']:.2f}" for v in out["oracle_unedited_by_length"].values()) + " |")
    present = [g for g, v in rows["unedited"]["by_subject"].items() if v["n"]]
    lines += ["", "By the subject's other records in the batch: efficacy / paraphrase / specificity", "",
              "| | " + " | ".join(f"{g} ({rows['unedited']['by_subject'][g]['n']})" for g in present)
              + " |", "| --- |" + " --- |" * len(present)]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(
            "{efficacy:.3f} / {paraphrase:.3f} / {specificity:.3f}".format(**m["by_subject"][g])
            for g in present) + " |")
    lines += ["", (f"Top-1 token accuracy of the answer, teacher forced. z-vectors "
                   f"{out['z_seconds']:.0f} s, mean {out['mean_z_steps']:.1f} steps, "
                   f"{out['capped']} of {out['n']} at the cap of {z_steps}; the z-oracle on the "
                   f"unedited model {out['oracle_unedited']:.3f} on the questions, "
                   f"{out['paraphrase_oracle_unedited']:.3f} on the rephrasings "
                   f"({out['paraphrase_oracle_records']} records whose rephrasings hold the "
                   f"subject verbatim; {out['recipe_paraphrase_oracle_unedited']:.3f} with the "
                   f"recipe's z-vectors). miss: ‖h^L after − z‖ / "
                   f"‖z − h^L before‖ at the subject's last token of the bare question. Whole "
                   f"run {out['wall_seconds'] / 60:.1f} min."), "", f"Command: `{out['command']}`"]
    return lines


if __name__ == "__main__":
    main()
