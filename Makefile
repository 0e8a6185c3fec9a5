# Two commands for a fresh machine: `make run` and `make test`.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
DEBS    := tor microsocks xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libegl1 libxkbcommon-x11-0 iproute2 util-linux

.PHONY: run test test-containers bundle test-bundle setup debs lint bench clean screenshots

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: any other spec pulls a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[gui,test]'
	touch $(STAMP)

setup: $(STAMP)

# Debian packages the tests use for real: tor, a SOCKS5 server, a virtual screen.
# policy-rc.d keeps the tor package from starting a system tor (it would contact public relays).
# An existing policy-rc.d (container images ship one) is left as it is; one made here is removed.
POLICY_RC ?= /usr/sbin/policy-rc.d
debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  policy=$(POLICY_RC); made=""; \
	  if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' | $$SUDO tee $$policy >/dev/null; $$SUDO chmod +x $$policy; made=1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	  status=$$?; \
	  if [ -n "$$made" ]; then $$SUDO rm -f $$policy; fi; \
	  exit $$status; \
	fi

run: $(STAMP)
	$(VENV)/bin/covey

# Tor tests run a private tor network inside a loopback-only network namespace, so no
# tor can ever reach the public network (outside one they skip). Root: unshare -n;
# otherwise an unprivileged user namespace (unshare -rn).
TOR_NS  := $(if $(filter 0,$(shell id -u)),unshare -n,unshare -rn)

test: $(STAMP) debs lint
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider tests
	$(TOR_NS) sh -c 'ip link set lo up && exec $(PY) -m pytest -q -p no:cacheprovider -m tor tests/integration/tor tests/gui/tor'
	@if packaging/podman.sh can-run; then $(MAKE) --no-print-directory test-containers; \
	 else echo "containers: skipped (see the reason above)"; fi

# Containers: the image built from packaging/Dockerfile with Debian's podman (no registry
# needed: packaging/podman.sh), then a federation from `covey cluster compose` trains 3 rounds.
test-containers: $(STAMP)
	packaging/podman.sh all
	COVEY_CONTAINER_IMAGE=localhost/covey:latest $(PY) -m pytest -q -p no:cacheprovider -m containers tests/containers

# pyflakes + bugbear on the code, and the types of the core: zero findings allowed.
lint: $(STAMP)
	$(VENV)/bin/ruff check core desktop bench
	$(VENV)/bin/mypy

# Every tab of the window with real data from three local nodes, to docs/screenshots/<tab>.png (not part of test).
screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m desktop.screenshots docs/screenshots

# The one-folder app (PyInstaller, packaging/README.md): build/dist/covey/covey. PyInstaller
# is a build tool, not a dependency of the app.
bundle: $(STAMP)
	$(PY) -m pip install -q pyinstaller==6.22.3
	$(VENV)/bin/pyinstaller --noconfirm --log-level WARN --distpath build/dist --workpath build/pyinstaller packaging/covey.spec
	@du -sh build/dist/covey

test-bundle: bundle
	COVEY_BUNDLE=$(CURDIR)/build/dist/covey/covey $(PY) -m pytest -q -p no:cacheprovider tests/bundle

bench: $(STAMP)
	for b in bench/*.py; do $(PY) $$b; done

clean:
	rm -rf $(VENV) .pytest_cache
