/*
 * subreaper.c - test support: run a program (the grader) and report every process it leaves
 * behind, wherever the server binary lives and whichever user it runs as.
 *
 *   subreaper LEFTOVERS PROGRAM [ARG...]
 *
 * Becomes child subreaper (PR_SET_CHILD_SUBREAPER), runs PROGRAM as its only child and waits
 * for it. A process PROGRAM started (or a descendant of one) that outlives PROGRAM is
 * re-parented here, not to init. So once PROGRAM has exited, every child of this process is a
 * leftover: each, and each of their descendants as they are re-parented in turn, is written to
 * the file LEFTOVERS as a line "PID STATE EXE" (STATE from /proc/PID/stat; EXE from
 * /proc/PID/exe, or "(comm)" where that cannot be read), then killed with SIGKILL (by PID) and
 * reaped, until none is left. The file is written (possibly empty) in every case.
 *
 * Exits as PROGRAM did: its exit status, or the signal that killed it (re-raised). Exit 125
 * when this helper itself fails, 127 when PROGRAM cannot be run.
 *
 * The kernel re-parents a dying process's children before it notifies the parent, so when
 * waitpid() reports PROGRAM's exit every leftover is already a child of this process.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t *seen;
static size_t nseen, capseen;

static int was_seen(pid_t pid)
{
    for (size_t i = 0; i < nseen; i++)
        if (seen[i] == pid)
            return 1;
    return 0;
}

static void remember(pid_t pid)
{
    if (nseen == capseen) {
        capseen = capseen ? 2 * capseen : 64;
        seen = realloc(seen, capseen * sizeof(*seen));
        if (!seen) {
            perror("subreaper: realloc");
            exit(125);
        }
    }
    seen[nseen++] = pid;
}

/* Parent pid and state of `pid` from /proc/PID/stat; 0 when it is gone. */
static int stat_of(pid_t pid, pid_t *ppid, char *state)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *close = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
    int pp;
    if (!close || sscanf(close + 1, " %c %d", state, &pp) != 2)
        return 0;
    *ppid = pp;
    return 1;
}

/* Record and SIGKILL every current child of this process; return how many were found. */
static int kill_children(FILE *out)
{
    pid_t me = getpid();
    int found = 0;
    DIR *d = opendir("/proc");
    if (!d) {
        perror("subreaper: /proc");
        exit(125);
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0)
            continue;
        pid_t ppid;
        char state;
        if (!stat_of((pid_t)pid, &ppid, &state) || ppid != me)
            continue;
        found++;
        if (!was_seen((pid_t)pid)) {
            remember((pid_t)pid);
            char link[64], exe[4096];
            snprintf(link, sizeof(link), "/proc/%ld/exe", pid);
            ssize_t n = readlink(link, exe, sizeof(exe) - 1);
            if (n >= 0) {
                exe[n] = '\0';
            } else {
                char comm[64] = "?";
                snprintf(link, sizeof(link), "/proc/%ld/comm", pid);
                FILE *c = fopen(link, "r");
                if (c) {
                    if (fgets(comm, sizeof(comm), c))
                        comm[strcspn(comm, "\n")] = '\0';
                    fclose(c);
                }
                snprintf(exe, sizeof(exe), "(%s)", comm);
            }
            fprintf(out, "%ld %c %s\n", pid, state, exe);
            fflush(out);
        }
        kill((pid_t)pid, SIGKILL);
    }
    closedir(d);
    return found;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s LEFTOVERS PROGRAM [ARG...]\n", argv[0]);
        return 125;
    }
    FILE *out = fopen(argv[1], "w");
    if (!out) {
        perror(argv[1]);
        return 125;
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
        perror("subreaper: PR_SET_CHILD_SUBREAPER");
        return 125;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("subreaper: fork");
        return 125;
    }
    if (child == 0) {
        fclose(out);
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    int status = 0;
    for (;;) {
        int st;
        pid_t p = waitpid(-1, &st, 0);
        if (p == child) {
            status = st;
            break;
        }
        if (p < 0 && errno != EINTR) {
            perror("subreaper: waitpid");
            return 125;
        }
        /* Anything else reaped here died while PROGRAM ran: it is not left behind. */
    }
    /* PROGRAM is gone: whatever is still our child is left over. Kill and reap until none is
     * left; the children of each killed process become ours in turn. */
    for (;;) {
        kill_children(out);
        pid_t p = waitpid(-1, NULL, 0);
        if (p < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ECHILD)
                break;
            perror("subreaper: waitpid");
            return 125;
        }
    }
    if (fclose(out) != 0) {
        perror(argv[1]);
        return 125;
    }
    if (WIFSIGNALED(status)) {
        signal(WTERMSIG(status), SIG_DFL);
        raise(WTERMSIG(status));
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 125;
}
