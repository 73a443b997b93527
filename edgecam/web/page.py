"""What the status page shows: the settings a reload swaps whole, and the last result of each zone.

`PageState.emit` runs on the dispatcher thread, everything else on the web
thread; each update is one assignment (a dict item, or the settings whole),
so no lock is needed and the dispatcher never waits for the page.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecam import __version__
from edgecam.common.hosts import HostCheck
from edgecam.config import Config, read_token, split_listen
from edgecam.core.results import Result, stats_message
from edgecam.core.stats import Stats
from edgecam.errors import ConfigError
from edgecam.snapshots.store import list_snapshots, read_snapshot
from edgecam.web.auth import Auth
from edgecam.web.preview import Overlay

RECENT_SNAPSHOTS = 8
_SNAPSHOTS_S = 5.0  # the snapshot folder is listed at most this often
_STATS_S = 0.5  # the stats' figures (percentiles) are read at most this often


@dataclass(frozen=True)
class PageSettings:
    token: str | None
    preview_fps: float
    preview_width: int
    zones: tuple[tuple[str, tuple[float, float, float, float]], ...]
    model: str
    snapshots: str | None  # the snapshot folder, with snapshots on
    listen_host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> PageSettings:
        """ConfigError (one line, exit 78: restarting cannot fix it) if the token file cannot be
        read."""
        web = config.web
        token = None
        if web.token_file:
            try:
                token = read_token(web.token_file)
            except ValueError as exc:
                raise ConfigError([f"web.token_file: {exc}"]) from None
        return cls(token, web.preview_fps, web.preview_width,
                   tuple((zone.name, zone.crop) for zone in config.zones), model_name(config),
                   config.snapshots.dir if config.snapshots.enabled else None,
                   split_listen(web.listen)[0], web.allowed_hosts)


def _host_check(settings: PageSettings) -> HostCheck:
    return HostCheck(settings.listen_host, settings.allowed_hosts)


def model_name(config: Config) -> str:
    """The model as a user names it: its file, and the head learned on it if there is one."""
    model = config.model
    name = os.path.basename(model.path)
    return f"{os.path.basename(model.head)} (learned on {name})" if model.head else name


class PageState:
    def __init__(self, settings: PageSettings, stats: Stats) -> None:
        self.settings = settings
        self._stats = stats
        self.zones: tuple[str, ...] = ()
        self.results: dict[str | None, Result] = {}
        self._stats_taken: tuple[float, dict[str, Any]] | None = None
        self._snapshots_listed: tuple[float, str | None, list[dict[str, Any]]] | None = None
        self._refused: set[str] = set()  # the snapshots the last listing refused (each counted once)
        self._checks = (settings, Auth(settings.token), _host_check(settings))

    def auth(self) -> Auth:
        """The token check of the settings in force (made again only when a reload swapped them)."""
        return self._settings_checks()[1]

    def hosts(self) -> HostCheck:
        """The Host check of the settings in force (web.allowed_hosts may be reloaded)."""
        return self._settings_checks()[2]

    def _settings_checks(self) -> tuple[PageSettings, Auth, HostCheck]:
        if self._checks[0] is not self.settings:
            settings = self.settings
            self._checks = (settings, Auth(settings.token), _host_check(settings))
        return self._checks

    def emit(self, result: Result) -> None:
        self.results[result.zone] = result

    def set_zones(self, zones: tuple[str, ...]) -> None:
        self.results = {zone: r for zone, r in self.results.items() if zone in zones}
        self.zones = zones

    def last_results(self) -> list[Result]:
        """The last result of each zone in config order (without zones: the frame's)."""
        results, zones = dict(self.results), self.zones
        return [results[zone] for zone in (zones or (None,)) if zone in results]

    def overlays(self) -> list[Overlay]:
        """The zones to draw over the preview, each with its current label."""
        results = dict(self.results)
        drawn = []
        for name, crop in self.settings.zones:
            result = results.get(name)
            text = f"{name}: {result.top.label} {result.top.score:.2f}" if result else name
            drawn.append(Overlay(name, crop, text))
        return drawn

    def status(self, now: float, viewers: int, max_viewers: int) -> dict[str, Any]:
        """/api/status: the stats message (the socket's), the last results, what the page needs."""
        settings = self.settings
        return {"version": __version__,
                "stats": self._stats_message(now),
                "results": [result.message() for result in self.last_results()],
                "model": settings.model,
                "zones": [{"name": name, "crop": list(crop)} for name, crop in settings.zones],
                "preview": {"width": settings.preview_width, "fps": settings.preview_fps,
                            "viewers": viewers, "max_viewers": max_viewers},
                "snapshots": self._snapshots(now)}

    def snapshot_jpeg(self, zone: str, name: str) -> bytes | None:
        """The JPEG /snapshots/ZONE/NAME names, if it is one of the snapshots listed, and a
        regular file reached through no symlink (read_snapshot); off the event loop: it reads."""
        listed = self._snapshots_listed
        url = f"/snapshots/{zone}/{name}"
        if listed is None or not any(item["url"] == url for item in listed[2]):
            return None
        folder = self.settings.snapshots
        return read_snapshot(Path(folder, zone, name)) if folder else None

    def _stats_message(self, now: float) -> dict[str, Any]:
        taken = self._stats_taken
        if taken is None or now - taken[0] >= _STATS_S:
            taken = self._stats_taken = (now, stats_message(self._stats.figures()))
        return taken[1]

    def _snapshots(self, now: float) -> list[dict[str, Any]]:
        folder = self.settings.snapshots
        listed = self._snapshots_listed
        if listed is None or listed[1] != folder or now - listed[0] >= _SNAPSHOTS_S:
            recent: list[dict[str, Any]] = []
            if folder:
                try:
                    found, problems = list_snapshots(Path(folder))
                except OSError:
                    found, problems = [], []
                self._count_refused(problems)
                recent = [{"url": f"/snapshots/{item.jpeg.parent.name}/{item.jpeg.name}",
                           "zone": item.zone, "label": item.label, "score": round(item.score, 3),
                           "ts": item.ts, "time": time.strftime("%H:%M:%S", time.localtime(item.ts))}
                          for item in found[:RECENT_SNAPSHOTS]]
            listed = self._snapshots_listed = (now, folder, recent)
        return listed[2]

    def _count_refused(self, problems: list[str]) -> None:
        """Counts each snapshot refused (snapshots_refused) once, not at every listing."""
        refused = set(problems)
        if refused - self._refused:
            self._stats.count("snapshots_refused", len(refused - self._refused))
        self._refused = refused
