#ifndef FFMPEG_PROCESSOR_CSECCOMP_H
#define FFMPEG_PROCESSOR_CSECCOMP_H

#include <errno.h>
#include <seccomp.h>
#include <linux/sched.h> /* CLONE_THREAD without _GNU_SOURCE */

/* libseccomp's actions are macros, some of them function-like; Swift imports neither reliably. */
static inline uint32_t shim_scmp_act_allow(void) { return SCMP_ACT_ALLOW; }
static inline uint32_t shim_scmp_act_kill_process(void) { return SCMP_ACT_KILL_PROCESS; }
static inline uint32_t shim_scmp_act_errno(int code) { return SCMP_ACT_ERRNO(code); }

/* One argument comparison: `(argument & mask) == value`, and `argument == value`. */
static inline struct scmp_arg_cmp shim_scmp_masked_eq(unsigned int argument, uint64_t mask, uint64_t value) {
    struct scmp_arg_cmp comparison = {.arg = argument, .op = SCMP_CMP_MASKED_EQ, .datum_a = mask, .datum_b = value};
    return comparison;
}
static inline struct scmp_arg_cmp shim_scmp_eq(unsigned int argument, uint64_t value) {
    struct scmp_arg_cmp comparison = {.arg = argument, .op = SCMP_CMP_EQ, .datum_a = value, .datum_b = 0};
    return comparison;
}

static inline uint64_t shim_clone_thread(void) { return CLONE_THREAD; }

#endif
