# The two commands of the README: `make demo` (install, then serve the example study) and `make test`.
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: install demo test bench

install:
	PYTHON=$(PYTHON) bash scripts/install.sh

demo: install
	culturelab demo --host $(HOST) --port $(PORT)

test: install
	CULTURELAB_TEST_POSTGRES_URL=$${CULTURELAB_TEST_POSTGRES_URL-$$(bash scripts/services.sh)} \
	  $(PYTHON) -m pytest -n 2 --timeout 600

bench: install
	$(PYTHON) benchmarks/load.py
