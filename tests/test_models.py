"""Models as in the paper: shapes, gradients, block structure and the preset registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stagepose.errors import ModelError
from stagepose.models import MODELS, BottleneckResidual, InvertedResidual, build_model, get_preset
from stagepose.models.checkpoint import load_model, save_weights


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_shape_and_backward(name: str) -> None:
    preset = get_preset(name)
    model = build_model(name).train()
    x = torch.randn(2, 3, 64, 64)  # smallest input the order-4 hourglass accepts keeps this fast
    out = model(x)
    assert out.shape == (2, preset.num_stacks, 16, 16, 16)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    # every stack's head receives gradient (intermediate supervision is possible)
    for head in model.heads:
        assert head.weight.grad.abs().sum() > 0


def test_full_resolution_output_is_64x64_per_stack() -> None:
    model = build_model("lshm-2").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 256))
    assert out.shape == (1, 2, 16, 64, 64)
    features = model.forward_features(torch.randn(1, 3, 256, 256))
    assert len(features) == 2 and features[0].shape == (1, 128, 64, 64)


def test_inverted_residual_is_depthwise_with_expansion() -> None:
    block = InvertedResidual(128, 128, expand_ratio=2)
    depthwise = block.depthwise[0]
    assert isinstance(depthwise, nn.Conv2d)
    assert depthwise.groups == depthwise.in_channels == depthwise.out_channels == 256
    assert block.expand[0].out_channels == 256 and block.project[0].out_channels == 128
    assert isinstance(block.expand[2], nn.ReLU6) and isinstance(block.depthwise[2], nn.ReLU6)
    # linear projection: BN but no activation after the last 1x1
    assert len(block.project) == 2 and isinstance(block.project[1], nn.BatchNorm2d)
    assert isinstance(block.skip, nn.Identity)


def test_bottleneck_residual_widths() -> None:
    block = BottleneckResidual(256, 256)
    assert [block.reduce[0].out_channels, block.spatial[0].out_channels, block.restore[0].out_channels] == [
        128,
        128,
        256,
    ]
    assert block.spatial[0].groups == 1


def _blocks(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def test_presets_differ_where_they_say() -> None:
    teacher, lshm4, lshm2 = (build_model(n) for n in ("teacher-hg8", "lshm-4", "lshm-2"))
    assert (teacher.num_stacks, lshm4.num_stacks, lshm2.num_stacks) == (8, 4, 2)
    assert _blocks(teacher, BottleneckResidual) and not _blocks(teacher, InvertedResidual)
    assert _blocks(lshm4, InvertedResidual) and not _blocks(lshm4, BottleneckResidual)
    assert teacher.heads[0].in_channels == 256 and lshm4.heads[0].in_channels == 128
    n_params = [sum(p.numel() for p in m.parameters()) for m in (teacher, lshm4, lshm2)]
    assert n_params[0] > n_params[1] > n_params[2]


def test_non_default_options_change_the_modules() -> None:
    wide = build_model("lshm-2", expand_ratio=4)
    block = _blocks(wide, InvertedResidual)[-1]
    assert block.depthwise[0].groups == 4 * block.project[0].out_channels
    narrow = build_model("lshm-2", channels=64)
    assert narrow.heads[0].in_channels == 64
    shallow = build_model("lshm-2", depth=2)
    assert shallow.hourglasses[0].depth == 2


def test_unknown_preset_lists_known_names() -> None:
    with pytest.raises(ModelError, match="teacher-hg8.*lshm-4.*lshm-2"):
        build_model("lshm-3")
    with pytest.raises(ModelError, match="unknown preset field"):
        get_preset("lshm-2", width=3)


def test_bad_constructor_args_raise_value_error() -> None:
    with pytest.raises(ValueError):
        InvertedResidual(8, 8, expand_ratio=0)
    with pytest.raises(ValueError):
        build_model("lshm-2", num_stacks=0)


def test_weights_round_trip_strict(tmp_path) -> None:
    model = build_model("lshm-2").eval()
    path = save_weights(tmp_path / "w.safetensors", model, "lshm-2")
    loaded, preset = load_model(path)
    assert preset.name == "lshm-2"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(ModelError, match="checkpoint is preset 'lshm-2'"):
        load_model(path, preset="lshm-4")
    # weights of another preset under a wrong name do not load silently
    other = save_weights(tmp_path / "o.safetensors", build_model("lshm-4"), "lshm-2")
    with pytest.raises(ModelError, match="do not fit preset"):
        load_model(other)
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
