"""Latency of the backends per model, input size and batch, and of the whole per-frame path on the CPU.

Every timed call goes through ``Backend.infer``, which returns finished host arrays; ``synchronize()``
is still called before the clock is read so that a backend with queued device work (torch on CUDA)
can never be timed short. Percentiles come from ``runs`` calls after ``warmup`` untimed ones.

Presets without a trained checkpoint are benchmarked with randomly initialised weights, exported on the
fly to a temporary folder: latency does not depend on the weights' values, and the report says so.

The per-frame path (CPU only) is what a camera frame costs end to end: cut N person crops out of a
1080p frame and normalise them (``transforms.warp_crop`` + ``to_model_input``), infer, and decode the
heatmaps to image pixels (``HeatmapCodec.decode`` + ``heatmap_to_image``), each stage timed.
"""

from __future__ import annotations

import functools
import logging
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stagepose import __version__
from stagepose.errors import EngineError, ModelError, StageposeError
from stagepose.runtime.backends.base import Backend, BackendConfig, default_threads
from stagepose.runtime.backends.select import open_backend
from stagepose.runtime.sidecar import Sidecar
from stagepose.sizes import ImageSize

log = logging.getLogger(__name__)

MIN_REPORTED_RUNS = 200  # what the acceptance numbers use; fewer is allowed for quick checks (tests)
FRAME_SIZE = ImageSize(1920, 1080)  # the frame the per-frame path crops from


@dataclass(frozen=True)
class BenchSpec:
    """What to benchmark.

    Attributes:
        backends: backend names ("tensorrt", "onnxruntime", "torch").
        presets: presets to benchmark with random weights (exported on the fly).
        onnx: exported models to benchmark (their sidecar gives the input size).
        input_sizes: square input sides for ``presets``.
        batches: batch sizes (1 and the show's camera count).
        runs: timed calls per case.
        warmup: untimed calls before timing.
        device: "auto", "cpu", "cuda" or "cuda:N".
        fp16: half precision on CUDA.
        cuda_graph: CUDA-graph replay (tensorrt, torch on CUDA).
        threads: CPU threads (None: `default_threads`).
        spin_wait: ONNX Runtime workers busy-wait between operators (`InferenceSettings.spin_wait`).
        pipeline_runs: timed frames of the per-frame path (CPU only; 0 turns it off).
        seed: seed of random weights and inputs.
    """

    backends: tuple[str, ...] = ("onnxruntime", "torch")
    presets: tuple[str, ...] = ()
    onnx: tuple[Path, ...] = ()
    input_sizes: tuple[int, ...] = (256,)
    batches: tuple[int, ...] = (1, 3)
    runs: int = MIN_REPORTED_RUNS
    warmup: int = 20
    device: str = "auto"
    fp16: bool = False
    cuda_graph: bool = False
    threads: int | None = None
    spin_wait: bool = False
    pipeline_runs: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.presets and not self.onnx:
            raise ValueError("give at least one preset or one exported .onnx to benchmark")
        if self.runs < 1 or self.warmup < 0 or self.pipeline_runs < 0:
            raise ValueError(f"runs must be >= 1 and warmup, pipeline_runs >= 0 (got {self.runs}, {self.warmup})")
        if not self.batches or min(self.batches) < 1:
            raise ValueError(f"batches must be >= 1, got {list(self.batches)}")
        unknown = set(self.backends) - {"tensorrt", "onnxruntime", "torch"}
        if unknown or not self.backends:
            raise ValueError(f"unknown backend(s) {sorted(unknown)}; choose from tensorrt, onnxruntime, torch")


@dataclass(frozen=True)
class BenchModel:
    """One model to benchmark: its ONNX (with sidecar and checkpoint beside it) and where it came from."""

    label: str
    onnx: Path
    sidecar: Sidecar
    weights: str  # "random-init (exported on the fly)" or "checkpoint <sha12>"


@dataclass
class BenchReport:
    """Benchmark results as plain data (`to_json`) plus raw samples in ms for plotting."""

    machine: dict[str, Any]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    pipeline: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    samples: dict[str, np.ndarray] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "settings": self.settings,
            "notes": self.notes,
            "results": self.results,
            "pipeline": self.pipeline,
            "errors": self.errors,
        }


def latency_stats(samples_ms: np.ndarray) -> dict[str, float]:
    """p50/p95/p99/mean/min/max of latencies in milliseconds (rounded to microseconds)."""
    s = np.asarray(samples_ms, dtype=np.float64)
    p50, p95, p99 = np.percentile(s, [50, 95, 99])
    return {k: round(float(v), 3) for k, v in
            {"p50": p50, "p95": p95, "p99": p99, "mean": s.mean(), "min": s.min(), "max": s.max()}.items()}  # fmt: skip


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    from stagepose.runtime.engines import detect_gpu, tensorrt_version

    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "usable_cores": default_threads(),
        "python": platform.python_version(),
        "stagepose": __version__,
    }
    gpu = detect_gpu()
    info["gpu"] = f"{gpu.name} (sm{gpu.sm})" if gpu else None
    info["tensorrt"] = tensorrt_version()
    for module in ("onnxruntime", "torch"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    return info


@contextmanager
def prepared_models(spec: BenchSpec) -> Iterator[list[BenchModel]]:
    """Exported models for ``spec``: given ONNX files, and presets exported with random weights to a
    temporary folder that is removed afterwards."""
    models = []
    for path in spec.onnx:
        path = Path(path)
        sidecar = Sidecar.read(path.with_suffix(".json"), model_path=path)
        models.append(BenchModel(path.stem, path, sidecar, f"checkpoint {sidecar.checkpoint_sha256[:12]}"))
    with ExitStack() as stack:
        if spec.presets:
            import torch

            from stagepose.models import build_model
            from stagepose.models.checkpoint import save_weights
            from stagepose.runtime.export import export_onnx

            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stagepose-bench-")))
            for preset in spec.presets:
                torch.manual_seed(spec.seed)
                weights = save_weights(tmp / f"{preset}.safetensors", build_model(preset), preset,
                                       {"note": "random init for benchmarking"})  # fmt: skip
                for side in spec.input_sizes:
                    out = tmp / f"{preset}-{side}.onnx"
                    log.info("bench: exporting %s at %dx%d with random weights", preset, side, side)
                    # the checkpoint sits next to the ONNX under the name its sidecar records (torch backend)
                    result = export_onnx(weights, out, input_size=ImageSize.square(side))
                    models.append(BenchModel(preset, out, result.sidecar, "random-init (exported on the fly)"))
        yield models


def time_calls(call: Callable[[], object], sync: Callable[[], None], runs: int, warmup: int) -> np.ndarray:
    """Latency in ms of ``runs`` calls of ``call`` after ``warmup`` untimed ones, synchronised each time."""
    for _ in range(warmup):
        call()
    sync()
    out = np.empty(runs, dtype=np.float64)
    for i in range(runs):
        start = time.perf_counter()
        call()
        sync()
        out[i] = (time.perf_counter() - start) * 1e3
    return out


class FramePath:
    """The per-frame CPU path around the model: crop + normalise, infer, decode to image pixels."""

    def __init__(self, backend: Backend, batch: int, seed: int) -> None:
        from stagepose.transforms import CROP_MARGIN, box_with_aspect, crop_affine

        rng = np.random.default_rng(seed)
        width, height = FRAME_SIZE
        # a textured 1080p frame (content does not change the cost of warping)
        self.frame = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        self.input_format = backend.input_format
        self.affines = []
        for i in range(batch):
            center = (width * (i + 1) / (batch + 1), height * 0.55)
            box = box_with_aspect(300.0 * CROP_MARGIN, 700.0 * CROP_MARGIN, backend.input_size.aspect)
            self.affines.append(crop_affine(center, box, backend.input_size))
        self.affine_stack = np.stack(self.affines)
        self.codec = backend.codec()
        self.backend = backend

    def preprocess(self) -> np.ndarray:
        return self.input_format.crop_batch([self.frame] * len(self.affines), self.affines)

    def decode(self, heatmaps: np.ndarray) -> np.ndarray:
        coords, _ = self.codec.decode(heatmaps)
        return self.codec.heatmap_to_image(coords, self.affine_stack)

    def run(self, runs: int, warmup: int) -> dict[str, np.ndarray]:
        stages: dict[str, list[float]] = {"preprocess": [], "infer": [], "decode": [], "total": []}
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            batch = self.preprocess()
            t1 = time.perf_counter()
            heatmaps = self.backend.infer(batch)
            self.backend.synchronize()
            t2 = time.perf_counter()
            self.decode(heatmaps)
            t3 = time.perf_counter()
            if i >= warmup:
                for name, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                    stages[name].append(value * 1e3)
        return {k: np.asarray(v) for k, v in stages.items()}


def run_bench(spec: BenchSpec) -> BenchReport:
    """Benchmark every (model, backend, batch) of ``spec``; backends that cannot run here are listed in
    ``errors`` with the reason instead of failing the whole run.

    Raises:
        ModelError: a given ONNX or its sidecar is missing or stale.
    """
    report = BenchReport(machine=machine_info(), settings=_settings(spec))
    if spec.runs < MIN_REPORTED_RUNS:
        report.notes.append(f"only {spec.runs} timed runs per case (< {MIN_REPORTED_RUNS}): tail percentiles are rough")
    rng = np.random.default_rng(spec.seed)
    missing = {name: reason for name in spec.backends if (reason := _unavailable(name, spec.device))}
    for name, reason in missing.items():
        for label in (*spec.presets, *(Path(p).stem for p in spec.onnx)):
            report.errors.append({"model": label, "backend": name, "error": reason})
    backends = [b for b in spec.backends if b not in missing]
    if not backends:
        return report  # nothing can run: do not spend time exporting
    with prepared_models(spec) as models:
        if any(m.weights.startswith("random") for m in models):
            report.notes.append("presets use randomly initialised weights exported on the fly to a temporary "
                                "folder (latency does not depend on weight values)")  # fmt: skip
        for model in models:
            for name in backends:
                cfg = BackendConfig(model=model.onnx, backend=name, device=spec.device, fp16=spec.fp16,  # type: ignore[arg-type]
                                    cuda_graph=spec.cuda_graph, threads=spec.threads or default_threads(),
                                    spin_wait=spec.spin_wait, max_batch=max(spec.batches))  # fmt: skip
                try:
                    backend = open_backend(cfg)
                except (EngineError, ModelError) as exc:
                    report.errors.append({"model": model.label, "input_size": list(model.sidecar.input_size),
                                          "backend": name, "error": str(exc)})  # fmt: skip
                    log.warning("bench: %s cannot run %s: %s", name, model.label, exc)
                    continue
                with backend:
                    _bench_backend(spec, model, backend, report, rng)
    return report


def _unavailable(name: str, device: str) -> str | None:
    """Why backend ``name`` certainly cannot run here (checked before any export), or None."""
    import importlib.util

    if name == "tensorrt":
        if device == "cpu":
            return "the tensorrt backend runs on CUDA only"
        if importlib.util.find_spec("tensorrt") is None:
            return "TensorRT is not installed (the `gpu` extra)"
    elif importlib.util.find_spec(name) is None:
        return f"{name} is not installed"
    return None


def _bench_backend(spec: BenchSpec, model: BenchModel, backend: Backend, report: BenchReport,
                   rng: np.random.Generator) -> None:  # fmt: skip
    w, h = backend.input_size
    base = {"model": model.label, "preset": model.sidecar.preset, "weights": model.weights,
            **{k: v for k, v in backend.describe().items() if k not in ("preset", "max_batch")}}  # fmt: skip
    for n in spec.batches:
        batch = rng.standard_normal((n, 3, h, w)).astype(np.float32)
        log.info("bench: %s %s %dx%d batch %d (%d runs)", backend.name, model.label, w, h, n, spec.runs)
        try:
            samples = time_calls(functools.partial(backend.infer, batch), backend.synchronize, spec.runs, spec.warmup)
        except StageposeError as exc:
            report.errors.append({**base, "batch": n, "error": str(exc)})
            continue
        stats = latency_stats(samples)
        report.results.append({**base, "batch": n, "runs": spec.runs, "warmup": spec.warmup,
                               "latency_ms": stats, "images_per_s": round(n * 1e3 / stats["mean"], 2)})  # fmt: skip
        report.samples[f"{backend.name} {backend.device} {model.label} {h}x{w} b{n}"] = samples
        if backend.device == "cpu" and spec.pipeline_runs:
            stages = FramePath(backend, n, spec.seed).run(spec.pipeline_runs, min(spec.warmup, 5))
            summary = {k: latency_stats(v) for k, v in stages.items()}
            report.pipeline.append({
                **base, "batch": n, "runs": spec.pipeline_runs, "frame": list(FRAME_SIZE), "stages_ms": summary,
                "model_share_p50": round(summary["infer"]["p50"] / summary["total"]["p50"], 3),
            })  # fmt: skip


def _settings(spec: BenchSpec) -> dict[str, Any]:
    return {
        "backends": list(spec.backends), "presets": list(spec.presets), "onnx": [str(p) for p in spec.onnx],
        "input_sizes": list(spec.input_sizes), "batches": list(spec.batches), "runs": spec.runs,
        "warmup": spec.warmup, "device": spec.device, "fp16": spec.fp16, "cuda_graph": spec.cuda_graph,
        "threads": spec.threads or default_threads(), "spin_wait": spec.spin_wait,
        "pipeline_runs": spec.pipeline_runs,
    }  # fmt: skip


def format_report(report: BenchReport) -> str:
    """Human-readable tables of a report."""
    lines = [f"machine: {report.machine}"]
    lines += [f"note: {n}" for n in report.notes]
    lines.append(f"{'backend':<12}{'device':<8}{'prec':<6}{'model':<14}{'input':>8}{'batch':>6}"
                 f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'img/s':>9}")  # fmt: skip
    for r in report.results:
        w, h = r["input_size"]
        lat = r["latency_ms"]
        lines.append(f"{r['backend']:<12}{r['device']:<8}{r['precision']:<6}{r['model']:<14}{f'{w}x{h}':>8}"
                     f"{r['batch']:>6}{lat['p50']:>9.2f}{lat['p95']:>9.2f}{lat['p99']:>9.2f}"
                     f"{r['images_per_s']:>9.1f}")  # fmt: skip
    if report.pipeline:
        lines.append("per-frame path on the CPU (1080p frame -> crops -> infer -> decode), p50 ms:")
        lines.append(f"{'backend':<12}{'model':<14}{'input':>8}{'batch':>6}{'prep':>8}{'infer':>8}"
                     f"{'decode':>8}{'total':>8}{'model %':>9}")  # fmt: skip
        for p in report.pipeline:
            w, h = p["input_size"]
            s = p["stages_ms"]
            lines.append(f"{p['backend']:<12}{p['model']:<14}{f'{w}x{h}':>8}{p['batch']:>6}"
                         f"{s['preprocess']['p50']:>8.2f}{s['infer']['p50']:>8.2f}{s['decode']['p50']:>8.2f}"
                         f"{s['total']['p50']:>8.2f}{100 * p['model_share_p50']:>8.0f}%")  # fmt: skip
    for e in report.errors:
        lines.append(f"skipped {e['backend']} for {e['model']}: {e['error']}")
    return "\n".join(lines)


def plot_histograms(report: BenchReport, path: str | Path) -> Path:
    """Save a latency histogram per benchmarked case to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if not report.samples:
        raise EngineError("nothing was benchmarked, so there is no histogram to plot")
    fig, ax = plt.subplots(figsize=(9, 5))
    top = max(float(np.percentile(s, 99.5)) for s in report.samples.values())
    bins = np.linspace(0.0, top * 1.05, 120)
    colors = plt.get_cmap("tab20").colors  # type: ignore[attr-defined]
    for i, (label, samples) in enumerate(report.samples.items()):
        ax.hist(np.clip(samples, None, bins[-1]), bins=list(bins), histtype="step", label=label,
                color=colors[i % len(colors)], linestyle="-" if i < len(colors) else "--")  # fmt: skip
    ax.set_xlabel("latency per batch (ms)")
    ax.set_ylabel("calls")
    ax.set_title("stagepose bench model: inference latency")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
