#ifndef FFMPEG_PROCESSOR_CLINUX_H
#define FFMPEG_PROCESSOR_CLINUX_H

/* No _GNU_SOURCE here: it would give Swift a view of the system headers that clashes with Foundation's. What needs
   it lives in CLinux.c. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <unistd.h>

/* Constants that are macros or enum-like values Swift does not import reliably. */
/* O_TMPFILE needs _GNU_SOURCE, which must not leak into this module's view of the system headers. */
int clinux_o_tmpfile(void);
static inline uint32_t clinux_epollin(void) { return EPOLLIN; }
static inline uint32_t clinux_epollout(void) { return EPOLLOUT; }
static inline uint32_t clinux_epollerr(void) { return EPOLLERR; }
static inline uint32_t clinux_epollhup(void) { return EPOLLHUP; }
static inline uint32_t clinux_epollrdhup(void) { return EPOLLRDHUP; }
static inline uint32_t clinux_epollet(void) { return EPOLLET; }
static inline uint32_t clinux_epollexclusive(void) { return EPOLLEXCLUSIVE; }
static inline int clinux_sock_nonblock(void) { return SOCK_NONBLOCK; }
static inline int clinux_sock_cloexec(void) { return SOCK_CLOEXEC; }
static inline int clinux_msg_nosignal(void) { return MSG_NOSIGNAL; }

/* accept4 is a GNU extension the Glibc module does not export; accepted sockets are non-blocking and
   close-on-exec from birth. */
int clinux_accept4(int fd);
/* The same, with the peer's address written to `address` (room for `*length` bytes; a sockaddr_storage). */
int clinux_accept4_peer(int fd, void *address, unsigned int *length);

/* splice, pipe2 and F_SETPIPE_SZ are GNU extensions as well: a request body goes socket → pipe → file in the
   kernel. splice moves up to `length` bytes between the current positions of `from` and `to` (SPLICE_F_MOVE |
   SPLICE_F_NONBLOCK); the pipe is non-blocking and close-on-exec at both ends. */
long clinux_splice_nonblock(int from, int to, size_t length);
/* The same without SPLICE_F_NONBLOCK, for the file writer's thread: it may block on the destination. */
long clinux_splice_move(int from, int to, size_t length);
int clinux_pipe_nonblock(int fds[2]);
int clinux_set_pipe_size(int fd, int size);

/* sched_getaffinity and CPU_COUNT are GNU extensions too: the CPUs this process may run on (taskset, cpusets), or -1
   with errno set. */
int clinux_affinity_cpus(void);

/* mallopt's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD, which Swift's Glibc module leaves out. */
#include <malloc.h>
static inline void clinux_malloc_thresholds(int mmap_threshold, int trim_threshold) {
    mallopt(M_MMAP_THRESHOLD, mmap_threshold);
    mallopt(M_TRIM_THRESHOLD, trim_threshold);
}

/* posix_spawn_file_actions_addclosefrom_np (glibc 2.34): a child gets no descriptor of ours beyond `lowest`, so a
   test's service cannot hold the test runner's pipes open after the test process is gone. */
#include <spawn.h>
int clinux_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest);

/* The calling thread's nice value (Linux keeps one per thread; threads it creates inherit it). */
int clinux_nice_this_thread(int nice);

/* Takes CAP_SYS_NICE from the calling thread (and so from the threads it starts): a root process's libraries can no
 * longer give their threads real-time priority. 0, or -1 with errno. */
int clinux_drop_sys_nice_this_thread(void);

/* The calling thread under SCHED_IDLE: it runs only on cycles no other thread of its group wants, and a waking
   thread of normal policy preempts it at once (threads it creates inherit the policy). */
int clinux_sched_idle_this_thread(void);

/* pthread_setname_np is a GNU extension too; names show in top -H and gdb. */
#include <pthread.h>
int clinux_set_thread_name(pthread_t thread, const char *name);

/* epoll_event is packed on x86_64, which Swift cannot lay out itself: access it through these. */
static inline void clinux_epoll_event_set(struct epoll_event *ev, uint32_t events, uint64_t data) {
    ev->events = events;
    ev->data.u64 = data;
}
static inline uint32_t clinux_epoll_event_events(const struct epoll_event *ev) { return ev->events; }
static inline uint64_t clinux_epoll_event_data(const struct epoll_event *ev) { return ev->data.u64; }
static inline size_t clinux_epoll_event_size(void) { return sizeof(struct epoll_event); }

/* Descriptors over a Unix socket (SCM_RIGHTS), for the worker processes. `clinux_send_fds` sends `length` bytes
   with `count` descriptors as one message (MSG_NOSIGNAL: a dead peer is EPIPE, not SIGPIPE). `clinux_receive_fds`
   receives one message; the descriptors it carries arrive close-on-exec, and any beyond `capacity` are closed.
   `truncated` is set when the message or its descriptors did not fit. Both return what sendmsg/recvmsg return. */
#define CLINUX_MAX_PASSED_FDS 130 /* a job's input and output, and a stitch's 128 segments */
long clinux_send_fds(int socket, const void *bytes, size_t length, const int *fds, int count);
long clinux_receive_fds(int socket, void *bytes, size_t length, int *fds, int capacity, int *count, int *truncated);
static inline int clinux_sock_seqpacket(void) { return SOCK_SEQPACKET; }

/* prctl's PR_SET_PDEATHSIG (this process gets `signal` when the thread that started it ends) and
   PR_SET_NO_NEW_PRIVS (no exec can ever grant privileges again: what lets an unprivileged process load seccomp). */
int clinux_set_parent_death_signal(int signal);
int clinux_set_no_new_privileges(void);

/* posix_spawn's file action and attributes: a descriptor at a fixed number in the child, and every signal at its
   default disposition and unblocked there (the service ignores SIGTERM/SIGINT; a child must not inherit that). */
int clinux_spawn_dup2(posix_spawn_file_actions_t *actions, int from, int to);
int clinux_spawn_set_default_signals(posix_spawnattr_t *attributes);

/* memfd_create(2), close-on-exec: a file in memory, with no name anywhere (the worker template's warm-up). */
int clinux_memfd(const char *name);

/* fork(2), which Swift does not import: the worker template forks each job's process from itself. */
pid_t clinux_fork(void);

/* waitpid's status macros: the signal that ended the process (0 if none), or its exit code (-1 if none). */
int clinux_wait_signal(int status);
int clinux_wait_exit_code(int status);

#endif
