# patchwork: `make train` trains the default ViT, `make test` runs the suite.
BUILD ?= build
JOBS  ?= $(shell nproc)

.PHONY: all deps configure build test train bench compare compare-accuracy clean format

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

configure: deps $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# Test processes run side by side, one compute thread each: two OpenMP teams sharing two
# cores would spend their time waiting for each other at barriers.
test: build
	cd $(BUILD) && OMP_NUM_THREADS=1 ctest --output-on-failure -j $(JOBS) --timeout 600

# The default recipe: chosen to finish within 40 minutes on a 2-core machine (see README).
TRAIN_ARGS ?=
train: configure
	cmake --build $(BUILD) --target vit -j $(JOBS)
	$(BUILD)/vit train $(TRAIN_ARGS)

# patchwork and PyTorch (Debian's python3-torch, installed on demand) side by side.
compare: configure
	cmake --build $(BUILD) --target vit -j $(JOBS)
	@PATCHWORK_WITH_TORCH=1 bash scripts/install-deps.sh
	/usr/bin/python3 bench/compare.py --vit $(BUILD)/vit

# Accuracy per minute: the default recipe in patchwork, then the same model and recipe in PyTorch,
# each with the same time budget (BUDGET, default 30m); prints accuracy at 5, 10, 15, 20, 30 min.
BUDGET ?= 30m
compare-accuracy: configure
	cmake --build $(BUILD) --target vit -j $(JOBS)
	@PATCHWORK_WITH_TORCH=1 bash scripts/install-deps.sh
	/usr/bin/python3 bench/compare_accuracy.py --vit $(BUILD)/vit --budget $(BUDGET)

bench: build
	$(BUILD)/bench/patchwork_bench

clean:
	rm -rf $(BUILD)

format:
	clang-format -i $$(git ls-files '*.h' '*.cpp')
