"""Export a trained student to ONNX with a sidecar, checked against PyTorch before it is kept.

The exporter is torch's current one (``torch.onnx.export(dynamo=True)``, torch.export + onnxscript):
on torch 2.13 it exports the stacked hourglass cleanly, folds batch norm into the convolutions and
emits opset 20, while the TorchScript exporter warns that it is deprecated and will be removed. The
graph is written as one self-contained file (no external-data side file) so its sha256 names it fully.

The exported graph has one input ``input`` (N, 3, H, W) float32 normalised RGB, with a dynamic batch,
and one output ``heatmaps`` (N, 16, H/s, W/s), s = ``sizes.HEATMAP_STRIDE``: only the last stack, which is
all the runtime decodes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from stagepose import __version__
from stagepose.errors import ModelError
from stagepose.fileio import atomic_write
from stagepose.hashing import sha256_file
from stagepose.runtime.sidecar import Sidecar, sidecar_path
from stagepose.sizes import ImageSize
from stagepose.skeleton import JOINT_NAMES
from stagepose.transforms import INPUT_COLOR, INPUT_MEAN, INPUT_STD

log = logging.getLogger(__name__)

DEFAULT_OPSET = 20
DEFAULT_INPUT_SIZE = ImageSize(256, 256)
PARITY_TOLERANCE = 1e-4
# Batch sizes checked against PyTorch: 1 and a multi-camera batch (proves the batch axis is dynamic).
PARITY_BATCHES = (1, 3)


@dataclass(frozen=True)
class ExportResult:
    """Files written by `export_onnx` and the parity measured before keeping them."""

    onnx_path: Path
    sidecar_path: Path
    sidecar: Sidecar
    max_abs_diff: float


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    *,
    preset: str | None = None,
    input_size: ImageSize = DEFAULT_INPUT_SIZE,
    opset: int = DEFAULT_OPSET,
    tolerance: float = PARITY_TOLERANCE,
    seed: int = 0,
) -> ExportResult:
    """Export ``checkpoint`` to ``out`` (.onnx) and write the sidecar ``out`` with suffix ``.json``.

    Args:
        checkpoint: ``.safetensors`` weights or a training checkpoint ``.pt`` (see
            ``stagepose.models.checkpoint``); the heatmap sigma it records goes into the sidecar.
        out: destination ``.onnx`` path (its folder is created).
        preset: model preset; must match the one the checkpoint records (needed only when it records
            none).
        input_size: model input (width, height) in pixels, multiples of the preset's ``min_input_multiple``.
        opset: ONNX opset to emit.
        tolerance: largest accepted max |ONNX Runtime - PyTorch| heatmap difference.
        seed: seed of the random parity inputs.

    Returns:
        The written paths, the sidecar and the measured parity.

    Raises:
        ModelError: bad checkpoint, preset or input size, an ONNX that fails ``onnx.checker``, or a
            parity difference above ``tolerance``. Nothing is left at ``out`` in that case (a previous
            file there is kept untouched).
    """
    from stagepose.models.checkpoint import load_model_and_metadata, recorded_sigma

    out = Path(out)
    if out.suffix != ".onnx":
        raise ModelError(f"{out}: the export destination must end in .onnx (its sidecar is {out.stem}.json)")
    checkpoint = Path(checkpoint)
    model, spec, metadata = load_model_and_metadata(checkpoint, preset)
    sigma = recorded_sigma(metadata, checkpoint)  # travels in the sidecar to every decoder
    size = ImageSize.of(input_size)
    multiple = spec.min_input_multiple
    if min(size) <= 0 or size.width % multiple or size.height % multiple:
        raise ModelError(
            f"input size {size.text()} does not fit preset {spec.name!r}: height and width must be "
            f"positive multiples of {multiple}"
        )
    wrapper = LastStack(model).eval()

    parity: list[float] = []

    def export_and_check(tmp: Path) -> None:
        """Write the ONNX to ``tmp``; raise unless it passes the checker and matches PyTorch."""
        _torch_export(wrapper, tmp, size, opset)
        _check_graph(tmp, opset)
        parity.append(_parity(wrapper, tmp, size, seed))
        if not parity[0] <= tolerance:  # also catches NaN
            raise ModelError(
                f"export of {checkpoint} rejected: ONNX Runtime and PyTorch heatmaps differ by up to "
                f"{parity[0]:.3g} (tolerance {tolerance:g}); nothing was written to {out}"
            )

    atomic_write(out, export_and_check)
    max_diff = parity[0]
    sidecar = Sidecar(
        preset=spec.name,
        input_size=size,
        heatmap_size=size.heatmap(),
        color=INPUT_COLOR,
        mean=tuple(float(v) for v in INPUT_MEAN),  # type: ignore[arg-type]
        std=tuple(float(v) for v in INPUT_STD),  # type: ignore[arg-type]
        joints=JOINT_NAMES,
        opset=opset,
        onnx_sha256=sha256_file(out),
        checkpoint_sha256=sha256_file(checkpoint),
        checkpoint=checkpoint.name,
        heatmap_sigma=sigma,
        exporter=f"torch.onnx dynamo (torch {torch.__version__})",
        parity_max_abs_diff=float(max_diff),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        stagepose_version=__version__,
    )
    side = sidecar.write(sidecar_path(out))
    log.info("exported %s (%s, %s, heatmap sigma %g, opset %d, parity %.2g) with sidecar %s",
             out, spec.name, size.text(), sigma, opset, max_diff, side)  # fmt: skip
    return ExportResult(out, side, sidecar, float(max_diff))


class LastStack(nn.Module):
    """``(N, 3, H, W) -> (N, 16, H/s, W/s)``: a stacked hourglass reduced to its last stack's heatmaps.

    The runtime decodes only the last stack; slicing inside the exported graph keeps the earlier
    stacks' heatmaps off the output copy (they still feed the next stack inside the graph).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)[:, -1]


def _torch_export(wrapper: nn.Module, path: Path, size: ImageSize, opset: int) -> None:
    example = torch.zeros(2, 3, *size.hw)
    batch = torch.export.Dim("batch", min=1, max=1024)
    # The exporter prints progress to stdout and warns about optional torchvision ops; keep the
    # console to our own messages and pass real failures on as ModelError.
    quiet = io.StringIO()
    try:
        with _quiet_loggers(_EXPORT_LOGGERS), warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                input_names=["input"],
                output_names=["heatmaps"],
                opset_version=opset,
                dynamo=True,
                external_data=False,
                dynamic_shapes={"x": {0: batch}},
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many types; all mean "this model did not export"
        raise ModelError(f"ONNX export failed ({type(exc).__name__}: {str(exc)[:500]})") from None


# Loggers of the exporter's stages; at INFO they print hundreds of lines per export.
_EXPORT_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "onnxscript", "onnx_ir")


@contextlib.contextmanager
def _quiet_loggers(names: tuple[str, ...]) -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _check_graph(path: Path, opset: int) -> None:
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # onnx raises ValidationError and friends
        raise ModelError(f"exported ONNX fails onnx.checker: {str(exc)[:500]}") from None
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    if inputs != ["input"] or outputs != ["heatmaps"]:
        raise ModelError(f"exported ONNX has inputs {inputs} and outputs {outputs}, expected ['input'], ['heatmaps']")
    got = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if got != opset:
        raise ModelError(f"exported ONNX has opset {got}, expected {opset}")


def _parity(wrapper: nn.Module, path: Path, size: ImageSize, seed: int) -> float:
    """Max |ONNX Runtime - PyTorch| over random batches of each size in `PARITY_BATCHES`."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for n in PARITY_BATCHES:
        batch = rng.standard_normal((n, 3, *size.hw)).astype(np.float32)
        with torch.no_grad():
            expected = wrapper(torch.from_numpy(batch)).numpy()
        (got,) = session.run(["heatmaps"], {"input": batch})
        if got.shape != expected.shape:
            raise ModelError(f"exported ONNX returns shape {got.shape} for batch {n}, PyTorch {expected.shape}")
        worst = max(worst, float(np.max(np.abs(got - expected))))
    return worst
