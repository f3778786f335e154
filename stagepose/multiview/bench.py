"""`stagepose bench triangulate`: what the multi-camera path adds per frame, on a synthetic scene.

Per frame, for every performer seen by every camera (4 x 2 by default): undistort the 2D joints,
triangulate them (consensus, weighted DLT, rejection; all performers in one batched solve) and step
each performer's 3D Kalman filter with a forecast to the send time. Cross-camera association by
epipolar distance (only needed where zones do not name the performers) is timed on its own. The
scene moves and has pixel noise; by default one camera sees one performer's left and right swapped, so
the rejection and swap paths run every frame (the expensive case; ``wrong_view=False`` times clean views).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from stagepose.multiview.associate import PoseView, by_epipolar
from stagepose.multiview.smoothing import make_smoother_3d
from stagepose.multiview.synthetic import observe, ring_rig, skeleton
from stagepose.multiview.triangulate import TriangulationSettings, triangulate_performers
from stagepose.show.telemetry import latency_summary
from stagepose.skeleton import flip_permutation


def bench_triangulation(
    cameras: int = 4,
    performers: int = 2,
    frames: int = 1000,
    warmup: int = 50,
    noise_px: float = 2.0,
    fps: float = 60.0,
    seed: int = 0,
    wrong_view: bool = True,
) -> dict[str, Any]:
    """Per-frame milliseconds of triangulation, 3D smoothing and epipolar association.

    Args:
        cameras, performers: the scene's size.
        frames: timed frames (after ``warmup`` untimed ones).
        noise_px: Gaussian pixel noise of the 2D joints.
        fps: frame rate of the synthetic capture clock.
        seed: random seed (the scene and noise).
        wrong_view: the last camera sees the first performer with left and right swapped (every frame then
            takes the swap check's second solve: the expensive case).

    Returns:
        JSON-ready: per stage ``latency_summary`` (p50/p95/p99/mean/max ms), the scene, and the mean
        3D error of the triangulated joints against the truth (a check that the timed work is the real work).

    Raises:
        ValueError: fewer than 2 cameras, no performer or no frame.
    """
    if cameras < 2 or performers < 1 or frames < 1:
        raise ValueError(f"need >= 2 cameras, >= 1 performer and >= 1 frame; got {cameras}, {performers}, {frames}")
    rng = np.random.default_rng(seed)
    rig = ring_rig(cameras)
    settings = TriangulationSettings()
    names = [f"p{i + 1}" for i in range(performers)]
    smoothers = {name: make_smoother_3d() for name in names}
    flip = flip_permutation()
    times: dict[str, list[float]] = {"triangulate": [], "kalman": [], "total": [], "associate": []}
    errors = []
    t0 = 1.7e9
    for f in range(warmup + frames):
        t = t0 + f / fps
        truth, poses = {}, {}
        for i, name in enumerate(names):
            angle = 2 * np.pi * (i / performers) + 0.3 * f / fps
            centre = (1.5 * np.cos(angle) * (i > 0), 1.5 * np.sin(angle) * (i > 0))
            truth[name] = skeleton(centre, yaw_rad=angle)
            pixels, conf = observe(rig, truth[name], noise_px, rng)
            conf = conf * rng.uniform(0.5, 1.0, conf.shape)
            if i == 0 and wrong_view:
                pixels[cameras - 1], conf[cameras - 1] = pixels[cameras - 1][flip], conf[cameras - 1][flip]
            poses[name] = (pixels, conf)
        a = time.perf_counter()
        result = triangulate_performers(rig, poses, settings)
        b = time.perf_counter()
        for name in names:
            smoothers[name].update(t, result[name].points, result[name].confidence)
            smoothers[name].forecast(t + 0.03)
        c = time.perf_counter()
        candidates = [[PoseView(poses[n][0][v], poses[n][1][v]) for n in names] for v in range(cameras)]
        d = time.perf_counter()
        by_epipolar(rig, candidates)
        e = time.perf_counter()
        if f >= warmup:
            times["triangulate"].append((b - a) * 1e3)
            times["kalman"].append((c - b) * 1e3)
            times["total"].append((c - a) * 1e3)
            times["associate"].append((e - d) * 1e3)
            for name in names:
                ok = result[name].ok
                errors.append(float(np.linalg.norm(result[name].points[ok] - truth[name][ok], axis=1).mean()))
    return {
        "cameras": cameras,
        "performers": performers,
        "joints_per_frame": performers * 16,
        "frames": frames,
        "noise_px": noise_px,
        "wrong_view": wrong_view,
        "stages_ms": {name: latency_summary(values) for name, values in times.items()},
        "total_is": "triangulate (undistort + consensus + weighted DLT + rejection) + kalman (update + forecast)",
        "associate_is": "by_epipolar over all candidate pairs (only when zones do not name performers)",
        "mean_error_m": round(float(np.mean(errors)), 4),
    }
