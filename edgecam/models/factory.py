"""The model factory: the classifier a config's model section asks for, and what a reload keeps.

Every caller (the daemon, `edgecam classify`) gets an ImageClassifier from
here, never a back-end class by name, so a new back-end is one module plus a
branch in `make_classifier`.
"""

from __future__ import annotations

from edgecam.config import ModelConfig
from edgecam.config.backends import backend_of
from edgecam.config.diff import extractor_key
from edgecam.models.base import ImageClassifier
from edgecam.models.classifier import Classifier
from edgecam.models.fewshot.imprint import HeadClassifier
from edgecam.models.filesig import changed


def make_classifier(config: ModelConfig, *, recover: bool = False) -> ImageClassifier:
    """The classifier the model section asks for: a head's classes, or the model's own labels,
    on the back-end model.backend (or the model file) names. `recover` (the daemon's start): a
    corrupt head is set aside (HeadClassifier.from_config)."""
    if config.head is not None:
        return HeadClassifier.from_config(config, recover=recover)
    backend = backend_of(config.backend, config.path)
    if backend == "imx500":
        from edgecam.models.imx500 import Imx500Classifier

        return Imx500Classifier(config)
    if backend == "hailo":
        from edgecam.models.hailo import HailoClassifier

        return HailoClassifier(config)
    return Classifier.from_config(config)


def on_camera_sensor(*models: ModelConfig) -> bool:
    """Whether any of these model sections runs on the AI Camera's sensor."""
    return any(backend_of(model.backend, model.path) == "imx500" for model in models)


def close_classifier(classifier: ImageClassifier) -> None:
    """Releases the device an accelerator's classifier holds (the Hailo); CPU ones hold none."""
    close = getattr(classifier, "close", None)
    if close is not None:
        close()


def refresh_classifier(current: ImageClassifier, old: ModelConfig, new: ModelConfig) -> ImageClassifier:
    """The classifier for `new` after a reload: `current` when nothing it uses changed (a corrupt
    head is refused, never set aside: the running one goes on).

    Learning rewrites the head file without touching the config, so with a head the file
    is re-read whenever it changed; so is a model or labels file replaced in place. The
    extractor (an interpreter) is kept whenever its own settings and file are unchanged:
    a new head or threshold does not reload the model.
    """
    if changed(current.loaded_files):  # the model or labels file was replaced in place
        return make_classifier(new)
    same_extractor = extractor_key(new) == extractor_key(old)
    if isinstance(current, HeadClassifier) and new.head is not None and same_extractor:
        if new == old:
            return current.reloaded(new)
        return HeadClassifier.from_config(new, current.embedder)
    if new != old:
        return make_classifier(new)
    return current
