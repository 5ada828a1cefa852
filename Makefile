# airlock: thin wrapper over meson + ninja. Every target installs what it
# needs first (scripts/install-deps is quiet when all is present).
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
CONFIG     ?= examples/quickstart.yaml
FUZZ_SECONDS ?= 60

.PHONY: all deps build run demo-pg test test-unit test-asan bench fuzz clean

all: build

deps:
	@./scripts/install-deps

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) >/dev/null

build: deps $(BUILD)/build.ninja
	@ninja -C $(BUILD)

run: build
	./scripts/run-quickstart $(BUILD)/airlock $(CONFIG)

# A throwaway PostgreSQL for the quickstart (var/demo-pg, 127.0.0.1:5433).
demo-pg: deps
	./scripts/demo-pg

$(ASAN_BUILD)/build.ninja: | deps
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false >/dev/null

# Full suite: unit + fuzz-corpus replay + integration, in a normal build and
# again under ASan+UBSan. The last line is the combined count.
test: build $(ASAN_BUILD)/build.ninja
	@ninja -C $(ASAN_BUILD)
	@./scripts/run-tests $(BUILD) $(ASAN_BUILD)

# Just the normal build, for a quick loop.
test-quick: build
	@./scripts/run-tests $(BUILD)

bench: build
	@./bench/run-all $(BUILD)

$(FUZZ_BUILD)/build.ninja: | deps
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false >/dev/null

fuzz: $(FUZZ_BUILD)/build.ninja
	@ninja -C $(FUZZ_BUILD)
	@for t in $(FUZZ_BUILD)/tests/fuzz/fuzz_*; do \
	  [ -f "$$t" ] && [ -x "$$t" ] || continue; \
	  name=$${t##*/fuzz_}; mkdir -p .cache/fuzz/$$name; \
	  echo "fuzzing $$name for $(FUZZ_SECONDS)s"; \
	  $$t -max_total_time=$(FUZZ_SECONDS) .cache/fuzz/$$name tests/fuzz/corpus/$$name || exit 1; \
	done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
