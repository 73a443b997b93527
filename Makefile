# edgecam — developer and install targets. `make run` and `make test` work on a
# fresh Debian/Raspberry Pi OS machine: they install what they need.

SHELL := /bin/bash
# Debian's python3 (not a pyenv one under /root, which ProtectHome= hides from services).
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV ?= .venv
SHARED ?= ../shared
# What `make run` needs from apt (python3-venv; systemd-python's build), and what `make test` adds
# (streams, brokers, certificates, the status page's browser).
RUN_APT_PACKAGES := libsystemd-dev pkg-config python3-venv
APT_PACKAGES := $(RUN_APT_PACKAGES) ffmpeg mosquitto mosquitto-clients openssl chromium
# `make run`: what the daemon runs (not onnx, nor the dev tools); `make test` adds DEV_EXTRAS.
RUN_EXTRAS := litert,opencv,av,systemd,mqtt,metrics,web,fleet
DEV_EXTRAS := dev,onnx
ALL_EXTRAS := $(RUN_EXTRAS),$(DEV_EXTRAS)
SOURCE ?= $(SHARED)/images
APT_LOG := .run/apt.log
PIP_LOG := .run/pip.log
# The Debian package: its version is edgecam.__version__ (DEB_VERSION_SUFFIX, e.g. +test2, only
# for tests that need a newer build of the same source); debian/changelog is written from it.
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' edgecam/__init__.py)
DEB_VERSION := $(VERSION)$(DEB_VERSION_SUFFIX)
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null || uname -m)
DIST ?= dist
DEB := $(DIST)/edgecam_$(DEB_VERSION)_$(DEB_ARCH).deb
DEB_BUILD ?= .run/deb
DEB_APT_PACKAGES := build-essential dpkg-dev debhelper dh-virtualenv devscripts lintian python3-venv python3-numpy python3-yaml

# $(call logged,LOG,COMMANDS): COMMANDS' output (pages of apt, dpkg and pip progress) goes
# to LOG; if they fail, LOG's last lines and a non-zero exit.
logged = mkdir -p $(dir $(1)) && { $(2); } >$(1) 2>&1 || \
    { tail -n 20 $(1) | cut -c1-300 >&2; echo "failed: the whole log is $(1)" >&2; exit 1; }
# $(call stage,N,NAME,COMMAND): a stage of make test, with one line when it ends saying how long
# it took (COMMAND's own output in between).
stage = echo "make test [$(1)/5] $(2)"; start=$$(date +%s); $(3); status=$$?; s=$$(( $$(date +%s) - start )); \
    echo "make test [$(1)/5] $(2): $$([ $$status = 0 ] && echo passed || echo FAILED) in $$((s / 60))m$$(printf %02d $$((s % 60)))s"; \
    exit $$status

.PHONY: run test test-arm64 deps run-deps venv venv-dev install uninstall clean deb deb-deps deb-arm64

## run: the daemon in the foreground on $(SOURCE), printing each result (Ctrl-C stops it)
run: venv
	$(VENV)/bin/edgecam fetch-model --dir .run/models \
	    $(if $(wildcard $(SHARED)/models),--base-url file://$(abspath $(SHARED)/models))
	$(VENV)/bin/edgecam run -c config/demo.yaml --source $(SOURCE) --print

## test: lint and the whole test suite (what CI runs); as root on an x86-64 machine (CI), also
## test-arm64, the Pi's install path on the Pi's architecture (cold, about 25 minutes), and
## deb-arm64, the Pi's package built and installed in the same root (about 7 minutes more)
test: venv-dev
	@echo "make test: ruff, mypy, pytest, then (as root on x86-64) test-arm64 and deb-arm64; one line per stage with its time"
	@$(call stage,1,ruff,$(VENV)/bin/ruff check .)
	@$(call stage,2,mypy,$(VENV)/bin/mypy)
	@$(call stage,3,pytest,$(VENV)/bin/python -m pytest)
	@if [ "$$(id -u)" = 0 ] && [ "$$(uname -m)" = x86_64 ]; then \
	    $(call stage,4,test-arm64 (cold about 25 min: a progress line a minute),$(MAKE) --no-print-directory test-arm64); \
	else echo "make test [4/5] test-arm64: skipped (it needs root on an x86-64 machine: sudo make test-arm64)"; fi
	@if [ "$$(id -u)" = 0 ] && [ "$$(uname -m)" = x86_64 ]; then \
	    $(call stage,5,deb-arm64 (the arm64 package in test-arm64's root),$(MAKE) --no-print-directory deb-arm64); \
	else echo "make test [5/5] deb-arm64: skipped (it needs root on an x86-64 machine: sudo make deb-arm64)"; fi

## test-arm64: the Raspberry Pi install path, run in a Debian arm64 root under qemu (root;
## docs/ARM64.md). ARM64_CACHE: where the root's tarball and the logs go (/var/cache/edgecam-arm64)
test-arm64:
	SHARED=$(abspath $(SHARED)) bash tests/arm64/run.sh

## deb-arm64: dist/edgecam_VERSION_arm64.deb, built inside test-arm64's Debian arm64 root under
## qemu (root; reuses its cached root; cold about 40 minutes, docs/ARM64.md)
deb-arm64: deb-deps
	SHARED=$(abspath $(SHARED)) VERSION=$(DEB_VERSION) DIST=$(abspath $(DIST)) bash tests/arm64/run.sh deb
	@lintian --info $(DIST)/edgecam_$(DEB_VERSION)_arm64.deb >.run/deb-arm64-lintian.log 2>&1 || true
	@echo "lintian: $$(grep -c '^E:' .run/deb-arm64-lintian.log) errors, $$(grep -c '^W:' .run/deb-arm64-lintian.log)" \
	    "warnings (log: .run/deb-arm64-lintian.log)"; ! grep '^E:' .run/deb-arm64-lintian.log

## install: edgecam as a systemd service (root): user, /opt/edgecam, unit, config, model;
## NAME=garage: one camera of several, the instance edgecam@garage (/etc/edgecam/garage.yaml)
install:
	PYTHON=$(PYTHON) NAME=$(NAME) bash systemd/install.sh install

## uninstall: remove it again; keeps /etc/edgecam and the models unless PURGE=1;
## NAME=garage: that instance only
uninstall:
	PURGE=$(PURGE) NAME=$(NAME) bash systemd/install.sh uninstall

## deps: Debian packages the tests and systemd-python's build need (root only); run-deps: make run's
deps run-deps:
	@missing=$$(for p in $(if $(filter run-deps,$@),$(RUN_APT_PACKAGES),$(APT_PACKAGES)); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" != 0 ]; then echo "install first: sudo apt-get install" $$missing; exit 1; fi; \
	    echo "installing Debian packages:" $$missing "(log: $(APT_LOG))"; \
	    $(call logged,$(APT_LOG),apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing); \
	fi

venv: $(VENV)/.installed
venv-dev: $(VENV)/.dev-installed

$(VENV)/.installed: setup.cfg pyproject.toml | run-deps
	@echo "installing edgecam[$(RUN_EXTRAS)] into $(VENV): about 470 MB (log: $(PIP_LOG))"
	@$(call logged,$(PIP_LOG),$(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install --upgrade pip && \
	    $(VENV)/bin/pip install -e '.[$(RUN_EXTRAS)]')
	@touch $@

# The dev tools on top of make run's virtualenv (pytest, mypy, ruff, playwright, onnxruntime).
$(VENV)/.dev-installed: $(VENV)/.installed | deps
	@echo "adding edgecam[$(DEV_EXTRAS)] to $(VENV) for the tests: about 360 MB more (log: $(PIP_LOG))"
	@$(call logged,$(PIP_LOG),$(VENV)/bin/pip install -e '.[$(ALL_EXTRAS)]')
	@touch $@

## deb: dist/edgecam_VERSION_ARCH.deb with dpkg-buildpackage and dh-virtualenv, then lintian
## (build dependencies installed as root, like deps; logs in .run/deb-*.log)
deb: deb-deps
	@echo "building $(DEB) in $(DEB_BUILD) (log: .run/deb-build.log)"
	@$(call logged,.run/deb-build.log,SHARED=$(abspath $(SHARED)) VERSION=$(DEB_VERSION) \
	    BUILD=$(abspath $(DEB_BUILD)) bash debian/build.sh)
	@mkdir -p $(DIST) && cp $(DEB_BUILD)/edgecam_$(DEB_VERSION)_$(DEB_ARCH).deb $(DEB)
	@echo "lintian $(DEB) (log: .run/deb-lintian.log)"
	@lintian --info $(DEB) >.run/deb-lintian.log 2>&1 || true
	@echo "lintian: $$(grep -c '^E:' .run/deb-lintian.log) errors, $$(grep -c '^W:' .run/deb-lintian.log) warnings" \
	    "(docs/DEBIAN.md says why for each warning)"; ! grep '^E:' .run/deb-lintian.log
	@echo "built $(DEB) ($$(du -h $(DEB) | cut -f1)): sudo apt install $(if $(filter /%,$(DEB)),,./)$(DEB)"

deb-deps:
	@missing=$$(for p in $(DEB_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" != 0 ]; then echo "install first: sudo apt-get install" $$missing; exit 1; fi; \
	    echo "installing the Debian packages the build needs:" $$missing "(log: .run/deb-apt.log)"; \
	    $(call logged,.run/deb-apt.log,apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing); \
	fi

clean:
	rm -rf $(VENV) .run .pytest_cache .ruff_cache build dist *.egg-info
