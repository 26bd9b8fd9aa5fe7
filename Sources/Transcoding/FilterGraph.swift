import CFFmpeg

/// One libavfilter graph for one job's video: buffersrc → the chain parsed from `description` → buffersink, as
/// FFmpeg's doc/examples/filtering_video.c builds it. Frames are pushed in and pulled out until EAGAIN or EOF.
///
/// The graph owns its filter contexts (the source and the sink among them) and frees them with itself; this class owns
/// the graph and frees it in `deinit`, its one cleanup point. libav keeps no pointer of ours.
final class FilterGraph {
    private let graph: UnsafeMutablePointer<AVFilterGraph>
    private let free: (UnsafeMutablePointer<AVFilterGraph>) -> Void
    // Borrowed from `graph`, which frees them; set once in `init`.
    private var source: UnsafeMutablePointer<AVFilterContext>? = nil
    private var sink: UnsafeMutablePointer<AVFilterContext>? = nil

    /// A graph running `description` (the chain as `ffmpeg -vf` takes it) for pictures of `input`'s size, format and
    /// aspect ratio, in `timeBase`; `threads` 0: one per core. `free` frees the graph (tests watch it through this).
    init(
        _ description: String, input: PictureShape, timeBase: AVRational, threads: Int,
        free: @escaping (UnsafeMutablePointer<AVFilterGraph>) -> Void = FilterGraph.free
    ) throws(TranscodeError) {
        guard let graph = avfilter_graph_alloc() else {
            throw .allocationFailed("avfilter_graph_alloc")
        }
        self.graph = graph
        self.free = free
        // From here a throw runs deinit, which frees the graph and whatever was added to it.
        graph.pointee.nb_threads = Int32(threads)

        let aspect = input.sampleAspect.num > 0 && input.sampleAspect.den > 0 ? input.sampleAspect : AVRational(num: 0, den: 1)
        let arguments = "video_size=\(input.width)x\(input.height):pix_fmt=\(input.format.rawValue)"
            + ":time_base=\(timeBase.num)/\(timeBase.den):pixel_aspect=\(aspect.num)/\(aspect.den)"
        try check(avfilter_graph_create_filter(&source, avfilter_get_by_name("buffer"), "in", arguments, nil, graph),
                  "creating the buffer source")
        try check(avfilter_graph_create_filter(&sink, avfilter_get_by_name("buffersink"), "out", nil, nil, graph),
                  "creating the buffer sink")

        // The chain's unlabelled input is fed by the source, its unlabelled output feeds the sink. Parsing links what
        // it can and leaves in both lists what stays open; whatever they hold then is freed here.
        var outputs = avfilter_inout_alloc()
        var inputs = avfilter_inout_alloc()
        defer {
            avfilter_inout_free(&outputs)
            avfilter_inout_free(&inputs)
        }
        guard let fedBySource = outputs, let feedingSink = inputs else {
            throw .allocationFailed("avfilter_inout_alloc")
        }
        fedBySource.pointee.name = av_strdup("in")
        fedBySource.pointee.filter_ctx = source
        fedBySource.pointee.pad_idx = 0
        feedingSink.pointee.name = av_strdup("out")
        feedingSink.pointee.filter_ctx = sink
        feedingSink.pointee.pad_idx = 0
        try check(avfilter_graph_parse_ptr(graph, description, &inputs, &outputs, nil),
                  "parsing the filter graph '\(description)'")
        try check(avfilter_graph_config(graph, nil), "configuring the filter graph '\(description)'")
    }

    /// A graph that cannot be built or fed is not an I/O failure, whatever errno libav borrowed for it.
    private func check(_ code: Int32, _ what: @autoclosure () -> String) throws(TranscodeError) {
        if code < 0 { throw .internal(averror: code, message: "\(what()): \(averrorText(code))") }
    }

    deinit { free(graph) }

    /// Frees `graph` and every filter context in it.
    static func free(_ graph: UnsafeMutablePointer<AVFilterGraph>) {
        var freeing: UnsafeMutablePointer<AVFilterGraph>? = graph
        avfilter_graph_free(&freeing)
    }

    /// The time base of the frames `pull` returns.
    var outputTimeBase: AVRational { av_buffersink_get_time_base(sink) }

    /// Hands `frame`'s reference to the graph (the frame is left blank); nil marks the end of the input.
    func push(_ frame: UnsafeMutablePointer<AVFrame>?) throws(TranscodeError) {
        try check(av_buffersrc_add_frame_flags(source, frame, 0), "filtering video")
    }

    /// Fills `frame` with the next filtered picture and answers true, or answers false when the graph needs more input
    /// (or has ended).
    func pull(into frame: UnsafeMutablePointer<AVFrame>) throws(TranscodeError) -> Bool {
        let status = av_buffersink_get_frame(sink, frame)
        if status == shim_averror_eagain() || status == shim_averror_eof() { return false }
        try check(status, "filtering video")
        return true
    }
}
