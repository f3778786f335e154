"""Camera address parsing: the forms a show config may use, and clear errors for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from stagepose.errors import ConfigError
from stagepose.show.sources import (
    ALLOWED_FORMS,
    FileSpec,
    NdiSpec,
    RtspSpec,
    WebcamSpec,
    open_source,
    parse_source_uri,
    redact,
)


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"not parsed here")  # parsing only checks that the file exists
    return path


# ---------------------------------------------------------------- RTSP


def test_rtsp_defaults_to_tcp_and_keeps_camera_query() -> None:
    spec = parse_source_uri("rtsp://10.0.0.5:554/stream1?channel=1")
    assert isinstance(spec, RtspSpec)
    assert spec.kind == "rtsp"
    assert spec.transport == "tcp"
    assert spec.url == "rtsp://10.0.0.5:554/stream1?channel=1"


def test_rtsp_transport_option_is_taken_out_of_the_url() -> None:
    spec = parse_source_uri("rtsp://cam.local/live?transport=UDP&profile=2")
    assert isinstance(spec, RtspSpec)
    assert spec.transport == "udp"
    assert spec.url == "rtsp://cam.local/live?profile=2"
    assert spec.uri == "rtsp://cam.local/live?profile=2&transport=udp"


def test_rtsp_password_never_shown() -> None:
    spec = parse_source_uri("rtsp://admin:s3cret@10.0.0.5/stream")
    assert isinstance(spec, RtspSpec)
    assert spec.url == "rtsp://admin:s3cret@10.0.0.5/stream"  # FFmpeg needs it
    assert "s3cret" not in spec.uri
    assert "s3cret" not in repr(spec)
    assert spec.uri == "rtsp://admin:***@10.0.0.5/stream"
    assert redact("rtsp://u:p@h/x") == "rtsp://u:***@h/x"
    assert redact("rtsp://h/x") == "rtsp://h/x"


def test_rtsp_ipv6_host() -> None:
    spec = parse_source_uri("rtsp://[::1]:8554/x")
    assert isinstance(spec, RtspSpec)
    assert spec.url == "rtsp://[::1]:8554/x"


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("rtsp://10.0.0.5/s?transport=quic", "transport='quic'"),
        ("rtsp:///stream", "no host"),
        ("rtsp://host:99999/s", "bad RTSP address"),
        ("rtsp://host:abc/s", "bad RTSP address"),
        ("rtsp://host/s#frag", "fragment"),
    ],
)
def test_rtsp_bad(uri: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="allowed source forms") as info:
        parse_source_uri(uri)
    assert fragment in str(info.value)


def test_error_message_does_not_leak_password() -> None:
    with pytest.raises(ValueError) as info:
        parse_source_uri("rtsp://admin:s3cret@10.0.0.5/s?transport=xx")
    assert "s3cret" not in str(info.value)


# ---------------------------------------------------------------- NDI


def test_ndi_name_with_spaces_and_ip_hints() -> None:
    spec = parse_source_uri("ndi://STAGE-PC (Cam 1)?ips=10.0.0.5, 10.0.0.6")
    assert spec == NdiSpec(name="STAGE-PC (Cam 1)", ips=("10.0.0.5", "10.0.0.6"))
    assert spec.uri == "ndi://STAGE-PC (Cam 1)?ips=10.0.0.5,10.0.0.6"


def test_ndi_percent_encoded_name_without_hints() -> None:
    spec = parse_source_uri("ndi://STAGE-PC%20(Cam%202)")
    assert spec == NdiSpec(name="STAGE-PC (Cam 2)")


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("ndi://", "NDI address must look like"),
        ("ndi://  ?ips=10.0.0.1", "name is empty"),
        ("ndi://PC (Cam)?ips=10.0.0.300", "not an IP address"),
        ("ndi://PC (Cam)?ips=", "ips= is empty"),
        ("ndi://PC (Cam)?group=a", "unknown option 'group'"),
    ],
)
def test_ndi_bad(uri: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="allowed source forms") as info:
        parse_source_uri(uri)
    assert fragment in str(info.value)


# ---------------------------------------------------------------- files


def test_plain_relative_path_resolves_against_base_dir(clip: Path) -> None:
    spec = parse_source_uri("clip.mp4", base_dir=clip.parent)
    assert spec == FileSpec(path=clip.resolve(), loop=False, pacing="realtime")


def test_file_uri_with_options(clip: Path) -> None:
    spec = parse_source_uri(f"file://{clip}?loop=yes&pacing=fast")
    assert spec == FileSpec(path=clip.resolve(), loop=True, pacing="fast")
    assert spec.uri == f"file://{clip.resolve()}?loop=true&pacing=fast"
    # The canonical form parses back to the same spec.
    assert parse_source_uri(spec.uri) == spec


def test_plain_path_with_options(clip: Path) -> None:
    spec = parse_source_uri(f"{clip}?loop=false&pacing=realtime")
    assert spec == FileSpec(path=clip.resolve(), loop=False, pacing="realtime")


def test_plain_path_containing_question_mark(tmp_path: Path) -> None:
    odd = tmp_path / "take?2.mp4"
    odd.write_bytes(b"x")
    spec = parse_source_uri(str(odd))
    assert isinstance(spec, FileSpec)
    assert spec.path == odd.resolve()


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="video file not found: .*nope.mp4"):
        parse_source_uri("nope.mp4", base_dir=tmp_path)


@pytest.mark.parametrize(
    ("suffix", "fragment"),
    [
        ("?loop=maybe", "loop='maybe'"),
        ("?pacing=slow", "pacing='slow'"),
        ("?speed=2", "unknown option 'speed'"),
        ("?loop=1&loop=0", "given twice"),
    ],
)
def test_file_bad_options(clip: Path, suffix: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_source_uri(f"file://{clip}{suffix}")
    assert fragment in str(info.value)


def test_directory_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a file"):
        parse_source_uri(str(tmp_path))


# ---------------------------------------------------------------- webcams and the rest


def test_webcam_index_and_mode() -> None:
    assert parse_source_uri("webcam:0") == WebcamSpec(index=0)
    spec = parse_source_uri("webcam:2?width=1280&height=720&fps=50")
    assert spec == WebcamSpec(index=2, width=1280, height=720, fps=50.0)


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("webcam:", "webcam index must be a number"),
        ("webcam:-1", "webcam index must be a number"),
        ("webcam:front", "webcam index must be a number"),
        ("webcam:0?width=0", "must be > 0"),
        ("webcam:0?fps=fast", "is not a float"),
        ("webcam:0?zoom=2", "unknown option 'zoom'"),
    ],
)
def test_webcam_bad(uri: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_source_uri(uri)
    assert fragment in str(info.value)


@pytest.mark.parametrize("uri", ["http://cam/stream.mjpg", "rtmp://server/live", "", "   "])
def test_unknown_or_empty_lists_allowed_forms(uri: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_source_uri(uri)
    assert ALLOWED_FORMS in str(info.value)


def test_spec_constructors_check_values() -> None:
    with pytest.raises(ValueError, match="transport"):
        RtspSpec(url="rtsp://h/x", transport="sctp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pacing"):
        FileSpec(path=Path("x.mp4"), pacing="slow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="index"):
        WebcamSpec(index=-1)
    with pytest.raises(ValueError, match="not an IP"):
        NdiSpec(name="PC (Cam)", ips=("cam.local",))


def test_open_source_turns_bad_address_into_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="camera 'left'.*video file not found"):
        open_source("missing.mp4", "left", base_dir=tmp_path)


def test_file_spec_accepts_a_string_path(clip: Path) -> None:
    spec = FileSpec(path=str(clip), pacing="fast")  # type: ignore[arg-type]
    assert spec.path == clip and isinstance(spec.path, Path)
