/* Fused attention (loom.Attention, loom.AttentionGrad; lk.cuh), in the
 * manner of flash attention but one block per row: no [T, S] matrix of
 * the problem is ever in memory, only a tile of ATT_TILE scores in shared
 * memory.
 *
 * Forward: a block per query row i of matrix bh walks the keys it may see
 * in tiles of ATT_TILE, a thread per key (its score scale * q.k plus the
 * mask), with an online softmax: the running maximum m and sum l (double),
 * the output row rescaled by exp(m_old - m_new) at each tile and divided by
 * l at the end; LSE = m + log(l) is saved for the backward.
 *
 * Backward, from Q, K, V, dO, O and LSE (P recomputed as exp(s - LSE), the
 * flash-attention form: kattn.c recomputes the exact two-pass softmax
 * instead and does not read LSE), in two kernels that need no atomics:
 * a block per query row forms Di = dO_i . O_i (kept in the workspace) and
 * dQ_i = scale * sum_j dS_ij K_j over key tiles; then a block per key row j
 * forms dV_j = sum_i P_ij dO_i and dK_j = scale * sum_i dS_ij Q_i over query
 * tiles, with dS = P * (dO_i . V_j - Di), 0 where a boolean mask hid the
 * key. Each sum has one owner thread and a fixed order.
 *
 * Not yet tuned: a block per row reloads K and V once per query row (flash
 * attention's blocks of query rows share each K/V tile in shared memory),
 * and the dot products are per thread. */
#include "lk_block.cuh"

#define ATT_TILE 64

/* the mask's offset for matrix bh (its leading dims' broadcast strides) */
static __device__ int64_t mask_base(const LkAttn &p, int64_t bh)
{
    int64_t o = 0, rest = bh;
    for (int d = p.nb - 1; d >= 0; d--) {
        o += rest % p.bdims[d] * p.bstride[d];
        rest /= p.bdims[d];
    }
    return o;
}

/* keys [0, lim) that row i sees: causal rows see j <= i + S - T */
static __device__ int64_t row_limit(const LkAttn &p, int64_t i)
{
    if (!p.causal) return p.S;
    int64_t l = i + p.S - p.T + 1;
    return l < 0 ? 0 : l > p.S ? p.S : l;
}

/* score of query row qr (in shared memory) against key j of matrix bh; *hid
 * set where a boolean mask replaced it by the fill value */
static __device__ float score(const LkAttn &p, const float *qr, const float *kb, const void *mask, int64_t mb,
                              int64_t i, int64_t j, int *hid)
{
    const float *kr = kb + j * p.D;
    float s = 0;
    for (int64_t d = 0; d < p.D; d++) s += qr[d] * kr[d];
    s *= p.scale;
    *hid = 0;
    if (p.mask_kind == LK_ATTN_MASK_ADD) s += ((const float *)mask)[mb + i * p.mask_st + j * p.mask_ss];
    else if (p.mask_kind == LK_ATTN_MASK_KEEP && !((const uint8_t *)mask)[mb + i * p.mask_st + j * p.mask_ss])
        s = p.fill, *hid = 1;
    return s;
}

static __global__ void attn_fwd(float *o, float *lse, const float *q, const float *k, const float *v, const void *mask,
                                LkAttn p)
{
    // q (BH,T,D), k (BH,S,D), v (BH,S,Dv), o (BH,T,Dv), lse (BH,T); block: row i of matrix bh
    LOOM_DYN_SHARED(float, sm);
    __shared__ float fpart[32];
    __shared__ double dpart[32];
    float *qr = sm, *pt = qr + p.D, *acc = pt + ATT_TILE;
    for (int64_t row = blockIdx.x; row < p.BH * p.T; row += gridDim.x) {
        int64_t bh = row / p.T, i = row % p.T, lim = row_limit(p, i), mb = mask_base(p, bh);
        const float *kb = k + bh * p.S * p.D, *vb = v + bh * p.S * p.Dv;
        __syncthreads(); // the previous row's readers of qr and acc are done
        for (int64_t d = threadIdx.x; d < p.D; d += blockDim.x) qr[d] = q[row * p.D + d];
        for (int64_t d = threadIdx.x; d < p.Dv; d += blockDim.x) acc[d] = 0.0f;
        __syncthreads();
        float m = -INFINITY;
        double l = 0;
        for (int64_t j0 = 0; j0 < lim; j0 += ATT_TILE) {
            int64_t j = j0 + threadIdx.x;
            int hid;
            float s = j < lim && threadIdx.x < ATT_TILE ? score(p, qr, kb, mask, mb, i, j, &hid) : -INFINITY;
            float mt = lk_block_max(s, fpart), mn = mt > m ? mt : m;
            if (!(mn > -INFINITY)) continue; // every score so far at -inf
            float e = s > -INFINITY ? expf(s - mn) : 0.0f, alpha = m > -INFINITY ? expf(m - mn) : 0.0f;
            l = l * alpha + lk_block_sum((double)e, dpart);
            if (threadIdx.x < ATT_TILE) pt[threadIdx.x] = e;
            __syncthreads();
            int64_t n = lim - j0 < ATT_TILE ? lim - j0 : ATT_TILE;
            for (int64_t d = threadIdx.x; d < p.Dv; d += blockDim.x) {
                float a = 0;
                for (int64_t u = 0; u < n; u++) a += pt[u] * vb[(j0 + u) * p.Dv + d];
                acc[d] = acc[d] * alpha + a;
            }
            m = mn;
        }
        float inv = m > -INFINITY ? (float)(1.0 / l) : 0.0f;
        for (int64_t d = threadIdx.x; d < p.Dv; d += blockDim.x) o[row * p.Dv + d] = acc[d] * inv;
        if (threadIdx.x == 0) lse[row] = m > -INFINITY ? m + (float)log(l) : -INFINITY;
    }
}

static unsigned grid_of(int64_t n) { return (unsigned)(n < 65535 ? (n ? n : 1) : 65535); }

int lk_attention_f32(cudaStream_t s, float *o, float *lse, const float *q, const float *k, const float *v,
                     const void *mask, const LkAttn *p)
{
    if (p->BH * p->T == 0) return 0;
    size_t smem = (size_t)(p->D + ATT_TILE + p->Dv) * sizeof(float);
    return LOOM_LAUNCH(attn_fwd, grid_of(p->BH * p->T), ATT_TILE, smem, s, o, lse, q, k, v, mask, *p);
}

size_t lk_attention_grad_f32_ws(const LkAttn *p) { return (size_t)(p->BH * p->T) * sizeof(float); }

/* P and dS of row i against key j (P 0 where the row saw no key) */
static __device__ void prob(const LkAttn &p, const float *qr, const float *kb, const float *dor, const float *vb,
                            const void *mask, int64_t mb, int64_t i, int64_t j, float lse, float di, float *P,
                            float *dS)
{
    int hid;
    float s = score(p, qr, kb, mask, mb, i, j, &hid);
    *P = lse > -INFINITY ? expf(s - lse) : 0.0f;
    const float *vr = vb + j * p.Dv;
    float dp = 0;
    for (int64_t d = 0; d < p.Dv; d++) dp += dor[d] * vr[d];
    *dS = hid ? 0.0f : *P * (dp - di);
}

static __global__ void attn_bwd_q(float *dq, float *di, const float *dout, const float *q, const float *k,
                                  const float *v, const float *o, const float *lse, const void *mask, LkAttn p)
{
    // block: query row i of matrix bh; di (BH,T) gets dO_i . O_i for attn_bwd_kv
    LOOM_DYN_SHARED(float, sm);
    __shared__ double dpart[32];
    float *qr = sm, *dor = qr + p.D, *ds = dor + p.Dv;
    for (int64_t row = blockIdx.x; row < p.BH * p.T; row += gridDim.x) {
        int64_t bh = row / p.T, i = row % p.T, lim = row_limit(p, i), mb = mask_base(p, bh);
        const float *kb = k + bh * p.S * p.D, *vb = v + bh * p.S * p.Dv;
        __syncthreads();
        for (int64_t d = threadIdx.x; d < p.D; d += blockDim.x) qr[d] = q[row * p.D + d];
        for (int64_t d = threadIdx.x; d < p.Dv; d += blockDim.x) dor[d] = dout[row * p.Dv + d];
        double t = 0;
        for (int64_t d = threadIdx.x; d < p.Dv; d += blockDim.x) t += (double)dout[row * p.Dv + d] * o[row * p.Dv + d];
        float dii = (float)lk_block_sum(t, dpart), ls = lse[row];
        if (threadIdx.x == 0) di[row] = dii;
        float acc[LK_ATTN_MAX_D / ATT_TILE];
        for (int c = 0; c < LK_ATTN_MAX_D / ATT_TILE; c++) acc[c] = 0.0f;
        for (int64_t j0 = 0; j0 < lim; j0 += ATT_TILE) {
            int64_t j = j0 + threadIdx.x, n = lim - j0 < ATT_TILE ? lim - j0 : ATT_TILE;
            float P, g = 0.0f;
            if (j < lim) prob(p, qr, kb, dor, vb, mask, mb, i, j, ls, dii, &P, &g);
            ds[threadIdx.x] = g;
            __syncthreads();
            for (int64_t d = threadIdx.x, c = 0; d < p.D; d += blockDim.x, c++) {
                float a = 0;
                for (int64_t u = 0; u < n; u++) a += ds[u] * kb[(j0 + u) * p.D + d];
                acc[c] += a;
            }
            __syncthreads();
        }
        for (int64_t d = threadIdx.x, c = 0; d < p.D; d += blockDim.x, c++) dq[row * p.D + d] = p.scale * acc[c];
    }
}

static __global__ void attn_bwd_kv(float *dk, float *dv, const float *di, const float *dout, const float *q,
                                   const float *k, const float *v, const float *lse, const void *mask, LkAttn p)
{
    // block: key row j of matrix bh, over the query rows that see it, in tiles
    LOOM_DYN_SHARED(float, sm);
    float *pt = sm, *ds = pt + ATT_TILE;
    for (int64_t col = blockIdx.x; col < p.BH * p.S; col += gridDim.x) {
        int64_t bh = col / p.S, j = col % p.S, mb = mask_base(p, bh);
        const float *qb = q + bh * p.T * p.D, *kb = k + bh * p.S * p.D, *vb = v + bh * p.S * p.Dv;
        const float *dob = dout + bh * p.T * p.Dv;
        // the first query row that sees key j: causal rows see j <= i + S - T
        int64_t i_lo = p.causal ? j - (p.S - p.T) : 0;
        if (i_lo < 0) i_lo = 0;
        float ak[LK_ATTN_MAX_D / ATT_TILE], av[LK_ATTN_MAX_D / ATT_TILE];
        for (int c = 0; c < LK_ATTN_MAX_D / ATT_TILE; c++) ak[c] = av[c] = 0.0f;
        for (int64_t i0 = i_lo; i0 < p.T; i0 += ATT_TILE) {
            int64_t i = i0 + threadIdx.x, n = p.T - i0 < ATT_TILE ? p.T - i0 : ATT_TILE;
            float P = 0.0f, g = 0.0f;
            if (i < p.T) {
                int64_t r = bh * p.T + i;
                prob(p, qb + i * p.D, kb, dob + i * p.Dv, vb, mask, mb, i, j, lse[r], di[r], &P, &g);
            }
            __syncthreads(); // the previous tile's readers are done
            pt[threadIdx.x] = P, ds[threadIdx.x] = g;
            __syncthreads();
            for (int64_t d = threadIdx.x, c = 0; d < p.Dv; d += blockDim.x, c++) {
                float a = 0;
                for (int64_t u = 0; u < n; u++) a += pt[u] * dob[(i0 + u) * p.Dv + d];
                av[c] += a;
            }
            for (int64_t d = threadIdx.x, c = 0; d < p.D; d += blockDim.x, c++) {
                float a = 0;
                for (int64_t u = 0; u < n; u++) a += ds[u] * qb[(i0 + u) * p.D + d];
                ak[c] += a;
            }
        }
        for (int64_t d = threadIdx.x, c = 0; d < p.Dv; d += blockDim.x, c++) dv[col * p.Dv + d] = av[c];
        for (int64_t d = threadIdx.x, c = 0; d < p.D; d += blockDim.x, c++) dk[col * p.D + d] = p.scale * ak[c];
    }
}

int lk_attention_grad_f32(cudaStream_t s, float *dq, float *dk, float *dv, const float *dout, const float *q,
                          const float *k, const float *v, const float *o, const float *lse, const void *mask,
                          const LkAttn *p, void *ws)
{
    if (p->D > LK_ATTN_MAX_D || p->Dv > LK_ATTN_MAX_D)
        return rt_fail("lk_attention_grad_f32: head size %lld/%lld over %d (a loom bug: the emitter checks it)",
                       (long long)p->D, (long long)p->Dv, LK_ATTN_MAX_D);
    float *di = (float *)ws;
    if (p->BH * p->T != 0 && LOOM_LAUNCH(attn_bwd_q, grid_of(p->BH * p->T), ATT_TILE,
                                    (size_t)(p->D + p->Dv + ATT_TILE) * sizeof(float), s, dq, di, dout, q, k, v, o,
                                    lse, mask, *p))
        return -1;
    if (p->BH * p->S == 0) return 0;
    return LOOM_LAUNCH(attn_bwd_kv, grid_of(p->BH * p->S), ATT_TILE, (size_t)(2 * ATT_TILE) * sizeof(float), s, dk,
                       dv, di, dout, q, k, v, lse, mask, *p);
}
