"""FP32 -> FP16 ONNX conversion with FP32 inputs and outputs, for strongly typed TensorRT (11.x) builds.

TensorRT 11 dropped ``BuilderFlag.FP16`` and weak typing: a network runs in the types its ONNX declares.
To get an FP16 engine the ONNX itself must be FP16. We use onnxconverter-common's
``float16.convert_float_to_float16(keep_io_types=True)``: it converts initializers and value types to
FP16, inserts Casts at the graph's input and output (so callers still pass and receive float32), and
keeps the ops that need float32 operands (its default block list, e.g. ``Resize`` whose ``scales`` must
be float) in FP32 behind Casts. Weights outside FP16's range are clamped to +-1e4 and tiny magnitudes to
1e-7 by the converter; our networks' weights are far inside that range.

The ONNX Runtime CUDA backend uses the same conversion when asked for FP16.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from stagepose.errors import EngineError, ModelError
from stagepose.fileio import atomic_write_bytes


def convert_model_to_fp16(model: Any) -> Any:
    """FP16 copy of an ``onnx.ModelProto`` with float32 graph inputs and outputs kept.

    Raises:
        EngineError: onnxconverter-common is not installed or the conversion fails the ONNX checker.
    """
    import onnx

    try:
        from onnxconverter_common import float16
    except ImportError as exc:
        raise EngineError(
            f"FP16 conversion needs onnxconverter-common ({exc}); install it with "
            "`pip install onnxconverter-common`"
        ) from None
    with warnings.catch_warnings():
        # it warns once per clamped tiny weight (e.g. 1.5e-8 -> 1e-7); harmless for these models
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(model, keep_io_types=True)
    try:
        onnx.checker.check_model(converted, full_check=True)
    except Exception as exc:  # onnx raises ValidationError / InferenceError
        raise EngineError(f"FP16 conversion produced an invalid ONNX: {str(exc)[:400]}") from None
    return converted


def convert_to_fp16(src: str | Path, dst: str | Path) -> Path:
    """Convert the ONNX file ``src`` to an FP16 ONNX ``dst`` (float32 I/O kept); returns ``dst``.

    Raises:
        ModelError: ``src`` is missing or not an ONNX model.
        EngineError: the conversion is unavailable or fails (see `convert_model_to_fp16`).
    """
    import onnx

    src, dst = Path(src), Path(dst)
    try:
        model = onnx.load(str(src))
    except FileNotFoundError:
        raise ModelError(f"{src}: ONNX model not found") from None
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelError(f"{src}: not a readable ONNX model ({exc})") from None
    converted = convert_model_to_fp16(model)
    atomic_write_bytes(dst, converted.SerializeToString())
    return dst


def fp16_model_bytes(src: str | Path) -> bytes:
    """Serialized FP16 version of the ONNX file ``src`` (for sessions created from memory)."""
    import onnx

    return bytes(convert_model_to_fp16(onnx.load(str(src))).SerializeToString())
