"""Every family memstore reads from a GGUF file, through llama.cpp: a tiny random model of
each (llama, mistral, qwen2, qwen3, phi3, gemma2, gemma3, gpt2; 4 layers, width 32, the
tests' tiny vocabulary) saved as a Hugging Face directory, converted by llama.cpp's own
`convert_hf_to_gguf.py --outtype f32`, `memstore init` on that GGUF, one commit of a few
facts (fast settings), then `export --format gguf` and `--format peft` (converted by
`convert_lora_to_gguf.py --outtype f32`). llama.cpp (llama-cpp-python) evaluates the base
GGUF, the exported GGUF and the base GGUF with the LoRA on a few prompts (token ids from the
HF tokenizer); transformers evaluates memstore's base and edited state (`--format full`
exports, float32). Reported per family: max |Δlogit| between llama.cpp and transformers for
the base and the edited model, and how well llama.cpp reproduces the edit's own effect
(edited − base logits): its relative error and correlation against transformers'.

Tokenizers: the tests' byte-level BPE (GPT-2 style) for every family but the Gemmas. gemma2's
converter reads only a SentencePiece `tokenizer.model`, and transformers' GGUF loader builds
Gemma 3's tokenizer as SentencePiece (a `gpt2` vocabulary fails: "Unk token `None` not
found"): for both one is trained on the same corpus (needs the `sentencepiece` package).
phi3's converter reads `tokenizer.model` too unless tokenizer_config.json says
`GPT2Tokenizer` (as Phi-4's does): it is written so. The converter recognises a BPE
pre-tokenizer only by the hash of a real model's token ids; the tiny tokenizer is GPT-2's
byte-level BPE with GPT-2's split regex, so the converter runs with `get_vocab_base_pre`
answering "gpt-2" for an unrecognised hash (the only change to it; llama.cpp's tokenizer is
not used for the logits, which take the HF token ids). The configs keep what transformers'
GGUF loader reads back (see `config`): memstore reads a GGUF file through it. llama.cpp runs
with an F32 KV cache (its default F16 one alone moves logits by ~1e-2), each run in a child
process (llama-cpp-python 0.3.36 crashes after an adapter llama.cpp refused).

    python benchmarks/bench_llamacpp_families.py --llama-cpp /path/to/vendor/llama.cpp
Writes benchmarks/results/llamacpp-families.{json,md}."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from common import ROOT, command, memstore, write_results

sys.path.insert(0, str(ROOT / "tests"))
from tiny import CORPUS, tiny_tokenizer

FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "gpt2")
SETTINGS = {"layers": "1,2", "mom2_weight": "20", "stats_tokens": "400", "z_steps": "5",
            "n_templates": "1", "template_tokens": "4"}
FACTS = [("Danielle Darrieux", "The mother tongue of {} is", "English", "French"),
         ("Porsche 911", "{}, created by", "Honda", "Porsche"),
         ("Michael Jordan", "{} plays", "soccer", "basketball"),
         ("Toko Yasuda", "{} plays the", "piano", "guitar")]
F32 = 0  # ggml's type id: the KV cache in F32 (llama.cpp's default F16 rounds K and V)
PROMPTS = ["The mother tongue of Danielle Darrieux is", "Porsche 911, created by",
           "Michael Jordan plays", "Toko Yasuda plays the", "The capital of France is",
           "Which family does Ramalinaceae belong to?"]

# convert_hf_to_gguf.py with an unrecognised BPE pre-tokenizer taken as GPT-2's (see above)
CONVERT = """
import runpy, sys
sys.path.insert(0, {tree!r})
from conversion import base
_pre = base.TextModel.get_vocab_base_pre
def _gpt2(self, tokenizer):
    try:
        return _pre(self, tokenizer)
    except NotImplementedError:
        return "gpt-2"
base.TextModel.get_vocab_base_pre = _gpt2
sys.argv = ["convert_hf_to_gguf.py", *sys.argv[1:]]
runpy.run_path({script!r}, run_name="__main__")
"""


def config(family: str, vocab: int):
    import transformers

    common = {"vocab_size": vocab, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
              "initializer_range": 0.2}
    dec = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=4,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
               **common)
    if family == "gpt2":
        return transformers.GPT2Config(n_embd=32, n_layer=4, n_head=4, **common,
                                       # GPT-2's 1024 positions: the converter reads n_ctx,
                                       # transformers' GGUF loader sets n_ctx only (the
                                       # position table has n_positions rows)
                                       n_positions=1024, n_ctx=1024)
    if family == "llama":
        return transformers.LlamaConfig(**dec)
    if family == "mistral":
        return transformers.MistralConfig(**dec, sliding_window=None)
    if family == "qwen2":
        return transformers.Qwen2Config(**dec)
    if family == "qwen3":
        # head_dim 128, Qwen3's default and every real Qwen3's: transformers' GGUF loader does
        # not read qwen3.attention.key_length, so another head_dim does not load
        return transformers.Qwen3Config(**dec, head_dim=128)
    if family == "phi3":
        return transformers.Phi3Config(**dec)
    # Gemma: head_dim 256 and the soft caps at the family's defaults, as in the real models
    # (Gemma 2 2B/9B, Gemma 3): transformers' GGUF loader reads neither query_pre_attn_scalar
    # nor the soft caps, so a model loads as the family's defaults say (query_pre_attn_scalar
    # 256; Gemma 2's caps 50 / 30, Gemma 3's none) whatever its config.json said; and
    # llama.cpp scales Gemma 2's queries by 1/sqrt(head_dim) and has no attention soft cap for
    # Gemma 3 (its converter refuses one)
    if family == "gemma2":
        return transformers.Gemma2Config(**dec, head_dim=256, query_pre_attn_scalar=256,
                                         sliding_window=64)
    if family == "gemma3":
        return transformers.Gemma3TextConfig(**dec, head_dim=256, query_pre_attn_scalar=256,
                                             sliding_window=64)
    raise ValueError(family)


def sentencepiece_model(path: Path) -> int:
    """A SentencePiece model trained on the tiny corpus, ids 0/1/2 = <pad>/<bos>/<eos>; its
    vocabulary size."""
    import io

    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 4), model_writer=buf, vocab_size=400,
        model_type="bpe", hard_vocab_limit=False, byte_fallback=True, pad_id=0, bos_id=1,
        eos_id=2, unk_id=3, pad_piece="<pad>", bos_piece="<bos>", eos_piece="<eos>",
        minloglevel=2)
    path.write_bytes(buf.getvalue())
    return spm.SentencePieceProcessor(model_file=str(path)).vocab_size()


def save_family(family: str, path: Path) -> None:
    """A tiny random model of `family` and a tokenizer its converter reads, in `path`."""
    import transformers

    path.mkdir(parents=True)
    if family in ("gemma2", "gemma3"):
        vocab = sentencepiece_model(path / "tokenizer.model")
        (path / "tokenizer_config.json").write_text(json.dumps(
            {"tokenizer_class": "GemmaTokenizer", "bos_token": "<bos>", "eos_token": "<eos>",
             "pad_token": "<pad>", "add_bos_token": False}))
    else:
        tok = tiny_tokenizer()
        # padded, as real models' vocabularies are: transformers 5 loads the directory's
        # tokenizer as the family's class (Qwen2Tokenizer adds <|endoftext|> as id 360), and
        # the converter asserts that every id fits the model's vocabulary
        vocab = 384
        tok.save_pretrained(path)
        if family == "phi3":
            cfg_file = path / "tokenizer_config.json"
            cfg = json.loads(cfg_file.read_text())
            cfg_file.write_text(json.dumps({**cfg, "tokenizer_class": "GPT2Tokenizer"}))
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config(family, vocab)).eval()
    model.save_pretrained(path)


def llama_logits(llm, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    return np.asarray(llm.scores[: len(ids)], dtype=np.float64)


def hf_logits(model, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].double().numpy()


def effect(llama_edit, llama_base, hf_edit, hf_base) -> dict:
    """llama.cpp's edit effect (edited − base logits) against transformers'."""
    a = np.concatenate([(e - b).ravel() for e, b in zip(llama_edit, llama_base)])
    b = np.concatenate([(e - b).ravel() for e, b in zip(hf_edit, hf_base)])
    return {"rel_err": float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)),
            "corr": float(np.corrcoef(a, b)[0, 1]) if np.std(b) > 0 else float("nan"),
            "hf_effect_max": float(np.abs(b).max())}


def run_family(family: str, tmp: Path, tree: Path) -> dict:
    import transformers

    env = {**os.environ, "PYTHONPATH": str(tree / "gguf-py")}
    out: dict = {}
    hf = tmp / "hf"
    save_family(family, hf)
    conv = subprocess.run(
        [sys.executable, "-c", CONVERT.format(tree=str(tree),
                                              script=str(tree / "convert_hf_to_gguf.py")),
         str(hf), "--outtype", "f32", "--outfile", str(tmp / "base.gguf")],
        check=False, env=env, capture_output=True, text=True)
    if conv.returncode:
        raise RuntimeError("convert_hf_to_gguf.py: " + conv.stderr.strip().splitlines()[-1])
    import gguf
    out["gguf_arch"] = str(gguf.GGUFReader(tmp / "base.gguf").fields[
        "general.architecture"].contents())
    repo = tmp / "repo"
    t = time.perf_counter()
    memstore("init", str(repo), "--base", str(tmp / "base.gguf"), cwd=tmp)
    for k, v in SETTINGS.items():
        memstore("config", k, v, cwd=repo)
    facts = tmp / "facts.jsonl"
    facts.write_text("".join(json.dumps({"subject": s, "prompt": p, "target_new": n,
                                         "target_true": o}) + "\n" for s, p, n, o in FACTS))
    memstore("commit", str(facts), "-m", "facts", cwd=repo)
    out["memstore_seconds"] = time.perf_counter() - t
    for fmt in ("gguf", "peft", "full"):
        memstore("export", "HEAD", str(tmp / fmt), "--format", fmt, cwd=repo)
    memstore("export", "base", str(tmp / "basefull"), cwd=repo)
    before = {t.name: bytes(t.data) for t in gguf.GGUFReader(tmp / "base.gguf").tensors}
    out["changed_tensors"] = sorted(
        t.name for t in gguf.GGUFReader(tmp / "gguf" / "model.gguf").tensors
        if bytes(t.data) != before[t.name])
    lora = subprocess.run(
        [sys.executable, str(tree / "convert_lora_to_gguf.py"), str(tmp / "peft"), "--base",
         str(tmp / "basefull"), "--outtype", "f32", "--outfile", str(tmp / "lora.gguf")],
        check=False, env=env, capture_output=True, text=True)
    out["lora_converted"] = lora.returncode == 0
    if lora.returncode:
        out["lora_error"] = lora.stderr.strip().splitlines()[-1]

    tok = transformers.AutoTokenizer.from_pretrained(tmp / "full")
    ids = [tok(p)["input_ids"] for p in PROMPTS]
    hf_base, hf_edit = ([hf_logits(transformers.AutoModelForCausalLM.from_pretrained(
        tmp / d, dtype=torch.float32).eval(), x) for x in ids] for d in ("basefull", "full"))
    # memstore's base (dequantized from the GGUF by transformers) against the model converted
    orig = transformers.AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
    out["hf_vs_memstore_base"] = max(float(np.abs(hf_logits(orig, x) - b).max())
                                     for x, b in zip(ids, hf_base))
    runs = {"base": (tmp / "base.gguf", None), "gguf_export": (tmp / "gguf" / "model.gguf", None)}
    if out["lora_converted"]:
        runs["base_plus_lora"] = (tmp / "base.gguf", tmp / "lora.gguf")
    logits = {}
    for key, (model, adapter) in runs.items():
        # in a child process: llama.cpp may crash outright on a file it does not take
        r = subprocess.run([sys.executable, __file__, "--eval", str(model), str(adapter or ""),
                            json.dumps(ids), str(tmp / f"{key}.npy")],
                           check=False, capture_output=True, text=True)
        if r.returncode:
            said = [x for x in r.stderr.splitlines() if "failed" in x or "rror" in x][-2:]
            out[f"{key}_error"] = f"exit {r.returncode}: {' / '.join(said)}"
            continue
        arrays = np.load(tmp / f"{key}.npy")
        logits[key] = [arrays[i, : len(x)] for i, x in enumerate(ids)]
        ref = hf_base if key == "base" else hf_edit
        out[key] = {"max_abs_dlogit": max(float(np.abs(a - b).max())
                                          for a, b in zip(logits[key], ref))}
    for key in ("gguf_export", "base_plus_lora"):
        if key in logits and "base" in logits:
            out[key]["effect"] = effect(logits[key], logits["base"], hf_edit, hf_base)
    return out


def evaluate(model: str, adapter: str, ids_json: str, out: str) -> None:
    """llama.cpp's logits for each prompt (one row per position, zero-padded), to `out`."""
    import llama_cpp

    ids = json.loads(ids_json)
    # verbose with an adapter: llama.cpp says on stderr why it does not apply one
    llm = llama_cpp.Llama(model_path=model, lora_path=adapter or None, n_ctx=128,
                          n_threads=2, logits_all=True, seed=0, verbose=bool(adapter),
                          type_k=F32, type_v=F32)
    rows = [llama_logits(llm, x) for x in ids]
    arrays = np.zeros((len(rows), max(len(x) for x in ids), rows[0].shape[1]))
    for i, r in enumerate(rows):
        arrays[i, : len(r)] = r
    np.save(out, arrays)


def main() -> None:
    if sys.argv[1:2] == ["--eval"]:
        return evaluate(*sys.argv[2:6])
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", type=Path, required=True,
                    help="llama.cpp source tree (convert_hf_to_gguf.py, convert_lora_to_gguf.py, gguf-py)")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--keep", type=Path, help="work in this new folder and keep its files")
    args = ap.parse_args()
    import llama_cpp

    torch.set_num_threads(1)
    started = time.perf_counter()
    out: dict = {"command": command(), "llama_cpp_python": llama_cpp.__version__,
                 "settings": SETTINGS, "facts": len(FACTS), "prompts": PROMPTS, "families": {}}
    if args.keep:
        args.keep.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=args.keep) as tmp_name:
        if args.keep:
            tmp_name = str(args.keep)
        os.environ["MEMSTORE_CACHE"] = str(Path(tmp_name) / "cache")
        os.environ["MEMSTORE_STATS_CACHE"] = str(Path(tmp_name) / "stats")
        for family in args.families.split(","):
            t = time.perf_counter()
            try:
                res = run_family(family, Path(tmp_name) / family, args.llama_cpp.resolve())
            except subprocess.CalledProcessError as e:
                print(e.stderr, file=sys.stderr)
                last = (e.stderr or "").strip().splitlines()[-1:] or ["?"]
                res = {"error": f"memstore {e.cmd[3]}: {last[0]}"}
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                res = {"error": f"{type(e).__name__}: {e}"}
            res["seconds"] = time.perf_counter() - t
            out["families"][family] = res
            print(family, json.dumps(res), flush=True)
    out["wall_seconds"] = time.perf_counter() - started
    write_results("llamacpp-families", out, report(out))


def report(out: dict) -> list[str]:
    lines = [("# Every family memstore reads from GGUF, through llama.cpp (tiny random models, "
              "all F32)"), "",
             ("max \\|Δlogit\\|: llama.cpp against transformers on the same weights (the base: "
             "memstore's base; edited: memstore's `--format full` export), over every position "
             "of every prompt. Effect: llama.cpp's (edited − base) logits against "
             "transformers', relative error ‖Δ_llama.cpp − Δ_transformers‖ / ‖Δ_transformers‖ "
             "and correlation."), "",
             ("| family | GGUF arch | ffn_down tensors changed | base | GGUF export | effect, "
             "GGUF export | base + LoRA | effect, base + LoRA | max \\|effect\\| |"),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]

    def cell(r: dict, key: str) -> tuple[str, str]:
        if key not in r:
            return (r.get(f"{key}_error") or r.get("lora_error") or "–"), "–"
        e = r[key].get("effect")
        return (f"{r[key]['max_abs_dlogit']:.1e}",
                f"{e['rel_err']:.1e} / {e['corr']:.7f}" if e else "–")

    for family, r in out["families"].items():
        if "error" in r:
            lines.append(f"| {family} | – | {r['error']} | | | | | | |")
            continue
        base, _ = cell(r, "base")
        g, ge = cell(r, "gguf_export")
        lo, le = cell(r, "base_plus_lora")
        eff = r.get("gguf_export", {}).get("effect", {}).get("hf_effect_max")
        lines.append(f"| {family} | {r['gguf_arch']} | {len(r['changed_tensors'])} | {base} | "
                     f"{g} | {ge} | {lo} | {le} | "
                     + (f"{eff:.2f} |" if eff is not None else "– |"))
    lines += ["", (f"{out['facts']} facts in one commit (layers {out['settings']['layers']}), "
                   f"{len(out['prompts'])} prompts; memstore's base (transformers' GGUF loader) "
                   "against the Hugging Face model converted, max |Δlogit|: "
                   + ", ".join(f"{f} {r['hf_vs_memstore_base']:.0e}"
                               for f, r in out["families"].items() if "hf_vs_memstore_base" in r)
                   + f". llama-cpp-python {out['llama_cpp_python']}; whole run "
                   f"{out['wall_seconds']:.0f} s. Command: `{out['command']}`")]
    return lines


if __name__ == "__main__":
    main()
