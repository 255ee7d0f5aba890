/* Tests of the fused attention kernels (kattn.c): k_attention_f32 and
 * k_attention_grad_f32 against a naive double-precision reference of the
 * same definition (scores, mask, softmax, product; the backward's analytic
 * gradient), on random shapes: T != S, D != Dv, causal with S >= T and
 * S < T (rows that see no key), additive and boolean masks broadcast over
 * heads, rows and the batch, rows the boolean mask hides whole, size-1 dims,
 * several blocks of rows, one batch dim or several. The reference's
 * gradient is itself checked by central differences of the reference
 * forward, and the kernels' gradient by central differences of the float32
 * forward kernel; the thread count must change no bit. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernels.h"
#define KRAND_SEED 0x5eed0a77e47104ull
#include "krand.h"

typedef struct {
    KAttn p;
    const void *mask; /* NULL without one */
} Case;

/* The masked, scaled score of (bh, i, j) in double; -inf where causal hides it. */
static double score(const Case *c, const float *q, const float *k, int64_t bh, int64_t i, int64_t j)
{
    const KAttn *p = &c->p;
    if (p->causal && j > i + p->S - p->T) return -INFINITY;
    double s = 0;
    for (int64_t d = 0; d < p->D; d++) s += (double)q[(bh * p->T + i) * p->D + d] * k[(bh * p->S + j) * p->D + d];
    s *= p->scale;
    int64_t o = (p->mask_off ? p->mask_off[bh] : 0) + i * p->mask_st + j * p->mask_ss;
    if (p->mask_kind == K_ATTN_MASK_ADD) s += ((const float *)c->mask)[o];
    if (p->mask_kind == K_ATTN_MASK_KEEP && !((const uint8_t *)c->mask)[o]) s = p->fill;
    return s;
}

static int hidden_ref(const Case *c, int64_t bh, int64_t i, int64_t j)
{
    const KAttn *p = &c->p;
    int64_t o = (p->mask_off ? p->mask_off[bh] : 0) + i * p->mask_st + j * p->mask_ss;
    return p->mask_kind == K_ATTN_MASK_KEEP && !((const uint8_t *)c->mask)[o];
}

/* Row i of matrix bh's probabilities into P (S entries); returns its lse. */
static double probs(const Case *c, const float *q, const float *k, int64_t bh, int64_t i, double *P)
{
    double m = -INFINITY, sum = 0;
    for (int64_t j = 0; j < c->p.S; j++) {
        P[j] = score(c, q, k, bh, i, j);
        m = P[j] > m ? P[j] : m;
    }
    if (m == -INFINITY) {
        for (int64_t j = 0; j < c->p.S; j++) P[j] = 0;
        return -INFINITY;
    }
    for (int64_t j = 0; j < c->p.S; j++) sum += P[j] = exp(P[j] - m);
    for (int64_t j = 0; j < c->p.S; j++) P[j] /= sum;
    return m + log(sum);
}

static void ref_fwd(double *o, double *lse, const Case *c, const float *q, const float *k, const float *v)
{
    const KAttn *p = &c->p;
    double *P = malloc((size_t)(p->S + 1) * sizeof *P);
    for (int64_t bh = 0; bh < p->BH; bh++)
        for (int64_t i = 0; i < p->T; i++) {
            lse[bh * p->T + i] = probs(c, q, k, bh, i, P);
            for (int64_t e = 0; e < p->Dv; e++) {
                double s = 0;
                for (int64_t j = 0; j < p->S; j++) s += P[j] * v[(bh * p->S + j) * p->Dv + e];
                o[(bh * p->T + i) * p->Dv + e] = s;
            }
        }
    free(P);
}

/* The analytic gradient in double: dS is 0 where the boolean mask put fill. */
static void ref_bwd(double *dq, double *dk, double *dv, const Case *c, const float *dout, const float *q,
                    const float *k, const float *v)
{
    const KAttn *p = &c->p;
    int64_t T = p->T, S = p->S, D = p->D, Dv = p->Dv;
    memset(dq, 0, (size_t)(p->BH * T * D) * sizeof *dq);
    memset(dk, 0, (size_t)(p->BH * S * D) * sizeof *dk);
    memset(dv, 0, (size_t)(p->BH * S * Dv) * sizeof *dv);
    double *P = malloc((size_t)(S + 1) * sizeof *P), *o = malloc((size_t)(Dv + 1) * sizeof *o);
    for (int64_t bh = 0; bh < p->BH; bh++)
        for (int64_t i = 0; i < T; i++) {
            probs(c, q, k, bh, i, P);
            const float *g = dout + (bh * T + i) * Dv;
            double di = 0;
            for (int64_t e = 0; e < Dv; e++) {
                o[e] = 0;
                for (int64_t j = 0; j < S; j++) o[e] += P[j] * v[(bh * S + j) * Dv + e];
                di += g[e] * o[e];
            }
            for (int64_t j = 0; j < S; j++) {
                double dp = 0;
                for (int64_t e = 0; e < Dv; e++) {
                    dv[(bh * S + j) * Dv + e] += P[j] * g[e];
                    dp += g[e] * v[(bh * S + j) * Dv + e];
                }
                double ds = hidden_ref(c, bh, i, j) ? 0 : P[j] * (dp - di) * p->scale;
                for (int64_t d = 0; d < D; d++) {
                    dq[(bh * T + i) * D + d] += ds * k[(bh * S + j) * D + d];
                    dk[(bh * S + j) * D + d] += ds * q[(bh * T + i) * D + d];
                }
            }
        }
    free(P);
    free(o);
}

/* max |want|, at least 1e-3 */
static double amax(const double *want, int64_t n)
{
    double m = 1e-3;
    for (int64_t i = 0; i < n; i++) m = fabs(want[i]) > m && !isinf(want[i]) ? fabs(want[i]) : m;
    return m;
}

/* max |got - want| / amax(want): error relative to the result's scale */
static double err_f(const float *got, const double *want, int64_t n)
{
    double e = 0, m = amax(want, n);
    for (int64_t i = 0; i < n; i++) {
        double d = isinf(want[i]) && got[i] == want[i] ? 0 : fabs(got[i] - want[i]);
        e = d > e || d != d ? d : e;
    }
    return e / m;
}

static double worst_fwd, worst_bwd;

static void *xmalloc(size_t n) { return malloc(n ? n : 1); }

/* One case: forward and backward against the reference, and again on 3
 * threads (a workload big enough to split), bit for bit. */
static void run_case(Case *c)
{
    KAttn *p = &c->p;
    int64_t nq = p->BH * p->T * p->D, nk = p->BH * p->S * p->D, nv = p->BH * p->S * p->Dv;
    int64_t no = p->BH * p->T * p->Dv, nl = p->BH * p->T;
    float *q = rand_f(nq), *k = rand_f(nk), *v = rand_f(nv), *dout = rand_f(no);
    for (int64_t i = 0; i < nq; i++) q[i] *= 2; // scores of a few units: a peaked softmax
    float *o = xmalloc((size_t)no * 4), *lse = xmalloc((size_t)nl * 4);
    float *dq = xmalloc((size_t)nq * 4), *dk = xmalloc((size_t)nk * 4), *dv = xmalloc((size_t)nv * 4);
    void *ws = xmalloc(k_attention_f32_ws(p)), *wsg = xmalloc(k_attention_grad_f32_ws(p));
    double *ro = xmalloc((size_t)no * 8), *rl = xmalloc((size_t)nl * 8);
    double *rq = xmalloc((size_t)nq * 8), *rk = xmalloc((size_t)nk * 8), *rv = xmalloc((size_t)nv * 8);
    k_set_threads(1);
    k_attention_f32(o, lse, q, k, v, c->mask, p, ws);
    k_attention_grad_f32(dq, dk, dv, dout, q, k, v, o, lse, c->mask, p, wsg);
    ref_fwd(ro, rl, c, q, k, v);
    ref_bwd(rq, rk, rv, c, dout, q, k, v);
    double ef = fmax(err_f(o, ro, no), err_f(lse, rl, nl));
    // the gradients' errors relative to the largest of the three (dQ and dK are 0 when T = S = 1)
    double gm = fmax(amax(rq, nq), fmax(amax(rk, nk), amax(rv, nv)));
    double eb = fmax(err_f(dq, rq, nq) * amax(rq, nq), fmax(err_f(dk, rk, nk) * amax(rk, nk),
                     err_f(dv, rv, nv) * amax(rv, nv))) / gm;
    if (!(ef < 2e-6) || !(eb < 2e-5))
        fprintf(stderr, "  BH %lld T %lld S %lld D %lld Dv %lld causal %d mask %d: errors %.3g %.3g\n",
                (long long)p->BH, (long long)p->T, (long long)p->S, (long long)p->D, (long long)p->Dv,
                p->causal, p->mask_kind, ef, eb);
    CHECK(ef < 2e-6);
    CHECK(eb < 2e-5);
    worst_fwd = fmax(worst_fwd, ef);
    worst_bwd = fmax(worst_bwd, eb);
    // the same bits on 3 threads
    float *o3 = xmalloc((size_t)no * 4), *l3 = xmalloc((size_t)nl * 4), *q3 = xmalloc((size_t)nq * 4);
    float *k3 = xmalloc((size_t)nk * 4), *v3 = xmalloc((size_t)nv * 4);
    k_set_threads(3);
    k_attention_f32(o3, l3, q, k, v, c->mask, p, ws);
    k_attention_grad_f32(q3, k3, v3, dout, q, k, v, o, lse, c->mask, p, wsg);
    k_set_threads(1);
    CHECK(!memcmp(o, o3, (size_t)no * 4) && !memcmp(lse, l3, (size_t)nl * 4));
    CHECK(!memcmp(dq, q3, (size_t)nq * 4) && !memcmp(dk, k3, (size_t)nk * 4) && !memcmp(dv, v3, (size_t)nv * 4));
    free(o3), free(l3), free(q3), free(k3), free(v3);
    free(q), free(k), free(v), free(dout), free(o), free(lse), free(dq), free(dk), free(dv), free(ws), free(wsg);
    free(ro), free(rl), free(rq), free(rk), free(rv);
}

static Case plain(int64_t BH, int64_t T, int64_t S, int64_t D, int64_t Dv, int causal)
{
    Case c = {{BH, T, S, D, Dv, (float)(1 / sqrt((double)D)), causal, K_ATTN_MASK_NONE, 0, NULL, 0, 0}, NULL};
    return c;
}

static void test_attention_unmasked(void)
{
    Case c;
    c = plain(1, 1, 1, 1, 1, 0), run_case(&c);
    c = plain(3, 5, 7, 4, 6, 0), run_case(&c);   // T != S, D != Dv
    c = plain(2, 17, 9, 16, 8, 0), run_case(&c); // T > S
    c = plain(2, 1, 33, 8, 3, 0), run_case(&c);  // one query row
    c = plain(1, 130, 300, 12, 20, 0), run_case(&c); // several blocks of rows
    c = plain(8, 128, 128, 32, 32, 0), run_case(&c); // big enough to go parallel
    c = plain(3, 40, 2100, 5, 7, 0), run_case(&c);   // S past the tile budget: 31-row blocks
}

static void test_attention_causal(void)
{
    Case c;
    c = plain(2, 32, 32, 16, 16, 1), run_case(&c);
    c = plain(3, 20, 45, 8, 5, 1), run_case(&c);    // S > T: keys before the queries
    c = plain(2, 45, 20, 8, 5, 1), run_case(&c);    // S < T: the first 25 rows see nothing
    c = plain(1, 150, 150, 4, 4, 1), run_case(&c);  // blocks past the diagonal
    c = plain(8, 128, 128, 32, 32, 1), run_case(&c);
}

static void test_attention_additive_mask(void)
{
    // [2,3] batch dims, a mask [2,1,T,S] broadcast over the 3 heads, -inf and
    // the float minimum at some places
    int64_t T = 11, S = 13, off[6];
    float *m = rand_f(2 * T * S);
    for (int64_t i = 0; i < 2 * T * S; i++) m[i] = i % 7 == 3 ? -INFINITY : i % 5 == 1 ? -3.4028235e38f : m[i];
    for (int b = 0; b < 6; b++) off[b] = b / 3 * T * S;
    Case c = plain(6, T, S, 8, 6, 0);
    c.p.mask_kind = K_ATTN_MASK_ADD, c.p.mask_off = off, c.p.mask_st = S, c.p.mask_ss = 1, c.mask = m;
    run_case(&c);
    c.p.causal = 1, run_case(&c);
    // a mask [S] broadcast over rows and matrices
    c = plain(4, 9, 10, 3, 4, 0);
    c.p.mask_kind = K_ATTN_MASK_ADD, c.p.mask_st = 0, c.p.mask_ss = 1, c.mask = m;
    run_case(&c);
    // a mask [T,1] broadcast over keys
    c.p.mask_st = 1, c.p.mask_ss = 0, run_case(&c);
    free(m);
}

static void test_attention_boolean_mask(void)
{
    // keep about 2/3 of the keys; rows 2 and 5 of each mask hidden whole, where
    // the finite fill makes the softmax uniform (and dS 0: fill is no function
    // of Q, K)
    int64_t T = 9, S = 14, off[4];
    uint8_t *m = malloc((size_t)(2 * T * S));
    for (int64_t i = 0; i < 2 * T * S; i++) {
        int64_t row = i / S % T;
        m[i] = row == 2 || row == 5 ? 0 : next_u() % 3 != 0;
    }
    for (int b = 0; b < 4; b++) off[b] = b % 2 * T * S;
    Case c = plain(4, T, S, 7, 5, 0);
    c.p.mask_kind = K_ATTN_MASK_KEEP, c.p.fill = -3.4028235e38f, c.p.mask_off = off, c.p.mask_st = S,
    c.p.mask_ss = 1, c.mask = m;
    run_case(&c);
    c.p.fill = -10.0f, run_case(&c); // a fill near the scores: the hidden keys keep some weight
    c.p.fill = -INFINITY, run_case(&c); // hidden rows see nothing: zeros
    c.p.causal = 1, c.p.fill = -1e9f, run_case(&c);
    free(m);
}

/* ---- the kernels' gradient against differences of the float32 forward ---- */

static void test_attention_grad_vs_differences(void)
{
    int64_t T = 6, S = 8, D = 5, Dv = 4, BH = 2;
    float add[6 * 8];
    for (int i = 0; i < T * S; i++) add[i] = frand();
    Case c = plain(BH, T, S, D, Dv, 1);
    c.p.mask_kind = K_ATTN_MASK_ADD, c.p.mask_st = S, c.p.mask_ss = 1, c.mask = add;
    int64_t nq = BH * T * D, nk = BH * S * D, nv = BH * S * Dv, no = BH * T * Dv;
    float *x[3] = {rand_f(nq), rand_f(nk), rand_f(nv)}, *dout = rand_f(no);
    int64_t n[3] = {nq, nk, nv};
    float *o = malloc(no * 4), *lse = malloc(BH * T * 4), *g[3] = {malloc(nq * 4), malloc(nk * 4), malloc(nv * 4)};
    float *op = malloc(no * 4), *om = malloc(no * 4);
    void *ws = malloc(k_attention_f32_ws(&c.p)), *wsg = malloc(k_attention_grad_f32_ws(&c.p));
    k_attention_f32(o, lse, x[0], x[1], x[2], c.mask, &c.p, ws);
    k_attention_grad_f32(g[0], g[1], g[2], dout, x[0], x[1], x[2], o, lse, c.mask, &c.p, wsg);
    double worst = 0;
    const float h = 1e-2f;
    for (int a = 0; a < 3; a++)
        for (int dir = 0; dir < 3; dir++) {
            float *dirv = rand_f(n[a]), *saved = malloc(n[a] * 4);
            memcpy(saved, x[a], n[a] * 4);
            for (int64_t i = 0; i < n[a]; i++) x[a][i] = saved[i] + h * dirv[i];
            k_attention_f32(op, lse, x[0], x[1], x[2], c.mask, &c.p, ws);
            for (int64_t i = 0; i < n[a]; i++) x[a][i] = saved[i] - h * dirv[i];
            k_attention_f32(om, lse, x[0], x[1], x[2], c.mask, &c.p, ws);
            memcpy(x[a], saved, n[a] * 4);
            double num = 0, ana = 0, norm = 0;
            for (int64_t i = 0; i < no; i++) num += (double)dout[i] * (op[i] - om[i]) / (2 * h);
            for (int64_t i = 0; i < n[a]; i++) ana += (double)g[a][i] * dirv[i], norm += fabs(g[a][i] * dirv[i]);
            worst = fmax(worst, fabs(num - ana) / (norm + 1e-6));
            free(dirv), free(saved);
        }
    printf("  kernel gradient vs float32 central differences: worst normalized error %.2g\n", worst);
    CHECK(worst < 1e-2);
    for (int a = 0; a < 3; a++) free(x[a]), free(g[a]);
    free(dout), free(o), free(lse), free(op), free(om), free(ws), free(wsg);
}

/* The reference's analytic gradient against differences of the reference
 * forward in double (boolean mask with a finite fill: dS 0 where hidden). */
static void test_reference_gradient(void)
{
    int64_t T = 4, S = 5, D = 3, Dv = 2, BH = 1;
    uint8_t keep[4 * 5];
    for (int i = 0; i < T * S; i++) keep[i] = i / S == 1 ? 0 : (i * 7) % 3 != 0; // row 1 hidden whole
    Case c = plain(BH, T, S, D, Dv, 0);
    c.p.mask_kind = K_ATTN_MASK_KEEP, c.p.fill = -2.0f, c.p.mask_st = S, c.p.mask_ss = 1, c.mask = keep;
    int64_t n[3] = {BH * T * D, BH * S * D, BH * S * Dv}, no = BH * T * Dv;
    float *x[3] = {rand_f(n[0]), rand_f(n[1]), rand_f(n[2])}, *dout = rand_f(no);
    double *g[3] = {malloc(n[0] * 8), malloc(n[1] * 8), malloc(n[2] * 8)};
    double op[8], om[8], l[4];
    ref_bwd(g[0], g[1], g[2], &c, dout, x[0], x[1], x[2]);
    double worst = 0;
    for (int a = 0; a < 3; a++)
        for (int64_t i = 0; i < n[a]; i++) {
            float s = x[a][i], h = 1e-2f;
            x[a][i] = s + h, ref_fwd(op, l, &c, x[0], x[1], x[2]);
            x[a][i] = s - h, ref_fwd(om, l, &c, x[0], x[1], x[2]);
            double hh = ((double)(s + h) - (double)(s - h)); // the float steps actually taken
            x[a][i] = s;
            double num = 0;
            for (int64_t e = 0; e < no; e++) num += dout[e] * (op[e] - om[e]) / hh;
            worst = fmax(worst, fabs(num - g[a][i]) / (fabs(g[a][i]) + 1e-3));
        }
    printf("  reference gradient vs double central differences: worst error %.2g\n", worst);
    CHECK(worst < 1e-3);
    for (int a = 0; a < 3; a++) free(x[a]), free(g[a]);
    free(dout);
}

int main(void)
{
    RUN(test_reference_gradient);
    RUN(test_attention_unmasked);
    RUN(test_attention_causal);
    RUN(test_attention_additive_mask);
    RUN(test_attention_boolean_mask);
    RUN(test_attention_grad_vs_differences);
    printf("  worst normalized error against the double reference: forward %.2g, backward %.2g\n", worst_fwd,
           worst_bwd);
    return CHECK_DONE();
}
