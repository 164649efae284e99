# patchwork: `make train` trains the default ViT, `make test` runs the suite.
BUILD ?= build
JOBS  ?= $(shell nproc)

.PHONY: all deps configure build test train train-long bench compare compare-accuracy clean format

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

# The recipes of apps/train/recipes.cpp (`vit train --help` lists them): `default` for
# `make train`, `long` for `make train-long`. Flags in TRAIN_ARGS override a recipe's values.
TRAIN_ARGS ?=
train: configure
	cmake --build $(BUILD) --target vit -j $(JOBS)
	$(BUILD)/vit train --recipe default $(TRAIN_ARGS)

train-long: configure
	cmake --build $(BUILD) --target vit -j $(JOBS)
	$(BUILD)/vit train --recipe long $(TRAIN_ARGS)

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
