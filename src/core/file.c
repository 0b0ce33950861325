// file.c — whole-file reads, atomic writes (temporary name + fsync + rename), mkdir -p.
#include "steerclear/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// What a path is, for messages: "a directory", "a FIFO", ...
static const char *kind_of(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

sc_status sc_open_regular(const char *path, int *fd_out, size_t *size) {
    *fd_out = -1;
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return sc_errorf(SC_ERR_IO, "%s: cannot open for reading: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) { int e = errno; close(fd); return sc_errorf(SC_ERR_IO, "%s: cannot stat: %s", path, strerror(e)); }
    if (!S_ISREG(sb.st_mode)) { close(fd); return sc_errorf(SC_ERR_IO, "%s is %s, not a file: give the path of the file itself", path, kind_of(sb.st_mode)); }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    *fd_out = fd;
    *size = (size_t)sb.st_size;
    return SC_OK;
}

sc_status sc_read_file(const char *path, char **out, size_t *out_len) {
    *out = NULL;
    if (out_len) *out_len = 0;
    int fd;
    size_t n;
    SC_TRY(sc_open_regular(path, &fd, &n));
    char *buf = sc_malloc(n + 1, path);
    if (!buf) { close(fd); return SC_ERR_MEM; }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            free(buf);
            close(fd);
            return sc_errorf(SC_ERR_IO, "%s: read stopped after %zu of %zu bytes: %s", path, got, n, r < 0 ? strerror(e) : "the file shrank while being read");
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    if (out_len) *out_len = n;
    return SC_OK;
}

sc_status sc_commit_file(const char *tmp_path, const char *path) {
    int fd = open(tmp_path, O_RDONLY);
    if (fd >= 0) { fsync(fd); close(fd); }
    if (rename(tmp_path, path) != 0)
        return sc_errorf(SC_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp_path, strerror(errno));
    return SC_OK;
}

sc_status sc_write_file_atomic(const char *path, const void *data, size_t len) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return sc_errorf(SC_ERR_ARG, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return sc_errorf(SC_ERR_IO, "%s: cannot open for writing: %s (check the directory exists and is writable)", tmp, strerror(errno));
    const char *p = data, *what = NULL;
    size_t put = 0;
    int err = 0;
    while (put < len) {
        ssize_t w = write(fd, p + put, len - put);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { err = w < 0 ? errno : ENOSPC; what = "writing"; break; }
        put += (size_t)w;
    }
    if (!what && fsync(fd) != 0) { err = errno; what = "flushing to disk"; }
    if (close(fd) != 0 && !what) { err = errno; what = "closing"; }
    if (what) {
        unlink(tmp);
        return sc_errorf(SC_ERR_IO, "%s: %s failed after %zu of %zu bytes: %s%s; the previous %s is untouched", path, what, put, len,
                         strerror(err), err == ENOSPC || err == EDQUOT ? " (free some space or raise the quota)" : "", path);
    }
    if (rename(tmp, path) != 0) { int e = errno; unlink(tmp); return sc_errorf(SC_ERR_IO, "%s: cannot rename into place: %s", path, strerror(e)); }
    return SC_OK;
}

sc_status sc_mkdir_p(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return sc_errorf(SC_ERR_ARG, "directory path '%s' is empty or too long", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return sc_errorf(SC_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return sc_errorf(SC_ERR_IO, "%s: exists but is not a directory", path);
    return SC_OK;
}

int sc_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

double sc_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb; (void)type; (void)ftw;
    return remove(path);
}

sc_status sc_remove_tree(const char *path) {
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && sc_file_exists(path))
        return sc_errorf(SC_ERR_IO, "%s: cannot remove it; remove it by hand", path);
    return SC_OK;
}
