# The two commands of the README: `make demo` (install, then serve the example study) and `make test`.
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 5000
PARTICIPANTS ?= 120

.PHONY: install install-test demo test bench

install:
	PYTHON=$(PYTHON) bash scripts/install.sh

# The test tools and headless Chromium come only with `make test`.
install-test:
	PYTHON=$(PYTHON) CULTURELAB_BROWSER_TESTS=1 bash scripts/install.sh

demo: install
	$(PYTHON) -m culturelab.platform.cli demo --host $(HOST) --port $(PORT) --participants $(PARTICIPANTS)

test: install-test
	CULTURELAB_TEST_POSTGRES_URL=$${CULTURELAB_TEST_POSTGRES_URL-$$(bash scripts/services.sh)} \
	  $(PYTHON) -m pytest -n 2 --timeout 600

bench: install-test
	$(PYTHON) benchmarks/load.py
