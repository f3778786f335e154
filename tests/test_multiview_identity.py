"""Identity across views on real footage: which pose fusion used as `lead` / `partner` in each camera.

The ``pose2sim_multi`` clips (four synchronised 1088x1920 views, 60 fps, 100 frames; see
``show_configs/pose2sim_multi.yaml``) are replayed once with the shipped show (``association:
by_name``) and the shipped 2D model; every time step's 2D results are also fused with ``association:
epipolar``, and once more with epipolar association after swapping cam02's two tracker names (a
tracker that swapped its performers). The 2D tracking does not depend on the association (each camera
tracks on its own), so one replay serves all three and they judge the same 2D poses. The judge is the
hand-read layout below: at frames 0, 20, 40, 60, 80 and 99, for every view and performer, the torso of
the pose fusion used as that performer (the median of its confident torso joints) must be nearer that
performer's hand-read torso than the other's and within `TOL_PX` ("right"); nearer the other one
("wrong": a swap or a pose on the other performer) fails; "off" (on neither: a 2D pose too poor to
tell) and "none" (no pose of the performer used in that view) are counted. Where a performer's 3D torso
was triangulated from poses judged right in every view it used, it must reproject nearer its hand-read
torso than the other's, within `TOL_3D_PX`, in all four views (both performers are in every view).

Measured (``engines/lshm2_campaign_lspet_128.onnx``, campaign step 18,585, and the show's 2D tracking as of
this test, which other work keeps changing: the counts move by one or two between versions; right of the 6 read
frames per view cam01 / cam02 / cam03 / cam04):

=========================  =======================  ==========================
association                lead                     partner
=========================  =======================  ==========================
by_name                    6 / 6 / 5 / 1  (18)      6 / 6 / 3 / 5  (20)
epipolar                   5 / 6 / 4 / 1  (16)      6 / 6 / 4 / 5  (21)
epipolar, cam02 swapped    the same as epipolar     (by_name: 11 of cam02's 12 wrong)
=========================  =======================  ==========================

No pose was on the other performer before the appearance cue (`tracking.appearance`); with it, cam03's lead
pose at frame 99 (the closest pair, 128 px) is the partner's in all three associations, and stays tolerated.
The rest is the shipped 2D model's weak lead: "off" (by_name 9, epipolar 6: his pose over 150 px from his
torso, cam04 at 0-40 and cam01 at 0 after the whole-frame start, all four views at 80-99 when he bends over)
or "none" (the tracker lost him: cam04 at 60; or epipolar left out a pose that disagrees with his other views:
cam01 at 0, 80 and 99, cam04 at 40); the partner's misses are cam03 at 60-99, where the lead stands in front
of her. Over all 100 frames (the layout interpolated, so roughly), by_name / epipolar right for the lead
45/39, 96/96, 79/79, 6/6 and for the partner 100/100, 100/100, 58/57, 100/100 per view, "off" for the lead
33/7, 4/4, 16/16, 51/46: epipolar leaves out poses that disagree with the other views (at least 8 of 16 joints
still triangulate in 77 / 74 % of the steps for the lead, 100 % for the partner). One "wrong" each, cam03 lead
at frame 83 (torsos 140 px apart, the pose between them). The previous `by_epipolar_named` (groups under 40
px, named by vote) left 30-90 % of the views unnamed (lead right 43, 50, 9, 1; partner 50, 71, 40, 70; 48 % of
the lead's steps with 8+ joints) and, with cam02 swapped, put 21, 32, 2 and 6 of 100 lead poses per view on
the partner. The 3D torsos reproject 3-175 px (partner) and 6-215 px (lead) from the hand-read ones; the
lead's at frame 99 is built from "off" poses only and lands 160-330 px off, nearer the partner in one or two
views (reported, not asserted).

Skipped without ``../shared`` data or the shipped model. About 75-110 s on two busy cores (one replay).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any, NamedTuple

import numpy as np
import pytest
from show_support import REPO, SHARED_DATA

CLIPS = [SHARED_DATA / "video" / "pose2sim_multi" / f"cam0{i}.mp4" for i in range(1, 5)]
SHOW = REPO / "show_configs" / "pose2sim_multi.yaml"
MODEL = REPO / "engines" / "lshm2_campaign_lspet_128.onnx"
CAMERAS = ("cam01", "cam02", "cam03", "cam04")
PERFORMERS = ("lead", "partner")
missing = [str(p) for p in (*CLIPS, SHOW, MODEL) if not p.is_file()]

# --- the hand-read layout ---------------------------------------------------------------------------------

# Where each performer's torso centre is, read by hand off frames 0, 20, 40, 60, 80 and 99 of the four
# ``pose2sim_multi`` clips (1088x1920): each frame decoded with PyAV, cropped around the people with a
# 50 px grid drawn on it (full-resolution coordinates), viewed at 0.5-1.0x, shoulders and hips read off
# the grid (the body's mocap markers help) and converted back to full-resolution pixels. The torso centre
# is the midpoint of the shoulder centre and the hip centre (the hip joints, below the waistband), which
# is where the median of a pose's torso joints (`TORSO_JOINTS`) lands. Read to about +-30 px; the lead
# bends and leans, so his torso moves more than the partner's. Both performers are visible in every view
# of every read frame (the lead hides part of the partner in cam03 from frame 60 on: his head and arm in
# front of her right side; she stays readable).
# cam01 checks tests/test_performers.py's LEAD_TORSO / PARTNER_TORSO (read with another rule): they agree
# in x within 50 px but lie 40-90 px lower (their centre sits between the waistband and the crotch), so
# this file keeps its own reading, with one rule for all four views.
# Where the third person, the bystander, stands (not a performer): cam01 at x < 130 (far left, about
# (60, 500)), cam02 about (800, 620), behind the lead and inside cam02's lead zone; cam03 and cam04 do
# not see her.
READ_FRAMES = (0, 20, 40, 60, 80, 99)
LEAD_TORSO: dict[str, dict[int, tuple[int, int]]] = {
    "cam01": {0: (428, 595), 20: (488, 612), 40: (530, 650), 60: (555, 660), 80: (610, 700), 99: (675, 735)},
    "cam02": {0: (575, 635), 20: (570, 650), 40: (575, 680), 60: (555, 668), 80: (518, 665), 99: (515, 675)},
    "cam03": {0: (658, 730), 20: (568, 712), 40: (505, 722), 60: (490, 695), 80: (425, 652), 99: (378, 655)},
    "cam04": {0: (345, 812), 20: (390, 765), 40: (425, 745), 60: (442, 738), 80: (452, 688), 99: (482, 648)},
}  # fmt: skip
PARTNER_TORSO: dict[str, dict[int, tuple[int, int]]] = {
    "cam01": {0: (808, 1155), 20: (800, 1160), 40: (800, 1160), 60: (755, 1160), 80: (770, 1155), 99: (808, 1150)},
    "cam02": {0: (198, 938), 20: (190, 933), 40: (192, 943), 60: (175, 910), 80: (170, 922), 99: (192, 915)},
    "cam03": {0: (260, 685), 20: (262, 690), 40: (260, 702), 60: (286, 690), 80: (280, 684), 99: (256, 692)},
    "cam04": {0: (762, 600), 20: (760, 595), 40: (752, 635), 60: (778, 595), 80: (770, 600), 99: (748, 605)},
}  # fmt: skip
TORSO_JOINTS = [2, 3, 6, 7, 12, 13]  # hips, pelvis, thorax, shoulders (MPII order)
MIN_CONFIDENCE = 0.2  # the show's multiview.min_confidence: 2D joints below it are not used
TOL_PX = 150  # a pose's torso this far from the hand-read one is "off" (hand-read +-30 px; lead and partner
#             are 120-660 px apart; the shipped 2D model puts the lead's torso up to 350 px off)
TOL_3D_PX = 250  # the triangulated torso reprojected (the lead's first frames are up to 215 px off)
ASSOCIATIONS = ("by_name", "epipolar", "epipolar_cam02_swapped")
# At least this many of the 24 (6 frames x 4 views) judgements per performer are "right", every
# association (a margin for model and tracking updates); "wrong" is bounded by MAX_WRONG below.
MIN_RIGHT = {"lead": 10, "partner": 18}  # measured 16-18 and 20-21 (docstring); 13 and 21-23 with earlier models


def torso_centre(joints: np.ndarray, confidence: np.ndarray) -> np.ndarray | None:
    """(2,) median of the confident torso joints of a (16, 2) pose (of any 4+ confident joints when fewer
    than 2 torso joints are), None when the view has no usable pose."""
    ok = np.isfinite(joints).all(axis=1) & (np.nan_to_num(confidence) >= MIN_CONFIDENCE)
    torso = [j for j in TORSO_JOINTS if ok[j]]
    if len(torso) >= 2:
        return np.median(joints[torso], axis=0)
    if ok.sum() >= 4:
        return np.median(joints[ok], axis=0)
    return None


def verdict(performer: str, camera: str, frame: int, centre: np.ndarray | None) -> str:
    """right / wrong / off / none for a pose used as ``performer`` in ``camera`` at a read frame."""
    if centre is None:
        return "none"
    other = "partner" if performer == "lead" else "lead"
    tables = {"lead": LEAD_TORSO, "partner": PARTNER_TORSO}
    own_px = float(np.hypot(*(centre - tables[performer][camera][frame])))
    other_px = float(np.hypot(*(centre - tables[other][camera][frame])))
    if min(own_px, other_px) > TOL_PX:
        return "off"
    return "right" if own_px < other_px else "wrong"


class Replayed(NamedTuple):
    """The replay's cameras, and per association of `ASSOCIATIONS` its fused steps (each a list of `Pose3D`)."""

    rig: Any
    steps: dict[str, list]


@pytest.fixture(scope="module")
def fused(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    """One replay of the clips with the shipped show, fused with every association of `ASSOCIATIONS`."""
    import stagepose.show.replay3d as replay3d
    from stagepose.cli import main
    from stagepose.show.fuse3d import Fuser3D

    steps: dict[str, list] = {name: [] for name in ASSOCIATIONS}
    rigs = []
    swap = {"lead": "partner", "partner": "lead"}

    class Tapped(Fuser3D):
        """The replay's fusion (the show's by_name), with the other associations fed the same 2D results."""

        def __init__(self, show, cameras, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(show, cameras, *args, **kwargs)
            epipolar = dataclasses.replace(show, multiview=dataclasses.replace(show.multiview, association="epipolar"))
            self.others = {name: Fuser3D(epipolar, cameras, rig=self.rig) for name in ASSOCIATIONS[1:]}
            rigs.append(self.rig)

        def fuse(self, results, t, *args, **kwargs):  # type: ignore[no-untyped-def]
            out = super().fuse(results, t, *args, **kwargs)
            steps[self.association].append(out)
            swapped = [dataclasses.replace(r, performer=swap[r.performer]) if r.camera_id == "cam02" else r
                       for r in results]  # fmt: skip
            for name, fuser in self.others.items():
                steps[name].append(fuser.fuse(swapped if name.endswith("swapped") else results, t, *args, **kwargs))
            return out

    out = tmp_path_factory.mktemp("identity")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(replay3d, "Fuser3D", Tapped)
        args = ["replay", "--show", str(SHOW), "--input", *map(str, CLIPS), "--out", str(out), "--no-progress"]
        assert main([*args, "--max-frames", str(max(READ_FRAMES) + 1)]) == 0
    assert all(len(s) == max(READ_FRAMES) + 1 for s in steps.values()), {k: len(s) for k, s in steps.items()}
    return Replayed(rigs[0], steps)


def verdicts(steps: list) -> dict[tuple[str, str, int], str]:
    """(performer, camera, frame) -> verdict at every read frame."""
    out = {}
    for frame in READ_FRAMES:
        for pose in steps[frame]:
            for v, camera in enumerate(CAMERAS):
                out[pose.performer, camera, frame] = verdict(
                    pose.performer, camera, frame, torso_centre(pose.joints2d[v], pose.conf2d[v])
                )
    return out


def tally(found: dict[tuple[str, str, int], str]) -> str:
    """Per performer and camera: right/wrong/off/none (for messages and the docstring)."""
    rows = []
    for performer in PERFORMERS:
        cells = []
        for camera in CAMERAS:
            c = Counter(v for (p, cam, _), v in found.items() if p == performer and cam == camera)
            cells.append(f"{c['right']}/{c['wrong']}/{c['off']}/{c['none']}")
        rows.append(f"{performer}: " + "  ".join(cells))
    return "; ".join(rows)


def test_the_layout_tells_the_performers_apart() -> None:
    """The hand-read torsos are inside the frame and far enough apart for the nearer-torso judgement."""
    for camera in CAMERAS:
        assert sorted(LEAD_TORSO[camera]) == sorted(PARTNER_TORSO[camera]) == list(READ_FRAMES)
        for frame in READ_FRAMES:
            lead, partner = np.array(LEAD_TORSO[camera][frame]), np.array(PARTNER_TORSO[camera][frame])
            assert ((0, 0) <= lead).all() and (lead < (1088, 1920)).all()
            assert ((0, 0) <= partner).all() and (partner < (1088, 1920)).all()
            assert np.hypot(*(lead - partner)) > 120, (camera, frame)  # cam03 frame 99 is the closest: 128 px


# One read view per association may show a pose on the other performer, wherever it is: where the lead's crop
# holds part of the partner, the 2D model can return a chimera (upper body on one, hips and legs on the other),
# and which performer its torso median lands on moves between model versions (cam03 lead at frame 99 with the
# step-6,372 model; cam04's partner pose at frame 80, named lead by epipolar agreement with cam03's chimera, with
# step 14,337's). A tracker or association that swaps performers makes many: cam02 swapped and named by_name
# gives 11 of its 12 read views wrong.
MAX_WRONG = 1


@pytest.mark.slow
@pytest.mark.skipif(bool(missing), reason=f"not present (../shared data or the shipped model): {missing}")
@pytest.mark.parametrize("association", ASSOCIATIONS)
def test_each_view_gives_each_performer_its_own_pose(fused: Replayed, association: str) -> None:
    found = verdicts(fused.steps[association])
    print(f"{association}: {tally(found)}")
    wrong = sorted(key for key, v in found.items() if v == "wrong")
    assert len(wrong) <= MAX_WRONG, (
        f"{association}: poses on the other performer at {wrong} ({tally(found)})"
    )
    for performer in PERFORMERS:
        right = sum(v == "right" for (p, _, _), v in found.items() if p == performer)
        assert right >= MIN_RIGHT[performer], f"{association}: {tally(found)}"


@pytest.mark.slow
@pytest.mark.skipif(bool(missing), reason=f"not present (../shared data or the shipped model): {missing}")
def test_epipolar_association_outvotes_a_swapped_camera(fused: Replayed) -> None:
    """cam02's tracker names swapped: epipolar association names its poses as if they were not."""
    plain, swapped = verdicts(fused.steps["epipolar"]), verdicts(fused.steps["epipolar_cam02_swapped"])
    assert swapped == plain, f"swapped: {tally(swapped)}; not swapped: {tally(plain)}"


@pytest.mark.slow
@pytest.mark.skipif(bool(missing), reason=f"not present (../shared data or the shipped model): {missing}")
@pytest.mark.parametrize("association", ASSOCIATIONS[:2])
def test_the_3d_torso_reprojects_onto_its_performer(fused: Replayed, association: str) -> None:
    """Where the torso was triangulated from poses judged right in every view it used, it reprojects onto
    the performer in all four views; a torso built from "off" poses (the lead at frame 99) is reported."""
    assert tuple(fused.rig.names) == CAMERAS
    tables = {"lead": LEAD_TORSO, "partner": PARTNER_TORSO}
    found = verdicts(fused.steps[association])
    judged: Counter[str] = Counter()
    poor = []
    for frame in READ_FRAMES:
        for pose in fused.steps[association][frame]:
            tri = pose.triangulation
            ok = [j for j in TORSO_JOINTS if np.isfinite(tri.points[j]).all()]
            if len(ok) < 2:
                continue  # not triangulated in this step
            used = [camera for v, camera in enumerate(CAMERAS) if tri.views[v, ok].any()]
            if any(found[pose.performer, camera, frame] != "right" for camera in used):
                poor.append((pose.performer, frame))
                continue
            judged[pose.performer] += 1
            other = "partner" if pose.performer == "lead" else "lead"
            for v, camera in enumerate(CAMERAS):
                centre = np.median(fused.rig.cameras[v].project(tri.points[ok]), axis=0)
                own_px = float(np.hypot(*(centre - tables[pose.performer][camera][frame])))
                other_px = float(np.hypot(*(centre - tables[other][camera][frame])))
                where = f"{association}: {pose.performer} frame {frame} {camera}: {own_px:.0f} px"
                assert own_px < other_px and own_px < TOL_3D_PX, f"{where} (the other performer: {other_px:.0f} px)"
    print(f"{association}: 3D torsos judged {dict(judged)}; from poses not right: {poor}")
    assert judged["partner"] >= 4 and judged["lead"] >= 2, (judged, poor)  # measured 5 and 3-4 of 6
