// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "ffmpeg-processor",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ffmpeg-processor", targets: ["ffmpeg-processor"]),
        .executable(name: "harness", targets: ["harness"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        // HMAC-SHA256 for signed webhooks (Jobs/WebhookSigner.swift): no cryptography of our own.
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"4.0.0"),
        // Reads docs/openapi.yaml in APIDocumentTests; never linked into the service.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // What Glibc does not export to Swift: epoll, eventfd, timerfd, signalfd, sendfile, splice, O_TMPFILE,
        // SCM_RIGHTS, posix_spawn's file actions, prctl, fork, wait status macros.
        .target(name: "CLinux"),
        // FFmpeg's C libraries through pkg-config; shim.h wraps the macros Swift cannot import.
        .systemLibrary(
            name: "CFFmpeg",
            pkgConfig: "libavformat libavcodec libavutil libswscale libswresample libavfilter",
            providers: [.apt([
                "libavformat-dev", "libavcodec-dev", "libavutil-dev", "libswscale-dev", "libswresample-dev",
                "libavfilter-dev",
            ])]
        ),
        // libseccomp, for the worker processes' system-call filter (WorkerIsolation/SeccompPolicy.swift).
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        // The one syscall wrapper (EINTR, EAGAIN, named errnos), Locked, descriptor ownership, the monotonic clock:
        // what every other Swift target builds on.
        .target(
            name: "SystemSupport",
            dependencies: ["CLinux", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .target(
            name: "HTTPServer",
            dependencies: ["SystemSupport", "CLinux", .product(name: "HTTPTypes", package: "swift-http-types")],
            // Connection state is confined to its loop thread; the runtime's dynamic exclusivity checks on it cost
            // a few percent of a small request. Static exclusivity checking still applies.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .target(name: "Transcoding", dependencies: ["SystemSupport", "CFFmpeg", "CLinux"]),
        // Generated clips for the tests, the harness and the fuzzers; never linked into the service.
        .target(name: "MediaFixtures", dependencies: ["Transcoding", "CFFmpeg"], path: "Tests/MediaFixtures"),
        // The sandboxed worker processes: the warm template, a fresh child per job, their protocol over SCM_RIGHTS,
        // the seccomp policy and rlimits, and what a process's end means for its job. Knows nothing of HTTP.
        .target(name: "WorkerIsolation", dependencies: ["Transcoding", "SystemSupport", "CLinux", "CSeccomp"]),
        // Split-and-stitch: a long upload planned at keyframes, cut by stream copy, its segments encoded by whoever
        // the service names (its pool), stitched with the audio encoded once. Knows nothing of routes.
        .target(name: "SplitStitch", dependencies: ["Transcoding", "SystemSupport"]),
        // Async jobs: the registry, progress and events, results on disk with a TTL and a byte budget. Knows nothing of
        // HTTP or libav.
        .target(name: "Jobs", dependencies: ["SystemSupport", .product(name: "Crypto", package: "swift-crypto")]),
        .target(
            name: "TranscodeService",
            dependencies: [
                "Transcoding", "WorkerIsolation", "HTTPServer", "Jobs", "SystemSupport", "CLinux", "SplitStitch",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "ffmpeg-processor",
            dependencies: [
                "SplitStitch", "Transcoding", "TranscodeService", "WorkerIsolation", "SystemSupport", "Jobs",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The load-test harness: its client, runner and report live in a library so tests drive them directly.
        .target(
            name: "HarnessCore",
            dependencies: [
                "HTTPServer", "Transcoding", "MediaFixtures", "SystemSupport", "CLinux",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Harness/Core"
        ),
        .executableTarget(
            name: "harness",
            dependencies: [
                "HarnessCore", "SystemSupport", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Harness",
            exclude: ["Core"]
        ),
        .executableTarget(
            name: "transcode-bench",
            dependencies: ["Transcoding", "MediaFixtures", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Benchmarks/TranscodeBench"
        ),
        // Regressions/ holds inputs the tests read by path, not resources to bundle.
        .testTarget(
            name: "TranscodingTests",
            dependencies: ["Transcoding", "MediaFixtures", "SystemSupport", "CFFmpeg", "CLinux", "TestSupport"],
            exclude: ["Regressions"]),
        .target(name: "TestSupport", dependencies: ["SystemSupport"], path: "Tests/TestSupport"),
        .testTarget(name: "JobsTests", dependencies: ["Jobs", "SystemSupport", "TestSupport"]),
        .testTarget(name: "SystemSupportTests", dependencies: ["SystemSupport", "TestSupport"]),
        .testTarget(name: "WorkerIsolationTests", dependencies: ["WorkerIsolation", "Transcoding", "SystemSupport", "CLinux", "TestSupport"]),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer", "SystemSupport", "CLinux", "TestSupport"]),
        .testTarget(
            name: "TranscodeServiceTests",
            dependencies: ["TranscodeService", "SplitStitch", "WorkerIsolation", "Transcoding", "MediaFixtures", "HTTPServer",
                           "SystemSupport", "TestSupport", "CLinux", "Jobs",
                           .product(name: "Logging", package: "swift-log")]
        ),
        // docs/openapi.yaml against a running service, in both directions.
        .testTarget(
            name: "APIDocumentTests",
            dependencies: ["TranscodeService", "WorkerIsolation", "Transcoding", "MediaFixtures", "TestSupport",
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "Yams", package: "Yams")]
        ),
        .testTarget(
            name: "HarnessTests",
            dependencies: ["HarnessCore", "Transcoding", "MediaFixtures", "SystemSupport", "TestSupport", "CLinux"]
        ),
        .executableTarget(
            name: "media-fuzz",
            dependencies: ["Transcoding", "MediaFixtures", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Fuzz/MediaFuzz"
        ),
        // libFuzzer target (`make fuzz-http`). It reaches the internal parser with @testable, which only debug
        // builds allow; release builds get a stub.
        .executableTarget(
            name: "http-fuzz", dependencies: ["HTTPServer"], path: "Fuzz/HTTPFuzz", exclude: ["corpus"],
            swiftSettings: [.define("FUZZING", .when(configuration: .debug))]
        ),
        // Fixed small JSON on GET /about for scripts/bench-http.sh (wrk against it and nginx).
        .executableTarget(
            name: "http-bench-server",
            dependencies: ["HTTPServer", "SystemSupport", "CLinux", .product(name: "HTTPTypes", package: "swift-http-types")],
            path: "Benchmarks/http-bench-server"
        ),
    ],
    swiftLanguageModes: [.v6]
)
