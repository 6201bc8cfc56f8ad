"""Leave-one-out accuracy: how much of the plain figure comes from limits that
sit between two known files.

The limits of the data-chosen checks (`TUNED`) are re-chosen without the row
being scored, by the rule they were chosen with: the threshold that makes the
fewest errors between the rows labelled accept and the rows labelled with the
check's reason, in the middle of the widest such gap. The row is then judged
again with those limits, from the values its checks measured (a check never
reached, such as every check of a photo with no face, keeps its verdict). The
gap between this figure and the plain one is how much the limits are tuned to
the files.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from typing import Any

from cli.scoring import ACCEPT, Outcome, predicted_label

# Checks whose limits were chosen from the labelled photos, and the label each
# one's failures should carry. Not `proportions`: its limit is a z-score against
# the statistics of real faces (pipeline.proportions), not a cut between labels;
# those statistics recomputed without the row being scored change no verdict
# on either dev set (docs/verdict.md, "Proportions").
TUNED = {
    "yaw": "reject:not_frontal",
    "face_share": "reject:face_too_small",
    "face_resolution": "reject:face_too_small",
    "photo": "reject:not_a_photo",
    "human": "reject:non_human",
}


def leave_one_out(outcomes: list[Outcome]) -> list[Outcome]:
    """Each outcome judged again with the TUNED limits chosen without it."""
    return [_rejudged(o, _limits([x for x in outcomes if x is not o])) for o in outcomes]


def refitted(outcomes: list[Outcome]) -> list[Outcome]:
    """Each outcome judged again with the TUNED limits chosen from all of them
    (the in-sample counterpart of `leave_one_out`)."""
    limits = _limits(outcomes)
    return [_rejudged(o, limits) for o in outcomes]


def choose_limit(bound: str, passing: list[float], failing: list[float]) -> float | None:
    """The threshold between `passing` values (labelled accept) and `failing`
    ones (labelled with the check's reason) that makes the fewest errors, in
    the middle of the widest gap among the best; None without both kinds.
    `bound` "min": values below the limit fail; "max": above it."""
    if not passing or not failing:
        return None
    values = sorted({*passing, *failing})
    cuts = [(a + b) / 2 for a, b in pairwise(values)]
    cuts = [values[0] - 1.0, *cuts, values[-1] + 1.0]

    def errors(cut: float) -> int:
        if bound == "min":
            return sum(v < cut for v in passing) + sum(v >= cut for v in failing)
        return sum(v > cut for v in passing) + sum(v <= cut for v in failing)

    def gap(cut: float) -> float:
        below = max((v for v in values if v < cut), default=cut)
        above = min((v for v in values if v > cut), default=cut)
        return above - below

    best = min(errors(c) for c in cuts)
    return max((c for c in cuts if errors(c) == best), key=gap)


def _limits(outcomes: list[Outcome]) -> dict[str, float]:
    limits = {}
    for name, label in TUNED.items():
        passing, failing, bound = [], [], ""
        for o in outcomes:
            check = _check(o, name)
            if check is None or o.flagged:
                continue
            bound = check["bound"]
            value = _compared(check)
            if o.expected == ACCEPT:
                passing.append(value)
            elif o.expected == label:
                failing.append(value)
        limit = choose_limit(bound, passing, failing)
        if limit is not None:
            limits[name] = limit
    return limits


def _rejudged(outcome: Outcome, limits: dict[str, float]) -> Outcome:
    if not any(c["name"] in limits for c in outcome.checks):
        return outcome  # judged before any tuned check (no face, unreadable bytes)
    code = ""
    for check in outcome.checks:
        if check["name"] in limits and check["value"] is not None:
            if _fails(check, limits[check["name"]]):
                code = check["code"]
                break
        elif check["severity"] == "reject":
            code = check["code"]
            break
    return replace(outcome, predicted=predicted_label(code), code=code)


def _check(outcome: Outcome, name: str) -> dict[str, Any] | None:
    return next((c for c in outcome.checks if c["name"] == name), None)


def _compared(check: dict[str, Any]) -> float:
    value = float(check["value"])
    return abs(value) if check["name"] == "yaw" else value


def _fails(check: dict[str, Any], limit: float) -> bool:
    value = _compared(check)
    return value < limit if check["bound"] == "min" else value > limit
