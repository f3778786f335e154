"""`stagepose --help` and `stagepose check` start fast: no heavy library is imported to build the parser.

Each check runs in a fresh interpreter, since this test process has imported torch and friends already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "cv2", "av", "onnx", "onnxruntime", "matplotlib", "scipy", "filterpy")


def _imported_after(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; return its exit code and which HEAVY modules it imported."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return {"heavy": json.loads(done.stdout.strip().splitlines()[-1]), "stdout": done.stdout}


def test_building_the_parser_imports_no_heavy_module() -> None:
    result = _imported_after("from stagepose.cli import build_parser\nbuild_parser()")
    assert result["heavy"] == []


def test_help_of_every_command_imports_no_heavy_module() -> None:
    code = (
        "from stagepose.cli import build_parser\n"
        "parser = build_parser()\n"
        "names = list(parser._subparsers._group_actions[0].choices)\n"
        "assert len(names) > 10, names\n"
        "commands = [[name] for name in names]\n"
        "for name, sub in parser._subparsers._group_actions[0].choices.items():\n"
        "    if sub._subparsers is not None:  # actions of a command family: `bench model`, `engine build`\n"
        "        commands += [[name, action] for action in sub._subparsers._group_actions[0].choices]\n"
        "assert ['bench', 'gpu'] in commands, commands\n"
        "for argv in commands:\n"
        "    try:\n"
        "        parser.parse_args([*argv, '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
    )
    assert _imported_after(code)["heavy"] == []


def test_check_without_model_does_not_import_torch() -> None:
    code = "from stagepose.cli import main\nassert main(['check', '--show', 'show_configs/demo.yaml']) == 0\n"
    heavy = _imported_after(code)["heavy"]
    for name in ("torch", "onnxruntime", "matplotlib", "scipy"):  # scipy: filterpy's import alone took 1.5 s
        assert name not in heavy, heavy


def test_an_onnx_show_runs_without_torch_and_the_export_tools(tmp_path: Path) -> None:
    """`make install-onnx-only` leaves out torch, onnx, onnxscript and onnxconverter-common: check, probe and
    live with an ONNX model must not need them."""
    show = tmp_path / "show.yaml"
    show.write_text(
        "show: no-torch\n"
        f"cameras: [{{id: cam1, uri: '{REPO / 'media' / 'pose2sim_cam01.mp4'}?pacing=fast', performer: p1}}]\n"
        f"model: {{path: {REPO / 'engines' / 'lshm2_campaign_lspet_128.onnx'}, backend: onnxruntime, device: cpu}}\n"
        "outputs: {osc: [{name: local, host: 127.0.0.1, port: 9}], record: {path: record.jsonl}}\n"
    )
    code = (
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'onnx', 'onnxscript', 'onnxconverter_common'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r} (not installed on this show machine)')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from stagepose.cli import main\n"
        f"assert main(['check', '--show', {str(show)!r}, '--model']) == 0\n"
        f"assert main(['probe', '--show', {str(show)!r}, '--out', {str(tmp_path / 'still.jpg')!r}]) == 0\n"
        f"assert main(['live', '--show', {str(show)!r}, '--duration', '60']) == 0\n"  # ends with the clip
    )
    result = _imported_after(code)
    assert "stopped: sources ended" in result["stdout"]
    assert (tmp_path / "record.jsonl").stat().st_size > 0


def test_a_command_that_needs_torch_says_so_in_one_line_where_torch_is_missing() -> None:
    """On an ONNX-only show machine, `model-info` (which builds the networks) names what to install."""
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from stagepose.cli import main\n"
        "sys.exit(main(['model-info', 'lshm-2']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs 'torch'" in lines[0] and "make install" in lines[0], lines
