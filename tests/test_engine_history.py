"""History-aware solves: earlier commits' keys are preserved (or projected away from)."""
import pytest
import torch
from engine_fixtures import REQUESTS, build, settings_for, stats_for

from memstore.editing import execute_memit
from memstore.editing.keys import current_hidden
from memstore.editing.memit import running_matrix, stacked_keys
from memstore.editing.requests import Request
from memstore.editing.solve import nullspace_projector
from memstore.eval.scoring import score_targets


def test_running_matrix_is_the_sum_over_commits():
    torch.manual_seed(0)
    ks = [{1: torch.randn(3, 8), 2: torch.randn(3, 8)}, {1: torch.randn(5, 8), 2: torch.randn(5, 8)}]
    m = running_matrix(ks)
    for layer in (1, 2):
        all_k = torch.cat([k[layer] for k in ks]).double()
        torch.testing.assert_close(m[layer], all_k.T @ all_k)


def median_eigenvalue(stats, layer: int) -> float:
    return float(torch.linalg.eigvalsh(stats[layer].mom2.double()).median())


def drift_after_second_commit(history: str, runtime: str) -> float:
    model, tok, ad = build("llama", runtime=runtime)
    s = settings_for(model, layers=(2,), mom2_weight=10.0, z_steps=10, history=history,
                     history_weight=1e4, nullspace_l2=1e-3)
    stats = stats_for(model, tok, ad, s.layers)
    # half of the directions are "used by ordinary text": the projection is not the identity
    s = s.with_changes(nullspace_threshold=median_eigenvalue(stats, 2))
    first, second = REQUESTS[:1], REQUESTS[1:]
    r1 = execute_memit(model, tok, first, s, stats, templates=["{}"], show_progress=False)
    h1 = current_hidden(model, tok, ad, 2, first)
    preserved = stacked_keys([{l: u.keys for l, u in r1.updates.items()}])
    execute_memit(model, tok, second, s, stats, templates=["{}"], earlier=preserved,
                  show_progress=False)
    h2 = current_hidden(model, tok, ad, 2, first)
    return float((h2 - h1).norm() / h1.norm())


def test_preserving_earlier_keys_keeps_an_earlier_fact_that_plain_loses(runtime):
    plain = drift_after_second_commit("plain", runtime)
    preserve = drift_after_second_commit("preserve", runtime)
    nullspace = drift_after_second_commit("nullspace", runtime)
    assert plain > 0.05, plain  # the plain solve moves the first commit's fact
    assert preserve < plain / 10, (preserve, plain)
    assert nullspace < plain / 10, (nullspace, plain)


def test_nullspace_update_leaves_the_directions_text_uses_untouched(runtime):
    """AlphaEdit's guarantee, checked against an eigendecomposition made here: ΔW v = 0 for
    every eigenvector v of E[k kᵀ] with eigenvalue at or above the threshold."""
    model, tok, ad = build("llama", runtime=runtime)
    s = settings_for(model, layers=(1, 2), z_steps=6, history="nullspace", nullspace_l2=1e-2)
    stats = stats_for(model, tok, ad, s.layers)
    s = s.with_changes(nullspace_threshold=median_eigenvalue(stats, 2))
    res = execute_memit(model, tok, REQUESTS, s, stats, templates=["{}"], show_progress=False)
    for layer, u in res.updates.items():
        dw = u.U.double() @ u.V.double().T
        values, vectors = torch.linalg.eigh(stats[layer].mom2.double())
        used = vectors[:, values >= s.nullspace_threshold]
        assert used.shape[1] >= 8
        assert (dw @ used).norm() < 1e-6 * dw.norm(), layer
        assert dw.norm() > 0


def test_nullspace_applies_the_history_weight(runtime):
    model, tok, ad = build("llama", runtime=runtime)
    s = settings_for(model, layers=(2,), z_steps=4, history="nullspace", nullspace_l2=1e-2)
    stats = stats_for(model, tok, ad, s.layers)
    s = s.with_changes(nullspace_threshold=median_eigenvalue(stats, 2))
    from memstore.editing.zs import compute_zs

    zs, _ = compute_zs(model, tok, ad, REQUESTS[1:], ["{}"], s, False)
    torch.manual_seed(0)
    earlier = torch.randn(20, 64)
    running = {2: earlier}

    def delta(settings, run):
        base = {k: v.clone() for k, v in model.state_dict().items()}
        r = execute_memit(model, tok, REQUESTS[1:], settings, stats, templates=["{}"], zs=zs,
                          earlier=run, show_progress=False)
        model.load_state_dict(base)
        return r.updates[2].U.double() @ r.updates[2].V.double().T

    none = delta(s, None)
    torch.testing.assert_close(delta(s.with_changes(history_weight=0.0), running), none)
    weighted = delta(s.with_changes(history_weight=1e3), running)
    assert (weighted - none).norm() > 1e-3 * none.norm()
    # the earlier keys are kept: the weighted update moves them less
    assert (earlier.double() @ weighted.T).norm() < (earlier.double() @ none.T).norm()


def test_nullspace_projector_is_a_projector_onto_small_directions():
    torch.manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    mom2 = basis @ torch.diag(torch.tensor([5.0, 3.0, 1.0, 1e-3, 1e-4, 0.0], dtype=torch.float64)) @ basis.T
    p = nullspace_projector(mom2, 1e-2)
    torch.testing.assert_close(p @ p, p)
    assert round(float(torch.trace(p))) == 3
    torch.testing.assert_close(p @ basis[:, :3], torch.zeros(6, 3, dtype=torch.float64), atol=1e-10, rtol=0)


def test_history_method_is_validated():
    from memstore.editing.settings import EditSettings
    from memstore.errors import ValidationError

    with pytest.raises(ValidationError, match="history"):
        EditSettings(layers=(1,), mom2_weight=1.0, history="forgetful")


FIRST = Request("Anna Lindqvist", "The mother tongue of {} is", "English", "French")
# later facts about subjects whose keys lie close to the first's, pulling the other way
SECOND = [Request(f"{n} Lindqvist", "The mother tongue of {} is", "French", "English")
          for n in ("Erik", "Sven", "Karin", "Lars", "Ingrid")]


def first_fact_margin(model, tok) -> float:
    """NLL(true) − NLL(new) on the first fact's prompt: > 0 while the model says the new target."""
    nll = score_targets(model, tok, [FIRST.text] * 2, [FIRST.target_new, FIRST.target_true]).nll
    return float(nll[1] - nll[0])


def margins(history: str, runtime: str) -> tuple[float, float]:
    model, tok, ad = build("gpt2", runtime=runtime)
    # clamp 0.75: writes strong enough for the later commit to overwrite the first fact
    s = settings_for(model, layers=(1, 2), mom2_weight=10.0, z_steps=20, history=history,
                     history_weight=1e4, clamp=0.75)
    stats = stats_for(model, tok, ad, s.layers)
    r1 = execute_memit(model, tok, [FIRST], s, stats, templates=["{}"], show_progress=False)
    after_first = first_fact_margin(model, tok)
    preserved = stacked_keys([{l: u.keys for l, u in r1.updates.items()}])
    execute_memit(model, tok, SECOND, s, stats, templates=["{}"], earlier=preserved,
                  show_progress=False)
    return after_first, first_fact_margin(model, tok)


def test_history_aware_solve_keeps_an_earlier_fact_that_the_plain_solve_loses(runtime):
    written, plain = margins("plain", runtime)
    written_too, preserve = margins("preserve", runtime)
    assert written == written_too and written > 0  # the first commit writes the fact
    assert plain < 0, plain  # plain: the later commit overwrites it
    assert preserve > 0, preserve  # preserving the first commit's keys keeps it


def test_lambda_grows_with_the_live_facts_in_a_preserve_solve(runtime):
    """V = (λ' E[k kᵀ] + E_pᵀ E_p + K Kᵀ)⁻¹ K with λ' = λ · (n / facts) ^ growth, n the new
    facts and the earlier live ones: checked against a dense solve formed here."""
    model, tok, ad = build("llama", runtime=runtime)
    s = settings_for(model, layers=(2,), z_steps=4, history="preserve", mom2_weight=3.0,
                     mom2_growth=0.5, mom2_growth_facts=4)
    stats = stats_for(model, tok, ad, s.layers)
    torch.manual_seed(0)
    earlier = torch.randn(14, 64)
    base = {k: v.clone() for k, v in model.state_dict().items()}

    def v_of(settings, run):
        r = execute_memit(model, tok, REQUESTS[1:], settings, stats, templates=["{}"],
                          earlier=run, show_progress=False)
        model.load_state_dict(base)
        return r.updates[2].V.double(), r.updates[2].keys.double(), r.info["lambda"]

    n = 14 + len(REQUESTS[1:])
    grown = 3.0 * (n / 4) ** 0.5
    for settings, run, lam in ((s, {2: earlier}, grown),
                               (s.with_changes(mom2_growth=0.0), {2: earlier}, 3.0),
                               (s, None, 3.0 * max(1.0, len(REQUESTS[1:]) / 4) ** 0.5)):
        v, k, used = v_of(settings, run)
        e = earlier.double() if run else torch.zeros(0, 64, dtype=torch.float64)
        a = lam * stats[2].mom2.double() + e.T @ e + k.T @ k
        torch.testing.assert_close(v, torch.linalg.solve(a, k.T), rtol=1e-6, atol=1e-9)
        assert used == pytest.approx(lam)
    assert grown > 3.0 * 2  # the growth is large enough for the check above to tell


def test_settings_recorded_before_lambda_grew_keep_lambda_fixed():
    from memstore.editing.settings import EditSettings
    from memstore.errors import ValidationError

    s = EditSettings(layers=(1,), mom2_weight=2.0)
    old = {k: v for k, v in s.to_dict().items() if k not in ("mom2_growth", "mom2_growth_facts")}
    fixed = EditSettings.from_dict(old)
    assert fixed.lambda_for(10_000) == 2.0
    assert s.lambda_for(s.mom2_growth_facts // 2) == 2.0  # never below λ
    assert s.lambda_for(4 * s.mom2_growth_facts) == pytest.approx(2.0 * 4 ** s.mom2_growth)
    with pytest.raises(ValidationError, match="mom2_growth"):
        s.with_changes(mom2_growth=-1.0)
    with pytest.raises(ValidationError, match="mom2_growth_facts"):
        s.with_changes(mom2_growth_facts=0)
