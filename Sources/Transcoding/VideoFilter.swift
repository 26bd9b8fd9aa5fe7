import CFFmpeg

/// Turns decoded pictures into the encoder's: one filter graph at a time, built from the first picture and again
/// whenever the pictures change shape (size, format, HDR transfer, range) or first say they are interlaced. The old
/// graph is drained into the encoder before the new one takes over, so no frame is lost at the switch.
final class VideoFilter {
    private let target: (width: Int32, height: Int32)
    private let timeBase: AVRational
    private let streamFieldOrder: AVFieldOrder
    private let options: TranscodeOptions
    private let turn: PictureTurn?
    private let outputFormat: AVPixelFormat
    private let finalFilters: String?
    private var graph: FilterGraph?
    private var plan: VideoFilterPlan?
    private var shape: PictureShape?
    private let filtered: Frame
    /// Every stage that ran, in the order first seen, for the report.
    private(set) var stagesRun: [String] = []
    /// The chains built, in order (one unless the pictures changed mid-stream).
    private(set) var descriptions: [String] = []

    init(target: (width: Int32, height: Int32), timeBase: AVRational, streamFieldOrder: AVFieldOrder,
         options: TranscodeOptions, turn: PictureTurn? = nil, outputFormat: AVPixelFormat = AV_PIX_FMT_YUV420P, finalFilters: String? = nil) throws(TranscodeError)
    {
        self.turn = turn
        self.outputFormat = outputFormat
        self.finalFilters = finalFilters
        self.target = target
        self.timeBase = timeBase
        self.streamFieldOrder = streamFieldOrder
        self.options = options
        filtered = try Frame()
    }

    /// Takes `frame`'s reference (the frame is left blank) and passes each picture the graph yields to `emit`, with
    /// its timestamp in the time base given at init.
    func convert(
        _ frame: UnsafeMutablePointer<AVFrame>, emit: (UnsafeMutablePointer<AVFrame>) throws(TranscodeError) -> Void
    ) throws(TranscodeError) {
        let next = PictureShape(frame)
        // A frame that first says interlaced gets a graph that deinterlaces, if the plan would make one for it.
        if graph == nil || !shape!.sameGraph(as: next) || next.interlaced && plan?.deinterlaces == false
            && options.deinterlace == .auto && VideoFilterPlan.canDeinterlace(next)
        {
            if graph != nil { try drain(emit: emit) }
            try build(for: next)
        }
        try inputsFault { () throws(TranscodeError) in try graph!.push(frame) }
        try pull(emit: emit)
    }

    /// Ends the input and passes on what the graph still holds.
    func finish(emit: (UnsafeMutablePointer<AVFrame>) throws(TranscodeError) -> Void) throws(TranscodeError) {
        if graph != nil { try drain(emit: emit) }
    }

    private func build(for next: PictureShape) throws(TranscodeError) {
        let made = VideoFilterPlan(
            for: next, streamFieldOrder: streamFieldOrder, target: target, options: options,
            keepDeinterlacing: plan?.deinterlaces ?? false, turn: turn, outputFormat: outputFormat,
            finalFilters: finalFilters)
        graph = nil
        try inputsFault(picture: next) { () throws(TranscodeError) in
            graph = try FilterGraph(made.description, input: next, timeBase: timeBase, threads: options.threads)
        }
        plan = made
        shape = next
        descriptions.append(made.description)
        for name in made.names where !stagesRun.contains(name) { stagesRun.append(name) }
    }

    /// Runs `body`, blaming its failure on the input: the chains are fixed text that every shape of picture they are
    /// built for goes through, so a picture they cannot take (a damaged size or format, colour tags zscale has no path
    /// from) is the input's fault. Running out of memory is not.
    private func inputsFault(picture: PictureShape? = nil, _ body: () throws(TranscodeError) -> Void) throws(TranscodeError) {
        do {
            try body()
        } catch {
            if case .internal(let code, _) = error, code == shim_averror(ENOMEM) { throw error }
            let what = (picture ?? shape).map { "a decoded \($0.width)x\($0.height) \($0.formatName) picture" } ?? "a picture"
            throw .corruptInput("\(what) cannot be converted (\(error))")
        }
    }

    private func drain(emit: (UnsafeMutablePointer<AVFrame>) throws(TranscodeError) -> Void) throws(TranscodeError) {
        try inputsFault { () throws(TranscodeError) in try graph!.push(nil) }
        try pull(emit: emit)
        graph = nil
    }

    private func pulled(_ graph: FilterGraph) throws(TranscodeError) -> Bool {
        var got = false
        try inputsFault { () throws(TranscodeError) in got = try graph.pull(into: filtered.pointer) }
        return got
    }

    private func pull(emit: (UnsafeMutablePointer<AVFrame>) throws(TranscodeError) -> Void) throws(TranscodeError) {
        let graph = graph!
        let outputBase = graph.outputTimeBase
        let rescale = av_cmp_q(outputBase, timeBase) != 0
        while try pulled(graph) {
            defer { av_frame_unref(filtered.pointer) }
            if rescale, let pts = saneTimestamp(filtered.pointer.pointee.pts) {
                filtered.pointer.pointee.pts = av_rescale_q(pts, outputBase, timeBase)
            }
            try emit(filtered.pointer)
        }
    }
}
