"""ask, eval, export, verify: using the edited model (states are built in memory)."""
from __future__ import annotations

from pathlib import Path

import click

from ..output import (
    counted,
    json_option,
    no_empty_path,
    num,
    print_json,
    printable,
    runtime_options,
    short,
    size,
    warn,
)


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

    A PROMPT ending with a space (or an invisible character) is asked as written, with
    one warning line on stderr: the model reads the next word with its own space, so the
    answer is not the one a fact's prompt gets (commit refuses such a prompt). A final
    newline is taken as meant.

    --json prints one object: prompt and answers (rev, commit: null for the base, and
    completion, per state asked).
    """
    from memstore.store import porcelain

    from ..context import open_repo

    with open_repo() as repo:
        answers = porcelain.ask(repo, prompt, rev, compare, max_tokens)
    warn_prompt_end(prompt)  # warned once asked: a prompt refused gets its one error line
    if as_json:
        print_json({"prompt": prompt, "answers": answers})
        return
    if len(answers) == 1:
        click.echo(prompt + printable(answers[0]["completion"], keep="\n\t"))
        return
    labels = [a["rev"] if a["commit"] is None else f"{a['rev']} ({short(a['commit'])})"
              for a in answers]
    width = max(len(label) for label in labels)
    for label, a in zip(labels, answers):
        # one line per state, so that the answers stay side by side
        text = printable(" ".join(a["completion"].splitlines()), keep="")
        click.echo(f"{label:<{width}}  {prompt}{text}")


def warn_prompt_end(prompt: str) -> None:
    """One warning line for a prompt ending with whitespace or an invisible character (a
    final newline is taken as meant): asked as written (ask, bisect)."""
    from memstore.editing.requests import prompt_end

    end = prompt_end(prompt)
    if end is not None and not prompt.endswith("\n"):
        warn(f"warning: the prompt ends with {end} (asked as written; the model expects "
             "the answer's first word to bring its own space, and commit refuses such a "
             "prompt in a fact)")


@click.command("eval")
@runtime_options
@click.argument("file", type=click.Path(dir_okay=False), required=False, callback=no_empty_path)
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
    target_true, or whose target_true is their target_new, are skipped. zsRE files (detected by their src/answers/loc fields) give
    top-1 accuracies: efficacy, paraphrase and specificity (--json has it as neighborhood
    too) and score, their harmonic mean. --live measures the facts live at REV on their own prompts (ES, and
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
               + (f" ({m['n_skipped']} skipped: no target_true, or it is target_new)"
                  if m.get("n_skipped") else ""))
    keys = ["efficacy"] if live else ["efficacy", "paraphrase", "neighborhood", "score"]
    if m["kind"] == "zsre":  # zsRE's neighborhood is its specificity: one line, its name
        keys = ["efficacy", "paraphrase", "specificity", "score"]
    keys += ["generation_entropy"] if "generation_entropy" in m else []
    for k in keys:
        click.echo(f"  {k:<20} {num(m.get(k))}")
    if "by_relation" in m:
        click.echo(f"\n  {'relation':<12} {'n':>5} {'ES':>7} {'PS':>7} {'NS':>7} {'S':>7}")
        for rel, r in m["by_relation"].items():
            # a relation_id is the file's text: a line break or an escape in it would
            # rewrite the table
            click.echo(f"  {printable(rel, keep=''):<12} {r['n']:>5} {num(r['efficacy']):>7} "
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
        # quoted as show and diff quote them: a control character in a fact (a line break,
        # a terminal escape) would otherwise rewrite the listing
        click.echo(f"  {f['subject']!r} / {f['prompt']!r} -> {f['target_new']!r}  "
                   f"{f['p_new']:.3f}  {short(f['commit'])}")
    if len(missed) > SHOWN_MISSES:
        click.echo(f"  … and {len(missed) - SHOWN_MISSES} more (--json lists them all)")


@click.command(short_help="Write a revision as a checkpoint, a LoRA adapter or a GGUF file.")
@runtime_options
@click.argument("rev_or_dir", metavar="[REV]", required=False)
@click.argument("out_dir", required=False, metavar="OUT_DIR", callback=no_empty_path)
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
@json_option
def export(rev_or_dir: str | None, out_dir: str | None, fmt: str, since: str | None,
           max_rank: int | None, gguf_dtype: str | None, force: bool, as_json: bool) -> None:
    """Write the state of REV (default: HEAD) where models are served from.

    --format full (default): OUT_DIR gets the weights (safetensors), the config and the
    tokenizer, loadable offline with AutoModelForCausalLM.from_pretrained(OUT_DIR) (a
    multimodal model, vision tower included: AutoModelForImageTextToText).

    --format peft: adapter_config.json and adapter_model.safetensors, a LoRA adapter that
    PeftModel.from_pretrained(base, OUT_DIR) and vLLM (--enable-lora, with a --max-lora-rank
    of at least r: its default, 16, refuses more; printed) load: lora_B lora_A = ΔW
    of every commit from the base (or from REV0, --since) to REV, balanced, rank r padded to
    one value for all modules; a warning when r exceeds 512, vLLM's largest
    --max-lora-rank. The card says how vLLM and llama.cpp serve it.

    --format gguf (the base is a .gguf file): model.gguf, the base file with
    the edited ffn_down tensors in F32 (or F16), every other tensor and the metadata byte for
    byte; prints how much of ΔW would survive re-quantising to the base's type.

    Every export also gets a model card (README.md) and memstore-manifest.json (base hash,
    commit, settings, sha256 of every tensor) that `memstore verify OUT_DIR` checks. A
    non-empty OUT_DIR is refused unless --force (and it holds a previous export).

    --json prints one object: out_dir, format, commit, rev, base (spec, hash), files (every
    file written, the manifest last), tensors (how many the manifest hashes), warning; for
    full built_with; for peft since, rank, max_rank, vllm_max_lora_rank (the smallest
    --max-lora-rank vLLM takes that holds the rank; null above 512), layers (per layer the
    rank kept and the error), truncation and adapter_bytes, vllm_lora (false for GPT-2,
    GPT-J, GPT-NeoX, StableLM and Falcon, whose vLLM classes refuse --enable-lora; then
    vllm_max_lora_rank is null); for gguf gguf (file, dtype,
    sizes) and layers (the re-quantisation figures).
    """
    from memstore.store import porcelain

    from ..context import open_repo

    if rev_or_dir is None:  # REV is the optional one: OUT_DIR is what is missing
        raise click.MissingParameter(param_hint="'OUT_DIR'", param_type="argument")
    rev, out = (None, rev_or_dir) if out_dir is None else (rev_or_dir, out_dir)
    if out == "":
        raise click.BadParameter("an empty path", param_hint="'OUT_DIR'")
    with open_repo() as repo:
        manifest = porcelain.export_as(repo, rev, out, format=fmt, since=since,
                                       max_rank=max_rank, gguf_dtype=gguf_dtype, force=force)
        family = None
        if fmt == "peft":
            from memstore.store.peft_export import family_of

            family = family_of(repo).name
    d = export_result(manifest, out, fmt, max_rank, family)
    if as_json:
        _warned(d)
        print_json(d)
    elif fmt == "peft":
        _report_peft(d)
    elif fmt == "gguf":
        _report_gguf(d)
    else:
        _warned(d)
        click.echo(f"Exported {_named(d['commit'])} ({d['tensors']} tensors) to {out}")


def left_out_warning(names: list[str]) -> str:
    """A full export of a base whose files hold tensors the model does not read (Qwen 3.5's
    multi-token-prediction layers): written without them, and said so."""
    shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
    return (f"the export leaves out {len(names)} tensor(s) of the base's files that "
            f"transformers does not load into the model ({shown})")


def export_result(m: dict, out: str, fmt: str, max_rank: int | None,
                  family: str | None = None) -> dict:
    """What an export wrote, from its manifest: export --json, and the text's values
    (`family`: the base's, for an adapter; vLLM serves no LoRA for some)."""
    from memstore.store.export_target import MANIFEST

    d = {"out_dir": out, "format": fmt, "commit": m["commit"], "rev": m["rev"],
         "base": m["base"], "files": [*sorted(m["files"]), MANIFEST],
         "tensors": len(m["tensors"]), "warning": None}
    if fmt == "full":
        if m.get("left_out"):
            d["warning"] = left_out_warning(m["left_out"])
        return d | {"built_with": m.get("built_with")}
    if fmt == "gguf":
        return d | {"gguf": m["gguf"], "layers": m["layers"]}
    from memstore.serving.peft import VLLM_MAX_RANK, VLLM_NO_LORA, WEIGHTS, vllm_max_lora_rank

    vllm = family not in VLLM_NO_LORA
    if vllm and m["rank"] > VLLM_MAX_RANK and max_rank is None:
        d["warning"] = (f"rank {m['rank']} is above {VLLM_MAX_RANK}, the largest "
                        f"--max-lora-rank vLLM accepts; --max-rank {VLLM_MAX_RANK} truncates "
                        "it (and prints the error)")
    return d | {"since": m.get("since"), "rank": m["rank"], "max_rank": max_rank,
                "vllm_max_lora_rank": vllm_max_lora_rank(m["rank"]) if vllm else None,
                "vllm_lora": vllm,
                "layers": m["layers"], "truncation": m.get("truncation"),
                "adapter_bytes": (Path(out) / WEIGHTS).stat().st_size}


def _runtime_text(d: dict | None) -> str | None:
    return f"{d.get('device')}/{d.get('dtype')}" if isinstance(d, dict) else None


def _report_peft(d: dict) -> None:
    from memstore.serving.peft import WEIGHTS

    since = f"{short(d['since'])} → " if d.get("since") else "base → "
    layers = d["layers"]
    if d["max_rank"] is not None:
        for l, r in layers.items():
            click.echo(f"layer {l} ({r['module']}): rank {r['numerical_rank']} → {r['rank']}, "
                       f"relative Frobenius error {r['error']:.4g}")
    t = d.get("truncation") or {}
    if t.get("n_facts"):
        e, tr = t["exact"], t["truncated"]
        click.echo(f"efficacy on the {counted(t['n_facts'], 'fact')} written: "
                   f"ES {num(e['efficacy'])} exact → {num(tr['efficacy'])} truncated; "
                   f"mean P(new) {num(e['p_new'])} → {num(tr['p_new'])}")
    _warned(d)
    click.echo(f"Exported {since}{short(d['commit'])} as a PEFT LoRA adapter: rank {d['rank']}, "
               f"{len(layers)} modules, {WEIGHTS} {size(d['adapter_bytes'])} to {d['out_dir']}")
    if not d["vllm_lora"]:
        click.echo("vLLM: serves no LoRA adapter for this family (--enable-lora is refused); "
                   "serve --format full there")
    elif d["vllm_max_lora_rank"] is not None:
        click.echo(f"vLLM: --enable-lora --max-lora-rank {d['vllm_max_lora_rank']} (or more; "
                   "its default, 16, refuses a higher rank); the card says how to serve it")


def _report_gguf(d: dict) -> None:
    g = d["gguf"]
    for l, r in d["layers"].items():
        q = r["requantized"]
        # `kept` is a ratio of norms, ‖Q(W+ΔW) − Q(W)‖/‖ΔW‖, over 1 where rounding adds
        # noise: not a share of ΔW kept ('would keep 1.148 of ΔW' read as more than all
        # of it, where its error of 1.04 put the result no nearer ΔW than zero is)
        kept = (f"re-quantised to {r['base_type']} ΔW would come out {q['kept']:.3f} times "
                f"its norm, with a relative error of {q['error']:.3f}"
                + (" (no nearer ΔW than no edit at all)" if q["error"] >= 1 else "")
                if q is not None else
                f"gguf-py cannot quantise to {r['base_type']}: survival not measured")
        click.echo(f"layer {l}: {r['tensor']} {g['dtype'].upper()} (base {r['base_type']}); {kept}")
    click.echo(f"Exported {_named(d['commit'])} as GGUF: {g['file']} {size(g['size'])} "
               f"(base file {size(g['base_size'])}) to {d['out_dir']}")


@click.command()
@runtime_options
@click.argument("out_dir", required=False, callback=no_empty_path)
@click.option("--base", "check_base", is_flag=True,
              help="Re-hash the base model fully (weights, settings and tokenizer files) and "
              "compare it with what init recorded.")
@json_option
def verify(out_dir: str | None, check_base: bool, as_json: bool) -> None:
    """Check an exported checkpoint, or the base model.

    With OUT_DIR: rebuilds the exported revision from the repository and compares every
    tensor of the checkpoint with it, and the model card (README.md) with the card
    rendered again from the repository and the manifest; exit status 0 if all are
    identical, else lists what differs and exits 1. With --base: re-hashes the base model
    from disk (its weights, and its settings and tokenizer files, or a GGUF file's header);
    exit status 0 if it is the one recorded at init (its recorded size and modification
    time are then refreshed), else 1.

    --json prints one object (the exit status as without it): ok; with OUT_DIR out_dir,
    commit, tensors (how many were compared), problems (one line each), notes (what was
    not compared, and why: one line each, on stderr without --json), built_with,
    rebuilt_with and warning; with --base, base: ok, path, recorded and actual (the hash
    recorded at init and the one on disk) and changed_files (the settings and tokenizer
    files that differ from init).
    """
    from memstore.store import porcelain

    from ..context import open_repo

    if out_dir is None and not check_base:
        raise click.UsageError("give an exported OUT_DIR to verify, or --base")
    with open_repo() as repo:
        b = porcelain.verify_base(repo) if check_base else None
        v = porcelain.verify(repo, out_dir) if out_dir is not None else None
    d = verify_result(out_dir, v, b)
    if as_json:
        _warned(d, "")
        print_json(d)
    else:
        _report_verify(d)
    if not d["ok"]:
        raise SystemExit(1)


def verify_result(out_dir: str | None, v, b) -> dict:
    """verify --json, and the values its text is printed from: `v` the export's
    verification (None without OUT_DIR), `b` the base's (None without --base)."""
    d: dict = {"ok": (v is None or v.ok) and (b is None or b.ok)}
    if b is not None:
        d["base"] = {"ok": b.ok, "path": None if b.path is None else str(b.path),
                     "recorded": b.recorded, "actual": b.actual,
                     "changed_files": list(b.changed_files)}
    if v is not None:
        made, again = _runtime_text(v.built_with), _runtime_text(v.rebuilt_with)
        differs = not v.ok and made and again and made != again
        d |= {"out_dir": out_dir, "commit": v.commit, "tensors": v.n_tensors,
              "problems": list(v.problems), "notes": list(v.notes),
              "built_with": v.built_with,
              "rebuilt_with": v.rebuilt_with,
              "warning": (f"it was built with {made} and rebuilt here with {again}: rebuilds "
                          "are bit-identical on the same device type and dtype only (use "
                          "--device and --dtype)") if differs else None}
    return d


def _report_verify(d: dict) -> None:
    b = d.get("base")
    if b is not None:
        if b["ok"]:
            click.echo(f"base OK: {b['path']} has hash {b['actual'][:16]}")
        elif b["actual"] != b["recorded"]:
            warn(f"base model changed: {b['path']} has hash {b['actual'][:16]}, recorded at "
                 f"init {b['recorded'][:16]}")
        if b["changed_files"]:
            warn(f"base model changed: {b['path']}: {', '.join(b['changed_files'])} "
                 "differ from init (its settings or tokenizer; the weights "
                 f"{'are the same' if b['actual'] == b['recorded'] else 'too'})")
    if "problems" not in d:
        return
    for n in d["notes"]:
        warn(f"note: {n}")
    for p in d["problems"]:
        click.echo(p)
    made = _runtime_text(d["built_with"])
    if not d["problems"]:
        click.echo(f"OK: {d['tensors']} tensors identical to {_named(d['commit'], ' rebuilt')}"
                   + (f" (built with {made})" if made else ""))
    else:
        warn(f"{d['out_dir']}: {len(d['problems'])} problem(s) against "
             f"{_named(d['commit'], ' rebuilt')} and the manifest")
        _warned(d, "")


def _named(commit: str | None, rebuilt: str = "") -> str:
    """An export's revision in a sentence: its commit's short id (and `rebuilt`), or the
    base model for an export of `base` (`--json`'s commit null), not `(base)`."""
    return "the base model" if commit is None else short(commit) + rebuilt


def _warned(d: dict, prefix: str = "warning: ") -> None:
    """The result's warning (if any) on stderr: still there with --json."""
    if d.get("warning") is not None:
        warn(f"{prefix}{d['warning']}")


COMMANDS = [ask, eval_, export, verify]
