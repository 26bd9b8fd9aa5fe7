import CFFmpeg

/// The demuxer's packets in order, some of them possibly read ahead and held: what the encoder must know before it
/// opens can come from the first frame (HDR10 metadata that only an SEI carries), without seeking back, which not
/// every demuxer does exactly.
final class PacketReader {
    private let demuxer: Demuxer
    private var held: [Packet] = []
    private var next = 0

    init(_ demuxer: Demuxer) { self.demuxer = demuxer }

    /// The next packet into `packet`, held ones first; `av_read_frame`'s status.
    func read(into packet: UnsafeMutablePointer<AVPacket>) -> Int32 {
        guard next < held.count else { return av_read_frame(demuxer.context, packet) }
        av_packet_move_ref(packet, held[next].pointer)
        next += 1
        if next == held.count { (held, next) = ([], 0) }
        return 0
    }

    /// Reads packets ahead and holds them, showing each to `look`, until it answers true, the input ends or
    /// `maxPackets` are held. A read that fails here fails again for the pipeline, which decides what it means.
    func readAhead(
        maxPackets: Int, control: JobControl, _ look: (UnsafeMutablePointer<AVPacket>) throws(TranscodeError) -> Bool
    ) throws(TranscodeError) {
        while held.count < maxPackets {
            try control.checkpoint()
            let packet = try Packet()
            guard av_read_frame(demuxer.context, packet.pointer) >= 0 else { return }
            held.append(packet)
            if try look(packet.pointer) { return }
        }
    }
}
