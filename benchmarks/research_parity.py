"""Our selection methods against the research's, re-implemented (benchmarks/research_style.py).

    .venv/bin/python -m benchmarks.research_parity                      # demo, 0.1, test1 test3
    .venv/bin/python -m benchmarks.research_parity --fraction 0.05 --tasks test2

On the prepared demo benchmark (``tdc-harness prepare demo`` then ``tdc-harness embed demo``)
and for each method, our subset (``harness.selection.api.select``, seed 0: the defaults and
the research-faithful parameters, e.g. ``captions=label``: the research's captions name the
class) is compared with the research-style subset at the same fraction:

- **Jaccard** at equal budget. The research's threshold methods keep ``score >= sorted[n]``,
  n = int(N * fraction): n+1 rows or more (ties), so their ranking (score, ties in pool order)
  is cut at our budget. Methods without a ranking (cluster and label matching) keep every
  candidate whatever the budget: their whole set is compared. For methods random in the
  research (random_filter, match_dist, TSDS's with-replacement draw) a Jaccard only says
  both are draws: it is shown beside its chance level, and TSDS is judged by its
  probabilities (max |p_ours - p_research| and L1, our exact path against the research's
  computation with exact searches).
- **Accuracy** of the dataset's default recipe (the linear probe) trained on each subset and
  scored on the task's test split (a with-replacement draw trains on its distinct rows). For
  random methods, Jaccard and accuracy are means over five draws per side (ours: selection
  seeds 0-4; the research's: other seeds, since one seed on both sides correlates the draws).

The comparisons themselves are in ``benchmarks/parity_cases.py``. GradMatch (the research's
needs a GPU-trained ResNet-18; its OMP and gradients are tested against DeepCore's algorithm in
``tests/harness/selection/test_gradmatch.py``), no_filter, zcore, prism and tsds_entropic are
not compared.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

from benchmarks.parity_cases import CASES, DRAWS, Case, Outcome, Parity


@dataclass(frozen=True)
class Result:
    case: Case
    outcomes: dict[str, Outcome]
    accuracy: dict[str, tuple[float, float]]  # task -> (ours, research)

    @property
    def verdict(self) -> str:
        if all(o.ok for o in self.outcomes.values()):
            return self.case.faithful
        return f"differs: {self.case.cause}"


def run(p: Parity, tasks: tuple[str, ...]) -> list[Result]:
    results = []
    for case in CASES:
        outcomes = {t: case.compare(p, t) for t in tasks}
        acc = {
            t: (p.mean_accuracy(o.ours, t), p.mean_accuracy(o.research, t))
            for t, o in outcomes.items()
        }
        results.append(Result(case, outcomes, acc))
    return results


def report(results: list[Result], tasks: tuple[str, ...], p: Parity) -> None:
    head = f"{'#':>2} {'method':<15} {'variant':<31}"
    head += "".join(f" {'J ' + t:>13}" for t in tasks)
    head += "".join(f" {'acc ' + t + ' o/r':>17}" for t in tasks) + "  verdict"
    print(head)
    print("-" * len(head))
    for i, r in enumerate(results, 1):
        line = f"{i:>2} {r.case.method:<15} {r.case.variant:<31}"
        line += "".join(f" {r.outcomes[t].jaccard_cell():>13}" for t in tasks)
        line += "".join(f" {r.accuracy[t][0]:>8.3f}/{r.accuracy[t][1]:.3f}" for t in tasks)
        print(f"{line}  {r.verdict}")
    print("\nnotes (per row and task):")
    for i, r in enumerate(results, 1):
        for t in tasks:
            print(f"{i:>2} {t}: {r.outcomes[t].note}")
    faithful = sum(not r.verdict.startswith("differs") for r in results)
    differing = [r.case.cause for r in results if r.verdict.startswith("differs")]
    differ = sorted({part for cause in differing for part in cause.split("; ")})
    print(
        f"\nsummary: {faithful} of {len(results)} comparisons faithful on demo at fraction "
        f"{p.fraction} (budget {p.budget}, tasks {', '.join(tasks)}); differences: "
        + "; ".join(differ)
    )


def main() -> None:
    from harness.cli import common
    from harness.embed.sets import open_dataset
    from harness.settings import HarnessSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--tasks", nargs="+", default=["test1", "test3"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    s = HarnessSettings()
    specs = common.specs(s)
    ds = open_dataset(specs.dataset("demo"), data_root=s.data_root, embeddings=None)
    parity = Parity(ds, specs.recipe(ds.spec.default_recipe), args.fraction)
    print(
        f"demo, fraction {args.fraction}: budget {parity.budget} of {ds.pool_size}; Jaccard at "
        "equal budget (the research's threshold ranking cut at our budget; its whole set for "
        "methods without a ranking); (cX) = chance level of two independent draws; accuracy "
        f"= {parity.recipe.name} test accuracy, ours/research; random methods: means over "
        f"{DRAWS} draws per side\n"
    )
    tasks = tuple(args.tasks)
    report(run(parity, tasks), tasks, parity)


if __name__ == "__main__":
    main()
