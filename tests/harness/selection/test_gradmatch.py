"""``gradmatch``, the research's GradMatch: OMP, last-layer gradients, the ResNet path, weights.

The OMP and gradient tests check our fast forms against slow ones written here from the
published formulas (DeepCore's ``orthogonal_matching_pursuit_np`` and autograd of the mean
cross-entropy); the ResNet tests run the real selector on the tiny dataset's PNGs at 16 px.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.datasets import Dataset
from harness.selection import SelectionContext
from harness.selection.api import run_selector
from harness.selection.early_train import EarlyNet, build_resnet18, last_layer_inputs
from harness.selection.gradmatch import class_budgets, train_spec
from harness.selection.labels import allocate
from harness.selection.omp import DenseAtoms, LastLayerAtoms, omp, scaled_errors
from submissions.errors import ConfigError, DataNotFound

TINY = {"epochs": 1, "image_size": 16, "num_workers": 0, "device": "cpu"}

# --- OMP against a plain loop -----------------------------------------------------------------


def reference_omp(
    a: np.ndarray, b: np.ndarray, *, steps: int, lam: float
) -> tuple[list[int], list[np.ndarray]]:
    """DeepCore's OMP written out: atoms are the rows of ``a``; picks and residuals per step."""
    chosen: list[int] = []
    residuals = []
    resid = b.copy()
    for k in range(steps):
        proj = a @ resid
        best = max((i for i in range(len(a)) if i not in chosen), key=lambda i: proj[i])
        chosen.append(best)
        s = a[chosen]
        if k == 0:  # DeepCore: the first weight is the plain projection, no ridge term
            x = np.array([proj[best] / (a[best] @ a[best])])
        else:
            x = np.linalg.solve(s @ s.T + lam * np.eye(k + 1), s @ b)
        resid = b - s.T @ x
        residuals.append(resid)
    return chosen, residuals


def assert_same_as_reference(
    atoms: DenseAtoms | LastLayerAtoms, a: np.ndarray, b: np.ndarray, *, steps: int, lam: float
) -> None:
    want, residuals = reference_omp(a, b, steps=steps, lam=lam)
    fit = omp(atoms, torch.from_numpy(b), steps=steps, lam=lam)
    assert fit.indices == want
    assert np.allclose(fit.residual_norms, [np.linalg.norm(r) for r in residuals], atol=1e-6)
    final = b - a[fit.indices].T @ fit.coef.numpy()
    assert np.allclose(final, residuals[-1], atol=1e-6)


@pytest.mark.parametrize("lam", [0.01, 0.1, 1.0, 10.0])
def test_omp_picks_what_the_plain_loop_picks(lam: float) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 30))
    b = a[[3, 17, 29]].T @ np.array([1.0, 0.5, 2.0]) + 0.3 * rng.normal(size=30)
    assert_same_as_reference(DenseAtoms(torch.from_numpy(a)), a, b, steps=12, lam=lam)


@pytest.mark.parametrize("lam", [0.001, 1.0])
def test_factored_last_layer_atoms_pick_what_the_explicit_gradients_pick(lam: float) -> None:
    rng = np.random.default_rng(1)
    err = torch.from_numpy(rng.normal(size=(50, 4)) * 0.3)
    feat = torch.from_numpy(np.abs(rng.normal(size=(50, 6))))
    atoms = LastLayerAtoms(err=err, feat=feat)
    query = LastLayerAtoms(err=err[:5] + 0.1, feat=feat[:5])
    a, b = atoms.dense().numpy(), query.dense().numpy().mean(axis=0)
    assert np.allclose(query.mean().numpy(), b)
    assert np.allclose(atoms.correlate(torch.from_numpy(b)).numpy(), a @ b)
    assert_same_as_reference(atoms, a, b, steps=20, lam=lam)
    assert_same_as_reference(atoms, a, b, steps=50, lam=lam)  # every atom, more than D = 28


# --- the gradient formula against autograd ----------------------------------------------------


def test_row_gradients_are_autograd_of_the_batch_mean_cross_entropy() -> None:
    torch.manual_seed(0)
    body, fc = nn.Sequential(nn.Linear(5, 8), nn.Tanh()).double(), nn.Linear(8, 3).double()
    x, y = torch.randn(7, 5, dtype=torch.float64), torch.tensor([0, 2, 1, 1, 0, 2, 2])
    feat = body(x).detach()
    grads = LastLayerAtoms(err=scaled_errors(fc(feat).detach(), y, batch=3), feat=feat).dense()
    for lo in range(0, 7, 3):  # batches of 3, 3 and a partial one of 1, in row order
        rows = range(lo, min(lo + 3, 7))
        for i in rows:
            # the batch's mean loss, with only row i's logits depending on the layer
            logits = torch.stack([fc(feat[j]) if j == i else fc(feat[j]).detach() for j in rows])
            loss = nn.CrossEntropyLoss()(logits, y[lo : lo + len(rows)])
            bias, weight = torch.autograd.grad(loss, [fc.bias, fc.weight])
            want = torch.cat([bias, weight.flatten()])
            assert torch.allclose(grads[i], want, atol=1e-6), i
        loss = nn.CrossEntropyLoss()(fc(feat[lo : lo + len(rows)]), y[lo : lo + len(rows)])
        whole = torch.cat([g.flatten() for g in torch.autograd.grad(loss, [fc.bias, fc.weight])])
        assert torch.allclose(grads[list(rows)].sum(dim=0), whole, atol=1e-6)


# --- the ResNet path on real PNGs -------------------------------------------------------------


def small_context(
    ds: Dataset, *, pool: int = 36, task: str = "test2", weights_dir: Path | None = None
) -> SelectionContext:
    """The first ``pool`` pool rows and a task's query set, as arrays with image paths."""
    full = SelectionContext.from_dataset(ds, task=task)
    return SelectionContext.from_arrays(
        pool={"path": full.pool("path")[:pool], "label": full.pool("label")[:pool]},
        query={"path": full.query("path"), "label": full.query("label")},
        weights_dir=weights_dir,
    )


def test_path_kind_is_the_absolute_image_file(tiny_dataset: Dataset) -> None:
    ctx = SelectionContext.from_dataset(tiny_dataset, task="test1")
    paths = ctx.pool("path")
    assert len(paths) == ctx.pool_size and len(ctx.query("path")) == 20
    names = tiny_dataset.split("train")["filename"]
    assert [Path(p).name for p in paths[:3]] == list(names[:3])
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in paths[:5])


def test_resnet_path_fills_the_budget_with_query_classes(tiny_dataset: Dataset) -> None:
    ctx = small_context(tiny_dataset)  # task test2's query holds classes {0, 1} only
    y = np.asarray(ctx.pool("label"))
    first = run_selector(ctx, "gradmatch", 10, seed=0, params=TINY)
    assert first.size == 10 and first.metadata["natural_size"] == 10
    assert set(y[first.rows].tolist()) <= {0, 1}
    want = allocate(10, np.array([np.sum(y == 0), np.sum(y == 1)], float), np.bincount(y)[:2])
    assert first.metadata["class_counts"] == {"0": int(want[0]), "1": int(want[1])}
    assert [int(np.sum(y[first.rows] == c)) for c in (0, 1)] == want.tolist()
    assert first.metadata["weights"] == "random init" and first.metadata["epochs"] == 1
    again = run_selector(ctx, "gradmatch", 10, seed=0, params=TINY)
    assert again.rows.tolist() == first.rows.tolist()
    assert again.metadata["train_loss"] == first.metadata["train_loss"]
    other = run_selector(ctx, "gradmatch", 10, seed=1, params=TINY)
    assert other.metadata["train_loss"] != first.metadata["train_loss"]


def test_class_budgets_share_the_budget_over_query_classes_by_pool_count() -> None:
    y = np.array([0] * 50 + [1] * 30 + [2] * 20)
    assert class_budgets(10, y, np.array([0, 2]), 3).tolist() == [7, 0, 3]
    assert class_budgets(500, y, np.array([1]), 3).tolist() == [0, 30, 0]  # capped
    assert class_budgets(10, y, np.array([], int), 3).tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    ("params", "match"),
    [({"lam": 0.0}, "lam must be > 0"), ({"selection_batch": 0}, "batch")],
)
def test_bad_parameters_fail_before_training(
    tiny_dataset: Dataset, params: dict[str, float], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        run_selector(small_context(tiny_dataset), "gradmatch", 10, seed=0, params=params)


# --- weights ----------------------------------------------------------------------------------


def saved_resnet18(path: Path) -> dict[str, torch.Tensor]:
    """A randomly initialised resnet18 written to ``path`` (.safetensors or a torch file)."""
    import timm

    torch.manual_seed(3)
    state = timm.create_model("resnet18", pretrained=False, num_classes=7).state_dict()
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return state


@pytest.mark.parametrize("name", ["rn18.safetensors", "rn18.pth"])
def test_weights_load_from_a_local_checkpoint(tmp_path: Path, name: str) -> None:
    state = saved_resnet18(tmp_path / name)
    spec = train_spec(weights=str(tmp_path / name), device="cpu", normalize=True)
    model, _ = build_resnet18(3, spec)
    loaded = model.state_dict()
    assert torch.equal(loaded["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])
    assert loaded["fc.weight"].shape == (3, 512)  # the checkpoint's head is dropped


def test_selector_uses_weights_relative_to_the_weights_dir(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    """The context's weights_dir (the command passes TDC_WEIGHTS_DIR), not the environment."""
    saved_resnet18(tmp_path / "rn18.safetensors")
    params = {**TINY, "weights": "rn18.safetensors"}
    ctx = small_context(tiny_dataset, weights_dir=tmp_path)
    out = run_selector(ctx, "gradmatch", 10, seed=0, params=params)
    assert out.size == 10
    assert out.metadata["weights"] == str(tmp_path / "rn18.safetensors")
    assert out.metadata["normalize"] is True  # ImageNet-style weights get mean/std inputs


def test_missing_weights_fail_with_a_clear_message(tiny_dataset: Dataset, tmp_path: Path) -> None:
    params = {**TINY, "weights": str(tmp_path / "absent.safetensors")}
    with pytest.raises(DataNotFound, match=r"absent\.safetensors.*not found.*random init"):
        run_selector(small_context(tiny_dataset), "gradmatch", 10, seed=0, params=params)


def test_last_layer_inputs_are_the_heads_input_and_output(tiny_dataset: Dataset) -> None:
    from PIL import Image

    spec = train_spec(weights=None, device="cpu", image_size=16, num_workers=0, eval_batch_size=3)
    torch.manual_seed(0)
    model, tf = build_resnet18(3, spec)
    paths = small_context(tiny_dataset).pool("path")[:5].tolist()
    feat, logits = last_layer_inputs(EarlyNet(model, tf, 0.0), paths, spec=spec)
    assert feat.shape == (5, 512) and logits.shape == (5, 3)
    x = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), logits, atol=1e-5)
        assert torch.allclose(model.get_classifier()(feat), logits, atol=1e-5)
