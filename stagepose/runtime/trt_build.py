"""Build a TensorRT engine from an exported ONNX on the GPU this runs on.

TensorRT 10 and 11 differ in how FP16 is asked for:

* 10.x: a weakly typed network and ``BuilderFlag.FP16`` (TensorRT picks FP16 kernels where it likes).
* 11.x: the flag is gone and every network is strongly typed, so the ONNX itself is converted to FP16
  first (`stagepose.runtime.fp16`, float32 inputs and outputs kept) and the network is created with
  ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` (deprecated but accepted, and ignored, in 11.x).

The optimization profile covers batch 1..max_batch and tunes kernels for ``opt_batch`` (set it to the
show's camera count). Kernel timings are kept in a timing cache per GPU and TensorRT version next to
the engines, so a rebuild (another input size, another precision) takes seconds instead of minutes.
The engine is deserialised once right after the build, to prove it loads, before it is written.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

from stagepose import __version__
from stagepose.errors import EngineError
from stagepose.fileio import atomic_write_bytes
from stagepose.hashing import sha256_file
from stagepose.runtime.engines import (
    EngineKey,
    EngineRecord,
    GpuInfo,
    Precision,
    add_to_manifest,
    detect_gpu,
    load_manifest,
    timing_cache_name,
)
from stagepose.runtime.sidecar import Sidecar

log = logging.getLogger(__name__)


def build_engine(
    onnx_path: str | Path,
    engines_dir: str | Path | None = None,
    *,
    fp16: bool = False,
    workspace_mb: int = 1024,
    max_batch: int = 8,
    opt_batch: int | None = None,
    gpu: GpuInfo | None = None,
    force: bool = False,
) -> EngineRecord:
    """Build (or reuse) the engine for ``onnx_path`` on this GPU and record it in the manifest.

    Args:
        onnx_path: exported ONNX with its sidecar next to it (the sidecar's hash is checked).
        engines_dir: where engine, timing cache and manifest go (default: the ONNX's folder).
        fp16: build an FP16 engine (see the module docstring for TensorRT 10 vs 11).
        workspace_mb: builder workspace memory pool limit in MiB.
        max_batch: largest batch the engine accepts.
        opt_batch: batch to tune for (default: min(4, max_batch)); use the show's camera count.
        gpu: the GPU to key the engine for (default: `detect_gpu`); the build runs on CUDA device 0
            unless CUDA_VISIBLE_DEVICES says otherwise.
        force: rebuild even when a recorded engine with this key exists.

    Returns:
        The manifest record of the engine.

    Raises:
        EngineError: TensorRT missing or older than 10, no GPU, bad batch settings, an ONNX TensorRT
            cannot parse, or a failed build.
        ModelError: missing or stale sidecar.
    """
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or OSError when the libraries are missing
        raise EngineError(
            f"TensorRT is not importable ({exc}); on a GPU machine install the `gpu` extra from NVIDIA's "
            "package index as the README's 'GPU machines' section shows"
        ) from None
    onnx_path = Path(onnx_path)
    engines_dir = Path(engines_dir) if engines_dir is not None else onnx_path.parent
    sidecar = Sidecar.read(onnx_path.with_suffix(".json"), model_path=onnx_path)
    gpu = gpu or detect_gpu()
    if gpu is None:
        raise EngineError("no CUDA GPU found: TensorRT engines are built on the GPU that will run them")
    version = str(trt.__version__)
    major = int(version.split(".")[0])
    if major < 10:
        raise EngineError(f"TensorRT {version} is too old: stagepose builds with TensorRT 10 or 11")
    opt_batch = opt_batch if opt_batch is not None else min(4, max_batch)
    if not 1 <= opt_batch <= max_batch:
        raise EngineError(f"batch profile needs 1 <= opt_batch ({opt_batch}) <= max_batch ({max_batch})")
    if workspace_mb < 64:
        raise EngineError(f"workspace of {workspace_mb} MiB is too small (use >= 64)")
    precision: Precision = "fp16" if fp16 else "fp32"
    key = EngineKey.for_machine(sidecar.onnx_sha256, version, gpu, precision, sidecar.input_size.hw)
    engine_path = engines_dir / key.filename
    existing = load_manifest(engines_dir).find(key.filename)
    if existing and engine_path.is_file() and not force and existing.max_batch >= max_batch:
        log.info("engine %s already built (use --force to rebuild)", engine_path)
        return existing

    strongly_typed = major >= 11
    fp16_method = "none" if not fp16 else ("fp16-onnx" if strongly_typed else "builder-flag")
    if fp16 and strongly_typed:
        from stagepose.runtime.fp16 import fp16_model_bytes

        onnx_bytes = fp16_model_bytes(onnx_path)
    else:
        onnx_bytes = onnx_path.read_bytes()

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    typed_flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed and typed_flag is not None:
        flags |= 1 << int(typed_flag)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"{onnx_path}: TensorRT {version} cannot parse the ONNX: {errors[:800]}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if fp16 and not strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)
    height, width = sidecar.input_size.hw
    profile = builder.create_optimization_profile()
    profile.set_shape(sidecar.input_name, (1, 3, height, width), (opt_batch, 3, height, width),
                      (max_batch, 3, height, width))  # fmt: skip
    config.add_optimization_profile(profile)
    cache_path = engines_dir / timing_cache_name(version, gpu)
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        log.warning("timing cache %s does not fit this TensorRT/GPU; starting a new one", cache_path)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)

    log.info("building %s engine for %s on %s (TensorRT %s, batch 1..%d opt %d); this takes a while",
             precision, onnx_path.name, gpu.describe(), version, max_batch, opt_batch)  # fmt: skip
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise EngineError(f"TensorRT failed to build an engine for {onnx_path} (see the TensorRT errors above)")
    data = bytes(serialized)
    if trt.Runtime(logger).deserialize_cuda_engine(data) is None:
        raise EngineError(f"TensorRT built an engine for {onnx_path} that it cannot deserialise; not saved")
    atomic_write_bytes(engine_path, data)
    atomic_write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
    record = EngineRecord(
        file=key.filename,
        onnx=onnx_path.name if onnx_path.parent.resolve() == engines_dir.resolve() else str(onnx_path.resolve()),
        onnx_sha256=sidecar.onnx_sha256,
        trt_version=version,
        gpu_name=gpu.name,
        compute_capability=gpu.compute_capability,
        precision=precision,
        input_size=sidecar.input_size.hw,  # the manifest's EngineKey keeps (H, W)
        min_batch=1,
        opt_batch=opt_batch,
        max_batch=max_batch,
        workspace_mb=workspace_mb,
        fp16_method=fp16_method,  # type: ignore[arg-type]
        timing_cache=cache_path.name,
        built_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        build_seconds=round(seconds, 2),
        engine_sha256=sha256_file(engine_path),
        engine_bytes=len(data),
        stagepose_version=__version__,
    )
    add_to_manifest(engines_dir, record)
    log.info("built %s in %.0f s (%.1f MB)", engine_path, seconds, len(data) / 1e6)
    return record
