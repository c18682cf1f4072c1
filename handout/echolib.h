/*
 * echolib.h - a small helper library for the echo server assignment.
 *
 * Written for this handout in the spirit of CS:APP's csapp.h: the same
 * ideas (open_listenfd, a buffered "robust" line reader, wrappers that die
 * loudly on errors), small enough to read in one sitting.  Read echolib.c
 * before you use it: knowing what each helper does on an error is part of
 * the assignment.
 *
 * Naming convention (as in CS:APP):
 *   lower_case(...)   returns an error code; the caller decides what to do.
 *   Capitalized(...)  an error-checked wrapper: on error it prints a message
 *                     to stderr and exits the WHOLE process.
 *
 * Two warnings that the grader will test:
 *   - None of these functions is async-signal-safe (the wrappers call
 *     fprintf and exit on error).  Never call them from a signal handler.
 *   - There is deliberately no exiting wrapper for writen(): a write to a
 *     client that has gone away fails with EPIPE, and that must end the
 *     conversation with that one client, never the server.
 */
#ifndef ECHOLIB_H
#define ECHOLIB_H

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct sockaddr SA; /* shorthand for the casts in accept/connect */

#define MAXLINE 8192 /* the longest line readlineb returns in one call */
#define LISTENQ 1024 /* listen() backlog: connections the kernel queues */

/* ------------------------------------------------------------------ */
/* Error reporting (used by the wrappers; all of them exit)           */
/* ------------------------------------------------------------------ */
void unix_error(const char *msg);           /* msg + strerror(errno)   */
void posix_error(int code, const char *msg); /* msg + strerror(code)    */
void app_error(const char *msg);            /* msg alone               */

/* ------------------------------------------------------------------ */
/* Sockets                                                            */
/* ------------------------------------------------------------------ */
/* A listening socket on 127.0.0.1:port (see echolib.c to listen on every
 * address).  Returns -1 with errno set if no socket could be bound (port in
 * use, ...), or -2 if the port is not a number (a message is printed). */
int open_listenfd(const char *port);
/* A socket connected to host:port.  Returns -1 with errno set if the
 * connection failed, -2 if host/port could not be resolved (a message is
 * printed). */
int open_clientfd(const char *host, const char *port);

int Open_listenfd(const char *port);
int Open_clientfd(const char *host, const char *port);

/* accept(), retried on EINTR and on connections the client aborted before
 * we got to them.  Returns -1 with errno == EAGAIN/EWOULDBLOCK if listenfd
 * is non-blocking and nothing is pending; exits on any other error. */
int Accept(int listenfd, SA *addr, socklen_t *addrlen);

/* Make fd non-blocking (O_NONBLOCK): read/write/accept then fail with
 * EAGAIN instead of waiting.  Exits on error. */
void Set_nonblocking(int fd);

/* select()/poll() that exit on real errors.  If a signal interrupts them
 * they return -1 with errno == EINTR: rebuild your sets and call again. */
int Select(int n, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv);
int Poll(struct pollfd *fds, nfds_t nfds, int timeout_ms);

/* ------------------------------------------------------------------ */
/* Robust I/O                                                         */
/* ------------------------------------------------------------------ */
/* writen: write all n bytes, retrying short writes and EINTR.
 * Returns n, or -1 with errno set (EPIPE, ECONNRESET, ...).
 * For BLOCKING descriptors only: on a non-blocking socket it returns -1
 * with errno == EAGAIN and you cannot tell how much was written. */
ssize_t writen(int fd, const void *buf, size_t n);

/* A read buffer for one descriptor.  One per connection, never shared
 * between connections (and never between threads). */
#define RBUF_SIZE 8192
typedef struct {
    int fd;              /* descriptor we read from            */
    size_t cnt;          /* unread bytes left in buf           */
    char *next;          /* next unread byte in buf            */
    char buf[RBUF_SIZE]; /* bytes read() but not yet handed out */
} rbuf_t;

void readinitb(rbuf_t *rp, int fd);

/* readlineb: copy one line (up to and including '\n') into usrbuf and
 * NUL-terminate it.  Returns the number of bytes stored (not counting the
 * terminating NUL), 0 at end of file, -1 on error.
 *   - Lines may contain NUL bytes: use the return value, not strlen().
 *   - A line longer than maxlen-1 bytes comes back in pieces: the first
 *     calls return maxlen-1 bytes with no '\n', the last piece ends in '\n'.
 *   - At end of file a last line with no '\n' is returned as it is.
 * It BLOCKS until it has a whole line, maxlen-1 bytes or end of file. */
ssize_t readlineb(rbuf_t *rp, void *usrbuf, size_t maxlen);

/* readnb: read exactly n bytes (fewer only at end of file).
 * Returns the number read, 0 at end of file, -1 on error.  Blocks. */
ssize_t readnb(rbuf_t *rp, void *usrbuf, size_t n);

/* Event-based servers beware: bytes sitting in an rbuf_t are invisible to
 * select()/poll(), and readlineb() blocks until a whole line arrives.
 * Neither belongs in an event loop. */

/* ------------------------------------------------------------------ */
/* Processes, threads, signals, memory                                */
/* ------------------------------------------------------------------ */
pid_t Fork(void);
void Close(int fd);
void *Malloc(size_t size);
void Free(void *ptr);

void Pthread_create(pthread_t *tid, const pthread_attr_t *attr,
                    void *(*routine)(void *), void *arg);
void Pthread_detach(pthread_t tid);
void Pthread_join(pthread_t tid, void **retval);

/* Install handler for signum with sigaction(), SA_RESTART set (so most
 * slow system calls are restarted instead of failing with EINTR) and
 * signum blocked while the handler runs.  Pass SIG_IGN to ignore a signal.
 * Returns the previous handler; exits on error. */
typedef void handler_t(int);
handler_t *Signal(int signum, handler_t *handler);

#endif /* ECHOLIB_H */
