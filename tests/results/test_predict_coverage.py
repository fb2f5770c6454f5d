"""Coverage of ``predict``'s 95% prediction intervals (slow; ``python -m pytest -m slow``): 300 datasets
from a known sleepstudy-shaped model per model, see ``benchmarks/coverage_prediction.py`` (1,000
replicates there, figures in ``benchmarks/results/coverage_prediction.json``)."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))


@pytest.mark.slow
def test_prediction_interval_coverage():
    import coverage_prediction as cov   # benchmarks/coverage_prediction.py
    summary = cov.summarize(cov.run(nsim=300, seed=7))
    print(summary)
    for model, s in summary.items():
        # a plug-in interval with 18 groups covers about 94%; 300 x 18 targets: MC SE about 0.4%
        for target in ("prediction_known", "prediction_new", "prediction_population"):
            assert 0.925 <= s["rate"][target] <= 0.97, (model, target, s["rate"][target])
        assert 0.92 <= s["rate"]["confidence_known"] <= 0.97, (model, s["rate"]["confidence_known"])
        # one target per dataset: MC SE about 1.3%; the z interval for x'beta undercovers with 18 groups
        assert 0.88 <= s["rate"]["confidence_population"] <= 0.98, (model, s["rate"]["confidence_population"])
