import CFFmpeg

/// Turns decoded pictures into the encoder's: one filter graph at a time, built from the first picture and again
/// whenever the pictures change shape (size, format, colour tags) or first say they are interlaced. The old graph is
/// drained into the encoder before the new one takes over, so no frame is lost at the switch.
///
/// What it reports has a fixed bound whatever the input does, since it ends up in a response header (behind proxies
/// whose header buffers are a few KiB) and in the worker's report (a 16 KiB message): each stage and each chain is
/// named once, at most `maxNamedStages` and `maxDescribedChains` of them, and the rebuilds are a count.
final class VideoFilter {
    /// Stage names kept for the report. One chain has at most five stages (deinterlace, composite, scale, tone-map
    /// or dither or format, range); eight names cover a stream that switches between two shapes, and a stage name is
    /// at most about 60 bytes (`scale(WxH->WxH)` with 10-digit sizes), so the names take under 512 bytes.
    static let maxNamedStages = 8
    /// Chains kept for the report, each at most about 400 bytes: under 2 KiB in all, well inside the worker's
    /// message.
    static let maxDescribedChains = 4
    /// Rebuilds always allowed: a stream joined from a few sources (broadcast with inserted adverts, concatenated
    /// segments, a resolution switch) changes shape a handful of times.
    static let freeRebuilds = 16
    /// Beyond `freeRebuilds`, the frames each graph must serve on average (one second at 25 fps). A stream that
    /// switches at every adaptive-streaming segment (2 s or more) stays well under it; one that changes shape on
    /// every frame, which no camera or encoder makes, is refused after `freeRebuilds` + 1 frames rather than
    /// building (and draining, which costs the deinterlacer's look-ahead) a graph per frame.
    static let framesPerGraph = 25

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
    /// The stages that ran, each named once, in the order first seen (at most `maxNamedStages`), for the report.
    private(set) var stagesRun: [String] = []
    /// The chains built, each once, in the order first seen (at most `maxDescribedChains`; one unless the pictures
    /// changed mid-stream).
    private(set) var descriptions: [String] = []
    /// Graphs built after the first, one per change of the pictures' shape.
    private(set) var rebuilds = 0
    private var framesIn = 0

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
        framesIn += 1
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
        if plan != nil {
            rebuilds += 1
            if rebuilds > Self.freeRebuilds && rebuilds * Self.framesPerGraph > framesIn {
                throw .corruptInput(
                    "the pictures change shape too often (\(rebuilds) filter graph rebuilds in \(framesIn) frames)")
            }
        }
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
        if !descriptions.contains(made.description) && descriptions.count < Self.maxDescribedChains {
            descriptions.append(made.description)
        }
        for name in made.names where !stagesRun.contains(name) && stagesRun.count < Self.maxNamedStages {
            stagesRun.append(name)
        }
    }

    /// Runs `body`, blaming its failure on the input: the chains are fixed text that every shape of picture they are
    /// built for goes through, so a picture they cannot take (a damaged size or format, colour tags zscale has no path
    /// from) is the input's fault. Running out of memory is not.
    private func inputsFault(picture: PictureShape? = nil, _ body: () throws(TranscodeError) -> Void) throws(TranscodeError) {
        do {
            try body()
        } catch .limitExceeded(.memory) {
            throw .limitExceeded(.memory)
        } catch {
            if case .internal(let code, _) = error, code == shim_averror(ENOMEM) {
                throw JobMemory.isExhausted(code) ? .limitExceeded(.memory) : error
            }
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
