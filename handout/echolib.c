/*
 * echolib.c - helper library for the echo server assignment.
 * See echolib.h for what each function promises.
 */
#include "echolib.h"

/* ------------------------------------------------------------------ */
/* Error reporting                                                    */
/* ------------------------------------------------------------------ */

void unix_error(const char *msg)
{
    fprintf(stderr, "%s: %s\n", msg, strerror(errno));
    exit(1);
}

void posix_error(int code, const char *msg)
{
    fprintf(stderr, "%s: %s\n", msg, strerror(code));
    exit(1);
}

void app_error(const char *msg)
{
    fprintf(stderr, "%s\n", msg);
    exit(1);
}

/* ------------------------------------------------------------------ */
/* Sockets                                                            */
/* ------------------------------------------------------------------ */

/*
 * open_listenfd - a socket listening on 127.0.0.1:port.
 *
 * The server only accepts connections from this machine, which is all the
 * grader needs and keeps your half-finished server off the network.  To
 * listen on every address of the machine instead, pass NULL as the first
 * argument of getaddrinfo() below (AI_PASSIVE then yields the wildcard
 * address) and drop AI_NUMERICHOST.
 */
int open_listenfd(const char *port)
{
    struct addrinfo hints, *list, *p;
    int listenfd = -1, optval = 1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    if ((rc = getaddrinfo("127.0.0.1", port, &hints, &list)) != 0) {
        fprintf(stderr, "getaddrinfo(127.0.0.1, %s): %s\n", port,
                gai_strerror(rc));
        return -2;
    }

    for (p = list; p != NULL; p = p->ai_next) {
        listenfd = socket(p->ai_family, p->ai_socktype, p->ai_protocol);
        if (listenfd < 0)
            continue;
        /* Let a restarted server bind at once, even while connections of
         * the previous run are still in TIME_WAIT. */
        setsockopt(listenfd, SOL_SOCKET, SO_REUSEADDR, &optval,
                   sizeof(optval));
        if (bind(listenfd, p->ai_addr, p->ai_addrlen) == 0 &&
            listen(listenfd, LISTENQ) == 0)
            break; /* success */
        close(listenfd);
        listenfd = -1;
    }
    freeaddrinfo(list);
    return listenfd;
}

/* open_clientfd - a socket connected to host:port (any address family). */
int open_clientfd(const char *host, const char *port)
{
    struct addrinfo hints, *list, *p;
    int clientfd = -1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    if ((rc = getaddrinfo(host, port, &hints, &list)) != 0) {
        fprintf(stderr, "getaddrinfo(%s, %s): %s\n", host, port,
                gai_strerror(rc));
        return -2;
    }

    for (p = list; p != NULL; p = p->ai_next) {
        clientfd = socket(p->ai_family, p->ai_socktype, p->ai_protocol);
        if (clientfd < 0)
            continue;
        if (connect(clientfd, p->ai_addr, p->ai_addrlen) == 0)
            break; /* success */
        close(clientfd);
        clientfd = -1;
    }
    freeaddrinfo(list);
    return clientfd;
}

int Open_listenfd(const char *port)
{
    int fd = open_listenfd(port);
    if (fd == -2)
        exit(1); /* bad port: open_listenfd said why */
    if (fd < 0)
        unix_error("open_listenfd");
    return fd;
}

int Open_clientfd(const char *host, const char *port)
{
    int fd = open_clientfd(host, port);
    if (fd == -2)
        exit(1); /* bad host or port: open_clientfd said why */
    if (fd < 0)
        unix_error("open_clientfd");
    return fd;
}

int Accept(int listenfd, SA *addr, socklen_t *addrlen)
{
    socklen_t len = addrlen ? *addrlen : 0;
    int fd;

    for (;;) {
        fd = accept(listenfd, addr, addrlen);
        if (fd >= 0)
            return fd;
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) {
            if (addrlen)
                *addrlen = len; /* accept may have changed it */
            continue;           /* interrupted, or client gave up: retry */
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -1; /* non-blocking listenfd, nothing pending */
        if (errno == EMFILE || errno == ENFILE)
            app_error("accept: out of descriptors "
                      "(is every connfd closed when its client leaves?)");
        unix_error("accept");
    }
}

void Set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        unix_error("fcntl(O_NONBLOCK)");
}

int Select(int n, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
{
    int rc = select(n, rd, wr, ex, tv);
    if (rc < 0 && errno != EINTR)
        unix_error("select");
    return rc;
}

int Poll(struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
    int rc = poll(fds, nfds, timeout_ms);
    if (rc < 0 && errno != EINTR)
        unix_error("poll");
    return rc;
}

/* ------------------------------------------------------------------ */
/* Robust I/O                                                         */
/* ------------------------------------------------------------------ */

ssize_t writen(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    size_t left = n;

    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue; /* interrupted before writing anything */
            return -1;    /* EPIPE, ECONNRESET, EAGAIN, ... */
        }
        p += w;           /* short write: send the rest */
        left -= (size_t)w;
    }
    return (ssize_t)n;
}

void readinitb(rbuf_t *rp, int fd)
{
    rp->fd = fd;
    rp->cnt = 0;
    rp->next = rp->buf;
}

/* Refill an empty buffer with one read().  Returns the number of bytes
 * now buffered, 0 at end of file, -1 on error.  Retries on EINTR. */
static ssize_t fill(rbuf_t *rp)
{
    ssize_t r;

    do {
        r = read(rp->fd, rp->buf, sizeof(rp->buf));
    } while (r < 0 && errno == EINTR);
    if (r > 0) {
        rp->cnt = (size_t)r;
        rp->next = rp->buf;
    }
    return r;
}

ssize_t readlineb(rbuf_t *rp, void *usrbuf, size_t maxlen)
{
    char *out = usrbuf;
    size_t got = 0;

    if (maxlen == 0)
        return 0;
    while (got < maxlen - 1) {
        size_t take;
        char *nl;

        if (rp->cnt == 0) {
            ssize_t r = fill(rp);
            if (r < 0)
                return -1;
            if (r == 0)
                break; /* end of file: return what we have */
        }
        /* Copy up to (and including) the first '\n' in the buffer, but no
         * more than there is room for. */
        take = rp->cnt < maxlen - 1 - got ? rp->cnt : maxlen - 1 - got;
        nl = memchr(rp->next, '\n', take);
        if (nl != NULL)
            take = (size_t)(nl - rp->next) + 1;
        memcpy(out + got, rp->next, take);
        rp->next += take;
        rp->cnt -= take;
        got += take;
        if (nl != NULL)
            break; /* a whole line */
    }
    out[got] = '\0';
    return (ssize_t)got;
}

ssize_t readnb(rbuf_t *rp, void *usrbuf, size_t n)
{
    char *out = usrbuf;
    size_t got = 0;

    while (got < n) {
        size_t take;

        if (rp->cnt == 0) {
            ssize_t r = fill(rp);
            if (r < 0)
                return -1;
            if (r == 0)
                break; /* end of file */
        }
        take = rp->cnt < n - got ? rp->cnt : n - got;
        memcpy(out + got, rp->next, take);
        rp->next += take;
        rp->cnt -= take;
        got += take;
    }
    return (ssize_t)got;
}

/* ------------------------------------------------------------------ */
/* Processes, threads, signals, memory                                */
/* ------------------------------------------------------------------ */

pid_t Fork(void)
{
    pid_t pid = fork();
    if (pid < 0)
        unix_error("fork");
    return pid;
}

void Close(int fd)
{
    /* On Linux the descriptor is released even if close() reports EINTR,
     * so retrying could close someone else's descriptor.  EBADF means the
     * program closed something twice (or never opened it): a real bug. */
    if (close(fd) < 0 && errno != EINTR)
        unix_error("close");
}

void *Malloc(size_t size)
{
    void *p = malloc(size);
    if (p == NULL)
        unix_error("malloc");
    return p;
}

void Free(void *ptr)
{
    free(ptr);
}

void Pthread_create(pthread_t *tid, const pthread_attr_t *attr,
                    void *(*routine)(void *), void *arg)
{
    int rc = pthread_create(tid, attr, routine, arg);
    if (rc != 0) /* pthread functions return the error, not errno */
        posix_error(rc, "pthread_create");
}

void Pthread_detach(pthread_t tid)
{
    int rc = pthread_detach(tid);
    if (rc != 0)
        posix_error(rc, "pthread_detach");
}

void Pthread_join(pthread_t tid, void **retval)
{
    int rc = pthread_join(tid, retval);
    if (rc != 0)
        posix_error(rc, "pthread_join");
}

handler_t *Signal(int signum, handler_t *handler)
{
    struct sigaction action, old;

    memset(&action, 0, sizeof(action));
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask); /* signum itself is blocked anyway */
    action.sa_flags = SA_RESTART; /* restart slow calls (accept, read) */
    if (sigaction(signum, &action, &old) < 0)
        unix_error("sigaction");
    return old.sa_handler;
}
