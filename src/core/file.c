// file.c — whole-file reads, atomic writes (temporary name + fsync + rename), mkdir -p.
#include "steerclear/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

sc_status sc_read_file(const char *path, char **out, size_t *out_len) {
    *out = NULL;
    if (out_len) *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot open for reading: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return sc_errorf(SC_ERR_IO, "%s: cannot seek: %s", path, strerror(errno)); }
    long n = ftell(f);
    if (n < 0) { fclose(f); return sc_errorf(SC_ERR_IO, "%s: cannot tell size: %s", path, strerror(errno)); }
    rewind(f);
    char *buf = sc_malloc((size_t)n + 1, path);
    if (!buf) { fclose(f); return SC_ERR_MEM; }
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    if (got != (size_t)n) { free(buf); return sc_errorf(SC_ERR_IO, "%s: read %zu of %ld bytes", path, got, n); }
    buf[n] = '\0';
    *out = buf;
    if (out_len) *out_len = (size_t)n;
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
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot open for writing: %s (check the directory exists and is writable)", tmp, strerror(errno));
    size_t put = len ? fwrite(data, 1, len, f) : 0;
    int ok = put == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0) ok = 0;
    if (!ok) { unlink(tmp); return sc_errorf(SC_ERR_IO, "%s: write failed (%zu of %zu bytes): %s (disk full?)", path, put, len, strerror(errno)); }
    if (rename(tmp, path) != 0) { unlink(tmp); return sc_errorf(SC_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno)); }
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
