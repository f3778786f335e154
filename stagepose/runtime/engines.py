"""TensorRT engine files: GPU detection, file keys, the manifest and start-up selection.

A serialized TensorRT engine runs only on the GPU model (compute capability) and TensorRT version it was
built with, for the ONNX, precision and input size it was built from. Every one of those goes into the
file name, so an engine built for another machine is never loaded by accident:

    {onnx_sha12}_trt{version}_sm{cc}_{gpu-slug}_{fp16|fp32}_{H}x{W}.engine

``engines/manifest.json`` lists what was built (key fields, builder settings, build time, engine hash)
for ``stagepose engine list``. Nothing here imports TensorRT or torch.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stagepose.config import Source, from_dict, to_dict
from stagepose.errors import ConfigError, EngineError
from stagepose.fileio import atomic_write_text
from stagepose.hashing import sha256_file

log = logging.getLogger(__name__)

Precision = Literal["fp16", "fp32"]
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
ENGINE_SUFFIX = ".engine"

_KEY_RE = re.compile(
    r"^(?P<sha>[0-9a-f]{12})_trt(?P<trt>[0-9][0-9.]*)_sm(?P<sm>[0-9]+)_(?P<slug>[a-z0-9-]+)"
    r"_(?P<precision>fp16|fp32)_(?P<h>[0-9]+)x(?P<w>[0-9]+)\.engine$"
)


# ---------------------------------------------------------------------------------------------- GPU


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA GPU as the engine key sees it.

    Attributes:
        name: marketing name, e.g. "NVIDIA GeForce RTX 4090".
        compute_capability: "major.minor", e.g. "8.9".
        index: CUDA device index the runtime uses.
    """

    name: str
    compute_capability: str
    index: int = 0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9]+\.[0-9]+", self.compute_capability):
            raise ValueError(f"compute capability must look like '8.6', got {self.compute_capability!r}")

    @property
    def sm(self) -> str:
        """Compute capability without the dot, as in ``sm86``."""
        return self.compute_capability.replace(".", "")

    @property
    def slug(self) -> str:
        return gpu_slug(self.name)

    def describe(self) -> str:
        return f"{self.name} (sm{self.sm})"


def gpu_slug(name: str) -> str:
    """File-name-safe GPU name: "NVIDIA GeForce RTX 4090" -> "nvidia-geforce-rtx-4090"."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "unknown-gpu"


def parse_nvidia_smi(text: str) -> list[GpuInfo]:
    """GPUs from ``nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader`` output.

    Lines that do not parse (e.g. "[N/A]" on old drivers without ``compute_cap``) are skipped.
    """
    gpus: list[GpuInfo] = []
    for line in text.splitlines():
        name, sep, cap = line.rpartition(",")
        name, cap = name.strip(), cap.strip()
        if sep and name and re.fullmatch(r"[0-9]+\.[0-9]+", cap):
            gpus.append(GpuInfo(name=name, compute_capability=cap, index=len(gpus)))
    return gpus


def _visible_index(index: int) -> int:
    """Physical GPU number behind CUDA device ``index`` when CUDA_VISIBLE_DEVICES lists numbers."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return index
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    if not ids:
        return -1  # empty string hides every GPU
    if index < len(ids) and ids[index].isdigit():
        return int(ids[index])
    return -2  # UUIDs or MIG names: nvidia-smi's numbering does not apply


def detect_gpu(index: int = 0) -> GpuInfo | None:
    """The CUDA GPU at device ``index``, or None when there is none (a clean "no GPU" result).

    Asks ``nvidia-smi`` first (no CUDA context, fast), then torch.cuda when torch sees a GPU that
    nvidia-smi could not name (e.g. CUDA_VISIBLE_DEVICES given as UUIDs).
    """
    physical = _visible_index(index)
    if physical == -1:
        return None
    exe = shutil.which("nvidia-smi")
    if exe and physical >= 0:
        try:
            result = subprocess.run(
                [exe, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.debug("nvidia-smi failed: %s", exc)
        else:
            gpus = parse_nvidia_smi(result.stdout) if result.returncode == 0 else []
            if physical < len(gpus):
                gpu = gpus[physical]
                return GpuInfo(gpu.name, gpu.compute_capability, index)
            if result.returncode == 0 and not gpus:
                return None
    return _torch_gpu(index)


def _torch_gpu(index: int) -> GpuInfo | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        return None
    major, minor = torch.cuda.get_device_capability(index)
    return GpuInfo(torch.cuda.get_device_name(index), f"{major}.{minor}", index)


def tensorrt_version() -> str | None:
    """The importable TensorRT's version ("10.13.0.35"), or None when it cannot be imported."""
    try:
        import tensorrt
    except Exception:  # ImportError, or OSError when its libraries are missing
        return None
    return str(tensorrt.__version__)


# ------------------------------------------------------------------------------------------ the key


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine file is valid for; its file name is derived from these fields only.

    Attributes:
        onnx_sha12: first 12 hex digits of the ONNX file's sha256.
        trt_version: TensorRT version the engine was built with.
        sm: compute capability without the dot ("86").
        gpu_slug: file-name-safe GPU name (see `gpu_slug`).
        precision: "fp16" or "fp32".
        input_size: (H, W) of the model input.
    """

    onnx_sha12: str
    trt_version: str
    sm: str
    gpu_slug: str
    precision: Precision
    input_size: tuple[int, int]

    @classmethod
    def for_machine(
        cls, onnx_sha256: str, trt_version: str, gpu: GpuInfo, precision: Precision, input_size: tuple[int, int]
    ) -> EngineKey:
        if precision not in ("fp16", "fp32"):
            raise EngineError(f"precision must be 'fp16' or 'fp32', got {precision!r}")
        return cls(onnx_sha256[:12], trt_version, gpu.sm, gpu.slug, precision,
                   (int(input_size[0]), int(input_size[1])))  # fmt: skip

    @property
    def filename(self) -> str:
        h, w = self.input_size
        return (
            f"{self.onnx_sha12}_trt{self.trt_version}_sm{self.sm}_{self.gpu_slug}_{self.precision}_{h}x{w}"
            f"{ENGINE_SUFFIX}"
        )

    @classmethod
    def parse(cls, filename: str) -> EngineKey | None:
        """The key of an engine file name, or None if the name is not one of ours."""
        match = _KEY_RE.match(Path(filename).name)
        if not match:
            return None
        return cls(
            match["sha"], match["trt"], match["sm"], match["slug"], match["precision"],  # type: ignore[arg-type]
            (int(match["h"]), int(match["w"])),
        )  # fmt: skip

    def fits_machine(self, gpu: GpuInfo | None, trt_version: str | None) -> bool:
        """True when this engine can run on ``gpu`` with TensorRT ``trt_version``."""
        return gpu is not None and self.sm == gpu.sm and self.gpu_slug == gpu.slug and self.trt_version == trt_version

    def describe(self) -> str:
        h, w = self.input_size
        return f"TensorRT {self.trt_version}, sm{self.sm} {self.gpu_slug}, {self.precision}, {h}x{w}"


def timing_cache_name(trt_version: str, gpu: GpuInfo) -> str:
    """Timing caches hold kernel timings per GPU and TensorRT version, shared by every ONNX."""
    return f"trt{trt_version}_sm{gpu.sm}_{gpu.slug}.timing.cache"


# ------------------------------------------------------------------------------------- the manifest


@dataclass(frozen=True)
class EngineRecord:
    """One built engine in ``engines/manifest.json``.

    Attributes:
        file: engine file name (in the manifest's folder); equals the key's file name.
        onnx: ONNX file name it was built from (same folder).
        onnx_sha256: that ONNX's sha256.
        trt_version: TensorRT version.
        gpu_name: GPU name as the driver reports it.
        compute_capability: "major.minor".
        precision: "fp16" or "fp32".
        input_size: [H, W].
        min_batch: smallest batch of the optimization profile.
        opt_batch: batch TensorRT tuned kernels for (the show's camera count).
        max_batch: largest batch the engine accepts.
        workspace_mb: builder workspace memory pool limit.
        fp16_method: "builder-flag" (TensorRT 10), "fp16-onnx" (strongly typed, TensorRT 11) or "none".
        timing_cache: timing cache file name used and updated by the build.
        built_at: ISO 8601 UTC time of the build.
        build_seconds: wall time of the build.
        engine_sha256: sha256 of the engine file.
        engine_bytes: its size.
        stagepose_version: version that built it.
    """

    file: str
    onnx: str
    onnx_sha256: str
    trt_version: str
    gpu_name: str
    compute_capability: str
    precision: Precision
    input_size: tuple[int, int]
    min_batch: int
    opt_batch: int
    max_batch: int
    workspace_mb: int
    fp16_method: Literal["builder-flag", "fp16-onnx", "none"]
    timing_cache: str
    built_at: str
    build_seconds: float
    engine_sha256: str
    engine_bytes: int
    stagepose_version: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(
                "batch profile must satisfy 1 <= min <= opt <= max, "
                f"got {self.min_batch}/{self.opt_batch}/{self.max_batch}"
            )

    @property
    def key(self) -> EngineKey:
        gpu = GpuInfo(self.gpu_name, self.compute_capability)
        return EngineKey.for_machine(self.onnx_sha256, self.trt_version, gpu, self.precision, self.input_size)


@dataclass(frozen=True)
class Manifest:
    """The list of built engines kept in ``engines/manifest.json``."""

    engines: tuple[EngineRecord, ...] = ()
    format: int = MANIFEST_FORMAT

    def __post_init__(self) -> None:
        if self.format != MANIFEST_FORMAT:
            raise ValueError(f"manifest format {self.format} is not supported (this stagepose reads {MANIFEST_FORMAT})")

    def with_record(self, record: EngineRecord) -> Manifest:
        """A manifest with ``record`` added, replacing an earlier record of the same file."""
        kept = tuple(r for r in self.engines if r.file != record.file)
        return Manifest(engines=(*kept, record), format=self.format)

    def find(self, file: str) -> EngineRecord | None:
        return next((r for r in self.engines if r.file == file), None)


def manifest_path(engines_dir: str | Path) -> Path:
    return Path(engines_dir) / MANIFEST_NAME


def load_manifest(engines_dir: str | Path) -> Manifest:
    """Read ``engines_dir/manifest.json``; an absent file is an empty manifest.

    Raises:
        EngineError: the file is not valid JSON or has wrong fields (message names the field).
    """
    path = manifest_path(engines_dir)
    if not path.is_file():
        return Manifest()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EngineError(
            f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); delete it and rebuild the engines"
        ) from None
    except OSError as exc:
        raise EngineError(f"{path}: cannot read: {exc}") from None
    try:
        return from_dict(Manifest, data, Source(str(path)))
    except ConfigError as exc:
        raise EngineError(f"{exc} (engine manifest; delete it and rebuild the engines)") from None


def save_manifest(engines_dir: str | Path, manifest: Manifest) -> Path:
    """Write the manifest atomically; returns its path."""
    path = manifest_path(engines_dir)
    atomic_write_text(path, json.dumps(to_dict(manifest), indent=2) + "\n")
    return path


def add_to_manifest(engines_dir: str | Path, record: EngineRecord) -> Path:
    """Add (or replace) one record in ``engines_dir/manifest.json``."""
    return save_manifest(engines_dir, load_manifest(engines_dir).with_record(record))


# ------------------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class EngineListing:
    """One engine file as `list_engines` sees it."""

    file: str
    key: EngineKey | None
    record: EngineRecord | None
    exists: bool
    fits_this_machine: bool


def list_engines(engines_dir: str | Path, gpu: GpuInfo | None, trt_version: str | None) -> list[EngineListing]:
    """Every engine in the manifest or the folder, marked present/missing and fitting this machine."""
    engines_dir = Path(engines_dir)
    manifest = load_manifest(engines_dir)
    names = {r.file for r in manifest.engines}
    if engines_dir.is_dir():
        names |= {p.name for p in engines_dir.glob(f"*{ENGINE_SUFFIX}")}
    out = []
    for name in sorted(names):
        key = EngineKey.parse(name)
        record = manifest.find(name)
        out.append(EngineListing(
            file=name, key=key, record=record, exists=(engines_dir / name).is_file(),
            fits_this_machine=bool(key and key.fits_machine(gpu, trt_version)),
        ))  # fmt: skip
    return out


# ----------------------------------------------------------------------------------- selection


def build_command(
    onnx_path: str | Path, engines_dir: str | Path, precision: Precision, max_batch: int | None = None
) -> str:
    """The exact ``stagepose engine build`` command that produces the engine `select_engine` wants."""
    parts = ["stagepose engine build", f"--onnx {onnx_path}"]
    if precision == "fp16":
        parts.append("--fp16")
    if Path(engines_dir) != Path(onnx_path).parent:
        parts.append(f"--engines-dir {engines_dir}")
    if max_batch:
        parts.append(f"--max-batch {max_batch}")
    return " ".join(parts)


def select_engine(
    onnx_path: str | Path,
    engines_dir: str | Path,
    gpu_info: GpuInfo | None,
    trt_version: str | None,
    precision: Precision,
    input_size: tuple[int, int],
) -> Path:
    """The engine file for this ONNX on this GPU and TensorRT version.

    Args:
        onnx_path: the exported ONNX (its sha256 is part of the key).
        engines_dir: folder holding the engines.
        gpu_info: this machine's GPU (`detect_gpu`), None when there is none.
        trt_version: the installed TensorRT version (`tensorrt_version`), None when not installed.
        precision: "fp16" or "fp32".
        input_size: (H, W) of the model input.

    Returns:
        Path of the existing engine file.

    Raises:
        EngineError: no GPU, no TensorRT, a missing ONNX, or no engine built for this machine. The message
            names the engine it looked for, the engines present for other machines, and the command that
            builds the right one.
    """
    onnx_path, engines_dir = Path(onnx_path), Path(engines_dir)
    if gpu_info is None:
        raise EngineError(
            "TensorRT engines need a CUDA GPU and none was found (nvidia-smi lists none, torch.cuda sees none); "
            "run this machine with the onnxruntime or torch backend instead (backend: onnxruntime)"
        )
    if trt_version is None:
        raise EngineError(
            "TensorRT is not installed (import tensorrt failed); install the `gpu` extra from NVIDIA's "
            "package index as the README's 'GPU machines' section shows, or use backend: onnxruntime"
        )
    if not onnx_path.is_file():
        raise EngineError(f"{onnx_path}: ONNX model not found; export it first with `stagepose export`")
    key = EngineKey.for_machine(sha256_file(onnx_path), trt_version, gpu_info, precision, input_size)
    path = engines_dir / key.filename
    if path.is_file():
        return path
    others = [
        listing.key.describe()
        for listing in list_engines(engines_dir, gpu_info, trt_version)
        if listing.exists and listing.key and listing.key.onnx_sha12 == key.onnx_sha12
    ]
    elsewhere = f" Engines of this ONNX present for other setups: {'; '.join(others)}." if others else ""
    raise EngineError(
        f"no TensorRT engine for {onnx_path} on this machine ({gpu_info.describe()}, {key.describe()}): "
        f"expected {path}.{elsewhere} Build it on this machine with: "
        f"{build_command(onnx_path, engines_dir, precision)}"
    )


__all__ = [
    "GpuInfo",
    "EngineKey",
    "EngineRecord",
    "EngineListing",
    "Manifest",
    "Precision",
    "detect_gpu",
    "parse_nvidia_smi",
    "gpu_slug",
    "tensorrt_version",
    "timing_cache_name",
    "load_manifest",
    "save_manifest",
    "add_to_manifest",
    "list_engines",
    "build_command",
    "select_engine",
]
