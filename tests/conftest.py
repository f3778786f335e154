"""Session-wide fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rtsp_support import RtspServer, free_port, server_unavailable


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core machine two-thread torch processes stall each other (a run
    measured 25x slower beside another training job), one thread each does not. Modules that train or
    evaluate use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
