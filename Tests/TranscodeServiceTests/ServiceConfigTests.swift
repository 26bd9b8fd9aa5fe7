import SystemSupport
import Testing
import TranscodeService

@Suite("defaults from the container")
struct ServiceConfigTests {
    @Test("--job-memory's default: 4 GiB, or memory.max less the service's share divided among the workers, at least 256 MiB",
          arguments: [
            (2, nil, 4 << 30), (1, Int64(16) << 30, 4 << 30), (2, Int64(2560) << 20, Int64(1152) << 20),
            (4, Int64(8) << 30, Int64(1984) << 20), (8, Int64(1) << 30, 256 << 20), (0, Int64(1) << 30, Int64(768) << 20),
          ] as [(Int, Int64?, Int64)])
    func defaultJobMemory(workers: Int, memoryMax: Int64?, expected: Int64) {
        #expect(ServiceConfig.defaultJobMemory(workers: workers, memoryMax: memoryMax) == expected)
    }

    @Test("cores and the default workers are the container's, and the start-up line says where they came from")
    func coresFromTheContainer() {
        let read = ContainerLimits.current()
        #expect(ServiceConfig.cores == read.cores)
        #expect(ServiceConfig().workers == read.cores)
        #expect(ServiceConfig().worker.jobMemory == ServiceConfig.defaultJobMemory)
        #expect(ServiceConfig.defaultJobMemory == ServiceConfig.defaultJobMemory(workers: read.cores, memoryMax: read.memoryMax))
        let summary = ServiceConfig().summary
        #expect(summary.contains("cores=\(read.cores) (cpu.max: ") && summary.contains(" memory.max="), "\(summary)")
    }
}
