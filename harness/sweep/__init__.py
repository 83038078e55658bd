"""Research sweeps: datasets x methods (parameter grids) x recipes (variants) x fractions x tasks.

    experiments = load_experiments(Path("configs/experiments.yaml"), specs=specs, baselines=bl)
    sweep = plan_sweep(experiments, settings=settings, specs=specs, baselines=bl)
    sweep.counts()                         # what would run, what is done (``--dry-run``)
    run_sweep(sweep, executor=spec)        # selection array, then the training array

Selections and scores are kept once, by what determines them (harness.sweep.records,
harness.store): a re-run trains nothing that is done and retries only what failed or is
missing. ``report results`` (harness.sweep.report) turns the store into the research table.
"""

from harness.sweep.config import Experiment, load_experiments
from harness.sweep.plan import SweepPlan, plan_sweep

__all__ = ["Experiment", "SweepPlan", "load_experiments", "plan_sweep"]
