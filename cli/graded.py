"""`avatar-prep eval DIR --labels CSV --graded`: the quality limits on a graded set.

Each clearly accepted photo of the labelled set is degraded at four strengths
(`cli.degrade`) and run through the pipeline again. What the quality checks
promise: the mildest level is accepted, the strongest rejected, and every
level between at least warned. The degradations keep the photo's size and
its face where it is, so its framing warnings (`face.framing`: fill, headroom)
are the photo's own, not the degraded copy's, and do not count; and the
mildest copy of a photo that is warned as it is (a soft photo, say) is
accepted as promised when it says nothing the photo itself does not.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from cli.degrade import DEGRADATIONS, LEVELS
from pipeline import FaceModels, ImageError, PipelineSettings, Prepared, Rejected, prepare
from pipeline.decode import decode
from pipeline.probe import probe

# What a degradation that keeps the photo's geometry does not change.
GEOMETRY_CODES = frozenset({"face.framing"})


@dataclass(frozen=True)
class GradedOutcome:
    """One degraded photo: `outcome` is "accept", "warn" (accepted with a
    warning other than a framing one) or "reject"; `codes` the rejection code
    or those warnings' codes; `own` the undegraded photo's warning codes (no
    framing ones either)."""

    file: str
    degradation: str
    level: int
    outcome: str
    codes: tuple[str, ...]
    own: frozenset[str]


def graded(
    files: dict[str, bytes], models: FaceModels, settings: PipelineSettings
) -> list[GradedOutcome]:
    """Every accepted photo in `files` (name -> bytes) at every degradation and level.
    Photos the pipeline does not accept as they are have nothing to degrade and are skipped."""
    out = []
    for name, data in files.items():
        try:
            clean = prepare(data, models, settings)
        except (Rejected, ImageError):
            continue
        info = probe(data, settings)
        rgb = decode(data, info).rgb
        face = clean.face.box[3]
        own = frozenset(_said(clean))
        for degradation, apply in DEGRADATIONS.items():
            for level in LEVELS:
                degraded = apply(rgb, face, level)
                out.append(_run(name, degradation, level, degraded, own, models, settings))
    return out


def format_graded(outcomes: list[GradedOutcome]) -> str:
    """A table per degradation and level: how many were accepted clean, warned and
    rejected, and with which codes; then whether the promise held."""
    lines = ["graded set (clear accepts, degraded):", ""]
    by_cell: dict[tuple[str, int], list[GradedOutcome]] = {}
    for o in outcomes:
        by_cell.setdefault((o.degradation, o.level), []).append(o)
    for (degradation, level), cell in sorted(by_cell.items()):
        counts = Counter(o.outcome for o in cell)
        codes = Counter(code for o in cell for code in o.codes)
        lines.append(
            f"  {degradation:15} level {level}: accept {counts['accept']:3}  "
            f"warn {counts['warn']:3}  reject {counts['reject']:3}   "
            + ", ".join(f"{c} {n}" for c, n in codes.most_common())
        )
    broken = [o for o in outcomes if not _as_promised(o)]
    lines += ["", f"as promised: {len(outcomes) - len(broken)} of {len(outcomes)}"]
    lines += [f"  {o.file} {o.degradation} level {o.level}: {o.outcome} {o.codes}" for o in broken]
    return "\n".join(lines)


def _as_promised(o: GradedOutcome) -> bool:
    if o.level == LEVELS[0]:
        return o.outcome != "reject" and set(o.codes) <= o.own
    if o.level == LEVELS[-1]:
        return o.outcome == "reject"
    return o.outcome != "accept"


def _run(
    name: str,
    degradation: str,
    level: int,
    data: bytes,
    own: frozenset[str],
    models: FaceModels,
    settings: PipelineSettings,
) -> GradedOutcome:
    """The degraded copy `data`'s outcome; `own`: the undegraded photo's codes."""
    try:
        prepared = prepare(data, models, settings)
    except (Rejected, ImageError) as error:
        return GradedOutcome(name, degradation, level, "reject", (error.code,), own)
    codes = _said(prepared)
    return GradedOutcome(name, degradation, level, "warn" if codes else "accept", codes, own)


def _said(prepared: Prepared) -> tuple[str, ...]:
    """The codes of `prepared`'s warnings, the framing ones left out."""
    return tuple(c.code for c in prepared.warnings if c.code not in GEOMETRY_CODES)
