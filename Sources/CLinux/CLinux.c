// What needs _GNU_SOURCE is defined here, so the header seen by Swift keeps the default feature set (a different
// one would clash with the system module Foundation and Dispatch import).
#define _GNU_SOURCE
#include <fcntl.h>
#include <stddef.h>
#include <sys/socket.h>
#include <pthread.h>
#include <spawn.h>
#include <sched.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <unistd.h>
#include <sys/mman.h>

int clinux_o_tmpfile(void) { return O_TMPFILE; }

int clinux_affinity_cpus(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    return CPU_COUNT(&set);
}

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

int clinux_drop_sys_nice_this_thread(void) {
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0) return -1;
    const unsigned word = CAP_SYS_NICE / 32, bit = 1u << (CAP_SYS_NICE % 32);
    if (!(data[word].effective & bit) && !(data[word].permitted & bit)) return 0;
    data[word].effective &= ~bit;
    data[word].permitted &= ~bit;
    data[word].inheritable &= ~bit;
    return (int)syscall(SYS_capset, &header, data);
}

int clinux_sched_idle_this_thread(void) {
    struct sched_param param = {0};
    return sched_setscheduler(0, SCHED_IDLE, &param);
}

int clinux_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}

int clinux_set_thread_name(pthread_t thread, const char *name) { return pthread_setname_np(thread, name); }

#include "CLinux.h"
#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

long clinux_send_fds(int socket, const void *bytes, size_t length, const int *fds, int count) {
    struct iovec vector = {.iov_base = (void *)bytes, .iov_len = length};
    struct msghdr message = {.msg_iov = &vector, .msg_iovlen = 1};
    union {
        char buffer[CMSG_SPACE(sizeof(int) * CLINUX_MAX_PASSED_FDS)];
        struct cmsghdr align;
    } control;
    if (count > CLINUX_MAX_PASSED_FDS) {
        errno = EINVAL;
        return -1;
    }
    if (count > 0) {
        memset(&control, 0, sizeof(control));
        message.msg_control = control.buffer;
        message.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)count);
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)count);
        memcpy(CMSG_DATA(header), fds, sizeof(int) * (size_t)count);
    }
    return sendmsg(socket, &message, MSG_NOSIGNAL);
}

long clinux_receive_fds(int socket, void *bytes, size_t length, int *fds, int capacity, int *count, int *truncated) {
    struct iovec vector = {.iov_base = bytes, .iov_len = length};
    union {
        char buffer[CMSG_SPACE(sizeof(int) * CLINUX_MAX_PASSED_FDS)];
        struct cmsghdr align;
    } control;
    struct msghdr message = {
        .msg_iov = &vector, .msg_iovlen = 1, .msg_control = control.buffer, .msg_controllen = sizeof(control.buffer)};
    *count = 0;
    *truncated = 0;
    long received = recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
    if (received < 0) return received;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header != NULL; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
        int carried = (int)((header->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        const int *passed = (const int *)CMSG_DATA(header);
        for (int index = 0; index < carried; index++) {
            // More than the caller can hold are closed here: a descriptor received is a descriptor owned.
            if (*count < capacity) fds[(*count)++] = passed[index];
            else close(passed[index]);
        }
    }
    if (message.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) *truncated = 1;
    return received;
}

int clinux_set_parent_death_signal(int signal) { return prctl(PR_SET_PDEATHSIG, (unsigned long)signal, 0, 0, 0); }

int clinux_set_no_new_privileges(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); }

int clinux_spawn_dup2(posix_spawn_file_actions_t *actions, int from, int to) {
    return posix_spawn_file_actions_adddup2(actions, from, to);
}

int clinux_spawn_set_default_signals(posix_spawnattr_t *attributes) {
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    int status = posix_spawnattr_setsigdefault(attributes, &all);
    if (status == 0) status = posix_spawnattr_setsigmask(attributes, &none);
    if (status == 0) status = posix_spawnattr_setflags(attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    return status;
}

pid_t clinux_fork(void) { return fork(); }

int clinux_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

int clinux_wait_signal(int status) { return WIFSIGNALED(status) ? WTERMSIG(status) : 0; }
int clinux_wait_exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
