import CFFmpeg

/// What the decoder says of a picture, as far as the filter graph cares: a graph is built for one shape and built
/// again when the pictures change it.
struct PictureShape {
    var width: Int32
    var height: Int32
    var format: AVPixelFormat
    var sampleAspect: AVRational
    var transfer: AVColorTransferCharacteristic
    var primaries: AVColorPrimaries
    var matrix: AVColorSpace
    var range: AVColorRange
    /// The frame says it holds two fields.
    var interlaced: Bool
    var topFieldFirst: Bool

    init(
        width: Int32, height: Int32, format: AVPixelFormat, sampleAspect: AVRational = AVRational(num: 1, den: 1),
        transfer: AVColorTransferCharacteristic = AVCOL_TRC_BT709, primaries: AVColorPrimaries = AVCOL_PRI_BT709,
        matrix: AVColorSpace = AVCOL_SPC_BT709, range: AVColorRange = AVCOL_RANGE_MPEG, interlaced: Bool = false,
        topFieldFirst: Bool = false
    ) {
        (self.width, self.height, self.format, self.sampleAspect) = (width, height, format, sampleAspect)
        (self.transfer, self.primaries, self.matrix, self.range) = (transfer, primaries, matrix, range)
        (self.interlaced, self.topFieldFirst) = (interlaced, topFieldFirst)
    }

    init(_ frame: UnsafePointer<AVFrame>) {
        width = frame.pointee.width
        height = frame.pointee.height
        format = AVPixelFormat(rawValue: frame.pointee.format)
        sampleAspect = frame.pointee.sample_aspect_ratio
        transfer = frame.pointee.color_trc
        primaries = frame.pointee.color_primaries
        matrix = frame.pointee.colorspace
        range = frame.pointee.color_range
        interlaced = frame.pointee.interlaced_frame != 0
        topFieldFirst = frame.pointee.top_field_first != 0
    }

    /// Whether a graph built for `self` also suits `other`: the same size, format and aspect, and the same colour tags
    /// (primaries, transfer, matrix, range). The tags count because the graph is configured from the first picture
    /// it gets: libavfilter 8's buffer source carries no colour properties, so a scaler or zscale set up for one
    /// matrix or range goes on converting with it, and the plan itself changes with them (tone mapping for an HDR
    /// transfer, the BT.2020 defaults for untagged primaries, the range conversion). Field flags are left out: a graph
    /// that deinterlaces keeps doing so, and the pipeline adds one when a frame first says it is interlaced.
    func sameGraph(as other: PictureShape) -> Bool {
        width == other.width && height == other.height && format == other.format
            && av_cmp_q(sampleAspect, other.sampleAspect) == 0 && transfer == other.transfer
            && primaries == other.primaries && matrix == other.matrix && range == other.range
    }

    var descriptor: UnsafePointer<AVPixFmtDescriptor>? { av_pix_fmt_desc_get(format) }
    var formatName: String { av_get_pix_fmt_name(format).map { String(cString: $0) } ?? "format \(format.rawValue)" }
    /// Bits per sample of the first component.
    var depth: Int32 { descriptor.map { $0.pointee.comp.0.depth } ?? 8 }
    var hasAlpha: Bool { descriptor.map { $0.pointee.flags & UInt64(AV_PIX_FMT_FLAG_ALPHA) != 0 } ?? false }
    /// RGB, or a palette of RGB colours (GIF).
    var isRGB: Bool {
        descriptor.map { $0.pointee.flags & UInt64(AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL) != 0 } ?? false
    }
    /// Full ("PC", JPEG) range YUV: said by the frame, or by a yuvj format.
    var isFullRange: Bool {
        switch format {
        case AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_YUVJ422P, AV_PIX_FMT_YUVJ444P, AV_PIX_FMT_YUVJ440P, AV_PIX_FMT_YUVJ411P: true
        default: range == AVCOL_RANGE_JPEG && !isRGB
        }
    }
}

/// The HDR transfers the tone mapper handles, named as the report names them.
enum HDRTransfer: String {
    case pq, hlg

    init?(_ transfer: AVColorTransferCharacteristic) {
        switch transfer {
        case AVCOL_TRC_SMPTE2084: self = .pq
        case AVCOL_TRC_ARIB_STD_B67: self = .hlg
        default: return nil
        }
    }
}

/// The stages one picture shape needs on its way to the encoder's yuv420p, each only where needed, in order:
/// deinterlace, composite transparency, scale, tone-map or dither, the range and format conversions, then a turn. The chain
/// is text that `ffmpeg -vf` takes as it is, so a reader can reproduce any job's conversion with the CLI.
struct VideoFilterPlan: Equatable {
    struct Stage: Equatable {
        /// How the report names the stage, e.g. `tonemap(hlg->bt709)`.
        var name: String
        /// The filters, comma-separated.
        var filters: String
    }

    var stages: [Stage]
    /// yuv420p; yuv420p10le for HDR kept in 10 bits (`hdr=keep` with HEVC, AV1 or VP9); a poster's image format.
    var outputFormat: AVPixelFormat
    /// Filters just before the output format, for outputs with colour rules of their own (a JPEG's BT.601 matrix).
    var finalFilters: String?
    var outputFormatName: String { av_get_pix_fmt_name(outputFormat).map { String(cString: $0) } ?? "yuv420p" }

    /// The background that transparent pixels are composited onto: white, the initial background of a web page, so
    /// that a transparent GIF looks as it did on a plain page.
    static let compositeBackground = "white"

    /// The whole chain, ending with the always-on output format.
    var description: String {
        (stages.map(\.filters).filter { !$0.isEmpty } + [finalFilters, "format=\(outputFormatName)"].compactMap { $0 })
            .joined(separator: ",")
    }
    /// The stages' names for the report.
    var names: [String] { stages.map(\.name) }
    var deinterlaces: Bool { stages.contains { $0.name == "bwdif" } }

    /// bwdif needs a few lines and columns around each pixel it makes; smaller pictures are left as they are.
    static func canDeinterlace(_ shape: PictureShape) -> Bool { shape.width >= 3 && shape.height >= 4 }

    /// - Parameters:
    ///   - streamFieldOrder: what the container or codec says of the stream's fields.
    ///   - keepDeinterlacing: the graph this one replaces deinterlaced, so this one does too, whatever the frame says.
    init(
        for shape: PictureShape, streamFieldOrder: AVFieldOrder, target: (width: Int32, height: Int32),
        options: TranscodeOptions, keepDeinterlacing: Bool = false, turn: PictureTurn? = nil,
        outputFormat: AVPixelFormat = AV_PIX_FMT_YUV420P, finalFilters: String? = nil
    ) {
        stages = []
        self.outputFormat = outputFormat
        self.finalFilters = finalFilters
        let keepsDepth = (av_pix_fmt_desc_get(outputFormat).map { $0.pointee.comp.0.depth } ?? 8) > 8
        let streamInterlaced = [AV_FIELD_TT, AV_FIELD_BB, AV_FIELD_TB, AV_FIELD_BT].contains(streamFieldOrder)
        if options.deinterlace == .auto, shape.interlaced || streamInterlaced || keepDeinterlacing,
            Self.canDeinterlace(shape)
        {
            // One frame out per frame in, so that frame count and timing stay. Frames that say whether they are
            // interlaced are trusted (`deint=interlaced`, parity from each frame); a stream that says so while its frames
            // do not is deinterlaced whole, in the field order it declares.
            let filters =
                shape.interlaced || !streamInterlaced
                ? "bwdif=mode=send_frame:parity=auto:deint=interlaced"
                : "bwdif=mode=send_frame:parity=\([AV_FIELD_BB, AV_FIELD_BT].contains(streamFieldOrder) ? "bff" : "tff"):deint=all"
            stages.append(Stage(name: "bwdif", filters: filters))
        }
        if shape.hasAlpha {
            // Compositing over white is 1 - (1 - colour) × alpha: premultiplying by alpha composites over black, so it
            // is done on the negative. negate leaves the alpha plane alone.
            stages.append(Stage(name: "composite(\(Self.compositeBackground))",
                                filters: "format=gbrap,negate,premultiply=inplace=1,negate"))
        }
        var scale: [String] = []
        if shape.width != target.width || shape.height != target.height {
            // swscale's default (bicubic), as the CLI's scale filter has it.
            scale.append("w=\(target.width):h=\(target.height)")
            stages.append(Stage(name: "scale(\(shape.width)x\(shape.height)->\(target.width)x\(target.height))", filters: ""))
        }
        // Compositing leaves RGB, whatever came in.
        let rgb = shape.isRGB || shape.hasAlpha
        if let hdr = HDRTransfer(shape.transfer), options.hdr == .tonemap, !rgb {
            stages.append(Stage(name: "tonemap(\(hdr.rawValue)->bt709)", filters: Self.toneMap(shape)))
        } else if shape.depth > 8, !rgb, !keepsDepth {
            // Error diffusion rather than truncation, so that smooth gradients keep no bands.
            let range = shape.isFullRange ? ":r=tv" : ""
            stages.append(Stage(name: "dither(\(shape.depth)->8)", filters: "zscale=d=error_diffusion\(range)"))
            if shape.isFullRange { stages.append(Stage(name: "range(pc->tv)", filters: "")) }
        } else if rgb {
            // RGB becomes BT.709 YUV (the output is tagged so); swscale's default would be BT.601, untagged.
            scale.append("out_color_matrix=bt709:out_range=tv")
            stages.append(Stage(name: "format(\(shape.formatName)->\(outputFormatName))", filters: ""))
        } else if shape.isFullRange {
            // JPEG-range input (MJPEG's yuvj420p, full-range H.264) is squeezed into the TV range every player expects.
            scale.append("out_range=tv")
            stages.append(Stage(name: "range(pc->tv)", filters: ""))
        } else if shape.format != outputFormat {
            stages.append(Stage(name: "format(\(shape.formatName)->\(outputFormatName))", filters: ""))
        }
        // The scale filter goes where its first stage is: after deinterlacing and compositing, before tone mapping
        // (which is cheaper on fewer pixels).
        if !scale.isEmpty, let first = stages.firstIndex(where: { $0.filters.isEmpty }) {
            stages[first].filters = "scale=" + scale.joined(separator: ":")
        }
        // Last, on the fewest pixels, when the container cannot carry the rotation.
        if let turn { stages.append(Stage(name: "rotate(\(turn.rawValue))", filters: turn.filters)) }
    }

    /// The colour tags of the output, which describe its pixels: BT.709 for tone-mapped HDR, BT.709 with the sRGB
    /// transfer for RGB input (converted with the BT.709 matrix), the BT.709 matrix for YUV with alpha (composited in
    /// RGB), and the input's own tags otherwise.
    static func outputColour(_ parameters: UnsafePointer<AVCodecParameters>, options: TranscodeOptions)
        -> (primaries: AVColorPrimaries, transfer: AVColorTransferCharacteristic, matrix: AVColorSpace)
    {
        let format = AVPixelFormat(rawValue: parameters.pointee.format)
        let flags = av_pix_fmt_desc_get(format).map { $0.pointee.flags } ?? 0
        if flags & UInt64(AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL) != 0 {
            return (AVCOL_PRI_BT709, AVCOL_TRC_IEC61966_2_1, AVCOL_SPC_BT709)
        }
        if flags & UInt64(AV_PIX_FMT_FLAG_ALPHA) != 0 {
            return (parameters.pointee.color_primaries, parameters.pointee.color_trc, AVCOL_SPC_BT709)
        }
        if options.hdr == .tonemap, HDRTransfer(parameters.pointee.color_trc) != nil {
            return (AVCOL_PRI_BT709, AVCOL_TRC_BT709, AVCOL_SPC_BT709)
        }
        return (parameters.pointee.color_primaries, parameters.pointee.color_trc, parameters.pointee.color_space)
    }

    /// HDR to BT.709 SDR: linear light (100 nits = 1.0) in BT.709 primaries, the `tonemap` curve (hable, no
    /// desaturation; the peak from the frames' mastering or light-level metadata), then BT.709 transfer and matrix in
    /// TV range, dithered to 8 bits. Linearising and converting the primaries in one zscale gives the same pixels as the
    /// usual two (`zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709`), a fifth of the chain's time sooner.
    static func toneMap(_ shape: PictureShape) -> String {
        // zscale reads the input's primaries and matrix from each frame; a stream that leaves them unspecified gets
        // BT.2020's, which every PQ and HLG source uses.
        var input = ""
        if shape.primaries == AVCOL_PRI_UNSPECIFIED || shape.primaries == AVCOL_PRI_RESERVED { input += ":pin=2020" }
        if shape.matrix == AVCOL_SPC_UNSPECIFIED || shape.matrix == AVCOL_SPC_RESERVED { input += ":min=2020_ncl" }
        return "zscale=t=linear:npl=100:p=bt709\(input),format=gbrpf32le,tonemap=tonemap=hable:desat=0,"
            + "zscale=t=bt709:m=bt709:r=tv:d=error_diffusion"
    }
}
