"""How much a nonlinear batch model of the same features gains over a linear one (issue #14).

Run (scikit-learn is not a project dependency: a scratch environment with numpy and
scikit-learn, e.g. `python3 -m venv /tmp/sk && /tmp/sk/bin/pip install scikit-learn numpy`):
    /tmp/sk/bin/python bench/nonlinear_ceiling.py /tmp/s7.npz [/tmp/s11.npz ...] [--importance]
on the arrays `bench/ceiling_dump.py` writes. Per history and segment: fit on the labelled
examples made before the history's middle, AUC on the judged daily rows from it (the rows
`bench/model_grid.py` calls "from day 60"), beside the oracle's AUC on the same rows and the
replay's online model, and the same fits on the simulator's truth labels of the rows before
the middle. `--importance`: permutation importance (AUC drop) of the gradient boosting model's
features on those rows, and the linear fit's largest weights. `--quiet-spells 7,14`: instead,
the course batch fit on quiet-spell labels (bench/quiet_spells.py). docs/model.md "Nonlinear
ceiling" has the numbers.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from quiet_spells import quiet_spell_labels
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import KBinsDiscretizer, SplineTransformer

Fit = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (x, y, x_test) -> scores


def standardise(x: np.ndarray, xt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardised and clipped at +-3 with the training rows' moments, as the online model."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    return np.clip((x - mean) / std, -3, 3), np.clip((xt - mean) / std, -3, 3)


def newton_logistic(x: np.ndarray, y: np.ndarray, xt: np.ndarray) -> np.ndarray:
    """bench/model_grid.py's batch fit: clipped standardised inputs, L2 1e-3, Newton steps."""
    z, zt = standardise(x, xt)
    a = np.hstack([z, np.ones((len(z), 1))])
    w = np.zeros(a.shape[1])
    lam = 1e-3 * len(y)
    for _ in range(25):
        p = 1 / (1 + np.exp(-(a @ w)))
        grad = a.T @ (p - y) + lam * w
        hess = (a * (p * (1 - p))[:, None]).T @ a + lam * np.eye(a.shape[1])
        w -= np.linalg.solve(hess, grad)
    return np.hstack([zt, np.ones((len(zt), 1))]) @ w


def logistic(z: np.ndarray, y: np.ndarray, zt: np.ndarray, c: float = 1.0) -> np.ndarray:
    m = LogisticRegression(C=c, max_iter=2000)
    m.fit(z, y)
    return m.decision_function(zt)


def hgb(**kw: Any) -> Fit:
    def fit(x: np.ndarray, y: np.ndarray, xt: np.ndarray) -> np.ndarray:
        m = HistGradientBoostingClassifier(random_state=0, **kw)
        m.fit(x, y)
        return m.predict_proba(xt)[:, 1]

    return fit


def bins_logistic(n_bins: int) -> Fit:
    """Additive step functions: per-feature quantile bins, one-hot, logistic (a binned GAM)."""

    def fit(x: np.ndarray, y: np.ndarray, xt: np.ndarray) -> np.ndarray:
        kb = KBinsDiscretizer(n_bins=n_bins, encode="onehot", strategy="quantile")
        kb.fit(x)
        return logistic(kb.transform(x), y, kb.transform(xt), c=0.1)

    return fit


def spline_logistic(x: np.ndarray, y: np.ndarray, xt: np.ndarray) -> np.ndarray:
    """Additive smooth functions: cubic splines on the clipped standardised features."""
    z, zt = standardise(x, xt)
    m = make_pipeline(
        SplineTransformer(n_knots=6, degree=3, knots="quantile"),
        LogisticRegression(C=0.1, max_iter=2000),
    )
    m.fit(z, y)
    return m.decision_function(zt)


def pairs_logistic(top: int) -> Fit:
    """Linear terms plus pairwise products of the `top` features of the linear fit."""

    def fit(x: np.ndarray, y: np.ndarray, xt: np.ndarray) -> np.ndarray:
        z, zt = standardise(x, xt)
        base = LogisticRegression(C=1.0, max_iter=2000).fit(z, y)
        order = np.argsort(-np.abs(base.coef_[0]))[:top]
        i, j = np.triu_indices(len(order), k=1)
        a, b = order[i], order[j]
        return logistic(np.hstack([z, z[:, a] * z[:, b]]), y, np.hstack([zt, zt[:, a] * zt[:, b]]))

    return fit


def linear(x: np.ndarray, y: np.ndarray, xt: np.ndarray) -> np.ndarray:
    z, zt = standardise(x, xt)
    return logistic(z, y, zt)


FITS: dict[str, Fit] = {
    "batch logistic (model_grid, Newton)": newton_logistic,
    "logistic (sklearn, C=1)": linear,
    "logistic + quantile bins (10)": bins_logistic(10),
    "logistic + splines (additive)": spline_logistic,
    "logistic + pairs of top 10": pairs_logistic(10),
    "HGB additive (no interactions)": hgb(interaction_cst="no_interactions"),
    "HGB": hgb(),
    "HGB depth<=3 leaves 15 lr .05 x600": hgb(
        max_depth=3, max_leaf_nodes=15, learning_rate=0.05, max_iter=600
    ),
}


TRUTH_FITS = ("batch logistic (model_grid, Newton)", "HGB")


def auc(y: np.ndarray, s: np.ndarray) -> float:
    return float(roc_auc_score(y, s))


def run(path: Path, importance: bool) -> dict[str, Any]:
    d = np.load(path)
    names = list(d["feature_names"])
    seg_features = json.loads(str(d["segment_features"]))
    split, start = float(d["split"]), float(d["start"])
    out: dict[str, Any] = {"history": path.name, "split_day": (split - start) / 86400}
    for seg in sorted(set(d["ex_seg"])):
        cols = [names.index(n) for n in seg_features.get(seg, names)]
        tr = (d["ex_seg"] == seg) & (d["ex_t"] < split)
        te = (d["row_seg"] == seg) & (d["row_t"] >= split) & d["row_judged"]
        x, y = d["ex_x"][tr][:, cols], d["ex_y"][tr].astype(int)
        xt, yt = d["row_x"][te][:, cols], d["row_label"][te]
        oracle = d["row_oracle"][te]
        has = ~np.isnan(oracle)
        r: dict[str, Any] = {
            "train_rows": int(tr.sum()),
            "train_positives": int(y.sum()),
            "test_rows": int(te.sum()),
            "test_positives": int(yt.sum()),
            "oracle": auc(yt[has], oracle[has]),
            "oracle_rows": int(has.sum()),
            "online (replay)": auc(yt, d["row_score"][te]),
        }
        for name, fit in FITS.items():
            began = time.perf_counter()
            r[name] = auc(yt, fit(x, y, xt))
            print(
                f"{path.name} {seg:7} {name:40} {r[name]:.3f} {time.perf_counter() - began:5.0f} s",
                flush=True,
            )
        # The same fits on the simulator's truth labels of the judged rows before the middle:
        # what the product's own labels (course: no activity in the next 7 days) cost.
        tt = (d["row_seg"] == seg) & (d["row_t"] < split) & d["row_judged"]
        xo, yo = d["row_x"][tt][:, cols], d["row_label"][tt].astype(int)
        for name in TRUTH_FITS:
            key = f"{name}, truth labels"
            r[key] = auc(yt, FITS[name](xo, yo, xt))
            print(f"{path.name} {seg:7} {key:40} {r[key]:.3f}", flush=True)
        if importance:
            m = HistGradientBoostingClassifier(random_state=0).fit(x, y)
            pi = permutation_importance(
                m, xt, yt, scoring="roc_auc", n_repeats=3, random_state=0, n_jobs=1
            )
            order = np.argsort(-pi.importances_mean)[:15]
            r["hgb_importance"] = [(names[cols[k]], float(pi.importances_mean[k])) for k in order]
            z, _ = standardise(x, xt)
            lin = LogisticRegression(C=1.0, max_iter=2000).fit(z, y)
            wo = np.argsort(-np.abs(lin.coef_[0]))[:15]
            r["linear_top_weights"] = [(names[cols[k]], float(lin.coef_[0][k])) for k in wo]
        out[seg] = r
    return out


def quiet_label_fits(path: Path, spells: list[float]) -> dict[str, float]:
    """Course: the batch logistic fit on quiet-spell labels of the rows before the middle."""
    d = np.load(path)
    names = list(d["feature_names"])
    cols = [names.index(n) for n in json.loads(str(d["segment_features"]))["course"]]
    split = float(d["split"])
    seg = d["row_seg"] == "course"
    xs, ts = d["row_x"][seg][:, cols], d["row_t"][seg]
    te = (d["row_t"][seg] >= split) & d["row_judged"][seg]
    yt = d["row_label"][seg][te]
    tr = ts < split
    cancels: dict[str, list[float]] = {}
    for u, k, t in zip(d["life_user"], d["life_kind"], d["life_t"], strict=True):
        if k == "cancel":
            cancels.setdefault(str(u), []).append(float(t))
    out = {}
    for g in spells:
        y, gone = quiet_spell_labels(
            names, d["row_user"][seg], ts, d["row_x"][seg], cancels, 7.0, g
        )
        truth = d["row_label"][seg][tr & d["row_judged"][seg]]
        agree = y[tr & d["row_judged"][seg]]
        keep = tr & ~gone
        a = auc(yt, newton_logistic(xs[tr], y[tr].astype(int), xs[te]))
        b = auc(yt, newton_logistic(xs[keep], y[keep].astype(int), xs[te]))
        out[f"quiet >= {g:g} d"], out[f"quiet >= {g:g} d, left rows dropped"] = a, b
        print(
            f"{path.name} course quiet >= {g:g} d: AUC {a:.3f}, left rows dropped {b:.3f} "
            f"(dropped {(tr & gone).sum():,} of {tr.sum():,}, not judged "
            f"{(tr & ~d['row_judged'][seg]).sum():,}), positives {y[tr].mean():.4f}, "
            f"P(label | truth) {agree[truth].mean():.3f}, "
            f"P(label | not truth) {agree[~truth].mean():.4f}",
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("npz", type=Path, nargs="+")
    parser.add_argument("--importance", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--quiet-spells", default="", help="course only: days of quiet, e.g. 3,7,14 (needs life_*)"
    )
    args = parser.parse_args()
    if args.quiet_spells:
        spells = [float(v) for v in args.quiet_spells.split(",")]
        for p in args.npz:
            quiet_label_fits(p, spells)
        return
    warnings.filterwarnings("ignore", category=UserWarning)  # KBins: constant features
    results = [run(p, args.importance) for p in args.npz]
    for res in results:
        segs = [k for k in res if isinstance(res[k], dict)]
        print(f"\n{res['history']}: fit before day {res['split_day']:.0f}, AUC on rows from it")
        print(f"{'':40}" + "".join(f"{s:>9}" for s in segs))
        for key in [
            "oracle",
            "online (replay)",
            *FITS,
            *(f"{n}, truth labels" for n in TRUTH_FITS),
        ]:
            print(f"{key:40}" + "".join(f"{res[s][key]:9.3f}" for s in segs))
        for s in segs:
            print(
                f"{s}: train {res[s]['train_rows']:,} ({res[s]['train_positives']:,} pos), "
                f"test {res[s]['test_rows']:,} ({res[s]['test_positives']:,} pos)"
            )
            if "hgb_importance" in res[s]:
                print(
                    "  HGB permutation importance:",
                    ", ".join(f"{n} {v:.3f}" for n, v in res[s]["hgb_importance"]),
                )
                print(
                    "  linear top weights:",
                    ", ".join(f"{n} {v:+.2f}" for n, v in res[s]["linear_top_weights"]),
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
