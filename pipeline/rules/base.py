"""What a rule is: one measured value, its limits, and what it tells people.

A `Rule` reads one value from the `Measures` (and the settings it needs) and
compares it with up to two limits from `PipelineSettings`: past the `reject`
limit the image is rejected with the rule's code, past the stricter `warn`
limit it is accepted with a warning of the same code. `bound` says which side
is allowed: "min" (the value must be at least the limit) or "max" (at most). A
`symmetric` rule compares the magnitude (a head turned 50 degrees either way).
A rule whose value is measured only in some photos `applies` to those alone.
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
class Rule:
    """One check. `message` is the sentence for people when it fails, a format
    string with the fields value, limit, magnitude (|value|) and size (the 1:1
    output side); `digits` rounds the reported value."""

    name: str
    code: str
    bound: Bound
    value: Callable[[Measures, PipelineSettings], float]
    reject: Limit
    hint: str
    message: str
    warn: Limit = _no_limit
    symmetric: bool = False
    digits: int = 1
    applies: Callable[[Measures, PipelineSettings], bool] = _always

    def check(self, measures: Measures, settings: PipelineSettings) -> Check:
        """The measured check: failed with severity "reject" past the reject
        limit, "warn" past the warn limit, else passed (reporting the strictest
        limit there is)."""
        value = self.value(measures, settings)
        compared = abs(value) if self.symmetric else value
        reported = round(value, self.digits) if isinstance(value, float) else value
        size = settings.output_size
        for severity, limit in (("reject", self.reject(settings)), ("warn", self.warn(settings))):
            if limit is not None and not self._within(compared, limit):
                return self.result(reported, limit, severity, size)
        limits = [x for x in (self.warn(settings), self.reject(settings)) if x is not None]
        return self.result(reported, limits[0], "", size)

    def _within(self, value: float, limit: float) -> bool:
        return value >= limit if self.bound == "min" else value <= limit

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
            bound=self.bound,
            message=text,
        )
