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
    s = settings_for(model, layers=(1, 2), mom2_weight=10.0, z_steps=20, history=history,
                     history_weight=1e4)
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
