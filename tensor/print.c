/* Printing tensors, in the style of NumPy's and PyTorch's repr:
 *
 *   tensor([[1., 2.],
 *           [3., 4.]], shape=[2,2], dtype=f32)
 *
 * Decisions, so that output is predictable:
 * - The suffix ", shape=[...], dtype=..." always follows, even for rank 0:
 *   tensor(3.5000, shape=[], dtype=f64). A NULL tensor is tensor(NULL) and
 *   any tensor with no elements is tensor([], shape=[0,3], dtype=f32).
 * - Floats pick one format for the whole tensor, from the finite values that
 *   are printed: scientific ("%.4e") when the largest magnitude is >= 1e8,
 *   the smallest nonzero one < 1e-4, or their ratio > 1e3 (NumPy's rule);
 *   else "1." style when all are integral; else four decimals ("%.4f").
 *   Non-finite values print as nan, inf, -inf.
 * - All elements are right-aligned to the widest one; i64 prints as integers.
 * - Past 1000 elements every dim longer than 6 shows its first and last 3
 *   entries around "..." (NumPy's threshold and edgeitems).
 * - Rows are wrapped at 75 columns, as NumPy does, under the opening '['.
 * - cg_fprint and cg_print end with a newline; cg_format does not.
 * Elements are read through the strides, so views, transposes and
 * broadcast (stride 0) tensors print their logical contents.
 */
#include "tensor/internal.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#define THRESHOLD  1000 /* summarise above this many elements */
#define EDGE       3    /* entries kept at each end of a summarised dim */
#define LINE_WIDTH 75
#define PREFIX     "tensor("
#define PREFIX_LEN 7
#define ELEM_BUF   64

/* ---- output: a buffer (snprintf-like) or a FILE ------------------------- */

typedef struct writer {
    FILE *f; /* when set, text goes here and buf is unused */
    char *buf;
    size_t size;
    size_t len; /* length of the full text so far */
    size_t col; /* column since the last newline, for wrapping */
} writer;

static void put_n(writer *w, const char *s, size_t n) {
    if (w->f) {
        fwrite(s, 1, n, w->f);
    } else if (w->size > 0 && w->len < w->size - 1) {
        size_t room = w->size - 1 - w->len;
        memcpy(w->buf + w->len, s, n < room ? n : room);
    }
    w->len += n;
    size_t k = n;
    while (k > 0 && s[k - 1] != '\n') k--;
    w->col = k > 0 ? n - k : w->col + n; /* k: just past the last newline */
}

static void put(writer *w, const char *s) { put_n(w, s, strlen(s)); }

static void put_spaces(writer *w, size_t n) {
    static const char spaces[] = "                                ";
    while (n > 0) {
        size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
        put_n(w, spaces, k);
        n -= k;
    }
}

/* ---- element formats ----------------------------------------------------- */

typedef enum fmt_mode { MODE_INT, MODE_INTEGRAL, MODE_FIXED, MODE_SCI } fmt_mode;

typedef struct printer {
    const cg_tensor *t;
    bool summarise;
    fmt_mode mode;
    size_t width; /* widest printed element */
} printer;

static double read_f(cg_dtype dt, const char *p) {
    return dt == CG_F32 ? *(const float *)p : *(const double *)p;
}

/* Writes one element as text into out (ELEM_BUF bytes); returns its length. */
static size_t format_elem(const printer *pr, const char *p, char *out) {
    if (pr->mode == MODE_INT)
        return (size_t)snprintf(out, ELEM_BUF, "%" PRId64, *(const int64_t *)p);
    double v = read_f(pr->t->dtype, p);
    if (isnan(v)) return (size_t)snprintf(out, ELEM_BUF, "nan");
    if (isinf(v)) return (size_t)snprintf(out, ELEM_BUF, v < 0 ? "-inf" : "inf");
    if (pr->mode == MODE_INTEGRAL) return (size_t)snprintf(out, ELEM_BUF, "%.0f.", v);
    return (size_t)snprintf(out, ELEM_BUF, pr->mode == MODE_SCI ? "%.4e" : "%.4f", v);
}

/* ---- walking the printed elements ---------------------------------------- */

/* True at the position where a summarised dim of size n shows "...". */
static bool at_ellipsis(const printer *pr, int64_t i, int64_t n) {
    return pr->summarise && n > 2 * EDGE && i == EDGE;
}

static const char *elem_at(const printer *pr, const char *base, int dim, int64_t i) {
    size_t esz = cg_dtype_size(pr->t->dtype);
    return base + (size_t)(i * pr->t->strides[dim]) * esz;
}

typedef void (*visit_fn)(printer *pr, const char *p, void *arg);

/* Calls fn on every element that will be printed, in C order. */
static void visit(printer *pr, int dim, const char *p, visit_fn fn, void *arg) {
    if (dim == pr->t->ndim) {
        fn(pr, p, arg);
        return;
    }
    int64_t n = pr->t->shape[dim];
    for (int64_t i = 0; i < n; i++) {
        if (at_ellipsis(pr, i, n)) i = n - EDGE;
        visit(pr, dim + 1, elem_at(pr, p, dim, i), fn, arg);
    }
}

typedef struct float_stats {
    double max_abs, min_nonzero; /* over finite values; min is INFINITY if none */
    bool integral;
} float_stats;

static void stats_fn(printer *pr, const char *p, void *arg) {
    float_stats *s = arg;
    double v = read_f(pr->t->dtype, p);
    if (!isfinite(v)) return;
    double a = fabs(v);
    if (a > s->max_abs) s->max_abs = a;
    if (a > 0 && a < s->min_nonzero) s->min_nonzero = a;
    if (v != floor(v)) s->integral = false;
}

static void width_fn(printer *pr, const char *p, void *arg) {
    char tmp[ELEM_BUF];
    size_t n = format_elem(pr, p, tmp);
    (void)arg;
    if (n > pr->width) pr->width = n;
}

/* NumPy's choice of float format, made once for all printed values. */
static fmt_mode choose_mode(printer *pr) {
    if (!cgi_is_float(pr->t->dtype)) return MODE_INT;
    float_stats s = {0.0, INFINITY, true};
    visit(pr, 0, cgi_ptr(pr->t), stats_fn, &s);
    if (s.min_nonzero < INFINITY &&
        (s.max_abs >= 1e8 || s.min_nonzero < 1e-4 || s.max_abs / s.min_nonzero > 1e3))
        return MODE_SCI;
    return s.integral ? MODE_INTEGRAL : MODE_FIXED;
}

/* ---- layout -------------------------------------------------------------- */

static void put_elem(writer *w, const printer *pr, const char *p) {
    char tmp[ELEM_BUF];
    size_t n = format_elem(pr, p, tmp);
    put_spaces(w, pr->width - n);
    put_n(w, tmp, n);
}

/* Between entries of dim: innermost entries share a line (wrapping when the
 * next would pass LINE_WIDTH); outer ones start a new line, with a blank
 * line per extra level as NumPy does, indented under their '['. */
static void put_sep(writer *w, const printer *pr, int dim) {
    size_t indent = PREFIX_LEN + (size_t)dim + 1;
    int below = pr->t->ndim - dim - 1;
    put(w, ",");
    if (below == 0 && w->col + 1 + pr->width + 1 <= LINE_WIDTH) {
        put(w, " ");
        return;
    }
    for (int k = 0; k < (below > 0 ? below : 1); k++) put(w, "\n");
    put_spaces(w, indent);
}

static void put_block(writer *w, const printer *pr, int dim, const char *p) {
    if (dim == pr->t->ndim) {
        put_elem(w, pr, p);
        return;
    }
    int64_t n = pr->t->shape[dim];
    put(w, "[");
    for (int64_t i = 0; i < n; i++) {
        if (i > 0) put_sep(w, pr, dim);
        if (at_ellipsis(pr, i, n)) {
            put(w, "...");
            i = n - EDGE - 1; /* the loop's i++ moves to the last EDGE */
            continue;
        }
        put_block(w, pr, dim + 1, elem_at(pr, p, dim, i));
    }
    put(w, "]");
}

static void put_suffix(writer *w, const cg_tensor *t) {
    char shape[CG_MAX_DIMS * 22 + 3];
    cgi_fmt_shape(shape, sizeof shape, t->ndim, t->shape);
    put(w, ", shape=");
    put(w, shape);
    put(w, ", dtype=");
    put(w, cg_dtype_name(t->dtype));
    put(w, ")");
}

/* op names the public function in the error a stale handle records. */
static void write_tensor(writer *w, const cg_tensor *t, const char *op) {
    if (!t) {
        put(w, PREFIX "NULL)");
        return;
    }
    if (cgi_stale(t)) {
        cgi_stale_error(NULL, op, -1, t);
        put(w, PREFIX "stale handle)");
        return;
    }
    put(w, PREFIX);
    int64_t numel = cgi_numel(t->ndim, t->shape);
    if (numel == 0) {
        put(w, "[]");
    } else {
        printer pr = {t, numel > THRESHOLD, MODE_INT, 0};
        pr.mode = choose_mode(&pr);
        visit(&pr, 0, cgi_ptr(t), width_fn, NULL);
        put_block(w, &pr, 0, cgi_ptr(t));
    }
    put_suffix(w, t);
}

/* ---- public -------------------------------------------------------------- */
/* op names the public function in messages; a failed write (the stream's
 * error flag) is CG_ERR_IO. */
static cg_status print_to(FILE *f, const cg_tensor *t, const char *op) {
    if (!f) return cgi_error(NULL, CG_ERR_ARG, "%s: file is NULL", op);
    writer w = {f, NULL, 0, 0, 0};
    write_tensor(&w, t, op);
    put(&w, "\n");
    if (ferror(f)) return cgi_error(NULL, CG_ERR_IO, "%s: write failed", op);
    return CG_OK;
}

size_t cg_format(const cg_tensor *t, char *buf, size_t size) {
    if (!buf && size > 0) {
        cgi_error(NULL, CG_ERR_ARG, "cg_format: buf is NULL for size %zu", size);
        return 0;
    }
    writer w = {NULL, buf, size, 0, 0};
    write_tensor(&w, t, "cg_format");
    if (size > 0) buf[w.len < size ? w.len : size - 1] = '\0';
    return w.len;
}

cg_status cg_fprint(FILE *f, const cg_tensor *t) { return print_to(f, t, "cg_fprint"); }

cg_status cg_print(const cg_tensor *t) { return print_to(stdout, t, "cg_print"); }
