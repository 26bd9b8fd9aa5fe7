import CFFmpeg
import TestSupport
import Testing
@testable import Transcoding

/// The stages a picture shape needs, and the `-vf` text they make.
@Suite("the filter plan: each stage only where needed, as text ffmpeg -vf takes")
struct FilterPlanTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let shape: PictureShape
        var fieldOrder = AV_FIELD_PROGRESSIVE
        var target: (width: Int32, height: Int32)? = nil
        var hdr = TranscodeOptions.HDR.tonemap
        var deinterlace = TranscodeOptions.Deinterlace.auto
        let stages: [String]
        let chain: String
        var testDescription: String { name }

        var plan: VideoFilterPlan {
            var options = TranscodeOptions()
            options.hdr = hdr
            options.deinterlace = deinterlace
            return VideoFilterPlan(
                for: shape, streamFieldOrder: fieldOrder, target: target ?? (shape.width, shape.height), options: options)
        }
    }

    static let toneMap =
        "zscale=t=linear:npl=100:p=bt709,format=gbrpf32le,tonemap=tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv:d=error_diffusion"

    static let cases: [Case] = [
        Case(name: "8-bit SDR 4:2:0, progressive: nothing", shape: PictureShape(width: 320, height: 240, format: AV_PIX_FMT_YUV420P),
             stages: [], chain: "format=yuv420p"),
        Case(name: "frames that say interlaced", shape: PictureShape(width: 320, height: 240, format: AV_PIX_FMT_YUV420P, interlaced: true, topFieldFirst: true),
             stages: ["bwdif"], chain: "bwdif=mode=send_frame:parity=auto:deint=interlaced,format=yuv420p"),
        Case(name: "a stream that says bottom field first, frames that do not", shape: PictureShape(width: 320, height: 240, format: AV_PIX_FMT_YUV420P),
             fieldOrder: AV_FIELD_BB, stages: ["bwdif"], chain: "bwdif=mode=send_frame:parity=bff:deint=all,format=yuv420p"),
        Case(name: "interlaced, deinterlace=off", shape: PictureShape(width: 320, height: 240, format: AV_PIX_FMT_YUV420P, interlaced: true),
             fieldOrder: AV_FIELD_TT, deinterlace: .off, stages: [], chain: "format=yuv420p"),
        Case(name: "HLG scaled down", shape: PictureShape(width: 640, height: 360, format: AV_PIX_FMT_YUV420P10LE, transfer: AVCOL_TRC_ARIB_STD_B67, primaries: AVCOL_PRI_BT2020, matrix: AVCOL_SPC_BT2020_NCL),
             target: (320, 180), stages: ["scale(640x360->320x180)", "tonemap(hlg->bt709)"],
             chain: "scale=w=320:h=180," + toneMap + ",format=yuv420p"),
        Case(name: "PQ without primaries or matrix tags", shape: PictureShape(width: 320, height: 240, format: AV_PIX_FMT_YUV420P10LE, transfer: AVCOL_TRC_SMPTE2084, primaries: AVCOL_PRI_UNSPECIFIED, matrix: AVCOL_SPC_UNSPECIFIED),
             stages: ["tonemap(pq->bt709)"],
             chain: toneMap.replacingOccurrences(of: "p=bt709,", with: "p=bt709:pin=2020:min=2020_ncl,") + ",format=yuv420p"),
        Case(name: "HLG, hdr=keep", shape: PictureShape(width: 320, height: 240, format: AV_PIX_FMT_YUV420P10LE, transfer: AVCOL_TRC_ARIB_STD_B67, primaries: AVCOL_PRI_BT2020, matrix: AVCOL_SPC_BT2020_NCL),
             hdr: .keep, stages: ["dither(10->8)"], chain: "zscale=d=error_diffusion,format=yuv420p"),
        Case(name: "10-bit full range 4:2:2", shape: PictureShape(width: 320, height: 240, format: AV_PIX_FMT_YUV422P10LE, range: AVCOL_RANGE_JPEG),
             stages: ["dither(10->8)", "range(pc->tv)"], chain: "zscale=d=error_diffusion:r=tv,format=yuv420p"),
        Case(name: "MJPEG's yuvj420p at an odd size", shape: PictureShape(width: 321, height: 241, format: AV_PIX_FMT_YUVJ420P, range: AVCOL_RANGE_JPEG),
             target: (320, 240), stages: ["scale(321x241->320x240)", "range(pc->tv)"], chain: "scale=w=320:h=240:out_range=tv,format=yuv420p"),
        Case(name: "8-bit 4:2:2", shape: PictureShape(width: 320, height: 240, format: AV_PIX_FMT_YUV422P),
             stages: ["format(yuv422p->yuv420p)"], chain: "format=yuv420p"),
        Case(name: "GIF's BGRA", shape: PictureShape(width: 96, height: 64, format: AV_PIX_FMT_BGRA),
             stages: ["composite(white)", "format(bgra->yuv420p)"],
             chain: "format=gbrap,negate,premultiply=inplace=1,negate,scale=out_color_matrix=bt709:out_range=tv,format=yuv420p"),
        Case(name: "interlaced, alpha, scaled: in that order", shape: PictureShape(width: 640, height: 480, format: AV_PIX_FMT_YUVA420P, interlaced: true),
             target: (320, 240), stages: ["bwdif", "composite(white)", "scale(640x480->320x240)", "format(yuva420p->yuv420p)"],
             chain: "bwdif=mode=send_frame:parity=auto:deint=interlaced,format=gbrap,negate,premultiply=inplace=1,negate,"
                 + "scale=w=320:h=240:out_color_matrix=bt709:out_range=tv,format=yuv420p"),
    ]

    @Test("the stages and the chain", arguments: cases)
    func plan(_ example: Case) {
        let plan = example.plan
        #expect(plan.names == example.stages)
        #expect(plan.description == example.chain)
    }

    /// A source filter of `shape`'s size, format, colour tags and field order. It goes in the same graph as the chain:
    /// through `-f lavfi -i`, frames would lose their colour tags on the way.
    static func source(_ shape: PictureShape) -> String {
        func name(_ text: UnsafePointer<CChar>?) -> String { text.map { String(cString: $0) } ?? "unknown" }
        return "testsrc2=size=\(shape.width)x\(shape.height):rate=25:duration=0.2,format=\(shape.formatName),"
            + "setparams=field_mode=\(shape.interlaced ? "tff" : "prog"):range=\(shape.isFullRange ? "pc" : "tv")"
            + ":color_trc=\(name(av_color_transfer_name(shape.transfer)))"
            + ":color_primaries=\(name(av_color_primaries_name(shape.primaries)))"
            + ":colorspace=\(name(av_color_space_name(shape.matrix)))"
    }

    /// One case at a time, one thread each: the rest of the test run shares the machine.
    @Test("ffmpeg -vf takes every chain as it is and makes yuv420p at the target size", .enabled(if: FFmpegCLI.available),
          .serialized, arguments: cases)
    func pastesIntoTheCLI(_ example: Case) throws {
        let target = example.target ?? (example.shape.width, example.shape.height)
        let result = try run(FFmpegCLI.path!, [
            "-nostdin", "-v", "error", "-filter_complex_threads", "1",
            "-filter_complex", Self.source(example.shape) + "," + example.plan.description,
            "-f", "framecrc", "-",
        ])
        #expect(result.status == 0, "\(result.err)")
        // framecrc: stream, dts, pts, duration, size, checksum.
        let first = result.out.split(separator: "\n").first { !$0.hasPrefix("#") }
        let size = first.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }?[4]
        #expect(size == String(Int(target.width) * Int(target.height) * 3 / 2), "\(result.out.prefix(300))")
    }

    @Test("a graph is rebuilt for another size, format, aspect or colour tag (primaries, transfer, matrix, range), not for field flags")
    func sameGraph() {
        let base = PictureShape(width: 320, height: 240, format: AV_PIX_FMT_YUV420P)
        var interlaced = base
        interlaced.interlaced = true
        interlaced.topFieldFirst = true
        #expect(base.sameGraph(as: interlaced))
        var changes: [PictureShape] = []
        for change in [
            { (s: inout PictureShape) in s.width = 322 }, { $0.height = 242 }, { $0.format = AV_PIX_FMT_YUV422P },
            { $0.sampleAspect = AVRational(num: 4, den: 3) },
            { $0.transfer = AVCOL_TRC_ARIB_STD_B67 }, { $0.transfer = AVCOL_TRC_SMPTE170M },
            { $0.primaries = AVCOL_PRI_BT470BG }, { $0.matrix = AVCOL_SPC_BT470BG }, { $0.range = AVCOL_RANGE_JPEG },
        ] as [(inout PictureShape) -> Void] {
            var changed = base
            change(&changed)
            changes.append(changed)
        }
        for changed in changes { #expect(!base.sameGraph(as: changed)) }
    }

    @Test("hdr and deinterlace take their documented values and refuse others, naming them",
          arguments: [("hdr", "bright", "hdr must be tonemap or keep, not 'bright'"),
                      ("deinterlace", "yes", "deinterlace must be auto or off, not 'yes'")])
    func parse(name: String, value: String, message: String) throws {
        #expect(throws: TranscodeError.invalidOption(message)) {
            if name == "hdr" { _ = try TranscodeOptions.parse(name, value, as: TranscodeOptions.HDR.self) }
            else { _ = try TranscodeOptions.parse(name, value, as: TranscodeOptions.Deinterlace.self) }
        }
        #expect(try TranscodeOptions.parse("hdr", "keep") == TranscodeOptions.HDR.keep)
        #expect(try TranscodeOptions.parse("deinterlace", "off") == TranscodeOptions.Deinterlace.off)
    }

    @Test("a chain libavfilter cannot parse or configure is a typed error, and the graph is freed with the filters it had made")
    func refusedChain() {
        let shape = PictureShape(width: 320, height: 240, format: AV_PIX_FMT_YUV420P)
        // The filters in each graph when it was freed: one entry per graph freed.
        var freed: [UInt32] = []
        let watch = { (graph: UnsafeMutablePointer<AVFilterGraph>) in
            freed.append(graph.pointee.nb_filters)
            FilterGraph.free(graph)
        }
        // With the filters left in the graph when it was freed: none where parsing failed (avfilter_graph_parse_ptr
        // frees the source and sink too), all of them (source, chain, sink) where configuring did.
        for (chain, filters) in [("no_such_filter", 0), ("crop=w=9999:h=9999,format=yuv420p", 4),
                                 ("format=yuv420p[dangling]", 3)] as [(String, UInt32)] {
            freed = []
            #expect {
                _ = try FilterGraph(chain, input: shape, timeBase: AVRational(num: 1, den: 25), threads: 1, free: watch)
            } throws: { error in
                guard case .internal(_, let message) = error as? TranscodeError else { return false }
                return message.contains(chain)
            }
            #expect(freed == [filters], "\(chain): the graph is freed once, with what it held")
        }
        freed = []
        var graph = try? FilterGraph("format=yuv420p", input: shape, timeBase: AVRational(num: 1, den: 25), threads: 1,
                                     free: watch)
        #expect(graph != nil && freed.isEmpty)
        graph = nil
        #expect(freed == [3], "source, format and sink, freed once with the graph")
    }
}
