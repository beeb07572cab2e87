# The README's commands. Each one runs scripts/setup (installs what is
# missing with apt-get, quiet when nothing is) and builds from scratch when
# there is no build yet.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
RELEASE := build/release
CHECK := build/check
FUZZ := build/fuzz

.PHONY: all setup build check demo bench fuzz format clean

all: build

setup:
	@sh scripts/setup

build: setup
	@cmake -S . -B $(RELEASE) -DCMAKE_BUILD_TYPE=Release -DAPPLIANCE_TESTS=OFF \
		-DAPPLIANCE_TEST_HOOKS=OFF >/dev/null
	@cmake --build $(RELEASE) -j $(JOBS)

# All tests, built with AddressSanitizer and UndefinedBehaviorSanitizer.
check: setup
	@cmake -S . -B $(CHECK) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAPPLIANCE_SANITIZE=ON \
		-DAPPLIANCE_TEST_HOOKS=ON >/dev/null
	@cmake --build $(CHECK) -j $(JOBS)
	@cd $(CHECK) && ctest --output-on-failure -j $(JOBS)

demo: build
	@sh scripts/demo $(RELEASE)/appliance/appliance

bench: build
	@sh scripts/bench $(RELEASE)/appliance/appliance

fuzz: setup
	@sh scripts/fuzz $(FUZZ)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build
