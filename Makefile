# The two commands of the README:
#   make run    install what is missing, build, and run the demo on the bundled model
#   make test   install what is missing, build, and run every test
# Other targets: deps, build, clean, gpu-debs (fetch the Debian packages a GPU host lacks).
BUILD ?= build
JOBS ?= $(shell nproc)
BUILD_TYPE ?= Release
export PRUNERD_TEST_DATA ?= $(abspath ../shared/data)

.PHONY: all deps configure build test run clean gpu-debs

all: build

deps:
	@bash .ci/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DPRUNERD_TEST_DATA=$(PRUNERD_TEST_DATA) >/dev/null

build: configure
	@cmake --build $(BUILD) -j$(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

run: build
	@bash deploy/demo.sh $(BUILD)

# Build the CPU image from the Dockerfile with podman and run it (slow: up to 25 minutes; needs
# root, podman and debootstrap): deploy/docker/image-test.sh.
.PHONY: image-test
image-test: configure
	@cmake --build $(BUILD) -j$(JOBS) --target prunectl
	@bash deploy/docker/image-test.sh $(abspath $(BUILD))

gpu-debs:
	@DIR=.gpu/debs ../shared/gpu-host/fetch-debs.sh && cp ../shared/gpu-host/env.sh .gpu/

clean:
	rm -rf $(BUILD)
