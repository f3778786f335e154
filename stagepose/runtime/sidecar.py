"""The JSON sidecar that travels with every exported model (``engines/NAME.onnx`` -> ``engines/NAME.json``).

A backend reads the sidecar, never a hard-coded constant, to learn how to feed and read the model: input
size, colour order, normalisation, joint order, heatmap size and the heatmap sigma the decoder needs, so an
export with other settings cannot be decoded with stale ones. Sidecars written before the sigma was recorded
lack it and mean ``codec.DEFAULT_SIGMA`` (every model before then was trained with it). The JSON stores the
sizes as [H, W] lists; in memory they are ``ImageSize`` (width, height). The sidecar also
pins the exact files: the sha256 of the checkpoint the ONNX came from and of the ONNX itself, so an ONNX
replaced after export (or a sidecar copied next to the wrong model) is refused at start-up instead of
producing plausible but wrong poses mid-show.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from stagepose.codec import DEFAULT_SIGMA, HeatmapCodec, Refine
from stagepose.config import Source, from_dict, load_yaml, to_dict
from stagepose.errors import ConfigError, ModelError
from stagepose.fileio import atomic_write_text
from stagepose.hashing import sha256_file
from stagepose.sizes import ImageSize
from stagepose.skeleton import JOINT_NAMES
from stagepose.transforms import InputFormat

SIDECAR_FORMAT = 1
MIN_INPUT_PX = 16
MAX_INPUT_PX = 4096  # the models are fully convolutional, but a larger input is a typo (100000x100000 is 40 GB)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sidecar_path(model_path: str | Path) -> Path:
    """``engines/NAME.onnx`` (or ``.safetensors``) -> ``engines/NAME.json``."""
    return Path(model_path).with_suffix(".json")


_SIZE_FIELDS = ("input_size", "heatmap_size")  # [H, W] in the JSON, ImageSize (width, height) in memory


def _swap_size_lists(data: Any) -> Any:
    """A copy of the sidecar's plain data with each [a, b] size list turned to [b, a] (JSON <-> memory)."""
    if not isinstance(data, dict):
        return data
    swapped = dict(data)
    for name in _SIZE_FIELDS:
        value = swapped.get(name)
        if isinstance(value, list) and len(value) == 2:
            swapped[name] = value[::-1]
    return swapped


@dataclass(frozen=True)
class Sidecar:
    """What a runtime needs to know about an exported model.

    Attributes:
        preset: model preset name (``stagepose.models.MODELS``).
        input_size: model input (width, height) in pixels ([H, W] in the JSON).
        heatmap_size: output heatmap (width, height) in pixels (input / ``sizes.HEATMAP_STRIDE``; [H, W] in
            the JSON).
        color: channel order the model expects ("RGB" for stagepose models); the runtime converts its BGR
            frames to it (``input_format``).
        mean: per-channel mean subtracted from pixels scaled to 0..1, in ``color`` order.
        std: per-channel standard deviation dividing pixels scaled to 0..1, in ``color`` order.
        joints: joint names in output channel order (MPII order, ``skeleton.JOINT_NAMES``).
        opset: ONNX opset of the exported graph.
        onnx_sha256: sha256 of the ONNX file this sidecar describes.
        checkpoint_sha256: sha256 of the checkpoint the ONNX was exported from.
        checkpoint: file name of that checkpoint (for the torch backend and for people).
        heatmap_sigma: Gaussian sigma of the training targets in heatmap pixels; decoders use it (DARK
            refinement assumes that width). Absent in older sidecars: ``codec.DEFAULT_SIGMA``.
        input_name: name of the ONNX input, (N, 3, H, W) float32.
        output_name: name of the ONNX output, (N, len(joints), *heatmap_size) float32 (last stack only).
        exporter: which exporter produced the ONNX (and its torch version).
        parity_max_abs_diff: max |ONNX Runtime - PyTorch| heatmap difference measured at export.
        created: export time (ISO 8601, UTC).
        stagepose_version: version of stagepose that exported the model.
        format: sidecar format version.
    """

    preset: str
    input_size: ImageSize
    heatmap_size: ImageSize
    color: Literal["RGB", "BGR"]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    joints: tuple[str, ...]
    opset: int
    onnx_sha256: str
    checkpoint_sha256: str
    checkpoint: str = ""
    heatmap_sigma: float = DEFAULT_SIGMA
    input_name: str = "input"
    output_name: str = "heatmaps"
    exporter: str = ""
    parity_max_abs_diff: float = 0.0
    created: str = ""
    stagepose_version: str = ""
    format: int = SIDECAR_FORMAT

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", ImageSize.of(self.input_size))
        object.__setattr__(self, "heatmap_size", ImageSize.of(self.heatmap_size))
        if self.color not in ("RGB", "BGR"):
            raise ValueError(f"color must be RGB or BGR, got {self.color!r}")
        if self.format != SIDECAR_FORMAT:
            raise ValueError(f"sidecar format {self.format} is not supported (this stagepose reads {SIDECAR_FORMAT})")
        if not all(MIN_INPUT_PX <= side <= MAX_INPUT_PX for side in self.input_size):
            raise ValueError(f"input_size {list(self.input_size.hw)} must be {MIN_INPUT_PX}..{MAX_INPUT_PX} px "
                             "per side")  # fmt: skip
        if not all(0 < hm <= side for hm, side in zip(self.heatmap_size, self.input_size)):
            raise ValueError(f"heatmap_size {list(self.heatmap_size.hw)} must be > 0 and at most input_size "
                             f"{list(self.input_size.hw)}")  # fmt: skip
        if not (math.isfinite(self.heatmap_sigma) and 0 < self.heatmap_sigma <= max(self.heatmap_size)):
            raise ValueError(f"field 'heatmap_sigma' must be a number > 0 (heatmap pixels), got {self.heatmap_sigma}")
        # a NaN mean or std turns every input to NaN: the show would run with every frame LOST
        if not all(math.isfinite(m) and abs(m) <= 1.0 for m in self.mean):
            raise ValueError(f"mean must be finite numbers in -1..1 per channel (pixels scaled to 0..1), got "
                             f"{list(self.mean)}")  # fmt: skip
        if not all(math.isfinite(s) and 0 < s <= 10.0 for s in self.std):
            raise ValueError(f"std must be finite numbers in (0, 10] per channel, got {list(self.std)}")
        if tuple(self.joints) != JOINT_NAMES:
            # The runtime decodes channel k as skeleton joint k; any other order would mislabel joints.
            raise ValueError(f"joints must be the MPII order {list(JOINT_NAMES)}, got {list(self.joints)}")
        for name in ("onnx_sha256", "checkpoint_sha256"):
            if not _SHA256.match(getattr(self, name)):
                raise ValueError(f"{name} must be 64 lowercase hex digits, got {getattr(self, name)!r}")
        if self.opset < 7:
            raise ValueError(f"opset must be >= 7, got {self.opset}")

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def input_format(self) -> InputFormat:
        """How to turn BGR crops into this model's input: size, colour order, mean and std."""
        return InputFormat(self.input_size, self.color, self.mean, self.std)

    def codec(self, refine: Refine = "dark") -> HeatmapCodec:
        """The heatmap decoder for this model: its input and heatmap sizes and its training sigma."""
        return HeatmapCodec(self.input_size, self.heatmap_size, sigma=self.heatmap_sigma, refine=refine)

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``json.dump`` (tuples become lists, sizes [H, W])."""
        data: dict[str, Any] = _swap_size_lists(to_dict(self))
        return data

    def write(self, path: str | Path) -> Path:
        """Write the sidecar atomically as indented JSON; returns the path."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_json(), indent=2) + "\n")
        return path

    @classmethod
    def read(cls, path: str | Path, *, model_path: str | Path | None = None, check_hash: bool = True) -> Sidecar:
        """Read and validate a sidecar, and check it still describes the ONNX next to it.

        Args:
            path: the JSON file.
            model_path: the ONNX it must describe (default: the ``.onnx`` with the same stem).
            check_hash: compare the ONNX file's sha256 with ``onnx_sha256`` (skip only for tools that
                list sidecars without the model).

        Raises:
            ModelError: missing or unreadable file, invalid JSON (with line), missing or wrong fields
                (with field and line), or an ONNX whose sha256 no longer matches.
        """
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: sidecar not found; re-export the model with `stagepose export`")
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: cannot read sidecar: {exc}") from None
        try:
            _, source = load_yaml(path)  # JSON is YAML: reuse its key -> line index for messages
        except ConfigError:
            source = Source(str(path))
        try:
            sidecar = from_dict(cls, _swap_size_lists(data), source)
        except ConfigError as exc:
            raise ModelError(f"{exc} (sidecar; re-export the model with `stagepose export`)") from None
        if check_hash:
            sidecar.verify_model(Path(model_path) if model_path else path.with_suffix(".onnx"), sidecar_file=path)
        return sidecar

    def verify_model(self, model_path: Path, *, sidecar_file: Path | None = None) -> None:
        """Raise ModelError unless ``model_path`` exists and has this sidecar's ``onnx_sha256``."""
        where = sidecar_file or sidecar_path(model_path)
        if not model_path.is_file():
            raise ModelError(f"{model_path}: ONNX model not found (described by {where})")
        actual = sha256_file(model_path)
        if actual != self.onnx_sha256:
            raise ModelError(
                f"{model_path}: sha256 {actual[:12]}... does not match {where} (onnx_sha256 "
                f"{self.onnx_sha256[:12]}...): the ONNX was replaced or edited after export. Re-export it "
                "with `stagepose export --checkpoint CKPT --out " + str(model_path) + "`"
            )

    def check_shapes(self, input_shape: Sequence[Any], output_shape: Sequence[Any], model_path: Path) -> None:
        """Raise ModelError unless the model's I/O shapes fit this sidecar (dynamic axes pass).

        The sha256 pins the ONNX, not the sidecar: an edited ``input_size`` would otherwise load and fail
        at the first frame with an ONNX Runtime shape error.

        Args:
            input_shape: the model input's shape, (N, 3, H, W); a str or None is a dynamic axis.
            output_shape: the model output's shape, (N, K, h, w).
            model_path: for the message.
        """
        expected = {
            "input": (input_shape, (None, 3, *self.input_size.hw)),
            "output": (output_shape, (None, self.num_joints, *self.heatmap_size.hw)),
        }
        for name, (actual, wanted) in expected.items():
            fixed = [a if isinstance(a, int) else None for a in actual]
            if len(fixed) != len(wanted) or any(a is not None and w is not None and a != w
                                                for a, w in zip(fixed, wanted)):  # fmt: skip
                shown = ["N" if w is None else w for w in wanted]
                raise ModelError(
                    f"{model_path}: the model's {name} shape {list(actual)} does not match its sidecar "
                    f"{sidecar_path(model_path)} ({shown}); re-export the model with `stagepose export`"
                )

    def replace(self, **changes: Any) -> Sidecar:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
