# AtomSim: `make demo` sets everything up and runs the main job; `make test` sets up and runs
# every test (pytest and Robot). Both are idempotent and install what is missing themselves.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi gcc make \
                dataset-fashion-mnist

.PHONY: setup toolchain venv demo test lint pytest robot bench clean

setup: toolchain venv

# OS packages: the Arm cross toolchain with newlib, and a host C compiler (for the native
# block counter). Installed with apt-get only when something is missing.
toolchain:
	@missing=""; \
	for tool in arm-none-eabi-gcc arm-none-eabi-size cc; do \
	  command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	[ -f /usr/lib/arm-none-eabi/newlib/libc_nano.a ] || [ -n "$$(ls /usr/lib/arm-none-eabi/lib/libc_nano.a 2>/dev/null)" ] || missing="$$missing newlib"; \
	[ -d /usr/share/datasets/fashion-mnist ] || missing="$$missing fashion-mnist"; \
	if [ -n "$$missing" ]; then \
	  echo "installing OS packages (missing:$$missing)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES); \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python >= 3.11 is required ($(PYTHON) is $$($(PYTHON) --version))"; exit 1; }
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,atomnet]'
	$(PY) -c 'from atomsim.emulator.counter import library_path; library_path()'
	touch $@

SHARED_DATA := ../shared/data

# The main job, in the order a user meets it: examples and atoms on the three boards, whole
# networks, calibration against one board, then AtomNet (search, train, quantize, deploy and
# verify on the emulated board). Data made by others is read from ../shared/data when present.
demo: setup
	$(VENV)/bin/atomsim demo
	@echo; echo "=== 4. Whole networks on the three boards (atomsim profile) ==="
	@if [ -d $(SHARED_DATA) ]; then \
	  $(VENV)/bin/atomsim profile $(SHARED_DATA)/mcunet-configs/mcunet-10fps_imagenet.json --board all && \
	  $(VENV)/bin/atomsim profile $(SHARED_DATA)/tflite/kws_ref_model.tflite --board all \
	    --budget latency_ms=100,sram_kb=64,flash_kb=128; \
	else echo "$(SHARED_DATA) is absent: the MCUNet config and the MLPerf Tiny model are skipped"; fi
	@echo; echo "=== 5. Calibration against one board ==="
	$(PY) -c 'import sys, calibration.demo as d; sys.exit(d.main())'
	@echo; echo "=== 6. AtomNet: search, train, quantize, deploy and verify on the emulated board ==="
	$(PY) -c 'import sys, atomnet.demo as d; sys.exit(d.main())'

test: setup lint pytest robot

# The layer contracts of pyproject.toml (import-linter): lower layers never import higher ones,
# no cycles, torch only in atomnet/.
lint: setup
	$(VENV)/bin/lint-imports

pytest: setup
	$(PY) -m pytest -q

robot: setup
	$(PY) -m atomsim.robot.run

bench: setup
	$(PY) benchmarks/emulator_speed.py

clean:
	rm -rf build
