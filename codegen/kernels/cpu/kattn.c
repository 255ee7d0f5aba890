/* Fused attention (loom.Attention and loom.AttentionGrad, ir/train.h):
 * O = softmax(scale * Q K^T + mask) V and its backward, without the
 * [T, S] probabilities of the whole problem in memory.
 *
 * The work is cut into blocks of query rows of one (batch, head) matrix. For
 * a block, the scores of its rows against every key they may see are a
 * [rows, cols] product in the workspace (cols stops at the last key a causal
 * block can see), then an exact two-pass softmax per row (the row's maximum,
 * then k_expf of the differences summed in double: k_softmax_f32's row code,
 * krow.h), and the block's output is one more product. What is kept is O and
 * the log of each row's softmax denominator, LSE = max + log(sum).
 *
 * The backward recomputes each block's probabilities from Q and K exactly
 * as the forward computed them (the same product, mask, maximum, exps and
 * sum: the same bits), and forms dV += P^T dO, dP = dO V^T, Di = rowsum(dO * O),
 * dS = P * (dP - Di), dQ = scale * dS K, dK += scale * dS^T Q. Every product
 * goes through k_sgemm, whose register-tiled kernels (ktile.h) read both
 * operands in place; the blocks are sized so that the broadcast operand fits
 * their L2 budget, and K, V (once per matrix), P and dS are transposed into
 * the workspace so that every product is the plain a*b form (6x16 broadcast
 * tiles; the a*b^T form's dot-product tiles pay a horizontal sum per
 * element, dear at k = 64). Departure from flash attention's
 * P = exp(S - LSE), which a kernel that walks the keys in tiles needs (the
 * cuda target's): this one holds whole rows of scores, so the exact softmax
 * costs no more exps, gives the forward's P bit for bit, and stays right
 * where a float32 LSE cannot (a row a mask shifts by -3.4e38, where
 * max + log(sum) rounds to max). So it does not read lse.
 *
 * Threads: the forward splits over (matrix, block) pairs, the backward over
 * matrices only, each matrix's dK and dV summed over its blocks in order on
 * one thread. Every number is computed the same way whichever thread runs
 * it, so results never depend on the thread count. Each thread has its own
 * slot of the workspace; at most K_ATTN_SLOTS threads run. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "krow.h"

/* Floats of a's block that k_sgemm's tiled kernels hold in L2 (ktile.h's
 * K_TILED_A_BYTES / 4): a block's rows times its columns stays under it. */
#define ATTN_TILE_FLOATS (64 * 1024)
#define ATTN_MAX_ROWS 64

int64_t k_attention_rows(const KAttn *p)
{
    int64_t r = ATTN_TILE_FLOATS / (p->S > 0 ? p->S : 1);
    if (r > ATTN_MAX_ROWS) r = ATTN_MAX_ROWS;
    if (r > p->T) r = p->T;
    return r < 1 ? 1 : r;
}

static int64_t blocks_of(const KAttn *p, int64_t br) { return (p->T + br - 1) / br; }

/* Floats of one slot, rounded up to 64 bytes. */
static int64_t slot_floats(int64_t f) { return (f + 15) / 16 * 16; }

/* forward: the scores (rows, S), then K^T (D, S) */
static int64_t fwd_slot(const KAttn *p)
{
    return slot_floats(k_attention_rows(p) * p->S) + slot_floats(p->D * p->S);
}
/* backward: P, dP and a transpose buffer (rows, S each), Di (rows), K^T, V^T */
static int64_t bwd_slot(const KAttn *p)
{
    int64_t br = k_attention_rows(p);
    return slot_floats(3 * br * p->S + br) + slot_floats(p->D * p->S) + slot_floats(p->Dv * p->S);
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* A call's operands, for its tasks [lo, hi) on the thread pool: thread tid
 * uses workspace slot tid (at most nslots threads take part; a call run
 * inside another parallel step runs alone: slot 0). */
typedef struct {
    float *o, *lse, *dq, *dk, *dv;
    const float *q, *k, *v, *dout, *out;
    const void *mask;
    const KAttn *p;
    float *slots;
    int64_t slot, br, nb;
    int nslots;
} AttnRun;

static float *slot_at(const AttnRun *a, int tid) { return a->slots + (tid < a->nslots ? tid : 0) * a->slot; }

/* Element operations (kernels.h's unit of parallel work) of one score's
 * softmax: its maximum, exp, sum and scaling took about 3.4 ns a score on
 * vit_tiny's 17-key rows (160 cycles a row), as much as 18 adds. Counting
 * only the products left that attention, 28 us of mostly exps, on one
 * thread. */
#define SOFTMAX_WORK 16

/* Runs `tasks` independent tasks of `macs` multiply-adds and `scores`
 * softmax entries in all. */
static void attn_par(int64_t tasks, int64_t macs, int64_t scores, KParBody body, AttnRun *a)
{
    a->nslots = (int)min64(tasks, K_ATTN_SLOTS);
    k_par_split(tasks, k_par_chunks(tasks, K_MACS_WORK(macs) + SOFTMAX_WORK * scores), a->nslots, body, a);
}

static int64_t fwd_tasks(const KAttn *p) { return p->BH * blocks_of(p, k_attention_rows(p)); }

size_t k_attention_f32_ws(const KAttn *p)
{
    if (p->BH <= 0 || p->T <= 0 || p->S <= 0) return 0;
    return (size_t)(min64(fwd_tasks(p), K_ATTN_SLOTS) * fwd_slot(p)) * sizeof(float);
}

size_t k_attention_grad_f32_ws(const KAttn *p)
{
    if (p->BH <= 0 || p->T <= 0 || p->S <= 0) return 0;
    return (size_t)(min64(p->BH, K_ATTN_SLOTS) * bwd_slot(p)) * sizeof(float);
}

/* Keys [0, *cols) that rows [i0, i1) may see, and for row i the end of its own
 * range: causal rows see j <= i + S - T. */
static int64_t row_limit(const KAttn *p, int64_t i)
{
    if (!p->causal) return p->S;
    int64_t l = i + p->S - p->T + 1;
    return l < 0 ? 0 : l > p->S ? p->S : l;
}

/* s[0..lim) += the additive mask, or = fill where the boolean mask is false:
 * the mask's row i of matrix bh. */
static void apply_mask(float *s, const KAttn *p, const void *mask, int64_t bh, int64_t i, int64_t lim)
{
    if (!p->mask_kind) return;
    int64_t base = (p->mask_off ? p->mask_off[bh] : 0) + i * p->mask_st;
    if (p->mask_kind == K_ATTN_MASK_ADD) {
        const float *m = (const float *)mask + base;
        for (int64_t j = 0; j < lim; j++) s[j] += m[j * p->mask_ss];
    } else {
        const uint8_t *m = (const uint8_t *)mask + base;
        for (int64_t j = 0; j < lim; j++) s[j] = m[j * p->mask_ss] ? s[j] : p->fill;
    }
}

/* Whether the boolean mask hides key j of row i (dS is 0 there: the scores
 * were replaced by the fill value, which is no function of Q and K). */
static int hidden(const KAttn *p, const void *mask, int64_t bh, int64_t i, int64_t j)
{
    int64_t o = (p->mask_off ? p->mask_off[bh] : 0) + i * p->mask_st + j * p->mask_ss;
    return !((const uint8_t *)mask)[o];
}

/* The softmax of sr[0, lim) in place, zeros in [lim, cols); returns the
 * row's log-sum-exp (-inf, and a zero row, when it sees no finite score).
 * The maximum and the exps are k_softmax_f32's (krow.h). */
static float row_softmax(float *sr, int64_t lim, int64_t cols)
{
    float m = lim > 0 ? k_row_max(sr, lim) : -INFINITY;
    if (!(m > -INFINITY)) { // no key, every key at -inf (or a NaN first): a zero row
        memset(sr, 0, (size_t)cols * sizeof *sr);
        return -INFINITY;
    }
    double sum = k_row_exp_sum(sr, sr, lim, m);
    for (int64_t j = lim; j < cols; j++) sr[j] = 0.0f;
    float inv = (float)(1.0 / sum);
    for (int64_t j = 0; j < lim; j++) sr[j] *= inv;
    return m + (float)log(sum);
}

/* dst (cols, rows) = src (rows, cols) transposed. */
static void transpose(float *dst, const float *src, int64_t rows, int64_t cols)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) dst[j * rows + r] = src[r * cols + j];
}

/* One block of rows [i0, i0 + rows) of matrix bh, whose K^T (D, S) is kt. */
static void fwd_block(float *o, float *lse, const float *q, const float *kt, const float *v,
                      const void *mask, const KAttn *p, int64_t bh, int64_t i0, int64_t rows, float *s)
{
    int64_t S = p->S, D = p->D, Dv = p->Dv;
    int64_t cols = row_limit(p, i0 + rows - 1); // the last row sees the most keys
    const float *qb = q + (bh * p->T + i0) * D, *vb = v + bh * S * Dv;
    float *ob = o + (bh * p->T + i0) * Dv, *lb = lse + bh * p->T + i0;
    if (cols <= 0) { // no row of the block sees a key
        memset(ob, 0, (size_t)(rows * Dv) * sizeof *ob);
        for (int64_t r = 0; r < rows; r++) lb[r] = -INFINITY;
        return;
    }
    // s (rows, cols) = scale * q k^T, as a plain product with K^T (the tiled kernels' fast form)
    k_sgemm(0, 0, rows, cols, D, p->scale, qb, D, kt, S, 0.0f, s, cols);
    for (int64_t r = 0; r < rows; r++) {
        int64_t lim = row_limit(p, i0 + r);
        apply_mask(s + r * cols, p, mask, bh, i0 + r, lim);
        lb[r] = row_softmax(s + r * cols, lim, cols);
    }
    // o (rows, Dv) = p v
    k_sgemm(0, 0, rows, Dv, cols, 1.0f, s, cols, vb, Dv, 0.0f, ob, Dv);
}

/* Tasks [lo, hi): (matrix, block of query rows). */
static void fwd_tasks_run(void *arg, int64_t lo, int64_t hi, int tid)
{
    const AttnRun *a = arg;
    const KAttn *p = a->p;
    float *s = slot_at(a, tid), *kt = s + slot_floats(a->br * p->S);
    for (int64_t t = lo, cur = -1; t < hi; t++) {
        int64_t bh = t / a->nb, i0 = t % a->nb * a->br;
        if (bh != cur) // K^T of the matrix, once per run of its blocks
            transpose(kt, a->k + bh * p->S * p->D, p->S, p->D), cur = bh;
        fwd_block(a->o, a->lse, a->q, kt, a->v, a->mask, p, bh, i0, min64(a->br, p->T - i0), s);
    }
}

void k_attention_f32(float *o, float *lse, const float *q, const float *k, const float *v, const void *mask,
                     const KAttn *p, void *ws)
{
    // q (BH,T,D), k (BH,S,D), v (BH,S,Dv), o (BH,T,Dv), lse (BH,T)
    if (p->BH <= 0 || p->T <= 0) return;
    if (p->S <= 0) { // softmax over no keys: zero rows
        memset(o, 0, (size_t)(p->BH * p->T * p->Dv) * sizeof *o);
        for (int64_t i = 0; i < p->BH * p->T; i++) lse[i] = -INFINITY;
        return;
    }
    int64_t br = k_attention_rows(p), nb = blocks_of(p, br);
    AttnRun a = {.o = o, .lse = lse, .q = q, .k = k, .v = v, .mask = mask, .p = p, .slots = ws,
                 .slot = fwd_slot(p), .br = br, .nb = nb};
    attn_par(p->BH * nb, p->BH * p->T * p->S * (p->D + p->Dv), p->BH * p->T * p->S, fwd_tasks_run, &a);
}

/* The whole backward of matrix bh; ws: P, dP (rows, cols), their transposes'
 * buffer (cols, rows), Di (rows), K^T (D, S), V^T (Dv, S). */
static void bwd_matrix(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                       const float *v, const float *o, const void *mask, const KAttn *p, int64_t bh,
                       float *ws)
{
    int64_t T = p->T, S = p->S, D = p->D, Dv = p->Dv, br = k_attention_rows(p);
    const float *kb = k + bh * S * D, *vb = v + bh * S * Dv;
    float *dkb = dk + bh * S * D, *dvb = dv + bh * S * Dv;
    float *P = ws, *dP = P + br * S, *tr = dP + br * S, *di = tr + br * S;
    float *kt = ws + slot_floats(3 * br * S + br), *vt = kt + slot_floats(D * S);
    transpose(kt, kb, S, D);
    transpose(vt, vb, S, Dv);
    memset(dkb, 0, (size_t)(S * D) * sizeof *dkb);
    memset(dvb, 0, (size_t)(S * Dv) * sizeof *dvb);
    for (int64_t i0 = 0; i0 < T; i0 += br) {
        int64_t rows = min64(br, T - i0), cols = row_limit(p, i0 + rows - 1);
        const float *qb = q + (bh * T + i0) * D, *dob = dout + (bh * T + i0) * Dv;
        const float *ob = o + (bh * T + i0) * Dv;
        float *dqb = dq + (bh * T + i0) * D;
        if (cols <= 0) { // no row sees a key: nothing flows
            memset(dqb, 0, (size_t)(rows * D) * sizeof *dqb);
            continue;
        }
        // P (rows, cols): the forward's probabilities, recomputed the same way
        k_sgemm(0, 0, rows, cols, D, p->scale, qb, D, kt, S, 0.0f, P, cols);
        for (int64_t r = 0; r < rows; r++) {
            int64_t lim = row_limit(p, i0 + r);
            apply_mask(P + r * cols, p, mask, bh, i0 + r, lim);
            row_softmax(P + r * cols, lim, cols);
            double s = 0; // Di = rowsum(dO * O)
            for (int64_t c = 0; c < Dv; c++) s += (double)dob[r * Dv + c] * ob[r * Dv + c];
            di[r] = (float)s;
        }
        // dV[0, cols) += P^T dO
        transpose(tr, P, rows, cols);
        k_sgemm(0, 0, cols, Dv, rows, 1.0f, tr, rows, dob, Dv, 1.0f, dvb, Dv);
        // dP (rows, cols) = dO V^T
        k_sgemm(0, 0, rows, cols, Dv, 1.0f, dob, Dv, vt, S, 0.0f, dP, cols);
        // dS = P * (dP - Di), into dP; 0 where a boolean mask put the fill value
        for (int64_t r = 0; r < rows; r++) {
            float *pr = P + r * cols, *gr = dP + r * cols;
            for (int64_t j = 0; j < cols; j++) gr[j] = pr[j] * (gr[j] - di[r]);
            if (p->mask_kind == K_ATTN_MASK_KEEP)
                for (int64_t j = 0, lim = row_limit(p, i0 + r); j < lim; j++)
                    if (hidden(p, mask, bh, i0 + r, j)) gr[j] = 0.0f;
        }
        // dQ (rows, D) = scale * dS K
        k_sgemm(0, 0, rows, D, cols, p->scale, dP, cols, kb, D, 0.0f, dqb, D);
        // dK[0, cols) += scale * dS^T Q
        transpose(tr, dP, rows, cols);
        k_sgemm(0, 0, cols, D, rows, p->scale, tr, rows, qb, D, 1.0f, dkb, D);
    }
}

/* Matrices [lo, hi). */
static void bwd_matrices_run(void *arg, int64_t lo, int64_t hi, int tid)
{
    const AttnRun *a = arg;
    for (int64_t bh = lo; bh < hi; bh++)
        bwd_matrix(a->dq, a->dk, a->dv, a->dout, a->q, a->k, a->v, a->out, a->mask, a->p, bh, slot_at(a, tid));
}

void k_attention_grad_f32(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                          const float *v, const float *o, const float *lse, const void *mask,
                          const KAttn *p, void *ws)
{
    // dq like q (BH,T,D), dk like k (BH,S,D), dv like v (BH,S,Dv); dout like o (BH,T,Dv)
    if (p->BH <= 0) return;
    if (p->T <= 0 || p->S <= 0) { // no scores: every gradient is 0
        memset(dq, 0, (size_t)(p->BH * p->T * p->D) * sizeof *dq);
        memset(dk, 0, (size_t)(p->BH * p->S * p->D) * sizeof *dk);
        memset(dv, 0, (size_t)(p->BH * p->S * p->Dv) * sizeof *dv);
        return;
    }
    AttnRun a = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .q = q, .k = k, .v = v, .out = o,
                 .mask = mask, .p = p, .slots = ws, .slot = bwd_slot(p)};
    attn_par(p->BH, 2 * p->BH * p->T * p->S * (p->D + p->Dv), p->BH * p->T * p->S, bwd_matrices_run, &a);
}
