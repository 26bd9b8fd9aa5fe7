#ifndef FFMPEG_PROCESSOR_CFFMPEG_SHIM_H
#define FFMPEG_PROCESSOR_CFFMPEG_SHIM_H

#include <libavformat/avformat.h>
#include <libavformat/avio.h>
#include <libavcodec/avcodec.h>
#include <libavcodec/bsf.h>
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavutil/avutil.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/channel_layout.h>
#include <libavutil/display.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/mastering_display_metadata.h>
#include <libavutil/mathematics.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libavutil/samplefmt.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>

/* Function-like and compound-literal macros are invisible to Swift; these inline helpers expose them. */
static inline int shim_averror(int posix_errno) { return AVERROR(posix_errno); }
static inline int shim_averror_eof(void) { return AVERROR_EOF; }
static inline int shim_averror_eagain(void) { return AVERROR(EAGAIN); }
static inline int shim_averror_invaliddata(void) { return AVERROR_INVALIDDATA; }
static inline int shim_averror_exit(void) { return AVERROR_EXIT; }
static inline int shim_averror_external(void) { return AVERROR_EXTERNAL; }
static inline int shim_averror_decoder_not_found(void) { return AVERROR_DECODER_NOT_FOUND; }
static inline int shim_averror_demuxer_not_found(void) { return AVERROR_DEMUXER_NOT_FOUND; }
static inline int64_t shim_nopts_value(void) { return AV_NOPTS_VALUE; }
static inline AVRational shim_time_base_q(void) { return AV_TIME_BASE_Q; }

/* Copies av_err2str's text into a caller-owned buffer. */
static inline void shim_err2str(int errnum, char *buf, size_t size) { av_strerror(errnum, buf, size); }

#endif
