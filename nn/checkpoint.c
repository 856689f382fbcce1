/* Checkpoints in the safetensors format: an 8-byte little-endian header
 * length N, N bytes of JSON giving each tensor's dtype, shape and byte range
 * [begin, end) in the data section that follows, then the raw data
 * (little-endian, C order). cgrad's extras live in "__metadata__", which
 * safetensors limits to strings: "cgrad.optimizer" (the kind), "cgrad.step",
 * "cgrad.optimizer.state" and "cgrad.scheduler" (text from the optimizer's
 * and schedule's hooks in internal.h) and "cgrad.rng". Files written before
 * the two hook keys existed still load.
 *
 * Loading reads and checks the whole file, then plans every copy (which
 * file bytes go into which tensor) before it writes anything, so any error
 * leaves the model, the optimizer, the schedule and the rng exactly as they
 * were: the hooks validate their text first (apply false) and apply it only
 * after every check passed. */
#include "internal.h"
#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Tensor bytes go to the file as they lie in memory, which is the format's
 * little-endian order only on a little-endian host (x86-64, arm64). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cgrad checkpoints assume a little-endian host"
#endif

#define MAX_HEADER ((uint64_t)100 << 20) /* the safetensors reference's own limit */
#define KEY_MAX    128                   /* "optimizer." and an optimizer state name */

/* safetensors' dtypes with their sizes, so that a file's other tensors (a
 * PyTorch file's bf16 extras) can be checked and skipped; cg < 0: not cgrad's. */
typedef struct st_dtype {
    const char *name;
    uint64_t size;
    int cg;
} st_dtype;

static const st_dtype dtypes[] = {
    {"F32", 4, CG_F32}, {"F64", 8, CG_F64}, {"I64", 8, CG_I64}, {"BOOL", 1, -1}, {"U8", 1, -1},
    {"I8", 1, -1},      {"F8_E4M3", 1, -1}, {"F8_E5M2", 1, -1}, {"I16", 2, -1},  {"U16", 2, -1},
    {"F16", 2, -1},     {"BF16", 2, -1},    {"I32", 4, -1},     {"U32", 4, -1},  {"U64", 8, -1},
};
#define NDTYPES (int)(sizeof dtypes / sizeof dtypes[0])

static const st_dtype *dtype_named(const char *name) {
    for (int i = 0; i < NDTYPES; i++)
        if (!strcmp(dtypes[i].name, name)) return &dtypes[i];
    return NULL;
}

static const st_dtype *dtype_of(cg_dtype dt) {
    for (int i = 0; i < NDTYPES; i++)
        if (dtypes[i].cg == (int)dt) return &dtypes[i];
    return NULL;
}

/* ---- saving -------------------------------------------------------------------------- */
/* One tensor to write under its file name: the module's or the caller's
 * string, or buf ("optimizer.<name>"). */
typedef struct item {
    const char *name;
    char buf[KEY_MAX];
    const cg_tensor *t;
} item;

/* What a save writes: tensors, then the metadata values (NULL: absent). */
typedef struct saving {
    const char *fn; /* the public function, for messages */
    item *items;
    int n;
    const cg_optim *o;
    char *optim_text, *sched_text; /* the hooks' text, malloc'd */
    const cg_rng *rng;
} saving;

static uint64_t tensor_bytes(const cg_tensor *t) {
    return (uint64_t)cg_numel(t) * cg_dtype_size(cg_dtype_of(t));
}

/* The module's state in state_dict order, then the optimizer's. A tensor
 * tied under two names is written twice, once under each, as PyTorch's
 * state_dict lists it. */
static cg_status collect(saving *S, const cg_module *m, const cg_optim *o) {
    const char *name;
    for (int i = 0; i < cg_module_nstate(m); i++, S->n++) {
        S->items[S->n].t = cg_module_state(m, i, &name, NULL);
        S->items[S->n].name = name; /* lives as long as m */
    }
    for (int i = 0; o && i < cg_optim_nstate(o); i++, S->n++) {
        item *it = &S->items[S->n];
        it->t = cg_optim_state(o, i, &name);
        it->name = it->buf;
        if (!it->t || !name || snprintf(it->buf, KEY_MAX, "optimizer.%s", name) >= KEY_MAX)
            return cgi_error(NULL, CG_ERR_STATE,
                             "cg_save: optimizer state %d has no "
                             "usable name",
                             i);
    }
    return CG_OK;
}

/* A hook's text, or its failure as an error of cg_save. */
static cg_status hook_text(char *text, const char *what, char **out) {
    char why[256];
    *out = text;
    if (text) return CG_OK;
    cg_status st = cg_last_status() != CG_OK ? cg_last_status() : CG_ERR_NOMEM;
    snprintf(why, sizeof why, "%s", cg_last_error()); /* cgi_error rewrites it */
    return cgi_error(NULL, st, "cg_save: %s state: %s", what, why);
}

static void write_metadata(cgi_jbuf *b, const saving *S) {
    cgi_jbuf_printf(b, "{\"__metadata__\":{\"format\":\"pt\"");
    if (S->o) {
        cgi_jbuf_printf(b, ",\"cgrad.optimizer\":");
        cgi_jbuf_string(b, cg_optim_name(S->o));
        cgi_jbuf_printf(b, ",\"cgrad.step\":\"%" PRId64 "\"", cg_optim_steps(S->o));
    }
    if (S->optim_text) {
        cgi_jbuf_printf(b, ",\"cgrad.optimizer.state\":");
        cgi_jbuf_string(b, S->optim_text);
    }
    if (S->sched_text) {
        cgi_jbuf_printf(b, ",\"cgrad.scheduler\":");
        cgi_jbuf_string(b, S->sched_text);
    }
    const cg_rng *r = S->rng;
    if (r)
        cgi_jbuf_printf(
            b, ",\"cgrad.rng\":\"%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "\"",
            r->s[0], r->s[1], r->s[2], r->s[3]);
    cgi_jbuf_printf(b, "}");
}

/* The header text: metadata, then the tensors laid out back to back in
 * order, then spaces so the data starts 8-aligned (as PyTorch pads). */
static void write_header(cgi_jbuf *b, const saving *S) {
    uint64_t off = 0;
    write_metadata(b, S);
    for (int i = 0; i < S->n; i++) {
        const cg_tensor *t = S->items[i].t;
        cgi_jbuf_printf(b, ",");
        cgi_jbuf_string(b, S->items[i].name);
        cgi_jbuf_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", dtype_of(cg_dtype_of(t))->name);
        for (int d = 0; d < cg_ndim(t); d++)
            cgi_jbuf_printf(b, "%s%" PRId64, d ? "," : "", cg_shape(t)[d]);
        cgi_jbuf_printf(b, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off,
                        off + tensor_bytes(t));
        off += tensor_bytes(t);
    }
    cgi_jbuf_printf(b, "}");
    while (!b->failed && b->len % 8) cgi_jbuf_printf(b, " ");
}

/* Non-contiguous tensors (views) are written as their values, in C order. */
static bool write_tensor(FILE *f, const cg_tensor *t) {
    size_t nbytes = (size_t)tensor_bytes(t);
    if (nbytes == 0) return true;
    if (cg_is_contiguous(t)) return fwrite(cg_data(t), 1, nbytes, f) == nbytes;
    void *buf = malloc(nbytes);
    bool ok = buf && cg_copy_to_array(t, cg_dtype_of(t), buf) == CG_OK &&
              fwrite(buf, 1, nbytes, f) == nbytes;
    free(buf);
    return ok;
}

static bool write_all(FILE *f, const cgi_jbuf *h, const saving *S) {
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h->len >> (8 * i));
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h->data, 1, h->len, f) == h->len;
    for (int i = 0; ok && i < S->n; i++) ok = write_tensor(f, S->items[i].t);
    return ok;
}

/* Temporaries are "<path>.tmp.<pid>.XXXXXX": the pid says whose it is, so a
 * later save can remove those a killed process left (sweep_stale). */
#define TMP_EXTRA 40 /* ".tmp." + up to 20 digits + "." + 6 + NUL, and spare */
static const char TMP_CHARS[] = "abcdefghijklmnopqrstuvwxyz"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/* Creates a new file "<path>.tmp.<pid>.XXXXXX" (tmp: strlen(path) +
 * TMP_EXTRA bytes) next to path, as mkstemp does: O_EXCL, so it never follows
 * a link planted there and two savers never share one. Unlike mkstemp's 0600
 * the mode is 0666 less the umask, what fopen gives, so a checkpoint is not
 * made private. */
static int open_temp(const char *path, char *tmp) {
    struct timespec ts;
    int len = snprintf(tmp, strlen(path) + TMP_EXTRA, "%s.tmp.%ld.", path, (long)getpid());
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)getpid() << 40 ^
                 (uint64_t)(uintptr_t)tmp;
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t z = x += UINT64_C(0x9e3779b97f4a7c15); /* splitmix64 */
        z = (z ^ z >> 30) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ z >> 27) * UINT64_C(0x94d049bb133111eb);
        z ^= z >> 31;
        for (int i = 0; i < 6; i++, z /= 62) tmp[len + i] = TMP_CHARS[z % 62];
        tmp[len + 6] = 0;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    return -1; /* errno EEXIST */
}

/* The pid of a temporary of base's ("<base>.tmp.<pid>.XXXXXX"), else 0. */
static long temp_owner(const char *name, const char *base) {
    size_t n = strlen(base);
    if (strncmp(name, base, n) != 0 || strncmp(name + n, ".tmp.", 5) != 0) return 0;
    const char *p = name + n + 5;
    long pid = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 18; p++, digits++) pid = pid * 10 + (*p - '0');
    if (!digits || *p != '.' || strlen(p + 1) != 6 || strspn(p + 1, TMP_CHARS) != 6) return 0;
    return pid;
}

/* Removes the temporaries of path whose writer is gone (killed during a
 * save): those of processes that no longer exist on this machine. A live
 * process's temporaries stay, and so do those of a process with a reused pid
 * (harmless: removed once that process ends). Errors are ignored: this is
 * tidying, the save itself has succeeded. */
static void sweep_stale(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1,
             slash ? path : ".");
    DIR *d = opendir(dir);
    if (!d) return;
    const char *base = slash ? slash + 1 : path;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        long pid = temp_owner(e->d_name, base);
        if (pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

/* fsync on path's directory makes the rename itself durable. */
static int sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t len = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *dir = malloc(len + 1);
    if (!dir) return ENOMEM;
    memcpy(dir, slash ? path : ".", len);
    dir[len] = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;
    free(dir);
    if (fd < 0) return errno;
    /* some file systems cannot sync a directory (EINVAL): nothing more to do there */
    if (fsync(fd) != 0 && errno != EINVAL) err = errno;
    close(fd);
    return err;
}

/* Writes tmp completely and durably; false with *err (an errno, 0 for a
 * failed conversion) on any failure. Closes fd. */
static bool write_temp(int fd, const cgi_jbuf *h, const saving *S, int *err) {
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        *err = errno;
        close(fd);
        return false;
    }
    errno = 0;
    bool ok = write_all(f, h, S) && fflush(f) == 0 && fsync(fileno(f)) == 0;
    *err = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        *err = errno;
    }
    return ok;
}

/* The file goes to a unique temporary next to path, which is synced and
 * renamed over path, then the directory is synced: a crash at any point
 * leaves either the old file or the new one, never half of one, and a
 * failure removes the temporary. */
static cg_status write_file(const char *path, const cgi_jbuf *h, const saving *S) {
    char *tmp = malloc(strlen(path) + TMP_EXTRA);
    if (!tmp) return cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", S->fn);
    int fd = open_temp(path, tmp), err = errno;
    bool ok = fd >= 0 && write_temp(fd, h, S, &err);
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        err = errno;
    }
    if (fd >= 0 && !ok) remove(tmp);
    free(tmp);
    if (!ok)
        return cgi_error(NULL, CG_ERR_IO, "%s: %s: %s", S->fn, path,
                         err ? strerror(err) : "write failed");
    if ((err = sync_dir(path)) != 0)
        return cgi_error(NULL, CG_ERR_IO,
                         "%s: %s: written, but syncing its directory "
                         "failed: %s",
                         S->fn, path, strerror(err));
    sweep_stale(path);
    return CG_OK;
}

static cg_status save_items(const char *path, const saving *S) {
    cgi_jbuf h = {0};
    write_header(&h, S);
    cg_status st = h.failed ? cgi_error(NULL, CG_ERR_NOMEM, "%s: out of memory", S->fn)
                            : write_file(path, &h, S);
    cgi_jbuf_free(&h);
    return st;
}

cg_status cg_save(const char *path, const cg_module *m, const cg_optim *o, const cg_sched *s,
                  const cg_rng *rng) {
    if (!path || !m) return cgi_error(NULL, CG_ERR_ARG, "cg_save: path or module is NULL");
    int cap = cg_module_nstate(m) + (o ? cg_optim_nstate(o) : 0);
    saving S = {.fn = "cg_save", .o = o, .rng = rng};
    S.items = malloc(sizeof *S.items * (size_t)(cap > 0 ? cap : 1));
    cg_status st =
        S.items ? collect(&S, m, o) : cgi_error(NULL, CG_ERR_NOMEM, "cg_save: out of memory");
    if (st == CG_OK && o) st = hook_text(cgi_optim_meta(o), "optimizer", &S.optim_text);
    if (st == CG_OK && s) st = hook_text(cgi_sched_meta(s), "schedule", &S.sched_text);
    if (st == CG_OK) st = save_items(path, &S);
    free(S.optim_text);
    free(S.sched_text);
    free(S.items);
    return st;
}

static int by_string(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Names: none NULL, none "__metadata__" (the format's own key), no repeats;
 * tensors live (a NULL one made by a failed op keeps that op's error). */
static cg_status check_names(int n, const char *const *names, const cg_tensor *const *ts) {
    for (int i = 0; i < n; i++) {
        if (!names[i])
            return cgi_error(NULL, CG_ERR_ARG, "cg_save_tensors: name %d is NULL", i);
        if (!ts[i] && cg_last_status() == CG_OK)
            return cgi_error(NULL, CG_ERR_ARG, "cg_save_tensors: tensor %d is NULL", i);
        if (!ts[i]) return CG_ERR_ARG;
        if (cgi_stale(ts[i]))
            return cgi_stale_error_as(NULL, "cg_save_tensors", "tensor", i, ts[i]);
        if (!strcmp(names[i], "__metadata__"))
            return cgi_error(NULL, CG_ERR_ARG,
                             "cg_save_tensors: name %d is "
                             "\"__metadata__\", the format's own key",
                             i);
    }
    const char **sorted = malloc(sizeof *sorted * (size_t)(n > 0 ? n : 1));
    if (!sorted) return cgi_error(NULL, CG_ERR_NOMEM, "cg_save_tensors: out of memory");
    if (n > 0) memcpy(sorted, names, sizeof *sorted * (size_t)n);
    qsort(sorted, (size_t)n, sizeof *sorted, by_string);
    cg_status st = CG_OK;
    for (int i = 1; i < n && st == CG_OK; i++)
        if (!strcmp(sorted[i - 1], sorted[i]))
            st = cgi_error(NULL, CG_ERR_ARG, "cg_save_tensors: the name \"%s\" appears twice",
                           sorted[i]);
    free(sorted);
    return st;
}

cg_status cg_save_tensors(const char *path, int n, const char *const *names,
                          const cg_tensor *const *tensors) {
    if (!path || n < 0 || (n > 0 && (!names || !tensors)))
        return cgi_error(NULL, CG_ERR_ARG,
                         "cg_save_tensors: path, names or tensors is NULL "
                         "or n %d < 0",
                         n);
    cg_status st = check_names(n, names, tensors);
    if (st != CG_OK) return st;
    saving S = {.fn = "cg_save_tensors", .n = n};
    S.items = calloc((size_t)(n > 0 ? n : 1), sizeof *S.items);
    if (!S.items) return cgi_error(NULL, CG_ERR_NOMEM, "cg_save_tensors: out of memory");
    for (int i = 0; i < n; i++) {
        S.items[i].name = names[i];
        S.items[i].t = tensors[i];
    }
    st = save_items(path, &S);
    free(S.items);
    return st;
}

/* ---- loading: reading and indexing the file --------------------------------------------- */
typedef struct entry {
    const char *name; /* in the parsed header */
    const st_dtype *dt;
    int ndim;
    int64_t shape[CG_MAX_DIMS];
    uint64_t begin, end; /* in the data section */
    bool used;           /* planned into a tensor (the rest is unexpected) */
} entry;

/* A planned write: src (file bytes) into dst. */
typedef struct copy {
    cg_tensor *dst, *src;
    void *tmp; /* the realigned bytes when the file's were misaligned */
} copy;

typedef struct loader {
    const char *fn; /* the public function */
    const char *path;
    char *header;
    uint64_t hlen;
    unsigned char *data; /* the data section, 64-byte aligned */
    uint64_t dlen;
    cgi_json doc;
    int meta; /* the node of "__metadata__", -1 when absent */
    entry *entries;
    int nentries;
    copy *copies;
    int ncopies;
    int64_t steps;
    const char *optim_text, *sched_text; /* the hooks' metadata, when restored */
    char where[320];                     /* "<fn>: <path>", the hooks' fn */
    cg_rng rng;
    cg_load_report report; /* collected, handed out only on success */
} loader;

/* "cg_load: <path>: <what>" with status st. */
static cg_status fail(const loader *L, cg_status st, const char *fmt, ...) CGI_PRINTF(3, 4);
static cg_status fail(const loader *L, cg_status st, const char *fmt, ...) {
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return cgi_error(NULL, st, "%s: %s: %s", L->fn, L->path, what);
}

static bool read_exact(FILE *f, void *buf, uint64_t n) {
    return n == 0 || fread(buf, 1, (size_t)n, f) == (size_t)n;
}

static cg_status read_failed(const loader *L, FILE *f) {
    if (ferror(f)) return fail(L, CG_ERR_IO, "%s", strerror(errno));
    return fail(L, CG_ERR_IO, "truncated while reading (the file shrank)");
}

static uint64_t le64(const unsigned char *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

/* The header into its own buffer and the data section into an aligned one,
 * so tensors at aligned offsets can be used in place. */
static cg_status read_parts(loader *L, FILE *f) {
    struct stat sb;
    unsigned char len8[8];
    if (fstat(fileno(f), &sb) != 0) return fail(L, CG_ERR_IO, "%s", strerror(errno));
    if (!S_ISREG(sb.st_mode)) return fail(L, CG_ERR_IO, "not a regular file");
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8)
        return fail(L, CG_ERR_IO,
                    "truncated: %" PRIu64 " bytes, a safetensors file has at "
                    "least 8",
                    size);
    if (!read_exact(f, len8, 8)) return read_failed(L, f);
    L->hlen = le64(len8);
    if (L->hlen > MAX_HEADER)
        return fail(L, CG_ERR_IO, "oversized header: %" PRIu64 " bytes (at most 100 MB)",
                    L->hlen);
    if (L->hlen > size - 8)
        return fail(L, CG_ERR_IO,
                    "truncated: a header of %" PRIu64 " bytes but only %" PRIu64
                    " bytes follow",
                    L->hlen, size - 8);
    L->dlen = size - 8 - L->hlen;
    L->header = malloc((size_t)L->hlen + 1);
    L->data = aligned_alloc(64, ((size_t)L->dlen / 64 + 1) * 64);
    if (!L->header || !L->data) return fail(L, CG_ERR_NOMEM, "out of memory");
    if (!read_exact(f, L->header, L->hlen) || !read_exact(f, L->data, L->dlen))
        return read_failed(L, f);
    return CG_OK;
}

static cg_status read_file(loader *L) {
    FILE *f = fopen(L->path, "rb");
    if (!f) return fail(L, CG_ERR_IO, "%s", strerror(errno));
    cg_status st = read_parts(L, f);
    fclose(f); /* read only: nothing to lose if closing fails */
    return st;
}

static cg_status corrupt(const loader *L, const char *key, const char *what) {
    return fail(L, CG_ERR_IO, "corrupt header: %s%s%s", key ? key : "", key ? ": " : "", what);
}

/* shape: at most CG_MAX_DIMS non-negative integers. */
static cg_status parse_shape(const loader *L, entry *e, int node) {
    const cgi_json_node *nodes = L->doc.nodes;
    if (nodes[node].type != CGI_JSON_ARRAY) return corrupt(L, e->name, "shape is no array");
    if (nodes[node].n > CG_MAX_DIMS)
        return fail(L, CG_ERR_SHAPE, "%s: rank %d, cgrad supports at most %d", e->name,
                    nodes[node].n, CG_MAX_DIMS);
    for (int c = nodes[node].first; c >= 0; c = nodes[c].next) {
        if (nodes[c].type != CGI_JSON_INT) return corrupt(L, e->name, "bad shape");
        e->shape[e->ndim++] = nodes[c].num;
    }
    return CG_OK;
}

/* The bytes shape and dtype need; false if that overflows. */
static bool entry_bytes(const entry *e, uint64_t *out) {
    uint64_t n = e->dt->size;
    for (int i = 0; i < e->ndim; i++)
        if (e->shape[i] == 0) n = 0;
    for (int i = 0; i < e->ndim && n; i++) {
        if (n > UINT64_MAX / (uint64_t)e->shape[i]) return false;
        n *= (uint64_t)e->shape[i];
    }
    *out = n;
    return true;
}

static cg_status parse_offsets(const loader *L, entry *e, int node) {
    const cgi_json_node *nodes = L->doc.nodes;
    int b = nodes[node].first, x = b >= 0 ? nodes[b].next : -1;
    uint64_t need;
    if (nodes[node].type != CGI_JSON_ARRAY || nodes[node].n != 2 ||
        nodes[b].type != CGI_JSON_INT || nodes[x].type != CGI_JSON_INT)
        return corrupt(L, e->name, "data_offsets is no pair of integers");
    e->begin = (uint64_t)nodes[b].num;
    e->end = (uint64_t)nodes[x].num;
    if (e->end < e->begin || !entry_bytes(e, &need) || e->end - e->begin != need)
        return fail(L, CG_ERR_IO,
                    "corrupt header: %s: data_offsets [%" PRIu64 ",%" PRIu64
                    "] do not fit its dtype and shape",
                    e->name, e->begin, e->end);
    if (e->end > L->dlen)
        return fail(L, CG_ERR_IO,
                    "%s: data_offsets [%" PRIu64 ",%" PRIu64 "] past the %" PRIu64
                    " data bytes: truncated or corrupt",
                    e->name, e->begin, e->end, L->dlen);
    return CG_OK;
}

static cg_status parse_entry(const loader *L, int node, entry *e) {
    const cgi_json *d = &L->doc;
    int dt = cgi_json_member(d, node, "dtype"), shape = cgi_json_member(d, node, "shape");
    int offsets = cgi_json_member(d, node, "data_offsets");
    e->name = d->nodes[node].key;
    if (dt < 0 || shape < 0 || offsets < 0)
        return corrupt(L, e->name, "needs dtype, shape and data_offsets");
    if (d->nodes[dt].type != CGI_JSON_STRING) return corrupt(L, e->name, "dtype is no string");
    e->dt = dtype_named(d->nodes[dt].str);
    if (!e->dt)
        return fail(L, CG_ERR_DTYPE, "%s: unknown dtype \"%s\"", e->name, d->nodes[dt].str);
    cg_status st = parse_shape(L, e, shape);
    return st != CG_OK ? st : parse_offsets(L, e, offsets);
}

/* safetensors' metadata maps strings to strings. */
static cg_status check_metadata(const loader *L, int node) {
    const cgi_json_node *nodes = L->doc.nodes;
    bool ok = nodes[node].type == CGI_JSON_OBJECT;
    for (int c = nodes[node].first; ok && c >= 0; c = nodes[c].next)
        ok = nodes[c].type == CGI_JSON_STRING;
    return ok ? CG_OK : corrupt(L, "__metadata__", "not a map of strings to strings");
}

static int by_begin(const void *a, const void *b) {
    const entry *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

/* No two tensors share bytes (empty ones hold none) and no name repeats;
 * leaves the entries sorted by name for find(). */
static cg_status check_layout(loader *L) {
    uint64_t reach = 0;
    qsort(L->entries, (size_t)L->nentries, sizeof *L->entries, by_begin);
    for (int i = 0; i < L->nentries; i++) {
        const entry *e = &L->entries[i];
        if (e->begin == e->end) continue;
        if (e->begin < reach)
            return corrupt(L, e->name, "its data_offsets overlap another tensor's");
        reach = e->end;
    }
    qsort(L->entries, (size_t)L->nentries, sizeof *L->entries, by_name);
    for (int i = 1; i < L->nentries; i++)
        if (!strcmp(L->entries[i - 1].name, L->entries[i].name))
            return corrupt(L, L->entries[i].name, "the key appears twice");
    return CG_OK;
}

static cg_status index_entries(loader *L) {
    char why[160];
    cg_status st = cgi_json_parse(&L->doc, L->header, (size_t)L->hlen, why, sizeof why);
    if (st == CG_ERR_NOMEM) return fail(L, st, "out of memory");
    if (st != CG_OK) return corrupt(L, NULL, why);
    const cgi_json_node *root = &L->doc.nodes[0];
    if (root->type != CGI_JSON_OBJECT) return corrupt(L, NULL, "not a JSON object");
    L->entries = calloc((size_t)root->n + 1, sizeof *L->entries);
    if (!L->entries) return fail(L, CG_ERR_NOMEM, "out of memory");
    for (int c = root->first; c >= 0 && st == CG_OK; c = L->doc.nodes[c].next) {
        if (strcmp(L->doc.nodes[c].key, "__metadata__") != 0) {
            st = L->doc.nodes[c].type == CGI_JSON_OBJECT
                     ? parse_entry(L, c, &L->entries[L->nentries++])
                     : corrupt(L, L->doc.nodes[c].key, "not an object");
        } else if (L->meta >= 0) {
            st = corrupt(L, "__metadata__", "the key appears twice");
        } else {
            L->meta = c;
            st = check_metadata(L, c);
        }
    }
    return st == CG_OK ? check_layout(L) : st;
}

/* ---- loading: planning and applying ---------------------------------------------------- */
static entry *find(const loader *L, const char *name) {
    entry key = {.name = name};
    return bsearch(&key, L->entries, (size_t)L->nentries, sizeof key, by_name);
}

/* Wraps e's bytes as a tensor; bytes at an offset misaligned for the dtype
 * (a writer that does not pad) are first copied to aligned memory. */
static cg_status plan_copy(loader *L, cg_tensor *dst, const entry *e) {
    copy *c = &L->copies[L->ncopies];
    void *p = L->data + e->begin;
    if ((uintptr_t)p % e->dt->size) {
        c->tmp = malloc((size_t)(e->end - e->begin) + 1);
        if (!c->tmp) return fail(L, CG_ERR_NOMEM, "out of memory");
        p = memcpy(c->tmp, p, (size_t)(e->end - e->begin));
    }
    c->src = cg_wrap(NULL, cg_dtype_of(dst), e->ndim, e->shape, p);
    if (!c->src) return fail(L, CG_ERR_NOMEM, "%s: cannot wrap its data", e->name);
    c->dst = dst;
    L->ncopies++;
    return CG_OK;
}

/* key must be in the file with dst's dtype and shape; `who` owns dst. */
static cg_status plan_tensor(loader *L, const char *key, cg_tensor *dst, const char *who) {
    entry *e = find(L, key);
    const st_dtype *want = dtype_of(cg_dtype_of(dst));
    char a[160], b[160];
    if (!e) return fail(L, CG_ERR_ARG, "missing key \"%s\"", key);
    if (e->dt != want)
        return fail(L, CG_ERR_DTYPE, "%s: file %s but %s %s", key, e->dt->name, who,
                    want->name);
    if (e->ndim != cg_ndim(dst) ||
        memcmp(e->shape, cg_shape(dst), sizeof(int64_t) * (size_t)e->ndim) != 0)
        return fail(L, CG_ERR_SHAPE, "%s: file %s but %s %s", key,
                    cgi_fmt_shape(a, sizeof a, e->ndim, e->shape), who,
                    cg_shape_str(dst, b, sizeof b));
    e->used = true;
    return plan_copy(L, dst, e);
}

static const char *meta_string(const loader *L, const char *key) {
    int n = cgi_json_member(&L->doc, L->meta, key);
    return n >= 0 ? L->doc.nodes[n].str : NULL; /* check_metadata: all strings */
}

/* A decimal step count: digits only, fits int64. */
static bool parse_count(const char *s, int64_t *out) {
    int64_t v = 0;
    if (!*s) return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - (*s - '0')) / 10) return false;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return true;
}

static cg_status plan_optim(loader *L, cg_optim *o) {
    const char *kind = meta_string(L, "cgrad.optimizer"), *step = meta_string(L, "cgrad.step");
    const char *name;
    char key[KEY_MAX];
    if (!kind) return fail(L, CG_ERR_ARG, "no optimizer state in the file");
    if (strcmp(kind, cg_optim_name(o)) != 0)
        return fail(L, CG_ERR_ARG, "the file holds %s state but the optimizer is %s", kind,
                    cg_optim_name(o));
    if (!step || !parse_count(step, &L->steps))
        return corrupt(L, "cgrad.step", "missing or not a step count");
    for (int i = 0; i < cg_optim_nstate(o); i++) {
        cg_tensor *t = cg_optim_state(o, i, &name);
        if (!t || !name || snprintf(key, sizeof key, "optimizer.%s", name) >= KEY_MAX)
            return fail(L, CG_ERR_STATE, "optimizer state %d has no usable name", i);
        cg_status st = plan_tensor(L, key, t, "optimizer");
        if (st != CG_OK) return st;
    }
    /* Files from before the hooks hold no hyperparameters: the optimizer
     * keeps its own, as it did then. */
    L->optim_text = meta_string(L, "cgrad.optimizer.state");
    return L->optim_text ? cgi_optim_restore_meta(o, L->optim_text, false, L->where) : CG_OK;
}

static cg_status plan_sched(loader *L, cg_sched *s) {
    L->sched_text = meta_string(L, "cgrad.scheduler");
    if (!L->sched_text) return fail(L, CG_ERR_ARG, "no schedule state in the file");
    return cgi_sched_restore_meta(s, L->sched_text, false, L->where);
}

/* "cgrad.rng": the four state words as 16 hex digits each, s[0] first. */
static cg_status plan_rng(loader *L) {
    const char *hex = meta_string(L, "cgrad.rng");
    if (!hex) return fail(L, CG_ERR_ARG, "no rng state in the file");
    bool ok = strlen(hex) == 64;
    for (int i = 0; ok && i < 64; i++) {
        int d = cgi_json_hex(hex[i]);
        ok = d >= 0;
        L->rng.s[i / 16] = L->rng.s[i / 16] << 4 | (uint64_t)(ok ? d : 0);
    }
    /* xoshiro never leaves the all-zero state, nor reaches it from another */
    if (ok) ok = (L->rng.s[0] | L->rng.s[1] | L->rng.s[2] | L->rng.s[3]) != 0;
    return ok ? CG_OK : corrupt(L, "cgrad.rng", "not 64 hex digits of a valid state");
}

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

/* Appends a copy of name to a list with room for it. */
static cg_status note(loader *L, char **list, int *n, const char *name) {
    if (!(list[*n] = dup_string(name))) return fail(L, CG_ERR_NOMEM, "out of memory");
    (*n)++;
    return CG_OK;
}

/* Every state tensor of m from the file; one absent is an error when
 * strict, else noted as missing (when a report is kept). */
static cg_status plan_module(loader *L, const cg_module *m, bool strict, bool keep) {
    cg_load_report *r = &L->report;
    if (keep && !(r->missing = calloc((size_t)cg_module_nstate(m) + 1, sizeof(char *))))
        return fail(L, CG_ERR_NOMEM, "out of memory");
    for (int i = 0; i < cg_module_nstate(m); i++) {
        const char *name;
        cg_tensor *t = cg_module_state(m, i, &name, NULL);
        cg_status st = strict || find(L, name) ? plan_tensor(L, name, t, "model")
                       : keep                  ? note(L, r->missing, &r->nmissing, name)
                                               : CG_OK;
        if (st != CG_OK) return st;
    }
    return CG_OK;
}

/* The file's tensors that went nowhere, in name order, other than the
 * optimizer's (a model-only load of a resumable file expects those). */
static cg_status note_unexpected(loader *L) {
    cg_load_report *r = &L->report;
    if (!(r->unexpected = calloc((size_t)L->nentries + 1, sizeof(char *))))
        return fail(L, CG_ERR_NOMEM, "out of memory");
    for (int i = 0; i < L->nentries; i++) {
        const entry *e = &L->entries[i];
        cg_status st = e->used || !strncmp(e->name, "optimizer.", 10)
                           ? CG_OK
                           : note(L, r->unexpected, &r->nunexpected, e->name);
        if (st != CG_OK) return st;
    }
    return CG_OK;
}

static cg_status plan_all(loader *L, const cg_module *m, cg_optim *o, cg_sched *s, bool rng,
                          bool strict, bool keep) {
    int n = cg_module_nstate(m) + (o ? cg_optim_nstate(o) : 0);
    L->copies = calloc((size_t)n + 1, sizeof *L->copies);
    if (!L->copies) return fail(L, CG_ERR_NOMEM, "out of memory");
    cg_status st = plan_module(L, m, strict, keep);
    if (st == CG_OK && o) st = plan_optim(L, o);
    if (st == CG_OK && s) st = plan_sched(L, s);
    if (st == CG_OK && rng) st = plan_rng(L);
    return st == CG_OK && keep ? note_unexpected(L) : st;
}

/* Everything is checked and wrapped: from here nothing fails (the hooks
 * promise it for text that validated). A tied tensor is copied once per
 * name, the later name's bytes last, as PyTorch's load_state_dict does. */
static cg_status apply(loader *L, cg_optim *o, cg_sched *s, cg_rng *rng) {
    cg_status st = CG_OK;
    for (int i = 0; i < L->ncopies; i++) cg_copy_(L->copies[i].dst, L->copies[i].src);
    if (o) {
        cg_optim_set_steps(o, L->steps);
        if (L->optim_text) st = cgi_optim_restore_meta(o, L->optim_text, true, L->where);
    }
    if (s && st == CG_OK) st = cgi_sched_restore_meta(s, L->sched_text, true, L->where);
    if (rng) *rng = L->rng;
    return st;
}

static void free_list(char **list, int n) {
    for (int i = 0; list && i < n; i++) free(list[i]);
    free(list);
}

void cg_load_report_free(cg_load_report *r) {
    if (!r) return;
    free_list(r->missing, r->nmissing);
    free_list(r->unexpected, r->nunexpected);
    *r = (cg_load_report){0};
}

static void loader_free(loader *L) {
    for (int i = 0; i < L->ncopies; i++) {
        cg_tensor_free(L->copies[i].src);
        free(L->copies[i].tmp);
    }
    /* a failed plan_copy may leave its tmp behind unrecorded */
    if (L->copies) free(L->copies[L->ncopies].tmp);
    free(L->copies);
    free(L->entries);
    cgi_json_free(&L->doc);
    free(L->header);
    free(L->data);
    cg_load_report_free(&L->report);
}

/* Reads and indexes path; L->fn and L->path set. */
static cg_status open_file(loader *L) {
    L->meta = -1;
    snprintf(L->where, sizeof L->where, "%s: %s", L->fn, L->path);
    cg_status st = read_file(L);
    return st == CG_OK ? index_entries(L) : st;
}

cg_load_opts cg_load_defaults(void) { return (cg_load_opts){.strict = true}; }

static cg_status load(const char *fn, const char *path, cg_module *m, cg_optim *o, cg_sched *s,
                      cg_rng *rng, const cg_load_opts *opts, cg_load_report *report) {
    if (report) *report = (cg_load_report){0};
    if (!path || !m) return cgi_error(NULL, CG_ERR_ARG, "%s: path or module is NULL", fn);
    cg_load_opts def = cg_load_defaults();
    loader L = {.fn = fn, .path = path};
    cg_status st = open_file(&L);
    if (st == CG_OK)
        st = plan_all(&L, m, o, s, rng != NULL, (opts ? opts : &def)->strict, report != NULL);
    if (st == CG_OK) st = apply(&L, o, s, rng);
    if (st == CG_OK && report) {
        *report = L.report;
        L.report = (cg_load_report){0};
    }
    loader_free(&L);
    return st;
}

cg_status cg_load(const char *path, cg_module *m, cg_optim *o, cg_sched *s, cg_rng *rng) {
    return load("cg_load", path, m, o, s, rng, NULL, NULL);
}

cg_status cg_load_ex(const char *path, cg_module *m, cg_optim *o, cg_sched *s, cg_rng *rng,
                     const cg_load_opts *opts, cg_load_report *report) {
    return load("cg_load_ex", path, m, o, s, rng, opts, report);
}

/* ---- named tensors ------------------------------------------------------------------ */
void cg_tensor_dict_free(cg_tensor_dict *d) {
    if (!d) return;
    for (int i = 0; i < d->n; i++) {
        if (d->names) free(d->names[i]);
        if (d->tensors) cg_tensor_free(d->tensors[i]);
    }
    free(d->names);
    free(d->tensors);
    *d = (cg_tensor_dict){0};
}

/* e's bytes into a new caller-owned tensor (memcpy: the file's may be misaligned). */
static cg_status load_entry(loader *L, const entry *e, cg_tensor_dict *d) {
    if (e->dt->cg < 0)
        return fail(L, CG_ERR_DTYPE, "%s: dtype %s, cgrad holds only F32, F64 and I64", e->name,
                    e->dt->name);
    cg_tensor *t = cg_empty(NULL, (cg_dtype)e->dt->cg, e->ndim, e->shape);
    char *name = dup_string(e->name);
    if (!t || !name) {
        cg_tensor_free(t);
        free(name);
        return fail(L, CG_ERR_NOMEM, "%s: out of memory", e->name);
    }
    if (e->end > e->begin) memcpy(cg_data(t), L->data + e->begin, (size_t)(e->end - e->begin));
    d->names[d->n] = name;
    d->tensors[d->n++] = t;
    return CG_OK;
}

cg_status cg_load_tensors(const char *path, cg_tensor_dict *out) {
    if (out) *out = (cg_tensor_dict){0};
    if (!path || !out)
        return cgi_error(NULL, CG_ERR_ARG, "cg_load_tensors: path or out is NULL");
    loader L = {.fn = "cg_load_tensors", .path = path};
    cg_tensor_dict d = {0};
    cg_status st = open_file(&L);
    if (st == CG_OK) {
        d.names = calloc((size_t)L.nentries + 1, sizeof *d.names);
        d.tensors = calloc((size_t)L.nentries + 1, sizeof *d.tensors);
        if (!d.names || !d.tensors) st = fail(&L, CG_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; st == CG_OK && i < L.nentries; i++) st = load_entry(&L, &L.entries[i], &d);
    if (st == CG_OK)
        *out = d;
    else
        cg_tensor_dict_free(&d);
    loader_free(&L);
    return st;
}
