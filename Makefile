# The two commands of the README: `make run` and `make test`. Both install what is
# missing first (Debian packages via apt-get, Python packages via pip into .venv), so
# they work on a fresh Debian machine. Everything else here serves those two.

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
CMAKE  := $(VENV)/bin/cmake
JOBS   ?= 2
FUZZ_SECONDS ?= 20

BUILD      := build/release
TEST_BUILD := build/ctest
FUZZ_BUILD := build/fuzz
ASAN_BUILD := build/asan
ASAN_PKG   := build/asan-pkg

# Debian packages: the compiler, libuv, zlib and OpenSSL (libssl-dev; the openssl command for
# the TLS tests) for the build, clang and its libFuzzer/sanitizer runtime for the fuzz
# targets. Benchmarks add wrk and nginx (see bench-deps).
APT_PKGS       := build-essential pkg-config libuv1-dev zlib1g-dev libssl-dev openssl clang \
                  libclang-rt-14-dev
APT_BENCH_PKGS := wrk nginx-light
# The tests add nginx: tests/py/test_operation.py serves behind a real one (skipped without).
APT_TEST_PKGS  := nginx-light

.PHONY: run test test-deps build deps apt-deps venv ctest fuzz loop-suite pytest pytest-asan lint format \
        bench bench-json \
        bench-loop bench-ws bench-deps clean compat

run: build
	PYTHONPATH=src $(VPY) examples/app.py

test: build test-deps lint ctest fuzz loop-suite pytest-asan fastapi-check pytest

# --- set-up -------------------------------------------------------------------------

deps: apt-deps venv

apt-deps:
	@PKGS="$(APT_PKGS)"; \
	if ! $(PYTHON) -c 'import venv, sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; then \
		PKGS="$$PKGS python3-dev python3-venv"; fi; \
	./scripts/apt-install.sh $$PKGS

test-deps:
	./scripts/apt-install.sh $(APT_TEST_PKGS)

venv: $(VENV)/.stamp

$(VENV)/.stamp: requirements/test.txt requirements/build.txt
	@[ -x $(VPY) ] || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements/build.txt -r requirements/test.txt
	@touch $@

# --- build --------------------------------------------------------------------------

build: deps
	$(CMAKE) -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DDB_INPLACE=ON \
		-DPython_EXECUTABLE=$(abspath $(VPY)) > /dev/null
	$(CMAKE) --build $(BUILD) -j $(JOBS)

# --- tests --------------------------------------------------------------------------

lint: venv
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

# C unit tests of the Python-free components, with AddressSanitizer and UBSan.
ctest: deps
	$(CMAKE) -S . -B $(TEST_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDB_BUILD_EXTENSION=OFF \
		-DDB_BUILD_TESTS=ON -DDB_SANITIZE=ON > /dev/null
	$(CMAKE) --build $(TEST_BUILD) -j $(JOBS)
	$(VENV)/bin/ctest --test-dir $(TEST_BUILD) --output-on-failure

# A short libFuzzer run of every target in fuzz/ (FUZZ_SECONDS each), then the JSON decoder's
# differential atheris target (needs the release build).
fuzz: build
	CC=clang CFLAGS="-fsanitize=fuzzer-no-link,address,undefined -g" \
		$(CMAKE) -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug \
		-DDB_BUILD_EXTENSION=OFF -DDB_BUILD_FUZZ=ON > /dev/null
	$(CMAKE) --build $(FUZZ_BUILD) -j $(JOBS)
	./scripts/run-fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)
	PYTHONPATH=src $(VPY) fuzz/fuzz_json.py -max_total_time=$(FUZZ_SECONDS)

# CPython's own asyncio test suite (test.test_asyncio, shipped with the interpreter) with PyLoop
# as the loop; fails on anything but the documented known failures, and on any test that runs
# past its watchdog (60 s; the hang is reported by name). Counts: docs/loop-suite.md.
loop-suite: build
	$(VPY) tests/py/loop_cpython_suite.py

# Comparison runs (not part of `make test`; each takes several minutes): the same CPython
# selection on PyLoop, asyncio's loop and uvloop, and uvloop's own test suite (its pinned
# sdist's tests/, the tests shared by its uvloop and asyncio variants) on the three loops.
# Each prints the Markdown table of docs/loop-suite.md.
.PHONY: loop-suite-compare uvloop-tests loop-compare-deps

LOOP_COMPARE_STAMP := $(VENV)/.loop-compare.stamp

loop-compare-deps: venv $(LOOP_COMPARE_STAMP)

$(LOOP_COMPARE_STAMP): requirements/loop-compare.txt $(VENV)/.stamp
	$(VPY) -m pip install -q -r requirements/loop-compare.txt
	@touch $@

loop-suite-compare: build loop-compare-deps
	$(VPY) scripts/loop_suite_compare.py

uvloop-tests: build loop-compare-deps
	$(VPY) scripts/uvloop_tests.py

# The whole pytest suite against an ASan+UBSan build of the extension, with Python's
# allocator switched to malloc so that ASan also sees Python objects our C code frees.
# FastAPI and Starlette (fastapi-deps) are installed first: the differential tests
# against them skip without.
pytest-asan: deps fastapi-deps
	$(CMAKE) -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDB_SANITIZE=ON \
		-DPython_EXECUTABLE=$(abspath $(VPY)) > /dev/null
	$(CMAKE) --build $(ASAN_BUILD) -j $(JOBS)
	rm -rf $(ASAN_PKG) && mkdir -p $(ASAN_PKG)
	cp -r src/data_bridge $(ASAN_PKG)/ && rm -f $(ASAN_PKG)/data_bridge/_core*.so
	cp $(ASAN_BUILD)/_core*.so $(ASAN_PKG)/data_bridge/
	PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=0 \
		LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
		PYTHONPATH=$(ASAN_PKG) $(VPY) -m pytest tests/py -q -p no:cacheprovider -o pythonpath=

pytest: build fastapi-deps
	PYTHONPATH=src $(VPY) -m pytest tests/py

# Build and run the server and loop tests with every CPython 3.10-3.13 on this machine.
compat: deps
	./scripts/compat.sh

format:
	clang-format -i $$(git ls-files 'csrc/*.c' 'csrc/*.h' 'tests/c/*.c' 'tests/c/*.h' 'fuzz/*.c')
	$(VENV)/bin/ruff format src tests bench examples

# --- FastAPI's tutorial tests ------------------------------------------------------

# FastAPI's own tests of its tutorial (from the pinned fastapi sdist, downloaded once into
# build/fastapi-tests), run against FastAPI and against data_bridge.api through the import
# shim in tests/fastapi_compat; writes docs/compat.md and tests/fastapi_compat/passing.txt.
# fastapi-check (in `make test`) runs the data-bridge side of the tests in passing.txt only
# and fails if one of them no longer passes.
.PHONY: fastapi-tests fastapi-check fastapi-deps

FASTAPI_STAMP := $(VENV)/.fastapi-tests.stamp

fastapi-deps: venv $(FASTAPI_STAMP)

$(FASTAPI_STAMP): requirements/fastapi-tests.txt $(VENV)/.stamp
	$(VPY) -m pip install -q -r requirements/fastapi-tests.txt
	@touch $@

fastapi-tests: build fastapi-deps
	$(VPY) scripts/fastapi_tests.py report

fastapi-check: build fastapi-deps
	$(VPY) scripts/fastapi_tests.py check

# --- benchmarks (not tests) ---------------------------------------------------------

bench-deps: deps
	./scripts/apt-install.sh $(APT_BENCH_PKGS)
	$(VPY) -m pip install -q -r requirements/bench.txt

bench: build bench-deps
	PYTHONPATH=src $(VPY) bench/run.py

bench-json: build bench-deps
	PYTHONPATH=src $(VPY) bench/bench_json.py

bench-loop: build bench-deps
	PYTHONPATH=src $(VPY) bench/bench_loop.py

# WebSockets and SSE against FastAPI on uvicorn and on granian (bench/ws_bench.py), with the
# C load generator bench/wsload.c.
bench-ws: build bench-deps build/wsload
	PYTHONPATH=src $(VPY) bench/ws_bench.py

build/wsload: bench/wsload.c
	@mkdir -p build
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

clean:
	rm -rf build src/data_bridge/_core*.so
