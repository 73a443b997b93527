"""The model factory: the classifier a config's model section asks for, and what a reload keeps.

Every caller (the daemon, `edgecam classify`) gets an ImageClassifier from
here, never a back-end class by name, so a new back-end is one module, its row
in config.backends.TABLE and its opener in OPENERS.
"""

from __future__ import annotations

from collections.abc import Callable

from edgecam.config import ModelConfig
from edgecam.config.backends import backend_for
from edgecam.config.diff import extractor_key
from edgecam.models.base import ImageClassifier
from edgecam.models.classifier import Classifier
from edgecam.models.fewshot.imprint import HeadClassifier
from edgecam.models.filesig import changed


def _imx500(config: ModelConfig) -> ImageClassifier:
    from edgecam.models.imx500 import Imx500Classifier  # picamera2's, imported only for an .rpk

    return Imx500Classifier(config)


def _hailo(config: ModelConfig) -> ImageClassifier:
    from edgecam.models.hailo import HailoClassifier  # HailoRT's, imported only for a .hef

    return HailoClassifier(config)


#: how each back-end of config.backends.TABLE opens a model section (by its name)
OPENERS: dict[str, Callable[[ModelConfig], ImageClassifier]] = {
    "litert": Classifier.from_config, "onnx": Classifier.from_config,
    "imx500": _imx500, "hailo": _hailo,
}


def make_classifier(config: ModelConfig, *, recover: bool = False) -> ImageClassifier:
    """The classifier the model section asks for: a head's classes, or the model's own labels,
    on the back-end model.backend (or the model file) names. `recover` (the daemon's start): a
    corrupt head is set aside (HeadClassifier.from_config)."""
    if config.head is not None:
        return HeadClassifier.from_config(config, recover=recover)
    return OPENERS[backend_for(config.backend, config.path).name](config)


def on_camera_sensor(*models: ModelConfig) -> bool:
    """Whether any of these model sections runs on the AI Camera's sensor."""
    return any(backend_for(model.backend, model.path).on_sensor for model in models)


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
