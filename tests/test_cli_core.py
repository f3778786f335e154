"""The console script and `model-info`."""

from __future__ import annotations

import json

import pytest

from stagepose.cli import main
from stagepose.models import build_model, get_preset
from stagepose.models.info import measure


def test_model_info_json_is_what_the_counter_measures(capsys) -> None:
    assert main(["model-info", "lshm-2", "--json", "--input-size", "128"]) == 0
    report = json.loads(capsys.readouterr().out)
    stats = measure(get_preset("lshm-2"), (128, 128))
    params = sum(p.numel() for p in build_model("lshm-2").parameters()) / 1e6
    assert report["lshm-2"]["params_m"] == pytest.approx(params, abs=1e-3)
    assert report["lshm-2"]["gflops"] == pytest.approx(stats.gflops, abs=1e-3)
    assert report["lshm-2"]["gflops"] == pytest.approx(2 * report["lshm-2"]["gmacs"], abs=2e-3)
    assert report["lshm-2"]["paper"]["label"] == "LSHM_2"


def test_compute_scales_with_input_area() -> None:
    small = measure(get_preset("lshm-2"), (128, 128)).gflops
    large = measure(get_preset("lshm-2"), (256, 256)).gflops
    assert large == pytest.approx(4 * small, rel=0.01)


def test_user_error_is_a_message_not_a_traceback(capsys) -> None:
    assert main(["model-info", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown model preset 'nope'" in err and "Traceback" not in err
