# Two commands do all the set-up on a fresh Debian 12 machine with the Swift toolchain: `make run` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
PORT ?= 3000
APT_PACKAGES := libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev libx264-dev \
	pkg-config ffmpeg bc

.PHONY: deps build release run test harness bench bench-engine bench-service leak-check fuzz-media clean

# Idempotent and quick when everything is present: only missing packages are installed.
deps:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

run: release
	$$($(SWIFT) build -c release --show-bin-path)/ffmpeg-processor serve --port $(PORT)

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# The release service on a free port, the harness with its defaults against it, the report; HARNESS_ARGS adds options.
harness: release
	scripts/harness.sh

# The in-process engine against the CLI, then the service against the CLI (README, "Benchmarks").
bench: release
	scripts/bench.sh
	scripts/bench-service.sh

bench-engine: release
	scripts/bench.sh

bench-service: release
	scripts/bench-service.sh

clean:
	rm -rf .build .build-asan bench-out

# The CLI under AddressSanitizer/LeakSanitizer over good and hostile inputs.
leak-check: deps
	scripts/leak-check.sh

# Mutants of generated clips through the transcoder: a crash, a hang past the time limit or an invalid output fails.
COUNT ?= 1000
SEED ?= $$RANDOM
fuzz-media: deps
	$(SWIFT) build -c release --product media-fuzz
	$$($(SWIFT) build -c release --show-bin-path)/media-fuzz --count $(COUNT) --seed $(SEED)
