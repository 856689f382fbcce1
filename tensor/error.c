/* Errors as values: a status plus a message naming the function and shapes,
 * kept per thread (like errno) and, first one wins, per context. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static _Thread_local cg_status last_status = CG_OK;
static _Thread_local char last_msg[CGI_MSG_MAX];

cg_status cg_last_status(void) { return last_status; }
const char *cg_last_error(void) { return last_msg; }

void cg_clear_error(void) {
    last_status = CG_OK;
    last_msg[0] = '\0';
}

const char *cg_status_str(cg_status s) {
    switch (s) {
    case CG_OK: return "ok";
    case CG_ERR_SHAPE: return "shape error";
    case CG_ERR_DTYPE: return "dtype error";
    case CG_ERR_ARG: return "invalid argument";
    case CG_ERR_INDEX: return "index out of range";
    case CG_ERR_NOMEM: return "out of memory";
    case CG_ERR_IO: return "I/O error";
    case CG_ERR_STATE: return "invalid state";
    }
    return "unknown status";
}

cg_status cgi_error(cg_ctx *ctx, cg_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    va_end(ap);
    last_status = status;
    if (ctx && ctx->status == CG_OK) {
        ctx->status = status;
        memcpy(ctx->msg, last_msg, sizeof ctx->msg);
    }
    return status;
}

cg_status cg_set_error(cg_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (fmt)
        vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    else
        last_msg[0] = '\0';
    va_end(ap);
    last_status = status;
    return status;
}

/* Only what cgi_stale vouched for is read: t->ctx and t->gen when the check
 * word matched (the intact header of an earlier generation). */
cg_status cgi_stale_error_as(cg_ctx *ctx, const char *op, const char *what, int i,
                             const cg_tensor *t) {
    char who[48];
    if (i >= 0)
        snprintf(who, sizeof who, "%s %d", what, i);
    else
        snprintf(who, sizeof who, "%s", what);
    bool intact = t->check == cgi_stamp(t, t->ctx, t->gen);
    return cgi_error(ctx, CG_ERR_STATE,
                     "%s: %s belongs to a context that was reset%s since "
                     "it was made",
                     op, who, intact ? "" : " or freed");
}

cg_status cgi_stale_error(cg_ctx *ctx, const char *op, int i, const cg_tensor *t) {
    return cgi_stale_error_as(ctx, op, "input", i, t);
}

cg_status cgi_check_input(cg_ctx *ctx, const char *op, int i, const cg_tensor *t) {
    if (!t) {
        if (last_status != CG_OK) return CG_ERR_ARG; /* keeps the failure that made the NULL */
        if (i < 0) return cgi_error(ctx, CG_ERR_ARG, "%s: tensor is NULL", op);
        return cgi_error(ctx, CG_ERR_ARG, "%s: input %d is NULL", op, i);
    }
    return cgi_stale(t) ? cgi_stale_error(ctx, op, i, t) : CG_OK;
}

cg_status cgi_null_arg(cg_ctx *ctx, const char *op, const char *what) {
    if (last_status != CG_OK) return last_status;
    return cgi_error(ctx, CG_ERR_ARG, "%s: %s is NULL", op, what);
}

/* A NULL ctx: CG_ERR_ARG and "" (a failed cg_ctx_new's error is kept). */
static bool null_ctx(const cg_ctx *ctx, const char *op) {
    return !ctx && (cgi_null_arg(NULL, op, "ctx"), true);
}
cg_status cg_ctx_status(const cg_ctx *ctx) {
    return null_ctx(ctx, "cg_ctx_status") ? CG_ERR_ARG : ctx->status;
}
const char *cg_ctx_error(const cg_ctx *ctx) {
    return null_ctx(ctx, "cg_ctx_error") ? "" : ctx->msg;
}

char *cgi_fmt_shape(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t len = 0;
    if (size == 0) return buf;
    buf[0] = '\0';
    len += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%lld", i ? "," : "",
                                (long long)shape[i]);
    if (len < size) snprintf(buf + len, size - len, "]");
    return buf;
}

cg_status cgi_axis(cg_ctx *ctx, const char *op, int ndim, int axis, int *out) {
    int a = axis < 0 ? axis + ndim : axis;
    if (a < 0 || a >= ndim)
        return cgi_error(ctx, CG_ERR_INDEX, "%s: axis %d out of range for rank %d", op, axis,
                         ndim);
    *out = a;
    return CG_OK;
}

cg_status cgi_axis_of(cg_ctx *ctx, const char *op, const cg_tensor *t, int axis, int *out) {
    int a = axis < 0 ? axis + t->ndim : axis;
    if (a >= 0 && a < t->ndim) {
        *out = a;
        return CG_OK;
    }
    char lb[192], sb[128];
    snprintf(lb, sizeof lb, "%s: %s", op, cg_shape_str(t, sb, sizeof sb));
    return cgi_axis(ctx, lb, t->ndim, axis, out);
}

cg_status cgi_check_writable(const char *op, const cg_tensor *t) {
    for (int i = 0; i < t->ndim; i++)
        if (t->strides[i] == 0 && t->shape[i] > 1) {
            char buf[160];
            return cgi_error(NULL, CG_ERR_ARG,
                             "%s: %s is an expanded view (dim %d has stride 0): its elements "
                             "share memory, so it cannot be written in place; copy it first "
                             "(cg_clone)",
                             op, cg_shape_str(t, buf, sizeof buf), i);
        }
    return CG_OK;
}
