// What needs _GNU_SOURCE is defined here, so the header seen by Swift keeps the default feature set (a different
// one would clash with the system module Foundation and Dispatch import).
#define _GNU_SOURCE
#include <fcntl.h>
#include <stddef.h>
#include <sys/socket.h>
#include <pthread.h>
#include <spawn.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

int clinux_o_tmpfile(void) { return O_TMPFILE; }

int clinux_accept4(int fd) { return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC); }

int clinux_accept4_peer(int fd, void *address, unsigned int *length) {
    return accept4(fd, (struct sockaddr *)address, (socklen_t *)length, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

long clinux_splice_nonblock(int from, int to, size_t length) {
    return splice(from, NULL, to, NULL, length, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
}

long clinux_splice_move(int from, int to, size_t length) {
    return splice(from, NULL, to, NULL, length, SPLICE_F_MOVE);
}

int clinux_pipe_nonblock(int fds[2]) { return pipe2(fds, O_NONBLOCK | O_CLOEXEC); }

int clinux_set_pipe_size(int fd, int size) { return fcntl(fd, F_SETPIPE_SZ, size); }

int clinux_nice_this_thread(int nice) { return setpriority(PRIO_PROCESS, (id_t)gettid(), nice); }

int clinux_sched_idle_this_thread(void) {
    struct sched_param param = {0};
    return sched_setscheduler(0, SCHED_IDLE, &param);
}

int clinux_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}

int clinux_set_thread_name(pthread_t thread, const char *name) { return pthread_setname_np(thread, name); }
