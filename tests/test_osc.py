"""OSC output: packets to the byte, then real UDP datagrams on 127.0.0.1 decoded with python-osc."""

from __future__ import annotations

import socket
import struct

import numpy as np
import pytest
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

from stagepose.config import from_dict
from stagepose.errors import ConfigError
from stagepose.show.osc import (
    MAX_DATAGRAM_BYTES,
    OscDestinationConfig,
    OscSink,
    PerformerFrame,
    build_performer_packet,
    heartbeat_message,
    ntp_timetag,
    validate_performer_name,
)
from stagepose.show.osc.packets import osc_bundle, osc_message, unix_from_timetag
from stagepose.skeleton import JOINT_NAMES

T_CAPTURE = 1_700_000_123.456789  # a real Unix time with a fraction
SHOW_START = 1_700_000_000.0
TIMETAG_TOL_S = 1e-3
FLOAT32_TOL = 1e-6  # relative error of a float32 round trip
RECV_TIMEOUT_S = 2.0


def make_frame(performer: str = "alice", **kw) -> PerformerFrame:
    rng = np.random.default_rng(0)
    joints = rng.uniform(0, 1, (16, 2)) * (1920, 1080)
    conf = rng.uniform(0.3, 1.0, 16)
    args = dict(
        performer=performer, seq=41, t_capture=T_CAPTURE, joints=joints, confidence=conf, image_size=(1920, 1080)
    )
    args.update(kw)
    return PerformerFrame(**args)


def tags(message: OscMessage) -> str:
    _, index = osc_types.get_string(message.dgram, 0)
    return osc_types.get_string(message.dgram, index)[0][1:]


def messages(datagram: bytes) -> dict[str, OscMessage]:
    bundle = OscBundle(datagram)
    return {m.address: m for m in bundle}


@pytest.fixture
def receivers():
    """Factory of UDP sockets bound to free ports on 127.0.0.1, closed at the end."""
    opened: list[socket.socket] = []

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(RECV_TIMEOUT_S)
        opened.append(sock)
        return sock

    yield make
    for sock in opened:
        sock.close()


def drain(sock: socket.socket, quiet_s: float = 0.2) -> list[bytes]:
    """Every datagram waiting on ``sock`` (stops after ``quiet_s`` without one)."""
    out = []
    sock.settimeout(quiet_s)
    try:
        while True:
            out.append(sock.recv(65536))
    except TimeoutError:
        pass
    sock.settimeout(RECV_TIMEOUT_S)
    return out


# -- pure packets -----------------------------------------------------------------------------------------


def test_message_matches_the_osc_spec_golden_bytes() -> None:
    # OSC 1.0 specification examples: "/oscillator/4/frequency" with the float 440.0 is these 32 bytes.
    golden = bytes.fromhex("2f6f7363696c6c61746f722f342f6672657175656e6379002c66000043dc0000")
    assert osc_message("/oscillator/4/frequency", [440.0]) == golden


def test_heartbeat_and_timetag_golden_bytes() -> None:
    golden = b"/stagepose/heartbeat\x00\x00\x00\x00" + b",ff\x00" + struct.pack(">ff", 12.5, 2.0)
    assert heartbeat_message(12.5, 2) == golden
    assert len(golden) == 36
    # NTP: 2208988800 s from 1900 to 1970, then a 32-bit binary fraction.
    assert ntp_timetag(0.0) == bytes.fromhex("83aa7e8000000000")
    assert ntp_timetag(1.5) == bytes.fromhex("83aa7e8180000000")
    assert unix_from_timetag(ntp_timetag(T_CAPTURE)) == pytest.approx(T_CAPTURE, abs=1e-6)
    bundle = osc_bundle(ntp_timetag(1.5), [golden])
    assert bundle == b"#bundle\x00" + bytes.fromhex("83aa7e8180000000") + struct.pack(">i", 36) + golden


def test_pose_message_equals_python_osc_builder() -> None:
    values = np.random.default_rng(1).uniform(-5, 5, 48)
    builder = OscMessageBuilder("/stagepose/alice/pose")
    for v in values:
        builder.add_arg(float(v), OscMessageBuilder.ARG_TYPE_FLOAT)
    assert osc_message("/stagepose/alice/pose", values) == builder.build().dgram


def test_performer_packet_content() -> None:
    frame = make_frame(floor_position=(2.5, -1.25))
    packet = build_performer_packet(frame, OscDestinationConfig(), SHOW_START, latency_ms=17.5)
    assert len(packet.datagram) <= MAX_DATAGRAM_BYTES and not packet.per_joint_dropped
    bundle = OscBundle(packet.datagram)
    assert bundle.timestamp == pytest.approx(T_CAPTURE, abs=TIMETAG_TOL_S)
    got = messages(packet.datagram)
    assert list(got) == [f"/stagepose/alice/{m}" for m in ("frame", "status", "pose", "stage")]
    assert all(set(tags(m)) == {"f"} for m in got.values())
    seq, t_show, latency = got["/stagepose/alice/frame"].params
    assert seq == 41 and t_show == pytest.approx(T_CAPTURE - SHOW_START, abs=1e-3) and latency == 17.5
    assert got["/stagepose/alice/status"].params == [1.0, 16.0]
    pose = np.array(got["/stagepose/alice/pose"].params).reshape(16, 3)
    np.testing.assert_allclose(pose[:, :2], frame.joints / (1920, 1080), rtol=FLOAT32_TOL)
    np.testing.assert_allclose(pose[:, 2], frame.confidence, rtol=FLOAT32_TOL)
    assert got["/stagepose/alice/stage"].params == [2.5, -1.25]


def test_lost_and_unknown_joints_never_send_nan() -> None:
    joints = make_frame().joints.copy()
    conf = np.full(16, 0.9)
    joints[3] = np.nan  # never seen
    conf[5] = 0.0  # lost: the smoother holds its last position with quality 0
    frame = make_frame(joints=joints, confidence=conf)
    got = messages(build_performer_packet(frame, OscDestinationConfig(), SHOW_START, 0.0).datagram)
    pose = np.array(got["/stagepose/alice/pose"].params).reshape(16, 3)
    assert np.isfinite(pose).all()
    assert pose[3].tolist() == [0.0, 0.0, 0.0]
    assert pose[5, 2] == 0.0 and pose[5, 0] == pytest.approx(joints[5, 0] / 1920, rel=FLOAT32_TOL)
    assert got["/stagepose/alice/status"].params == [1.0, 14.0]


@pytest.mark.parametrize("coords", ["normalized", "pixels", "stage"])
def test_a_lost_performer_sends_every_conf_exactly_zero(coords: str) -> None:
    frame = make_frame(tracked=False, confidence=np.linspace(0.2, 0.52, 16), joints_stage=np.ones((16, 2)))
    got = messages(build_performer_packet(frame, OscDestinationConfig(coords=coords), SHOW_START, 0.0).datagram)
    pose = np.array(got["/stagepose/alice/pose"].params).reshape(16, 3)
    assert (pose[:, 2] == 0.0).all()  # docs: status 0 means every joint at conf 0
    assert got["/stagepose/alice/status"].params == [0.0, 0.0]
    assert np.isfinite(pose).all() and (pose[:, :2] != 0).any()  # positions kept (last known)


@pytest.mark.parametrize("flip_y", [False, True])
def test_joints_outside_the_image_are_clamped_and_sent_with_conf_zero(flip_y: bool) -> None:
    joints = make_frame().joints.copy()
    joints[0] = (-3.4 * 1920, 100.0)  # what the issue saw: x -3.4 .. 1.5, y -0.3 .. 3.0 normalized
    joints[1] = (1.5 * 1920, 3.0 * 1080)
    joints[2] = (500.0, -0.3 * 1080)
    frame = make_frame(joints=joints, confidence=np.full(16, 0.8))
    for coords, size in (("normalized", (1.0, 1.0)), ("pixels", (1920.0, 1080.0))):
        dest = OscDestinationConfig(coords=coords, flip_y=flip_y)
        got = messages(build_performer_packet(frame, dest, SHOW_START, 0.0).datagram)
        pose = np.array(got["/stagepose/alice/pose"].params).reshape(16, 3)
        assert (pose[:, 0] >= 0).all() and (pose[:, 0] <= size[0]).all()
        assert (pose[:, 1] >= 0).all() and (pose[:, 1] <= size[1]).all()
        assert pose[:3, 2].tolist() == [0.0, 0.0, 0.0] and (pose[3:, 2] > 0.79).all()
        assert pose[0, 0] == 0.0 and pose[1, 0] == pytest.approx(size[0])
        assert got["/stagepose/alice/status"].params == [1.0, 13.0]


def test_joints_tracked_counts_sent_conf_at_or_above_min_confidence() -> None:
    conf = np.array([0.0] * 2 + [0.1] * 3 + [0.29] * 2 + [0.3] * 4 + [0.9] * 5)
    for threshold, expected in ((0.3, 9), (0.0, 14), (0.95, 0)):
        frame = make_frame(confidence=conf, min_confidence=threshold)
        got = messages(build_performer_packet(frame, OscDestinationConfig(), SHOW_START, 0.0).datagram)
        pose = np.array(got["/stagepose/alice/pose"].params).reshape(16, 3)
        assert got["/stagepose/alice/status"].params[1] == expected
        assert expected == np.count_nonzero((pose[:, 2] > 0) & (pose[:, 2] >= np.float32(threshold)))


def test_record_status_golden_bytes() -> None:
    from stagepose.show.osc.packets import record_status_message

    assert record_status_message(False, 12) == (b"/stagepose/record\x00\x00\x00,ff\x00" + struct.pack(">ff", 0.0, 12.0))


def test_coordinates_pixels_flip_and_stage() -> None:
    frame = make_frame(joints_stage=np.arange(32, dtype=float).reshape(16, 2) / 10)
    px = messages(build_performer_packet(frame, OscDestinationConfig(coords="pixels", flip_y=True), 0, 0).datagram)
    pose = np.array(px["/stagepose/alice/pose"].params).reshape(16, 3)
    np.testing.assert_allclose(pose[:, 0], frame.joints[:, 0], rtol=FLOAT32_TOL)
    np.testing.assert_allclose(pose[:, 1], 1080 - frame.joints[:, 1], rtol=FLOAT32_TOL)
    stage = messages(build_performer_packet(frame, OscDestinationConfig(coords="stage"), 0, 0).datagram)
    np.testing.assert_allclose(
        np.array(stage["/stagepose/alice/pose"].params).reshape(16, 3)[:, :2], frame.joints_stage, rtol=FLOAT32_TOL
    )
    no_stage = build_performer_packet(make_frame(), OscDestinationConfig(coords="stage"), 0, 0)
    assert not no_stage.pose_sent and "/stagepose/alice/pose" not in messages(no_stage.datagram)


def test_names_and_frames_are_validated() -> None:
    validate_performer_name("dancer_2")
    for bad in ("", "two words", "a/b", "x*", "heartbeat", "p" * 33):
        with pytest.raises(ValueError):
            validate_performer_name(bad)
    with pytest.raises(ValueError, match="joints"):
        make_frame(joints=np.zeros((15, 2)))
    with pytest.raises(ValueError, match="image_size"):
        make_frame(image_size=(0, 1080))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 0},
        {"port": 70000},
        {"coords": "stage", "flip_y": True},
        {"heartbeat_hz": -1.0},
        {"name": "bad name"},
        {"host": ""},
    ],
)
def test_destination_config_rejects_bad_values(kwargs) -> None:
    with pytest.raises(ValueError):
        OscDestinationConfig(**kwargs)


def test_destination_config_from_yaml_data() -> None:
    cfg = from_dict(OscDestinationConfig, {"name": "td", "port": 7001, "coords": "normalized", "flip_y": True})
    assert cfg.host == "127.0.0.1" and cfg.flip_y and not cfg.per_joint_messages
    with pytest.raises(ConfigError, match="coords"):
        from_dict(OscDestinationConfig, {"coords": "metres"})


# -- real UDP ---------------------------------------------------------------------------------------------


def test_sink_sends_one_bundle_per_performer_to_each_destination(receivers) -> None:
    td, ue = receivers(), receivers()
    dests = [
        OscDestinationConfig(name="td", port=td.getsockname()[1], flip_y=True, per_joint_messages=True),
        OscDestinationConfig(name="ue", port=ue.getsockname()[1], coords="pixels"),
    ]
    frames = [make_frame(seq=s, t_capture=T_CAPTURE + s / 30) for s in range(5)]
    frames.append(make_frame("bob", seq=0))
    with OscSink(dests, show_start_unix=SHOW_START) as sink:
        for frame in frames:
            assert sink.send_performer(frame) == 2
        stats = {s.name: s for s in sink.stats()}
    assert stats["td"].datagrams_sent == stats["ue"].datagrams_sent == 6
    assert stats["td"].send_errors == 0 and stats["td"].per_joint_dropped == 0

    got_td, got_ue = drain(td), drain(ue)
    assert len(got_td) == len(got_ue) == 6
    for datagram, frame in zip(got_td, frames):
        assert len(datagram) <= MAX_DATAGRAM_BYTES
        bundle = OscBundle(datagram)
        assert abs(bundle.timestamp - frame.t_capture) < TIMETAG_TOL_S
        got = {m.address: m for m in bundle}
        assert all(set(tags(m)) == {"f"} for m in got.values())
        prefix = f"/stagepose/{frame.performer}"
        assert {f"{prefix}/{name}" for name in JOINT_NAMES} <= set(got)
        pose = np.array(got[f"{prefix}/pose"].params).reshape(16, 3)
        np.testing.assert_allclose(pose[:, 1], 1.0 - frame.joints[:, 1] / 1080, rtol=1e-5, atol=1e-6)  # flipped
        wrist = got[f"{prefix}/r_wrist"].params
        np.testing.assert_allclose(wrist, pose[JOINT_NAMES.index("r_wrist")], rtol=FLOAT32_TOL)
        assert got[f"{prefix}/frame"].params[0] == frame.seq
    for datagram, frame in zip(got_ue, frames):
        got = messages(datagram)
        prefix = f"/stagepose/{frame.performer}"
        assert set(got) == {f"{prefix}/frame", f"{prefix}/status", f"{prefix}/pose"}  # no per-joint messages
        pose = np.array(got[f"{prefix}/pose"].params).reshape(16, 3)
        np.testing.assert_allclose(pose[:, :2], frame.joints, rtol=FLOAT32_TOL)  # pixels, not flipped
        latency_ms = got[f"{prefix}/frame"].params[2]
        assert latency_ms > 0  # t_capture lies in the past


def test_a_performer_too_big_for_one_datagram_drops_per_joint_messages_never_splits(receivers) -> None:
    rx = receivers()
    name = "a_performer_with_a_long_name_32"  # 31 characters: 16 joint messages would exceed 1472 bytes
    frame = make_frame(name, floor_position=(1.0, 2.0))
    dest = OscDestinationConfig(name="td", port=rx.getsockname()[1], per_joint_messages=True)
    assert build_performer_packet(frame, dest, SHOW_START, 0.0).per_joint_dropped
    with OscSink([dest]) as sink:
        for _ in range(3):
            sink.send_performer(frame)
        stats = sink.stats()[0]
    assert stats.per_joint_dropped == 3 and stats.datagrams_sent == 3
    datagrams = drain(rx)
    assert len(datagrams) == 3  # one datagram per frame: nothing was split off
    for datagram in datagrams:
        assert len(datagram) <= MAX_DATAGRAM_BYTES
        got = messages(datagram)
        assert set(got) == {f"/stagepose/{name}/{m}" for m in ("frame", "status", "pose", "stage")}


def test_heartbeat_is_sent_with_nobody_tracked_at_the_configured_rate(receivers) -> None:
    rx, quiet = receivers(), receivers()
    now = [100.0]
    dests = [
        OscDestinationConfig(name="hb", port=rx.getsockname()[1], heartbeat_hz=2.0),
        OscDestinationConfig(name="off", port=quiet.getsockname()[1], heartbeat_hz=0.0),
    ]
    with OscSink(dests, monotonic_clock=lambda: now[0]) as sink:
        sent = []
        for t in (100.0, 100.1, 100.3, 100.5, 100.9, 101.0, 103.0, 103.1):
            now[0] = t
            sent.append(sink.heartbeat(performers_tracked=0))
    assert sent == [1, 0, 0, 1, 0, 1, 1, 0]  # 2 Hz: due at 0, 0.5, 1.0 s; after a stall once, not a burst
    datagrams = drain(rx)
    assert len(datagrams) == 4 and drain(quiet) == []
    message = OscMessage(datagrams[-1])
    assert message.address == "/stagepose/heartbeat" and tags(message) == "ff"
    assert message.params == [pytest.approx(3.0), 0.0]  # uptime since open, performers tracked


def test_network_errors_are_counted_never_raised(receivers, caplog) -> None:
    rx = receivers()
    dests = [
        OscDestinationConfig(name="ok", port=rx.getsockname()[1]),
        OscDestinationConfig(name="nohost", host="stage..lan", port=7000),  # cannot resolve
    ]
    with OscSink(dests, resolve_retry_s=60.0) as sink:
        assert sink.send_performer(make_frame()) == 1
        assert sink.heartbeat(1) == 1
        stats = {s.name: s for s in sink.stats()}
        assert not stats["nohost"].resolved and stats["nohost"].send_errors == 2
        assert "cannot resolve" in caplog.text and "send error" in caplog.text
        assert "UNRESOLVED" in sink.summary()
        # The operating system refuses the socket (here: closed under the sink): counted, not raised.
        for sock in sink._sockets.values():
            sock.close()
        assert sink.send_performer(make_frame()) == 0
        stats = {s.name: s for s in sink.stats()}
        assert stats["ok"].send_errors == 1 and "OSError" in stats["ok"].last_error
    assert len(drain(rx)) == 2
    with pytest.raises(RuntimeError, match="not open"):
        sink.send_performer(make_frame())


def test_sink_rejects_duplicate_destination_names() -> None:
    with pytest.raises(ValueError, match="unique"):
        OscSink([OscDestinationConfig(name="td"), OscDestinationConfig(name="td", port=7001)])


def test_smoothed_pose_goes_out_with_quality_and_lost_joints_at_their_last_place(receivers) -> None:
    """The live loop's glue: smoother -> PerformerFrame(confidence=quality) -> sink -> receiver."""
    from stagepose.show.filters import SmoothingConfig, make_smoother

    rx = receivers()
    smoother = make_smoother(SmoothingConfig())
    joints = np.tile([[960.0, 540.0]], (16, 1)) + np.arange(16)[:, None]
    t0 = T_CAPTURE
    for k in range(30):
        measured = joints.copy()
        if k >= 10:
            measured[15] = np.nan  # l_wrist occluded from frame 10: lost after 0.5 s
        pose = smoother.update(t0 + k / 30, measured, np.full(16, 0.9))
    assert pose.lost[15]
    frame = PerformerFrame("alice", 29, t0 + 29 / 30, pose.position, pose.quality, (1920, 1080))
    with OscSink([OscDestinationConfig(name="td", port=rx.getsockname()[1])]) as sink:
        sink.send_performer(frame)
    got = messages(rx.recv(65536))
    values = np.array(got["/stagepose/alice/pose"].params).reshape(16, 3)
    assert values[15, 2] == 0.0  # lost: confidence 0 ...
    np.testing.assert_allclose(values[15, :2], joints[15] / (1920, 1080), rtol=1e-5)  # ... at its last place
    assert (values[:15, 2] > 0.5).all()
    assert got["/stagepose/alice/status"].params == [1.0, 15.0]


def test_sockets_bind_the_interface_the_destination_needs_and_broadcast_only_when_asked(receivers) -> None:
    rx = receivers()
    dests = [
        OscDestinationConfig(name="td", port=rx.getsockname()[1]),
        OscDestinationConfig(name="td2", host="localhost", port=rx.getsockname()[1]),
        OscDestinationConfig(name="all", host="255.255.255.255", port=9, broadcast=True, heartbeat_hz=0),
    ]
    with OscSink(dests) as sink:
        sink.send_performer(make_frame())
        sink.heartbeat(1, record=(False, 3))
        stats = {s.name: s for s in sink.stats()}
        sockets = {key: sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) for key, sock in sink._sockets.items()}
    local_ip, local_port = stats["td"].local.split(":")
    assert local_ip == "127.0.0.1" and stats["td2"].local == stats["td"].local  # one loopback socket, shared
    assert sockets[("127.0.0.1", False)] == 0  # no broadcast unless a destination asks for it
    assert [on for (_, broadcast), on in sockets.items() if broadcast] == [1]
    senders, datagrams = set(), []
    rx.settimeout(RECV_TIMEOUT_S)
    for _ in range(6):  # two bundles, then heartbeat + record status to each loopback destination
        data, sender = rx.recvfrom(65536)
        senders.add(sender)
        datagrams.append(data)
    assert senders == {("127.0.0.1", int(local_port))}
    record = [OscMessage(d) for d in datagrams if d.startswith(b"/stagepose/record")]
    assert [m.params for m in record] == [[0.0, 3.0], [0.0, 3.0]]


def test_broadcast_address_needs_the_broadcast_flag() -> None:
    with pytest.raises(ValueError, match="broadcast: true"):
        OscDestinationConfig(host="255.255.255.255")
    assert not OscDestinationConfig().broadcast


# -- several cameras: /pose3d ---------------------------------------------------------------------------------


def _frame_3d(performer: str = "alice", **kw) -> PerformerFrame:
    joints3d = np.column_stack([np.linspace(-1, 1, 16), np.linspace(2, 3, 16), np.linspace(0, 1.8, 16)])
    joints3d[4] = np.nan  # a joint without 2 good views
    conf3d = np.linspace(0.5, 1.0, 16)
    return make_frame(performer, joints3d=joints3d, confidence3d=conf3d, **kw)


@pytest.mark.parametrize(
    ("axes", "expected"),
    [
        ("world", lambda p: p),
        ("touchdesigner", lambda p: np.column_stack([p[:, 0], p[:, 2], -p[:, 1]])),  # metres, Y up
        ("unreal", lambda p: 100.0 * np.column_stack([p[:, 0], -p[:, 1], p[:, 2]])),  # cm, Z up, left-handed
    ],
)
def test_pose3d_in_each_receivers_axes(axes: str, expected) -> None:  # type: ignore[no-untyped-def]
    frame = _frame_3d()
    got = messages(build_performer_packet(frame, OscDestinationConfig(axes=axes), SHOW_START, 0.0).datagram)
    pose3d = np.array(got["/stagepose/alice/pose3d"].params, dtype=np.float64).reshape(16, 4)
    assert tags(got["/stagepose/alice/pose3d"]) == "f" * 64
    want = expected(np.asarray(frame.joints3d))
    known = np.isfinite(want).all(axis=1)
    np.testing.assert_allclose(pose3d[known, :3], want[known], rtol=FLOAT32_TOL, atol=1e-6)
    np.testing.assert_allclose(pose3d[known, 3], np.asarray(frame.confidence3d)[known], rtol=FLOAT32_TOL)
    assert (pose3d[4] == 0.0).all()  # not triangulated: (0, 0, 0) with confidence 0, never NaN


def test_pose3d_fits_one_datagram_and_per_joint_messages_go_first() -> None:
    name = "p" * 32  # the longest performer name
    frame = _frame_3d(name, joints_stage=np.zeros((16, 2)), floor_position=(1.0, 2.0))
    packet = build_performer_packet(frame, OscDestinationConfig(per_joint_messages=True), SHOW_START, 0.0)
    got = messages(packet.datagram)
    assert len(packet.datagram) <= MAX_DATAGRAM_BYTES and packet.per_joint_dropped
    assert f"/stagepose/{name}/pose3d" in got and f"/stagepose/{name}/pose" in got
    lost = messages(build_performer_packet(_frame_3d(tracked=False), OscDestinationConfig(), SHOW_START, 0.0).datagram)
    assert (np.array(lost["/stagepose/alice/pose3d"].params).reshape(16, 4)[:, 3] == 0.0).all()
