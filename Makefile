# edgecam — developer and install targets. `make run` and `make test` work on a
# fresh Debian/Raspberry Pi OS machine: they install what they need.

SHELL := /bin/bash
# Debian's python3 (not a pyenv one under /root, which ProtectHome= hides from services).
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV ?= .venv
SHARED ?= ../shared
APT_PACKAGES := ffmpeg libsystemd-dev pkg-config python3-venv mosquitto mosquitto-clients openssl chromium
DEV_EXTRAS := litert,opencv,av,systemd,dev,mqtt,metrics,onnx,web,fleet
SOURCE ?= $(SHARED)/images
APT_LOG := .run/apt.log
PIP_LOG := .run/pip.log

# $(call logged,LOG,COMMANDS): COMMANDS' output (pages of apt, dpkg and pip progress) goes
# to LOG; if they fail, LOG's last lines and a non-zero exit.
logged = mkdir -p $(dir $(1)) && { $(2); } >$(1) 2>&1 || \
    { tail -n 20 $(1) >&2; echo "failed: the whole log is $(1)" >&2; exit 1; }

.PHONY: run test test-arm64 deps venv install uninstall clean

## run: the daemon in the foreground on $(SOURCE), printing each result (Ctrl-C stops it)
run: venv
	$(VENV)/bin/edgecam fetch-model --dir .run/models \
	    $(if $(wildcard $(SHARED)/models),--base-url file://$(abspath $(SHARED)/models))
	$(VENV)/bin/edgecam run -c config/demo.yaml --source $(SOURCE) --print

## test: lint and the whole test suite (what CI runs); as root on an x86-64 machine (CI), also
## test-arm64, the Pi's install path on the Pi's architecture (cold, about 25 minutes)
test: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest
	@if [ "$$(id -u)" = 0 ] && [ "$$(uname -m)" = x86_64 ]; then $(MAKE) --no-print-directory test-arm64; \
	else echo "test-arm64: skipped (it needs root on an x86-64 machine: sudo make test-arm64)"; fi

## test-arm64: the Raspberry Pi install path, run in a Debian arm64 root under qemu (root;
## docs/ARM64.md). ARM64_CACHE: where the root's tarball and the logs go (/var/cache/edgecam-arm64)
test-arm64:
	SHARED=$(abspath $(SHARED)) bash tests/arm64/run.sh

## install: edgecam as a systemd service (root): user, /opt/edgecam, unit, config, model;
## NAME=garage: one camera of several, the instance edgecam@garage (/etc/edgecam/garage.yaml)
install:
	PYTHON=$(PYTHON) NAME=$(NAME) bash systemd/install.sh install

## uninstall: remove it again; keeps /etc/edgecam and the models unless PURGE=1;
## NAME=garage: that instance only
uninstall:
	PURGE=$(PURGE) NAME=$(NAME) bash systemd/install.sh uninstall

## deps: Debian packages the tests and systemd-python's build need (root only)
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" != 0 ]; then echo "install first: sudo apt-get install" $$missing; exit 1; fi; \
	    echo "installing Debian packages:" $$missing "(log: $(APT_LOG))"; \
	    $(call logged,$(APT_LOG),apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing); \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml | deps
	@echo "installing edgecam[$(DEV_EXTRAS)] into $(VENV) (log: $(PIP_LOG))"
	@$(call logged,$(PIP_LOG),$(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install --upgrade pip && \
	    $(VENV)/bin/pip install -e '.[$(DEV_EXTRAS)]')
	@touch $@

clean:
	rm -rf $(VENV) .run .pytest_cache .ruff_cache build *.egg-info
