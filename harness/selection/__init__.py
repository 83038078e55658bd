"""Selection baselines: every method of configs/baselines.yaml behind one registry and signature.

    from harness.selection import select, write_selection
    out = select(ds=ds, method="tsds", fraction=0.1, task="test1", seed=0)
    write_selection(out, Path("tsds.npy"))        # passes `tdc-harness validate` by construction

    from harness.selection import SELECTORS, SelectionContext, selector
    ctx = SelectionContext.from_arrays(pool={"image": x}, query={"image": q})
    out = selector("image_alignment")(ctx, 1000, rng=np.random.default_rng(0))

A selector is ``(ctx, budget, *, rng, **params) -> SelectionOutput`` (sorted unique pool row
ids plus metadata such as ``natural_size`` and ``note``). Methods, whether they need a task's
query set and their parameters live in ``configs/baselines.yaml`` (see ``config``).
"""

from harness.selection.api import run_selector, select, write_selection
from harness.selection.config import BaselinesConfig, BaselineSpec, load_baselines
from harness.selection.context import SelectionContext
from harness.selection.registry import SELECTORS, SelectionOutput, method_names, selector

__all__ = [
    "SELECTORS",
    "BaselineSpec",
    "BaselinesConfig",
    "SelectionContext",
    "SelectionOutput",
    "load_baselines",
    "method_names",
    "run_selector",
    "select",
    "selector",
    "write_selection",
]
