"""One δ for the requests that read one key (`z_groups key`: one subject after the same
words; `z_groups subject` also joins one subject's wordings of one target): what it
optimises, where each request's z lands, which requests share one, and that one request per
group is the paper's path unchanged."""
import pytest
import torch
from engine_fixtures import REQUESTS, TEMPLATES, build, settings_for, stats_for

from memstore.editing import Request, execute_memit, unapply_updates
from memstore.editing.keys import current_hidden
from memstore.editing.settings import EditSettings
from memstore.editing.zs import compute_zs, key_groups
from memstore.editing.zs_reference import compute_z_reference

SUBJECT = "Danielle Darrieux"
# two relations of one subject, one target: one δ over both prompts is the paper's
# procedure for one request whose rewriting prompts are both prompts' templates
SAME = [Request(SUBJECT, "{}'s mother tongue is", "English", "French"),
        Request(SUBJECT, "{} was born in the city of", "English", "Paris")]


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_a_subjects_delta_is_the_reference_over_all_its_prompts(family):
    model, tok, ad = build(family)
    s = settings_for(model, z_groups="key")
    z, info = compute_zs(model, tok, ad, SAME, TEMPLATES, s, False)
    merged = [t.format(r.prompt) for r in SAME for t in TEMPLATES]
    zr, steps = compute_z_reference(model, tok, ad, Request(SUBJECT, "{}", "English", ""),
                                    merged, s)
    h = current_hidden(model, tok, ad, s.last_layer, SAME).cpu()
    delta = zr.float().cpu() - h[0]
    assert (z[0] - zr.float().cpu()).norm() / zr.norm() < 1e-4
    assert (z[1] - h[1] - delta).norm() / delta.norm() < 1e-4  # the same δ, on its own h
    assert info["z_steps"] == [steps, steps]


def test_requests_share_a_delta_only_where_they_read_one_key():
    batch = [Request(SUBJECT, "{} was born in", "Paris"),
             Request(SUBJECT, "The mother tongue of {} is", "French"),
             Request("Danielle", "{} was born in", "Lyon"),
             Request(SUBJECT, "{} works as", "actor"),
             Request(SUBJECT, "The mother tongue of {} is", "English")]
    s = settings_for(build("llama")[0], z_groups="key")
    assert key_groups(batch, s) == [[0, 3], [1, 4], [2]]
    assert key_groups(batch, s.with_changes(z_groups="request")) == [[i] for i in range(5)]


def test_subject_groups_join_one_subjects_wordings_of_one_target():
    batch = [Request(SUBJECT, "What voice type is {}?", "soprano"),
             Request(SUBJECT, "What is the vocal range of {}?", "soprano"),
             Request("Danielle", "What voice type is {}?", "soprano"),
             Request(SUBJECT, "Where was {} born?", "Paris"),
             Request(SUBJECT, "What is the vocal range of {}?", "alto"),
             Request(SUBJECT, "In which city was {} born?", "Lyon")]
    s = settings_for(build("llama")[0], z_groups="subject")
    # 0-1 one target, 1-4 one key (so 0, 1 and 4 share a δ), 2 another subject, 3 and 5 apart
    assert key_groups(batch, s) == [[0, 1, 4], [2], [3], [5]]
    assert key_groups(batch, s.with_changes(z_groups="key")) == [[0], [1, 4], [2], [3], [5]]


def test_one_request_per_group_is_the_paths_bits():
    model, tok, ad = build("llama")
    s = settings_for(model, z_groups="request")
    z, info = compute_zs(model, tok, ad, REQUESTS, TEMPLATES, s, False)
    for groups in ("key", "subject"):
        zg, infog = compute_zs(model, tok, ad, REQUESTS, TEMPLATES,
                               s.with_changes(z_groups=groups), False)
        assert torch.equal(z, zg) and info == infog


def test_two_wordings_of_one_fact_share_one_delta():
    model, tok, ad = build("llama")
    pair = [Request(SUBJECT, "What voice type is {}?", "soprano"),
            Request(SUBJECT, "What is the vocal range of {}?", "soprano")]
    h = current_hidden(model, tok, ad, 2, pair).cpu()
    deltas = {}
    for groups in ("key", "subject"):
        z, _ = compute_zs(model, tok, ad, pair, TEMPLATES, settings_for(model, z_groups=groups),
                          False)
        deltas[groups] = z - h
    d = deltas["subject"]
    assert (d[0] - d[1]).norm() / d[0].norm() < 1e-4
    k = deltas["key"]
    assert (k[0] - k[1]).norm() / k[0].norm() > 1e-2  # apart, each after its own wording


def test_groups_come_back_in_request_order_across_chunks():
    model, tok, ad = build("llama")
    other = Request(SUBJECT, "The mother tongue of {} was once", "German", "French")
    batch = [REQUESTS[0], REQUESTS[1], other, REQUESTS[2]]  # 0 and 2 read one key
    s = settings_for(model, z_groups="key", z_chunk=2)
    z, info = compute_zs(model, tok, ad, batch, TEMPLATES, s, False)
    zs_alone, info_alone = compute_zs(model, tok, ad, [batch[0], batch[2]], TEMPLATES, s, False)
    assert torch.allclose(z[[0, 2]], zs_alone, rtol=1e-5, atol=1e-6)
    for i in (1, 3):
        z1, _ = compute_zs(model, tok, ad, [batch[i]], TEMPLATES, s, False)
        assert torch.allclose(z[i], z1[0], rtol=1e-5, atol=1e-6)
    assert [info["z_steps"][i] for i in (0, 2)] == info_alone["z_steps"]


def test_a_shared_delta_is_written_where_separate_ones_are_averaged():
    """The subject opens both prompts and one bare template is used: both requests read one
    key, where the solve can put one vector. With one δ per subject, that vector is each
    request's z; with one per request, the edit lands between the two zs, on neither."""
    model, tok, ad = build("llama")
    pair = [Request("Toko Yasuda", "{} plays the", "piano", "guitar"),
            Request("Toko Yasuda", "{} was born in", "Tokyo", "Osaka")]
    miss = {}
    for groups in ("request", "key"):
        s = settings_for(model, layers=(2,), mom2_weight=1e-4, z_steps=40, clamp=10.0,
                         kl_weight=0.0, z_groups=groups)
        stats = stats_for(model, tok, ad, s.layers)
        res = execute_memit(model, tok, pair, s, stats, templates=["{}"], show_progress=False)
        h = current_hidden(model, tok, ad, 2, pair).cpu()
        unapply_updates(model, ad, res.updates)
        delta = res.zs - current_hidden(model, tok, ad, 2, pair).cpu()
        miss[groups] = ((h - res.zs).norm(dim=1) / delta.norm(dim=1)).max()
    assert miss["key"] < 1e-3
    assert miss["request"] > 0.2, miss


def test_settings_before_z_groups_read_as_one_delta_per_request():
    d = settings_for(build("llama")[0], z_groups="key").to_dict()
    del d["z_groups"]
    assert EditSettings.from_dict(d).z_groups == "request"
