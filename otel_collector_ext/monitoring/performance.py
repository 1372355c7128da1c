"""Model performance on rows whose ground truth is known, with numpy and scipy only.

Classification: accuracy, precision, recall, f1_score (for the positive label
when the labels are binary, else macro-averaged over the labels seen), auc
(binary, from a score column, by ranks: the Mann–Whitney form of the ROC area).
Regression: mae, mse, rmse, r2. A threshold on accuracy, precision, recall, f1_score,
auc and r2 is a minimum (breached below it); on mae, mse and rmse a maximum.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import rankdata

Task = Literal["classification", "regression"]
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1_score", "auc")
REGRESSION_METRICS = ("mae", "mse", "rmse", "r2")
LOWER_IS_BETTER = frozenset({"mae", "mse", "rmse"})
#: Azure ML's and scikit-learn's other spellings, accepted in configuration.
PERFORMANCE_ALIASES = {"f1": "f1_score", "roc_auc": "auc", "mean_absolute_error": "mae",
                       "root_mean_squared_error": "rmse", "mean_squared_error": "mse",
                       "r2_score": "r2"}


def breached(metric: str, value: float, threshold: float) -> bool:
    return value > threshold if metric in LOWER_IS_BETTER else value < threshold


def infer_task(labels: pd.Series) -> Task:
    """regression for float labels that are not all whole numbers, else classification."""
    values = labels.dropna()
    if pd.api.types.is_float_dtype(values.dtype) and len(values) and not np.all(
            np.mod(values.to_numpy(dtype="float64"), 1) == 0):
        return "regression"
    return "classification"


def _positive(labels: np.ndarray, positive: Any) -> Any:
    if positive is not None:
        return positive
    seen = set(pd.unique(labels).tolist())
    if seen <= {0, 1} or seen <= {False, True}:
        return True if seen <= {False, True} and any(isinstance(v, bool) for v in seen) else 1
    return None


def _safe(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def classification(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None = None,
                   positive: Any = None) -> dict[str, float | None]:
    """The classification metrics (auc None without scores or with one class only)."""
    pos = _positive(np.concatenate([y_true, y_pred]), positive)
    accuracy = float(np.mean(y_true == y_pred))
    if pos is not None:
        classes = [pos]
    else:
        classes = sorted(set(pd.unique(np.concatenate([y_true, y_pred])).tolist()), key=str)
    precisions, recalls, f1s = [], [], []
    for c in classes:
        tp = float(np.sum((y_pred == c) & (y_true == c)))
        p, r = _safe(tp, np.sum(y_pred == c)), _safe(tp, np.sum(y_true == c))
        precisions.append(p)
        recalls.append(r)
        f1s.append(_safe(2 * p * r, p + r))
    out: dict[str, float | None] = {
        "accuracy": accuracy, "precision": float(np.mean(precisions)),
        "recall": float(np.mean(recalls)), "f1_score": float(np.mean(f1s)), "auc": None}
    if scores is not None and pos is not None:
        is_pos = y_true == pos
        n_pos, n_neg = int(is_pos.sum()), int((~is_pos).sum())
        if n_pos and n_neg:
            ranks = rankdata(scores)
            out["auc"] = float((ranks[is_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return out


def regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | None]:
    """mae, mse, rmse and r2 (r2 None when the labels do not vary)."""
    error = y_pred.astype("float64") - y_true.astype("float64")
    total = float(np.sum((y_true - y_true.mean()) ** 2))
    mse = float(np.mean(error ** 2))
    return {"mae": float(np.mean(np.abs(error))), "mse": mse, "rmse": float(np.sqrt(mse)),
            "r2": None if total == 0 else 1.0 - float(np.sum(error ** 2)) / total}
