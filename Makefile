# Two entry points for a fresh machine: `make demo` (install + the main job on the bundled data) and
# `make test` (install + the test suite). Both create .venv and install torch==2.13.0 first.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install system-deps demo test bench

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed

# The SSH push tests start a real sshd; the BLE tests start a private dbus-daemon; the firmware tests build TFLM
# with g++ and arm-none-eabi-g++ (newlib, libstdc++) and run it under qemu-system-arm (docs/firmware.md).
FIRMWARE_DEBS := gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm
# The tune tests start a real PostgreSQL server (initdb, pg_ctl of Debian's postgresql).
system-deps:
	@if [ ! -x /usr/sbin/sshd ] || ! command -v dbus-daemon >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client dbus; \
	fi
	@missing=$$(for p in $(FIRMWARE_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@dpkg -s postgresql >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }
	@mkdir -p /run/sshd 2>/dev/null || true

demo: install
	$(VENV)/bin/har train --compress int8

# The firmware tests build against the read-only TFLM trees of the kit beside the repository unless set.
HAR_TFLM_ROOT ?= $(abspath ../shared/third_party)
test: install system-deps
	HAR_TFLM_ROOT=$(HAR_TFLM_ROOT) $(PY) -m pytest -q

bench: install
	$(PY) bench/compare.py
