/*
 * echoclient.c - the echo client.
 *
 *   ./echoclient <host> <port>
 *
 * Reads lines from stdin, sends each one to the server, waits for the echo
 * and prints it.  At end of input it half-closes the connection (the server
 * sees end of file) and exits once the server has closed its side too.
 *
 * It is the textbook client with a few changes so that you can test the
 * hard cases by hand:
 *   - getline() instead of fgets(), so a line may contain NUL bytes;
 *   - a long line is sent in pieces of at most MAXLINE-1 bytes, and each
 *     piece's echo is read back before the next is sent (what fgets(buf,
 *     MAXLINE) does in the textbook client).  A client that sends a huge
 *     line in one go, to a server that echoes it piece by piece, deadlocks
 *     once the line outgrows the socket buffers: both sides block in
 *     write(), each waiting for the other to read;
 *   - a last line without '\n' is sent, then the connection half-closed
 *     (shutdown), and only then is its echo read: a server that reads
 *     lines only learns that this line is complete from the end of file.
 *
 * Try two of these against an iterative server: the second connects and
 * sends at once (TCP listen backlog), then blocks waiting for its echo
 * until the first one quits.
 */
#include "echolib.h"

int main(int argc, char **argv)
{
    int clientfd, halfclosed = 0;
    char *line = NULL, echo[MAXLINE], extra[256];
    size_t linecap = 0, off, len;
    ssize_t n, got;
    rbuf_t rb;

    if (argc != 3) {
        fprintf(stderr, "usage: %s <host> <port>\n", argv[0]);
        exit(2);
    }

    clientfd = Open_clientfd(argv[1], argv[2]);
    readinitb(&rb, clientfd);

    while ((n = getline(&line, &linecap, stdin)) > 0) {
        /* Only the last line of the input can lack a '\n'. */
        int last = line[n - 1] != '\n';

        for (off = 0; off < (size_t)n; off += len) {
            len = (size_t)n - off;
            if (len > MAXLINE - 1)
                len = MAXLINE - 1;
            if (writen(clientfd, line + off, len) < 0)
                unix_error("write to server");
            if (last && off + len == (size_t)n) {
                if (shutdown(clientfd, SHUT_WR) < 0)
                    unix_error("shutdown");
                halfclosed = 1;
            }
            got = readnb(&rb, echo, len);
            if (got < 0)
                unix_error("read from server");
            fwrite(echo, 1, (size_t)got, stdout);
            fflush(stdout);
            if ((size_t)got < len)
                app_error("server closed the connection before echoing "
                          "everything");
        }
    }

    /* Half-close: tell the server we are done sending, then wait for it to
     * close its side.  Anything it sends now was never sent to it. */
    if (!halfclosed && shutdown(clientfd, SHUT_WR) < 0)
        unix_error("shutdown");
    if (readnb(&rb, extra, sizeof(extra)) > 0)
        app_error("server sent bytes nobody sent it");

    Free(line);
    Close(clientfd);
    return 0;
}
