// rope.c — CPU rotary embedding (Hugging Face "rotate half": pairs (i, i + HD/2)), in place,
// forward or inverse (the backward of a rotation). Angles in double, once per call.
#include "../cpu_kernels.h"

#include <math.h>

#define SC_ROPE_MAX_HALF 512   // head_dim up to 1024

sc_status SC_CPU_FN(rope)(sc_backend *be, float *x, const int *pos, int T, int H, int HD, float theta, int inverse) {
    (void)be;
    const int half = HD / 2;
    if (HD % 2 || half > SC_ROPE_MAX_HALF)
        return sc_errorf(SC_ERR_SHAPE, "rope: head dim %d must be even and at most %d", HD, 2 * SC_ROPE_MAX_HALF);
    double inv_freq[SC_ROPE_MAX_HALF];
    for (int i = 0; i < half; i++) inv_freq[i] = pow((double)theta, -2.0 * i / HD);
    SC_CPU_FOR((int64_t)T * H * HD >= SC_CPU_PAR_MIN, t, T,
        float cs[SC_ROPE_MAX_HALF], sn[SC_ROPE_MAX_HALF];
        for (int i = 0; i < half; i++) {
            double ang = (double)pos[t] * inv_freq[i];
            cs[i] = (float)cos(ang);
            sn[i] = inverse ? -(float)sin(ang) : (float)sin(ang);
        }
        for (int h = 0; h < H; h++) {
            float *v = x + ((int64_t)t * H + h) * HD;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * cs[i] - b * sn[i];
                v[i + half] = b * cs[i] + a * sn[i];
            }
        });
    return SC_OK;
}
