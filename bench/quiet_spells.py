"""A course churn label the product can compute after the fact: the user went quiet for good.

numpy only, shared by `bench/nonlinear_ceiling.py` (batch fits, scikit-learn environment) and
`bench/quiet_label_online.py` (the online model on a recorded replay).

The product's course label ("either": a cancel, or no activity at all in (t, t + H]) is not
the simulator's churn (the last activity before leaving for good falls in (t, t + H]): a
learner who watches on day t + 2 and never again is a negative, one quiet for a week who comes
back a positive. On seed 7 (2,000 x 120) only 31 % of the truly churning course rows carry a
positive label and 1.3 % of the others do (docs/model.md "Nonlinear ceiling").
"""

from __future__ import annotations

import itertools

import numpy as np

DAY = 86400.0


def quiet_spell_labels(
    feature_names: list[str],
    row_user: np.ndarray,
    row_t: np.ndarray,
    row_x: np.ndarray,
    cancels: dict[str, list[float]],
    horizon_days: float,
    quiet_days: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per daily row of one course segment: (label, left).

    label: a cancel in (t, t + H], or a quiet spell of at least `quiet_days` whose last
    activity before it lies in (t, t + H]; known at t + H + quiet_days. left: the row lies
    inside such a spell that began at or before t (the user had already gone: the simulator's
    truth does not judge it, and learning it as a negative teaches "silent for days: safe").
    The spell is read off the user's later daily rows: the last course activity (login or
    video) is the row's time minus min(days_since_login, days_since_video).
    """
    il, iv = feature_names.index("days_since_login"), feature_names.index("days_since_video")
    quiet = np.minimum(row_x[:, il], row_x[:, iv])
    last = row_t - quiet * DAY
    h = horizon_days * DAY
    label = np.zeros(len(row_t), dtype=bool)
    left = np.zeros(len(row_t), dtype=bool)
    order = np.argsort(row_user, kind="stable")
    users = row_user[order]
    bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    for a, b in itertools.pairwise(bounds):
        idx = order[a:b]
        spells = np.unique(last[idx][quiet[idx] >= quiet_days])
        starts = np.union1d(spells, cancels.get(str(row_user[idx[0]]), []))
        t = row_t[idx]
        label[idx] = np.searchsorted(starts, t + h, side="right") > np.searchsorted(
            starts, t, side="right"
        )
        if len(spells):
            k = np.clip(np.searchsorted(spells, last[idx]), 0, len(spells) - 1)
            # the same activity time, read from two rows (float days): within a minute
            left[idx] = (np.abs(spells[k] - last[idx]) < 60.0) & (last[idx] <= t)
    return label, left
