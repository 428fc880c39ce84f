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

# Debian packages the tests use: a real sshd (SSH push), a private dbus-daemon (BLE), g++/make and arm-none-eabi-g++
# with newlib and libstdc++ to build TFLM and the integer engine, qemu-system-arm to run the firmware
# (docs/firmware.md), and a real PostgreSQL server (har tune's shared storage).
SYSTEM_DEBS := openssh-server openssh-client dbus g++ make gcc-arm-none-eabi libnewlib-arm-none-eabi \
	libstdc++-arm-none-eabi-newlib qemu-system-arm postgresql
system-deps:
	@missing=$$(for p in $(SYSTEM_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@mkdir -p /run/sshd 2>/dev/null || true

demo: install
	$(VENV)/bin/har train --compress int8

# The firmware tests build against the read-only TFLM trees of the kit beside the repository unless set.
HAR_TFLM_ROOT ?= $(abspath ../shared/third_party)
test: install system-deps
	$(VENV)/bin/ruff check .
	HAR_TFLM_ROOT=$(HAR_TFLM_ROOT) $(PY) -m pytest -q

bench: install
	$(PY) bench/compare.py
