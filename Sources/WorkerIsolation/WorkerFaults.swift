import Glibc
import SystemSupport
import Transcoding

/// Faults a worker process injects into itself on request, for the tests that show its limits hold: they need
/// the child's cooperation, which no signal sent from outside can give.
///
/// Unreachable from a request in two ways: the hooks exist only in debug builds (`#if DEBUG`: a release binary
/// has no code that reads the marker or injects a fault), and even there only in a worker started with `FFMPEG_PROCESSOR_WORKER_FAULTS=1` in its
/// environment, which only the tests set. Then a job whose input starts with `FFMPEG-PROCESSOR-FAULT <name>` runs
/// the fault instead of a transcode; any other input is transcoded as usual.
struct WorkerFaults {
    /// Debug builds: `FFMPEG_PROCESSOR_WORKER_UNCONFINED=1` leaves the seccomp filter out, for
    /// scripts/seccomp-measure.sh (the rest of the sandbox stays).
    var unconfined = false
    private var enabled = false

    enum Fault: String {
        /// Allocates until malloc fails: the job answers "out of memory" if RLIMIT_AS holds.
        case allocate
        /// Opens /etc/passwd: refused with EACCES if the filter holds (the process lives on).
        case open
        /// Creates a TCP socket: the filter kills the process (SIGSYS) if it holds.
        case socket
        /// Answers for another job's id: the parent must refuse the answer.
        case wrongID
        /// Sends the job's output descriptor back with its answer: the parent must refuse the answer.
        case descriptors
        /// Sends a message before its answer: `ready` again, which no job's process may send once it has a job.
        case extra
        /// Makes a writable page executable, as an exploit running code it wrote would: W^X kills the process
        /// (SIGSYS) if it holds.
        case exec
    }

    static let marker = "FFMPEG-PROCESSOR-FAULT "

    static func fromEnvironment() -> WorkerFaults {
        var faults = WorkerFaults()
        #if DEBUG
        faults.enabled = getenv("FFMPEG_PROCESSOR_WORKER_FAULTS").map { String(cString: $0) } == "1"
        faults.unconfined = getenv("FFMPEG_PROCESSOR_WORKER_UNCONFINED").map { String(cString: $0) } == "1"
        #endif
        return faults
    }

    #if DEBUG
    /// The fault the input asks for, if hooks are on.
    func fault(in input: Int32) -> Fault? {
        guard enabled else { return nil }
        var head = [UInt8](repeating: 0, count: 64)
        guard let count = try? syscallValue("pread", { pread(input, &head, head.count, 0) }) else { return nil }
        let text = String(decoding: head.prefix(count), as: UTF8.self)
        guard text.hasPrefix(Self.marker) else { return nil }
        let name = text.dropFirst(Self.marker.count).prefix { $0.isLetter }
        return Fault(rawValue: String(name))
    }
    #endif
}

#if DEBUG
extension WorkerFaults.Fault {
    /// For the faults that lie to the parent, what the child sends instead of its answer.
    func lie(id: UInt64, output: Int32) -> (message: WorkerMessage, descriptors: [Int32])? {
        switch self {
        case .wrongID: (.finished(id: id + 1, .failed(.cancelled)), [])
        case .descriptors: (.finished(id: id, .failed(.cancelled)), [output])
        case .extra: (.ready, [])
        default: nil
        }
    }

    func inject(jobMemory: Int64?) -> WorkerOutcome {
        switch self {
        case .allocate:
            // Blocks of 16 MiB, each touched, until malloc says no; the list lives in one block allocated first,
            // so that nothing else needs memory once the limit is near.
            let block = 16 << 20
            let capacity = 4096
            let blocks = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: capacity)
            defer { blocks.deallocate() }
            var count = 0
            while count < capacity, let pointer = malloc(block) {
                memset(pointer, 1, block)
                blocks[count] = pointer
                count += 1
            }
            for index in 0..<count { free(blocks[index]) }
            let allocated = Int64(count) * Int64(block)
            if let jobMemory, allocated <= jobMemory { return .outOfMemory }
            return .failed(.internal(averror: 0, message: "the memory limit did not hold: \(allocated) bytes allocated"))
        case .open:
            do {
                let opened = try syscallValue("open") { Glibc.open("/etc/passwd", O_RDONLY) }
                closeDescriptor(opened)
                return .failed(.internal(averror: 0, message: "the filter did not hold: /etc/passwd was opened"))
            } catch {
                return .failed(.internal(averror: 0, message: "opening /etc/passwd was refused: \(error.errno)"))
            }
        case .socket:
            let created = try? syscallValue("socket") { Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0) }
            if let created { closeDescriptor(created) }
            return .failed(.internal(averror: 0, message: "the filter did not hold: socket answered \(created ?? -1)"))
        case .wrongID, .descriptors, .extra:
            return .failed(.internal(averror: 0, message: "a lie is sent in place of the answer"))
        case .exec:
            let size = Int(sysconf(Int32(_SC_PAGESIZE)))
            guard let page = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                page != MAP_FAILED
            else { return .failed(.internal(averror: 0, message: "mmap of a writable page failed")) }
            let status = mprotect(page, size, PROT_READ | PROT_EXEC)
            return .failed(.internal(averror: 0, message: "the filter did not hold: mprotect(PROT_EXEC) answered \(status)"))
        }
    }
}
#endif
