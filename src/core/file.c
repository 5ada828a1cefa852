/* file.c - whole-file reads, atomic writes, mkdir -p. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

int al_read_file(const char *path, size_t max, char **out, size_t *out_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return AL_ERR;
    al_buf_t b;
    al_buf_init(&b);
    char tmp[8192];
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            al_buf_free(&b);
            errno = e;
            return AL_ERR;
        }
        if (n == 0)
            break;
        if (b.len + (size_t)n > max || al_buf_append(&b, tmp, (size_t)n) != AL_OK) {
            close(fd);
            al_buf_free(&b);
            errno = b.oom ? ENOMEM : EFBIG;
            return AL_ERR;
        }
    }
    close(fd);
    if (al_buf_append(&b, "", 0) != AL_OK) {
        al_buf_free(&b);
        errno = ENOMEM;
        return AL_ERR;
    }
    *out = b.p;
    if (out_len)
        *out_len = b.len;
    return AL_OK;
}

int al_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return AL_ERR;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return AL_ERR;
    const char *p = data;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto fail;
        off += (size_t)w;
    }
    if (fchmod(fd, mode) != 0 || fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto fail;
    return AL_OK;
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = e;
    return AL_ERR;
}

int al_mkdir_p(const char *path, mode_t mode)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        errno = EINVAL;
        return AL_ERR;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, mode) != 0 && errno != EEXIST)
                return AL_ERR;
            buf[i] = c;
        }
    }
    return AL_OK;
}
