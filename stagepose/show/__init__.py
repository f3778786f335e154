"""The live show runtime: camera sources, crops, backends, smoothing, OSC outputs, recording, replay.

Each stage lives in its own module or subpackage (``stagepose.show.sources`` for cameras); the live
loop only wires and times them.
"""
