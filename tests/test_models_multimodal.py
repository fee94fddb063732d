"""Multimodal checkpoints kept whole: Qwen 3.5 and Mistral 3 (a text model beside a vision
tower, as Gemma 3) are loaded as their image-text-to-text model, not as a causal LM (which
for Qwen 3.5 left the vision tower unread, silently, and exported the model without it; for
Mistral 3 there is none). Their text model is edited through `model.language_model.…` with
Gemma 3's wrapper (the math is their text family's: one tiny model each, checked by the
family tests' own checks), the base hash covers the vision tower, and a full export
writes every tensor back, the vision tower bit for bit, which verify confirms.

Also the names an export's files hold: save_pretrained writes a checkpoint in the
family's original format (Mistral 3's and Gemma 3's text model as language_model.model.…,
GPT-NeoX's head as embed_out), not by the loaded model's names, and verify called every
such tensor 'not a tensor of the rebuilt model'."""
import pytest
import test_engine_families_extra
import test_engine_memit
import torch
import transformers
from cli_support import SETTINGS, facts_files, ok, run
from safetensors import safe_open
from tiny import auto_class, tiny_config, tiny_tokenizer

from memstore.errors import ValidationError
from memstore.models.hashing import model_hash
from memstore.models.loading import load_model

MULTIMODAL = ("qwen3_5", "mistral3")
# where each keeps the vision tower (and Mistral 3 its projector), as the loaded model names them
VISION = {"qwen3_5": ("model.visual.",),
          "mistral3": ("model.vision_tower.", "model.multi_modal_projector.")}
# as its files name them (save_pretrained's original format)
VISION_SAVED = {"qwen3_5": ("model.visual.",),
                "mistral3": ("vision_tower.", "multi_modal_projector.")}


def model_dir(path, family: str):
    tok = tiny_tokenizer()
    cfg = tiny_config(family, tok.backend_tokenizer.get_vocab_size(), layers=4)
    torch.manual_seed(0)
    auto_class(cfg).from_config(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def tensors(directory) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint, read with safetensors."""
    with safe_open(str(directory / "model.safetensors"), "pt") as st:
        return {n: st.get_tensor(n) for n in st.keys()}  # noqa: SIM118


@pytest.mark.parametrize("family", MULTIMODAL)
def test_a_multimodal_checkpoint_is_loaded_whole_and_hashed_whole(family, tmp_path):
    loaded = load_model(str(model_dir(tmp_path / family, family)))
    model = loaded.model
    assert type(model).__name__.endswith("ForConditionalGeneration")
    vision = [n for n in model.state_dict() if n.startswith(VISION[family])]
    assert vision, "the vision tower was not loaded"
    # its weights are the checkpoint's, not made up
    state = model.state_dict()
    saved = {n if n.startswith("model.") else f"model.{n}": t
             for n, t in tensors(tmp_path / family).items() if n.startswith(VISION_SAVED[family])}
    assert sorted(saved) == sorted(vision)
    assert all(torch.equal(state[n], t) for n, t in saved.items())
    # the base hash covers the vision tower
    before = model_hash(model)
    with torch.no_grad():
        model.get_parameter(next(n for n in vision if n.endswith("weight"))).add_(1.0)
    assert model_hash(model) != before
    assert loaded.adapter.layers_path == "model.language_model.layers"


@pytest.mark.parametrize("family", MULTIMODAL)
def test_an_edit_of_the_text_model_is_the_families_own(family):
    test_engine_memit.test_small_lambda_maps_keys_to_targets(family, "cpu-float32")
    test_engine_families_extra.test_z_vectors_and_scores_are_the_models_own(family)


def export_and_verify(tmp_path, model):
    """A commit on `model`, exported in full and verified; the export's folder."""
    repo = tmp_path / "repo"
    ok("init", repo, "--base", model)
    for key, value in SETTINGS.items():
        ok("config", key, value, cwd=repo)
    ok("commit", facts_files(tmp_path)["b"], cwd=repo)
    assert "leaves out" not in ok("export", "HEAD", tmp_path / "out", cwd=repo).stderr
    assert ok("verify", tmp_path / "out", cwd=repo).stdout.startswith("OK: ")
    return tmp_path / "out"


@pytest.mark.parametrize("family", MULTIMODAL)
def test_a_full_export_writes_the_vision_tower_back_bit_for_bit(family, tmp_path):
    """And a PEFT export names the modules of the whole model (model.language_model.…),
    which PEFT wraps: merged into the base, it is the full export."""
    import transformers
    from peft import PeftModel

    base = tensors(model_dir(tmp_path / family, family))
    out = tensors(export_and_verify(tmp_path, tmp_path / family))
    assert sorted(out) == sorted(base)
    vision = [n for n in base if n.startswith(VISION_SAVED[family])]
    assert vision
    changed = [n for n in base if not (out[n].dtype == base[n].dtype
                                       and torch.equal(out[n], base[n]))]
    # only the edited W_out (layers 1 and 2) differ
    assert changed and all(n.endswith("mlp.down_proj.weight") and (".layers.1." in n or
                                                                  ".layers.2." in n)
                           for n in changed), changed
    ok("export", "HEAD", tmp_path / "peft", "--format", "peft", cwd=tmp_path / "repo")
    load = transformers.AutoModelForImageTextToText.from_pretrained
    merged = PeftModel.from_pretrained(load(tmp_path / family), tmp_path / "peft")
    got, full = merged.merge_and_unload().state_dict(), load(tmp_path / "out").state_dict()
    assert sorted(got) == sorted(full)
    assert all((got[n] - full[n]).abs().max() <= 1e-6 for n in full)


def test_an_export_whose_head_save_pretrained_renames_verifies(tmp_path):
    """GPT-NeoX's LM head is lm_head in the model, embed_out in its files."""
    from test_cli_families import model_dir as causal_dir

    out = export_and_verify(tmp_path, causal_dir(tmp_path / "neox", "gpt_neox"))
    assert "embed_out.weight" in tensors(out)


def test_tensors_the_model_does_not_read_are_not_left_out_without_a_word(tmp_path):
    """Qwen 3.5's checkpoints hold multi-token-prediction layers (mtp.*), which transformers
    loads into no model and leaves out of its report of unexpected keys: the export, written
    from the model, lacked them, silently, and verify said OK. It still lacks them (the model
    holds none to write), and says so: a warning naming them, and the manifest's left_out."""
    import json

    from safetensors.torch import save_file

    base = model_dir(tmp_path / "qwen3_5", "qwen3_5")
    held = tensors(base)
    extra = {"mtp.fc.weight": torch.randn(32, 64), "mtp.norm.weight": torch.ones(32),
             "extra.weight": torch.ones(3)}  # the last one transformers does report
    save_file(held | extra, str(base / "model.safetensors"), metadata={"format": "pt"})
    repo = tmp_path / "repo"
    ok("init", repo, "--base", base)
    r = ok("export", "base", tmp_path / "out", cwd=repo)
    assert r.stderr == ("warning: the export leaves out 3 tensor(s) of the base's files that "
                        "transformers does not load into the model (extra.weight, "
                        "mtp.fc.weight, mtp.norm.weight)\n")
    at = tmp_path / "out" / "memstore-manifest.json"
    manifest = json.loads(at.read_text())
    assert manifest["left_out"] == sorted(extra)
    assert sorted(tensors(tmp_path / "out")) == sorted(held)
    # verify holds the manifest to it: one edited to say nothing was left out is a problem
    assert ok("verify", tmp_path / "out", cwd=repo).stdout.startswith("OK: ")
    at.write_text(json.dumps({k: v for k, v in manifest.items() if k != "left_out"}))
    r = run("verify", tmp_path / "out", cwd=repo)
    assert r.exit_code == 1, r.output
    assert r.stdout.splitlines()[0] == (
        "left_out: the manifest lists '[]', the rebuilt model leaves \"['extra.weight', "
        "'mtp.fc.weight', 'mtp.norm.weight']\" of the base's files unread")


@pytest.mark.parametrize("family, rename, computed", [
    # openai-community/gpt2's file: no transformer. prefix, each layer's causal mask
    ("gpt2", lambda n: n.removeprefix("transformer."),
     lambda i: {f"h.{i}.attn.bias": torch.tril(torch.ones(1, 1, 8, 8))}),
    # Pythia's: the masks, and the rotary frequencies each layer held before transformers
    # moved them to the model
    ("gpt_neox", lambda n: n,
     lambda i: {f"gpt_neox.layers.{i}.attention.bias": torch.ones(1, 1, 8, 8),
                f"gpt_neox.layers.{i}.attention.masked_bias": torch.tensor(-1e9),
                f"gpt_neox.layers.{i}.attention.rotary_emb.inv_freq": torch.ones(4)}),
    # Llama 2's (and its fine-tunes'): the per-layer rotary frequencies
    ("llama", lambda n: n,
     lambda i: {f"model.layers.{i}.self_attn.rotary_emb.inv_freq": torch.ones(4)}),
])
def test_buffers_the_model_computes_are_not_called_left_out(family, rename, computed, tmp_path):
    """Published GPT-2, Pythia and Llama 2 files hold buffers beside the weights (causal
    masks, rotary frequencies), which transformers drops and the model computes for itself:
    an export of such a base loses nothing, and said it left them out. A stray tensor of
    the same file is still named."""
    from safetensors.torch import save_file
    from test_cli_families import model_dir as causal_dir

    base = causal_dir(tmp_path / family, family)
    held = {rename(n): t for n, t in tensors(base).items()}
    for i in range(4):
        held |= computed(i)
    stray = {f"{rename('transformer.h.0.attn.extra')}.weight": torch.ones(3)}
    save_file(held | stray, str(base / "model.safetensors"), metadata={"format": "pt"})
    assert load_model(str(base)).unread == tuple(stray)


def test_an_index_beside_model_safetensors_is_not_what_was_read(tmp_path):
    """from_pretrained reads model.safetensors where there is one, an index beside it (left
    by an earlier sharded save) not: the tensors left out are those of the file it read,
    not the index's names (a stale name was called left out; one only in the file was not)."""
    import json

    from safetensors.torch import save_file
    from test_cli_families import model_dir as causal_dir

    base = causal_dir(tmp_path / "gpt2", "gpt2")
    save_file(tensors(base) | {"stray.weight": torch.ones(3)}, str(base / "model.safetensors"),
              metadata={"format": "pt"})
    (base / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"stale.weight": "model-00001-of-00002.safetensors"}}))
    assert load_model(str(base)).unread == ("stray.weight",)


@pytest.mark.parametrize("family", MULTIMODAL)
def test_a_fact_longer_than_the_text_models_context_is_refused(family):
    """A multimodal model's config keeps the context in text_config: none was read, and a
    fact longer than the context was edited (attention past the positions, its memory
    growing with the square of the text's length), where the causal LM refuses it."""
    from engine_fixtures import build

    from memstore.editing.requests import Request, context_length, validate_requests

    model, tok, _ = build(family)
    n = model.config.text_config.max_position_embeddings
    long = Request("Michael Jordan", "{} plays " + "very " * n, "golf")
    with pytest.raises(ValidationError, match=f"longer than the model's context of {n} tokens"):
        validate_requests([long], tok, context_length(model))


@pytest.mark.parametrize("change", ["gone", "other signature"])
def test_a_transformers_without_the_renaming_memstore_reads_is_one_line(change, monkeypatch):
    """checkpoint_names calls transformers' own weight renaming (core_model_loading, 5.24 and
    5.25); a version where it is gone or takes other arguments is a MemstoreError naming
    the version, not an ImportError or TypeError traceback at every load and export."""
    import transformers.core_model_loading as c

    from memstore.errors import MemstoreError
    from memstore.models.checkpoint_names import saved_names, unread_names

    tok = tiny_tokenizer()
    model = transformers.AutoModelForCausalLM.from_config(
        tiny_config("llama", tok.backend_tokenizer.get_vocab_size()))
    if change == "gone":
        monkeypatch.delattr(c, "revert_weight_conversion")
        monkeypatch.delattr(c, "rename_source_key")
    else:
        def other(*args):
            raise TypeError(f"takes 2 positional arguments but {len(args)} were given")
        monkeypatch.setattr(c, "revert_weight_conversion", other)
        monkeypatch.setattr(c, "rename_source_key", other)
    for call in (lambda: saved_names(model), lambda: unread_names(model, ["model.norm.weight"])):
        with pytest.raises(MemstoreError, match=f"transformers {transformers.__version__} "
                                                "renames a checkpoint's tensors otherwise"):
            call()
