/*
 * echoserverp.c - PROCESS-BASED concurrent echo server.
 *
 *   ./echoserverp <port>
 *
 * As handed out this is the ITERATIVE echo server from lecture: accept one
 * client, echo until it sends end of file, close, accept the next.  While
 * one client is connected every other client waits in the listen backlog:
 * the "fundamental flaw of iterative servers".
 *
 * Your job: make it concurrent the process-based way, one child process
 * per client.  Follow the TODOs.  The kernel interleaves the children for
 * you; what you must get right is the bookkeeping around fork:
 *   - every descriptor exists in BOTH processes after fork (refcnt = 2);
 *   - every child that exits must be reaped, or it stays a zombie;
 *   - signals do not queue, and signal handlers interrupt the program at
 *     arbitrary points.
 */
#include "echolib.h"

void echo(int connfd);

/*
 * TODO (zombies, signal.safety, liveness.churn): write a SIGCHLD handler
 * that reaps children.
 *   - Several children can exit while one SIGCHLD is pending, and pending
 *     signals do not queue: one signal may stand for many dead children.
 *     So reap in a loop until there is nobody left to reap, and never block
 *     in the handler (the server has live children too): see WNOHANG.
 *   - The handler interrupts main at an arbitrary instruction, possibly in
 *     the middle of printf or malloc while they hold a lock.  Call only
 *     async-signal-safe functions (see `man 7 signal-safety`): no printf,
 *     no malloc/free, no exit, none of the echolib wrappers.
 *   - waitpid sets errno; main may be looking at errno when the handler
 *     runs.  Save errno on entry and restore it before returning.
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
     * its connection raises SIGPIPE, whose default action kills the
     * process.  Ignore SIGPIPE (Signal) so the write fails with EPIPE
     * instead, and echo() gives up on that one client. */

    /* TODO (zombies): install your SIGCHLD handler with Signal() before the
     * first fork, so that no child can exit before it is in place. */

    listenfd = Open_listenfd(argv[1]);
    while (1) {
        clientlen = sizeof(clientaddr);
        connfd = Accept(listenfd, (SA *)&clientaddr, &clientlen);

        /* TODO (concurrency.*): serve the client in a child process.
         *   Child:  close its copy of listenfd (leak.listenfd: the child
         *           never accepts, and must not keep the listening socket
         *           open), echo, close connfd, exit.  The child must never
         *           get back to the top of this loop.
         *   Parent: close its copy of connfd (leak.fd: the connection is
         *           only really closed when EVERY copy is closed; until
         *           then the client sees no end of file and the server's
         *           socket sits in CLOSE_WAIT), then go straight back to
         *           Accept. */
        echo(connfd);
        Close(connfd);
    }
}

/*
 * echo - echo every byte the client sends back to it, until end of file.
 * Lines may be longer than MAXLINE (they arrive in pieces) and may contain
 * NUL bytes, so the byte count comes from readlineb, never from strlen.
 * If the client goes away (read or write error) we simply return: that
 * client is gone, the server carries on.
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
