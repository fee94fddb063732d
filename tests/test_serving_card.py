"""The model card: Hugging Face front matter, the facts table cut at 200 rows."""
from __future__ import annotations

from memstore.serving.card import Card, CommitRecord, Fact, hub_id, render


def card(kind: str, spec: str, n_facts: int) -> str:
    facts = [Fact(f"subject {i}", "{} is a | pipe", f"old {i}", f"new {i}") for i in range(n_facts)]
    facts.append(Fact("gone", "{} was", "kept", None))
    return render(Card("t", kind, spec, "ab" * 32, "v1", "c" * 64, None, {"layers": [3, 4]},
                       facts, [CommitRecord("c" * 64, "add facts\nmore", {"n": 3, "efficacy": 1.0,
                                                                          "p_new": 0.9}),
                               CommitRecord("d" * 64, "more", {"n": 1, "efficacy": 0.0, "earlier": {
                                   "n": 3, "live": 9, "recalled_before": 1.0,
                                   "recalled": 2 / 3}})],
                       "memstore export cccc out --format peft", "out"))


def front(text: str) -> list[str]:
    lines = text.splitlines()
    assert lines[0] == "---"
    return lines[1:lines.index("---", 1)]


def test_front_matter():
    text = card("peft", "smollm2-135m", 2)
    assert front(text) == ['base_model: "HuggingFaceTB/SmolLM2-135M-Instruct"',
                           "base_model_relation: adapter", "library_name: peft", "tags:",
                           "- memstore", "- model-editing", "- memit", "- knowledge-editing",
                           "- lora"]
    local = front(card("gguf", "/data/models/tiny", 2))
    assert not any(line.startswith("base_model:") for line in local)  # no Hub id known
    assert "library_name: gguf" in local and "base_model_relation: finetune" in local
    # memstore loads no Hub ids: a spec of the form owner/name is a path relative to where
    # init ran, and was taken for a Hub id wherever it did not exist from the export's cwd
    assert hub_id("Qwen/Qwen2-0.5B") is None and hub_id("./a/b") is None


def test_body_and_facts_table():
    text = card("peft", "smollm2-135m", 2)
    assert "## Facts (2 written, 1 removed)" in text
    assert "| subject 0 | {} is a \\| pipe | old 0 → new 0 |" in text
    assert "| gone | {} was | kept → (removed) |" in text
    assert "| `cccccccccccc` | add facts | 3 | 1.000 | – | 0.900 | – |" in text
    assert "| `dddddddddddd` | more | 1 | 0.000 | – | – | 1.000 → 0.667 (3 of 9) |" in text
    assert "memstore export cccc out --format peft\nmemstore verify out" in text
    assert f"`{'ab' * 32}`" in text and '"layers": [' in text


def test_the_revision_row_names_the_base_model_in_words_as_export_and_verify_do():
    """A card of the base (commit None) said "`base` = commit `(base)`", the marker export
    and verify no longer print (705db97: 'Exported the base model'); a commit's row keeps
    its id."""
    assert f"| revision | `v1` = commit `{'c' * 64}` |" in card("full", "x", 1)
    base = render(Card("t", "full", "x", "ab" * 32, "base", None, None, {}, [], [],
                       "memstore export base out", "out"))
    assert "| revision | `base` = the base model |" in base and "(base)" not in base


def test_a_long_facts_table_is_cut_at_200():
    text = card("full", "x", 250)
    rows = [line for line in text.splitlines() if line.startswith("| subject ") and "| {} is" in line]
    assert len(rows) == 200 and "… and 51 more (`memstore diff` lists them all)." in text


def test_the_vllm_rank_flag_and_the_serving_section():
    """vLLM refuses an adapter whose r is above --max-lora-rank (default 16, one of 8 … 512);
    the card names the flag an adapter needs, and the families vLLM or llama.cpp's
    converter cannot take."""
    from memstore.serving.peft import serving_lines, vllm_max_lora_rank

    assert [vllm_max_lora_rank(r) for r in (1, 8, 9, 16, 17, 37, 100, 300, 320, 321, 512)] \
        == [8, 8, 16, 16, 32, 64, 128, 320, 320, 512, 512]
    assert vllm_max_lora_rank(513) is None
    text = "\n".join(serving_lines(37, "llama", "../facts"))
    assert "vllm serve BASE_DIR --enable-lora --max-lora-rank 64 --lora-modules facts=../facts" \
        in text
    assert "vLLM's default is 16" in text
    assert "python convert_lora_to_gguf.py ../facts --base BASE_DIR --outtype f32" in text
    assert "--max-rank 512" in "\n".join(serving_lines(600, "phi3", "o"))
    for family in ("gpt2", "gptj", "gpt_neox", "stablelm", "falcon"):
        text = "\n".join(serving_lines(4, family, "o"))
        assert "vllm serve" not in text and "does not support LoRA yet" in text
    # StarCoder2: served with LoRA by vLLM's Transformers modeling backend (vllm#30966),
    # refused by an older vLLM's own class, which the card says
    text = "\n".join(serving_lines(4, "starcoder2", "o"))
    assert "vllm serve BASE_DIR --enable-lora --max-lora-rank 8" in text
    assert "vllm-project/vllm#30966" in text and "older vLLM" in text
    assert "vllm-project/vllm#30966" not in "\n".join(serving_lines(4, "llama", "o"))
    gpt2 = "\n".join(serving_lines(4, "gpt2", "o"))
    assert "convert_lora_to_gguf.py o" not in gpt2 and "GPT2Model.modify_tensors" in gpt2
    assert "convert_lora_to_gguf.py o" in "\n".join(serving_lines(4, "gemma2", "o"))
    # llama.cpp has no GPT-J model: its converters refuse GPTJForCausalLM
    gptj = "\n".join(serving_lines(4, "gptj", "o"))
    assert "convert_lora_to_gguf.py o" not in gptj and "llama.cpp has no gptj model" in gptj
    assert "convert_lora_to_gguf.py o" in "\n".join(serving_lines(4, "gpt_neox", "o"))


def test_the_cards_commands_quote_a_path_with_spaces(base, tmp_path):
    """The card's commands (rebuild, verify, vLLM, llama.cpp's converter) are pasted into a
    shell: an OUT_DIR with spaces, quotes or non-ASCII letters stays one argument."""
    import shlex

    from cli_support import copy_repo, history_template, ok

    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    out = tmp_path / "ü dir" / "it's v1"
    ok("export", "HEAD", out, "--format", "peft", cwd=repo)
    text = (out / "README.md").read_text()
    commands = [shlex.split(line) for line in text.splitlines()
                if line.startswith(("memstore ", "vllm ", "python convert_lora"))]
    assert ["memstore", "export", ids[2], str(out), "--format", "peft"] in commands
    assert ["memstore", "verify", str(out)] in commands
    assert any(f"facts={out}" in c for c in commands)
    assert any(c[:3] == ["python", "convert_lora_to_gguf.py", str(out)] for c in commands)


def test_the_cards_rebuild_commands_name_the_dtype_it_was_built_in(base, tmp_path):
    """A checkpoint built in bfloat16 (--dtype) differs in its bits from one built in
    float32: the card's rebuild commands named no dtype, so, pasted, the export was rebuilt
    in float32 and its verify failed on every tensor."""
    import shlex

    from cli_support import copy_repo, history_template, ok, run

    template, ids = history_template(base)
    repo = copy_repo(template, tmp_path / "repo")
    out = tmp_path / "bf16"
    ok("export", "HEAD", out, "--dtype", "bfloat16", cwd=repo)
    commands = [shlex.split(line) for line in (out / "README.md").read_text().splitlines()
                if line.startswith("memstore ")]
    flags = ["--device", "cpu", "--dtype", "bfloat16"]
    assert commands == [["memstore", "export", ids[2], str(out), *flags],
                        ["memstore", "verify", str(out), *flags]]
    assert run(*commands[1][1:], cwd=repo).exit_code == 0
    ok("export", "HEAD", tmp_path / "f32", cwd=repo)  # the plain case names none
    text = (tmp_path / "f32" / "README.md").read_text()
    assert f"memstore verify {tmp_path / 'f32'}\n" in text and "--dtype" not in text
