#!/usr/bin/env python3
"""Reaction benchmark: how long after a scene changes in front of a slow board does it say so?

Run from the repository root, as root (the slow board is a cgroup v1 CPU quota):

    .venv/bin/python -m bench.reaction [--codec mjpeg h264] [--cap 25 0] [--seconds S]
                                       [--scene-seconds 3] [--rounds R] [--json FILE]

Defaults: both codecs, a 25 % cap and uncapped, 30 s of MJPEG and 45 s of H.264 per run (one
`--seconds` overrides both), scenes of 3 s, one round. Eight runs take about seven minutes.

The live scene. The photos of ../shared/images, each scaled to fit a 720x720 square and padded
with black onto a 1280x720 frame (so a centre crop, edgecam's default `resize: crop`, sees the
whole photo), cycle every `--scene-seconds`. ffmpeg reads them as an image sequence at 30 fps
with `-re` (in real time) and encodes MJPEG (raw `-f mjpeg`, `-q:v 5`) or H.264 (libx264
`-preset veryfast -tune zerolatency -g 30 -bf 0`, in MPEG-TS so it has timestamps) to a pipe.
A thread of this process reads the pipe into an unbounded queue (ffmpeg is never blocked, so the
stream stays live) and another relays it with blocking sendall() to the one TCP client on
127.0.0.1: a client that reads slowly builds a backlog, as with a real camera over TCP. ffmpeg,
the relay and this process run on core 0; the stream starts when the client connects (a
camera that was already running would serve live frames from then on: the same thing).

Calibration. Before the runs, one short clip of each scene is encoded with each codec, decoded
with OpenCV and classified with LiteRT after the same centre crop; a scene is kept only if every
decoded frame, in every codec, has the same top-1 label, and its expected label is that one
(the first scene with a given label wins: consecutive scenes must differ). With three kept
scenes a skipped scene can be told from a slow one (see "missed" below).

Contenders, one after the other, never at once, each as a subprocess pinned to core 1
(`taskset -c 1`) and, when capped, put into /sys/fs/cgroup/cpu/edgecam-bench-<pid>/ with
cpu.cfs_period_us=100000 and cpu.cfs_quota_us = cap x 1000 by `sh -c 'echo $$ > …/cgroup.procs
&& exec taskset -c 1 CMD'`, so the process is in the group before it starts any thread (checked
in /proc/PID/cgroup; cpu.stat's throttling is reported):

* ``edgecam``: the daemon, ``python -m edgecam run -c CONFIG --print``, on ``tcp://…`` with one
  inference thread, ``emit: every_frame``, ``min_score: 0``, the journal and the socket off
  (``--daemon-stats`` turns the socket on and keeps its stats messages for --json). It is started
  by a wrapper that names its OS threads (NAMED_EDGECAM in bench/launcher.py), so the CPU by thread
  printed after each run says capture, inference, finish, outputs, reader, main.
* ``tree``: the same daemon run from the sources of ``--tree DIR`` (a worktree of an older commit:
  before and after in one run, interleaved).
* ``serial``: this file's hidden ``--serial-loop`` mode, the loop of TensorFlow Lite's Raspberry
  Pi classification example: ``cv2.VideoCapture(url)``, then read, BGR to RGB, centre crop and
  resize, set_tensor, invoke, one JSON line per frame. The LiteRT interpreter, one thread.

What is measured, and why live time. Each result line is stamped with time.time() when this
process reads it. The live start of scene k is when the first byte of its first frame (frame
k x 30 x scene seconds) came out of ffmpeg's pipe: frames are counted in the byte stream (JPEG
start-of-image markers; MPEG-TS packets starting a PES on the video PID). That is better than
"first byte + k x scene seconds": it stays right if ffmpeg runs late or jitters, and it includes
the encoder's latency, as a camera's capture-to-wire time. It is deliberately not the packet or
frame timestamp the client sees: a client that is behind the stream decodes an old frame and
stamps it "now", so any latency measured from its own capture time (edgecam's ``latency_ms``)
hides the backlog; only the live clock shows it.

* reaction of scene k (k >= 1; scene 0 is start-up) = read time of the first result whose top-1
  is scene k's label, found after scene k-1's match, minus the live start of scene k. Results
  come in stream order, so this never matches a frame of an earlier cycle, however far behind.
* missed: the results went on to scene k+1's label (read after its live start) without ever
  showing scene k's. pending: neither, when the run ended (reported, not in the percentiles).
* after the stream ends the connection stays open for up to --grace s (default 40) so a contender
  that is behind can finish the backlog: every streamed scene then gets its real reaction.
* fps: results read while the stream was live / its duration. decoded fps: frames the contender
  took off the stream per second while live, from the results' ``seq`` (edgecam: frames captured,
  classified or dropped; serial: = fps); below 30 the backlog grows. CPU %: utime+stime / wall.
  --json adds ``age_by_seq_ms``, read time minus the live time of frame ``seq``: right only if
  ``seq`` counts every frame from the first (edgecam's H.264 seq starts about 1 s late).
* bounding: median reaction of the scenes starting in the first third and in the last third of
  the stream, and their ratio (about 1: latency bounded; growing: a backlog builds up).
* ratios edgecam/serial of p90 and fps, per case; with --rounds > 1 every figure is the median
  over rounds and the order of the contenders alternates from round to round.

Limits. A 30 s run has 9 measured scenes, so p90 is close to the slowest one; use --rounds for
spread. Read times include this process's threads (on core 0, sharing ffmpeg's core); a few ms.
A 25 % CFS quota with a 100 ms period runs the process in 25 ms bursts, not at a quarter of the
speed: reactions carry up to 75 ms of throttling either way. The picture is synthetic (a still
photo per scene), so the H.264 stream is cheaper to decode than a camera's. Only one TCP client
is accepted: a contender that reconnects finds nothing and its later scenes are missed/pending.
Other load on core 1 (other users of the machine) slows the contenders: check the load average.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from bench.cpu import process_cpu_s, threads_cpu_ns
from bench.launcher import ROOT, Process, edgecam_from
from bench.machine import print_header, table

SHARED = ROOT.parent / "shared"
DEFAULT_MODEL = SHARED / "models" / "mobilenet_v2_1.0_224_quant.tflite"
DEFAULT_LABELS = SHARED / "models" / "imagenet_labels.txt"
DEFAULT_IMAGES = SHARED / "images"

WIDTH, HEIGHT, FPS = 1280, 720, 30
STREAM_CORE, CONTENDER_CORE = 0, 1
CGROUP_ROOT = Path("/sys/fs/cgroup/cpu")
CFS_PERIOD_US = 100_000
SLOW_PERIOD_US = 20_000  # --board slow: the kernel refuses quotas under 1 ms, so 20 ms periods
SLOW_INVOKE_MS = 40.0  # --board slow: the quota at which one bare invoke takes this long
CONTENDERS = ("edgecam", "serial", "gated", "tree")  # gated: edgecam with motion gating (bench/motion.py)
# tree: edgecam run from the sources of --tree (such as a worktree of an older commit)
NOISE_PER_STD = 1 / 0.587  # ffmpeg's noise=alls=S gives a luma std of 0.587 S
DEFAULT_SECONDS = {"mjpeg": 30.0, "h264": 45.0}
ACCEPT_TIMEOUT_S = 90.0  # start-up of a contender under a 25 % cap, until it connects
STOP_TIMEOUT_S = 10.0
TS_PACKET = 188
TS_VIDEO_PID = 0x100  # ffmpeg's mpegts muxer: the first stream's PID
_RESULT_KEYS = {"type", "seq", "ts", "latency_ms", "inference_ms", "labels"}


# -- the model, shared by calibration and the serial loop ------------------------------------------


def fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The centre crop of `image` with the model's aspect ratio, resized (as edgecam's `crop`)."""
    h, w = image.shape[:2]
    aspect = width / height
    if w > h * aspect:
        keep = max(1, round(h * aspect))
        image = image[:, (w - keep) // 2:(w - keep) // 2 + keep]
    else:
        keep = max(1, round(w / aspect))
        image = image[(h - keep) // 2:(h - keep) // 2 + keep]
    if image.shape[:2] == (height, width):
        return image
    shrinking = image.shape[0] > height or image.shape[1] > width
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def load_labels(path: Path | str) -> list[str]:
    return [line.strip() for line in Path(path).read_text().splitlines()]


class Model:
    """A LiteRT interpreter on one thread: RGB frame in, top labels out."""

    def __init__(self, model: Path | str, labels: Path | str) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.labels = load_labels(labels)
        self.interpreter = Interpreter(model_path=str(model), num_threads=1)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        _, self.height, self.width, _ = (int(x) for x in self.input["shape"])
        scale, zero_point = self.output["quantization"]
        self.scale, self.zero_point = (scale or 1.0), zero_point

    def classify(self, rgb: np.ndarray, k: int = 3) -> list[dict[str, Any]]:
        tensor = fit(rgb, self.width, self.height)[np.newaxis].astype(self.input["dtype"])
        self.interpreter.set_tensor(self.input["index"], tensor)
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.output["index"])[0].astype(np.float32)
        scores = (raw - self.zero_point) * self.scale
        top = np.argsort(scores)[::-1][:k]
        return [{"index": int(i), "label": self.labels[i] if i < len(self.labels) else str(i),
                 "score": round(float(scores[i]), 4)} for i in top]


def serial_loop(url: str, model_path: str, labels_path: str) -> int:
    """The TensorFlow Lite Raspberry Pi example's loop: read, convert, classify, print; repeat."""
    model = Model(model_path, labels_path)
    cap = cv2.VideoCapture(url)
    seq = 0
    while cap.isOpened():
        ok, image = cap.read()
        if not ok:
            break
        seq += 1
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        labels = model.classify(rgb)
        print(json.dumps({"type": "classification", "seq": seq, "ts": round(time.time(), 3),
                          "labels": labels}), flush=True)
    cap.release()
    if not seq:
        print(f"serial loop: nothing read from {url}", file=sys.stderr)
        return 1
    return 0


# -- scenes and calibration ------------------------------------------------------------------------


@dataclass
class Scene:
    name: str
    path: Path  # the 1280x720 frame, BMP
    index: int = -1  # expected top-1 label index
    label: str = ""
    checks: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # codec -> (top-1, score)


def letterbox(image: np.ndarray) -> np.ndarray:
    """`image` scaled to fit the centred HEIGHTxHEIGHT square of a black WIDTHxHEIGHT frame."""
    side = min(WIDTH, HEIGHT)
    h, w = image.shape[:2]
    scale = min(side / w, side / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    top, left = (HEIGHT - size[1]) // 2, (WIDTH - size[0]) // 2
    frame[top:top + size[1], left:left + size[0]] = resized
    return frame


def render_scenes(images: Path, workdir: Path) -> list[Scene]:
    scenes = []
    for file in sorted(p for p in images.iterdir() if p.is_file()):
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            continue
        path = workdir / f"scene-{file.stem}.bmp"
        cv2.imwrite(str(path), letterbox(image))
        scenes.append(Scene(file.name, path))
    return scenes


def encoder_args(codec: str) -> list[str]:
    if codec == "mjpeg":
        return ["-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p", "-f", "mjpeg"]
    return ["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", str(FPS),
            "-bf", "0", "-pix_fmt", "yuv420p", "-f", "mpegts"]


def calibrate(scenes: list[Scene], codecs: list[str], model: Model, workdir: Path) -> list[Scene]:
    """Scenes whose top-1 label is the same on every decoded frame of every codec (distinct labels)."""
    kept: list[Scene] = []
    for scene in scenes:
        tops: set[int] = set()
        for codec in codecs:
            clip = workdir / f"calib-{scene.path.stem}.{codec}"
            subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                            "-loop", "1", "-framerate", str(FPS), "-i", str(scene.path),
                            "-frames:v", "8", *encoder_args(codec), str(clip)], check=True)
            cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
            checks = []
            while True:
                ok, image = cap.read()
                if not ok:
                    break
                top = model.classify(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), k=1)[0]
                checks.append((top["index"], top["score"]))
                tops.add(top["index"])
            cap.release()
            scene.checks[codec] = checks
            if not checks:
                tops.add(-1)  # not decodable: not stable
        if len(tops) == 1 and -1 not in tops:
            scene.index = tops.pop()
            scene.label = model.labels[scene.index]
            if all(s.index != scene.index for s in kept):
                kept.append(scene)
    return kept


# -- the live stream -------------------------------------------------------------------------------


class FrameCounter:
    """Counts frame starts in a byte stream fed in chunks of any size."""

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self._carry = b""

    def feed(self, chunk: bytes) -> int:
        data = self._carry + chunk
        if self.codec == "mjpeg":  # SOI + the next marker's 0xff: never inside entropy-coded data
            self._carry = data[-2:]
            return data.count(b"\xff\xd8\xff")
        count, at, end = 0, 0, len(data)
        while at + TS_PACKET <= end:
            if data[at] != 0x47:  # lost sync: find the next sync byte
                at = data.find(b"\x47", at + 1)
                if at < 0:
                    at = end
                continue
            if data[at + 1] & 0x40 and ((data[at + 1] & 0x1F) << 8 | data[at + 2]) == TS_VIDEO_PID:
                count += 1
            at += TS_PACKET
        self._carry = data[at:]
        return count


class Stream:
    """ffmpeg -re → its pipe → a reader thread (stamps each frame) → a queue → the TCP client."""

    def __init__(self, codec: str, frames: Path, n_frames: int, log: Path, filters: str = "") -> None:
        self.codec, self.frames, self.n_frames, self.log = codec, frames, n_frames, log
        self.filters = filters  # an ffmpeg filter chain (--noise: sensor noise)
        self.frame_times: list[float] = []  # when each frame's first byte came out of ffmpeg
        self.bytes_in = self.bytes_out = self.max_backlog = 0
        self.ended = threading.Event()  # ffmpeg's output ended
        self.client_gone = threading.Event()
        self.process: Process | None = None
        self.conn: socket.socket | None = None
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self.ffmpeg_log = ""

    def start(self, conn: socket.socket) -> None:
        self.conn = conn
        cmd = ["taskset", "-c", str(STREAM_CORE), "ffmpeg", "-hide_banner", "-nostdin",
               "-loglevel", "error", "-re", "-framerate", str(FPS), "-start_number", "0",
               "-i", str(self.frames / "f%05d.bmp"), "-frames:v", str(self.n_frames), "-an",
               *(["-vf", self.filters] if self.filters else []),
               *encoder_args(self.codec), "-flush_packets", "1", "pipe:1"]
        self.process = Process(cmd, stdout=subprocess.PIPE, stderr=self.log)
        for target in (self._read, self._relay):
            thread = threading.Thread(target=target, name=f"stream-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _read(self) -> None:
        assert self.process is not None and self.process.proc.stdout is not None
        fd, counter = self.process.proc.stdout.fileno(), FrameCounter(self.codec)
        try:
            while True:
                chunk = os.read(fd, 1 << 16)
                now = time.time()
                if not chunk:
                    break
                self.frame_times.extend([now] * counter.feed(chunk))
                self.bytes_in += len(chunk)
                self._queue.put(chunk)
                self.max_backlog = max(self.max_backlog, self.bytes_in - self.bytes_out)
        finally:
            self.ended.set()

    def _relay(self) -> None:
        assert self.conn is not None
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            try:
                self.conn.sendall(chunk)
            except OSError:
                self.client_gone.set()
                return
            self.bytes_out += len(chunk)

    @property
    def backlog(self) -> int:
        return self.bytes_in - self.bytes_out

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(STOP_TIMEOUT_S)
            self.ffmpeg_log = self.process.log().strip()
        self._queue.put(None)
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.shutdown(socket.SHUT_RDWR)
            self.conn.close()
        for thread in self._threads:
            thread.join(STOP_TIMEOUT_S)


def make_frames(scenes: list[Scene], scene_frames: int, n_frames: int, workdir: Path) -> Path:
    """An image sequence of symlinks: frame i shows scene (i // scene_frames) mod len(scenes)."""
    frames = workdir / "frames"
    frames.mkdir(exist_ok=True)
    for i in range(n_frames):
        link = frames / f"f{i:05d}.bmp"
        if not link.exists():
            link.symlink_to(scenes[(i // scene_frames) % len(scenes)].path)
    return frames


# -- the slow board --------------------------------------------------------------------------------


class CpuCap:
    """A cgroup v1 CPU group with a CFS quota of `percent` % of one core; removed on exit."""

    def __init__(self, percent: float, period_us: int = CFS_PERIOD_US) -> None:
        self.path = CGROUP_ROOT / f"edgecam-bench-{os.getpid()}"
        self.percent = percent
        self.period_us = period_us

    def __enter__(self) -> CpuCap:
        self.path.mkdir()
        try:
            (self.path / "cpu.cfs_period_us").write_text(str(self.period_us))
            (self.path / "cpu.cfs_quota_us").write_text(str(self.quota_us))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    @property
    def quota_us(self) -> int:
        return round(self.period_us * self.percent / 100)

    def stat(self) -> dict[str, int]:
        text = (self.path / "cpu.stat").read_text()
        return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line.strip())}

    def remove(self) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self.path.exists():
            try:
                self.path.rmdir()
            except OSError:  # its last process has not quite gone yet
                if time.monotonic() > deadline:
                    print(f"warning: could not remove {self.path}", file=sys.stderr)
                    return
                time.sleep(0.1)


def invoke_ms(model: Path, labels: Path, cap: CpuCap | None) -> float:
    """The median wall time of one bare invoke (one thread), pinned to the contender's core and
    in `cap`'s group (a subprocess: this file's hidden --invoke-ms mode)."""
    cmd = ["taskset", "-c", str(CONTENDER_CORE), sys.executable, "-m", "bench.reaction", "--invoke-ms",
           str(model), str(labels)]
    if cap is not None:
        cmd = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cap.path / "cgroup.procs"), *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT, timeout=300)
    return float(done.stdout.split()[-1])


def timed_invokes(model_path: str, labels_path: str, n: int = 40) -> int:
    """--invoke-ms: prints the median wall time in ms of `n` invokes of a gray image, after 5."""
    model = Model(model_path, labels_path)
    image = np.full((model.height, model.width, 3), 128, np.uint8)
    times = []
    for i in range(n + 5):
        started = time.perf_counter()
        model.classify(image)
        if i >= 5:
            times.append((time.perf_counter() - started) * 1000)
    print(f"{statistics.median(times):.2f}")
    return 0


def calibrate_slow_board(model: Path, labels: Path) -> tuple[float, list[str]]:
    """The CPU quota (% of one core, SLOW_PERIOD_US periods) at which one bare invoke takes about
    SLOW_INVOKE_MS: a start from the uncapped time, then two corrections measured under it."""
    bare = invoke_ms(model, labels, None)
    pct = 100 * bare / SLOW_INVOKE_MS
    notes = [f"bare invoke {bare:.1f} ms uncapped on CPU {CONTENDER_CORE}"]
    for _ in range(2):
        pct = min(100.0, max(100 * 1000 / SLOW_PERIOD_US, pct))  # the kernel's minimum quota: 1 ms
        with CpuCap(pct, SLOW_PERIOD_US) as cap:
            capped = invoke_ms(model, labels, cap)
            notes.append(f"quota {cap.quota_us} us / {SLOW_PERIOD_US} us ({pct:.1f} %): "
                         f"invoke {capped:.1f} ms")
        if abs(capped - SLOW_INVOKE_MS) < 0.1 * SLOW_INVOKE_MS:
            break
        pct *= capped / SLOW_INVOKE_MS
    return pct, notes


def placement(pid: int) -> tuple[str, str]:
    """The process's cpu cgroup and allowed CPUs, from /proc."""
    group = "?"
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            group = path
    cpus = "?"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            cpus = line.split(":", 1)[1].strip()
    return group, cpus


class Contender:
    """A contender's process: its result lines stamped when read, the last lines of its stderr."""

    def __init__(self, cmd: list[str], cap: CpuCap | None) -> None:
        pinned = ["taskset", "-c", str(CONTENDER_CORE), *cmd]
        if cap is not None:  # in the group before exec, so before any thread exists
            argv = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cap.path / "cgroup.procs"), *pinned]
        else:
            argv = pinned
        self.results: list[tuple[float, dict[str, Any]]] = []
        self.stderr: collections.deque[str] = collections.deque(maxlen=40)
        self.troubles: list[tuple[float, str]] = []  # log lines about a lost or stalled source
        self.process = Process(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, new_session=True)
        self._threads = [threading.Thread(target=self._stdout, daemon=True),
                         threading.Thread(target=self._stderr, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _stdout(self) -> None:
        assert self.process.proc.stdout is not None
        for line in self.process.proc.stdout:
            now = time.time()
            try:
                message = json.loads(line)
            except ValueError:
                self.stderr.append("stdout: " + line.decode(errors="replace").rstrip())
                continue
            if isinstance(message, dict) and message.get("type") == "classification":
                self.results.append((now, message))

    def _stderr(self) -> None:
        assert self.process.proc.stderr is not None
        for line in self.process.proc.stderr:
            text = line.decode(errors="replace").rstrip()
            self.stderr.append(text)
            if any(word in text for word in ("lost", "stalled", "reopening", "abandoned")):
                self.troubles.append((time.time(), text))

    def stop(self) -> int | None:
        self.process.stop(STOP_TIMEOUT_S)
        for thread in self._threads:
            thread.join(2.0)
        return self.process.proc.returncode


def edgecam_config(port: int, model: Path, labels: Path, workdir: Path, stats: bool,
                   gated: bool = False) -> dict[str, Any]:
    return {
        "camera": {"source": f"tcp://127.0.0.1:{port}", "fps": FPS},
        **({"pipeline": {"motion": {"enabled": True}}} if gated else {}),
        "model": {"path": str(model), "labels": str(labels), "threads": 1},
        "outputs": {"emit": "every_frame", "min_score": 0.0, "journal": {"enabled": False},
                    "socket": {"enabled": stats, "path": str(workdir / "results.sock")}},
        "log_level": "info",
    }


class StatsReader:
    """The daemon's socket, read in a thread: its stats messages, kept (--daemon-stats)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = None
        while not self._stop.is_set() and conn is None:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                conn.connect(str(self.path))
            except OSError:
                conn.close()
                conn = None
                self._stop.wait(0.2)
        if conn is None:
            return
        conn.settimeout(0.5)
        buffer = b""
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(1 << 16)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if b'"type": "stats"' in line:
                        with contextlib.suppress(ValueError):
                            self.messages.append({"read": time.time(), **json.loads(line)})

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)


# -- one run ---------------------------------------------------------------------------------------


@dataclass
class Run:
    contender: str
    codec: str
    cap: float
    round: int
    scene_s: float
    outcomes: list[dict[str, Any]]
    results: int
    live_s: float
    fps: float
    decoded_fps: float  # frames the contender read from the stream per second (from `seq`)
    cpu_pct: float
    first_result_s: float | None
    stream_fps: float
    max_backlog_mb: float
    throttle: dict[str, int]
    placement: tuple[str, str]
    exit_code: int | None
    extra: dict[str, Any] = field(default_factory=dict)
    log_tail: list[str] = field(default_factory=list)

    def reactions(self, which: str = "all") -> list[float]:
        seen = [o for o in self.outcomes if o["status"] == "seen"]
        third = self.live_s / 3
        if which == "first":
            seen = [o for o in seen if o["start_s"] < third]
        elif which == "last":
            seen = [o for o in seen if o["start_s"] >= 2 * third]
        return [o["reaction_ms"] for o in seen]

    def count(self, status: str) -> int:
        return sum(o["status"] == status for o in self.outcomes)

    def figures(self) -> dict[str, float]:
        every, first, last = self.reactions(), self.reactions("first"), self.reactions("last")
        nan = float("nan")
        p50 = statistics.median(every) if every else nan
        p90 = percentile(every, 90) if every else nan
        m1 = statistics.median(first) if first else nan
        m3 = statistics.median(last) if last else nan
        periods = self.throttle.get("nr_periods", 0)
        return {"scenes": len(self.outcomes), "seen": self.count("seen"), "missed": self.count("missed"),
                "pending": self.count("pending"), "p50": p50, "p90": p90, "fps": self.fps,
                "decoded_fps": self.decoded_fps,
                "first_third": m1, "last_third": m3, "growth": m3 / m1 if m1 else nan,
                "cpu_pct": self.cpu_pct,
                "throttled_pct": 100 * self.throttle.get("nr_throttled", 0) / periods if periods else nan,
                "first_result_s": self.first_result_s if self.first_result_s is not None else nan}


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    return float(np.percentile(values, q))


def analyse(results: list[tuple[float, int]], starts: list[float], expected: list[int],
            t0: float) -> list[dict[str, Any]]:
    """Each scene k >= 1's outcome, from (read time, top-1 index) in read order and live starts."""
    outcomes = []
    pos, pending_from = 0, None
    for k in range(1, len(starts)):
        want, after = expected[k], expected[k + 1] if k + 1 < len(expected) else None
        next_start = starts[k + 1] if k + 1 < len(starts) else math.inf
        status, reaction, i = "pending", None, pos
        while pending_from is None and i < len(results):
            t, index = results[i]
            if t >= starts[k] and index == want:
                status, reaction, pos = "seen", (t - starts[k]) * 1000, i + 1
                break
            if t >= next_start and index == after:
                status, pos = "missed", i
                break
            i += 1
        if status == "pending":  # the results ran out: every later scene is undecided too
            pending_from = k
        outcomes.append({"scene": k, "label": want, "start_s": round(starts[k] - t0, 3),
                         "status": status, "reaction_ms": None if reaction is None else round(reaction, 1)})
    return outcomes


def top_index(message: dict[str, Any]) -> int:
    labels = message.get("labels") or [{}]
    return int(labels[0].get("index", -1))


def run_once(contender: str, codec: str, cap_pct: float, rnd: int, seconds: float, scene_s: float,
             scenes: list[Scene], frames: Path, args: argparse.Namespace) -> Run:
    scene_frames = round(scene_s * FPS)
    n_scenes = max(3, math.ceil(seconds / scene_s))
    n_frames = n_scenes * scene_frames
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edgecam-reaction-")))
        listener = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        url = f"tcp://127.0.0.1:{port}"
        if contender in ("edgecam", "gated", "tree"):
            config = workdir / "edgecam.yaml"
            config.write_text(yaml.safe_dump(
                edgecam_config(port, args.model, args.labels, workdir, args.daemon_stats,
                               gated=contender == "gated"), sort_keys=False))
            tree = args.tree if contender == "tree" else ROOT
            cmd = edgecam_from(tree, config, "--print")
        else:
            cmd = [sys.executable, "-m", "bench.reaction", "--serial-loop", url,
                   str(args.model), str(args.labels)]
        cap = stack.enter_context(CpuCap(cap_pct, args.period_us)) if cap_pct else None
        # ExitStack unwinds last in, first out: the contender stops first (a sendall blocked on it
        # then fails), then the stream, then the cgroup is removed.
        stream = Stream(codec, frames, n_frames, workdir / "ffmpeg.log", args.filters)
        stack.callback(stream.stop)
        proc = Contender(cmd, cap)
        stack.callback(proc.stop)
        stats = None
        if contender != "serial" and args.daemon_stats:
            stats = StatsReader(workdir / "results.sock")
            stack.callback(stats.stop)
        listener.settimeout(0.5)
        deadline = time.monotonic() + ACCEPT_TIMEOUT_S
        while True:
            try:
                conn, _ = listener.accept()
                break
            except TimeoutError:
                if not proc.process.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"{contender} never connected (exit {proc.process.proc.poll()}):\n"
                                       + "\n".join(proc.stderr)) from None
        listener.close()  # one client only
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        where = placement(proc.process.pid)
        if (cap is not None and not where[0].endswith(cap.path.name)) or where[1] != str(CONTENDER_CORE):
            raise RuntimeError(f"{contender} is not where it should be: cgroup {where[0]}, CPUs {where[1]}")
        cpu0 = process_cpu_s(proc.process.pid)
        threads0 = threads_cpu_ns(proc.process.pid)
        stream.start(conn)
        stream.ended.wait(n_frames / FPS + 30)
        threads1 = threads_cpu_ns(proc.process.pid)  # the live stream's time, per thread
        if len(stream.frame_times) < n_frames:
            raise RuntimeError(f"the stream ended after {len(stream.frame_times)} of {n_frames} frames: "
                               f"{stream.ffmpeg_log}")
        t0 = stream.frame_times[0]
        t_end = stream.frame_times[-1] + 1 / FPS
        starts = [stream.frame_times[k * scene_frames] for k in range(n_scenes)]
        expected = [scenes[k % len(scenes)].index for k in range(n_scenes)]

        def outcomes() -> list[dict[str, Any]]:
            read = [(t, top_index(m)) for t, m in list(proc.results)]
            return analyse(read, starts, expected, t0)

        grace_end = time.monotonic() + args.grace
        while (any(o["status"] == "pending" for o in outcomes()) and time.monotonic() < grace_end
               and proc.process.alive() and not stream.client_gone.is_set()):
            time.sleep(0.25)
        wall = time.time() - t0
        alive = proc.process.alive()
        cpu = process_cpu_s(proc.process.pid) - cpu0 if alive else float("nan")
        throttle = cap.stat() if cap is not None else {}
        final = outcomes()
        backlog_end = stream.backlog
    exit_code = proc.process.proc.returncode
    live = [(t, m) for t, m in proc.results if t0 <= t <= t_end]
    threads_ms = {name: (ns - threads0.get(name, 0)) / 1e6 for name, ns in threads1.items()}
    extra: dict[str, Any] = {"backlog_at_end_mb": round(backlog_end / 1e6, 2),
                             # CPU ms per classified frame while live, per thread name
                             "thread_ms_per_frame": {name: round(ms / max(1, len(live)), 2)
                                                     for name, ms in sorted(threads_ms.items())
                                                     if ms >= 1},
                             "source_troubles_live": [line for t, line in proc.troubles if t <= t_end]}
    seqs = [(t, m["seq"]) for t, m in live if isinstance(m.get("seq"), int)]
    decoded_fps = ((seqs[-1][1] - seqs[0][1]) / (seqs[-1][0] - seqs[0][0])
                   if len(seqs) > 1 and seqs[-1][0] > seqs[0][0] else float("nan"))
    ages = [t - stream.frame_times[m["seq"] - 1] for t, m in proc.results
            if isinstance(m.get("seq"), int) and 0 < m["seq"] <= len(stream.frame_times)]
    if ages:  # read time minus the live time of the frame it says it classified (if seq = frame count)
        extra["age_by_seq_ms"] = {"p50": round(percentile(ages, 50) * 1000), "p90": round(
            percentile(ages, 90) * 1000), "max": round(max(ages) * 1000)}
    others = {k: v for _, m in proc.results for k, v in m.items() if k not in _RESULT_KEYS}
    if others:
        extra["result_fields_last"] = others
    if stats is not None and stats.messages:
        extra["stats_last"] = stats.messages[-1]
        behind = [m["behind_ms"] for m in stats.messages if "behind_ms" in m]
        if behind:
            extra["stats_behind_ms"] = behind
    return Run(contender=contender, codec=codec, cap=cap_pct, round=rnd, scene_s=scene_s,
               outcomes=final, results=len(live), live_s=t_end - t0, fps=len(live) / (t_end - t0),
               decoded_fps=decoded_fps,
               cpu_pct=100 * cpu / wall, stream_fps=(len(stream.frame_times) - 1) / (t_end - t0 - 1 / FPS),
               first_result_s=(proc.results[0][0] - t0) if proc.results else None,
               max_backlog_mb=stream.max_backlog / 1e6, throttle=throttle, placement=where,
               exit_code=exit_code, extra=extra, log_tail=list(proc.stderr)[-10:])


# -- report ----------------------------------------------------------------------------------------




def _f(value: float, digits: int = 0) -> str:
    return "-" if value != value else f"{value:.{digits}f}"  # nan -> "-"


def cap_name(cap: float) -> str:
    return f"{cap:g}%" if cap else "none"


def summarise(runs: list[Run]) -> dict[tuple[str, float, str], dict[str, float]]:
    """Median of every figure over the rounds, per (codec, cap, contender)."""
    groups: dict[tuple[str, float, str], list[dict[str, float]]] = {}
    for r in runs:
        groups.setdefault((r.codec, r.cap, r.contender), []).append(r.figures())
    out = {}
    for key, figs in groups.items():
        out[key] = {name: _median([f[name] for f in figs]) for name in figs[0]}
    return out


def _median(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def report(runs: list[Run], rounds: int) -> str:
    header = ["codec", "cap", "contender", "scenes", "seen", "missed", "pending", "p50 ms", "p90 ms",
              "fps", "decoded fps", "1st third ms", "last third ms", "last/1st", "CPU %", "throttled %",
              "1st result s"]
    out = []

    def row(codec: str, cap: float, name: str, f: dict[str, float], prefix: list[str]) -> list[str]:
        return [*prefix, codec, cap_name(cap), name, _f(f["scenes"]), _f(f["seen"]), _f(f["missed"]),
                _f(f["pending"]), _f(f["p50"]), _f(f["p90"]), _f(f["fps"], 1), _f(f["decoded_fps"], 1),
                _f(f["first_third"]),
                _f(f["last_third"]), _f(f["growth"], 2), _f(f["cpu_pct"]), _f(f["throttled_pct"]),
                _f(f["first_result_s"], 1)]

    if rounds > 1:
        out += ["## Every run", ""]
        out.append(table(["round", *header], [row(r.codec, r.cap, r.contender, r.figures(), [str(r.round)])
                                              for r in runs]))
        out += ["", "## Medians over the rounds", ""]
    summary = summarise(runs)
    out.append(table(header, [row(*key, f, []) for key, f in summary.items()]))
    out += ["", "## edgecam / serial", ""]
    rows = []
    for codec, cap in dict.fromkeys((k[0], k[1]) for k in summary):
        e, s = summary.get((codec, cap, "edgecam")), summary.get((codec, cap, "serial"))
        if e and s:
            rows.append([codec, cap_name(cap), _f(e["p90"] / s["p90"], 2), _f(e["fps"] / s["fps"], 2)])
    out.append(table(["codec", "cap", "p90 edgecam/serial", "fps edgecam/serial"], rows))
    notes = []
    for r in runs:
        if r.stream_fps < FPS * 0.97:
            notes.append(f"note: {r.codec} round {r.round} {r.contender}: ffmpeg delivered only "
                         f"{r.stream_fps:.1f} fps (live times are still right: they are measured)")
        if r.exit_code not in (0, None, -signal.SIGTERM):
            notes.append(f"note: {r.contender} ({r.codec}, cap {cap_name(r.cap)}) exited with "
                         f"{r.exit_code}; last lines:\n    " + "\n    ".join(r.log_tail))
        if r.extra.get("source_troubles_live"):
            notes.append(f"note: {r.contender} ({r.codec}, cap {cap_name(r.cap)}) lost or reopened its "
                         "source (only one connection is served): see --json log_tail")
    if notes:
        out += ["", *notes]
    return "\n".join(out)


# -- main ------------------------------------------------------------------------------------------


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reaction", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codec", nargs="+", choices=("mjpeg", "h264"), default=["mjpeg", "h264"])
    parser.add_argument("--cap", nargs="+", type=float, default=[25.0, 0.0], metavar="PCT",
                        help="CPU quota in %% of one core; 0 = uncapped (default: 25 0)")
    parser.add_argument("--seconds", type=float,
                        help="stream length per run (default: 30 for mjpeg, 45 for h264)")
    parser.add_argument("--scene-seconds", type=float, default=3.0, help="scene duration (default: 3)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every case (default: 1)")
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=["edgecam", "serial"])
    parser.add_argument("--grace", type=float, default=40.0,
                        help="seconds after the stream ends for a contender to catch up (default: 40)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--daemon-stats", action="store_true",
                        help="turn edgecam's socket on and keep its stats messages (in --json)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every figure here")
    parser.add_argument("--board", choices=("slow",),
                        help="slow: one core with the CPU quota (20 ms periods) at which one bare invoke "
                        f"takes ~{SLOW_INVOKE_MS:g} ms, calibrated here (replaces --cap)")
    parser.add_argument("--noise", type=float, default=0.0, metavar="STD",
                        help="temporal sensor noise added to the stream (luma std, gray levels)")
    parser.add_argument("--tree", type=Path, metavar="DIR",
                        help="the sources the contender 'tree' runs edgecam from (a worktree of 3f5f771)")
    parser.add_argument("--serial-loop", nargs=3, metavar=("URL", "MODEL", "LABELS"), help=argparse.SUPPRESS)
    parser.add_argument("--invoke-ms", nargs=2, metavar=("MODEL", "LABELS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serial_loop:
        return serial_loop(*args.serial_loop)
    if args.invoke_ms:
        return timed_invokes(*args.invoke_ms)
    args.filters = f"noise=alls={args.noise * NOISE_PER_STD:.2f}:allf=t" if args.noise else ""
    args.period_us = CFS_PERIOD_US

    args.model, args.labels, args.images = (p.resolve() for p in (args.model, args.labels, args.images))
    args.tree = args.tree.resolve() if args.tree else None
    if "tree" in args.contenders and not (args.tree and (args.tree / "edgecam" / "__main__.py").exists()):
        parser.error("the contender 'tree' needs --tree DIR, a source tree with edgecam/__main__.py")
    for path in (args.model, args.labels, args.images):
        if not path.exists():
            parser.error(f"{path}: not found")
    capped = args.board or any(args.cap)
    if capped and (os.geteuid() != 0 or not (CGROUP_ROOT / "cpu.cfs_quota_us").exists()):
        parser.error(f"a CPU cap needs root and cgroup v1 at {CGROUP_ROOT} (or --cap 0)")
    if not {STREAM_CORE, CONTENDER_CORE} <= os.sched_getaffinity(0):
        parser.error(f"needs CPUs {STREAM_CORE} (the stream) and {CONTENDER_CORE} (the contender)")
    os.sched_setaffinity(0, {STREAM_CORE})
    signal.signal(signal.SIGTERM, _interrupt)  # a kill runs every `finally` too, as Ctrl-C does

    started = time.monotonic()
    print_header("edgecam reaction benchmark (a slow board)", __file__, argv)
    print(flush=True)
    if args.board == "slow":
        pct, notes = calibrate_slow_board(args.model, args.labels)
        args.cap, args.period_us = [pct], SLOW_PERIOD_US
        print("## The slow board (--board slow)\n\n" + "\n".join(notes)
              + f"\nchosen: cpu.cfs_quota_us {round(SLOW_PERIOD_US * pct / 100)}, cpu.cfs_period_us "
              f"{SLOW_PERIOD_US} ({pct:.1f} % of one core)\n", flush=True)

    scene_frames = round(args.scene_seconds * FPS)
    seconds = {c: args.seconds or DEFAULT_SECONDS[c] for c in args.codec}
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="edgecam-reaction-") as tmp:
        workdir = Path(tmp)
        scenes = render_scenes(args.images, workdir)
        kept = calibrate(scenes, args.codec, Model(args.model, args.labels), workdir)
        rows = []
        for s in scenes:
            what = s.label if s in kept else "(unstable: dropped)" if s.index < 0 else \
                f"{s.label} (duplicate label: dropped)"
            rows.append([s.name, what, *(f"{min(sc for _, sc in s.checks[c]):.2f}" if s.checks.get(c)
                                         else "-" for c in args.codec)])
        print("## Scenes (top-1 of every decoded calibration frame; min score per codec)\n")
        print(table(["scene", "expected label", *args.codec], rows))
        print(flush=True)
        if len(kept) < 2:
            print("error: fewer than two scenes with a stable, distinct label", file=sys.stderr)
            return 1
        if len(kept) < 3:
            print("note: with two scenes a skipped scene looks like a slow one (missed is not counted)")
        max_frames = max(max(3, math.ceil(s / args.scene_seconds)) for s in seconds.values()) * scene_frames
        frames = make_frames(kept, scene_frames, max_frames, workdir)
        for rnd in range(1, args.rounds + 1):
            order = args.contenders if rnd % 2 else args.contenders[::-1]
            for codec in args.codec:
                for cap in args.cap:
                    for contender in order:
                        run = run_once(contender, codec, cap, rnd, seconds[codec], args.scene_seconds,
                                       kept, frames, args)
                        runs.append(run)
                        f = run.figures()
                        print(f"round {rnd} {codec:>5} cap {cap_name(cap):>4} {contender:>7}: "
                              f"p50 {_f(f['p50'])} ms, p90 {_f(f['p90'])} ms, {f['seen']:.0f} seen, "
                              f"{f['missed']:.0f} missed, {f['pending']:.0f} pending, {run.fps:.1f} fps, "
                              f"CPU {run.cpu_pct:.0f} %, throttled {_f(f['throttled_pct'])} % "
                              f"(cgroup {run.placement[0]}, CPUs {run.placement[1]})", flush=True)
                        print("    CPU ms per classified frame, by thread: " + ", ".join(
                            f"{name} {ms}" for name, ms in run.extra["thread_ms_per_frame"].items()),
                            flush=True)
    print()
    print(report(runs, args.rounds))
    print(f"\nscenes: {', '.join(s.label for s in kept)}, {args.scene_seconds:g} s each; "
          f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"took {time.monotonic() - started:.0f} s")
    if args.json:
        data = {"argv": sys.argv[1:] if argv is None else argv,
                "scenes": [{"name": s.name, "index": s.index, "label": s.label,
                            "checks": s.checks} for s in scenes],
                "runs": [vars(r) | {"figures": r.figures()} for r in runs]}
        args.json.write_text(json.dumps(data, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
