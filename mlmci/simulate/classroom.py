"""The classroom simulator: student effort, test score, classroom, with known truth.

Two data-generating processes for student :math:`i` in classroom :math:`c`
(:math:`c = 1..J`, :math:`i = 1..n`), with effort :math:`X_{ic}` and test score
:math:`Y_{ic}`, and an unobserved classroom effect :math:`u_c` (say, the teacher):

.. math::

    u_c &\\sim N(0, \\sigma_u^2) \\\\
    X_{ic} &= \\mu_X + \\gamma\\, u_c + e_{ic}, \\qquad e_{ic} \\sim N(0, \\sigma_X^2) \\\\
    Y_{ic} &= \\alpha + u_c + \\beta_c X_{ic} + \\varepsilon_{ic},
        \\qquad \\varepsilon_{ic} \\sim N(0, \\sigma_Y^2)

* ``dgp="confounding"``: the classroom is a confounder. It raises both effort
  (:math:`\\gamma`, default 0.3) and scores; the slope is universal,
  :math:`\\beta_c = \\beta`. The estimand is :math:`\\beta`: OLS with classroom
  dummies recovers it; pooled OLS does not (its slope converges to
  :math:`\\beta + \\gamma\\sigma_u^2 / (\\gamma^2\\sigma_u^2 + \\sigma_X^2)`).
* ``dgp="modification"``: the classroom modifies the slope,
  :math:`\\beta_c = \\beta + v_c` with :math:`v_c \\sim N(0, \\tau^2)` independent
  of :math:`u_c`; by default no confounding (:math:`\\gamma = 0`), but ``confounding``
  can add it. The estimands are the mean slope :math:`\\beta`, the slope SD
  :math:`\\tau`, and each classroom's :math:`\\beta_c`: the varying-intercept-and-
  slope model ``score ~ effort`` with ``re_formula="~effort"`` targets them.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from mlmci.errors import ArgumentError

__all__ = ["simulate_classroom"]

_DEFAULT_GAMMA = {"confounding": 0.3, "modification": 0.0}
_DEFAULT_TAU = {"confounding": 0.0, "modification": 1.0}


def simulate_classroom(
    *,
    dgp: Literal["confounding", "modification"],
    n_classrooms: int = 40,
    n_students: int = 25,
    beta: float = 2.0,
    tau: float | None = None,
    confounding: float | None = None,
    alpha: float = 50.0,
    mean_effort: float = 5.0,
    sd_classroom: float = 5.0,
    sd_effort: float = 2.0,
    sd_score: float = 5.0,
    seed: int | np.random.Generator | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Simulate students in classrooms under one of two DAGs (see the module notes).

    Parameters
    ----------
    dgp
        ``"confounding"`` (classroom → effort and classroom → score; one slope) or
        ``"modification"`` (classroom-specific slopes).
    n_classrooms, n_students
        Number of classrooms :math:`J` (at least 2) and students per classroom
        :math:`n` (at least 1).
    beta
        The (mean) slope of score on effort, points per unit of effort.
    tau
        SD of the classroom slopes. Default 1.0 under ``"modification"``; must be 0
        (the default) under ``"confounding"``, whose slope is universal.
    confounding
        :math:`\\gamma`, how much the classroom effect raises effort. Default 0.3
        under ``"confounding"`` and 0 under ``"modification"``.
    alpha, mean_effort
        Score intercept :math:`\\alpha` and mean effort :math:`\\mu_X`.
    sd_classroom, sd_effort, sd_score
        :math:`\\sigma_u` (classroom effect on scores), :math:`\\sigma_X`
        (within-classroom effort), :math:`\\sigma_Y` (student-level noise).
    seed
        Seed or numpy Generator; the same seed gives the same data.

    Returns
    -------
    data : pandas.DataFrame
        Columns ``classroom`` (1..J), ``student`` (1..n), ``effort``, ``score``.
    truth : dict
        ``dgp``; ``beta`` (the population mean slope); ``tau`` (slope SD);
        ``confounding`` (:math:`\\gamma`); ``sd_classroom``, ``sd_effort``, ``sd_score``;
        ``mean_classroom_slope`` (the average of the drawn :math:`\\beta_c`, the
        sample's average effect); ``classroom_slopes`` and ``classroom_effects``
        (Series of :math:`\\beta_c` and :math:`u_c` indexed by classroom).

    Examples
    --------
    >>> data, truth = simulate_classroom(dgp="modification", n_classrooms=5, n_students=3, seed=1)
    >>> data.shape, data.columns.tolist()
    ((15, 4), ['classroom', 'student', 'effort', 'score'])
    >>> truth["beta"], truth["tau"], len(truth["classroom_slopes"])
    (2.0, 1.0, 5)
    """
    if dgp not in _DEFAULT_GAMMA:
        raise ArgumentError(f"dgp must be 'confounding' or 'modification', got {dgp!r}.")
    for name, value, least in (("n_classrooms", n_classrooms, 2), ("n_students", n_students, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
            raise ArgumentError(f"{name} must be an integer >= {least}, got {value!r}.")
    tau = _DEFAULT_TAU[dgp] if tau is None else float(tau)
    gamma = _DEFAULT_GAMMA[dgp] if confounding is None else float(confounding)
    if dgp == "confounding" and tau != 0:
        raise ArgumentError(
            f"dgp='confounding' has one universal slope, so tau must be 0 (got {tau}); "
            "use dgp='modification' for classroom-specific slopes."
        )
    for name, value in (
        ("tau", tau),
        ("sd_classroom", sd_classroom),
        ("sd_effort", sd_effort),
        ("sd_score", sd_score),
    ):
        if not np.isfinite(value) or value < 0:
            raise ArgumentError(f"{name} must be a finite number >= 0, got {value!r}.")

    rng = np.random.default_rng(seed)
    classrooms = np.arange(1, n_classrooms + 1)
    u = rng.normal(0.0, sd_classroom, n_classrooms)
    slopes = beta + rng.normal(0.0, tau, n_classrooms) if tau > 0 else np.full(n_classrooms, beta)
    c = np.repeat(np.arange(n_classrooms), n_students)
    effort = mean_effort + gamma * u[c] + rng.normal(0.0, sd_effort, c.size)
    score = alpha + u[c] + slopes[c] * effort + rng.normal(0.0, sd_score, c.size)

    data = pd.DataFrame(
        {
            "classroom": classrooms[c],
            "student": np.tile(np.arange(1, n_students + 1), n_classrooms),
            "effort": effort,
            "score": score,
        }
    )
    index = pd.Index(classrooms, name="classroom")
    truth: dict[str, Any] = {
        "dgp": dgp,
        "beta": float(beta),
        "tau": float(tau),
        "confounding": float(gamma),
        "sd_classroom": float(sd_classroom),
        "sd_effort": float(sd_effort),
        "sd_score": float(sd_score),
        "mean_classroom_slope": float(slopes.mean()),
        "classroom_slopes": pd.Series(slopes, index=index, name="slope"),
        "classroom_effects": pd.Series(u, index=index, name="effect"),
    }
    return data, truth
