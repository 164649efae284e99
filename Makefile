# patchwork: `make train` trains the default ViT, `make test` runs the suite.
BUILD ?= build
JOBS  ?= $(shell nproc)

.PHONY: all deps configure build test sanitize fuzz train train-long bench compare compare-accuracy clean format

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

# The suite again, built with AddressSanitizer and UndefinedBehaviorSanitizer (clang, its own
# build dir). Leaks are errors except the one fontconfig keeps by design (.ci/lsan.supp).
SANITIZE_BUILD ?= build-sanitize
sanitize: deps
	@PATCHWORK_WITH_CLANG=1 bash scripts/install-deps.sh
	@test -f $(SANITIZE_BUILD)/CMakeCache.txt || cmake -S . -B $(SANITIZE_BUILD) \
	  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ -DPATCHWORK_SANITIZE=ON
	cmake --build $(SANITIZE_BUILD) -j $(JOBS) --target patchwork_tests vit
	cd $(SANITIZE_BUILD) && OMP_NUM_THREADS=1 \
	  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/.ci/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 1800

# libFuzzer targets of fuzz/ (clang, ASan + UBSan), each run FUZZ_SECONDS on a corpus seeded by
# patchwork's own writers (fuzz/run.sh; FUZZ_TARGETS picks some, e.g. "image safetensors").
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz: deps
	@PATCHWORK_WITH_CLANG=1 bash scripts/install-deps.sh
	@test -f $(FUZZ_BUILD)/CMakeCache.txt || cmake -S . -B $(FUZZ_BUILD) \
	  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ -DPATCHWORK_FUZZ=ON
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_targets
	bash fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

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
	clang-format -i $$(git ls-files '*.h' '*.cpp' ':!third_party')
