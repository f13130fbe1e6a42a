# Front door for the two commands of the README. CMake does the real work.
BUILD      ?= build
BUILD_SAN  ?= build-sanitize
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
WERROR     ?= $(or $(LINKWARD_WERROR),OFF)
LISTEN     ?= 127.0.0.1:8080

.PHONY: all build deps run test test-sanitize clean format

all: build

deps:
	@scripts/deps

$(BUILD)/CMakeCache.txt:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLINKWARD_WERROR=$(WERROR) >/dev/null

build: $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS)

run: deps build
	@mkdir -p var
	@echo "Linkward: starting on http://$(LISTEN) (data in ./var/)"
	@echo "Link a device: in another terminal run"
	@echo "    $(BUILD)/linkward companion --server http://$(LISTEN) link"
	@echo "and from a third, as the phone:"
	@echo "    $(BUILD)/linkward phone --server http://$(LISTEN) register --handle alice"
	@echo "    $(BUILD)/linkward phone link 'lw1:...'   (the payload printed by the companion)"
	@exec $(BUILD)/linkward serve --listen $(LISTEN) --db var/linkward.db $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

test: deps build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-sanitize: deps
	@cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DLINKWARD_SANITIZE=ON -DLINKWARD_WERROR=$(WERROR) >/dev/null
	@cmake --build $(BUILD_SAN) -j $(JOBS)
	@cd $(BUILD_SAN) && ctest --output-on-failure -j $(JOBS)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_SAN)

# Benchmarks of docs/benchmarks.md (not part of `make test`): installs what they need, runs them all.
.PHONY: bench
bench: build
	@bench/deps
	@bench/run
