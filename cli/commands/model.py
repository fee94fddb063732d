"""ask, eval, export, verify: using the edited model (states are built in memory)."""
from __future__ import annotations

from pathlib import Path

import click

from ..output import json_option, num, print_json, runtime_options, short, size, warn


@click.command()
@runtime_options
@click.argument("prompt")
@click.option("--rev", default=None, metavar="REV", help="The revision to ask (default: HEAD).")
@click.option("--compare", metavar="base|REV",
              help="Also answer with the base model ('base') or another revision, side by side.")
@click.option("--max-tokens", default=20, show_default=True, type=click.IntRange(min=1),
              help="Tokens to generate.")
@json_option
def ask(prompt: str, rev: str | None, compare: str | None, max_tokens: int,
        as_json: bool) -> None:
    """Complete PROMPT greedily with the edited model.

    The state of REV is built in memory from the base weights and the update chain; no
    checkpoint is written.
    """
    from memstore.store import porcelain

    from ..context import open_repo

    with open_repo() as repo:
        answers = porcelain.ask(repo, prompt, rev, compare, max_tokens)
    if as_json:
        print_json({"prompt": prompt, "answers": answers})
        return
    if len(answers) == 1:
        click.echo(prompt + _printable(answers[0]["completion"], keep="\n\t"))
        return
    labels = [a["rev"] if a["commit"] is None else f"{a['rev']} ({short(a['commit'])})"
              for a in answers]
    width = max(len(label) for label in labels)
    for label, a in zip(labels, answers):
        # one line per state, so that the answers stay side by side
        text = _printable(" ".join(a["completion"].splitlines()))
        click.echo(f"{label:<{width}}  {prompt}{text}")


def _printable(text: str, keep: str = "") -> str:
    """A completion as text for a terminal: control characters (a model may generate any
    token) shown escaped, never sent raw."""
    return "".join(c if c.isprintable() or c in keep else c.encode("unicode_escape").decode()
                   for c in text)


@click.command("eval")
@runtime_options
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@click.option("--live", is_flag=True,
              help="Measure the facts live in the state instead of a FILE, and list those "
                   "the model does not recall.")
@click.option("--rev", default=None, metavar="REV",
              help="The revision to evaluate (default: HEAD; the base model when there are "
                   "no commits).")
@click.option("--by-relation", is_flag=True, help="Also break the metrics down by relation_id.")
@click.option("--generation", is_flag=True,
              help="Also measure fluency: generation entropy (GE) of sampled text.")
@json_option
def eval_(file: str | None, live: bool, rev: str | None, by_relation: bool, generation: bool,
          as_json: bool) -> None:
    """Measure how well a state knows the facts in FILE (or, with --live, its own facts).

    CounterFact records or memstore facts files give efficacy (ES: P(new) > P(true) on
    the prompt), paraphrase (PS), neighborhood (NS: neighbouring subjects keep their true
    object) and score (S, their harmonic mean), as fractions in [0, 1]; facts without
    target_true are skipped. zsRE files (detected by their src/answers/loc fields) give
    top-1 accuracies: efficacy, paraphrase and specificity (also reported as
    neighborhood). --live measures the facts live at REV on their own prompts (ES, and
    the share the model recalls: every target token its top choice after the prompt),
    listing the ones it does not recall with the commit that wrote each; a FILE of them
    gives paraphrases and neighbours too. --json prints one object.
    """
    from memstore.store import porcelain

    from ..context import open_repo

    if (file is None) == (not live):
        raise click.UsageError("give a FILE of facts to measure, or --live for the facts "
                              "live in the state, not both")
    with open_repo() as repo:
        if live:
            m = porcelain.evaluate_live(repo, rev, by_relation=by_relation,
                                        generation=generation)
        else:
            m = porcelain.evaluate(repo, file, rev, by_relation=by_relation,
                                   generation=generation)
    if as_json:
        print_json(m)
        return
    state = m["rev"] if m["commit"] is None else f"{m['rev']} ({short(m['commit'])})"
    click.echo(f"{m['kind']} metrics of {state}, n = {m['n']}"
               + (f" ({m['n_skipped']} without target_true skipped)"
                  if m.get("n_skipped") else ""))
    keys = ["efficacy"] if live else ["efficacy", "paraphrase", "neighborhood", "score"]
    keys += ["specificity"] if m["kind"] == "zsre" else []
    keys += ["generation_entropy"] if "generation_entropy" in m else []
    for k in keys:
        click.echo(f"  {k:<20} {num(m.get(k))}")
    if "by_relation" in m:
        click.echo(f"\n  {'relation':<12} {'n':>5} {'ES':>7} {'PS':>7} {'NS':>7} {'S':>7}")
        for rel, r in m["by_relation"].items():
            click.echo(f"  {rel:<12} {r['n']:>5} {num(r['efficacy']):>7} "
                       f"{num(r['paraphrase']):>7} {num(r['neighborhood']):>7} "
                       f"{num(r['score']):>7}")
    if live:
        _not_recalled(m)


SHOWN_MISSES = 20


def _not_recalled(m: dict) -> None:
    missed = m["not_recalled"]
    click.echo(f"  {'recalled':<20} {num(m['recalled'])} ({m['n_live'] - len(missed)} of "
               f"{m['n_live']} live facts)")
    if not missed:
        return
    click.echo(f"\nnot recalled ({len(missed)}; P(new), the commit that wrote it):")
    for f in missed[:SHOWN_MISSES]:
        click.echo(f"  {f['subject']} / {f['prompt']} -> {f['target_new']}  "
                   f"{f['p_new']:.3f}  {short(f['commit'])}")
    if len(missed) > SHOWN_MISSES:
        click.echo(f"  … and {len(missed) - SHOWN_MISSES} more (--json lists them all)")


@click.command(short_help="Write a revision as a checkpoint, a LoRA adapter or a GGUF file.")
@runtime_options
@click.argument("rev_or_dir", metavar="[REV]")
@click.argument("out_dir", required=False, metavar="OUT_DIR")
@click.option("--format", "fmt", type=click.Choice(["full", "peft", "gguf"]), default="full",
              show_default=True, help="full: a Hugging Face checkpoint; peft: a PEFT LoRA "
              "adapter holding ΔW exactly; gguf: the base GGUF file with the edited tensors "
              "replaced (GGUF bases only).")
@click.option("--since", metavar="REV0", default=None,
              help="(peft) Export the difference from the state of REV0 to that of REV: an "
                   "adapter to apply on REV0's export.")
@click.option("--max-rank", type=click.IntRange(min=1), default=None, metavar="K",
              help="(peft) Keep the K largest singular values per layer; prints the relative "
                   "error per layer and the efficacy after truncation.")
@click.option("--gguf-dtype", type=click.Choice(["f32", "f16"]), default=None,
              help="(gguf) Type of the edited tensors: f32 (default, exact) or f16.")
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it holds a previous export.")
def export(rev_or_dir: str, out_dir: str | None, fmt: str, since: str | None,
           max_rank: int | None, gguf_dtype: str | None, force: bool) -> None:
    """Write the state of REV (default: HEAD) where models are served from.

    --format full (default): OUT_DIR gets the weights (safetensors), the config and the
    tokenizer, loadable offline with AutoModelForCausalLM.from_pretrained(OUT_DIR).

    --format peft: adapter_config.json and adapter_model.safetensors, a LoRA adapter that
    PeftModel.from_pretrained(base, OUT_DIR) and vLLM (--enable-lora) load: lora_B lora_A = ΔW
    of every commit from the base (or from REV0, --since) to REV, balanced, rank r padded to
    one value for all modules; a warning when r exceeds 512, vLLM's largest
    --max-lora-rank.

    --format gguf (the base is a .gguf file): model.gguf, the base file with
    the edited ffn_down tensors in F32 (or F16), every other tensor and the metadata byte for
    byte; prints how much of ΔW would survive re-quantising to the base's type.

    Every export also gets a model card (README.md) and memstore-manifest.json (base hash,
    commit, settings, sha256 of every tensor) that `memstore verify OUT_DIR` checks. A
    non-empty OUT_DIR is refused unless --force (and it holds a previous export).
    """
    from memstore.store import porcelain

    from ..context import open_repo

    rev, out = (None, rev_or_dir) if out_dir is None else (rev_or_dir, out_dir)
    with open_repo() as repo:
        manifest = porcelain.export_as(repo, rev, out, format=fmt, since=since,
                                       max_rank=max_rank, gguf_dtype=gguf_dtype, force=force)
    if fmt == "peft":
        _report_peft(manifest, out, max_rank)
    elif fmt == "gguf":
        _report_gguf(manifest, out)
    else:
        click.echo(f"Exported {short(manifest['commit'])} ({len(manifest['tensors'])} tensors) "
                   f"to {out}")


def _runtime_text(d: dict | None) -> str | None:
    return f"{d.get('device')}/{d.get('dtype')}" if isinstance(d, dict) else None


def _report_peft(m: dict, out: str, max_rank: int | None) -> None:
    from memstore.serving.peft import VLLM_MAX_RANK, WEIGHTS

    since = f"{short(m['since'])} → " if m.get("since") else "base → "
    layers = m["layers"]
    if max_rank is not None:
        for l, r in layers.items():
            click.echo(f"layer {l} ({r['module']}): rank {r['numerical_rank']} → {r['rank']}, "
                       f"relative Frobenius error {r['error']:.4g}")
    t = m.get("truncation") or {}
    if t.get("n_facts"):
        e, tr = t["exact"], t["truncated"]
        click.echo(f"efficacy on the {t['n_facts']} facts written: ES {num(e['efficacy'])} "
                   f"exact → {num(tr['efficacy'])} truncated; mean P(new) {num(e['p_new'])} → "
                   f"{num(tr['p_new'])}")
    if m["rank"] > VLLM_MAX_RANK and max_rank is None:
        warn(f"warning: rank {m['rank']} is above {VLLM_MAX_RANK}, the largest --max-lora-rank "
             f"vLLM accepts; --max-rank {VLLM_MAX_RANK} truncates it (and prints the error)")
    click.echo(f"Exported {since}{short(m['commit'])} as a PEFT LoRA adapter: rank {m['rank']}, "
               f"{len(layers)} modules, {WEIGHTS} {size((Path(out) / WEIGHTS).stat().st_size)} "
               f"to {out}")


def _report_gguf(m: dict, out: str) -> None:
    g = m["gguf"]
    for l, r in m["layers"].items():
        q = r["requantized"]
        kept = (f"re-quantised to {r['base_type']} it would keep {q['kept']:.3f} of ΔW "
                f"(relative error {q['error']:.3f})" if q is not None else
                f"gguf-py cannot quantise to {r['base_type']}: survival not measured")
        click.echo(f"layer {l}: {r['tensor']} {g['dtype'].upper()} (base {r['base_type']}); {kept}")
    click.echo(f"Exported {short(m['commit'])} as GGUF: {g['file']} {size(g['size'])} "
               f"(base file {size(g['base_size'])}) to {out}")


@click.command()
@runtime_options
@click.argument("out_dir", required=False)
@click.option("--base", "check_base", is_flag=True,
              help="Re-hash the base model fully and compare it with the hash recorded at init.")
def verify(out_dir: str | None, check_base: bool) -> None:
    """Check an exported checkpoint, or the base model.

    With OUT_DIR: rebuilds the exported revision from the repository and compares every
    tensor of the checkpoint with it; exit status 0 if all are identical, else lists the
    differing tensors and exits 1. With --base: re-hashes the base model from disk; exit
    status 0 if it is the one recorded at init (its recorded size and modification time
    are then refreshed), else 1.
    """
    from memstore.store import porcelain

    from ..context import open_repo

    if out_dir is None and not check_base:
        raise click.UsageError("give an exported OUT_DIR to verify, or --base")
    failed = False
    with open_repo() as repo:
        if check_base:
            r = porcelain.verify_base(repo)
            if r.ok:
                click.echo(f"base OK: {r.path} has hash {r.actual[:16]}")
            else:
                warn(f"base model changed: {r.path} has hash {r.actual[:16]}, recorded at init "
                     f"{r.recorded[:16]}")
                failed = True
        if out_dir is not None:
            v = porcelain.verify(repo, out_dir)
            for p in v.problems:
                click.echo(p)
            made = _runtime_text(v.built_with)
            if v.ok:
                click.echo(f"OK: {v.n_tensors} tensors identical to {short(v.commit)} rebuilt"
                           + (f" (built with {made})" if made else ""))
            else:
                warn(f"{out_dir}: {len(v.problems)} problem(s) against {short(v.commit)} "
                     "rebuilt and the manifest")
                again = _runtime_text(v.rebuilt_with)
                if made and again and made != again:
                    warn(f"it was built with {made} and rebuilt here with {again}: rebuilds are "
                         "bit-identical on the same device type and dtype only (use --device "
                         "and --dtype)")
                failed = True
    if failed:
        raise SystemExit(1)


COMMANDS = [ask, eval_, export, verify]
