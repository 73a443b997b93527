#!/usr/bin/env bash
# Installs edgecam as a system service, or removes it: `sudo make install` / `sudo make uninstall`.
#
#   systemd/install.sh install      user, virtualenv, unit, config (if absent), model (if absent)
#   systemd/install.sh uninstall    reverses install; keeps /etc/edgecam and the models
#   PURGE=1 systemd/install.sh uninstall    ... and removes them too
#   NAME=garage systemd/install.sh install    one camera of several: the template unit
#                                   edgecam@.service, enabling edgecam@garage, config
#                                   /etc/edgecam/garage.yaml (if absent)
#   NAME=garage systemd/install.sh uninstall  that instance only (PURGE=1: its config and state)
#
# Idempotent: a second install changes nothing (the package is reinstalled only
# when its source changed; the config is never overwritten). Before anything is
# installed it checks what it needs (a 64-bit OS, the Python setup.cfg asks for,
# the apt packages README lists), each problem in one line; its last line says
# what the running service is doing. Environment:
#   EDGECAM_MODEL_BASE_URL  where fetch-model downloads from (file:// works)
#   PYTHON                  the interpreter the virtualenv is made from (/usr/bin/python3)
#   EDGECAM_EXTRAS          pip extras to add (default: what the system Python lacks)
#   EDGECAM_ARCH            the architecture, as dpkg or `uname -m` names it (armhf, armv7l,
#                           arm64...), instead of asking dpkg: the tests' way to see the refusal
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/edgecam
CONF_DIR=/etc/edgecam
STATE_DIR=/var/lib/edgecam
MODEL_DIR=$STATE_DIR/models
PYTHON=${PYTHON:-/usr/bin/python3}
SERVICE_USER=edgecam
NAME=${NAME:-}

say() { echo "edgecam install: $*"; }
die() { echo "edgecam install: error: $*" >&2; exit 1; }

# The plain service, or one camera's instance of the template (NAME: the unit's %i, `--camera`).
if [[ -n $NAME ]]; then
    [[ $NAME =~ ^[a-z0-9][a-z0-9_-]{0,31}$ ]] ||
        die "NAME=$NAME: a camera name is 1 to 32 of a-z, 0-9, _ and -, starting with a letter or digit"
    SERVICE=edgecam@$NAME
    UNIT_SOURCE=systemd/edgecam@.service
    CONFIG=$CONF_DIR/$NAME.yaml
    CAMERA_ARGS=(--camera "$NAME")
else
    SERVICE=edgecam
    UNIT_SOURCE=systemd/edgecam.service
    CONFIG=$CONF_DIR/edgecam.yaml
    CAMERA_ARGS=()
fi
UNIT=/etc/systemd/system/${UNIT_SOURCE#systemd/}
# What the config reaches beyond localhost, for the unit's IP address filter (edgecam ip-filter).
NETWORK_DROPIN=/etc/systemd/system/$SERVICE.service.d/network.conf

need_root() { [[ $EUID -eq 0 ]] || die "run as root: sudo make ${1:-install}"; }

have_systemd() { [[ -d /run/systemd/system ]]; }

# dpkg's architecture is the userland's: armhf for 32-bit Raspberry Pi OS, even on a Pi 4's
# 64-bit kernel, where `uname -m` says aarch64.
architecture() {
    if [[ -n ${EDGECAM_ARCH:-} ]]; then
        echo "$EDGECAM_ARCH"
    elif command -v dpkg >/dev/null; then
        dpkg --print-architecture
    else
        uname -m
    fi
}

# LiteRT (ai-edge-litert) has wheels for aarch64 and x86_64 only; tflite-runtime 2.14 has none
# for Python 3.11 on ARM.
check_architecture() {
    local arch
    arch=$(architecture)
    case $arch in
        aarch64 | arm64 | x86_64 | amd64) ;;
        arm* | i?86) die "edgecam needs a 64-bit OS (on a Raspberry Pi, 64-bit Raspberry Pi OS), not" \
            "32-bit $arch: its runtime, LiteRT, has no 32-bit wheel (nor has tflite-runtime)" ;;
        *) die "edgecam's runtime, LiteRT, has no wheel for $arch (only for aarch64 and x86_64)" ;;
    esac
}

# setup.cfg's python_requires (">=3.11") is the one place the oldest Python is written down.
check_python() {
    local min version
    min=$(sed -n 's/^python_requires *= *>= *//p' "$SRC/setup.cfg")
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found: sudo apt install python3 (or set PYTHON)"
    version=$("$PYTHON" -c 'import platform; print(platform.python_version())')
    "$PYTHON" -c "import sys; sys.exit(sys.version_info < tuple(map(int, '$min'.split('.'))))" ||
        die "edgecam needs Python $min or newer (Raspberry Pi OS bookworm's); $PYTHON is $version"
}

# pip builds systemd-python from C when apt's python3-systemd is not there.
can_build_systemd_python() {
    pkg-config --exists libsystemd 2>/dev/null && command -v cc >/dev/null &&
        "$PYTHON" -c "import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))"
}

# The apt packages of README's list the install cannot do without: python3-venv (the
# virtualenv's pip) and, for the journal's fields, python3-systemd unless pip can build it.
# The others are either installed by pip instead (OpenCV, PyAV, numpy, PyYAML) or only
# needed for the Pi camera (python3-picamera2).
check_packages() {
    local extras=$1 missing=() why=""
    "$PYTHON" -c "import ensurepip" 2>/dev/null || missing+=(python3-venv)
    if [[ ,$extras, == *,systemd,* ]] && ! can_build_systemd_python; then
        missing+=(python3-systemd)
        why=" (else pip must build systemd-python, with libsystemd-dev, pkg-config, gcc and python3-dev)"
    fi
    if ((${#missing[@]})); then
        die "install ${missing[*]} first: sudo apt install ${missing[*]}$why"
    fi
    if ! "$PYTHON" -c "import importlib.util, sys; sys.exit(not importlib.util.find_spec('picamera2'))"
    then
        say "python3-picamera2 is not installed: the Pi camera (camera.source: picamera2, the" \
            "default) needs it (sudo apt install python3-picamera2)"
    fi
}

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
    # The status page: apt's python3-aiohttp (3.8.4 on bookworm) when it is there.
    "$PYTHON" -c "import aiohttp" 2>/dev/null || extras+=",web"
    # Signed fleet rollouts: apt's python3-cryptography (38 on bookworm) when it is there.
    "$PYTHON" -c "import cryptography" 2>/dev/null || extras+=",fleet"
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
    local extras=$1 stamp
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
    if [[ ,$extras, == *,systemd,* ]]; then
        say "building systemd-python, for want of python3-systemd (sudo apt install python3-systemd" \
            "avoids the build)"
    fi
    "$PREFIX/bin/pip" install --quiet --disable-pip-version-check --constraint "$constraints" \
        "$SRC[$extras]"
    install -D -m 0644 "$SRC/README.md" "$PREFIX/share/doc/edgecam/README.md"
    echo "$stamp" >"$PREFIX/.edgecam-source"
    PACKAGE_CHANGED=1
}

install_unit() {
    if [[ -f $UNIT ]] && cmp -s "$SRC/$UNIT_SOURCE" "$UNIT"; then return; fi
    say "installing $UNIT"
    install -D -m 0644 "$SRC/$UNIT_SOURCE" "$UNIT"
    UNIT_CHANGED=1
}

install_config() {
    install -d -m 0755 "$CONF_DIR"
    if [[ -e $CONFIG ]]; then return; fi
    say "installing the default config $CONFIG"
    install -m 0644 "$SRC/config/edgecam.yaml" "$CONFIG"
}

# The unit allows localhost only; the drop-in adds what the config reaches beyond it, derived
# again on every install (an edit that reaches further needs one: the daemon says so).
install_network_dropin() {
    local wanted
    wanted=$("$PREFIX/bin/edgecam" ip-filter -c "$CONFIG" "${CAMERA_ARGS[@]}") ||
        die "$CONFIG has errors (above): fix them, then install again"
    if [[ -f $NETWORK_DROPIN && $(<"$NETWORK_DROPIN") == "$wanted" ]]; then return; fi
    say "installing $NETWORK_DROPIN (what the config reaches beyond localhost)"
    install -d -m 0755 "${NETWORK_DROPIN%/*}"
    printf '%s\n' "$wanted" >"$NETWORK_DROPIN"
    UNIT_CHANGED=1
}

install_model() {
    install -d -m 0755 "$MODEL_DIR"
    if [[ -s $MODEL_DIR/mobilenet_v2_1.0_224_quant.tflite && -s $MODEL_DIR/imagenet_labels.txt ]]; then
        return
    fi
    "$PREFIX/bin/edgecam" fetch-model --dir "$MODEL_DIR"
}

# The last line: what the service says it is doing (its STATUS=), or why it did not start.
report_service() {
    local state status invocation why
    state=$(systemctl show -p ActiveState --value "$SERVICE")
    status=$(systemctl show -p StatusText --value "$SERVICE")
    if [[ $state == active ]]; then
        say "done: systemctl status $SERVICE; journalctl -u $SERVICE -f"
        say "$SERVICE is running${status:+: $status}"
        return
    fi
    # The last line the service wrote itself (its error line), from the start that failed.
    invocation=$(systemctl show -p InvocationID --value "$SERVICE")
    why=$(journalctl -o cat --no-pager "_SYSTEMD_INVOCATION_ID=$invocation" _TRANSPORT=stdout \
        2>/dev/null | tail -n 1) || true
    die "$SERVICE did not start: ${why:-see journalctl -u $SERVICE}"
}

do_install() {
    check_architecture
    check_python
    local extras=${EDGECAM_EXTRAS:-$(default_extras)}
    check_packages "$extras"
    need_root install
    create_user
    install_package "$extras"
    install_unit
    install_config
    install_network_dropin
    install_model
    if ! have_systemd; then
        say "systemd is not running here: start it with $PREFIX/bin/edgecam run"
        return
    fi
    if ((UNIT_CHANGED)); then systemctl daemon-reload; fi
    # A failed start is reported by report_service, with the service's own line.
    if ! systemctl is-enabled --quiet "$SERVICE" 2>/dev/null || ! systemctl is-active --quiet "$SERVICE"
    then
        systemctl enable --now "$SERVICE" 2>/dev/null || true
    elif ((PACKAGE_CHANGED || UNIT_CHANGED)); then
        say "restarting $SERVICE (new version)"
        systemctl restart "$SERVICE" 2>/dev/null || true
    fi
    report_service
}

# Stops and disables a service, and removes its network drop-in (and the drop-in folder, which
# also holds `systemctl edit` overrides, only if nothing else is left in it).
remove_service() {
    local service=$1 dropin=/etc/systemd/system/$1.service.d/network.conf
    if have_systemd; then systemctl disable --now "$service" 2>/dev/null || true; fi
    rm -f "$dropin"
    if [[ -d ${dropin%/*} ]]; then rmdir --ignore-fail-on-non-empty "${dropin%/*}"; fi
}

# Every edgecam@ instance enabled or running, by unit name.
instances() {
    {
        compgen -G "/etc/systemd/system/*.wants/edgecam@*.service" | xargs -r -n1 basename
        if have_systemd; then
            systemctl list-units --all --plain --no-legend 'edgecam@*.service' | cut -d' ' -f1
        fi
    } | sed 's/\.service$//' | sort -u
}

# NAME=garage: that instance only; the code, the template and the other cameras stay.
uninstall_instance() {
    remove_service "$SERVICE"
    if have_systemd; then systemctl daemon-reload; fi
    if [[ ${PURGE:-0} == 1 ]]; then
        say "purging $CONFIG and $STATE_DIR/$NAME"
        rm -rf "$CONFIG" "${STATE_DIR:?}/$NAME"
    else
        say "kept $CONFIG (PURGE=1 removes it and $STATE_DIR/$NAME)"
    fi
    say "removed $SERVICE"
}

do_uninstall() {
    need_root uninstall
    if [[ -n $NAME ]]; then
        uninstall_instance
        return
    fi
    local instance
    for instance in $(instances); do
        say "removing $instance too (it runs from $PREFIX)"
        remove_service "$instance"
    done
    remove_service edgecam
    rm -f /etc/systemd/system/edgecam.service /etc/systemd/system/edgecam@.service
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
