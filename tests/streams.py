"""Live network streams for integration tests: a scene video built from the test photos, served by ffmpeg.

`build_scenes` encodes the photos into one MPEG-TS video, a few seconds per
photo, every frame an intra frame (so a reader that joins late, or again
after a reconnect, decodes at once). `StreamServer` serves it in real time
and in a loop with ffmpeg's TCP listener (`tcp://127.0.0.1:PORT?listen=1`),
which OpenCV's FFmpeg backend reads as `tcp://127.0.0.1:PORT`. That listener
accepts one client: when it goes away ffmpeg exits, and a new connection needs
a new server on the same port (`start()` again).

Every process is handled by its pid only: `close()` continues a stopped
server, kills it and reaps it, and is safe to call at any time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

# Re-exported: the tests take it from here (its one copy, shared with bench/, is the launcher's).
from bench.launcher import free_port  # noqa: F401

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
WIDTH, HEIGHT = 640, 480

# A safety net against a hung child, not a speed check.
BUILD_TIMEOUT_S = 120
_LISTEN_TIMEOUT_S = 30
_EXIT_TIMEOUT_S = 10


ALL_INTRA_MPEG4 = ("-c:v", "mpeg4", "-q:v", "4", "-g", "1")


def h264(gop: int) -> tuple[str, ...]:
    """libx264 as an IP camera streams it: no B-frames, a keyframe every `gop` frames."""
    return ("-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0",
            "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0")


def build_scenes(out: Path, images: Sequence[Path], seconds: float, fps: int,
                 codec: Sequence[str] = ALL_INTRA_MPEG4, size: tuple[int, int] = (WIDTH, HEIGHT),
                 filters: str = "") -> Path:
    """Encodes `images`, `seconds` each in this order, as a video (MPEG-TS for a .ts file); all-intra
    MPEG-4 unless `codec` gives other encoder arguments; `filters` (an ffmpeg filter chain, e.g.
    sensor noise: "noise=alls=5:allf=t") is applied to each scene."""
    args = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    for image in images:
        args += ["-loop", "1", "-framerate", str(fps), "-t", str(seconds), "-i", str(image)]
    width, height = size
    fit = (f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
           f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p"
           + (f",{filters}" if filters else ""))
    graph = ";".join(f"[{i}:v]{fit}[s{i}]" for i in range(len(images)))
    graph += ";" + "".join(f"[s{i}]" for i in range(len(images)))
    graph += f"concat=n={len(images)}:v=1:a=0[v]"
    container = ["-f", "mpegts"] if out.suffix == ".ts" else []  # else what the suffix says
    args += ["-filter_complex", graph, "-map", "[v]", "-r", str(fps), *codec, *container, str(out)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"ffmpeg could not build {out}:\n{done.stderr}")
    return out


def listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port`, without connecting (a connection would be
    the one client ffmpeg's listener accepts)."""
    local = f"0100007F:{port:04X}"
    with contextlib.suppress(OSError), open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1] == local and fields[3] == "0A":  # 0A: TCP_LISTEN
                return True
    return False


class StreamServer:
    """ffmpeg serving `video` live, looped, on tcp://127.0.0.1:`port`; its stderr goes to `log_path`.

    In MPEG-TS, or with `muxer="mjpeg"` as raw MJPEG (JPEGs back to back, as an MJPEG camera)."""

    def __init__(self, video: Path, port: int, log_path: Path, muxer: str = "mpegts") -> None:
        self.video = video
        self.muxer = muxer
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopped = False
        self.started = 0

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        """Starts a server (the previous one must have been closed) and waits until it listens."""
        assert self.proc is None or self.proc.poll() is not None, "the previous server still runs"
        self.started += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- server {self.started}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
                 "-stream_loop", "-1", "-i", str(self.video), "-c", "copy",
                 # each packet written at once, as a camera sends each frame (not in 32 KiB bursts)
                 "-flush_packets", "1", "-f", self.muxer,
                 f"{self.url}?listen=1"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        self.stopped = False
        deadline = time.monotonic() + _LISTEN_TIMEOUT_S
        while not listening(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"ffmpeg exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"ffmpeg is not listening on {self.url}:\n{self.log()}")
            time.sleep(0.05)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pause(self) -> None:
        """SIGSTOP: the connection stays open and nothing more arrives."""
        assert self.running()
        os.kill(self.pid, signal.SIGSTOP)
        self.stopped = True

    def resume(self) -> None:
        if self.proc is not None and self.stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
        self.stopped = False

    def kill(self) -> None:
        """SIGKILL (after SIGCONT if stopped) and reap; a no-op once it has exited."""
        if self.proc is None:
            return
        self.resume()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        self.proc.wait(_EXIT_TIMEOUT_S)

    close = kill

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
