"""stagepose: markerless motion capture for live shows.

Lightweight stacked-hourglass pose estimation (Huang et al. 2024) distilled from an 8-stack teacher,
run live from camera feeds to OSC for lighting and AR.
"""

__version__ = "0.1.0"
