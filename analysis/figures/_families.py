"""Fallback cell selections used when no config family is given: what each experiment looks like in the tables.

Each function takes a tidy table (passk/maxk/train_curves) and returns the rows of one experiment family.
"""

from __future__ import annotations

import pandas as pd

from analysis.figures._common import main_model, most_common

MAIN_ALGOS = ("base", "pg", "rspo_pass", "baseline")
PEER_ALGOS = ("pkpo_s", "pkpo_sloo", "passk_chen", "grpo_passk", "rs_grpo", "rspo_pass_plugin", "rspo_max",
              "rspo_max_sorted", "rspo_max_plugin", "grpo")


def _main_n(df: pd.DataFrame) -> int | None:
    k_methods = df[df["algo"].isin(["rspo_pass", "baseline"])]
    return most_common((k_methods if not k_methods.empty else df[df["algo"] != "base"])["n"])


def main_rows(df: pd.DataFrame, *, model: str | None = None, algos=MAIN_ALGOS) -> pd.DataFrame:
    """The main experiment: one model (default: the one with most cells), pass reward, constant k, the most common
    n of the k-methods, algos base/pg/rspo_pass/baseline (base at any n)."""
    if df.empty:
        return df
    model = model or main_model(df)
    sub = df[(df["model"] == model) & df["algo"].isin(algos) & (df["k_schedule"] == "constant")]
    base = sub[sub["algo"] == "base"]
    trained = sub[(sub["algo"] != "base") & (sub["reward"] == "pass")]
    n = _main_n(trained)
    return pd.concat([base, trained[trained["n"] == n]])


def nscale_rows(df: pd.DataFrame) -> pd.DataFrame:
    """RSPO (pass) at the k that has the most distinct n values, every n; main model."""
    if df.empty:
        return df
    sub = df[(df["model"] == main_model(df)) & (df["algo"] == "rspo_pass") & (df["reward"] == "pass")
             & (df["k_schedule"] == "constant")]
    if sub.empty:
        return sub
    per_k = sub.groupby("train_k")["n"].nunique()
    k = sorted(per_k.index, key=lambda kk: (-per_k[kk], kk))[0]
    return sub[sub["train_k"] == k]


def other_model_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The main selection for the model whose name mentions 7b, else the second model; empty if only one model."""
    if df.empty:
        return df
    first = main_model(df)
    others = sorted(m for m in set(df["model"]) if m != first)
    if not others:
        return df.iloc[0:0]
    pick = next((m for m in others if "7b" in str(m).lower()), others[0])
    return main_rows(df, model=pick)


def maxk_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Cells trained with the max reward (plus the base model) of the main model."""
    if df.empty:
        return df
    model = main_model(df)
    return df[(df["model"] == model) & ((df["reward"] == "max") | (df["algo"] == "base"))
              & (df["k_schedule"] == "constant")]


def grpo_rows(df: pd.DataFrame) -> pd.DataFrame:
    """base, pg and grpo of the main model (pass reward)."""
    return main_rows(df, algos=("base", "pg", "grpo"))


def peers_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Every pass-reward cell of the main model except the base model: RSPO, baseline, pg and the peers."""
    if df.empty:
        return df
    model = main_model(df)
    return df[(df["model"] == model) & (df["reward"] == "pass") & (df["algo"] != "base")]
