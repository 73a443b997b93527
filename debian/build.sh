#!/usr/bin/env bash
# `make deb`'s build: the working tree (git ls-files: uncommitted changes too, not .venv or .run)
# copied to $BUILD/edgecam-$VERSION, debian/changelog written there from $VERSION, then
# dpkg-buildpackage, which leaves edgecam_$VERSION_ARCH.deb in $BUILD. Environment:
#   VERSION  the package's version (Makefile: edgecam.__version__ and DEB_VERSION_SUFFIX)
#   BUILD    where to build (absolute)
#   SHARED   ../shared: the model is taken from $SHARED/models when it is there (sha256-checked)
# `debian/build.sh --prepare` only prepares $BUILD/edgecam-$VERSION (`make deb-arm64` builds it
# inside the arm64 root, which has no git).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SRC=$BUILD/edgecam-$VERSION

rm -rf "$BUILD" && mkdir -p "$SRC"
git -C "$REPO" ls-files -z --cached --others --exclude-standard |
    tar -C "$REPO" --null --ignore-failed-read -T - -cf - | tar -C "$SRC" -xf -
# Sources deleted in the working tree but not yet in git are listed and missing: fine.
cat >"$SRC/debian/changelog" <<CHANGELOG
edgecam ($VERSION) bookworm; urgency=medium

  * edgecam $VERSION, built from $(git -C "$REPO" describe --always --dirty).

 -- edgecam developers <edgecam@example.org>  $(date -R)
CHANGELOG
if [[ ${1:-} == --prepare ]]; then
    exit 0
fi
if [[ -d ${SHARED:-/nonexistent}/models ]]; then
    export EDGECAM_MODEL_BASE_URL=file://$SHARED/models
fi
cd "$SRC"
dpkg-buildpackage --build=binary --no-sign
