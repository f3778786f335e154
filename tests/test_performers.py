"""Several performers per camera, with stable names (issue 13 part 2).

Config: the ``performers`` section, the old form (still loads, with a line saying how to convert), mixed
forms and unknown cameras refused with the line. Assignment on synthetic poses: overlap keeps one name,
a crossing does not swap, a bystander outside every zone is never named. Pipeline: two performers in one
camera give two results per frame from one inference call (the shipped model on the CPU). Real footage:
the pose2sim_multi duet, names kept and the bystander ignored, as recorded and shifted by a pixel (skipped
without ``../shared``).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml
from show_support import DEMO_CLIP, REPO, SHARED_DATA, base_show, write_show

from stagepose.errors import ConfigError
from stagepose.show.assign import Candidate, SamePerson, TrackView, assign, poses_overlap
from stagepose.show.config import load_show
from stagepose.show.convert import convert_show_file
from stagepose.show.tracking import PerformerTracker, TrackingConfig

SHIPPED = REPO / "engines" / "lshm2_campaign_lspet_128.onnx"
DUET_SHOW = Path(__file__).with_name("shows") / "duet.yaml"
DUET_CLIP = SHARED_DATA / "video" / "pose2sim_multi" / "cam01.mp4"
LEFT = [[0, 0], [500, 0], [500, 1080], [0, 1080]]
RIGHT = [[500, 0], [1920, 0], [1920, 1080], [500, 1080]]


def _two_performer_show(tmp_path: Path, **extra: object) -> dict:
    config = base_show(SHIPPED, str(DEMO_CLIP), 9)
    del config["cameras"][0]["performer"]
    config["performers"] = [
        {"name": "alice", "cameras": {"cam1": LEFT}},
        {"name": "bob", "osc_name": "bob_osc", "cameras": {"cam1": "anywhere"}},
    ]
    config.update(extra)
    return config


# --- config ---------------------------------------------------------------------------------------------


def test_performers_section_loads(tmp_path: Path) -> None:
    show = load_show(write_show(tmp_path, _two_performer_show(tmp_path)))
    assert [(p.name, p.address) for p in show.cast] == [("alice", "alice"), ("bob", "bob_osc")]
    assert [p.name for p in show.performers_of("cam1")] == ["alice", "bob"]
    assert show.cast[0].zone("cam1") == [tuple(map(float, p)) for p in LEFT] and show.cast[1].zone("cam1") is None


def test_old_form_loads_with_a_line_saying_how_to_convert(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_show(tmp_path, base_show(SHIPPED, str(DEMO_CLIP), 9, zone=LEFT))
    with caplog.at_level(logging.WARNING):
        show = load_show(path)
    assert [(p.name, p.zone("cam1")) for p in show.cast] == [("p1", [tuple(map(float, p)) for p in LEFT])]
    assert "stagepose convert-show" in caplog.text and str(path) in caplog.text


def test_mixed_forms_are_refused_at_the_line(tmp_path: Path) -> None:
    config = _two_performer_show(tmp_path)
    config["cameras"][0]["zone"] = [list(p) for p in LEFT]  # a copy: the same list twice is a YAML alias
    path = write_show(tmp_path, config)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.strip().startswith("zone:"))
    with pytest.raises(ConfigError, match=rf"show.yaml:{line}: field 'cameras\[0\].zone': .*performers"):
        load_show(path)


def test_a_performer_in_an_unknown_camera_is_refused_at_the_line(tmp_path: Path) -> None:
    config = _two_performer_show(tmp_path)
    config["performers"][1]["cameras"] = {"cam9": "anywhere"}
    path = write_show(tmp_path, config)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "cam9" in text)
    with pytest.raises(ConfigError, match=rf"show.yaml:{line}: field 'performers\[1\].cameras.cam9': no camera"):
        load_show(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["performers"][1].update(name="alice", osc_name=None), "names must be unique"),
        (lambda c: c["performers"][0]["cameras"].update(cam1="somewhere"), "cam1"),
        (lambda c: c["performers"][0]["cameras"].update(cam1=[[0, 0], [1, 1]]), "at least 3 points"),
        (lambda c: c["tracking"].update(search_windows=-1), "search_windows"),
    ],
)
def test_bad_performers_are_one_clear_line(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    config = _two_performer_show(tmp_path)
    change(config)
    with pytest.raises(ConfigError, match=message) as info:
        load_show(write_show(tmp_path, config))
    assert "\n" not in str(info.value) and "show.yaml" in str(info.value)


def test_convert_show_writes_the_new_form_that_loads_the_same_cast(tmp_path: Path) -> None:
    old = write_show(tmp_path, base_show(SHIPPED, str(DEMO_CLIP), 9, zone=LEFT), "old.yaml")
    assert convert_show_file(old, tmp_path / "new.yaml") == 1
    new = yaml.safe_load((tmp_path / "new.yaml").read_text())
    assert "performer" not in new["cameras"][0] and new["performers"][0]["name"] == "p1"
    assert load_show(tmp_path / "new.yaml").cast == load_show(old).cast
    with pytest.raises(ConfigError, match="already has a 'performers' section"):
        convert_show_file(tmp_path / "new.yaml", tmp_path / "again.yaml")
    with pytest.raises(ConfigError, match="is the show file itself"):
        convert_show_file(old, old)


def test_shipped_show_configs_use_the_new_form() -> None:
    for name in ("demo.yaml", "symphony.yaml"):
        data = yaml.safe_load((REPO / "show_configs" / name).read_text())
        assert "performers" in data and not any("performer" in c for c in data["cameras"]), name


# --- assignment (synthetic poses) -------------------------------------------------------------------------


def _pose(centre: tuple[float, float], height: float = 400.0, conf: float = 0.9) -> Candidate:
    ys = np.linspace(-0.5, 0.5, 16) * height
    xs = np.tile([-0.1, 0.1], 8) * height
    joints = np.stack([centre[0] + xs, centre[1] + ys], axis=1)
    return Candidate(joints, np.full(16, conf), np.ones(16, bool))


SAME = SamePerson(overlap=0.15, body_radius=0.08, body_share=0.8)


def _view(prediction: tuple[float, float] | None, own: int, qualifies: list[bool]) -> TrackView:
    return TrackView(None if prediction is None else (np.array(prediction), 500.0), own, qualifies)


def test_two_tracks_on_one_person_one_keeps_the_name() -> None:
    # Both crops found the same person (at 610 and 600); track 0 predicted them at 600, track 1 at 800.
    same = [_pose((610, 500)), _pose((600, 505))]
    assert poses_overlap(same[0], same[1], 0.15)
    taken = assign([_view((600, 500), 0, [True, True]), _view((800, 500), 1, [True, True])], same,
                   gate=0.5, same=SAME)  # fmt: skip
    assert taken[0] is not None and taken[1] is None


def test_a_crossing_does_not_swap_names() -> None:
    # A walks right in front (lower in the image), B walks left behind (higher), crossing in x as in the duet
    # clip; each frame both crops see both people, so there are two copies of each pose to choose from.
    ya, yb = 600.0, 420.0
    tracks = {"A": np.array([300.0, ya]), "B": np.array([900.0, yb])}
    for step in range(13):
        a, b = 300.0 + 50 * step, 900.0 - 50 * step
        candidates = [_pose((b, yb)), _pose((a, ya)), _pose((a + 3, ya + 2)), _pose((b - 2, yb - 1))]
        views = [_view(tuple(tracks["A"]), 0, [True] * 4), _view(tuple(tracks["B"]), 1, [True] * 4)]
        taken = assign(views, candidates, gate=0.5, same=SAME)
        got = {name: candidates[c].centre for name, c in zip("AB", taken) if c is not None}
        assert abs(got["A"][0] - a) < 10 and abs(got["B"][0] - b) < 10, step
        tracks = got


def test_with_floor_positions_the_nearest_on_the_stage_wins() -> None:
    # Two people overlap in the image (the one behind stands higher up, 60 px away); on the floor they are
    # 3 m apart. The track followed the one at (1.0, 2.0) m: the image alone would pick the nearer pose.
    behind = dataclasses.replace(_pose((600, 500)), floor=np.array([1.0, 5.0]))
    front = dataclasses.replace(_pose((660, 520)), floor=np.array([1.1, 2.1]))
    image_only = TrackView((np.array([605.0, 500.0]), 500.0), 0, [True, True])
    on_floor = dataclasses.replace(image_only, floor=(np.array([1.0, 2.0]), 1.75))  # tracking.assign_on_floor
    assert assign([image_only], [behind, front], gate=0.5, same=SAME) == [0]
    assert assign([on_floor], [behind, front], gate=0.5, same=SAME) == [1]
    # 3 m away is beyond the gate (0.5 x 1.75 m): not that performer, however near in the image
    assert assign([on_floor], [behind], gate=0.5, same=SAME) == [None]


def test_acquiring_in_overlapping_zones_each_takes_the_person_wholly_inside_its_zone() -> None:
    # The partner's pose is the surer one and half inside the lead's zone too; the lead is wholly in his. Each
    # track's own (zone) crop happened to show the other person.
    lead, partner = _pose((400, 600), conf=0.6), _pose((800, 1200), conf=0.95)
    views = [TrackView(None, 1, [True, True], zone_share=[1.0, 0.5]),
             TrackView(None, 0, [True, True], zone_share=[0.6, 1.0])]  # fmt: skip
    assert assign(views, [lead, partner], gate=0.5, same=SAME) == [0, 1]
    blind = [TrackView(None, 1, [True, True]), TrackView(None, 0, [True, True])]
    assert assign(blind, [lead, partner], gate=0.5, same=SAME) == [1, 0]  # by confidence alone: swapped


def test_a_bystander_outside_every_zone_is_never_named() -> None:
    tracking = TrackingConfig()
    left, right = (PerformerTracker(tracking, 1.0, np.array(z, np.float32)) for z in (LEFT, RIGHT))
    bystander = _pose((250, 500))  # inside LEFT only
    left_only = [bystander]
    views = [_view(None, 0, [right.qualifies(c.joints, c.confidence) for c in left_only])]
    assert assign(views, left_only, gate=0.5, same=SAME) == [None]  # the right performer searches on
    assert left.qualifies(bystander.joints, bystander.confidence)


def test_a_searching_track_never_takes_a_pose_already_named() -> None:
    named, other = _pose((600, 500)), _pose((1400, 500))
    candidates = [named, _pose((605, 498), conf=1.0), other]
    taken = assign([_view((600, 500), 0, [True] * 3), _view(None, 1, [True] * 3)], candidates, gate=0.5, same=SAME)
    assert taken == [0, 2]  # the surer copy of A's pose is A's person: the searcher takes the other one


def test_a_pose_the_performers_look_refuses_is_not_taken_however_near() -> None:
    # `stagepose.show.appearance`: the nearer pose has the other performer's torso colours
    near, other = _pose((600, 500)), _pose((700, 500))
    view = _view((600, 500), 0, [True, True])
    assert assign([view], [near, other], gate=0.5, same=SAME) == [0]
    assert assign([dataclasses.replace(view, refused=[True, False])], [near, other], gate=0.5, same=SAME) == [1]
    assert assign([dataclasses.replace(view, refused=[True, True])], [near, other], gate=0.5, same=SAME) == [None]
    searching = TrackView(None, 0, [True, True], refused=[True, False])
    assert assign([searching], [near, other], gate=0.5, same=SAME) == [1]


# An upright stick figure in MPII joint order, in pose heights from its middle.
FIGURE = np.array([
    (0.08, 0.5), (0.08, 0.25), (0.08, 0.0), (-0.08, 0.0), (-0.08, 0.25), (-0.08, 0.5),  # r/l leg
    (0.0, 0.0), (0.0, -0.33), (0.0, -0.4), (0.0, -0.5),  # pelvis, thorax, upper neck, head top
    (0.16, 0.0), (0.15, -0.15), (0.12, -0.33), (-0.12, -0.33), (-0.15, -0.15), (-0.16, 0.0),  # r/l arm
])  # fmt: skip


def _figure(centre: tuple[float, float], height: float, seen: np.ndarray | None = None) -> Candidate:
    joints = np.asarray(centre) + FIGURE * height
    return Candidate(joints, np.full(16, 0.8), np.ones(16, bool) if seen is None else seen)


def test_a_partial_pose_on_someone_is_that_person() -> None:
    # The partner seen whole, and a crop's pose of only her upper body, labelled as a whole body at half
    # the scale (its 'knees' on her chest): joint labels do not coincide, the body does.
    partner = _figure((800, 1200), 900)
    upper = Candidate(np.asarray((800, 1000)) + FIGURE * 450, np.full(16, 0.8), np.ones(16, bool))
    assert not poses_overlap(upper, partner, 0.15)
    assert SAME(upper, partner) and SAME(partner, upper)
    assert not SAME(_figure((300, 700), 900), partner)  # someone else beside her


def test_a_searching_track_does_not_take_a_mix_with_a_named_person() -> None:
    partner = _figure((800, 1200), 900)
    # half its joints on the partner's legs, half in the empty floor beside her
    mixed_joints = np.where(np.arange(16)[:, None] < 8, partner.joints + [0, 0], partner.joints + [500, 0])
    mixed = Candidate(mixed_joints, np.full(16, 0.95), np.ones(16, bool))
    lead = _figure((400, 600), 700)
    taken = assign([_view((800, 1200), 0, [True] * 3), _view(None, 1, [True] * 3)], [partner, mixed, lead],
                   gate=0.5, same=SAME)  # fmt: skip
    assert taken == [0, 2]  # the surer mixed pose is refused, the lead found


def test_joints_on_someone_in_front_are_occluded() -> None:
    from stagepose.show.bodies import in_front, on_body

    front = _figure((800, 1200), 900)  # feet at y 1650: nearer the camera
    back = _figure((700, 800), 800)  # feet at y 1200, legs behind her torso
    assert in_front(front.joints, front.seen, back.joints, back.seen)
    hidden = on_body(back.joints, back.seen, front.joints, front.seen, 0.08)
    legs = [0, 1, 4, 5]
    assert hidden[legs].all() and not hidden[[7, 8, 9]].any()  # legs hidden, head and neck seen


def test_search_windows_rotate_inside_the_zone() -> None:
    tracker = PerformerTracker(TrackingConfig(search_heights=(0.5, 0.3)), 1.0, np.array(RIGHT, np.float32))
    seen = [w for _ in range(20) for w in tracker.windows((1920, 1080), 3)]
    assert len({w.center for w in seen}) > 6 and all(w.center[0] >= 500 for w in seen)
    assert {round(w.size[1]) for w in seen} == {540, 324}


def test_with_a_stage_calibration_windows_frame_a_person_standing_there() -> None:
    import functools

    from stagepose.calibration.mapper import StageMapper
    from stagepose.show.search import standing_windows

    mapper = StageMapper.from_file(REPO / "calibration" / "cam01.yaml", (1088, 1920))
    head_of = functools.partial(mapper.head_pixels, height_m=1.75)
    zone = np.array([[180, 700], [1088, 700], [1088, 1900], [180, 1900]], np.float32)
    windows = standing_windows(zone, (1088, 1920), head_of, 1.0)
    assert 4 <= len(windows) <= 64
    sizes = [w.size[1] for w in windows]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > 2 * sizes[-1]  # near the camera: larger
    for feet in ([400.0, 1400.0], [700.0, 1800.0], [900.0, 1000.0]):
        head = head_of(np.array([feet]))[0]
        person = float(np.hypot(*(head - feet)))
        holding = [w for w in windows
                   if all(abs(p[i] - w.center[i]) <= w.size[i] / 2 for p in (feet, head) for i in (0, 1))]  # fmt: skip
        assert holding, feet  # some window holds this person whole
        assert min(abs(w.size[1] / (1.25 * person) - 1) for w in holding) < 0.35, feet  # at the training scale


# --- pipeline (the shipped model) -------------------------------------------------------------------------


class CountingBackend:
    """A real backend that counts its inference calls and batch sizes."""

    def __init__(self, backend) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.calls = backend, []

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(len(batch))
        return self.inner.infer(batch)


def test_two_performers_in_one_camera_two_results_per_frame_one_batch(tmp_path: Path) -> None:
    import av

    from stagepose.runtime.backends.base import BackendConfig
    from stagepose.runtime.backends.select import open_backend
    from stagepose.show.pipeline import PosePipeline
    from stagepose.show.sources import Frame

    show = load_show(write_show(tmp_path, _two_performer_show(tmp_path)))
    show = dataclasses.replace(show, tracking=dataclasses.replace(show.tracking, search_windows=2))
    with av.open(str(DEMO_CLIP)) as container:
        images = [f.to_ndarray(format="bgr24") for _, f in zip(range(4), container.decode(video=0))]
    with open_backend(BackendConfig(SHIPPED, backend="onnxruntime", device="cpu", threads=1)) as opened:
        backend = CountingBackend(opened)
        pipeline = PosePipeline(show, backend)  # type: ignore[arg-type]
        for i, image in enumerate(images):
            results = pipeline.process([Frame(image=image, t_capture=10.0 + i / 60, camera_id="cam1", seq=i)])
            assert [r.performer for r in results] == ["alice", "bob_osc"] and [r.seq for r in results] == [i, i]
        assert len(backend.calls) == len(images)  # one inference call per frame, all crops in it
        assert max(backend.calls) <= 2 + 2  # a crop per performer + at most search_windows windows
        lost = pipeline.no_frame("cam1", 20.0)
        assert [(r.performer, r.status) for r in lost] == [("alice", "lost"), ("bob_osc", "lost")]


def test_a_calibrated_camera_searches_with_standing_windows(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import functools

    from stagepose.calibration.mapper import StageMapper
    from stagepose.runtime.backends.base import BackendConfig
    from stagepose.runtime.backends.select import open_backend
    from stagepose.show import pipeline as pipeline_module
    from stagepose.show.pipeline import PosePipeline
    from stagepose.show.search import standing_windows
    from stagepose.show.sources import Frame

    calibration = REPO / "calibration" / "cam01.yaml"  # 1088x1920: a blank frame of that size is enough
    config = base_show(SHIPPED, str(DEMO_CLIP), 9, zone=[[180, 700], [1088, 700], [1088, 1900], [180, 1900]],
                       calibration=str(calibration))  # fmt: skip
    config["cameras"][0]["uri"] = "rtsp://127.0.0.1:9/none"  # a live feed: its size comes with its frames
    config["tracking"] = {"search_windows": 64, "min_joints": 16, "min_confidence": 0.99}  # never finds anyone
    show = load_show(write_show(tmp_path, config))
    sizes: list[float] = []
    real = pipeline_module.crop_affine
    spy = lambda c, size, out: sizes.append(size[1]) or real(c, size, out)  # noqa: E731
    monkeypatch.setattr(pipeline_module, "crop_affine", spy)
    with open_backend(BackendConfig(SHIPPED, backend="onnxruntime", device="cpu", threads=1)) as backend:
        pipeline = PosePipeline(show, backend)
        pipeline.process([Frame(image=np.zeros((1920, 1088, 3), np.uint8), t_capture=1.0, camera_id="cam1", seq=0)])
    mapper = StageMapper.from_file(calibration, (1088, 1920))
    zone = np.array(show.cast[0].zone("cam1"), np.float32)
    expected = standing_windows(zone, (1088, 1920), functools.partial(mapper.head_pixels, height_m=1.75), 1.0)
    assert sorted(sizes[1:]) == pytest.approx(sorted(w.size[1] for w in expected)[: len(sizes) - 1])
    assert len(sizes) == 1 + min(64, len(expected))  # the zone box, then the standing windows


# --- real footage -----------------------------------------------------------------------------------------

# Who is where on the clip, read by hand off frames 0-99 (every 10th, and 95) with a pixel grid: the
# middle of each person's torso (shoulders to hips), image pixels, linearly interpolated between frames.
# The lead walks right behind the partner, who stands near the camera; the bystander stays at x < 200.
LEAD_TORSO = {
    0: (430, 650), 10: (450, 650), 20: (500, 680), 30: (450, 700), 40: (500, 700), 50: (560, 700),
    60: (600, 720), 70: (620, 720), 80: (600, 770), 90: (640, 790), 95: (700, 800), 99: (720, 820),
}  # fmt: skip
PARTNER_TORSO = {0: (780, 1200), 40: (820, 1200), 60: (740, 1200), 80: (760, 1200), 90: (760, 1200), 99: (770, 1200)}
TORSO_JOINTS = [2, 3, 6, 7, 12, 13]  # hips, pelvis, thorax, shoulders


def _torso_at(table: dict[int, tuple[int, int]], frame: int) -> np.ndarray:
    keys = sorted(table)
    return np.array([np.interp(frame, keys, [table[k][axis] for k in keys]) for axis in (0, 1)])


NOBODY_PX = 400  # further than this from both torsos (hand-read to about 150 px): on nobody


def identity(raw: np.ndarray, conf: np.ndarray, frame: int, min_confidence: float) -> str:
    """Whose body a named pose is on: the median of its confident torso joints (all confident joints
    with fewer than 2 torso joints) nearest the lead's or the partner's torso; B for the bystander, N for
    nobody (the anatomical skeleton on its stand behind the lead looks like a person to the model), '.' for
    no pose (no joint measured: a track coasting through a miss sends its smoother's prediction)."""
    seen = conf >= min_confidence
    if not seen.any():
        return "."  # no measurement (the track coasts on its smoother): on nobody in particular
    torso = [j for j in TORSO_JOINTS if seen[j]]
    x, y = np.median(raw[torso] if len(torso) >= 2 else raw[seen], axis=0)
    if x < 200 and y < 800:
        return "B"
    lead = np.hypot(*(np.array([x, y]) - _torso_at(LEAD_TORSO, frame)))
    partner = np.hypot(*(np.array([x, y]) - _torso_at(PARTNER_TORSO, frame)))
    if min(lead, partner) > NOBODY_PX:
        return "N"
    return "L" if lead < partner else "P"


# Measured (tests/shows/duet.yaml, ONNX Runtime CPU, OpenCV 5.0, the campaign model of step 18,585): lead 0.97
# tracked, partner 1.0, no swap, none on nobody, the bystander never named. With step 6372: lead 0.91, partner
# 1.0, the same with the clip shifted by a pixel (0.93/1.0) or re-encoded (0.93/1.0). Before performers were
# told apart by their torso colours (`stagepose.show.appearance`) the outcome flipped with tiny numeric changes:
# the same model with OpenCV 5.1
# put the lead on the anatomical skeleton for 21 frames, the shifted clip gave 3 swaps, and the later models
# of the same run (steps 7434, 8496) swapped names. The step-3186 model with the assignment of that time: lead
# 0.94 but on the partner from frame 52 on (its own pose of the partner mixes in the lead's legs).
MIN_TRACKED = {"lead": 0.85, "partner": 0.95}  # margin for model updates
MAX_SWAPS = {"lead": 0, "partner": 0}
# Tracked frames on nobody: 0 now; 16 (the lead's last frames, on the anatomical skeleton) before a lost
# performer was looked for where they were last seen (`TrackingConfig.reacquire_frames`).
MAX_ON_NOBODY = 2


def _shifted_clip(source: Path, out: Path) -> Path:
    """The clip moved one pixel right and down (edge pixels repeated), re-encoded almost losslessly: every crop,
    decode and colour sample lands a little differently, as with another OpenCV build or camera."""
    import av

    with av.open(str(source)) as inp, av.open(str(out), "w") as dst:
        video = inp.streams.video[0]
        stream = dst.add_stream("libx264", rate=video.average_rate or 30)
        stream.width, stream.height, stream.pix_fmt = video.codec_context.width, video.codec_context.height, "yuv420p"
        stream.options = {"crf": "10", "preset": "veryfast"}
        for frame in inp.decode(video=0):
            image = np.pad(frame.to_ndarray(format="bgr24"), ((1, 0), (1, 0), (0, 0)), mode="edge")[:-1, :-1]
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return out


@pytest.mark.skipif(not DUET_CLIP.is_file(), reason=f"{DUET_CLIP} not present (../shared data)")
@pytest.mark.parametrize("clip", ["recorded", "shifted"])
def test_duet_keeps_both_names_and_ignores_the_bystander(tmp_path: Path, clip: str) -> None:
    """The shipped model on the duet, as recorded and shifted by a pixel: the outcome must not hang on
    sub-pixel luck (the shifted replay adds about 30 s)."""
    from stagepose.show.record import read_record
    from stagepose.show.replay import run_replay

    show = load_show(DUET_SHOW, replay_inputs=1)
    video = DUET_CLIP if clip == "recorded" else _shifted_clip(DUET_CLIP, tmp_path / "shifted.mp4")
    summary = run_replay(show, [video], tmp_path / "duet", progress=False)
    frames = [r for r in read_record(tmp_path / "duet" / "keypoints.jsonl") if r["type"] == "frame"]
    times = sorted({r["t"] for r in frames})
    for name, want in (("lead", "L"), ("partner", "P")):
        assert summary.tracked_fraction[name] >= MIN_TRACKED[name], summary.tracked_fraction
        ids = [
            identity(np.array(r["raw"], float), np.array(r["raw_conf"], float), times.index(r["t"]),
                     show.tracking.min_confidence)  # fmt: skip
            for r in frames
            if r["performer"] == name and r["status"] == "tracked"
        ]
        assert "B" not in ids, f"{name} was given to the bystander"
        ids = [i for i in ids if i != "."]  # coasting through a miss: no pose sent as theirs
        other = "P" if want == "L" else "L"
        # a swap is a pose on the other performer; a pose on nobody ("N": off both torsos, as in the whole-frame
        # start) is not a swap and has its own bound below
        swaps = sum(1 for a, b in zip([want, *ids], ids) if a != other and b == other)
        assert swaps <= MAX_SWAPS[name], "".join(ids)
        assert ids.count("N") <= MAX_ON_NOBODY, "".join(ids)
