"""The keypoint record: rotation by size and age, and write errors under a real file-size limit."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from stagepose.show.record import KeypointRecorder, RecordConfig, part_path, read_record

REPO = Path(__file__).resolve().parents[1]


def _frame(recorder: KeypointRecorder, seq: int) -> None:
    recorder.write_frame(
        t_capture=1_700_000_000.0 + seq / 30, camera="cam1", performer="p1", seq=seq, status="tracked",
        raw=np.full((16, 2), 100.0), raw_confidence=np.full(16, 0.5), smoothed=np.full((16, 2), 101.0),
    )  # fmt: skip


def _lines(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n"), f"{path.name} ends in a torn line"
    return [json.loads(line) for line in text.splitlines()]  # every line is whole JSON


@pytest.mark.parametrize(
    "fields",
    [{"rotate_mb": 0}, {"rotate_mb": -1}, {"rotate_mb": float("nan")}, {"rotate_minutes": 0},
     {"rotate_minutes": 1e9}, {"retry_interval_s": 0}, {"retry_interval_s": float("inf")}],
)  # fmt: skip
def test_record_config_rejects_out_of_range_rotation_and_retry(fields: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(fields))):
        RecordConfig(path="r.jsonl", **fields)


def test_size_rotation_writes_numbered_parts_each_with_its_header(tmp_path: Path) -> None:
    config = RecordConfig(path="keypoints.jsonl", rotate_mb=0.005)  # 5 kB parts
    base = tmp_path / "keypoints.jsonl"
    part_path(base, 7).write_text('{"type":"header"}\n')  # a part from an earlier run is never appended to
    with KeypointRecorder.from_config(base, config, metadata={"show": "t"}) as recorder:
        for seq in range(40):
            _frame(recorder, seq)
    parts = sorted(tmp_path.glob("keypoints.*.jsonl"))
    assert parts[0].name == "keypoints.0007.jsonl" and len(_lines(parts[0])) == 1
    written = parts[1:]
    assert [p.name for p in written] == [f"keypoints.{n:04d}.jsonl" for n in range(8, 8 + len(written))]
    assert len(written) >= 3 and recorder.paths == written
    seqs = []
    for number, part in enumerate(written, start=8):
        lines = _lines(part)
        assert lines[0]["type"] == "header" and lines[0]["part"] == number and lines[0]["show"] == "t"
        assert part.stat().st_size < 5000 + 1500  # rotates at the first line past the size
        seqs += [line["seq"] for line in lines[1:]]
    assert seqs == list(range(40)) and not base.exists()


def test_time_rotation_starts_a_part_when_the_current_one_is_old(tmp_path: Path) -> None:
    now = [0.0]
    with KeypointRecorder(tmp_path / "r.jsonl", rotate_s=60.0, clock=lambda: now[0]) as recorder:
        for seq in range(6):
            _frame(recorder, seq)
            now[0] += 25.0  # frames at 0, 25, 50 | 75, 100, 125 | ...
    parts = sorted(tmp_path.glob("r.*.jsonl"))
    assert [[r.get("seq") for r in _lines(p)] for p in parts] == [[None, 0, 1, 2], [None, 3, 4, 5]]


_FULL_DISK = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as np
    from stagepose.show.record import KeypointRecorder
    resource.setrlimit(resource.RLIMIT_FSIZE, (6000, resource.RLIM_INFINITY))  # the disk is "full" at 6 kB
    raw = np.full((16, 2), 100.0)
    kw = dict(camera="c", performer="p", status="tracked", raw=raw, raw_confidence=np.ones(16), smoothed=raw)
    with KeypointRecorder(sys.argv[1], retry_interval_s=0.3) as rec:
        for seq in range(40):
            rec.write_frame(t_capture=float(seq), seq=seq, **kw)  # never raises
        failed = dict(error=rec.error, lost=rec.lines_lost, errors=rec.write_errors)
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)  # space freed
        rec.write_frame(t_capture=40.0, seq=40, **kw)  # within the retry interval: dropped, not tried
        tries_before = rec.write_errors
        time.sleep(0.35)
        rec.write_frame(t_capture=41.0, seq=41, **kw)
    print(json.dumps(dict(failed=failed, tries_before=tries_before, after=rec.error, lost=rec.lines_lost)))
    """
)


def test_write_error_keeps_whole_lines_reports_and_retries_at_a_bounded_rate(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    run = subprocess.run([sys.executable, "-c", _FULL_DISK, str(path)], capture_output=True, text=True, timeout=60,
                         cwd=REPO)  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert "27" in report["failed"]["error"] and report["failed"]["lost"] > 20  # EFBIG, reported
    assert report["failed"]["errors"] <= 2  # one failure, then no retry inside 0.3 s: bounded rate
    assert report["tries_before"] == report["failed"]["errors"]
    assert report["after"] is None  # writing again
    assert "write failed" in run.stderr and "writing again" in run.stderr
    lines = _lines(path)  # whole lines only, though the limit cut a line in two
    resumed = [r for r in lines if r["type"] == "record_resumed"]
    assert len(resumed) == 1 and resumed[0]["lines_lost"] == report["lost"]
    assert lines[-1]["seq"] == 41 and lines == read_record(path)
