// ops.c — CPU reference ops: RMSNorm, rotary embedding, causal grouped-query attention
// (forward over a KV layout, backward for in-batch keys), SwiGLU, elementwise add.
// OpenMP over rows/heads; math in float32 with float64 where sums get long.
#include "cpu_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

// --- RMSNorm -----------------------------------------------------------------------------

static void cpu_rmsnorm(float *out, float *rstd, const float *x, const float *w, int T, int C, float eps) {
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (int64_t)t * C;
        float *o = out + (int64_t)t * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
        float r = (float)(1.0 / sqrt(ss / C + eps));
        for (int c = 0; c < C; c++) o[c] = w[c] * (xr[c] * r);
        if (rstd) rstd[t] = r;
    }
}

// y = w * x * r, r = (mean(x^2)+eps)^-1/2:  dx = r * (w*dy) - x * r^3 * mean(w*dy*x)
static void cpu_rmsnorm_backward(float *dx, const float *dout, const float *x, const float *w,
                                 const float *rstd, int T, int C, int accumulate) {
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (int64_t)t * C, *dy = dout + (int64_t)t * C;
        float *d = dx + (int64_t)t * C;
        float r = rstd[t];
        double dot = 0.0;
        for (int c = 0; c < C; c++) dot += (double)w[c] * dy[c] * xr[c];
        float k = (float)(dot / C) * r * r * r;
        for (int c = 0; c < C; c++) {
            float g = r * w[c] * dy[c] - xr[c] * k;
            d[c] = accumulate ? d[c] + g : g;
        }
    }
}

// --- Rotary embedding (Hugging Face "rotate half": pairs (i, i + HD/2)) ---------------------

static void cpu_rope(float *x, const int *pos, int T, int H, int HD, float theta, int inverse) {
    const int half = HD / 2;
    double inv_freq[512];   // HD <= 1024
    for (int i = 0; i < half; i++) inv_freq[i] = pow((double)theta, -2.0 * i / HD);
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        float cs[512], sn[512];
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
        }
    }
}

// --- Attention -----------------------------------------------------------------------------

static void cpu_attention(float *out, float *lse, const float *q, const sc_attn_layout *kv, int NH, int KVH, int HD) {
    const int group = NH / KVH;
    const float scale = 1.0f / sqrtf((float)HD);
    const int T = kv->q_start[kv->n_seq];
    // one work item per (token, head)
    #pragma omp parallel
    {
        int cap = 0;
        float *sc = NULL;
        #pragma omp for schedule(dynamic, 4)
        for (int64_t item = 0; item < (int64_t)T * NH; item++) {
            int t = (int)(item / NH), h = (int)(item % NH);
            int b = 0;
            while (kv->q_start[b + 1] <= t) b++;
            int p = kv->pos0[b] + (t - kv->q_start[b]);   // this query's position
            int n = p + 1;
            if (n > cap) { free(sc); cap = n + 256; sc = malloc((size_t)cap * sizeof(float)); }
            const float *qv = q + ((int64_t)t * NH + h) * HD;
            const int kh = h / group;
            float mx = -INFINITY;
            for (int j = 0; j < n; j++) {
                const float *kr = kv->k_base[b] + (int64_t)j * kv->kv_stride + (int64_t)kh * HD;
                float s = 0.0f;
                for (int d = 0; d < HD; d++) s += qv[d] * kr[d];
                s *= scale;
                sc[j] = s;
                if (s > mx) mx = s;
            }
            double sum = 0.0;
            for (int j = 0; j < n; j++) { sc[j] = expf(sc[j] - mx); sum += sc[j]; }
            float inv = (float)(1.0 / sum);
            float *o = out + ((int64_t)t * NH + h) * HD;
            memset(o, 0, (size_t)HD * sizeof(float));
            for (int j = 0; j < n; j++) {
                const float *vr = kv->v_base[b] + (int64_t)j * kv->kv_stride + (int64_t)kh * HD;
                float pj = sc[j] * inv;
                for (int d = 0; d < HD; d++) o[d] += pj * vr[d];
            }
            if (lse) lse[(int64_t)t * NH + h] = mx + (float)log(sum);
        }
        free(sc);
    }
}

// Backward for keys from the batch itself (training: no cache, positions start at 0).
// One work item per (sequence, kv head) so dk/dv rows are written by one thread only.
static void cpu_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out,
                                   const float *lse, const float *q, const float *k, const float *v,
                                   const int *q_start, int n_seq, int NH, int KVH, int HD) {
    const int group = NH / KVH;
    const int QD = NH * HD, KD = KVH * HD;
    const float scale = 1.0f / sqrtf((float)HD);
    const int T = q_start[n_seq];
    memset(dk, 0, (size_t)T * KD * sizeof(float));
    memset(dv, 0, (size_t)T * KD * sizeof(float));
    #pragma omp parallel
    {
        int cap = 0;
        float *pr = NULL, *dp = NULL;
        #pragma omp for schedule(dynamic, 1)
        for (int item = 0; item < n_seq * KVH; item++) {
            int b = item / KVH, kh = item % KVH;
            int s0 = q_start[b], len = q_start[b + 1] - s0;
            if (len > cap) { free(pr); free(dp); cap = len; pr = malloc((size_t)cap * sizeof(float)); dp = malloc((size_t)cap * sizeof(float)); }
            for (int h = kh * group; h < (kh + 1) * group; h++) {
                for (int i = 0; i < len; i++) {
                    int t = s0 + i;
                    const float *qv = q + (int64_t)t * QD + (int64_t)h * HD;
                    const float *dov = dout + (int64_t)t * QD + (int64_t)h * HD;
                    const float *ov = out + (int64_t)t * QD + (int64_t)h * HD;
                    float l = lse[(int64_t)t * NH + h];
                    float D = 0.0f;   // rowsum(dO * O)
                    for (int d = 0; d < HD; d++) D += dov[d] * ov[d];
                    for (int j = 0; j <= i; j++) {
                        const float *kr = k + (int64_t)(s0 + j) * KD + (int64_t)kh * HD;
                        const float *vr = v + (int64_t)(s0 + j) * KD + (int64_t)kh * HD;
                        float s = 0.0f, g = 0.0f;
                        for (int d = 0; d < HD; d++) { s += qv[d] * kr[d]; g += dov[d] * vr[d]; }
                        pr[j] = expf(s * scale - l);
                        dp[j] = pr[j] * (g - D);   // dS
                    }
                    float *dqv = dq + (int64_t)t * QD + (int64_t)h * HD;
                    memset(dqv, 0, (size_t)HD * sizeof(float));
                    for (int j = 0; j <= i; j++) {
                        const float *kr = k + (int64_t)(s0 + j) * KD + (int64_t)kh * HD;
                        float *dkr = dk + (int64_t)(s0 + j) * KD + (int64_t)kh * HD;
                        float *dvr = dv + (int64_t)(s0 + j) * KD + (int64_t)kh * HD;
                        float ds = dp[j] * scale, pj = pr[j];
                        for (int d = 0; d < HD; d++) {
                            dqv[d] += ds * kr[d];
                            dkr[d] += ds * qv[d];
                            dvr[d] += pj * dov[d];
                        }
                    }
                }
            }
        }
        free(pr);
        free(dp);
    }
}

// --- SwiGLU and elementwise ------------------------------------------------------------------

static void cpu_swiglu(float *out, const float *g, const float *u, int64_t n) {
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float s = g[i] / (1.0f + expf(-g[i]));
        out[i] = s * u[i];
    }
}

// d silu(g)/dg = sig(g) * (1 + g * (1 - sig(g)))
static void cpu_swiglu_backward(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n) {
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float sg = 1.0f / (1.0f + expf(-g[i]));
        float silu = g[i] * sg;
        du[i] = dout[i] * silu;
        dg[i] = dout[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
    }
}

static void cpu_add(float *y, const float *x, int64_t n) {
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

void sc_cpu_fill_ops(sc_backend *be) {
    be->rmsnorm = cpu_rmsnorm;
    be->rmsnorm_backward = cpu_rmsnorm_backward;
    be->rope = cpu_rope;
    be->attention = cpu_attention;
    be->attention_backward = cpu_attention_backward;
    be->swiglu = cpu_swiglu;
    be->swiglu_backward = cpu_swiglu_backward;
    be->add = cpu_add;
}
