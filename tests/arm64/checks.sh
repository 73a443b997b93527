#!/usr/bin/env bash
# The checks of `make test-arm64`, run by run.sh inside the arm64 root after `make install`:
#   checks.sh imports|classify|unit
# Findings go to fd 3 (run.sh prints them under the phase's line), the rest to the phase's log.
set -euo pipefail

# make install's virtualenv, or the Debian package's (`run.sh deb`: EDGECAM_VENV=/usr/lib/edgecam)
VENV=${EDGECAM_VENV:-/opt/edgecam}
SRC=/src/edgecam
IMAGES=/src/shared/images

# apt's OpenCV and numpy are what the venv imports (apt's OpenCV, and picamera2 on a Pi, are
# built against apt's numpy), in one process with the LiteRT and edgecam that pip installed.
imports() {
    local site
    site=$(echo "$VENV"/lib/python3*/site-packages)
    "$VENV/bin/python" - "$site" >&3 <<'EOF'
import platform, sys

import ai_edge_litert.interpreter
import cv2
import numpy

import edgecam

print(platform.machine(), "Python", platform.python_version())
print("cv2", cv2.__version__, cv2.__file__)
print("numpy", numpy.__version__, numpy.__file__)
print("ai_edge_litert", ai_edge_litert.interpreter.__file__)
print("edgecam", edgecam.__version__, edgecam.__file__)
apt = "/usr/lib/python3/dist-packages/"
assert platform.machine() == "aarch64", platform.machine()
assert cv2.__file__.startswith(apt) and cv2.__version__.startswith("4.6."), "not apt's OpenCV 4.6"
assert numpy.__file__.startswith(apt) and numpy.__version__.startswith("1.24."), "not apt's numpy 1.24"
assert edgecam.__file__.startswith(sys.argv[1]), "edgecam is not the installed package"
EOF
    # What pip put in the venv: neither numpy nor OpenCV.
    local installed
    installed=$("$VENV/bin/python" -m pip list --path "$site" --format=freeze | paste -sd' ')
    echo "pip put in the venv: $installed" >&3
    if grep -qiE '(^| )(numpy|opencv[a-z-]*)==' <<<"$installed"; then
        echo "pip installed numpy or OpenCV into the venv" >&3
        return 1
    fi
}

# The README's demo as a Pi user runs it: the installed config, model and labels.
classify() {
    "$VENV/bin/edgecam" classify --json "$IMAGES/cat.bmp" "$IMAGES/grace_hopper.bmp" \
        "$IMAGES/parrot.jpg" | tee /tmp/classify.jsonl
    python3 - /tmp/classify.jsonl >&3 <<'EOF'
import json, os, sys

# ../shared/README.md: the top-1 label of each photo with mobilenet_v2_1.0_224_quant.
expected = {"cat.bmp": (286, "Egyptian cat"), "grace_hopper.bmp": (653, "military uniform"),
            "parrot.jpg": (89, "macaw")}
wrong = 0
for line in open(sys.argv[1]):
    result = json.loads(line)
    name, top = os.path.basename(result["image"]), result["labels"][0]
    ok = (top["index"], top["label"]) == expected.pop(name)
    wrong += not ok
    print(f"{name}: {top['label']} ({top['index']}) {top['score']:.2f}, "
          f"{result['inference_ms']:.0f} ms{'' if ok else '  WRONG'}")
for name in expected:
    print(f"{name}: no result")
sys.exit(wrong + len(expected) > 0)
EOF
}

# tests/unit with the installed package. They need no running systemd: the notifier tests bind
# their own datagram socket, the journal tests inject the sender. pip's test tools keep apt's
# numpy too (install.sh's constraint file).
unit() {
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --constraint "$VENV/.constraints" \
        'pytest>=8' 'pytest-timeout>=2' 'hypothesis>=6'
    cd "$SRC"
    "$VENV/bin/pytest" -p no:cacheprovider --durations=10 tests/unit | tee /dev/stderr |
        grep -E '^(FAILED|ERROR|SKIPPED) |^=+ [0-9].* in [0-9.]+s' >&3
}

"$1"
