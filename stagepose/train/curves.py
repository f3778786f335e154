"""The training log (CSV, one row per ``log_every`` steps plus one per validation) and its plot (PNG).

``log.csv`` columns: step, epoch, loss, task_loss, kd_loss, w_kd, w_gt, lr, img_s, val_metric. Training
rows leave ``val_metric`` empty; validation rows fill only step, epoch and val_metric. On resume the rows
after the checkpoint's step (written after the last save, before a crash) are dropped, so the log matches
the weights. The PNG is drawn with matplotlib's object API on the Agg canvas (no display, no global
backend switch) and replaced atomically.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from stagepose.fileio import atomic_write, atomic_write_text

CSV_COLUMNS: tuple[str, ...] = (
    "step", "epoch", "loss", "task_loss", "kd_loss", "w_kd", "w_gt", "lr", "img_s", "val_metric",
)  # fmt: skip


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def read_log(path: str | Path) -> list[dict[str, float | None]]:
    """Rows of a log as dicts of floats (None for empty cells); [] if the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return []
    rows: list[dict[str, float | None]] = []
    with open(path, newline="", encoding="utf-8") as handle:
        for raw in csv.DictReader(handle):
            row: dict[str, float | None] = {}
            for key in CSV_COLUMNS:
                cell = (raw.get(key) or "").strip()
                try:
                    row[key] = float(cell) if cell else None
                except ValueError:
                    row[key] = None
            rows.append(row)
    return rows


class CsvLog:
    """Append-only CSV log that survives resumes.

    Args:
        path: the CSV file (created with a header when missing).
        keep_until_step: on resume, drop existing rows with a step greater than this; None keeps all.
    """

    def __init__(self, path: str | Path, keep_until_step: int | None = None) -> None:
        self.path = Path(path)
        if self.path.is_file() and keep_until_step is not None:
            kept = [r for r in read_log(self.path) if r["step"] is not None and r["step"] <= keep_until_step]
            self._rewrite(kept)
        elif not self.path.is_file():
            self._rewrite([])

    def _rewrite(self, rows: Sequence[Mapping[str, object]]) -> None:
        lines = [",".join(CSV_COLUMNS)]
        for row in rows:
            values = [row.get(k) for k in CSV_COLUMNS]
            # steps and epochs are whole numbers; keep them so after a float round trip
            lines.append(",".join(_fmt(int(v) if k in ("step", "epoch") and v is not None else v)  # type: ignore[call-overload]
                                  for k, v in zip(CSV_COLUMNS, values)))  # fmt: skip
        atomic_write_text(self.path, "\n".join(lines) + "\n")

    def append(self, row: Mapping[str, object]) -> None:
        """Add one row (missing columns stay empty) and flush it to disk."""
        unknown = set(row) - set(CSV_COLUMNS)
        if unknown:
            raise ValueError(f"unknown log columns {sorted(unknown)}")
        with open(self.path, "a", encoding="utf-8", newline="") as handle:
            handle.write(",".join(_fmt(row.get(k)) for k in CSV_COLUMNS) + "\n")
            handle.flush()


def plot_curves(csv_path: str | Path, png_path: str | Path, title: str = "", metric_name: str = "val") -> Path | None:
    """Draw loss terms, eq. 8 weights, learning rate and the validation metric against the step.

    Returns:
        The PNG path, or None when the log has no training rows yet.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = read_log(csv_path)
    train_rows = [r for r in rows if r["loss"] is not None]
    val_rows = [r for r in rows if r["val_metric"] is not None]
    if not train_rows:
        return None
    fig = Figure(figsize=(10, 7), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    steps = [r["step"] for r in train_rows]

    ax = axes[0][0]
    for key, label in (("loss", "loss (total)"), ("task_loss", "ground truth"), ("kd_loss", "teacher (L_ts)")):
        values = [r[key] for r in train_rows]
        if any(v is not None and v > 0 for v in values):
            ax.plot(steps, [v if v is not None else math.nan for v in values], label=label)
    ax.set_yscale("log")
    ax.set_title("losses")
    ax.set_xlabel("step")
    ax.legend(fontsize=8)

    ax = axes[0][1]
    if val_rows:
        ax.plot([r["step"] for r in val_rows], [r["val_metric"] for r in val_rows], marker="o")
    ax.set_title(f"validation {metric_name} (%)")
    ax.set_xlabel("step")

    ax = axes[1][0]
    ax.plot(steps, [r["w_kd"] for r in train_rows], label="w_kd (teacher)")
    ax.plot(steps, [r["w_gt"] for r in train_rows], label="w_gt (labels)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("eq. 8 weights")
    ax.set_xlabel("step")
    ax.legend(fontsize=8)

    ax = axes[1][1]
    ax.plot(steps, [r["lr"] for r in train_rows], label="lr")
    ax.set_title("learning rate")
    ax.set_xlabel("step")
    twin = ax.twinx()
    twin.plot(steps, [r["img_s"] for r in train_rows], color="tab:orange", alpha=0.6)
    twin.set_ylabel("images/s", color="tab:orange")

    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return atomic_write(png_path, lambda tmp: fig.savefig(tmp, format="png"))
