"""verify-commit, and the signing options that commit, merge, pull, revert, squash,
cherry-pick, rebase, log and show share (memstore.store.signing)."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from ..output import json_option, print_json, short


class _SignOption(click.Option):
    """-S/--gpg-sign and --no-gpg-sign as git's `-S[<keyid>]`, `--gpg-sign[=<keyid>]`: alone,
    a flag; with a key attached (-SKEY, --gpg-sign=KEY, -pSKEY after short flags), that
    key. Never the next word, as git's: click's optional value would take `commit -S
    facts.jsonl`'s FILE for the key, so the option is a flag and its attached form is read
    off the word as the parser meets it, through the parser's private _match_short_opt and
    _match_long_opt (the same from click 8.1.0 to 8.5.1; test_cli_signing parses the
    words). One parameter for the three names: as two sharing the name `sign`, click
    8.4.0-8.4.2 read a bare -S as --no-gpg-sign's False (the commit unsigned, exit 0)."""

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        super().add_to_parser(parser, ctx)
        short, long = parser._match_short_opt, parser._match_long_opt
        flags = {o[1] for p in ctx.command.params if isinstance(p, click.Option) and p.is_flag
                 for o in p.opts + p.secondary_opts if len(o) == 2 and o[0] == "-"}

        def given(key: str, state: Any) -> None:
            state.opts[self.name] = key
            state.order.append(self)

        def match_short(arg: str, state: Any) -> None:
            at = arg.find("S", 1)  # git's -S takes the rest of the word, after flags only
            if 0 < at < len(arg) - 1 and set(arg[1:at]) <= flags:
                if at > 1:
                    short(arg[:at], state)
                given(arg[at + 1:], state)
            else:
                short(arg, state)

        def match_long(opt: str, explicit_value: str | None, state: Any) -> None:
            if opt == "--gpg-sign" and explicit_value is not None:
                given(explicit_value, state)
            else:
                long(opt, explicit_value, state)

        parser._match_short_opt, parser._match_long_opt = match_short, match_long


class _SignValue(click.types.BoolParamType):
    """True (-S), False (--no-gpg-sign), or the key attached, a str kept as given."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        return value if isinstance(value, str) else super().convert(value, param, ctx)


def sign_options(f: Callable) -> Callable:
    """-S/--gpg-sign[=KEY] and --no-gpg-sign, passed as `sign`: True, KEY (a str), False,
    or None (commit.gpgsign decides)."""
    return click.option("-S", "--gpg-sign/--no-gpg-sign", "sign", cls=_SignOption,
                        default=None, type=_SignValue(),
                        help="Sign the commits it writes with the SSH key user.signingkey "
                             "names, or with KEY where one is attached, as git's (-SKEY, "
                             "--gpg-sign=KEY: a path, its .pub, or key::ssh-ed25519 AAAA… "
                             "in ssh-agent), whatever commit.gpgsign says; --no-gpg-sign: "
                             "do not sign, whatever it says (README: Signed commits).")(f)


def verify_option(f: Callable) -> Callable:
    return click.option("--verify-signatures", is_flag=True,
                        help="Refuse (nothing written) unless the commit merged in is "
                             "signed by a key of the allowed signers; as git's, its tip "
                             "only is checked, not the commits below it, and not at all "
                             "where it is merged already (up to date).")(f)


def show_signature_option(f: Callable) -> Callable:
    return click.option("--show-signature", is_flag=True,
                        help="Check each commit's signature and say what it is (--json: a "
                             "signature field).")(f)


def signing_for(repo, sign: bool | str | None) -> None:
    """The command's -S/--no-gpg-sign on `repo`, its key checked before any work."""
    from memstore.store import signing

    repo.signing = sign
    signing.signer(repo.db, sign)


def verdicts(repo) -> Callable:
    """A commit -> its Verdict, each checked once."""
    from memstore.store import signing

    seen: dict = {}

    def of(commit_id: str):
        if commit_id not in seen:
            seen[commit_id] = signing.verify_commit(repo.db, repo.objects, commit_id)
        return seen[commit_id]

    return of


@click.command("verify-commit", short_help="Check the signatures of commits.")
@click.argument("revs", nargs=-1, required=True, metavar="REV...")
@json_option
def verify_commit(revs: tuple[str, ...], as_json: bool) -> None:
    """Check the SSH signature of each REV against the allowed signers
    (gpg.ssh.allowedSignersFile), as git's verify-commit: one line each, the short id
    then "Good "memstore" signature for PRINCIPAL with key SHA256:…", "No signature",
    "BAD signature" (the record's bytes are not those signed) or "Signature by key …,
    which is not in the allowed signers" (or "which is not allowed: REASON": a key the
    allowed signers name on other terms, such as namespaces="git", in ssh-keygen's words; a
    key revoked in gpg.ssh.revocationFile; no allowed-signers file configured).
    A record edited after it was written fails its hash first: that is said as damage
    (run `memstore fsck`), not as a bad signature, and so is an object that is no commit
    record, or a record in other bytes than the canonical JSON memstore writes. Exit status 0 when every REV is signed by an allowed key, 1 otherwise.

    --json prints a list of objects: rev, commit, status (good, none, bad, not-allowed),
    principal, fingerprint and reason (why not-allowed, where the line says one; else
    null)."""
    from ..context import open_repo

    with open_repo() as repo:
        of = verdicts(repo)
        rows = [(rev, cid, of(cid)) for rev in revs for cid in [repo.resolve(rev)]]
    if as_json:
        print_json([{"rev": rev, "commit": cid, **v.to_json()} for rev, cid, v in rows])
    else:
        for _, cid, v in rows:
            click.echo(f"{short(cid)} {v.line()}")
    if not all(v.good for _, _, v in rows):
        sys.exit(1)


COMMANDS = [verify_commit]
