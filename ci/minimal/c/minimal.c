/* The C baseline for ci/minimal.sh: the same steps as ci/minimal/src/main.rs,
 * with raw libc calls, built with `musl-gcc -Os -static -s`.
 * make a pipe (close-on-exec), write token 42, read it back, close the
 * write end, check that the next read is end of stream, close the read end.
 * Exit 0 on success, a distinct non-zero code on each failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static int token_write(int fd, unsigned char token)
{
    for (;;) {
        ssize_t r = write(fd, &token, 1);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1; /* TS_ERR */
        }
        return r == 0 ? -2 /* TS_EOS */ : 0;
    }
}

static int token_read(int fd)
{
    for (;;) {
        unsigned char token;
        ssize_t r = read(fd, &token, 1);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1; /* TS_ERR */
        }
        return r == 0 ? -2 /* TS_EOS */ : token;
    }
}

int main(void)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return 1;
    if (token_write(fds[1], 42) != 0) return 2;
    if (token_read(fds[0]) != 42) return 3;
    if (close(fds[1]) != 0) return 4;
    if (token_read(fds[0]) != -2) return 5;
    if (close(fds[0]) != 0) return 6;
    return 0;
}
