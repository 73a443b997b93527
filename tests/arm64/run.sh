#!/usr/bin/env bash
# `make test-arm64`: the README's Raspberry Pi install path, for real, on arm64 (docs/ARM64.md).
#
# A Debian bookworm arm64 root (debootstrap minbase) runs under qemu-user through binfmt_misc.
# In it: apt's python3-opencv, -numpy, -yaml, -systemd, -av; then `make install` (install.sh's
# virtualenv with --system-site-packages and apt's numpy as a pip constraint); then the checks
# in checks.sh: apt's OpenCV and numpy are what the venv imports, next to pip's LiteRT;
# `edgecam classify` gives the right labels on ../shared/images; tests/unit pass.
#
# `run.sh deb` (`make deb-arm64`) builds the Debian package in the same root instead: the build
# tools (debhelper, dh-virtualenv) are added to it, `make deb`'s source tree is built with
# dpkg-buildpackage there, and the .deb is copied to $DIST on the host.
#
# Root only. Every phase prints one line when it ends and, while it runs, one a minute. Environment:
#   ARM64_CACHE  where the root's tarball and the logs are kept (/var/cache/edgecam-arm64)
#   SHARED       the shared models and photos (../shared beside the checkout)
#   VERSION, DIST  with `deb`: the package's version (the Makefile's) and where the .deb goes
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SHARED=$(cd "${SHARED:-$REPO/../shared}" && pwd)
CACHE=${ARM64_CACHE:-/var/cache/edgecam-arm64}
LOGS=$CACHE/logs
MIRROR=http://deb.debian.org/debian
SECURITY_MIRROR=http://deb.debian.org/debian-security
# The README's Raspberry Pi packages that Debian has: python3-picamera2 is only in Raspberry
# Pi's own archive (and needs the Pi's camera stack), so the picamera2 backend is not run here
# (tests/unit cover it against tests/fake_picamera2.py). ca-certificates: for pip's HTTPS.
PACKAGES=(python3-venv python3-opencv python3-av python3-systemd python3-numpy python3-yaml make
          ca-certificates)
# The root's tarball is named by what went into it: another package list builds a new one.
KEY=$(printf '%s\n' bookworm arm64 minbase "$MIRROR" "$SECURITY_MIRROR" "${PACKAGES[@]}" |
      sha256sum | cut -c1-12)
TARBALL=$CACHE/root-bookworm-arm64-$KEY.tar.zst
BINFMT=/proc/sys/fs/binfmt_misc

die() { echo "test-arm64: error: $*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "needs root (debootstrap, chroot, mounts): sudo make test-arm64"

# Everything below runs in a private mount namespace, so no mount outlives the script, even
# a killed one; the trap still unmounts in order before it removes the root.
if [[ ${TEST_ARM64_UNSHARED:-} != 1 ]]; then
    TEST_ARM64_UNSHARED=1 exec unshare --mount --propagation private -- bash "$0" "$@"
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock -n 9 || die "another test-arm64 is running (lock $CACHE/lock)"
rm -rf "$LOGS" && mkdir -p "$LOGS"
# A killed run leaves its root behind; its mounts died with its private mount namespace, so
# from here these are plain directories.
rm -rf --one-file-system "$CACHE"/root.*/

ROOT=$(mktemp -d "$CACHE/root.XXXXXX")
chmod 0755 "$ROOT"     # it is the root's /: users such as apt's _apt must get through it
MOUNTS=()              # the root's mount points, in mount order; unmounted in reverse
MOUNTED_BINFMT=0       # 1 when this run mounted binfmt_misc (and so unmounts it)
REGISTERED_BINFMT=0    # 1 when this run registered qemu-aarch64 (and so removes it)
PHASE=                 # the phase running, for the trap's report
TICKER=                # the pid of the phase's minute-by-minute progress line

mount_on() {           # mount_on TARGET MOUNT-ARGS...: mounts and remembers TARGET
    local target=$1; shift
    mount "$@" "$target"
    MOUNTS+=("$target")
}

unmount_all() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[i]}" || umount --lazy "${MOUNTS[i]}"
    done
    MOUNTS=()
}

cleanup() {
    local status=$? pid
    set +e  # clean up as much as possible, whatever fails
    if [[ -n $TICKER ]]; then kill "$TICKER" 2>/dev/null; wait "$TICKER" 2>/dev/null; fi
    if [[ -n $PHASE ]]; then
        exec >&4 2>&5
        report "FAILED (exit $status)"
        echo "--- last lines of $LOGS/$PHASE.log:"
        tail -n 40 "$LOGS/$PHASE.log"
    fi
    # Processes still running in the root (a hung test's children) were started by this run.
    for pid in /proc/[0-9]*; do
        [[ $(readlink "$pid/root" 2>/dev/null) == "$ROOT" ]] && kill -KILL "${pid#/proc/}" 2>/dev/null
    done
    unmount_all
    if ((REGISTERED_BINFMT)); then echo -1 >"$BINFMT/qemu-aarch64"; fi
    if ((MOUNTED_BINFMT)); then umount "$BINFMT"; fi
    # Never rm -rf through a mount (the host's /dev, the shared photos): check there is none left.
    if grep -q " $ROOT[/ ]" /proc/self/mountinfo; then
        echo "test-arm64: still mounted under $ROOT; left in place" >&2
    else
        rm -rf --one-file-system "$ROOT"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

took() { local s=$(($(date +%s) - $1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

# phase NAME COMMAND...: runs COMMAND in this shell (so `set -e` holds in it and its mounts are
# remembered) with its output in $LOGS/NAME.log, then prints one line with the wall time and
# what the phase wrote to fd 3 (its findings). A failure exits: the trap reports it.
phase() {
    PHASE=$1 PHASE_START=$(date +%s)
    shift
    exec 4>&1 5>&2 >"$LOGS/$PHASE.log" 2>&1 3>"$LOGS/$PHASE.out"
    ticker &
    TICKER=$!
    "$@"
    kill "$TICKER"; wait "$TICKER" 2>/dev/null || true
    TICKER=
    exec >&4 2>&5 3>&- 4>&- 5>&-
    report ok
    PHASE=
}

# Every minute of a phase, one line on the terminal (fd 4): a cold run is long and its phases'
# output goes to their logs. Its sleep is killed with it, so no pipe is held open after the run.
ticker() {
    local sleeper=
    trap - EXIT INT
    trap '[[ -n $sleeper ]] && kill "$sleeper" 2>/dev/null; exit 0' TERM
    while :; do
        sleep 60 & sleeper=$!
        wait "$sleeper"
        printf 'test-arm64: %-9s %7s so far (log: %s)\n' "$PHASE" "$(took "$PHASE_START")" \
            "$LOGS/$PHASE.log" >&4
    done
}

report() {
    printf 'test-arm64: %-9s %7s %s\n' "$PHASE" "$(took "$PHASE_START")" "$1"
    sed 's/^/    /' "$LOGS/$PHASE.out"
}

# chroot with a clean environment (the host's PIP_*, PYTHON* and the like must not leak in).
# QEMU_CPU: qemu emulates a Pi 4's Cortex-A72 (no dotprod, no SVE), not its default "max"
# CPU, so LiteRT picks the kernels it picks on a Pi 4. PIP_CERT: the system bundle, which then
# holds the host's CAs (install phase).
in_root() {
    chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        QEMU_CPU=cortex-a72 PIP_CERT=/etc/ssl/certs/ca-certificates.crt "$@"
}

host_tools() {
    local missing=() tool
    for tool in debootstrap:debootstrap qemu-aarch64-static:qemu-user-static zstd:zstd git:git; do
        command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
    done
    if ((${#missing[@]})); then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
        echo "installed on the host: ${missing[*]}" >&3
    fi
    # The kernel runs arm64 binaries through qemu only with binfmt_misc mounted and the format
    # registered. qemu-user-static's own line has the F flag: the kernel opens qemu at
    # registration, so it need not exist inside the root. (Unmounting binfmt_misc drops the
    # formats registered in it: it is not one of the root's mounts.)
    if ! mountpoint -q "$BINFMT"; then
        mount -t binfmt_misc binfmt_misc "$BINFMT"
        MOUNTED_BINFMT=1
    fi
    if [[ ! -e $BINFMT/qemu-aarch64 ]]; then
        cat /usr/lib/binfmt.d/qemu-aarch64.conf >"$BINFMT/register"
        REGISTERED_BINFMT=1
    fi
    echo "binfmt_misc qemu-aarch64: $(sed -n 1,3p "$BINFMT/qemu-aarch64" | paste -sd, | sed 's/,/, /g');" \
        "$(qemu-aarch64-static --version | head -n1)" >&3
}

# The root needs /proc, /sys and /dev: apt's maintainer scripts, Python's os.cpu_count() and
# multiprocessing (/dev/shm) and pip's subprocesses use them as on a real system.
mount_system() {
    mount_on "$ROOT/proc" -t proc proc
    # LiteRT's XNNPACK asks the cpuinfo library which ARM kernels to use, and cpuinfo parses
    # /proc/cpuinfo for the ARM cores it describes. Under qemu-user that file is the x86 host's
    # (qemu 7.2 does not fake it for aarch64): cpuinfo finds no ARM core and the process dies
    # of SIGSEGV in allocate_tensors(), where the XNNPACK delegate is applied (docs/ARM64.md).
    # A Pi 4's own /proc/cpuinfo goes over it.
    mount_on "$ROOT/proc/cpuinfo" --bind "$HERE/cpuinfo-raspberry-pi-4"
    mount_on "$ROOT/sys" -t sysfs sysfs
    mount_on "$ROOT/dev" --bind /dev
    mount_on "$ROOT/dev/pts" --bind /dev/pts
    mount_on "$ROOT/dev/shm" -t tmpfs tmpfs
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
}

make_root() {
    if [[ -f $TARBALL ]]; then
        zstd -dc "$TARBALL" | tar -C "$ROOT" --numeric-owner --xattrs --xattrs-include='*' -xpf -
        echo "from the cache: $TARBALL" >&3
        return
    fi
    debootstrap --arch=arm64 --variant=minbase bookworm "$ROOT" "$MIRROR"
    echo "debootstrap --arch=arm64 --variant=minbase bookworm" >&3
}

apt_packages() {
    mount_system
    if [[ -f $TARBALL ]]; then
        echo "in the cached root already: ${PACKAGES[*]}" >&3
        return
    fi
    # A Pi keeps up with bookworm's point releases and security updates: so does the root.
    cat >"$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
EOF
    in_root apt-get update
    # Recommends are left out: the venv uses only these packages' modules and libraries.
    in_root apt-get install -y --no-install-recommends "${PACKAGES[@]}"
    in_root apt-get clean
    in_root dpkg-query -W python3 python3-opencv python3-numpy python3-yaml python3-systemd python3-av |
        tr '\t' ' ' | paste -sd, | sed 's/,/, /g; s/^/apt: /' >&3
    # The tarball is taken without the mounts (nothing of the host's /dev or /proc in it).
    unmount_all
    tar -C "$ROOT" --numeric-owner --xattrs --xattrs-include='*' -cf - . |
        zstd -q -f -T2 -o "$TARBALL.tmp"
    mv "$TARBALL.tmp" "$TARBALL"
    find "$CACHE" -maxdepth 1 -name 'root-bookworm-arm64-*.tar.zst' ! -path "$TARBALL" -delete
    echo "cached the root: $TARBALL ($(du -h "$TARBALL" | cut -f1))" >&3
    mount_system
}

# The README's Pi path from here: the checkout in the root, `make install` as root.
install_edgecam() {
    mkdir -p "$ROOT/src/edgecam" "$ROOT/src/shared"
    # The working tree as it is (uncommitted changes too), without .venv and other ignored files.
    git -C "$REPO" ls-files -z --cached --others --exclude-standard |
        tar -C "$REPO" --null --ignore-failed-read -T - -cf - | tar -C "$ROOT/src/edgecam" -xf -
    # ../shared beside the checkout, read-only as in CI: the model install and the tests use it.
    mount_on "$ROOT/src/shared" --bind -o ro "$SHARED"
    # pip reaches PyPI through HTTPS that the host trusts with its own extra CAs (a TLS-inspecting
    # proxy's, here): without them pip fails with CERTIFICATE_VERIFY_FAILED.
    if compgen -G '/usr/local/share/ca-certificates/*' >/dev/null; then
        cp -r /usr/local/share/ca-certificates/. "$ROOT/usr/local/share/ca-certificates/"
    fi
    in_root update-ca-certificates
    # install.sh needs no systemd: without /run/systemd/system it installs all but starts nothing.
    in_root EDGECAM_MODEL_BASE_URL=file:///src/shared/models make -C /src/edgecam install
    grep -E '^edgecam install|verified in' "$LOGS/install.log" >&3
}

# `make deb-arm64`: the Debian package built in the root with Debian's tools. The source tree is
# make deb's (debian/build.sh --prepare, on the host: the root has no git).
DEB_TOOLS=(build-essential dpkg-dev debhelper dh-virtualenv python3-numpy python3-yaml python3-venv)

deb_tools() {
    if compgen -G '/usr/local/share/ca-certificates/*' >/dev/null; then
        cp -r /usr/local/share/ca-certificates/. "$ROOT/usr/local/share/ca-certificates/"
    fi
    in_root update-ca-certificates
    in_root apt-get update
    in_root apt-get install -y --no-install-recommends "${DEB_TOOLS[@]}"
    echo "installed in the root: ${DEB_TOOLS[*]}" >&3
}

deb_build() {
    mkdir -p "$ROOT/src/build" "$ROOT/src/shared"
    mount_on "$ROOT/src/shared" --bind -o ro "$SHARED"
    BUILD=$ROOT/src/build VERSION=$VERSION bash "$REPO/debian/build.sh" --prepare
    in_root EDGECAM_MODEL_BASE_URL=file:///src/shared/models \
        bash -c "cd /src/build/edgecam-$VERSION && dpkg-buildpackage --build=binary --no-sign"
    mkdir -p "$DIST"
    cp "$ROOT/src/build/edgecam_${VERSION}_arm64.deb" "$DIST/"
    echo "built $DIST/edgecam_${VERSION}_arm64.deb ($(du -h "$DIST/edgecam_${VERSION}_arm64.deb" | cut -f1))" >&3
}

# The package installed in the root as a Pi owner installs it (apt adds python3-aiohttp and
# python3-cryptography, which the cached root lacks; no systemd runs there, so nothing starts).
deb_install() {
    in_root apt-get install -y --no-install-recommends "/src/build/edgecam_${VERSION}_arm64.deb"
    in_root dpkg-query -W -f='installed: ${Package} ${Version} ${Architecture}\n' edgecam >&3
}

main_deb() {
    local start
    start=$(date +%s)
    echo "deb-arm64: $(date -u '+%F %T UTC'), $(git -C "$REPO" describe --always --dirty), logs in $LOGS"
    phase host host_tools
    phase root make_root
    phase apt apt_packages
    phase deb-tools deb_tools
    phase deb-build deb_build
    phase deb-install deb_install
    # The packaged model and config, on the photos: the labels checks.sh expects.
    phase classify in_root env EDGECAM_VENV=/usr/lib/edgecam \
        bash "/src/build/edgecam-$VERSION/tests/arm64/checks.sh" classify
    echo "deb-arm64: built in $(took "$start")"
}

main() {
    local start check
    start=$(date +%s)
    echo "test-arm64: $(date -u '+%F %T UTC'), $(git -C "$REPO" describe --always --dirty), logs in $LOGS"
    phase host host_tools
    phase root make_root
    phase apt apt_packages
    phase install install_edgecam
    for check in imports classify unit; do
        phase "$check" in_root bash /src/edgecam/tests/arm64/checks.sh "$check"
    done
    echo "test-arm64: passed in $(took "$start")"
}

# Bash reads a script as it runs it: with main and exit on the last line, it has read all of it
# before it starts, so editing the script during a run cannot break the run.
if [[ ${1:-} == deb ]]; then main_deb; else main "$@"; fi; exit
