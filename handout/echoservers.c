/*
 * echoservers.c - EVENT-BASED concurrent echo server (I/O multiplexing).
 *
 *   ./echoservers <port>
 *
 * As handed out this is the ITERATIVE echo server from lecture: accept one
 * client, echo until it sends end of file, close, accept the next.  While
 * one client is connected every other client waits in the listen backlog.
 *
 * Your job: make it concurrent the event-based way: ONE process, ONE
 * thread, and you interleave the logical flows yourself.  The server keeps
 * a set of active connections and repeats:
 *   1. ask select() or poll() which descriptors have an event pending;
 *   2. if listenfd is readable, accept the new connection and add it;
 *   3. service every connfd that has an event pending;
 * and goes back to 1.  Nothing else may ever make it wait: one call that
 * blocks on one client (a read with no data, a write the client is not
 * reading, a readlineb on half a line) stops every other client too.
 *
 * Follow the TODOs.  Echo() below is fine for an iterative server and for
 * the process and thread designs, but it has no place in an event loop:
 * it blocks, and it keeps bytes in an rbuf_t that select/poll cannot see.
 */
#include "echolib.h"

void echo(int connfd);

/*
 * TODO (concurrency.*): the pool of active connections.  For each client
 * keep (at least) its connfd and its own buffer of bytes received but not
 * yet echoed back.  An array indexed by slot or by fd is enough; mark free
 * slots with -1, as in lecture.
 *   - concurrency.many: the grader connects 100 clients at once.  Size the
 *     pool for that and more; never index past the end of an array.  If
 *     you use select, a descriptor must be below FD_SETSIZE (1024).
 *   - An echo server never needs to know where a line ends: bytes in,
 *     the same bytes out, in order.  What you do need is somewhere to keep
 *     the bytes the client's socket would not accept yet.
 *   - race.connfd: one client's bytes go to that client alone.  Keep each
 *     client's buffer with that client, and reset a slot when it is reused.
 */

int main(int argc, char **argv)
{
    int listenfd, connfd;
    socklen_t clientlen;
    struct sockaddr_storage clientaddr;

    if (argc != 2) {
        fprintf(stderr, "usage: %s <port>\n", argv[0]);
        exit(2);
    }

    /* TODO (robust.sigpipe): writing to a client that has already closed
     * its connection raises SIGPIPE, whose default action kills the WHOLE
     * server, every client with it.  Ignore SIGPIPE (Signal) so the write
     * fails with EPIPE instead, and drop that one client. */

    listenfd = Open_listenfd(argv[1]);

    /* TODO (concurrency.overlap, concurrency.partial-line): make every
     * descriptor non-blocking (Set_nonblocking: listenfd, and each connfd
     * as you accept it), so that a read, write or accept that cannot make
     * progress returns EAGAIN instead of stopping the whole server. */

    while (1) {
        /* TODO: replace this body with the event loop.
         *   - Watch listenfd for input; watch each client for input, and
         *     for "writable" only while it has bytes waiting to go back.
         *   - listenfd ready: Accept (it returns -1/EAGAIN when nothing is
         *     pending), make the connfd non-blocking, add it to the pool.
         *   - connfd readable: ONE read() of what is there into that
         *     client's buffer, then try to write it back.  Never
         *     readlineb() here (concurrency.partial-line: a client that has
         *     sent half a line would block the server until it sends the
         *     rest), and never loop until the client has nothing left
         *     (fairness: a client that streams without pause would starve
         *     everyone else).  A bounded amount of work per client per
         *     round.
         *   - write(): a short write or EAGAIN means the client is not
         *     reading fast enough.  Keep the rest and finish it when the
         *     socket is writable again.  While that client's buffer is
         *     full, stop reading from it (the kernel then slows it down).
         *   - read() == 0: end of file.  Echo back whatever is still
         *     buffered (echo.large: the last line may have no '\n' and
         *     arrive just before the client half-closes), THEN close connfd
         *     and free the slot (leak.fd).
         *   - read()/write() error (ECONNRESET, EPIPE): close connfd and
         *     free the slot.  Never exit because one client misbehaved.
         *   - Select/Poll return -1 with errno EINTR if a signal arrives:
         *     just go round again. */
        clientlen = sizeof(clientaddr);
        connfd = Accept(listenfd, (SA *)&clientaddr, &clientlen);
        echo(connfd);
        Close(connfd);
    }
}

/*
 * echo - echo every byte the client sends back to it, until end of file.
 * Used only by the iterative version: see the comment at the top.
 */
void echo(int connfd)
{
    char buf[MAXLINE];
    rbuf_t rb;
    ssize_t n;

    readinitb(&rb, connfd);
    while ((n = readlineb(&rb, buf, MAXLINE)) > 0) {
        if (writen(connfd, buf, (size_t)n) < 0)
            return;
    }
}
