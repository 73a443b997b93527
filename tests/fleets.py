"""Fleet integration helpers: members' configs, the held-out stream, a model server, signed manifests.

Imported by name by the fleet tests (tests/integration/test_fleet*.py), as the
other helpers beside conftest.py are.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import pytest
from brokers import Subscriber, free_port
from conftest import run_edgecam
from fleet_keys import make_key, signed
from harness import LABELS, MODELS, Daemon, base_config, wait_for
from heads import EXTRACTOR
from learn_views import TEST, TRAIN, scenes, views, write_views

X, Y = "X", "Y"
STREAM = [(X, "cat", TEST[0]), (X, "cat", TEST[1]), (X, "cat", TEST[3]),
          (Y, "hopper", TEST[0]), (Y, "hopper", TEST[2]), ("unknown", None, None)]
SMALL = MODELS / "mobilenet_v1_0.25_128_quant.tflite"
DEFAULT = MODELS / "mobilenet_v2_1.0_224_quant.tflite"
MODEL_TOPIC = "edgecam/fleet/model"
WAIT_S = 120  # bounds a hang only


class Files(SimpleHTTPRequestHandler):
    """Serves a folder and records each request; with the server's `pace_s` set, 16 kB at a
    time, that many seconds apart; /endless.tflite streams zeros until the server stops."""

    def do_GET(self) -> None:
        server: Any = self.server
        server.requests.append(self.path)
        if self.path != "/endless.tflite":
            super().do_GET()
            return
        self.send_response(200)
        self.end_headers()  # HTTP/1.0, no length: the body ends when the connection does
        chunk = b"\0" * 65536
        try:
            while not server.stopping.is_set():
                self.wfile.write(chunk)
        except OSError:
            pass  # the member hung up, as it should

    def log_message(self, format: str, *args: object) -> None:
        pass

    def copyfile(self, source: Any, outputfile: Any) -> None:
        pace_s = getattr(self.server, "pace_s", 0.0)
        if not pace_s:
            super().copyfile(source, outputfile)
            return
        try:
            while chunk := source.read(16 * 1024):
                outputfile.write(chunk)
                outputfile.flush()
                time.sleep(pace_s)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the member went away (killed in the middle of the download)


class FileServer:
    """An HTTP server on 127.0.0.1 for a folder; stop() and start() again keep its port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.pace_s = 0.0
        self.requests: list[str] = []  # each request's path, in order
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def start(self) -> FileServer:
        handler = functools.partial(Files, directory=str(self.folder))
        httpd = self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        httpd.daemon_threads = True
        httpd.pace_s = self.pace_s  # type: ignore[attr-defined]
        httpd.requests = self.requests  # type: ignore[attr-defined]
        httpd.stopping = threading.Event()  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"http-{self.port}", daemon=True)
        self._thread.start()
        return self

    def pace(self, seconds: float) -> None:
        """From now on, each 16 kB waits `seconds` (0: as fast as it goes)."""
        self.pace_s = seconds
        if self._httpd is not None:
            self._httpd.pace_s = seconds  # type: ignore[attr-defined]

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.stopping.set()  # type: ignore[attr-defined]
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(10)


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[FileServer]:
    """A model server with the two MobileNets and their labels (labels.txt)."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = FileServer(folder)
    served_models(server)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def stream_folder(folder: Path) -> Path:
    """The held-out views each daemon reads, named so that their order is STREAM's."""
    folder.mkdir(parents=True)
    for number, (_label, photo, view) in enumerate(STREAM):
        image = scenes()["gray"] if photo is None else views(photo, (view,))[0]
        assert cv2.imwrite(str(folder / f"{number}.png"), image)
    return folder


def member_config(tmp_path: Path, device: str, port: int, stream: Path, *, head: bool = True,
                  **fleet: Any) -> dict[str, Any]:
    home = tmp_path / device
    config = base_config(home, camera={"source": str(stream), "fps": 20})
    if head:
        config["model"] = {"path": str(EXTRACTOR), "head": str(home / "heads" / "default.head"),
                           "threads": 1}
    config["outputs"]["mqtt"] = {"enabled": True, "host": "127.0.0.1", "port": port,
                                 "topic_prefix": f"edgecam/{device}", "keepalive_s": 2,
                                 "stats_interval_s": 1}
    config["fleet"] = {"enabled": True, "state_dir": str(home / "state"), **fleet}
    return config


@pytest.fixture
def operator_key(tmp_path: Path) -> tuple[Path, Path]:
    """The fleet operator's key pair (`edgecam fleet keygen`): (private, public)."""
    return make_key(tmp_path / "keys")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def document(version: str, url: str, sha: str, labels_url: str, labels_sha: str) -> dict[str, str]:
    return {"version": version, "url": url, "sha256": sha, "labels_url": labels_url,
            "labels_sha256": labels_sha}


def served(server: FileServer, version: str, model: str = SMALL.name, labels: str = "labels.txt",
           sha: str | None = None) -> dict[str, str]:
    """A manifest's fields for files `server` serves (a file it lacks: a sha256 of zeros)."""
    folder = server.folder
    if sha is None:
        sha = sha256(folder / model) if (folder / model).exists() else "0" * 64
    return document(version, server.url(model), sha, server.url(labels), sha256(folder / labels))


def manifest(server: FileServer, version: str, model: str, labels: str = "labels.txt",
             sha256: str | None = None, *, key: Path | None = None) -> str:
    """A manifest for files `server` serves, signed with `key` (None: unsigned)."""
    fields = served(server, version, model, labels, sha256)
    return json.dumps(fields) if key is None else signed(key, fields)


def statuses(everything: Subscriber, since: int) -> dict[str, dict[str, Any]]:
    found = {}
    for message in everything.messages[since:]:
        if message.topic.endswith("/model_status") and message.payload:
            found[message.topic.split("/")[1]] = json.loads(message.payload)
    return found


def wait_statuses(everything: Subscriber, since: int, version: str, state: str,
                  devices: str = "abc") -> dict[str, Any]:
    """Each of `devices`' model_status since `since`, once all say `version` `state`."""
    def all_there() -> dict[str, Any] | None:
        found = statuses(everything, since)
        ok = set(found) >= set(devices) and all(found[d]["version"] == version
                                                and found[d]["state"] == state for d in devices)
        return found if ok else None
    return wait_for(all_there, WAIT_S, f"{', '.join(devices)} to report {version} {state}")


def last_stats(everything: Subscriber, device: str) -> dict[str, Any]:
    return json.loads(everything.wait(f"edgecam/{device}/stats",
                                      since=everything.mark() - 1 if everything.mark() else 0).payload)


def flowing(daemon: Daemon) -> None:
    client = daemon.client()
    try:
        client.results(5)
    finally:
        client.close()


def served_models(server: FileServer) -> None:
    """The two MobileNets and their labels, as a model server would have them."""
    shutil.copy(SMALL, server.folder / SMALL.name)
    shutil.copy(DEFAULT, server.folder / DEFAULT.name)
    shutil.copy(LABELS, server.folder / "labels.txt")


def start_members(daemons: Callable[..., Daemon], tmp_path: Path, port: int, devices: str = "abc",
                  *, head: bool = True, aggregator: str | None = "c", **fleet: Any
                  ) -> dict[str, Daemon]:
    """Members `devices` on the broker at `port`, reading the held-out stream, sockets up; with
    heads, `aggregator` (one of them) merges everyone's and publishes the fleet's head."""
    stream = stream_folder(tmp_path / "stream")
    members = {device: daemons(member_config(tmp_path, device, port, stream, head=head, **fleet,
                                             **({"aggregate": True} if head and device == aggregator
                                                else {})),
                               name=device) for device in devices}
    for daemon in members.values():
        daemon.wait_socket()
    return members


def recognizes(daemon: Daemon, expected: list[str | None], what: str, cycles: int = 2) -> None:
    """Waits until two full cycles of the stream in a row each give every view's expected label
    (None: any label)."""
    client = daemon.client()
    try:
        run: list[bool] = []

        def settled() -> bool:
            result = client.messages("classification", 1)[0]
            index = (result["seq"] - 1) % len(expected)
            run.append(expected[index] is None or result["labels"][0]["label"] == expected[index])
            del run[:-cycles * len(expected)]
            return len(run) == cycles * len(expected) and all(run)
        wait_for(settled, WAIT_S, what, interval=0)
    finally:
        client.close()


def learn(daemon: Daemon, label: str, photo: str, folder: Path) -> None:
    images = write_views(folder, photo, TRAIN)  # three views: "≤ 3 photos"
    done = run_edgecam("learn", "add", label, *images, "-c", daemon.config_path)
    assert done.returncode == 0, done.stderr
    daemon.signal(signal.SIGHUP)
