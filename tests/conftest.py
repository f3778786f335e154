"""Session-wide fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rtsp_support import RtspServer, free_port, server_unavailable


@pytest.fixture(scope="session")
def small_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random lshm-2 exported at 64x64 with its sidecar (exported once per test session)."""
    from show_support import export_small_model

    return export_small_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def server_available() -> None:
    reason = server_unavailable()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def rtsp_server(server_available: None) -> Iterator[RtspServer]:
    server = RtspServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()
