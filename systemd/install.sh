#!/usr/bin/env bash
# Installs edgecam as a system service, or removes it: `sudo make install` / `sudo make uninstall`.
#
#   systemd/install.sh install      user, virtualenv, unit, config (if absent), model (if absent)
#   systemd/install.sh uninstall    reverses install; keeps /etc/edgecam and the models
#   PURGE=1 systemd/install.sh uninstall    ... and removes them too
#
# Idempotent: a second install changes nothing (the package is reinstalled only
# when its source changed; the config is never overwritten). Environment:
#   EDGECAM_MODEL_BASE_URL  where fetch-model downloads from (file:// works)
#   PYTHON                  the interpreter the virtualenv is made from (/usr/bin/python3)
#   EDGECAM_EXTRAS          pip extras to add (default: what the system Python lacks)
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/edgecam
CONF_DIR=/etc/edgecam
STATE_DIR=/var/lib/edgecam
MODEL_DIR=$STATE_DIR/models
UNIT=/etc/systemd/system/edgecam.service
PYTHON=${PYTHON:-/usr/bin/python3}
SERVICE_USER=edgecam

say() { echo "edgecam install: $*"; }
die() { echo "edgecam install: error: $*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root: sudo make ${1:-install}"

have_systemd() { [[ -d /run/systemd/system ]]; }

create_user() {
    if getent passwd "$SERVICE_USER" >/dev/null; then return; fi
    say "creating system user $SERVICE_USER"
    useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "edgecam camera daemon" "$SERVICE_USER"
}

# What the system Python (Raspberry Pi OS apt packages) lacks, as pip extras.
default_extras() {
    # mqtt and metrics are small pure-Python packages: enabling either output in the
    # config then needs no reinstall.
    local extras=litert,mqtt,metrics
    "$PYTHON" -c "import cv2" 2>/dev/null || extras+=",opencv"
    "$PYTHON" -c "import systemd.journal" 2>/dev/null || extras+=",systemd"
    "$PYTHON" -c "import av" 2>/dev/null || extras+=",av"
    echo "$extras"
}

# A fingerprint of the package source: reinstall only when it changes.
source_stamp() {
    (cd "$SRC" && find setup.cfg pyproject.toml README.md edgecam -type f -not -path '*/__pycache__/*' |
        LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)
}

# Set by the steps below when they change something (bash ignores `set -e` inside a
# function called from an && list, so the steps report through these instead).
PACKAGE_CHANGED=0
UNIT_CHANGED=0

install_package() {
    local extras=${EDGECAM_EXTRAS:-$(default_extras)} stamp
    stamp="$(source_stamp) $extras"
    if [[ ! -x $PREFIX/bin/python ]]; then
        say "creating the virtualenv $PREFIX (with the system site-packages)"
        "$PYTHON" -m venv --system-site-packages "$PREFIX"
    fi
    if [[ -f $PREFIX/.edgecam-source && $(<"$PREFIX/.edgecam-source") == "$stamp" ]]; then
        return
    fi
    # Never replace apt's numpy: apt's OpenCV and picamera2 are built against it.
    local constraints=$PREFIX/.constraints
    "$PYTHON" -c "import numpy; print('numpy==' + numpy.__version__)" >"$constraints" 2>/dev/null ||
        : >"$constraints"
    say "installing edgecam[$extras] into $PREFIX"
    "$PREFIX/bin/pip" install --quiet --disable-pip-version-check --constraint "$constraints" \
        "$SRC[$extras]"
    install -D -m 0644 "$SRC/README.md" "$PREFIX/share/doc/edgecam/README.md"
    echo "$stamp" >"$PREFIX/.edgecam-source"
    PACKAGE_CHANGED=1
}

install_unit() {
    if [[ -f $UNIT ]] && cmp -s "$SRC/systemd/edgecam.service" "$UNIT"; then return; fi
    say "installing $UNIT"
    install -D -m 0644 "$SRC/systemd/edgecam.service" "$UNIT"
    UNIT_CHANGED=1
}

install_config() {
    install -d -m 0755 "$CONF_DIR"
    if [[ -e $CONF_DIR/edgecam.yaml ]]; then return; fi
    say "installing the default config $CONF_DIR/edgecam.yaml"
    install -m 0644 "$SRC/config/edgecam.yaml" "$CONF_DIR/edgecam.yaml"
}

install_model() {
    install -d -m 0755 "$MODEL_DIR"
    if [[ -s $MODEL_DIR/mobilenet_v2_1.0_224_quant.tflite && -s $MODEL_DIR/imagenet_labels.txt ]]; then
        return
    fi
    "$PREFIX/bin/edgecam" fetch-model --dir "$MODEL_DIR"
}

do_install() {
    create_user
    install_package
    install_unit
    install_config
    install_model
    if ! have_systemd; then
        say "systemd is not running here: start it with $PREFIX/bin/edgecam run"
        return
    fi
    if ((UNIT_CHANGED)); then systemctl daemon-reload; fi
    if ! systemctl is-enabled --quiet edgecam 2>/dev/null || ! systemctl is-active --quiet edgecam; then
        systemctl enable --now edgecam
    elif ((PACKAGE_CHANGED || UNIT_CHANGED)); then
        say "restarting edgecam (new version)"
        systemctl restart edgecam
    fi
    say "done: systemctl status edgecam; journalctl -u edgecam -f"
}

do_uninstall() {
    if have_systemd && [[ -f $UNIT ]]; then
        systemctl disable --now edgecam 2>/dev/null || true
    fi
    rm -f "$UNIT"
    if have_systemd; then systemctl daemon-reload; fi
    rm -rf "$PREFIX"
    if [[ ${PURGE:-0} == 1 ]]; then
        say "purging $CONF_DIR and $STATE_DIR"
        rm -rf "$CONF_DIR" "$STATE_DIR"
    else
        say "kept $CONF_DIR and $MODEL_DIR (PURGE=1 removes them)"
    fi
    if getent passwd "$SERVICE_USER" >/dev/null; then
        userdel "$SERVICE_USER"
    fi
    if getent group "$SERVICE_USER" >/dev/null; then
        groupdel "$SERVICE_USER"
    fi
    say "removed"
}

case ${1:-install} in
    install) do_install ;;
    uninstall) do_uninstall ;;
    *) die "usage: $0 install|uninstall" ;;
esac
