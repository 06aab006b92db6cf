# Entry points for people and CI. Every target installs what is missing first
# (scripts/install-deps is idempotent) and then builds with CMake presets.
#   make demo   viopool-host + a dpdk-testpmd frontend, live per-queue rates
#   make test   the whole CTest suite (dev build: unit, component and system,
#               the last with a real Linux guest under QEMU), then the unit and
#               component tiers again under AddressSanitizer/UBSan, then the
#               fabric decoders' fuzzers for a few seconds each
#   make images the guest images (vm-images/) into build/vm-images/
#   make build  just build (preset dev, into build/)
#   make bench  the side-by-side benchmarks in bench/
SHELL := /bin/bash
DURATION ?= 20

.PHONY: deps build build-asan build-fuzz demo test test-dev test-asan test-fuzz bench images clean

deps:
	bash scripts/install-deps

build: deps
	cmake --preset dev >/dev/null
	cmake --build --preset dev

build-asan: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan

demo: build
	DURATION=$(DURATION) bash scripts/demo

test-dev: build
	ctest --preset dev

test-asan: build-asan
	ctest --preset asan -L 'unit|component'

build-fuzz: deps
	cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz

test-fuzz: build-fuzz
	bash tests/fuzz/run build-fuzz 10

test: test-dev test-asan test-fuzz

bench: build images
	bash bench/net_loopback
	bash bench/blk
	bash bench/crypto
	bash bench/pool_blk
	bash bench/pool_crypto
	bash bench/offload

images: build
	cmake --build --preset dev --target images

clean:
	rm -rf build build-asan build-release build-nodpdk build-fuzz
