/* Gather and scatter-add over any strides. The positions p of index's shape
 * are cut into tasks: one per position of the dims other than axis and the
 * last, times chunks of the last dim. A task walks axis in order, a row of
 * its chunk at a time, so each element a scatter writes gets all its terms
 * from one task in a fixed order: parallel runs add up exactly as serial. */
#include "index_kernels.h"

#define WALK_DIMS (CG_MAX_DIMS + 1) /* room for the trailing dim added below */
#define CHUNK     1024              /* elements of the last dim per task */

/* The geometry of one gather or scatter over index's positions p. */
typedef struct walk {
    int ndim, axis;           /* axis < ndim - 1 always */
    int64_t shape[WALK_DIMS]; /* index's */
    int64_t sp[WALK_DIMS];    /* strides of the tensor at p: gather's out, scatter's src */
    int64_t si[WALK_DIMS];    /* index's strides */
    int64_t sx[WALK_DIMS];    /* the indexed tensor's; sx[axis] scales index values */
    char *p, *x;
    const int64_t *idx;
    size_t esize;
} walk;

/* One row of n elements: p, x and the index each step by their own stride;
 * the index value picks x's position along axis (stride sax). */
typedef void (*row_fn)(int64_t n, char *p, int64_t sp, char *x, int64_t sx, int64_t sax,
                       const int64_t *idx, int64_t si);

#define GATHER_ROW(name, T)                                                                    \
    static void name(int64_t n, char *p_, int64_t sp, char *x_, int64_t sx, int64_t sax,       \
                     const int64_t *idx, int64_t si) {                                         \
        T *p = (T *)p_;                                                                        \
        const T *x = (const T *)x_;                                                            \
        for (int64_t j = 0; j < n; j++) p[j * sp] = x[idx[j * si] * sax + j * sx];             \
    }
/* i64 sums wrap (through uint64_t) rather than overflow into UB. */
#define SCATTER_ROW(name, T, U)                                                                \
    static void name(int64_t n, char *p_, int64_t sp, char *x_, int64_t sx, int64_t sax,       \
                     const int64_t *idx, int64_t si) {                                         \
        const T *p = (const T *)p_;                                                            \
        T *x = (T *)x_;                                                                        \
        for (int64_t j = 0; j < n; j++) {                                                      \
            T *o = &x[idx[j * si] * sax + j * sx];                                             \
            *o = (T)((U)*o + (U)p[j * sp]);                                                    \
        }                                                                                      \
    }
GATHER_ROW(gather_f32, float)
GATHER_ROW(gather_f64, double)
GATHER_ROW(gather_i64, int64_t)
SCATTER_ROW(scatter_f32, float, float)
SCATTER_ROW(scatter_f64, double, double)
SCATTER_ROW(scatter_i64, int64_t, uint64_t)

static const row_fn gather_rows[3] = {gather_f32, gather_f64, gather_i64};
static const row_fn scatter_rows[3] = {scatter_f32, scatter_f64, scatter_i64};

/* at walks p with index; x is indexed. A trailing dim of 1 is added when
 * axis is the last dim, so a task always has a last dim to chunk. */
static void walk_init(walk *w, const cg_tensor *at, const cg_tensor *x, int axis,
                      const cg_tensor *index) {
    w->ndim = index->ndim;
    w->axis = axis;
    for (int d = 0; d < index->ndim; d++) {
        w->shape[d] = index->shape[d];
        w->sp[d] = at->strides[d];
        w->si[d] = index->strides[d];
        w->sx[d] = x->strides[d];
    }
    if (axis == w->ndim - 1) {
        w->shape[w->ndim] = 1;
        w->sp[w->ndim] = w->si[w->ndim] = w->sx[w->ndim] = 0;
        w->ndim++;
    }
    w->p = cgi_ptr(at);
    w->x = cgi_ptr(x);
    w->idx = (const int64_t *)cgi_ptr(index);
    w->esize = cg_dtype_size(x->dtype);
}

/* Task t: its position on the dims other than axis and the last (C order),
 * then chunk t % nchunk of the last dim; all of axis, in order. */
static void run_task(const walk *w, row_fn row, int64_t t, int64_t nchunk) {
    int a = w->axis, last = w->ndim - 1;
    int64_t rest = t / nchunk, j0 = (t % nchunk) * CHUNK;
    int64_t op = j0 * w->sp[last], oi = j0 * w->si[last], ox = j0 * w->sx[last];
    for (int d = last - 1; d >= 0; d--) {
        if (d == a) continue;
        int64_t k = rest % w->shape[d];
        rest /= w->shape[d];
        op += k * w->sp[d];
        oi += k * w->si[d];
        ox += k * w->sx[d];
    }
    int64_t n = w->shape[last] - j0 < CHUNK ? w->shape[last] - j0 : CHUNK;
    for (int64_t i = 0; i < w->shape[a]; i++)
        row(n, w->p + (op + i * w->sp[a]) * (int64_t)w->esize, w->sp[last],
            w->x + ox * (int64_t)w->esize, w->sx[last], w->sx[a], w->idx + oi + i * w->si[a],
            w->si[last]);
}

static void run(const walk *w, row_fn row) {
    int64_t total = cgi_numel(w->ndim, w->shape);
    if (total == 0) return;
    int64_t nchunk = (w->shape[w->ndim - 1] + CHUNK - 1) / CHUNK;
    int64_t ntask = total / w->shape[w->axis] / w->shape[w->ndim - 1] * nchunk;
    CGI_PAR_FOR(ntask > 1 && total > CGI_PAR_MIN, t, ntask, { run_task(w, row, t, nchunk); });
}

void cgi_gather(cg_tensor *out, const cg_tensor *x, int axis, const cg_tensor *index) {
    walk w;
    walk_init(&w, out, x, axis, index);
    run(&w, gather_rows[x->dtype]);
}

void cgi_scatter_add(cg_tensor *out, int axis, const cg_tensor *index, const cg_tensor *src) {
    walk w;
    walk_init(&w, src, out, axis, index);
    run(&w, scatter_rows[out->dtype]);
}

bool cgi_index_in_range(const cg_tensor *index, int64_t n, int64_t *bad, int64_t *at) {
    const int64_t *v = (const int64_t *)cgi_ptr(index);
    int64_t total = cgi_numel(index->ndim, index->shape), pos[CG_MAX_DIMS] = {0}, off = 0;
    for (int64_t k = 0; k < total; k++) {
        if (v[off] < 0 || v[off] >= n) {
            *bad = v[off];
            *at = k;
            return false;
        }
        for (int d = index->ndim - 1; d >= 0; d--) { /* next position, C order */
            off += index->strides[d];
            if (++pos[d] < index->shape[d]) break;
            off -= pos[d] * index->strides[d];
            pos[d] = 0;
        }
    }
    return true;
}
