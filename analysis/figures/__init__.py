"""Every figure of the RSPO paper (1-12) and the ones it lacks, one script per figure, one style, one colour map.

    from analysis.figures import FIGURES, run_figure, FigureContext
    FIGURES["fig06_passk_main"]  # {"function", "needs": "analytic"|"tables"|"bandit", "caption", "outputs", ...}

CLI: ``python -m analysis.figures --tables DIR --cells results/cells.json --out DIR [--bandit JSON] [--only NAME ...]``.
"""

from analysis.figures.context import FigureContext  # noqa: F401
from analysis.figures.registry import FIGURES, STYLE_PATH, run_figure  # noqa: F401

# importing a script registers its figure; the order here is the report's order
from analysis.figures import (  # noqa: F401,E402
    fig01_risk_preference,
    fig02_hitchhiking_weights,
    fig03_max_probability,
    fig04_passk_weight,
    fig05_maxk_gaussian_weight,
    fig06_passk_main,
    fig07_entropy,
    fig08_nscale,
    fig09_7b,
    fig10_contamination,
    fig11_maxk,
    fig12_grpo,
    fig13_peers_matched_k,
    fig14_estimator_variance,
    fig15_train_curves,
    fig16_policy_lab,
)

__all__ = ["FIGURES", "FigureContext", "run_figure", "STYLE_PATH"]
