"""The `motion:` section: classify only when the picture changes (pipeline.motion, zones[].motion).

Kept apart from schema.py so that module stays small; schema.py places these sections. The
gate itself is edgecam.pipeline.motion.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edgecam.config.fields import setting


@dataclass(frozen=True)
class MotionConfig:
    enabled: bool = setting(False, "classify only when the picture changes "
                            "(docs/CONFIGURATION.md: \"Watching a still scene\")")
    threshold: float = setting(0.02, "the part of the picture (or of the zone) that must change, "
                               "0..1", min=0, max=1)
    max_still_s: float = setting(30.0, "classify anyway at least this often, however still the "
                                 "scene", min=0.1, max=86_400)


@dataclass(frozen=True)
class ZoneMotionConfig:
    """A zone's own motion gate; each key left out is pipeline.motion's."""

    enabled: bool | None = setting(None, "as pipeline.motion.enabled")
    threshold: float | None = setting(None, "as pipeline.motion.threshold: the part of the zone's "
                                      "rectangle", min=0, max=1)
    max_still_s: float | None = setting(None, "as pipeline.motion.max_still_s", min=0.1, max=86_400)


def zone_motion(pipeline: MotionConfig, zone: ZoneMotionConfig) -> MotionConfig:
    """A zone's gate: its own keys, the rest pipeline.motion's (as a zone's model keys)."""
    own = {key: value for key, value in dataclasses.asdict(zone).items() if value is not None}
    return dataclasses.replace(pipeline, **own) if own else pipeline
