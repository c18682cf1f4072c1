/*
 * echoservert.c - THREAD-BASED concurrent echo server.
 *
 *   ./echoservert <port>
 *
 * As handed out this is the ITERATIVE echo server from lecture: accept one
 * client, echo until it sends end of file, close, accept the next.  While
 * one client is connected every other client waits in the listen backlog.
 *
 * Your job: make it concurrent the thread-based way, one peer thread per
 * client.  Follow the TODOs.  Threads are cheaper than processes, but ALL
 * memory is shared: the main thread's stack, the heap, globals.  The hard
 * part is not creating the threads, it is avoiding unintended sharing.
 */
#include "echolib.h"

void echo(int connfd);

/*
 * TODO (concurrency.*): write the thread routine, void *thread(void *vargp).
 *   - It gets the connected descriptor through vargp (see race.connfd in
 *     main below), copies it into a local variable, and releases the
 *     storage it came in.
 *   - leak.threads: a thread is created joinable, and a joinable thread
 *     that finishes keeps its stack until someone joins it.  Nobody is
 *     going to join these, so each thread should detach itself.
 *   - It echoes, then closes its connfd (leak.fd: in this design only the
 *     thread ever closes it; nobody else will).
 *   - Everything it calls must be thread-safe.  echo() below is: its
 *     buffers are local, so each thread has its own on its own stack.
 *     Keep it that way (no static buffers, no shared rbuf_t).
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
     * process, every client with it.  Ignore SIGPIPE (Signal) so the write
     * fails with EPIPE instead, and echo() gives up on that one client. */

    listenfd = Open_listenfd(argv[1]);
    while (1) {
        clientlen = sizeof(clientaddr);
        connfd = Accept(listenfd, (SA *)&clientaddr, &clientlen);

        /* TODO (concurrency.*, race.connfd): hand the connection to a new
         * peer thread (Pthread_create) instead of serving it here.
         *   The connfd must be passed in its own storage, one per
         *   connection, that nothing else writes to.  Passing &connfd (the
         *   address of this variable on the main thread's stack) is a race:
         *   by the time the new thread reads it, main may already have
         *   stored the NEXT client's descriptor there, and two threads
         *   serve one client while another client is never served.  It
         *   "works" when you test by hand and fails under a burst of
         *   simultaneous connects.
         *   Then the main thread goes straight back to Accept: it does NOT
         *   close connfd (the thread owns it now). */
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
