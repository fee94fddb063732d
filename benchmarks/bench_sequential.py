"""Sequential commits on SmolLM2-135M (or `--model`): plain vs history-aware ("preserve", λ growing with
the live facts) vs the same with λ fixed vs null-space. Same data, same run, one method
after the other.

Each method starts from the base model and writes `--commits` batches of `--size`
CounterFact dev records, one solve per batch on top of the last (as `memstore commit`
does, with the running matrix of earlier keys, updated commit by commit). After every
commit: ES of each commit's facts (retention; their mean is ES over all facts so far),
NS on a fixed sample of neighbourhood prompts and GE on a fixed sample of generation
prompts. With `--zs own` (what `memstore commit` does) the first commit's z-vectors
(computed on the base model) are shared by the methods and every later commit computes its
own on the state the method left; with `--zs base` every record's z-vector is computed once
on the base model (cached under the memstore cache folder) and replayed by every method,
which isolates the solves and costs a quarter of the time. After the last: ES, PS and NS
over all the facts, beside the unedited model.

    python benchmarks/bench_sequential.py --commits 20 --size 100 --final-ge-records 100
Writes benchmarks/results/sequential-<commits>x<size>.{json,md,png} and
sequential-<commits>x<size>-retention.png (sequential-<model>-... for another `--model`).
`--retention-sample k` measures the retention after each commit on k records of every
batch (after the last commit: on all of them), for models where ES over every fact after
every commit costs more than the commits."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import torch
from common import DATA, RESULTS, cached, command, ge_sample, pyplot, spread

from memstore.editing import default_settings, execute_memit
from memstore.editing.keys import SubjectRows, template_keys
from memstore.editing.memit import stacked_keys, templates_for
from memstore.editing.settings import COMPUTE_DTYPES
from memstore.editing.statistics import cached_statistics
from memstore.editing.zs import compute_zs
from memstore.eval.data import read_counterfact_records
from memstore.eval.metrics import counterfact_metrics, generation_entropy
from memstore.models.hashing import model_hash
from memstore.models.loading import DEFAULT_MODEL, cache_dir, load_model

WIKI98 = DATA / "wikipedia-sample.jsonl"
# method -> the settings it changes from the defaults
METHODS = {"plain": {"history": "plain"}, "preserve": {"history": "preserve"},
           "preserve-fixed": {"history": "preserve", "mom2_growth": 0.0},
           # λ grown only past half / all of the key width (d_in 1536 on SmolLM2)
           "preserve-g768": {"history": "preserve", "mom2_growth_facts": 768},
           "preserve-g1536": {"history": "preserve", "mom2_growth_facts": 1536},
           "nullspace": {"history": "nullspace"},
           "preserve-context": {"history": "preserve", "context_weight": 1.0},
           "preserve-passes2": {"history": "preserve", "passes": 2},
           # the earlier commits' keys weighed more heavily than the new ones
           "preserve-hw4": {"history": "preserve", "history_weight": 4.0},
           # two layers below the default band (3-8 on SmolLM2): L, and so z, unchanged
           "preserve-layers1": {"history": "preserve", "layers": (1, 2, 3, 4, 5, 6, 7, 8)},
           # the statistics from the whole built-in Wikipedia sample (285,000 tokens)
           "preserve-stats-all": {"history": "preserve", "stats_tokens": 285000},
           "preserve-stats-all-l192": {"history": "preserve", "stats_tokens": 285000,
                                       "mom2_weight": 192.0},
           # the z-vectors' forward and backward passes in bfloat16 (the weights stay float32)
           "preserve-bf16": {"history": "preserve", "compute_dtype": "bfloat16"},
           # the statistics from the 98-article sample in ../shared/data (all of it)
           "preserve-wiki98": {"history": "preserve", "stats_source": str(WIKI98),
                               "stats_tokens": 1_000_000},
           # E[k kᵀ] shrunk toward its mean eigenvalue (a floor under the weak directions)
           "preserve-shrink0.03": {"history": "preserve", "mom2_shrink": 0.03},
           "preserve-shrink0.1": {"history": "preserve", "mom2_shrink": 0.1},
           "preserve-shrink0.3": {"history": "preserve", "mom2_shrink": 0.3},
           # the earlier facts' keys read again on the model as it is before every commit
           # (instead of those stored when each fact was written): REFRESHED
           "preserve-refresh": {"history": "preserve"}}
REFRESHED = {"preserve-refresh"}
# every earlier fact preserved by each of its template rows, not by their mean alone: the
# running matrix holds Σ_t w_t k_t k_tᵀ = k̄ k̄ᵀ + the spread of the fact's keys over the
# contexts it was written in (w_t: the weights of the mean, keys.template_keys), with λ still
# grown with the facts, not the rows: ROWS
ROWS = {"preserve-rows": {}, "preserve-wiki98-rows": METHODS["preserve-wiki98"],
        "preserve-wiki98-rows-passes2": METHODS["preserve-wiki98"] | {"passes": 2}}
METHODS |= {m: {"history": "preserve"} | c for m, c in ROWS.items()}
# PRUNE (Ma et al., 2025): after every commit the singular values of the accumulated update
# W − W₀ above τ·σ_max(W₀) are compressed, σ → ln σ + t − ln t with t = τ·σ_max(W₀) (the paper: τ 1),
# and the next commit edits the restrained model. method -> τ
PRUNED = {"preserve-prune": 1.0, "preserve-prune0.25": 0.25}
METHODS |= {m: {"history": "preserve"} for m in PRUNED}
# λ set by the history's own retention instead of a rule: each commit solves with the λ the last
# one ended at (the default λ at first, not grown); where ES over up to 256 earlier facts falls
# by more than `tol`, the commit is undone and solved again with 2λ (at most 4 times).
# method -> tol
ADAPTIVE = {"preserve-adaptive": 0.02}
METHODS |= {m: {"history": "preserve", "mom2_growth": 0.0} for m in ADAPTIVE}
DEFAULT_METHODS = "preserve,preserve-fixed,nullspace,plain"
Z_SETTINGS = ("layers", "z_steps", "z_lr", "z_stop_loss", "clamp", "kl_weight", "weight_decay",
              "n_templates", "template_tokens", "seed", "z_chunk", "compute_dtype", "z_groups")


def z_settings(settings) -> dict:
    """The settings a z-vector depends on (beside the model, the templates and the request)."""
    d = settings.to_dict()
    return {k: d[k] for k in Z_SETTINGS}  # in this order: the cache keys of base_zs


def base_zs(model, tok, adapter, batches, settings, templates, model_id: str) -> list:
    """Each batch's z-vectors computed on the base model, cached per batch (keyed by the
    model, the z-vector settings, the templates and the batch's requests; common.cached)."""
    out = []
    for i, batch in enumerate(batches):
        key = json.dumps([model_id, z_settings(settings), templates,
                          [dataclasses.astuple(r.request)[:4] for r in batch]], default=str)

        def compute(i=i, batch=batch) -> dict:
            t = time.perf_counter()
            zs, _ = compute_zs(model, tok, adapter, [r.request for r in batch], templates, settings, False)
            print(f"z-vectors of batch {i + 1} on the base model: {time.perf_counter() - t:.0f}s", flush=True)
            return {"zs": zs.float()}

        out.append(cached("zs", key, compute)["zs"])
    return out


def distinct_subjects(n: int) -> list:
    """`n` CounterFact records, no subject twice: counterfact-dev.json (821 records in the
    full format, 817 subjects) first, then the reduced counterfact-easyedit-dev.json in file
    order (one paraphrase and one neighbourhood prompt each, no generation prompts)."""
    out, seen = [], set()
    for name in ("counterfact-dev.json", "counterfact-easyedit-dev.json"):
        for r in read_counterfact_records(DATA / name):
            if r.request.subject not in seen:
                seen.add(r.request.subject)
                out.append(r)
            if len(out) == n:
                return out
    raise SystemExit(f"only {len(out)} records with distinct subjects; asked for {n}")


def subject_batches(commits: int, size: int) -> list[list]:
    """`commits` batches of `size` records, in order, from `distinct_subjects`."""
    records = distinct_subjects(commits * size)
    return [records[i * size:(i + 1) * size] for i in range(commits)]


def efficacy(model, tok, records) -> float:
    bare = [dataclasses.replace(r.request, paraphrases=(), neighborhood=()) for r in records]
    return counterfact_metrics(model, tok, bare)["efficacy"]


def neighborhood(model, tok, records) -> float:
    only = [dataclasses.replace(r.request, paraphrases=()) for r in records]
    return counterfact_metrics(model, tok, only)["neighborhood"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--commits", type=int, default=10)
    ap.add_argument("--size", type=int, default=50)
    ap.add_argument("--methods", default=DEFAULT_METHODS, help=f"of {', '.join(METHODS)}")
    ap.add_argument("--zs", choices=("own", "base"), default="own",
                    help="own: each commit's z-vectors on the state the method left (as memstore "
                         "commit); base: every record's on the base model, replayed by every method")
    ap.add_argument("--compute-dtype", choices=COMPUTE_DTYPES, default=None,
                    help="the z-vectors' passes for every method (and the replayed ones) in this "
                         "dtype (default: the model's default setting)")
    ap.add_argument("--device", default="cpu", help="the model's device (cuda: a GPU)")
    ap.add_argument("--generation", action="store_true", help="also GE after each commit")
    ap.add_argument("--ge-records", type=int, default=16, help="records in the GE sample")
    ap.add_argument("--ns-records", type=int, default=20, help="records in the per-commit NS sample")
    ap.add_argument("--collapse", type=float, default=0.5,
                    help="stop a method once ES over all its facts so far falls below this")
    ap.add_argument("--final-sample", type=int, default=0,
                    help="ES/PS/NS after the last commit over this many written records spread "
                         "over all (0: all of them)")
    ap.add_argument("--final-ge-records", type=int, default=0,
                    help="also GE on this many records x 2 prompts after the last commit")
    ap.add_argument("--retention-sample", type=int, default=0,
                    help="retention after each commit on this many records of every batch (0: "
                         "all; after the last commit always all)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    started = time.perf_counter()
    lm = load_model(args.model, device=args.device)
    model, tok, ad = lm.model, lm.tokenizer, lm.adapter
    base = {k: v.clone() for k, v in model.state_dict().items()}
    batches = subject_batches(args.commits, args.size)
    records = [r for b in batches for r in b]
    full = [r for r in records if r.generation_prompts]  # the full-format records
    ns_sample = spread(records, args.ns_records)
    # two generation prompts from each of a spread of records: one batch of generation
    ge_records = ge_sample(full, args.ge_records)
    s0 = default_settings(model)
    if args.compute_dtype:
        s0 = s0.with_changes(compute_dtype=args.compute_dtype)
    layers = tuple(sorted({*s0.layers, *(l for m in args.methods.split(",")
                                        for l in METHODS.get(m, {}).get("layers", ()))}))
    model_id = model_hash(model)  # hashes every weight: once
    stats = cached_statistics(model, tok, ad, layers, model_id, cache_dir() / "stats",
                              s0.stats_source, s0.stats_tokens, s0.seed)
    templates = templates_for(model, tok, s0)

    def probe() -> dict:
        out = {"ns_sample": neighborhood(model, tok, ns_sample)}
        if args.generation:
            t = time.perf_counter()
            out["ge_sample"] = generation_entropy(model, tok, ge_records)
            out["ge_seconds"] = time.perf_counter() - t
        return out

    RESULTS.mkdir(parents=True, exist_ok=True)
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
    suffix = "" if args.methods == DEFAULT_METHODS else "-" + "-".join(methods)
    suffix += f"-{args.compute_dtype}" if args.compute_dtype else ""
    suffix += "-base-zs" if args.zs == "base" else ""
    prefix = "sequential" if args.model == DEFAULT_MODEL else f"sequential-{args.model}"
    stem = RESULTS / f"{prefix}-{args.commits}x{args.size}{suffix}"
    replayed = (base_zs(model, tok, ad, batches, s0, templates, model_id)
                if args.zs == "base" else None)
    big_ge = ge_sample(full, args.final_ge_records) if args.final_ge_records else []

    def final_probe() -> dict:
        return {"ge_final_sample": generation_entropy(model, tok, big_ge)} if big_ge else {}

    def final_set(written: list) -> list:
        return spread(written, args.final_sample) if args.final_sample else written

    unedited = counterfact_metrics(model, tok, final_set(records)) | probe() | final_probe()
    print("unedited", {k: round(v, 3) for k, v in unedited.items() if isinstance(v, float)}, flush=True)
    out: dict = {"command": command(), "model": args.model,
                 "retention_sample": args.retention_sample,
                 "settings": s0.to_dict(), "commits": args.commits, "size": args.size, "zs": args.zs,
                 "method_settings": {m: METHODS[m] for m in methods},
                 "ns_records": args.ns_records, "ge_records": args.ge_records,
                 "final_sample": args.final_sample,
                 "final_ge_records": args.final_ge_records,
                 "unedited": unedited, "methods": {}}
    first_zs: dict = {}  # the first commit's z-vectors, per z-vector settings
    for method in methods:
        model.load_state_dict(base)
        s = s0.with_changes(**METHODS[method])
        same = (s.stats_source, s.stats_tokens) == (s0.stats_source, s0.stats_tokens)
        m_stats = stats if same else cached_statistics(
            model, tok, ad, layers, model_id, cache_dir() / "stats", s.stats_source,
            s.stats_tokens, s.seed)
        running: dict = {}
        first_keys: dict = {}  # the first commit's keys as it wrote them
        steps, t0 = [], time.perf_counter()
        for i, batch in enumerate(batches):
            t = time.perf_counter()
            drift = {}
            if method in REFRESHED and running:
                now = current_keys(model, tok, ad, [r.request for b in batches[:i] for r in b],
                                   templates, s.layers)
                n1 = len(batches[0])
                drift = {l: float(((now[l][:n1] - first_keys[l]).norm(dim=1)
                                   / first_keys[l].norm(dim=1)).mean()) for l in s.layers}
                running = now
            # the first commit's z-vectors depend only on the base model and the z-vector
            # settings: computed once per settings
            z_key = json.dumps(z_settings(s), default=str)
            zs = replayed[i] if replayed else first_zs.get(z_key) if i == 0 else None
            tries = []
            if method in ADAPTIVE and i:
                check = spread([r for b in batches[:i] for r in b], 256)
                kept = {l: model.state_dict()[ad.proj_weight_name(l)].clone() for l in s.layers}
                before = efficacy(model, tok, check)
            s_i = s
            if method in ROWS and running:  # λ for the facts, not for the rows that hold them
                rows = next(iter(running.values())).shape[0]
                facts = sum(len(b) for b in batches[:i])
                s_i = s.with_changes(mom2_weight=s.mom2_weight * s.lambda_for(len(batch) + facts)
                                     / s.lambda_for(len(batch) + rows))
            while True:
                res = execute_memit(model, tok, [r.request for r in batch], s_i, m_stats, templates=templates,
                                    earlier=running or None, show_progress=False, zs=zs)
                if method not in ADAPTIVE or not i:
                    break
                tries.append((s.mom2_weight, before - efficacy(model, tok, check)))
                if tries[-1][1] <= ADAPTIVE[method] or len(tries) == 4:
                    break
                with torch.no_grad():
                    for l, w in kept.items():
                        model.state_dict()[ad.proj_weight_name(l)].copy_(w)
                s = s.with_changes(mom2_weight=2 * s.mom2_weight)
                zs = res.zs  # the same state before the commit: the same z-vectors
            if i == 0:
                first_zs[z_key] = res.zs
            if i == 0:
                first_keys = {l: u.keys for l, u in res.updates.items()}
            solve_s = time.perf_counter() - t
            pruned = restrain(model, ad, base, s.layers, PRUNED[method]) if method in PRUNED else {}
            new_keys = ({l: u.keys for l, u in res.updates.items()} if method not in ROWS else
                        weighted_rows(model, tok, ad, [r.request for r in batch], templates, s.layers))
            if method in ROWS:  # the rows' weighted mean is the key the solve wrote at
                gap = max(rows_gap(new_keys[l], u.keys, len(templates)) for l, u in res.updates.items())
                print(method, f"rows' mean against the written keys: {gap:.2e}", flush=True)
            running = stacked_keys([running, new_keys])
            sampled = args.retention_sample and i < len(batches) - 1
            retention = [efficacy(model, tok, spread(b, args.retention_sample) if sampled else b)
                         for b in batches[: i + 1]]
            step = {"retention": retention, "es_all": sum(retention) / len(retention),
                    "commit_seconds": solve_s, "lambda": res.info.get("lambda"),
                    "dw_norm": relative_change(model, ad, base, s.layers),
                    "dw_spectral": relative_change(model, ad, base, s.layers, ord=2), "pruned": pruned,
                    "adaptive_tries": tries,
                    "first_key_drift": drift} | probe()
            steps.append(step)
            print(method, i + 1, f"{solve_s:.0f}s", [round(x, 2) for x in retention],
                  {k: round(v, 3) for k, v in step.items() if k.endswith("sample")},
                  f"max |dW|/|W0| {max(step['dw_norm'].values()):.4f}",
                  f"max s1(dW)/s1(W0) {max(step['dw_spectral'].values()):.3f}",
                  *([f"restrained {sum(pruned.values())}"] if method in PRUNED else []),
                  *([f"λ, earlier ES drop: {[(round(a), round(b, 3)) for a, b in tries]}"] if tries else []),
                  *([f"first commit's key drift {max(drift.values()):.3f}"] if drift else []),
                  flush=True)
            if step["es_all"] < args.collapse:
                print(method, f"collapsed after {i + 1} commits", flush=True)
                break
        written = [r for b in batches[: len(steps)] for r in b]
        final = counterfact_metrics(model, tok, final_set(written)) | final_probe()
        out["methods"][method] = {"final": final, "first_commit_es": steps[-1]["retention"][0],
                                  "commits_written": len(steps),
                                  "steps": steps, "seconds": time.perf_counter() - t0}
        print(method, "final", {k: round(v, 3) for k, v in final.items() if isinstance(v, float)}, flush=True)
        out["wall_seconds"] = time.perf_counter() - started
        (stem.parent / f"{stem.name}.json").write_text(json.dumps(out, indent=2, default=float))
    model.load_state_dict(base)
    write_report(out, stem, args.generation)


def template_walk(model, tok, ad, requests: list, templates: list[str], layers):
    """(layer, walk) at every edited layer: one walk of the requests × templates up the
    layers on the model as it is now, as the solve reads the new facts' keys."""
    walk = SubjectRows(model, tok, ad, [t.format(r.prompt) for r in requests for t in templates],
                       [r.subject for r in requests for _ in templates], layers[0])
    for l in layers:
        while walk.layer < l:
            walk.advance()
        yield l, walk


def current_keys(model, tok, ad, requests: list, templates: list[str], layers) -> dict:
    """Each request's key at every edited layer, read on the model as it is now."""
    return {l: template_keys(walk, l, len(requests), len(templates))
            for l, walk in template_walk(model, tok, ad, requests, templates, layers)}


def row_weights(t: int) -> torch.Tensor:
    return torch.tensor([1.0] if t == 1 else [0.5] + [0.5 / (t - 1)] * (t - 1))


def rows_gap(rows: torch.Tensor, keys: torch.Tensor, t: int) -> float:
    """max ‖Σ_t w_t k_t − k‖ / ‖k‖ over the facts: `rows` (weighted_rows) against `keys`."""
    mean = (rows.reshape(len(keys), t, -1) * row_weights(t).sqrt()[None, :, None]).sum(1)
    return float(((mean - keys.float()).norm(dim=1) / keys.float().norm(dim=1)).max())


def weighted_rows(model, tok, ad, requests: list, templates: list[str], layers) -> dict:
    """Per edited layer, each request's template rows √w_t·k_t (n·T × d_in), read on the model
    as the commit left it — the keys its solve read, since a layer's key depends only on the
    layers below it, edited before it was read — so that Σ_t (√w_t k_t)(√w_t k_t)ᵀ is the
    fact's second moment over its contexts, weighted as keys.template_keys weighs its mean
    (half the bare prompt, half the sampled prefixes; no attention-sink anchors, which
    SmolLM2 has none of)."""
    n, t = len(requests), len(templates)
    w = row_weights(t).sqrt()[None, :, None]
    return {l: (walk.at(l, "key").float().cpu().reshape(n, t, -1) * w).reshape(n * t, -1)
            for l, walk in template_walk(model, tok, ad, requests, templates, layers)}


def relative_change(model, adapter, base: dict, layers, ord: str | int = "fro") -> dict[int, float]:
    """‖W − W₀‖ / ‖W₀‖ of each edited layer's weight: how far the history has moved it (the
    Frobenius norm's growth is what ENCORE and AlphaEdit name as the sign of a collapsing
    model; with `ord=2`, σ_max, past 1 PRUNE restrains the update)."""
    state = model.state_dict()
    out = {}
    for l in layers:
        name = adapter.proj_weight_name(l)
        w, w0 = state[name].double(), base[name].double()
        out[l] = float(torch.linalg.matrix_norm(w - w0, ord=ord) / torch.linalg.matrix_norm(w0, ord=ord))
    return out


@torch.no_grad()
def restrain(model, adapter, base: dict, layers, tau: float) -> dict[int, int]:
    """PRUNE's restraint, in place: the accumulated update's singular values above
    t = τ·σ_max(W₀) become ln σ + t − ln t (continuous at t, growing only logarithmically past
    it). Returns how many were restrained per layer."""
    state = model.state_dict()
    out = {}
    for l in layers:
        name = adapter.proj_weight_name(l)
        w, w0 = state[name], base[name].double()
        u, sv, vh = torch.linalg.svd(w.double() - w0, full_matrices=False)
        t = tau * float(torch.linalg.matrix_norm(w0, ord=2))
        big = sv > t
        out[l] = int(big.sum())
        if out[l]:
            sv = torch.where(big, sv.clamp_min(t).log() + t - math.log(t), sv)
            w.copy_((w0 + (u * sv) @ vh).to(w.dtype))
    return out


def model_name(out: dict) -> str:
    return {DEFAULT_MODEL: "SmolLM2-135M"}.get(out.get("model", DEFAULT_MODEL), out.get("model"))


def write_report(out: dict, stem: Path, ge: bool) -> None:
    c, n = out["commits"], out["size"]
    u = out["unedited"]
    ge_col = " GE (sample) |" if ge else ""
    lines = [f"# Sequential commits, {model_name(out)}: {c} × {n} CounterFact dev records", "",
             ("Records: counterfact-dev.json, then counterfact-easyedit-dev.json past its 817 "
              "distinct subjects, no subject twice (bench_sequential.distinct_subjects)."), "",
             ("After the last commit; ES/PS/NS over "
              + (f"{out['final_sample']} of the {c * n} facts (spread over all)" if out.get("final_sample")
                 else f"all {c * n} facts")
              + (f", GE over {out['ge_records']} records × 2 generation prompts (top-k 5, 90 new "
                 "tokens, seed 0)." if ge else ".")), "",
             ("z-vectors: " + ("every record's computed once on the base model and replayed by every "
                               "method (`--zs base`)." if out.get("zs") == "base" else
                               "each commit's computed on the state the method left, as `memstore "
                               "commit` does (the first commit's shared).")),
             "Methods: " + "; ".join(f"{m} {ch}" for m, ch in out.get("method_settings", {}).items())
             + f"; λ = {out['settings']['mom2_weight']:g} unless a method sets it, grown as λ·max(1, n/"
             f"{out['settings'].get('mom2_growth_facts', 100)})^{out['settings'].get('mom2_growth', 0):g} "
             "over the n facts in a solve.", "",
             *([(f"Retention after each commit but the last on {out['retention_sample']} records of "
                 "every batch (spread over it); after the last on all."), ""]
               if out.get("retention_sample") else []),
             f"| method | ES (all) | ES (first commit) | PS | NS | S |{ge_col} wall |",
             "| --- | --- | --- | --- | --- | --- |" + (" --- |" if ge else "") + " --- |"]

    def ge_cell(d):
        return f" {d['ge_sample']:.3f} |" if ge else ""

    lines.append(f"| unedited | {u['efficacy']:.3f} | – | {u['paraphrase']:.3f} | {u['neighborhood']:.3f} "
                 f"| {u['score']:.3f} |{ge_cell(u)} – |")
    for method, m in out["methods"].items():
        f = m["final"]
        name = method if m["commits_written"] == c else f"{method} (collapsed: {m['commits_written']} commits)"
        lines.append(f"| {name} | {f['efficacy']:.3f} | {m['first_commit_es']:.3f} | {f['paraphrase']:.3f} "
                     f"| {f['neighborhood']:.3f} | {f['score']:.3f} |{ge_cell(m['steps'][-1])} "
                     f"{m['seconds'] / 60:.1f} min |")
    if out.get("final_ge_records"):
        lines += ["", f"GE on a larger sample ({out['final_ge_records']} records × 2 generation prompts) "
                  f"after the last commit: unedited {u['ge_final_sample']:.3f}, "
                  + ", ".join(f"{k} {m['final']['ge_final_sample']:.3f}" for k, m in out["methods"].items())
                  + "."]
    lines += ["", f"After each commit (ES over all facts so far / ES of the first commit's facts / "
              f"NS on {out['ns_records']} records' neighbourhood prompts" + (" / GE sample" if ge else "") + "):", "",
              "| commits | " + " | ".join(out["methods"]) + " |",
              "| --- |" + " --- |" * len(out["methods"])]
    for i in range(c):
        cells = []
        for m in out["methods"].values():
            if i >= len(m["steps"]):
                cells.append("–")
                continue
            st = m["steps"][i]
            cell = f"{st['es_all']:.2f} / {st['retention'][0]:.2f} / {st['ns_sample']:.2f}"
            cells.append(cell + (f" / {st['ge_sample']:.2f}" if ge else ""))
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    for method, m in out["methods"].items():
        drift = [max(st["first_key_drift"].values()) for st in m["steps"] if st.get("first_key_drift")]
        if drift:
            lines += ["", f"{method}: the first commit's keys, read again before commits 2, 3, …, "
                      "mean ‖k_now − k_written‖ / ‖k_written‖ at the most-moved layer: "
                      + ", ".join(f"{x:.3f}" for x in drift) + "."]
    lines += ["", f"Unedited NS sample {u['ns_sample']:.3f}" + (f", GE sample {u['ge_sample']:.3f}" if ge else "")
              + f". Whole run {out['wall_seconds'] / 60:.0f} min on this machine.", "",
              f"Command: `{out['command']}`"]
    (stem.parent / f"{stem.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(out, stem, ge)


def plot(out: dict, stem: Path, ge: bool) -> None:
    plt = pyplot()
    if plt is None:
        return
    c, u = out["commits"], out["unedited"]
    x = range(1, c + 1)
    panels = [("ES of the first commit's facts", lambda st: st["retention"][0], None),
              ("ES over all facts so far", lambda st: st["es_all"], None),
              ("NS (sample)", lambda st: st["ns_sample"], u["ns_sample"])]
    if ge:
        panels.append(("GE (sample)", lambda st: st["ge_sample"], u["ge_sample"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
    for ax, (title, get, ref) in zip(axes, panels):
        for method, m in out["methods"].items():
            ax.plot(x[: len(m["steps"])], [get(st) for st in m["steps"]], marker="o", label=method)
        if ref is not None:
            ax.axhline(ref, color="grey", linestyle="--", label="unedited")
        ax.set_title(title)
        ax.set_xlabel("commits written")
    axes[0].legend()
    fig.suptitle(f"{model_name(out)}, {out['size']} CounterFact facts per commit")
    fig.tight_layout()
    fig.savefig(stem.parent / f"{stem.name}.png", dpi=110)

    fig, axes = plt.subplots(1, len(out["methods"]), figsize=(4 * len(out["methods"]), 3.6), sharey=True)
    axes = [axes] if len(out["methods"]) == 1 else axes
    cmap = plt.get_cmap("viridis")
    for ax, (method, m) in zip(axes, out["methods"].items()):
        for j in range(len(m["steps"])):
            ys = [st["retention"][j] for st in m["steps"][j:]]
            ax.plot(range(j + 1, len(m["steps"]) + 1), ys, color=cmap(j / max(1, c - 1)), marker=".")
        ax.set_title(method)
        ax.set_xlabel("commits written")
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("ES of commit j's facts (colour: j)")
    fig.suptitle("Retention of each commit's facts")
    fig.tight_layout()
    fig.savefig(stem.parent / f"{stem.name}-retention.png", dpi=110)


if __name__ == "__main__":
    main()
