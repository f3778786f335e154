"""Side by side: evaluation reports of several models, as Table 2 rows with differences, and as a bar chart.

``stagepose eval --json`` writes one report per model; this module reads them back and compares them, as
the paper's Table 2 compares LSHM_2 with LSHM_t_2 (the same student without and with the teacher). The
first report is the baseline: every further row is followed by its difference to it, in percentage
points. Reports are only compared when they scored the same data with the same metric, else the
numbers would not mean the same thing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stagepose.errors import DataError
from stagepose.metrics import TABLE2_COLUMNS

COLUMNS: tuple[str, ...] = (*TABLE2_COLUMNS, "limbs")  # the Table 2 groups, then the 12-limb-joint mean


@dataclass(frozen=True)
class SavedReport:
    """The parts of one ``stagepose eval --json`` report that a comparison needs."""

    path: Path
    label: str
    metric: str
    data: str
    samples: int  # read
    scores: dict[str, float]  # COLUMNS -> percent (NaN where the data had no such joint)
    samples_scored: int | None = None  # None in reports written before eval recorded it


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def read_report(path: str | Path) -> SavedReport:
    """Read an eval report written by ``stagepose eval --json FILE``.

    Raises:
        DataError: the file is missing, not JSON, or not an eval report (naming the missing field).
    """
    path = Path(path)
    hint = "write it with: stagepose eval --checkpoint CKPT --data SPEC --json FILE"
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: eval report not found; {hint}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a JSON eval report ({exc}); {hint}") from None
    if not isinstance(payload, dict):
        raise DataError(f"{path}: not an eval report (a JSON object is expected); {hint}")
    for key in ("label", "metric", "data", "samples", "groups", "limb_mean"):
        if key not in payload:
            raise DataError(f"{path}: field '{key}' missing: not an eval report; {hint}")
    groups = payload["groups"]
    if not isinstance(groups, dict):
        raise DataError(f"{path}: field 'groups' must be an object of joint groups; {hint}")
    if not isinstance(payload["samples"], int):
        raise DataError(f"{path}: field 'samples' must be a whole number, got {payload['samples']!r}; {hint}")
    scores = {column: _number(groups.get(column)) for column in TABLE2_COLUMNS}
    scores["limbs"] = _number(payload["limb_mean"])
    scored = payload.get("samples_scored", payload.get("samples_used"))  # the older reports' name
    return SavedReport(path=path, label=str(payload["label"]), metric=str(payload["metric"]),
                       data=str(payload["data"]), samples=payload["samples"], scores=scores,
                       samples_scored=scored if isinstance(scored, int) else None)  # fmt: skip


def _samples(report: SavedReport) -> str:
    """'500 samples (371 scored)', or '500 samples' when the report does not say."""
    scored = report.samples_scored
    return f"{report.samples} samples" + (f" ({scored} scored)" if scored is not None else "")


def check_comparable(reports: Sequence[SavedReport]) -> None:
    """Raise DataError unless all reports scored the same data with the same metric."""
    if len(reports) < 2:
        raise DataError("a comparison needs at least two eval reports")
    first = reports[0]
    for other in reports[1:]:
        if (other.metric, other.data, other.samples) != (first.metric, first.data, first.samples):
            raise DataError(
                f"{other.path} ({other.metric} on {other.data}, {other.samples} samples) cannot be compared with "
                f"{first.path} ({first.metric} on {first.data}, {first.samples} samples): evaluate both on the "
                "same --data"
            )


def _cell(value: float, signed: bool = False) -> str:
    if not math.isfinite(value):
        return f"{'-':>9}"
    return f"{value:>+9.1f}" if signed else f"{value:>9.1f}"


def comparison_table(reports: Sequence[SavedReport]) -> str:
    """Table 2 columns plus the limb-joint mean, one row per report, each later row followed by its
    difference to the first (percentage points)."""
    check_comparable(reports)
    base = reports[0]
    lines = [f"{'model':<24}" + "".join(f"{c:>9}" for c in COLUMNS)]
    for index, report in enumerate(reports):
        lines.append(f"{report.label:<24}" + "".join(_cell(report.scores[c]) for c in COLUMNS))
        if index:
            lines.append(f"{'  - ' + base.label:<24}"
                         + "".join(_cell(report.scores[c] - base.scores[c], signed=True) for c in COLUMNS))  # fmt: skip
    lines.append(f"{base.metric} on {base.data}, {_samples(base)}; differences in percentage points")
    return "\n".join(lines)


MAX_LABELLED_REPORTS = 3  # values are written on the bars up to this many reports


def plot_comparison(reports: Sequence[SavedReport], png_path: str | Path) -> Path:
    """Grouped bars per joint group (and the limb-joint mean), one colour per report, values on top."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from stagepose.fileio import atomic_write

    check_comparable(reports)
    fig = Figure(figsize=(11, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    width = 0.8 / len(reports)
    for index, report in enumerate(reports):
        xs = [c + (index - (len(reports) - 1) / 2) * width for c in range(len(COLUMNS))]
        values = [report.scores[c] if math.isfinite(report.scores[c]) else 0.0 for c in COLUMNS]
        bars = ax.bar(xs, values, width, label=report.label)
        if len(reports) <= MAX_LABELLED_REPORTS:  # more bars than that: the numbers overlap; the table has them
            ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(COLUMNS)), [c if c != "limbs" else "12 limb joints" for c in COLUMNS])
    ax.set_ylabel(f"{reports[0].metric} (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{reports[0].metric} on {reports[0].data} ({_samples(reports[0])})", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return atomic_write(png_path, lambda tmp: fig.savefig(tmp, format="png"))
