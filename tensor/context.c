/* Contexts: an arena that grows by chunks and is reused after a reset, so a
 * training loop that resets once per step stops calling malloc after the
 * first steps. */
#define _DEFAULT_SOURCE /* madvise */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CGI_ALIGN     64
#define CGI_CHUNK_MIN ((size_t)1 << 20) /* 1 MiB */

struct cgi_chunk {
    cgi_chunk *next; /* older chunks */
    size_t size;     /* usable bytes in data */
    size_t used;
    _Alignas(CGI_ALIGN) unsigned char data[];
};

static size_t align_up(size_t n) { return (n + CGI_ALIGN - 1) & ~(size_t)(CGI_ALIGN - 1); }

static cgi_chunk *chunk_new(cgi_arena *a, size_t size) {
    if (size > SIZE_MAX / 2) return NULL; /* no such memory; the sum below would wrap */
    cgi_chunk *c = aligned_alloc(CGI_ALIGN, align_up(sizeof *c + size));
    if (!c) return NULL;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    a->capacity += size;
    a->chunk_allocs++;
    return c;
}

/* size: aligned. */
static void *bump(cgi_arena *a, size_t size) {
    if (!a->head || a->head->size - a->head->used < size) {
        size_t want = a->capacity > CGI_CHUNK_MIN ? a->capacity : CGI_CHUNK_MIN;
        if (want < size) want = size;
        cgi_chunk *c = chunk_new(a, want);
        if (!c) return NULL;
        c->next = a->head;
        a->head = c;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += size;
    a->used += size;
    return p;
}

/* Blocks small enough go into the padding before the last tensor header
 * (a tensor's storage or node, usually), so phased headers cost little room. */
void *cgi_arena_alloc(cgi_arena *a, size_t size) {
    size = align_up(size ? size : 1);
    if (size < size - 1) return NULL; /* overflow in align_up */
    if (size <= a->gap_size) {
        void *p = a->gap;
        a->gap += size;
        a->gap_size -= size;
        return p;
    }
    return bump(a, size);
}

/* A header at an address congruent to phase modulo CGI_GEN_PHASES * 64:
 * takes room for the worst padding, then gives back what it did not use
 * (the block is the last one in the head chunk). */
static void *arena_alloc_phased(cgi_arena *a, size_t size, size_t phase) {
    const size_t period = (size_t)CGI_ALIGN * CGI_GEN_PHASES, slack = period - CGI_ALIGN;
    unsigned char *p = bump(a, align_up(size) + slack);
    if (!p) return NULL;
    size_t pad = (size_t)((phase - (uintptr_t)p) & (period - 1));
    a->head->used -= slack - pad;
    a->used -= slack - pad;
    a->gap = p;
    a->gap_size = pad;
    return p + pad;
}

/* A retired chunk's pages go back to the system, its addresses stay
 * mapped: a stale handle into it then reads zeros, which no check word
 * matches (cgi_stale), and the memory of a loop's growing first steps is not
 * held on top of the chunk that replaces them (on a 564 MiB GPT step, 1.2 GiB
 * of peak RSS otherwise). */
static void drop_pages(cgi_chunk *c) {
    long page = sysconf(_SC_PAGESIZE);
    for (; c && page > 0; c = c->next) {
        uintptr_t lo = ((uintptr_t)c->data + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1);
        uintptr_t hi = ((uintptr_t)c->data + c->size) & ~(uintptr_t)(page - 1);
        if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
}

static void free_chunks(cgi_chunk *c) {
    for (cgi_chunk *next; c; c = next) {
        next = c->next;
        free(c);
    }
}

/* Keeps the memory: one chunk of the largest step's size and an eighth, so
 * the next step fits in it without a malloc (the total capacity, which
 * doubling chunks leave up to twice the step, would hold memory the loop
 * never uses; the largest, not the last, so that a loop alternating two
 * sizes settles too). The chunks it replaces are kept for
 * CGI_GEN_PHASES - 1 more resets (only while a loop's steps still grow), so
 * the handles cgi_stale guarantees to catch always read mapped memory. */
void cgi_arena_reset(cgi_arena *a) {
    free_chunks(a->retired[CGI_RETIRED - 1]);
    for (int i = CGI_RETIRED - 1; i > 0; i--) a->retired[i] = a->retired[i - 1];
    a->retired[0] = NULL;
    if (a->used > a->peak) a->peak = a->used;
    if (a->head && a->head->next) {
        size_t total = a->peak + a->peak / 8;
        a->retired[0] = a->head;
        drop_pages(a->retired[0]);
        a->head = NULL;
        a->capacity = 0;
        a->head = chunk_new(a, total); /* on failure: empty arena, grows later */
    } else if (a->head) {
        a->head->used = 0;
    }
    a->used = 0;
    a->gap = NULL;
    a->gap_size = 0;
}

void cgi_arena_release(cgi_arena *a) {
    free_chunks(a->head);
    a->head = NULL;
    for (int i = 0; i < CGI_RETIRED; i++) {
        free_chunks(a->retired[i]);
        a->retired[i] = NULL;
    }
    a->used = 0;
    a->capacity = 0;
    a->peak = 0;
    a->gap = NULL;
    a->gap_size = 0;
}

cg_ctx *cg_ctx_new(void) {
    cg_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) cgi_error(NULL, CG_ERR_NOMEM, "cg_ctx_new: out of memory");
    return ctx;
}

void cg_ctx_free(cg_ctx *ctx) {
    if (!ctx) return;
    cgi_arena_release(&ctx->arena);
    free(ctx);
}

void cg_ctx_reset(cg_ctx *ctx) {
    if (!ctx) return;
    cgi_arena_reset(&ctx->arena);
    ctx->recycled = NULL; /* in the arena too */
    ctx->nrecent = 0;
    ctx->resets++;
    ctx->gen++; /* every header made so far fails cgi_stale from now on */
    ctx->status = CG_OK;
    ctx->msg[0] = '\0';
    ctx->tape_last = NULL;
}

cg_ctx_stats cg_ctx_get_stats(const cg_ctx *ctx) {
    cg_ctx_stats s = {0, 0, 0, 0};
    if (!ctx) {
        cgi_null_arg(NULL, "cg_ctx_get_stats", "ctx");
        return s;
    }
    s.used = ctx->arena.used;
    s.capacity = ctx->arena.capacity;
    s.chunk_allocs = ctx->arena.chunk_allocs;
    s.resets = ctx->resets;
    return s;
}

void *cgi_alloc(cg_ctx *ctx, const char *op, size_t size) {
    void *p = ctx ? cgi_arena_alloc(&ctx->arena, size) : malloc(size ? size : 1);
    if (!p) cgi_error(ctx, CG_ERR_NOMEM, "%s: out of memory (%zu bytes)", op, size);
    return p;
}

cg_tensor *cgi_alloc_header(cg_ctx *ctx, const char *op, size_t extra) {
    if (!ctx) return cgi_alloc(NULL, op, sizeof(cg_tensor));
    size_t phase = (size_t)(ctx->gen % CGI_GEN_PHASES) * CGI_ALIGN;
    cg_tensor *t = arena_alloc_phased(&ctx->arena, sizeof *t + extra, phase);
    if (!t)
        cgi_error(ctx, CG_ERR_NOMEM, "%s: out of memory (%zu bytes)", op, sizeof *t + extra);
    return t;
}
