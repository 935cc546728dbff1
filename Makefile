# EuraliOS-py. `make run` boots to the login prompt; `make test` sets up and runs every test.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint soak clean setup test-deps bytecode

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Byte-compile the OS. pip does this for installed packages, but ours is an editable checkout, and
# where PYTHONDONTWRITEBYTECODE is set every boot would compile it from source again (~0.1 s).
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q proto machine merriwig euralios drivers net vfs programs >/dev/null

# Host packages the real-peer network tests use (iproute2, dnsmasq, ping, Debian's gophernicus as
# an independent Gopher server, diod as an independent 9P2000.L server, setpriv to run
# gophernicus unprivileged). dnsmasq-base is the daemon
# without a system service to start.
# Installed only when missing, and only where we are root with apt (CI is).
test-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; \
	  command -v ip >/dev/null || missing="$$missing iproute2"; \
	  command -v tmux >/dev/null || missing="$$missing tmux"; \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v dnsmasq >/dev/null || missing="$$missing dnsmasq-base"; \
	  command -v ping >/dev/null || missing="$$missing iputils-ping"; \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v gophernicus >/dev/null || missing="$$missing gophernicus"; \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v diod >/dev/null || missing="$$missing diod"; \
	  command -v setpriv >/dev/null || missing="$$missing util-linux"; \
	  if [ -n "$$missing" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	fi

run: $(STAMP) bytecode
	$(BIN)/euralios

test: $(STAMP) test-deps bytecode
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(STAMP) bytecode
	$(BIN)/python -m bench.run_all

# Ten minutes of a busy booted system, checking memory stays flat (not part of `make test`).
soak: $(STAMP)
	$(BIN)/python -m bench.soak

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info bench/results.json
