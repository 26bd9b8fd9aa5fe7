import Glibc

/// Whether this test binary runs under ThreadSanitizer (`make test-tsan`): its shadow memory and per-thread state
/// make resident-memory figures meaningless, so tests that bound memory keep only the bounds that still hold.
public let threadSanitizerIsActive: Bool = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__tsan_init") != nil
