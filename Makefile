# Two commands do all the set-up on a fresh Debian 12 machine with the Swift toolchain: `make run` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
PORT ?= 3000
# util-linux (unshare) and mount: APIDocumentTests runs a service in a user and mount namespace of its own over a
# small tmpfs, for the 507 of a full temp directory. Both come with Debian; listed so that nothing assumes it.
# libseccomp-dev: the worker processes' system-call filter (Sources/CSeccomp).
APT_PACKAGES := libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev libavfilter-dev libx264-dev \
	pkg-config ffmpeg bc curl util-linux mount libseccomp-dev

.PHONY: deps bench-deps apt-install build release dist run test test-tsan harness bench bench-engine bench-service \
	bench-http bench-instructions bench-upload bench-about bench-about-uploads leak-check fuzz-media fuzz-media-asan \
	fuzz-http soak hostile clean check-openapi check-deploy cluster-test bench-cluster image-check seccomp-measure \
	bench-codecs browser-deps bench-split

BENCH_PACKAGES := wrk nginx-light valgrind
# Debian's headless-capable browser: BrowserPlaybackTests play the service's answers in it (skipped without it).
BROWSER_PACKAGES := chromium

# Idempotent and quick when everything is present: only missing packages are installed.
deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES)"

# The browser the playback tests use, kept out of `make deps` (about 100 MB).
browser-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(BROWSER_PACKAGES)"

# What only the benchmarks need (wrk, and nginx to compare with), kept out of `make test`.
bench-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES) $(BENCH_PACKAGES)"

apt-install:
	@missing=$$(for p in $(PACKAGES); do \
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

# The relocatable binary, dist/ffmpeg-processor, for a host without the Swift toolchain (deploy/systemd): the Swift
# runtime linked in (--static-swift-stdlib), as the Dockerfile builds it, so only the system's libraries remain.
# .build-static is the scratch folder image-check uses too. The ldd check is here rather than in check-deploy: the
# static release build takes about 6 minutes on 2 cores, and CI runs this target once (scripts/check-dist.sh).
STATIC := -c release --static-swift-stdlib --scratch-path .build-static
dist: deps
	$(SWIFT) build $(STATIC) --product ffmpeg-processor
	mkdir -p dist
	install -m 0755 "$$($(SWIFT) build $(STATIC) --show-bin-path)/ffmpeg-processor" dist/ffmpeg-processor
	scripts/check-dist.sh dist/ffmpeg-processor

run: release
	$$($(SWIFT) build -c release --show-bin-path)/ffmpeg-processor serve --port $(PORT)

# The HTTP server's socket tests compare this process's descriptor count with a baseline, so they run in a process
# of their own, after everything else, and one at a time: a server another test closes meanwhile makes the count
# drop below its baseline (CI saw 21 against 26 under TSan). Serial, they take about 24 s instead of 18.
# At most TEST_WIDTH tests at once: each service a test starts spawns its sandboxed worker processes, and with every
# test of a target at once (200 workers starting) two cores fell so far behind that simple requests timed out. Swift
# Testing's own knob, experimental in 6.3.
TEST_WIDTH ?= 6
test: deps
	$(SWIFT) build --build-tests
	SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=$(TEST_WIDTH) $(SWIFT) test --skip-build --skip HTTPServerTests
	$(SWIFT) test --skip-build --no-parallel --filter HTTPServerTests

# The API document (docs/openapi.yaml) is valid OpenAPI 3.1. The validator and its dependencies are pinned in
# scripts/requirements-tools.txt and live in a virtualenv of this repository's own, made again when that list
# changes. (Whether the document matches the server is APIDocumentTests' part, in `make test`.)
TOOLS_VENV := .venv-tools
$(TOOLS_VENV)/installed: scripts/requirements-tools.txt
	@$(MAKE) --no-print-directory apt-install PACKAGES="python3 python3-venv"
	rm -rf $(TOOLS_VENV)
	python3 -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r scripts/requirements-tools.txt
	$(TOOLS_VENV)/bin/pip check --disable-pip-version-check
	touch $@

check-openapi: $(TOOLS_VENV)/installed
	$(TOOLS_VENV)/bin/openapi-spec-validator --schema 3.1 docs/openapi.yaml

# Every file in deploy/ through its own engine's checker: haproxy -c, nginx -t, promtool (config, rules and their
# unit tests), kubernetes-validate --strict, systemd-analyze verify; and the rendered HAProxy and nginx run with their
# defaults on loopback, their own errors checked to be problem+json (scripts/check-deploy.sh).
DEPLOY_PACKAGES := haproxy nginx-light prometheus gettext-base systemd
check-deploy: $(TOOLS_VENV)/installed
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(DEPLOY_PACKAGES)"
	TOOLS_VENV=$(TOOLS_VENV) scripts/check-deploy.sh

# Every test under ThreadSanitizer. A report makes the test process exit 66 when it ends (TSan's default), which fails
# `swift test` even though each test passed; a service the harness tests start is built with TSan too, and its
# exit status is checked when it stops. One process per test target: instrumented code runs several times slower,
# and all of it at once on two cores pushes the service's timeout-bound tests past their limits.
# The worker processes are a plain debug build (FFMPEG_PROCESSOR_WORKER_EXECUTABLE): TSan reserves terabytes of
# shadow address space, which no worker's RLIMIT_AS allows. The pool, its threads and the parent's side of every
# worker run under TSan in the test process and in the instrumented service.
TSAN := --sanitize=thread --scratch-path .build-tsan
TSAN_ENV := FFMPEG_PROCESSOR_WORKER_EXECUTABLE=$(CURDIR)/.build/debug/ffmpeg-processor \
	SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=$(TEST_WIDTH)
test-tsan: deps
	$(SWIFT) build --product ffmpeg-processor
	$(SWIFT) build --build-tests $(TSAN)
	$(TSAN_ENV) $(SWIFT) test --skip-build $(TSAN) --no-parallel --filter HTTPServerTests
	$(TSAN_ENV) $(SWIFT) test --skip-build $(TSAN) --filter TranscodeServiceTests
	$(TSAN_ENV) $(SWIFT) test --skip-build $(TSAN) --filter TranscodingTests
	$(TSAN_ENV) $(SWIFT) test --skip-build $(TSAN) --filter HarnessTests
	$(TSAN_ENV) $(SWIFT) test --skip-build $(TSAN) --filter APIDocumentTests
	$(TSAN_ENV) $(SWIFT) test --skip-build $(TSAN) --filter SystemSupportTests
	$(TSAN_ENV) $(SWIFT) test --skip-build $(TSAN) --filter WorkerIsolationTests

# The release service on a free port, the harness with its defaults against it, the report; HARNESS_ARGS adds options.
harness: release
	scripts/harness.sh

# The in-process engine against the CLI, then the service against the CLI (docs/BENCHMARKS.md).
bench: bench-deps release
	scripts/bench.sh
	scripts/bench-service.sh
	scripts/bench-isolation.sh
	scripts/bench-fork.sh
	scripts/bench-http.sh
	scripts/bench-about-busy.sh

# Each output codec (h264, hevc, av1, vp9) on the same generated clips: time, bytes, PSNR/SSIM (docs/BENCHMARKS.md).
bench-codecs: deps release
	scripts/bench-codecs.sh

bench-engine: bench-deps release
	scripts/bench.sh

# The service against the CLI, then --isolation process against --isolation thread (scripts/bench-isolation.sh).
# BASELINE=<git ref> also builds that commit's service and compares one process per job with it (scripts/bench-fork.sh).
bench-service: bench-deps release
	scripts/bench-service.sh
	scripts/bench-isolation.sh
	scripts/bench-fork.sh

# One 40 s 1080p upload split into segments on a replica's workers against the same upload as one job (issue #20).
bench-split: bench-deps release
	scripts/bench-split.sh

# GET /about of a server on this library against nginx (1 worker), wrk at 64 connections.
bench-http: bench-deps
	scripts/bench-http.sh

# Rounds of the harness with a tenth of the clients disconnecting at random moments; after each round the temp folder
# is empty and the service's descriptors are back to their baseline, and RSS must not grow across rounds.
# ROUNDS, REQUESTS, CONCURRENCY, DISCONNECT, BUILD (release|debug), SOAK_FILE, RSS_SLACK_MB (scripts/soak.sh).
BUILD ?= release
soak: deps
	$(SWIFT) build -c $(BUILD) --product ffmpeg-processor
	$(SWIFT) build -c $(BUILD) --product harness
	BUILD=$(BUILD) scripts/soak.sh

# Replicas behind the shipped HAProxy configuration, then nginx's, then none (kept connections straight to them): a
# harness run, a rolling restart and a kill -9 under load (scripts/cluster-test.sh; REPLICAS, REQUESTS, CONCURRENCY,
# ROLLING_REQUESTS, KILL_REQUESTS, STEPS). BUILD as for soak.
CLUSTER_PACKAGES := haproxy nginx-light gettext-base curl bc
cluster-test: deps
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(CLUSTER_PACKAGES)"
	$(SWIFT) build -c $(BUILD) --product ffmpeg-processor
	$(SWIFT) build -c $(BUILD) --product harness
	BUILD=$(BUILD) scripts/cluster-test.sh

# Throughput of a 720p clip through HAProxy: 2 replicas pinned to a core each against 1 (scripts/bench-cluster.sh).
bench-cluster: bench-deps
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(CLUSTER_PACKAGES) util-linux"
	$(SWIFT) build -c release --product ffmpeg-processor
	$(SWIFT) build -c release --product harness
	$(SWIFT) build -c release --product transcode-bench
	scripts/bench-cluster.sh

# The container image's runtime stage without a Docker engine: a bookworm root filesystem with exactly the Dockerfile's
# runtime packages, the static-stdlib release binary in it, a transcode and /about inside (scripts/image-check.sh).
image-check: deps
	@$(MAKE) --no-print-directory apt-install PACKAGES="mmdebstrap curl"
	scripts/image-check.sh

# slowhttptest's slowloris and slow-body attacks, 1000 connections each: /about and a real upload are served while
# they run, and the service's descriptors are back to baseline after (scripts/hostile.sh). BUILD as for soak.
hostile: deps
	@$(MAKE) --no-print-directory apt-install PACKAGES="slowhttptest"
	$(SWIFT) build -c $(BUILD) --product ffmpeg-processor
	BUILD=$(BUILD) scripts/hostile.sh

# GET /about while every worker transcodes, workers at nice 0 and at the default 10 (scripts/bench-about-busy.sh).
bench-about: bench-deps release
	scripts/bench-about-busy.sh

# User-space instructions per GET /about under callgrind, this library's server against nginx: a noise-free figure.
bench-instructions: bench-deps
	scripts/bench-instructions.sh

# GET /about while 4 uploads of 1 GiB stream to disk, this server against the one from before the file writer thread
# (scripts/bench-about-uploads.sh; UPLOADS, SIZE_MB, BASELINE).
bench-about-uploads: deps
	scripts/bench-about-uploads.sh

# A 1 GiB upload into a file, spliced against copied through the process, on one server (scripts/bench-upload.sh).
bench-upload: deps
	scripts/bench-upload.sh

clean:
	rm -rf .build .build-asan .build-fuzz .build-static .build-tsan bench-out dist $(TOOLS_VENV)

# The worker's seccomp allow-list, measured: strace -f -c over real jobs in unconfined debug workers (the trial clip,
# every fixture format, MUTANTS fuzz mutants, bad inputs, a cancelled and a timed-out job). Its table is what
# Sources/WorkerIsolation/SeccompPolicy.swift allows (scripts/seccomp-measure.sh).
seccomp-measure: deps
	@$(MAKE) --no-print-directory apt-install PACKAGES="strace"
	scripts/seccomp-measure.sh

# The CLI under AddressSanitizer/LeakSanitizer over good and hostile inputs.
leak-check: deps
	scripts/leak-check.sh

# Mutants of generated clips through the transcoder: a crash, a hang past the time limit or an invalid output fails.
COUNT ?= 1000
SEED ?= $$RANDOM
fuzz-media: deps
	$(SWIFT) build -c release --product media-fuzz
	$$($(SWIFT) build -c release --show-bin-path)/media-fuzz --count $(COUNT) --seed $(SEED)

# The same under AddressSanitizer (CI runs a fixed seed, so a red run is reproducible).
fuzz-media-asan: deps
	$(SWIFT) build --scratch-path .build-asan --sanitize=address --product media-fuzz
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=scripts/lsan-suppressions.txt .build-asan/debug/media-fuzz --count $(COUNT) --seed $(SEED)

# libFuzzer on HTTPParser (with AddressSanitizer): fragmentation must never change what a request parses to.
# Crashing inputs are written to Fuzz/HTTPFuzz/crashes/; new interesting inputs stay in a scratch corpus.
# SwiftPM's --sanitize links libFuzzer's main; -Xswiftc instruments every module (the parser's too) for coverage.
SECONDS ?= 60
fuzz-http: deps
	$(SWIFT) build --scratch-path .build-fuzz --product http-fuzz --sanitize=fuzzer --sanitize=address \
		-Xswiftc -sanitize=fuzzer,address
	mkdir -p .build-fuzz/corpus Fuzz/HTTPFuzz/crashes
	.build-fuzz/debug/http-fuzz -max_total_time=$(SECONDS) -max_len=4096 -artifact_prefix=Fuzz/HTTPFuzz/crashes/ \
		.build-fuzz/corpus Fuzz/HTTPFuzz/corpus
