"""Statistics over seeds: seed means with 95% intervals, smoothed per-step curves, paired differences.

Every interval a figure or table shows is computed here (the figure scripts only draw):

    seed_mean(df, by)             mean over seeds of ``value`` per group, with a t-interval across seeds and/or the
                                  mean of the per-seed bootstrap intervals of analysis.metrics
    method_curves(rows, ci)       seed_mean per (method, benchmark, k): the points and bands of a Pass@k / Max@k figure
    seed_curve(g, column)         per training step: mean over seeds of each seed's smoothed curve, t-band across seeds
    t_interval(x)                 mean +- t_{0.975, S-1} sd / sqrt(S) of S numbers (paired differences over seeds)
    detectable_effect(sd, S)      the true mean the verdict "interval above 0" finds with 80% power (noncentral t)
    equivalence_power / _bound    P(the interval lies in [-margin, margin]) at a true difference; the largest
                                  difference still shown alike with 80% power (claims C10)

A *method* is a cell without its seed: METHOD_KEYS = (model, algo, train_k, k_schedule, n, reward).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd

CI_CHOICES = ("auto", "metrics", "seeds")
METHOD_KEYS = ["model", "algo", "train_k", "k_schedule", "n", "reward"]
CURVE_COLUMNS = METHOD_KEYS + ["benchmark", "k", "value", "ci_low", "ci_high", "n_seeds", "ci_method"]


def constant_k(table: pd.DataFrame) -> pd.Series:
    """Boolean mask of the rows of a tidy table (passk / maxk / train_curves) whose cell trains at a constant k:
    ``k_schedule`` "constant" or missing (tables written before the column existed). Claims and paired differences
    judge constant-k cells only; k-annealed cells are drawn in the figures."""
    return table["k_schedule"].fillna("constant") == "constant"


def t_quantile(df) -> np.ndarray | float:
    """0.975 quantile of Student's t with df degrees of freedom (scalar or array; df >= 1)."""
    from scipy.stats import t as student_t

    return student_t.ppf(0.975, df)


def t_interval(x) -> tuple[float, float, float, int]:
    """(mean, low, high, S) of the 95% t-interval of the mean of S numbers (NaN entries dropped).

    low/high = mean -+ t_{0.975, S-1} * sd / sqrt(S) with the sample sd (ddof 1); NaN bounds for S < 2, NaN mean for
    S = 0. With S >= 2 identical values the interval is the point (sd 0).
    """
    v = np.asarray(x, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    s = int(v.size)
    if s == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(v.mean())
    if s < 2:
        return mean, float("nan"), float("nan"), s
    h = float(t_quantile(s - 1)) * float(v.std(ddof=1)) / np.sqrt(s)
    return mean, mean - h, mean + h, s


POWER = 0.8  # the power of every detectable effect (docs/claims.md, "Power")


@lru_cache(maxsize=None)
def _noncentrality(s: int, power: float) -> float:
    """lambda with P(T' > t_{0.975, s-1}) = power, T' noncentral t (s - 1 df, noncentrality lambda)."""
    from scipy.optimize import brentq
    from scipy.stats import nct

    df = s - 1
    crit = float(t_quantile(df))
    f = lambda lam: float(nct.sf(crit, df, lam)) - power  # noqa: E731 (increasing in lam)
    hi = 8.0
    while f(hi) < 0:
        hi *= 2
    return float(brentq(f, 0.0, hi, xtol=1e-12))


def detectable_effect(sd: float, s: int, *, power: float = POWER) -> float:
    """Smallest true mean D > 0 at which S seeds of spread sd give a 95% t-interval above 0 with probability
    ``power``: lambda * sd / sqrt(S), lambda solving P(T' > t_{0.975, S-1}) = power for the noncentral t T' (S - 1 df,
    noncentrality D sqrt(S) / sd). The exact small-sample answer, not the normal approximation. NaN for S < 2 or a
    non-finite sd; 0 for sd 0."""
    if s < 2 or not math.isfinite(sd):
        return float("nan")
    return _noncentrality(int(s), float(power)) * float(sd) / math.sqrt(s)


def equivalence_power(diff: float, sd: float, s: int, margin: float) -> float:
    """P(the 95% t-interval of S draws from N(diff, sd^2) lies inside [-margin, margin]), exactly.

    With mean m ~ N(diff, sd^2/S), sample sd q, h = t_{0.975, S-1} q / sqrt(S): P(-margin + h <= m <= margin - h),
    averaged over q ((S - 1) q^2 / sd^2 ~ chi^2_{S-1}, independent of m), integrated over the chi^2 quantile so that
    the density's pole at 0 (S = 2) does no harm. NaN for S < 2; sd 0: 1 inside the margin, else 0."""
    from scipy.integrate import quad
    from scipy.stats import chi2, norm

    if s < 2 or not math.isfinite(sd):
        return float("nan")
    if sd == 0:
        return float(abs(diff) <= margin)
    df, crit, se = s - 1, float(t_quantile(s - 1)), sd / math.sqrt(s)
    p_max = float(chi2.cdf(df * (margin / (crit * se)) ** 2, df))  # beyond it h > margin: never inside

    def inside(p: float) -> float:
        h = crit * se * math.sqrt(float(chi2.ppf(p, df)) / df)
        return max(0.0, float(norm.cdf((margin - h - diff) / se) - norm.cdf((-margin + h - diff) / se)))

    return float(quad(inside, 0.0, p_max, limit=200, epsabs=1e-10)[0]) if p_max > 0 else 0.0


def equivalence_bound(sd: float, s: int, margin: float, *, power: float = POWER) -> float:
    """The largest |true difference| <= margin at which the interval still lies inside [-margin, margin] with
    probability ``power`` (equivalence_power falls as |diff| grows); NaN where even diff 0 falls short, or S < 2."""
    from scipy.optimize import brentq

    at0 = equivalence_power(0.0, sd, s, margin)
    if not at0 >= power:  # also NaN
        return float("nan")
    if sd == 0:
        return float(margin)
    return float(brentq(lambda d: equivalence_power(d, sd, s, margin) - power, 0.0, margin, xtol=1e-10))


def seed_mean(df: pd.DataFrame, by: list[str], *, ci: str = "auto",
              bounds: tuple[float, float] | None = (0.0, 1.0)) -> pd.DataFrame:
    """Mean over seeds of ``value`` with a 95% interval, one row per group of ``by``.

    ci = "metrics": mean of the per-seed bootstrap bounds (ci_low, ci_high) from analysis.metrics;
    ci = "seeds":   t-interval across seeds, mean +- t_{0.975, S-1} * sd / sqrt(S) (NaN for S = 1);
    ci = "auto":    "seeds" widened to at least the "metrics" interval when S >= 2, else "metrics".
    The interval is clipped to ``bounds`` (pass@k and max@k lie in [0, 1]; a t-interval over few seeds may not);
    None leaves it as computed. Output columns: by + [value, ci_low, ci_high, n_seeds, ci_method].
    """
    if ci not in CI_CHOICES:
        raise ValueError(f"ci={ci!r}; expected 'auto', 'metrics' or 'seeds'")
    cols = list(by) + ["value", "ci_low", "ci_high", "n_seeds", "ci_method"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    d = df.assign(_lo=pd.to_numeric(df.get("ci_low", np.nan), errors="coerce"),
                  _hi=pd.to_numeric(df.get("ci_high", np.nan), errors="coerce"),
                  _v=pd.to_numeric(df["value"], errors="coerce"))
    g = d.groupby(list(by), sort=True, dropna=False).agg(value=("_v", "mean"), sd=("_v", "std"), s=("_v", "size"),
                                                         m_lo=("_lo", "mean"), m_hi=("_hi", "mean")).reset_index()
    s_ = g["s"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        tq = np.where(s_ >= 2, t_quantile(np.maximum(s_ - 1, 1)), np.nan)
        h = tq * g["sd"].to_numpy(float) / np.sqrt(s_)
    mean = g["value"].to_numpy(float)
    s_lo, s_hi = mean - h, mean + h
    m_lo, m_hi = g["m_lo"].to_numpy(float), g["m_hi"].to_numpy(float)
    if ci == "metrics":
        lo, hi = m_lo, m_hi
        method = np.full(len(g), "bootstrap (metrics)", dtype=object)
    elif ci == "seeds":
        lo, hi = s_lo, s_hi
        method = np.full(len(g), "t across seeds", dtype=object)
    else:  # auto: the wider of the two where there are several seeds, else the bootstrap
        multi = s_ >= 2
        lo = np.where(multi, np.fmin(s_lo, m_lo), m_lo)
        hi = np.where(multi, np.fmax(s_hi, m_hi), m_hi)
        method = np.where(multi, "max(t across seeds, bootstrap)", "bootstrap (metrics)").astype(object)
    if bounds is not None:
        lo, hi = np.clip(lo, *bounds), np.clip(hi, *bounds)
    out = g[list(by)].copy()
    out["value"], out["ci_low"], out["ci_high"] = mean, lo, hi
    out["n_seeds"], out["ci_method"] = s_.astype(int), method
    return out[cols]


def method_curves(rows: pd.DataFrame, ci: str) -> pd.DataFrame:
    """seed_mean of ``value`` per (METHOD_KEYS, benchmark, k): the points and 95% bands of a Pass@k / Max@k figure.

    rows: tidy passk/maxk rows (analysis.aggregate). Columns CURVE_COLUMNS; an empty input gives an empty frame.
    """
    if rows.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return seed_mean(rows, METHOD_KEYS + ["benchmark", "k"], ci=ci)


def smooth_window(n_steps: int) -> int:
    """Centred rolling-mean window for a curve of n_steps points: ~1/25 of the run, at least 1 (no smoothing)."""
    return max(1, int(n_steps) // 25)


def seed_curve(g: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per step: mean over seeds of `column` and a 95% t-interval across seeds (NaN with one seed).

    g: train_curves rows of one method (columns seed, step, column). Each seed's curve is first smoothed with a
    centred rolling mean of smooth_window(steps) points. Columns: step, mean, lo, hi, n_seeds, window.
    """
    per_seed = []
    window = smooth_window(g["step"].nunique())
    for _, s in g.groupby("seed"):
        s = s.sort_values("step")
        v = pd.to_numeric(s[column], errors="coerce").rolling(window, center=True, min_periods=1).mean()
        per_seed.append(pd.Series(v.to_numpy(), index=s["step"].to_numpy()))
    wide = pd.concat(per_seed, axis=1)
    mean = wide.mean(axis=1)
    cnt = wide.count(axis=1)
    sd = wide.std(axis=1, ddof=1)
    c_ = cnt.to_numpy()
    tq = np.where(c_ >= 2, t_quantile(np.maximum(c_ - 1, 1)), np.nan)
    h = tq * sd.to_numpy(float) / np.sqrt(c_)
    return pd.DataFrame({"step": wide.index.to_numpy(), "mean": mean.to_numpy(), "lo": mean.to_numpy() - h,
                         "hi": mean.to_numpy() + h, "n_seeds": c_, "window": window})
