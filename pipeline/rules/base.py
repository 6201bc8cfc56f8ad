"""What a rule is: one measured value, its limits, and what it tells people.

A `Rule` reads one value from the `Measures` (and the settings it needs) and
compares it with its `Limits`, up to two values from `PipelineSettings`: past
the `reject` limit the image is rejected with the rule's code, past the
stricter `warn` limit it is accepted with a warning of the same code.
`at_least` and `at_most` say which side is allowed; a `symmetric` range
compares the magnitude (a head turned 50 degrees either way). A rule whose
value is measured only in some photos `applies` to those alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pipeline.record import Check
from pipeline.rules.measures import Measures
from pipeline.settings import PipelineSettings

Bound = Literal["min", "max"]
Limit = Callable[[PipelineSettings], float | None]


def _no_limit(settings: PipelineSettings) -> float | None:
    return None


def _always(measures: Measures, settings: PipelineSettings) -> bool:
    return True


@dataclass(frozen=True)
class Limits:
    """Where a rule's value may be: `bound` "min" (at least each limit) or "max"
    (at most); `reject` and `warn` read the limits from the settings, None where
    the rule has no such limit (a check that only warns has no reject limit);
    `symmetric` compares the value's magnitude."""

    bound: Bound
    reject: Limit = _no_limit
    warn: Limit = _no_limit
    symmetric: bool = False

    def within(self, value: float, limit: float) -> bool:
        """Whether `value` (already a magnitude when symmetric) is on the allowed side."""
        return value >= limit if self.bound == "min" else value <= limit


def at_least(reject: Limit = _no_limit, warn: Limit = _no_limit) -> Limits:
    """A value that must be at least the `reject` limit, and is warned under `warn`."""
    return Limits("min", reject, warn)


def at_most(reject: Limit = _no_limit, warn: Limit = _no_limit, symmetric: bool = False) -> Limits:
    """A value that must be at most the `reject` limit, and is warned over `warn`."""
    return Limits("max", reject, warn, symmetric)


@dataclass(frozen=True)
class Rule:
    """One check. `message` is the sentence for people when it fails, a format
    string with the fields value, limit, magnitude (|value|) and size (the 1:1
    output side); `digits` rounds the reported value."""

    name: str
    code: str
    value: Callable[[Measures, PipelineSettings], float]
    limits: Limits
    hint: str
    message: str
    digits: int = 1
    applies: Callable[[Measures, PipelineSettings], bool] = _always

    def check(self, measures: Measures, settings: PipelineSettings) -> Check:
        """The measured check: failed with severity "reject" past the reject
        limit, "warn" past the warn limit, else passed (reporting the strictest
        limit there is)."""
        value = self.value(measures, settings)
        compared = abs(value) if self.limits.symmetric else value
        reported = round(value, self.digits) if isinstance(value, float) else value
        size = settings.output_size
        reject, warn = self.limits.reject(settings), self.limits.warn(settings)
        for severity, limit in (("reject", reject), ("warn", warn)):
            if limit is not None and not self.limits.within(compared, limit):
                return self.result(reported, limit, severity, size)
        limits = [x for x in (warn, reject) if x is not None]
        return self.result(reported, limits[0], "", size)

    def result(self, value: float, limit: float, severity: str, size: int) -> Check:
        """This rule's check of `value` against `limit` with the given severity
        ("" for passed); `size` is the 1:1 output side, for the message."""
        text = ""
        if severity:
            text = self.message.format(value=value, limit=limit, magnitude=abs(value), size=size)
        return Check(
            name=self.name,
            passed=not severity,
            value=value,
            limit=limit,
            hint=self.hint,
            code=self.code,
            severity=severity,
            bound=self.limits.bound,
            message=text,
        )
