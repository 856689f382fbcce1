/* STUB: replaced by the attn branch at merge (which declares cg_sample_logits
 * in ops/ops.h with this signature; delete this header and its includes). */
#ifndef CG_SAMPLE_STUB_H
#define CG_SAMPLE_STUB_H

#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One draw per row of logits [B, V] (f32 or f64): softmax(logits /
 * temperature) restricted to the top_k largest (top_k <= 0: all), sampled
 * from rng -> i64 [B]. */
CG_API cg_tensor *cg_sample_logits(cg_ctx *ctx, const cg_tensor *logits, double temperature,
                                   int64_t top_k, cg_rng *rng);

#ifdef __cplusplus
}
#endif
#endif
