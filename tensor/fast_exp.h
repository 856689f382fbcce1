/* exp for f32 in row loops that must vectorise (not installed). */
#ifndef CG_FAST_EXP_H
#define CG_FAST_EXP_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Cephes' expf: a degree-5 polynomial on |r| <= ln 2 / 2 after x = n ln 2
 * + r, within 2 ulp of exp, written without branches or calls so that
 * loops over it vectorise (glibc's expf is a call per element: measured,
 * GELU's forward spent half its time there). Below -87.3 the result is 0
 * (expf would give subnormals, which no caller can tell from 0 beside sums
 * of at least 1), above 88.38 +inf (the overflow); -inf gives 0, NaN gives
 * NaN. Used by the attention's softmax and the f32 activations. */
static inline float cgi_expf(float x) {
    const float lo = -87.33654f, hi = 88.37626f, magic = 12582912.0f; /* 1.5 * 2^23 */
    float xc = x < lo ? lo : x > hi ? hi : x;
    float t = xc * 1.44269504088896341f + magic; /* n = round(x / ln 2) in t's low bits */
    float n = t - magic;
    float r = xc - n * 0.693359375f + n * 2.12194440e-4f; /* ln 2 in two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t tb, sb;
    memcpy(&tb, &t, sizeof tb);
    sb = (tb - 0x4B400000u + 127u) << 23; /* 2^n */
    float scale;
    memcpy(&scale, &sb, sizeof scale);
    return x < lo ? 0.0f : x > hi ? INFINITY : p * scale;
}

#endif
