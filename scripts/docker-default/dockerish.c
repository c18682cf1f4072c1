/*
 * dockerish: run a command the way Docker's default container constrains its processes,
 * minus the capability drop (the `run` script does that with setpriv, after this program).
 *
 *   dockerish [-H] [-N] [-f NOFILE] [-p NPROC] -- COMMAND [ARGS...]
 *
 * In this order, then execvp(COMMAND):
 *  1. (unless -H) new mount, network, IPC and UTS namespaces, as a container has: only the
 *     loopback interface, up; every cgroup mount remounted read-only, as Docker mounts
 *     /sys/fs/cgroup for a container that is not --privileged. Needs root; skipped with a
 *     note on stderr when not root.
 *  2. Container ulimits: RLIMIT_NOFILE 1024:1024, RLIMIT_NPROC 4096:4096 (-f, -p: other
 *     values, as `docker run --ulimit`; only ever lowered, as without CAP_SYS_RESOURCE).
 *  3. (with -N) no_new_privs, as `docker run --security-opt no-new-privileges` sets it.
 *     Docker's default does NOT set it: runc then installs the filter while it still holds
 *     CAP_SYS_ADMIN and drops the capabilities afterwards, as here. Without CAP_SYS_ADMIN
 *     (not root) the kernel requires no_new_privs for a filter: it is set then.
 *  4. A seccomp filter equal, for x86_64, to moby's profiles/seccomp/default.json for a
 *     container with Docker's default capabilities (no CAP_SYS_ADMIN, CAP_SYS_PTRACE,
 *     CAP_SYS_NICE, ...). Followed: the profile of Docker 26 (moby/moby master after PR
 *     #47341, Feb 2024, "add syscalls for kernel v5.17 - v6.6"; read at commit 00f3d189).
 *     - default action: EPERM for every syscall not listed below;
 *     - clone: allowed only without namespace flags (flags & 0x7E020000 == 0), else EPERM;
 *     - clone3: ENOSYS (so glibc falls back to clone, whose flags the filter can see);
 *     - socket: EPERM for AF_VSOCK (40);
 *     - personality: only 0, PER_LINUX32 (8), UNAME26 (0x20000), 0x20008, 0xffffffff (query);
 *     - refused (EPERM) among others: unshare, setns, mount, umount2, open_tree, move_mount,
 *       mount_setattr, fsopen, fsconfig, fsmount, fspick, pivot_root, keyctl, add_key,
 *       request_key, bpf, perf_event_open, userfaultfd, kexec_load, kexec_file_load,
 *       init_module, finit_module, delete_module, acct, swapon, swapoff, reboot,
 *       settimeofday, clock_settime, quotactl, quotactl_fd, open_by_handle_at, syslog, iopl, ioperm, lookup_dcookie,
 *       kcmp, pidfd_getfd, process_madvise, get_mempolicy, mbind, set_mempolicy,
 *       sethostname, setdomainname, fanotify_init, vhangup, uselib, ustat, sysfs, mseal;
 *     - allowed (recent profiles): close_range, pidfd_open, pidfd_send_signal, landlock_*,
 *       openat2, faccessat2, epoll_pwait2, futex_waitv, process_mrelease, memfd_secret,
 *       cachestat, fchmodat2, map_shadow_stack, futex_wake/wait/requeue, ptrace,
 *       process_vm_readv/writev (kernel >= 4.8), chroot (CAP_SYS_CHROOT is a default cap).
 *     Only x86_64 syscalls are allowed: i386 and x32 calls get EPERM (Docker also allows
 *     their i386/x32 forms; nothing here makes 32-bit calls).
 *
 * Exit 125 if a step fails (nothing is run then), as `docker run` does for its own errors.
 *
 *   dockerish -P   (run under the constraints) prints what holds: credentials, the status
 *                  lines of /proc/self/status, the limits, and how a few syscalls answer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "dockerish: only x86_64 is written out (the syscall numbers below are x86_64's)"
#endif

/* Syscalls newer than the kernel headers this may be built with (x86_64 numbers). */
#ifndef __NR_futex_waitv
#define __NR_futex_waitv 449
#endif
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
#ifndef __NR_fchmodat2
#define __NR_fchmodat2 452
#endif
#ifndef __NR_map_shadow_stack
#define __NR_map_shadow_stack 453
#endif
#ifndef __NR_futex_wake
#define __NR_futex_wake 454
#endif
#ifndef __NR_futex_wait
#define __NR_futex_wait 455
#endif
#ifndef __NR_futex_requeue
#define __NR_futex_requeue 456
#endif

#define S(name) __NR_##name

/* The profile's unconditional allow list, x86_64 names only (its i386/arm/... names such as
 * chown32, _llseek, socketcall and the *_time64 calls do not exist here), then the entries
 * it allows for default capabilities: minKernel 4.8 (ptrace, process_vm_*), amd64
 * (arch_prctl, modify_ldt), CAP_SYS_CHROOT (chroot). */
static const int allowed[] = {
    S(accept), S(accept4), S(access), S(adjtimex), S(alarm), S(bind), S(brk),
    S(cachestat), S(capget), S(capset), S(chdir), S(chmod), S(chown), S(clock_adjtime),
    S(clock_getres), S(clock_gettime), S(clock_nanosleep), S(close), S(close_range),
    S(connect), S(copy_file_range), S(creat), S(dup), S(dup2), S(dup3), S(epoll_create),
    S(epoll_create1), S(epoll_ctl), S(epoll_ctl_old), S(epoll_pwait), S(epoll_pwait2),
    S(epoll_wait), S(epoll_wait_old), S(eventfd), S(eventfd2), S(execve), S(execveat),
    S(exit), S(exit_group), S(faccessat), S(faccessat2), S(fadvise64), S(fallocate),
    S(fanotify_mark), S(fchdir), S(fchmod), S(fchmodat), S(fchmodat2), S(fchown),
    S(fchownat), S(fcntl), S(fdatasync), S(fgetxattr), S(flistxattr), S(flock), S(fork),
    S(fremovexattr), S(fsetxattr), S(fstat), S(fstatfs), S(fsync), S(ftruncate), S(futex),
    S(futex_requeue), S(futex_wait), S(futex_waitv), S(futex_wake), S(futimesat),
    S(getcpu), S(getcwd), S(getdents), S(getdents64), S(getegid), S(geteuid), S(getgid),
    S(getgroups), S(getitimer), S(getpeername), S(getpgid), S(getpgrp), S(getpid),
    S(getppid), S(getpriority), S(getrandom), S(getresgid), S(getresuid), S(getrlimit),
    S(get_robust_list), S(getrusage), S(getsid), S(getsockname), S(getsockopt),
    S(get_thread_area), S(gettid), S(gettimeofday), S(getuid), S(getxattr),
    S(inotify_add_watch), S(inotify_init), S(inotify_init1), S(inotify_rm_watch),
    S(io_cancel), S(ioctl), S(io_destroy), S(io_getevents), S(io_pgetevents),
    S(ioprio_get), S(ioprio_set), S(io_setup), S(io_submit), S(io_uring_enter),
    S(io_uring_register), S(io_uring_setup), S(kill), S(landlock_add_rule),
    S(landlock_create_ruleset), S(landlock_restrict_self), S(lchown), S(lgetxattr),
    S(link), S(linkat), S(listen), S(listxattr), S(llistxattr), S(lremovexattr), S(lseek),
    S(lsetxattr), S(lstat), S(madvise), S(map_shadow_stack), S(membarrier),
    S(memfd_create), S(memfd_secret), S(mincore), S(mkdir), S(mkdirat), S(mknod),
    S(mknodat), S(mlock), S(mlock2), S(mlockall), S(mmap), S(mprotect), S(mq_getsetattr),
    S(mq_notify), S(mq_open), S(mq_timedreceive), S(mq_timedsend), S(mq_unlink),
    S(mremap), S(msgctl), S(msgget), S(msgrcv), S(msgsnd), S(msync), S(munlock),
    S(munlockall), S(munmap), S(name_to_handle_at), S(nanosleep), S(newfstatat), S(open),
    S(openat), S(openat2), S(pause), S(pidfd_open), S(pidfd_send_signal), S(pipe),
    S(pipe2), S(pkey_alloc), S(pkey_free), S(pkey_mprotect), S(poll), S(ppoll), S(prctl),
    S(pread64), S(preadv), S(preadv2), S(prlimit64), S(process_mrelease), S(pselect6),
    S(pwrite64), S(pwritev), S(pwritev2), S(read), S(readahead), S(readlink),
    S(readlinkat), S(readv), S(recvfrom), S(recvmmsg), S(recvmsg), S(remap_file_pages),
    S(removexattr), S(rename), S(renameat), S(renameat2), S(restart_syscall), S(rmdir),
    S(rseq), S(rt_sigaction), S(rt_sigpending), S(rt_sigprocmask), S(rt_sigqueueinfo),
    S(rt_sigreturn), S(rt_sigsuspend), S(rt_sigtimedwait), S(rt_tgsigqueueinfo),
    S(sched_getaffinity), S(sched_getattr), S(sched_getparam), S(sched_get_priority_max),
    S(sched_get_priority_min), S(sched_getscheduler), S(sched_rr_get_interval),
    S(sched_setaffinity), S(sched_setattr), S(sched_setparam), S(sched_setscheduler),
    S(sched_yield), S(seccomp), S(select), S(semctl), S(semget), S(semop), S(semtimedop),
    S(sendfile), S(sendmmsg), S(sendmsg), S(sendto), S(setfsgid), S(setfsuid), S(setgid),
    S(setgroups), S(setitimer), S(setpgid), S(setpriority), S(setregid), S(setresgid),
    S(setresuid), S(setreuid), S(setrlimit), S(set_robust_list), S(setsid),
    S(setsockopt), S(set_thread_area), S(set_tid_address), S(setuid), S(setxattr),
    S(shmat), S(shmctl), S(shmdt), S(shmget), S(shutdown), S(sigaltstack), S(signalfd),
    S(signalfd4), S(socketpair), S(splice), S(stat), S(statfs), S(statx), S(symlink),
    S(symlinkat), S(sync), S(sync_file_range), S(syncfs), S(sysinfo), S(tee), S(tgkill),
    S(time), S(timer_create), S(timer_delete), S(timer_getoverrun), S(timer_gettime),
    S(timer_settime), S(timerfd_create), S(timerfd_gettime), S(timerfd_settime), S(times),
    S(tkill), S(truncate), S(umask), S(uname), S(unlink), S(unlinkat), S(utime),
    S(utimensat), S(utimes), S(vfork), S(vmsplice), S(wait4), S(waitid), S(write),
    S(writev),
    /* minKernel 4.8 */
    S(process_vm_readv), S(process_vm_writev), S(ptrace),
    /* amd64 */
    S(arch_prctl), S(modify_ldt),
    /* CAP_SYS_CHROOT, one of Docker's default capabilities */
    S(chroot),
};
#define NALLOWED (sizeof allowed / sizeof allowed[0])

#define CLONE_NAMESPACE_FLAGS 0x7E020000u /* NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET */
#define AF_VSOCK_NR 40

#define LO32(n) (offsetof(struct seccomp_data, args) + 8 * (n))
#define HI32(n) (LO32(n) + 4)
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define EPERM_RET RET(SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))
#define ALLOW_RET RET(SECCOMP_RET_ALLOW)

static void die(const char *what)
{
    fprintf(stderr, "dockerish: %s: %s\n", what, strerror(errno));
    exit(125);
}

/* A filter of NALLOWED*2 + a few dozen instructions, well under BPF_MAXINSNS. */
static struct sock_filter prog[BPF_MAXINSNS];
static unsigned short len;

static void emit(struct sock_filter f)
{
    if (len >= BPF_MAXINSNS) {
        fprintf(stderr, "dockerish: the filter does not fit in %d instructions\n", BPF_MAXINSNS);
        exit(125);
    }
    prog[len++] = f;
}

/* if (nr == NR) { body } -- body is `n` instructions that all return. */
static void if_nr(int nr, unsigned n)
{
    emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, n));
}

static void build_filter(void)
{
    static const unsigned personas[] = {0, 8, 0x20000, 0x20008, 0xffffffffu};
    const unsigned npersonas = sizeof personas / sizeof personas[0];

    emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
    emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
    emit((struct sock_filter)EPERM_RET);
    emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
    /* x32 calls carry bit 30 */
    emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1));
    emit((struct sock_filter)EPERM_RET);

    /* clone: no namespace flags (the low word holds them all) */
    if_nr(__NR_clone, 5);
    emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, LO32(0)));
    emit((struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, CLONE_NAMESPACE_FLAGS));
    emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1));
    emit((struct sock_filter)ALLOW_RET);
    emit((struct sock_filter)EPERM_RET);

    /* clone3: ENOSYS, as Docker answers it without CAP_SYS_ADMIN */
    if_nr(__NR_clone3, 1);
    emit((struct sock_filter)RET(SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)));

    /* socket: anything but AF_VSOCK */
    if_nr(__NR_socket, 4);
    emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, LO32(0)));
    emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_VSOCK_NR, 0, 1));
    emit((struct sock_filter)EPERM_RET);
    emit((struct sock_filter)ALLOW_RET);

    /* personality: a few values, compared as 64-bit (the high word must be 0) */
    if_nr(__NR_personality, 5 + 2 * npersonas);
    emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, HI32(0)));
    emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0));
    emit((struct sock_filter)EPERM_RET);
    emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, LO32(0)));
    for (unsigned i = 0; i < npersonas; i++) {
        emit((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, personas[i], 0, 1));
        emit((struct sock_filter)ALLOW_RET);
    }
    emit((struct sock_filter)EPERM_RET);

    /* the number is clobbered by the branches above only inside them: reload it */
    emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
    for (size_t i = 0; i < NALLOWED; i++) {
        if_nr(allowed[i], 1);
        emit((struct sock_filter)ALLOW_RET);
    }
    emit((struct sock_filter)EPERM_RET);
}

static void install_filter(int no_new_privs)
{
    build_filter();
    struct sock_fprog fprog = {.len = len, .filter = prog};
    if (no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        die("prctl(PR_SET_NO_NEW_PRIVS)");
    /* Through the seccomp syscall (not prctl): the same call runc makes. */
    if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) == 0)
        return;
    /* EACCES: no CAP_SYS_ADMIN, so the kernel wants no_new_privs first. */
    if (errno != EACCES || no_new_privs)
        die("seccomp(SECCOMP_SET_MODE_FILTER)");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        die("prctl(PR_SET_NO_NEW_PRIVS)");
    if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0)
        die("seccomp(SECCOMP_SET_MODE_FILTER)");
}

/* Lower (never raise) a limit to lim:lim. */
static void cap_limit(int resource, rlim_t lim, const char *name)
{
    struct rlimit r;
    if (getrlimit(resource, &r) < 0)
        die(name);
    if (r.rlim_max != RLIM_INFINITY && r.rlim_max < lim)
        lim = r.rlim_max;
    r.rlim_cur = r.rlim_max = lim;
    if (setrlimit(resource, &r) < 0)
        die(name);
}

/* Every mount point at or under /sys/fs/cgroup, read-only (in our own mount namespace). */
static void cgroups_read_only(void)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    if (!f)
        die("open /proc/self/mountinfo");
    char line[4096];
    const char *root = "/sys/fs/cgroup";
    size_t rlen = strlen(root);
    int lines = 0;
    while (fgets(line, sizeof line, f) && lines++ < 100000) {
        /* fields: id parent major:minor root mountpoint ... */
        char mnt[4096];
        if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
            continue;
        if (strncmp(mnt, root, rlen) != 0 || (mnt[rlen] != '\0' && mnt[rlen] != '/'))
            continue;
        if (mount(NULL, mnt, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0) {
            fprintf(stderr, "dockerish: remount %s read-only: %s\n", mnt, strerror(errno));
            exit(125);
        }
    }
    fclose(f);
}

static void loopback_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket for lo");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        die("SIOCGIFFLAGS lo");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
        die("SIOCSIFFLAGS lo");
    close(fd);
}

static void container_namespaces(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "dockerish: not root: no namespaces of a container's own (network, "
                        "mount, IPC, UTS); the host's are used\n");
        return;
    }
    if (unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) < 0)
        die("unshare(mount, net, ipc, uts)");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        die("make / private");
    cgroups_read_only();
    loopback_up();
}

/* Each call made with arguments that fail harmlessly where it is allowed (EBADF, ENOENT,
 * EINVAL, EFAULT): under the filter the answer is the filter's. */
static void probe(void)
{
    printf("uid=%d euid=%d gid=%d\n", (int)getuid(), (int)geteuid(), (int)getgid());
    FILE *f = fopen("/proc/self/status", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs", 10) ||
            !strncmp(line, "Seccomp:", 8))
            fputs(line, stdout);
    if (f)
        fclose(f);
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    printf("nofile=%llu:%llu\n", (unsigned long long)r.rlim_cur, (unsigned long long)r.rlim_max);
    getrlimit(RLIMIT_NPROC, &r);
    printf("nproc=%llu:%llu\n", (unsigned long long)r.rlim_cur, (unsigned long long)r.rlim_max);
    struct {
        const char *name;
        long nr, a, b, c, d, e;
    } calls[] = {
        {"unshare(CLONE_NEWUTS)", __NR_unshare, CLONE_NEWUTS, 0, 0, 0, 0},
        {"setns(-1)", __NR_setns, -1, 0, 0, 0, 0},
        {"mount", __NR_mount, 0, (long)"/nonexistent-dockerish", 0, MS_REMOUNT, 0},
        {"umount2", __NR_umount2, (long)"/nonexistent-dockerish", 0, 0, 0, 0},
        {"open_tree(-1)", __NR_open_tree, -1, (long)"", 0, 0, 0},
        {"move_mount(-1)", __NR_move_mount, -1, (long)"", -1, (long)"", 0},
        {"fsopen", __NR_fsopen, (long)"nonexistent-dockerish", 0, 0, 0, 0},
        {"pivot_root", __NR_pivot_root, (long)"/nonexistent-dockerish", (long)"/nonexistent-dockerish", 0, 0, 0},
        {"clone(CLONE_NEWNS|CLONE_FS)", __NR_clone, CLONE_NEWNS | CLONE_FS, 0, 0, 0, 0},
        {"clone3(NULL)", __NR_clone3, 0, 0, 0, 0, 0},
        {"keyctl(-1)", __NR_keyctl, -1, 0, 0, 0, 0},
        {"bpf(-1)", __NR_bpf, -1, 0, 0, 0, 0},
        {"perf_event_open(NULL)", __NR_perf_event_open, 0, 0, -1, -1, 0},
        {"userfaultfd(-1)", __NR_userfaultfd, -1, 0, 0, 0, 0},
        {"acct", __NR_acct, (long)"/nonexistent-dockerish/x", 0, 0, 0, 0},
        {"clock_settime(NULL)", __NR_clock_settime, 0, 0, 0, 0, 0},
        {"socket(AF_VSOCK)", __NR_socket, AF_VSOCK_NR, SOCK_STREAM, 0, 0, 0},
        {"personality(0xffffffff)", __NR_personality, 0xffffffffL, 0, 0, 0, 0},
        {"close_range(1000,1000)", __NR_close_range, 1000, 1000, 0, 0, 0},
        {"pidfd_open(-1)", __NR_pidfd_open, -1, 0, 0, 0, 0},
        {"landlock_create_ruleset(version)", __NR_landlock_create_ruleset, 0, 0, 1, 0, 0},
    };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        errno = 0;
        long rc = syscall(calls[i].nr, calls[i].a, calls[i].b, calls[i].c, calls[i].d, calls[i].e);
        if (rc >= 0)
            printf("%s: ok\n", calls[i].name);
        else
            printf("%s: %s\n", calls[i].name, strerrorname_np(errno));
    }
}

static void usage(void);

static rlim_t limit_arg(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v == 0)
        usage();
    return (rlim_t)v;
}

static void usage(void)
{
    fprintf(stderr, "usage: dockerish [-H] [-N] [-f NOFILE] [-p NPROC] -- COMMAND [ARGS...]\n"
                    "       dockerish -n | dockerish -P\n"
                    "  -H  keep the host's namespaces (no network/mount/IPC/UTS of its own)\n"
                    "  -N  set no_new_privs (docker run --security-opt no-new-privileges)\n"
                    "  -f, -p  RLIMIT_NOFILE, RLIMIT_NPROC (soft = hard; default 1024, 4096)\n"
                    "  -n  print the filter's length and exit\n"
                    "  -P  print what holds for this process (run it under the constraints)\n");
    exit(125);
}

int main(int argc, char **argv)
{
    int host_ns = 0, nnp = 0, print_len = 0, opt;
    rlim_t nofile = 1024, nproc = 4096;
    while ((opt = getopt(argc, argv, "+HNnPf:p:")) != -1) {
        switch (opt) {
        case 'P': probe(); return 0;
        case 'H': host_ns = 1; break;
        case 'N': nnp = 1; break;
        case 'n': print_len = 1; break;
        case 'f': nofile = limit_arg(optarg); break;
        case 'p': nproc = limit_arg(optarg); break;
        default: usage();
        }
    }
    if (print_len) {
        build_filter();
        printf("%u instructions, %zu syscalls allowed\n", len, NALLOWED);
        return 0;
    }
    if (optind >= argc)
        usage();
    if (!host_ns)
        container_namespaces();
    cap_limit(RLIMIT_NOFILE, nofile, "RLIMIT_NOFILE");
    cap_limit(RLIMIT_NPROC, nproc, "RLIMIT_NPROC");
    install_filter(nnp);
    execvp(argv[optind], argv + optind);
    fprintf(stderr, "dockerish: exec %s: %s\n", argv[optind], strerror(errno));
    return 127;
}
