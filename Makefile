# Front door for the two commands of the README. CMake does the real work.
BUILD      ?= build
BUILD_SAN  ?= build-sanitize
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
WERROR     ?= $(or $(LINKWARD_WERROR),OFF)
LISTEN     ?= 127.0.0.1:8080
VAR        ?= var

.PHONY: all build deps run test test-sanitize clean format

all: build

deps:
	@scripts/deps

$(BUILD)/CMakeCache.txt:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLINKWARD_WERROR=$(WERROR) >/dev/null

build: $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS)

# `make run` builds the server binary only, with its output in $(BUILD)/build.log
# (shown when the build fails): a newcomer sees one build line, then the server.
run: deps $(BUILD)/CMakeCache.txt
	@mkdir -p $(VAR)
	@printf 'Linkward: building $(BUILD)/linkward ... '
	@if cmake --build $(BUILD) -j $(JOBS) --target linkward >$(BUILD)/build.log 2>&1; then echo done; \
	 else echo failed; tail -n 40 $(BUILD)/build.log; echo "(whole log: $(BUILD)/build.log)"; exit 1; fi
	@echo "Linkward: starting on http://$(LISTEN) (data in $(VAR)/)"
	@echo "Open http://$(LISTEN)/ in a browser to link it, or link a headless device: in another terminal run"
	@echo "    $(BUILD)/linkward companion --server http://$(LISTEN) link"
	@echo "and from a third, as the phone:"
	@echo "    $(BUILD)/linkward phone --server http://$(LISTEN) register --handle alice"
	@echo "    $(BUILD)/linkward phone link 'lw1:...'   (the payload printed by the companion)"
	@exec $(BUILD)/linkward serve --listen $(LISTEN) --db $(VAR)/linkward.db $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

# A test that fails is run once more (--repeat until-pass:2) and both runs are
# printed: a rare hang under load is reported, not hidden, and does not sink a
# whole CI run (docs/security.md, "Not met, and known gaps").
CTEST_ARGS ?= --output-on-failure -j $(JOBS) --repeat until-pass:2

test: deps build
	@cd $(BUILD) && ctest $(CTEST_ARGS)

test-sanitize: deps
	@cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DLINKWARD_SANITIZE=ON -DLINKWARD_WERROR=$(WERROR) >/dev/null
	@cmake --build $(BUILD_SAN) -j $(JOBS)
	@cd $(BUILD_SAN) && ctest $(CTEST_ARGS)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_SAN)

# Benchmarks of docs/benchmarks.md (not part of `make test`): installs what they need, runs them all.
.PHONY: bench
bench: build
	@bench/deps
	@bench/run

# Fuzzing (fuzz/README.md): builds the libFuzzer harnesses with clang in
# $(BUILD_FUZZ) and runs each for FUZZ_SECONDS (fuzz/run.sh): new corpus entries
# go to $(BUILD_FUZZ)/corpus/<name>, crashes to fuzz/<name>/crashes/.
# `make fuzz FUZZERS="http ws" FUZZ_SECONDS=600` narrows it.
BUILD_FUZZ   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZERS      ?= http json_routes ws cred payload code clientaddr duration ua config

.PHONY: fuzz
fuzz: deps
	@cmake -S . -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLINKWARD_FUZZ=ON >/dev/null
	@cmake --build $(BUILD_FUZZ) -j $(JOBS) --target $(addprefix fuzz_,$(FUZZERS))
	@fuzz/run.sh $(BUILD_FUZZ) $(FUZZ_SECONDS) $(FUZZERS)
