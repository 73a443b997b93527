"""What a reload changed: one `ConfigDiff(old, new)` that every reload decision reads.

The service's "reloaded: ..." line, the outputs' plan (outputs.registry), the pipeline's
choice to keep or rebuild the filter, the snapshot writer and the source, and the models'
choice to keep a head's extractor all ask it, by name, rather than each listing the
sections it compares: a new section or setting is then taught to one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from edgecam.config.schema import Config, ModelConfig

#: the top-level sections, in the order the "reloaded: ..." line names them
SECTIONS = ("camera", "model", "pipeline", "outputs", "zones", "snapshots", "web", "fleet", "log_level")
#: the sections some output reads (its rules, the zones it reports, the status page, the model's
#: labels, the snapshots' folder): a reload that changes none of them keeps every output as it is
_OUTPUT_SECTIONS = ("outputs", "zones", "web", "model", "snapshots")

class ExtractorKey(NamedTuple):
    """The settings an extractor (the interpreter a head runs on) is made from: two model
    sections with one key can share one, and a reload that keeps it keeps the interpreter."""

    path: str
    threads: int | str
    resize: str
    backend: str
    providers: tuple[str, ...]



def extractor_key(model: ModelConfig) -> ExtractorKey:
    """Two models with the same key share one extractor (the head on top may differ)."""
    return ExtractorKey(model.path, model.threads, model.resize, model.backend, model.providers)


def whole_frames(config: Config) -> bool:
    """Whether frames reach inference whole, not fitted to the model's input by the capture thread:
    with zones (each crops its part), with snapshots (a snapshot is the full frame) and with the
    status page (its preview shows what the camera sees, not the model's square)."""
    return bool(config.zones) or config.snapshots.enabled or config.web.enabled


@dataclass(frozen=True)
class ConfigDiff:
    old: Config
    new: Config

    @property
    def sections(self) -> list[str]:
        """The top-level sections that changed, in SECTIONS' order."""
        return [name for name in SECTIONS if getattr(self.new, name) != getattr(self.old, name)]

    @property
    def outputs(self) -> bool:
        """Anything an output reads changed (else the outputs stay as they run)."""
        return any(getattr(self.old, name) != getattr(self.new, name) for name in _OUTPUT_SECTIONS)

    @property
    def result_filter(self) -> bool:
        """The whole frame's emit rules changed: its filter starts afresh."""
        return self.new.outputs != self.old.outputs

    @property
    def snapshots(self) -> bool:
        return self.new.snapshots != self.old.snapshots

    @property
    def model(self) -> bool:
        return self.new.model != self.old.model

    @property
    def extractor(self) -> bool:
        """The whole frame's model needs another extractor (a new head alone does not)."""
        return extractor_key(self.new.model) != extractor_key(self.old.model)

    @property
    def reopen_source(self) -> bool:
        """What the source reads or delivers changed (the camera, the frames' fit or size, how
        old a frame may be): it is reopened. The classifier's own input size and whether it runs
        on the sensor count too; the pipeline compares those, knowing the classifiers."""
        old, new = self.old, self.new
        return (new.camera != old.camera or new.model.resize != old.model.resize
                or new.pipeline.max_frame_age_ms != old.pipeline.max_frame_age_ms
                or whole_frames(new) != whole_frames(old))
