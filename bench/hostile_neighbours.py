"""The attacks of issue 24 on the page and the socket, against a real daemon, with what they did.

Run from the repository root (TREE: the edgecam source to run, by default this one; for the
"before" figures of docs/RELIABILITY.md: `git archive 3f5f771 | tar -x -C /tmp/before`):

    .venv/bin/python bench/hostile_neighbours.py [--tree TREE] [--flood 1100] [--seconds 20]

The daemon reads the shared photos with the page (a token), /metrics and the socket on,
under systemd's default soft NOFILE of 1024. In turn, each reported as one line:
- logins: two logins (are the cookies the same? their Max-Age), then 40 wrong Bearer
  tokens and the right one: the answers' status codes;
- Host: evil.example on the page and /metrics: the status codes;
- flood page / flood socket: --flood idle TCP connections to the page, or Unix clients to
  the socket, held for --seconds: whether a new request answered within 5 s (each second),
  the results a client connected before received meanwhile, and how much the log grew.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TOKEN = "correct-horse-battery-staple"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def request(port: int, path: str, headers: dict[str, str], method: str = "GET", body: str | None = None,
            timeout: float = 5.0) -> tuple[int, Any]:
    """(status, headers), or (0, the error) if there was no answer within `timeout`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, response.headers
    except OSError as exc:
        return 0, type(exc).__name__
    finally:
        connection.close()


class Results(threading.Thread):
    """A socket client connected before the attacks: counts the classifications it receives."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.count = 0

    def run(self) -> None:
        buffer = b""
        while chunk := self.sock.recv(65536):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            self.count += sum(b'"classification"' in line for line in lines)


def start(tree: Path, work: Path, port: int, metrics: int) -> tuple[subprocess.Popen[bytes], Path, Path]:
    (work / "token").write_text(TOKEN + "\n")
    socket_path = work / "results.sock"
    config = {"camera": {"source": str(SHARED / "images"), "fps": 20},
              "model": {"path": str(SHARED / "models" / "mobilenet_v2_1.0_224_quant.tflite"),
                        "labels": str(SHARED / "models" / "imagenet_labels.txt"), "threads": 1},
              "outputs": {"emit": "every_frame", "journal": {"enabled": False},
                          "socket": {"path": str(socket_path)},
                          "metrics": {"enabled": True, "listen": f"127.0.0.1:{metrics}"}},
              "web": {"enabled": True, "listen": f"127.0.0.1:{port}", "token_file": str(work / "token")}}
    (work / "edgecam.yaml").write_text(yaml.safe_dump(config))
    log = work / "edgecam.log"
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    env = {**os.environ, "PYTHONPATH": str(tree), "RUNTIME_DIRECTORY": str(work)}
    env.pop("NOTIFY_SOCKET", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgecam", "run", "-c", str(work / "edgecam.yaml")], cwd=work,
            stdout=subprocess.DEVNULL, stderr=out, env=env,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard)))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and request(port, "/login", {})[0] != 200:
        time.sleep(0.2)
    return proc, socket_path, log


def logins(port: int) -> dict[str, Any]:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    cookies = []
    for _ in range(2):  # a second apart
        cookies.append(request(port, "/login", form, "POST", f"token={TOKEN}")[1]["Set-Cookie"])
        time.sleep(1.1)
    values = [cookie.split(";", 1)[0] for cookie in cookies]
    max_age = [part.strip() for part in cookies[0].split(";") if part.strip().startswith("Max-Age")]
    wrong = [request(port, "/api/status", {"Authorization": f"Bearer guess{n}"})[0] for n in range(40)]
    right = request(port, "/api/status", {"Authorization": f"Bearer {TOKEN}"})[0]
    return {"same_cookie_twice": values[0] == values[1], "cookie": max_age,
            "40_wrong": {code: wrong.count(code) for code in sorted(set(wrong))}, "then_right": right}


def connect_unix(path: Path, deadline: float) -> socket.socket:
    """A Unix client; a full backlog (EAGAIN) is tried again until `deadline`."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    while True:
        try:
            sock.connect(str(path))
            return sock
        except BlockingIOError:
            if time.monotonic() > deadline:
                sock.close()
                raise
            time.sleep(0.01)
        except OSError:
            sock.close()
            raise


def flood(kind: str, count: int, seconds: float, port: int, socket_path: Path, log: Path,
          results: Results) -> dict[str, Any]:
    held: list[socket.socket] = []
    failed = 0
    size, received = log.stat().st_size, results.count
    deadline = time.monotonic() + 60  # for all the connects
    try:
        for _ in range(count):
            try:
                if kind == "page":
                    held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
                else:
                    held.append(connect_unix(socket_path, deadline))
            except OSError:
                failed += 1
        answers = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            answers.append(request(port, "/api/status", {"Authorization": f"Bearer {TOKEN}"})[0])
            time.sleep(1)
    finally:
        for sock in held:
            sock.close()
    return {"connections": count, "connect_failed": failed,
            "new_request_within_5s": {code: answers.count(code) for code in sorted(set(answers))},
            "results_meanwhile": results.count - received,
            "log_grew_bytes": log.stat().st_size - size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--flood", type=int, default=1100)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.flood)), hard))
    port, metrics = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="edgecam-hostile-") as temp:
        proc, socket_path, log = start(args.tree.resolve(), Path(temp), port, metrics)
        try:
            results = Results(socket_path)
            results.start()
            print(json.dumps({"tree": str(args.tree), "logins": logins(port)}))
            evil = {"Host": "evil.example", "Authorization": f"Bearer {TOKEN}"}
            time.sleep(10)  # the limiter of the fixed tree lets this address try again
            print(json.dumps({"host evil.example": {
                "page /api/status": request(port, "/api/status", evil)[0],
                "/metrics": request(metrics, "/metrics", {"Host": "evil.example"})[0],
                "own address": request(port, "/api/status", {**evil, "Host": f"127.0.0.1:{port}"})[0]}}))
            for kind in ("page", "socket"):
                print(json.dumps({f"flood {kind}": flood(kind, args.flood, args.seconds, port,
                                                         socket_path, log, results)}))
            print(json.dumps({"daemon_alive": proc.poll() is None,
                              "log_total_bytes": log.stat().st_size,
                              "tracebacks": log.read_bytes().count(b"Traceback")}))
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    main()
