"""Zones: parts of the picture, each classified on its own, with its own rules.

A zone is a crop of the frame (fractions of its width and height), the
classifier its model section asks for, and a ResultFilter of its own: its
label changes, hysteresis and heartbeat never mix with another zone's. The
inference thread decodes a frame once, at its full size; each zone due takes
a view of its rectangle and resizes that once, to its model's input. Zones
whose model sections resolve to the same model share one classifier (one
interpreter), as the daemon keeps one per model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgecam.config import Config, ModelConfig, OutputsConfig
from edgecam.config.diff import ExtractorKey, extractor_key, whole_frames
from edgecam.core.frames import cut
from edgecam.models.base import ImageClassifier
from edgecam.models.factory import make_classifier, refresh_classifier
from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.imprint import HeadClassifier
from edgecam.models.preprocess import FrameFitter
from edgecam.pipeline.filter import ResultFilter
from edgecam.pipeline.motion import MotionGate, make_gate


@dataclass
class Zone:
    name: str
    crop: tuple[float, float, float, float]
    interval_s: float
    classifier: ImageClassifier
    filter: ResultFilter
    fit: FrameFitter
    rules: OutputsConfig
    next_due: float = field(default=0.0)
    motion: MotionGate | None = None  # with motion gating: the gate of its rectangle
    moved: bool = True  # what its gate said of the frame being classified (motion.wanted)

    def due(self, now: float) -> bool:
        return now >= self.next_due

    def taken(self, now: float) -> None:
        """Marks the zone classified at `now`: with an interval, it is next due that much later."""
        self.next_due = now + self.interval_s if self.interval_s else 0.0

    def image(self, frame: np.ndarray) -> np.ndarray:
        """The zone's rectangle of a full frame, fitted to its model's input."""
        return self.fit(cut(frame, self.crop))


def next_due(zones: tuple[Zone, ...]) -> float:
    """When the first zone is due again (0: now)."""
    return min(zone.next_due for zone in zones)


def zone_names(config: Config) -> tuple[str, ...]:
    """The names results' `zone` takes (the outputs' topics and entities follow them)."""
    return tuple(zone.name for zone in config.zones)


def frame_size(config: Config, input_size: tuple[int, int]) -> tuple[int, int]:
    """The size a source is asked to deliver: the model's input, or the whole frame (whole_frames)."""
    return (config.camera.width, config.camera.height) if whole_frames(config) else input_size


def build_zones(config: Config, current: dict[ModelConfig, ImageClassifier], running: tuple[Zone, ...],
                *, recover: bool = False) -> tuple[tuple[Zone, ...], dict[ModelConfig, ImageClassifier]]:
    """The zones `config` names, and the classifiers they use, keyed by model section.

    `current` holds the classifiers running now (the top level's among them): a model that
    is unchanged is kept (refreshed, if its head file was rewritten), so a reload does not
    load an interpreter twice; heads on the same extractor share its interpreter. A zone
    whose rules did not change keeps its filter from `running` (the zones before a reload),
    so its current label is not emitted again. EdgecamError if a model does not load.
    `recover` (the start, not a reload): a corrupt head is set aside (HeadClassifier.from_config).
    """
    classifiers: dict[ModelConfig, ImageClassifier] = {}
    extractors = {extractor_key(model): classifier.embedder
                  for model, classifier in current.items() if isinstance(classifier, HeadClassifier)}
    zones = []
    for zone in config.zones:
        model = config.zone_model(zone)
        if model not in classifiers:
            classifiers[model] = _classifier(model, current, extractors, recover)
        classifier = classifiers[model]
        rules = config.zone_outputs(zone)
        kept = next((z.filter for z in running if z.name == zone.name and z.rules == rules
                     and z.classifier is classifier), None)
        zones.append(Zone(zone.name, zone.crop, zone.interval_s, classifier,
                          kept or ResultFilter(rules), FrameFitter(classifier.input_size, model.resize),
                          rules, motion=make_gate(config.zone_motion(zone), zone.crop)))
    return tuple(zones), classifiers


def _classifier(model: ModelConfig, current: dict[ModelConfig, ImageClassifier],
                extractors: dict[ExtractorKey, Embedder], recover: bool) -> ImageClassifier:
    if model in current:
        return refresh_classifier(current[model], model, model)
    if model.head is not None and extractor_key(model) in extractors:
        return HeadClassifier.from_config(model, extractors[extractor_key(model)], recover=recover)
    classifier = make_classifier(model, recover=recover)
    if isinstance(classifier, HeadClassifier):
        extractors[extractor_key(model)] = classifier.embedder
    return classifier
