"""What the GPU recipe leaves behind: one ``summary.json`` and one ``summary.md``.

The summary is plain data (``RecipeSummary``, written as JSON) so that a session on a GPU machine can
report the numbers without reading logs: for every run its time budget, measured speed, planned and done
steps and PCK; the KD gain of each student (taught minus untaught, same steps); the export; the latency;
where the time went. The Markdown holds the same as tables, plus the eval-compare tables.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stagepose.fileio import atomic_write_text
from stagepose.train.compare import COLUMNS


@dataclass(frozen=True)
class StageResult:
    """One training run of the recipe, and its evaluation.

    Attributes:
        name: the run's name (its config ``training/gpu/<name>.yaml`` and folder ``<out>/<name>``).
        label: its row in the tables (the paper's name, e.g. ``LSHM_t4``).
        preset, teacher: the network trained and its teacher preset (None for the others).
        budget_s: the time it was given; wall_s: the time it took (setup, steps and saving).
        steps: optimiser steps done; planned_steps: the I of its schedule (and eq. 8).
        rate_steps_s: the measured speed its plan came from (None: its steps were given).
        stopped_at_deadline: the budget ended it before ``planned_steps``.
        img_s: mean training images/s.
        weights: the trained weights (``best.safetensors``; no validation in training, so the last).
        scores: eval groups and ``limbs`` (percent), from ``eval.json`` next to the weights.
        metric: e.g. ``PCK@0.2``.
    """

    name: str
    label: str
    preset: str
    teacher: str | None
    budget_s: float
    wall_s: float
    steps: int
    planned_steps: int | None
    rate_steps_s: float | None
    stopped_at_deadline: bool
    img_s: float
    weights: Path
    scores: dict[str, float] = field(default_factory=dict)
    metric: str = ""


@dataclass(frozen=True)
class RecipeSummary:
    """Everything ``summary.json`` holds (see ``to_json``)."""

    settings: dict[str, Any]
    machine: dict[str, Any]
    budget_s: float
    wall_s: float
    stages: tuple[StageResult, ...]
    eval_data: str
    kd_gain: dict[str, dict[str, Any]]
    comparisons: dict[str, str]
    chart: Path | None
    export: dict[str, Any] | None
    latency: dict[str, Any]
    timings_s: dict[str, float]
    notes: tuple[str, ...] = ()

    @property
    def within_budget(self) -> bool:
        return self.wall_s <= self.budget_s

    def to_json(self) -> dict[str, Any]:
        return _clean({
            "recipe": "gpu",
            "settings": self.settings,
            "machine": self.machine,
            "budget_s": self.budget_s,
            "wall_s": self.wall_s,
            "within_budget": self.within_budget,
            "eval_data": self.eval_data,
            "stages": [_stage_json(s) for s in self.stages],
            "kd_gain": self.kd_gain,
            "comparisons": self.comparisons,
            "chart": str(self.chart) if self.chart else None,
            "export": self.export,
            "latency": self.latency,
            "timings_s": self.timings_s,
            "notes": list(self.notes),
        })  # fmt: skip


def _stage_json(stage: StageResult) -> dict[str, Any]:
    return {
        "name": stage.name, "label": stage.label, "preset": stage.preset, "teacher": stage.teacher,
        "budget_s": stage.budget_s, "wall_s": stage.wall_s, "steps": stage.steps,
        "planned_steps": stage.planned_steps, "rate_steps_s": stage.rate_steps_s,
        "stopped_at_deadline": stage.stopped_at_deadline, "img_s": stage.img_s, "weights": str(stage.weights),
        "metric": stage.metric, "scores": stage.scores,
    }  # fmt: skip


def _clean(value: Any) -> Any:
    """JSON-safe: floats rounded to 3 places, NaN and infinities as null."""
    if isinstance(value, float):
        return round(value, 3) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def summary_markdown(summary: RecipeSummary) -> str:
    """The summary as Markdown tables (runs, KD gain, eval-compare, export, latency, time)."""
    metric = next((s.metric for s in summary.stages if s.metric), "PCK")
    lines = [
        "# GPU recipe summary", "",
        f"Machine: {summary.machine.get('gpu') or 'no GPU'} (torch {summary.machine.get('torch')}, CUDA "
        f"{summary.machine.get('cuda')}, {summary.machine.get('cpus')} CPUs). Budget {summary.budget_s:.0f} s, "
        f"took {summary.wall_s:.0f} s ({'within' if summary.within_budget else 'OVER'} budget). "
        f"{metric} on {summary.eval_data}.", "",
        "| run | preset | teacher | budget s | wall s | steps / planned | steps/s | img/s | "
        + " | ".join(COLUMNS) + " |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(COLUMNS),
    ]  # fmt: skip
    for s in summary.stages:
        rate = f"{s.rate_steps_s:.2f}" if s.rate_steps_s else "(given)"
        stop = " (deadline)" if s.stopped_at_deadline else ""
        lines.append(f"| {s.label} (`{s.name}`) | {s.preset} | {s.teacher or '-'} | {s.budget_s:.0f} | "
                     f"{s.wall_s:.0f} | {s.steps} / {s.planned_steps}{stop} | {rate} | {s.img_s:.0f} | "
                     + " | ".join(_pct(s.scores.get(c)) for c in COLUMNS) + " |")  # fmt: skip
    lines += ["", "**KD gain** (taught minus untaught, same steps, percentage points):", "",
              "| student | mean | limbs | same steps |", "|---|---|---|---|"]  # fmt: skip
    for preset, gain in summary.kd_gain.items():
        lines.append(f"| {preset} | {_pct(gain.get('mean'), True)} | {_pct(gain.get('limbs'), True)} | "
                     f"{'yes' if gain.get('same_steps') else 'NO'} |")  # fmt: skip
    for preset, table in summary.comparisons.items():
        lines += ["", f"`stagepose eval-compare`, {preset}:", "", "```", table, "```"]
    if summary.chart:
        lines += ["", f"![{metric} of the five runs]({summary.chart.name})"]
    lines += ["", "**Export**: " + (
        f"`{summary.export['onnx']}` ({summary.export['preset']}, {summary.export['input_size'][0]}x"
        f"{summary.export['input_size'][1]}, from `{summary.export['run']}`; sidecar `{summary.export['sidecar']}`)"
        if summary.export else "none")]  # fmt: skip
    lines += ["", "**Latency** (PyTorch, batch 1): " + _latency_md(summary.latency)]
    lines += ["", "**Time** (s): " + ", ".join(f"{k} {v:.0f}" for k, v in summary.timings_s.items())]
    if summary.notes:
        lines += ["", *(f"- {note}" for note in summary.notes)]
    return "\n".join(lines).rstrip() + "\n"


def _latency_md(latency: dict[str, Any]) -> str:
    if "skipped" in latency:
        return f"not measured: {latency['skipped']}."
    rows = ["", "", "| student | case | p50 ms | p95 ms | p99 ms | img/s |", "|---|---|---|---|---|---|"]
    for preset, entry in latency.get("students", {}).items():
        for key, stats in entry.get("latency_ms", {}).items():
            rows.append(f"| {preset} | {key} | {stats['p50']:.2f} | {stats['p95']:.2f} | {stats['p99']:.2f} | "
                        f"{stats['images_per_s']:.0f} |")  # fmt: skip
        parity = entry.get("fp16_vs_fp32")
        if parity:
            rows.append(f"| {preset} | FP16 vs FP32 joints, clear peaks: max "
                        f"{parity['clear_max_diff_input_px']:.2f} input px | | | | |")  # fmt: skip
    return f"{latency.get('gpu', '')}" + "\n".join(rows)


def write_summary(summary: RecipeSummary, out_dir: Path) -> tuple[Path, Path]:
    """Write ``summary.json`` and ``summary.md`` to ``out_dir`` (atomically); returns both paths."""
    json_path, md_path = out_dir / "summary.json", out_dir / "summary.md"
    atomic_write_text(json_path, json.dumps(summary.to_json(), indent=2) + "\n")
    atomic_write_text(md_path, summary_markdown(summary))
    return json_path, md_path
