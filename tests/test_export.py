"""ONNX export: parity with PyTorch, named I/O with a dynamic batch, the sidecar, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from stagepose.cli import main
from stagepose.errors import ModelError
from stagepose.hashing import sha256_file
from stagepose.models import build_model
from stagepose.models.checkpoint import save_weights
from stagepose.runtime.export import LastStack, export_onnx
from stagepose.runtime.sidecar import Sidecar
from stagepose.skeleton import JOINT_NAMES
from stagepose.transforms import INPUT_COLOR, INPUT_MEAN, INPUT_STD

SIZE = 64  # smallest input the presets accept (4 * 2**depth): keeps the exports fast
TOL = 1e-4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_weights(tmp_path_factory.mktemp("ckpt") / "lshm2.safetensors", build_model("lshm-2"), "lshm-2")


@pytest.fixture(scope="module")
def exported(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Export through the CLI, as a user would."""
    out = tmp_path_factory.mktemp("engines") / "lshm2-64.onnx"
    rc = main(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--input-size", str(SIZE)])
    assert rc == 0
    return out


def test_onnx_matches_pytorch_at_several_batch_sizes(exported: Path, checkpoint: Path) -> None:
    from stagepose.models.checkpoint import load_model

    model, _ = load_model(checkpoint)
    reference = LastStack(model).eval()
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for n in (1, 2, 5):  # 5 was never seen at export: the batch axis must be dynamic
        batch = rng.standard_normal((n, 3, SIZE, SIZE)).astype(np.float32)
        (got,) = session.run(["heatmaps"], {"input": batch})
        with torch.no_grad():
            want = reference(torch.from_numpy(batch)).numpy()
        assert got.shape == (n, 16, SIZE // 4, SIZE // 4)
        assert np.abs(got - want).max() <= TOL
        # the output is the LAST stack, not the first
        with torch.no_grad():
            first = model(torch.from_numpy(batch))[:, 0].numpy()
        assert np.abs(got - first).max() > 10 * TOL


def test_graph_has_named_io_dynamic_batch_and_passes_checker(exported: Path) -> None:
    model = onnx.load(str(exported))
    onnx.checker.check_model(model, full_check=True)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("input", "heatmaps")
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1:] == [3, SIZE, SIZE]
    out_dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    assert isinstance(out_dims[0], str) and out_dims[1:] == [16, SIZE // 4, SIZE // 4]
    assert not exported.with_suffix(".onnx.data").exists()  # one self-contained file


def test_sidecar_fields_and_round_trip(exported: Path, checkpoint: Path) -> None:
    side_path = exported.with_suffix(".json")
    raw = json.loads(side_path.read_text())
    for key in ("preset", "input_size", "color", "mean", "std", "joints", "heatmap_size", "opset",
                "onnx_sha256", "checkpoint_sha256"):  # fmt: skip
        assert key in raw
    sidecar = Sidecar.read(side_path)
    assert sidecar.preset == "lshm-2"
    assert sidecar.input_size == (SIZE, SIZE)
    assert sidecar.heatmap_size == (SIZE // 4, SIZE // 4)
    assert sidecar.color == INPUT_COLOR
    assert sidecar.mean == pytest.approx(INPUT_MEAN) and sidecar.std == pytest.approx(INPUT_STD)
    assert sidecar.joints == JOINT_NAMES
    assert sidecar.opset == max(o.version for o in onnx.load(str(exported)).opset_import if o.domain in ("", "ai.onnx"))
    assert sidecar.onnx_sha256 == sha256_file(exported)
    assert sidecar.checkpoint_sha256 == sha256_file(checkpoint)
    assert sidecar.checkpoint == checkpoint.name
    assert 0 <= sidecar.parity_max_abs_diff <= TOL
    copy = sidecar.write(exported.parent / "copy.json")
    assert Sidecar.read(copy, model_path=exported) == sidecar


def test_tampered_onnx_is_rejected(exported: Path, tmp_path: Path) -> None:
    onnx_copy = tmp_path / "m.onnx"
    data = bytearray(exported.read_bytes())
    data[-1] ^= 0xFF  # any change after export
    onnx_copy.write_bytes(bytes(data))
    (tmp_path / "m.json").write_text(exported.with_suffix(".json").read_text())
    with pytest.raises(ModelError, match=r"m\.onnx: sha256 .* does not match .*m\.json.*stagepose export"):
        Sidecar.read(tmp_path / "m.json")


def _sidecar_variant(exported: Path, tmp_path: Path, edit: object) -> Path:
    data = json.loads(exported.with_suffix(".json").read_text())
    edit(data)  # type: ignore[operator]
    (tmp_path / "m.onnx").write_bytes(exported.read_bytes())
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data, indent=2))
    return path


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda d: d.pop("joints"), r"m\.json:\d+: field 'joints': required field is missing"),
        (lambda d: d.update(input_size="256"), r"m\.json:\d+: field 'input_size': expected a list"),
        (lambda d: d.update(color="YUV"), r"field 'color': got 'YUV'; allowed: 'RGB', 'BGR'"),
        (lambda d: d.update(joints=list(reversed(d["joints"]))), r"joints must be the MPII order"),
        (lambda d: d.update(onnx_sha256="abc"), r"onnx_sha256 must be 64 lowercase hex digits"),
        (lambda d: d.update(surprise=1), r"field 'surprise': unknown key"),
    ],
)
def test_invalid_sidecar_fields_are_named(exported: Path, tmp_path: Path, edit: object, pattern: str) -> None:
    path = _sidecar_variant(exported, tmp_path, edit)
    with pytest.raises(ModelError, match=pattern):
        Sidecar.read(path)


def test_sidecar_that_is_not_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{\n  "preset": "lshm-2",\n  oops\n}\n')
    with pytest.raises(ModelError, match=r"m\.json:3: not valid JSON"):
        Sidecar.read(path)


def test_failed_parity_leaves_nothing_behind(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous good export")
    with pytest.raises(ModelError, match=r"differ by up to .* \(tolerance 1e-12\); nothing was written"):
        export_onnx(checkpoint, out, input_size=(SIZE, SIZE), tolerance=1e-12)
    assert out.read_bytes() == b"previous good export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temporary files, no sidecar


def test_bad_requests_are_refused_before_exporting(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="multiples of 64"):
        export_onnx(checkpoint, tmp_path / "m.onnx", input_size=(100, 100))
    with pytest.raises(ModelError, match="checkpoint is preset 'lshm-2', but 'lshm-4' was requested"):
        export_onnx(checkpoint, tmp_path / "m.onnx", preset="lshm-4")
    with pytest.raises(ModelError, match=r"must end in \.onnx"):
        export_onnx(checkpoint, tmp_path / "m.engine")
    assert list(tmp_path.iterdir()) == []


def test_export_without_checkpoint_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["export", "--out", str(tmp_path / "m.onnx")])
    assert rc == 2
    assert "nothing to export: pass --checkpoint" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
