"""Several facts about one subject in one commit: one δ per request (the paper) against one
δ per subject (`z_groups key`), on SmolLM2-135M.

A user who adds what they know about a new person writes their birthplace, employer and
language in one batch. MEMIT reads every fact at the subject's last token, so wherever the
subject opens the prompt the facts share one key, and the solve can write only one vector
there: with one δ per request, the mean of theirs. CounterFact has one fact per subject, so
the batch is built from it: each of `--subjects` person subjects (relations below) keeps its
own record and takes the prompts, targets, rephrasings and neighbourhood prompts of
`--facts - 1` records of other person relations, their subject replaced by this one. ES /
PS / NS as CounterFact's (the borrowed record's true object is the answer the new one must
beat; its neighbourhood prompts are about the subjects that really have it), and the top-1
token accuracy of each target after its own prompt.

    python benchmarks/bench_subjects.py --subjects 60 --facts 3
Writes benchmarks/results/subjects.{json,md}."""
from __future__ import annotations

import argparse
import dataclasses
import time

import torch
from common import DATA, command, write_results

from memstore.editing import default_settings, execute_memit, unapply_updates
from memstore.editing.memit import templates_for
from memstore.editing.statistics import cached_statistics
from memstore.eval.data import read_counterfact_records
from memstore.eval.metrics import counterfact_metrics
from memstore.eval.scoring import score_targets
from memstore.models.hashing import model_hash
from memstore.models.loading import cache_dir, load_model

# relations of a person in counterfact-dev, each with its own prompt
PERSON = ("P27", "P20", "P937", "P103", "P106", "P1412", "P108", "P39", "P101")
KEYS = ("efficacy", "paraphrase", "neighborhood")


def batch(n_subjects: int, facts: int) -> list:
    """`facts` requests for each of `n_subjects` subjects, grouped by subject."""
    records = [r.request for r in read_counterfact_records(DATA / "counterfact-dev.json")
               if r.request.relation_id in PERSON]
    by_relation: dict[str, list] = {}
    for r in records:
        by_relation.setdefault(r.relation_id, []).append(r)
    owners = []
    for r in records:
        if len(owners) < n_subjects and all(r.subject != o.subject for o in owners):
            owners.append(r)
    used = {o.subject for o in owners}  # no lender is also an owner
    out = []
    for own in owners:
        group = [own]
        for rel in PERSON:
            if len(group) == facts:
                break
            if rel == own.relation_id:
                continue
            lender = next((r for r in by_relation[rel] if r.subject not in used
                           and all(r.subject not in p for p in own.paraphrases)), None)
            if lender is None:
                continue
            used.add(lender.subject)
            by_relation[rel].remove(lender)
            group.append(dataclasses.replace(
                lender, subject=own.subject,
                paraphrases=tuple(p.replace(lender.subject, own.subject) for p in lender.paraphrases)))
        out.extend(group)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=60)
    ap.add_argument("--facts", type=int, default=3, help="facts per subject")
    args = ap.parse_args()
    torch.set_num_threads(2)
    started = time.perf_counter()
    lm = load_model("smollm2-135m")
    model, tok, ad = lm.model, lm.tokenizer, lm.adapter
    requests = batch(args.subjects, args.facts)
    s0 = default_settings(model)
    stats = cached_statistics(model, tok, ad, s0.layers, model_hash(model), cache_dir() / "stats",
                              s0.stats_source, s0.stats_tokens, s0.seed)
    templates = templates_for(model, tok, s0)

    def measure() -> dict:
        m = counterfact_metrics(model, tok, requests)
        top1 = score_targets(model, tok, [r.text for r in requests],
                             [r.target_new for r in requests]).top1
        return {k: m[k] for k in KEYS} | {"top1": float(top1.mean())}

    rows = {"unedited": measure()}
    runs = {}
    for groups in ("request", "key"):
        s = s0.with_changes(z_groups=groups)
        t = time.perf_counter()
        res = execute_memit(model, tok, requests, s, stats, templates=templates, show_progress=False)
        runs[groups] = {"seconds": time.perf_counter() - t, "time_zs": res.info["time_zs"],
                        "mean_z_steps": sum(res.info["z_steps"]) / len(requests),
                        "mean_z_loss": sum(res.info["z_loss"]) / len(requests)}
        rows[groups] = measure()
        unapply_updates(model, ad, res.updates)
        print(groups, rows[groups], runs[groups], flush=True)
    out = {"command": command(), "settings": s0.to_dict(), "subjects": args.subjects,
           "requests": len(requests), "rows": rows, "runs": runs,
           "wall_seconds": time.perf_counter() - started}
    write_results("subjects", out, report(out))


def report(out: dict) -> list[str]:
    u = out["rows"]["unedited"]
    names = {"unedited": "unedited", "request": "one δ per request (`z_groups request`)",
             "key": "one δ per key (`z_groups key`)"}
    lines = [f"# {out['requests']} facts about {out['subjects']} subjects in one batch, SmolLM2-135M",
             "", "| | ES | PS | NS | top-1 | z-vectors | mean steps | mean final NLL |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key, m in out["rows"].items():
        run = out["runs"].get(key)
        extra = (f" {run['time_zs']:.0f} s | {run['mean_z_steps']:.1f} | {run['mean_z_loss']:.3f} |"
                 if run else " | | |")
        ns = f"{m['neighborhood']:.3f}" + (f" ({m['neighborhood'] - u['neighborhood']:+.3f})"
                                           if run else "")
        lines.append(f"| {names[key]} | {m['efficacy']:.3f} | {m['paraphrase']:.3f} | {ns} | "
                     f"{m['top1']:.3f} |" + extra)
    lines += ["", f"Whole run {out['wall_seconds'] / 60:.1f} min.", "", f"Command: `{out['command']}`"]
    return lines


if __name__ == "__main__":
    main()
