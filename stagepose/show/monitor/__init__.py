"""The operator's monitor page: what every camera sees, live, in a browser, served by the show process.

``config`` (the ``monitor:`` section) is light and imported by the show config; ``snapshot`` is the show
loop's non-blocking hand-over; ``draw`` makes the pictures; ``payload`` the page's JSON; ``server`` the
aiohttp server, which runs on its own thread; ``assets/`` the page itself (HTML, CSS, JavaScript, no build
step). The web server, OpenCV and numpy are imported only when a monitor starts. See ``docs/monitor.md``.
"""

from stagepose.lazy import lazy_getattr
from stagepose.show.monitor.config import MonitorConfig, is_loopback

__all__ = ["MonitorConfig", "MonitorFeed", "MonitorServer", "ShowStatus", "is_loopback", "open_monitor"]
__getattr__ = lazy_getattr(
    __name__,
    {
        "MonitorFeed": "stagepose.show.monitor.snapshot",
        "ShowStatus": "stagepose.show.monitor.snapshot",
        "MonitorServer": "stagepose.show.monitor.server",
        "open_monitor": "stagepose.show.monitor.server",
    },
)
