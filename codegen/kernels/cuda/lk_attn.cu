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
 * These row kernels serve masks and head sizes over 64; without a mask and
 * with D = Dv <= 64 (the transformers' case) the tiled kernels below run
 * instead, where a block shares each K/V tile among 64 query rows. */
#include "lk_block.cuh"

#include "lk_mma.cuh"

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

/* ---- Tiled attention: the flash-attention form, for no mask (causal or not)
 * and D = Dv <= 64, the transformers' case. A block of 256 threads takes a
 * tile of 64 query rows (forward, dQ) or 64 keys (dK, dV) of one matrix
 * and walks the other side in tiles of 64, every tile staged in shared
 * memory once for the whole block; each thread owns a 4 x 4 piece of every
 * 64 x 64 product (rows ty + 16a; columns tx + 16b of a score tile, 4tx + b
 * of an output tile, read from shared memory a float4 at a time). The head size is padded
 * to 64 with zeros. Each output still has one owner and a fixed order (no
 * atomics): the backward runs dK and dV over query tiles, then dQ over key
 * tiles, computing P and dS twice. ---- */

#define TT 64        /* rows of a tile, and the padded head size */
#define TLD (TT + 4) /* a tile's row stride in shared memory: float4-aligned, no bank conflicts */
#define TTHREADS 256

static __device__ inline void tile_load(float *dst, const float *src, int64_t rows, int64_t D)
{
    // dst[r][d] (stride TLD) = src[r * D + d], zero past rows or D
    for (int e = threadIdx.x; e < TT * TT; e += TTHREADS) {
        int r = e / TT, d = e % TT;
        dst[r * TLD + d] = r < rows && d < D ? src[(int64_t)r * D + d] : 0.0f;
    }
}

/* Shared memory is read four floats at a time (a float4 per load: a quarter
 * of the load instructions of reading one at a time). */
static __device__ inline float4 ld4(const float *p) { return *(const float4 *)p; }

/* acc[a][b] += sum_k A[ty+16a][k] * B[tx+16b][k]: both tiles row-major over k;
 * the columns a thread owns are 16 apart (a row's 64 are in the 16 threads
 * of a half warp, for lk_lanes_max and lk_lanes_sum) */
static __device__ inline void tile_abt(float acc[4][4], const float *A, const float *B)
{
    int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
    for (int k = 0; k < TT; k += 4) {
        float4 a[4], b[4];
        for (int i = 0; i < 4; i++) a[i] = ld4(A + (ty + 16 * i) * TLD + k), b[i] = ld4(B + (tx + 16 * i) * TLD + k);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                acc[i][j] += a[i].x * b[j].x, acc[i][j] += a[i].y * b[j].y, acc[i][j] += a[i].z * b[j].z,
                    acc[i][j] += a[i].w * b[j].w;
    }
}

/* acc[a][b] += sum_k A[ty+16a][k] * B[k][4tx+b]: the columns a thread owns
 * are adjacent (one float4 of B a k) */
static __device__ inline void tile_ab(float acc[4][4], const float *A, const float *B)
{
    int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
    for (int k = 0; k < TT; k += 4) {
        float4 a[4];
        for (int i = 0; i < 4; i++) a[i] = ld4(A + (ty + 16 * i) * TLD + k);
        for (int kk = 0; kk < 4; kk++) {
            float4 b = ld4(B + (k + kk) * TLD + 4 * tx);
            for (int i = 0; i < 4; i++) {
                float ai = kk == 0 ? a[i].x : kk == 1 ? a[i].y : kk == 2 ? a[i].z : a[i].w;
                acc[i][0] += ai * b.x, acc[i][1] += ai * b.y, acc[i][2] += ai * b.z, acc[i][3] += ai * b.w;
            }
        }
    }
}

/* may query row i see key j (no mask: only causality) */
static __device__ inline int sees(const LkAttn &p, int64_t i, int64_t j)
{
    return j < p.S && i < p.T && (!p.causal || j <= i + p.S - p.T);
}

/* the keys a tile of query rows from i0 may see: [0, key_limit) (causal rows see j <= i + S - T) */
static __device__ inline int64_t key_limit(const LkAttn &p, int64_t i0)
{
    int64_t lim = p.causal ? i0 + TT - 1 + p.S - p.T + 1 : p.S;
    return lim < 0 ? 0 : lim > p.S ? p.S : lim;
}

/* the first tile of query rows that sees key j0 */
static __device__ inline int64_t first_query_tile(const LkAttn &p, int64_t j0)
{
    int64_t ilo = p.causal ? j0 - (p.S - p.T) : 0;
    return ilo < 0 ? 0 : ilo / TT * TT;
}

/* ls, ds [TT]: LSE and Di of the query rows from i0 of matrix bh (0 past T), the block's threads together */
static __device__ inline void stats_load(float *ls, float *ds, const float *lse, const float *di, const LkAttn &p,
                                         int64_t bh, int64_t i0)
{
    for (int e = threadIdx.x; e < TT; e += blockDim.x) {
        int64_t r = bh * p.T + i0 + e;
        ls[e] = i0 + e < p.T ? lse[r] : 0.0f, ds[e] = i0 + e < p.T ? di[r] : 0.0f;
    }
}

static __global__ void attn_fwd_tiled(float *o, float *lse, const float *q, const float *k, const float *v, LkAttn p)
{
    LOOM_DYN_SHARED(float, sm);
    float *qs = sm, *ks = qs + TT * TLD, *vs = ks + TT * TLD, *ps = vs + TT * TLD;
    int64_t ntile = (p.T + TT - 1) / TT, bh = blockIdx.x / ntile, i0 = blockIdx.x % ntile * TT;
    int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
    tile_load(qs, q + (bh * p.T + i0) * p.D, p.T - i0, p.D);
    float acc[4][4] = {}, m[4], l[4] = {};
    for (int a = 0; a < 4; a++) m[a] = -INFINITY;
    // the keys the tile's last row sees
    int64_t lim = key_limit(p, i0);
    for (int64_t j0 = 0; j0 < lim; j0 += TT) {
        __syncthreads(); // the previous tile's readers of ks, vs, ps are done
        tile_load(ks, k + (bh * p.S + j0) * p.D, p.S - j0, p.D);
        tile_load(vs, v + (bh * p.S + j0) * p.D, p.S - j0, p.D);
        __syncthreads();
        float s[4][4] = {};
        tile_abt(s, qs, ks);
        for (int a = 0; a < 4; a++) {
            int64_t i = i0 + ty + 16 * a;
            float mt = -INFINITY;
            for (int b = 0; b < 4; b++) {
                s[a][b] = sees(p, i, j0 + tx + 16 * b) ? s[a][b] * p.scale : -INFINITY;
                mt = s[a][b] > mt ? s[a][b] : mt;
            }
            mt = lk_lanes_max(mt, 16); // the 16 threads of a row
            float mn = mt > m[a] ? mt : m[a];
            float alpha = m[a] > -INFINITY ? expf(m[a] - mn) : 0.0f, rs = 0;
            for (int b = 0; b < 4; b++) {
                float e = s[a][b] > -INFINITY ? expf(s[a][b] - mn) : 0.0f;
                ps[(ty + 16 * a) * TLD + tx + 16 * b] = e;
                rs += e;
            }
            l[a] = l[a] * alpha + lk_lanes_sum(rs, 16);
            for (int b = 0; b < 4; b++) acc[a][b] *= alpha;
            m[a] = mn;
        }
        __syncthreads();
        tile_ab(acc, ps, vs);
    }
    for (int a = 0; a < 4; a++) {
        int64_t i = i0 + ty + 16 * a;
        if (i >= p.T) continue;
        float inv = l[a] > 0 ? 1.0f / l[a] : 0.0f;
        for (int b = 0; b < 4; b++) {
            int d = 4 * tx + b;
            if (d < p.D) o[(bh * p.T + i) * p.D + d] = acc[a][b] * inv;
        }
        if (tx == 0) lse[bh * p.T + i] = l[a] > 0 ? m[a] + logf(l[a]) : -INFINITY;
    }
}

static __global__ void attn_bwd_di(float *di, const float *dout, const float *o, int64_t rows, int64_t D)
{
    // di[r] = dO_r . O_r, a thread per row
    for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < rows; r += (int64_t)gridDim.x * blockDim.x) {
        float t = 0;
        for (int64_t d = 0; d < D; d++) t += dout[r * D + d] * o[r * D + d];
        di[r] = t;
    }
}

static __global__ void attn_bwd_kv_tiled(float *dk, float *dv, const float *di, const float *dout, const float *q,
                                         const float *k, const float *v, const float *lse, LkAttn p)
{
    // block: keys j0 .. j0+63 of matrix bh; rows of the products are keys, columns queries or d
    LOOM_DYN_SHARED(float, sm);
    float *ks = sm, *vs = ks + TT * TLD, *qs = vs + TT * TLD, *dos = qs + TT * TLD, *pt = dos + TT * TLD,
          *dst = pt + TT * TLD, *ls = dst + TT * TLD, *ds = ls + TT;
    int64_t ntile = (p.S + TT - 1) / TT, bh = blockIdx.x / ntile, j0 = blockIdx.x % ntile * TT;
    int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
    tile_load(ks, k + (bh * p.S + j0) * p.D, p.S - j0, p.D);
    tile_load(vs, v + (bh * p.S + j0) * p.D, p.S - j0, p.D);
    float ak[4][4] = {}, av[4][4] = {};
    for (int64_t i0 = first_query_tile(p, j0); i0 < p.T; i0 += TT) {
        __syncthreads();
        tile_load(qs, q + (bh * p.T + i0) * p.D, p.T - i0, p.D);
        tile_load(dos, dout + (bh * p.T + i0) * p.D, p.T - i0, p.D);
        stats_load(ls, ds, lse, di, p, bh, i0);
        __syncthreads();
        float s[4][4] = {}, dp[4][4] = {};
        tile_abt(s, ks, qs);   // s[key][query]
        tile_abt(dp, vs, dos); // dP^T[key][query] = V_j . dO_i
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 4; b++) {
                int kk = ty + 16 * a, qq = tx + 16 * b;
                float lq = ls[qq];
                float P = sees(p, i0 + qq, j0 + kk) && lq > -INFINITY ? expf(s[a][b] * p.scale - lq) : 0.0f;
                pt[kk * TLD + qq] = P;
                dst[kk * TLD + qq] = P * (dp[a][b] - ds[qq]);
            }
        __syncthreads();
        tile_ab(av, pt, dos);  // dV[key][d] += P^T dO
        tile_ab(ak, dst, qs);  // dK[key][d] += dS^T Q
    }
    for (int a = 0; a < 4; a++) {
        int64_t j = j0 + ty + 16 * a;
        if (j >= p.S) continue;
        for (int b = 0; b < 4; b++) {
            int d = 4 * tx + b;
            if (d < p.D) dv[(bh * p.S + j) * p.D + d] = av[a][b], dk[(bh * p.S + j) * p.D + d] = p.scale * ak[a][b];
        }
    }
}

static __global__ void attn_bwd_q_tiled(float *dq, const float *di, const float *dout, const float *q, const float *k,
                                        const float *v, const float *lse, LkAttn p)
{
    // block: query rows i0 .. i0+63 of matrix bh, over the key tiles they see
    LOOM_DYN_SHARED(float, sm);
    float *qs = sm, *dos = qs + TT * TLD, *ks = dos + TT * TLD, *vs = ks + TT * TLD, *dss = vs + TT * TLD;
    int64_t ntile = (p.T + TT - 1) / TT, bh = blockIdx.x / ntile, i0 = blockIdx.x % ntile * TT;
    int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
    tile_load(qs, q + (bh * p.T + i0) * p.D, p.T - i0, p.D);
    tile_load(dos, dout + (bh * p.T + i0) * p.D, p.T - i0, p.D);
    float lq[4], dq_[4];
    for (int a = 0; a < 4; a++) {
        int64_t i = i0 + ty + 16 * a;
        lq[a] = i < p.T ? lse[bh * p.T + i] : -INFINITY, dq_[a] = i < p.T ? di[bh * p.T + i] : 0.0f;
    }
    float acc[4][4] = {};
    int64_t lim = key_limit(p, i0);
    for (int64_t j0 = 0; j0 < lim; j0 += TT) {
        __syncthreads();
        tile_load(ks, k + (bh * p.S + j0) * p.D, p.S - j0, p.D);
        tile_load(vs, v + (bh * p.S + j0) * p.D, p.S - j0, p.D);
        __syncthreads();
        float s[4][4] = {}, dp[4][4] = {};
        tile_abt(s, qs, ks);
        tile_abt(dp, dos, vs);
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 4; b++) {
                int qq = ty + 16 * a, kk = tx + 16 * b;
                float P = sees(p, i0 + qq, j0 + kk) && lq[a] > -INFINITY ? expf(s[a][b] * p.scale - lq[a]) : 0.0f;
                dss[qq * TLD + kk] = P * (dp[a][b] - dq_[a]);
            }
        __syncthreads();
        tile_ab(acc, dss, ks); // dQ[query][d] += dS K
    }
    for (int a = 0; a < 4; a++) {
        int64_t i = i0 + ty + 16 * a;
        if (i >= p.T) continue;
        for (int b = 0; b < 4; b++) {
            int d = 4 * tx + b;
            if (d < p.D) dq[(bh * p.T + i) * p.D + d] = p.scale * acc[a][b];
        }
    }
}


/* ---- Tensor-core attention (lk_attention_bf16, lk_attention_grad_bf16:
 * loom.Attention with compute = 16, --precision bf16): the tiled kernels'
 * plan in the manner of flash-attention 2, with every product on the bf16
 * tensor cores in registers (lk_mma.cuh, m16n8k16, float accumulators). A
 * block of 4 warps takes 64 rows, each warp 16 of them, and walks the other
 * side's tiles of 64, which the block rounds from float to bf16 into shared
 * memory. A warp's scores stay in its registers: each lane holds 2 rows of
 * them (g and g + 8) and 16 columns, the row statistics reduce over the 4
 * lanes of a row by shuffles, and a score fragment, rounded to bf16, is the
 * next product's A operand as it stands. Softmax, its statistics and every
 * sum over tiles stay float; P and dS are rounded before the products that
 * read them. The backward is two kernels, as the float32 tiled ones, so
 * that every sum has one owner and a fixed order (no atomics): a block of
 * keys forms dK and dV, a block of queries dQ. The same cases as the tiled
 * kernels (no mask, D = Dv <= 64, padded to 64 with zeros). ---- */

#define TC_LD (TT + 8) /* a bf16 tile's row stride: 36 words, so a fragment's 32 loads hit 32 banks */
#define TC_THREADS 128

typedef __nv_bfloat16 bf16;

/* dst[r][d] (stride TC_LD) = src[r * D + d] rounded to bf16, zero past rows or D; the block's threads together */
static __device__ inline void tc_load(bf16 *dst, const float *src, int64_t rows, int64_t D)
{
    if (D == TT && ((uintptr_t)src & 15) == 0) { /* whole rows of 64: a float4 in, two words out */
        for (int e = threadIdx.x; e < TT * TT / 4; e += TC_THREADS) {
            int r = e / (TT / 4), c = e % (TT / 4) * 4;
            float4 x = r < rows ? *(const float4 *)(src + (int64_t)r * TT + c) : make_float4(0, 0, 0, 0);
            uint32_t *d = (uint32_t *)(dst + r * TC_LD + c);
            d[0] = lk_pack_bf2(x.x, x.y), d[1] = lk_pack_bf2(x.z, x.w);
        }
        return;
    }
    for (int e = threadIdx.x; e < TT * TT; e += TC_THREADS) {
        int r = e / TT, d = e % TT;
        dst[r * TC_LD + d] = __float2bfloat16(r < rows && d < D ? src[(int64_t)r * D + d] : 0.0f);
    }
}

static __device__ inline uint32_t ld_bf2(const bf16 *p) { return *(const uint32_t *)p; }

/* two bf16 a row apart (p[0], p[TC_LD]) packed: a B operand's k pair read down a row-major tile */
static __device__ inline uint32_t ld_bf2_col(const bf16 *p)
{
    return (uint32_t)__bfloat16_as_ushort(p[0]) | (uint32_t)__bfloat16_as_ushort(p[TC_LD]) << 16;
}

/* a[kk]: the A fragments of 16 rows x 64 columns at t (stride TC_LD), 16 columns per kk */
static __device__ inline void frag_rows(uint32_t a[4][4], const bf16 *t)
{
    int lane = threadIdx.x & 31, g = lane >> 2, c = 2 * (lane & 3);
    LK_UNROLL
    for (int kk = 0; kk < 4; kk++) {
        const bf16 *x = t + 16 * kk + c;
        a[kk][0] = ld_bf2(x + g * TC_LD), a[kk][1] = ld_bf2(x + (g + 8) * TC_LD);
        a[kk][2] = ld_bf2(x + g * TC_LD + 8), a[kk][3] = ld_bf2(x + (g + 8) * TC_LD + 8);
    }
}

/* a and b: the A fragments of this warp's 16 rows of the tiles x and y ([rows, D] from row 0), rounded
 * into the shared tiles tx and ty by the block (the backward's fixed side: K and V, or Q and dO) */
static __device__ inline void frag_two(uint32_t a[4][4], uint32_t b[4][4], bf16 *tx, bf16 *ty, const float *x,
                                       const float *y, int64_t rows, int64_t D)
{
    tc_load(tx, x, rows, D);
    tc_load(ty, y, rows, D);
    __syncthreads();
    int w = threadIdx.x / 32;
    frag_rows(a, tx + 16 * w * TC_LD);
    frag_rows(b, ty + 16 * w * TC_LD);
}

/* s[n] = A (16 x 64, fragments a) times the rows 8n .. 8n+7 of b (64 x 64, row-major: s = A b^T). (ldmatrix
 * for these operands and mma_pb's was measured too: 6-10% slower on an H100, with more registers.) */
static __device__ inline void mma_abt(float s[8][4], const uint32_t a[4][4], const bf16 *b)
{
    int lane = threadIdx.x & 31, g = lane >> 2, c = 2 * (lane & 3);
    LK_UNROLL
    for (int n = 0; n < 8; n++) {
        s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
        const bf16 *x = b + (8 * n + g) * TC_LD + c;
        LK_UNROLL
        for (int kk = 0; kk < 4; kk++) {
            uint32_t f[2] = {ld_bf2(x + 16 * kk), ld_bf2(x + 16 * kk + 8)};
            lk_mma_bf16(s[n], a[kk], f);
        }
    }
}

/* acc[n] += P (16 x 64: the score-layout fragments p, rounded to bf16 here) times b (64 x 64, row-major), 8 columns per n */
static __device__ inline void mma_pb(float acc[8][4], const float p[8][4], const bf16 *b)
{
    int lane = threadIdx.x & 31, g = lane >> 2, c = 2 * (lane & 3);
    LK_UNROLL
    for (int kk = 0; kk < 4; kk++) {
        uint32_t a[4] = {lk_pack_bf2(p[2 * kk][0], p[2 * kk][1]), lk_pack_bf2(p[2 * kk][2], p[2 * kk][3]),
                         lk_pack_bf2(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                         lk_pack_bf2(p[2 * kk + 1][2], p[2 * kk + 1][3])};
        const bf16 *x = b + (16 * kk + c) * TC_LD + g;
        LK_UNROLL
        for (int n = 0; n < 8; n++) {
            uint32_t f[2] = {ld_bf2_col(x + 8 * n), ld_bf2_col(x + 8 * TC_LD + 8 * n)};
            lk_mma_bf16(acc[n], a, f);
        }
    }
}

/* rows r0 .. r0+15 of an output (stride ld, columns d < D, rows < rows) = scale * acc, from the fragments */
static __device__ inline void frag_store(float *out, int64_t ld, int64_t rows, int64_t D, float scale,
                                         const float acc[8][4])
{
    int lane = threadIdx.x & 31, g = lane >> 2, c = 2 * (lane & 3);
    LK_UNROLL
    for (int n = 0; n < 8; n++)
        LK_UNROLL
        for (int e = 0; e < 4; e++) {
            int r = g + 8 * (e >> 1), d = 8 * n + c + (e & 1);
            if (r < rows && d < D) out[(int64_t)r * ld + d] = scale * acc[n][e];
        }
}

static __global__ void __launch_bounds__(TC_THREADS) attn_fwd_tc(float *o, float *lse, const float *q,
                                                                  const float *k, const float *v, LkAttn p)
{
    LOOM_DYN_SHARED(float, sm);
    bf16 *qs = (bf16 *)sm, *ks = qs + TT * TC_LD, *vs = ks + TT * TC_LD;
    int w = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, c = 2 * (lane & 3);
    int64_t ntile = (p.T + TT - 1) / TT, bh = blockIdx.x / ntile, i0 = blockIdx.x % ntile * TT;
    tc_load(qs, q + (bh * p.T + i0) * p.D, p.T - i0, p.D);
    __syncthreads();
    uint32_t qa[4][4];
    frag_rows(qa, qs + 16 * w * TC_LD);
    float acc[8][4] = {}, m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}; // l: this lane's part of the row sum
    int64_t row[2] = {i0 + 16 * w + g, i0 + 16 * w + g + 8};
    int64_t lim = key_limit(p, i0);
    for (int64_t j0 = 0; j0 < lim; j0 += TT) {
        __syncthreads(); // the previous tile's readers of ks, vs are done
        tc_load(ks, k + (bh * p.S + j0) * p.D, p.S - j0, p.D);
        tc_load(vs, v + (bh * p.S + j0) * p.D, p.S - j0, p.D);
        __syncthreads();
        float s[8][4];
        mma_abt(s, qa, ks); // S = Q_w K^T
        int full = j0 + TT <= p.S && (!p.causal || j0 + TT - 1 <= i0 + 16 * w + p.S - p.T); // the warp sees the tile
        LK_UNROLL
        for (int h = 0; h < 2; h++) {
            float mt = -INFINITY;
            LK_UNROLL
            for (int n = 0; n < 8; n++)
                LK_UNROLL
                for (int e = 2 * h; e < 2 * h + 2; e++) {
                    float x = full || sees(p, row[h], j0 + 8 * n + c + (e & 1)) ? s[n][e] * p.scale : -INFINITY;
                    s[n][e] = x;
                    mt = x > mt ? x : mt;
                }
            mt = lk_lanes_max(mt, 4); // the 4 lanes of a fragment row
            float mn = mt > m[h] ? mt : m[h], alpha = m[h] > -INFINITY ? expf(m[h] - mn) : 0.0f, rs = 0;
            LK_UNROLL
            for (int n = 0; n < 8; n++)
                LK_UNROLL
                for (int e = 2 * h; e < 2 * h + 2; e++) {
                    float x = s[n][e] > -INFINITY ? expf(s[n][e] - mn) : 0.0f;
                    s[n][e] = x;
                    rs += x;
                    acc[n][e] *= alpha;
                }
            l[h] = l[h] * alpha + rs;
            m[h] = mn;
        }
        mma_pb(acc, s, vs); // O_w += P V
    }
    LK_UNROLL
    for (int h = 0; h < 2; h++) {
        float lt = lk_lanes_sum(l[h], 4);
        if (row[h] >= p.T) continue;
        float inv = lt > 0 ? 1.0f / lt : 0.0f;
        LK_UNROLL
        for (int n = 0; n < 8; n++)
            LK_UNROLL
            for (int e = 2 * h; e < 2 * h + 2; e++) {
                int d = 8 * n + c + (e & 1);
                if (d < p.D) o[(bh * p.T + row[h]) * p.D + d] = acc[n][e] * inv;
            }
        if ((lane & 3) == 0) lse[bh * p.T + row[h]] = lt > 0 ? m[h] + logf(lt) : -INFINITY;
    }
}

static __global__ void __launch_bounds__(TC_THREADS) attn_bwd_kv_tc(float *dk, float *dv, const float *di,
                                                                     const float *dout, const float *q,
                                                                     const float *k, const float *v,
                                                                     const float *lse, LkAttn p)
{
    // block: keys j0 .. j0+63 of matrix bh; warp w: keys j0+16w ..; fragment rows are keys, columns queries or d
    LOOM_DYN_SHARED(float, sm);
    float *ls = sm, *ds = ls + TT;
    bf16 *qs = (bf16 *)(ds + TT), *dos = qs + TT * TC_LD;
    int w = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, c = 2 * (lane & 3);
    int64_t ntile = (p.S + TT - 1) / TT, bh = blockIdx.x / ntile, j0 = blockIdx.x % ntile * TT;
    uint32_t ka[4][4], va[4][4];
    frag_two(ka, va, qs, dos, k + (bh * p.S + j0) * p.D, v + (bh * p.S + j0) * p.D, p.S - j0, p.D); // via qs, dos
    float ak[8][4] = {}, av[8][4] = {};
    int64_t key[2] = {j0 + 16 * w + g, j0 + 16 * w + g + 8};
    for (int64_t i0 = first_query_tile(p, j0); i0 < p.T; i0 += TT) {
        __syncthreads();
        tc_load(qs, q + (bh * p.T + i0) * p.D, p.T - i0, p.D);
        tc_load(dos, dout + (bh * p.T + i0) * p.D, p.T - i0, p.D);
        stats_load(ls, ds, lse, di, p, bh, i0);
        __syncthreads();
        float pt[8][4], dpt[8][4];
        mma_abt(pt, ka, qs);   // S^T = K_w Q^T
        mma_abt(dpt, va, dos); // dP^T = V_w dO^T
        int full = i0 + TT <= p.T && (!p.causal || j0 + 16 * w + 15 <= i0 + p.S - p.T); // every query sees the warp's keys
        LK_UNROLL
        for (int n = 0; n < 8; n++)
            LK_UNROLL
            for (int e = 0; e < 4; e++) {
                int qc = 8 * n + c + (e & 1);
                float lq = ls[qc];
                float P = full || (sees(p, i0 + qc, key[e >> 1]) && lq > -INFINITY) ? expf(pt[n][e] * p.scale - lq)
                                                                                    : 0.0f;
                pt[n][e] = P;
                dpt[n][e] = P * (dpt[n][e] - ds[qc]);
            }
        mma_pb(av, pt, dos); // dV += P^T dO
        mma_pb(ak, dpt, qs); // dK += dS^T Q
    }
    int64_t rows = p.S - (j0 + 16 * w);
    frag_store(dv + (bh * p.S + j0 + 16 * w) * p.D, p.D, rows, p.D, 1.0f, av);
    frag_store(dk + (bh * p.S + j0 + 16 * w) * p.D, p.D, rows, p.D, p.scale, ak);
}

static __global__ void __launch_bounds__(TC_THREADS) attn_bwd_q_tc(float *dq, const float *di, const float *dout,
                                                                    const float *q, const float *k, const float *v,
                                                                    const float *lse, LkAttn p)
{
    // block: query rows i0 .. i0+63 of matrix bh; warp w: rows i0+16w .., over the key tiles they see
    LOOM_DYN_SHARED(float, sm);
    bf16 *ks = (bf16 *)sm, *vs = ks + TT * TC_LD;
    int w = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, c = 2 * (lane & 3);
    int64_t ntile = (p.T + TT - 1) / TT, bh = blockIdx.x / ntile, i0 = blockIdx.x % ntile * TT;
    uint32_t qa[4][4], da[4][4];
    frag_two(qa, da, ks, vs, q + (bh * p.T + i0) * p.D, dout + (bh * p.T + i0) * p.D, p.T - i0, p.D); // via ks, vs
    int64_t row[2] = {i0 + 16 * w + g, i0 + 16 * w + g + 8};
    float lq[2], dd[2];
    LK_UNROLL
    for (int h = 0; h < 2; h++)
        lq[h] = row[h] < p.T ? lse[bh * p.T + row[h]] : 0.0f, dd[h] = row[h] < p.T ? di[bh * p.T + row[h]] : 0.0f;
    float acc[8][4] = {};
    int64_t lim = key_limit(p, i0);
    for (int64_t j0 = 0; j0 < lim; j0 += TT) {
        __syncthreads();
        tc_load(ks, k + (bh * p.S + j0) * p.D, p.S - j0, p.D);
        tc_load(vs, v + (bh * p.S + j0) * p.D, p.S - j0, p.D);
        __syncthreads();
        float s[8][4], dp[8][4];
        mma_abt(s, qa, ks);  // S = Q_w K^T
        mma_abt(dp, da, vs); // dP = dO_w V^T
        int full = j0 + TT <= p.S && (!p.causal || j0 + TT - 1 <= i0 + 16 * w + p.S - p.T); // the warp sees the tile
        LK_UNROLL
        for (int n = 0; n < 8; n++)
            LK_UNROLL
            for (int e = 0; e < 4; e++) {
                int h = e >> 1;
                float P = full || (sees(p, row[h], j0 + 8 * n + c + (e & 1)) && lq[h] > -INFINITY)
                              ? expf(s[n][e] * p.scale - lq[h])
                              : 0.0f;
                s[n][e] = P * (dp[n][e] - dd[h]);
            }
        mma_pb(acc, s, ks); // dQ += dS K
    }
    frag_store(dq + (bh * p.T + i0 + 16 * w) * p.D, p.D, p.T - (i0 + 16 * w), p.D, p.scale, acc);
}

/* shared bytes: the forward's three bf16 tiles; the backward's two and two rows of statistics */
#define TC_FWD_BYTES ((size_t)(3 * TT * TC_LD) * sizeof(bf16))
#define TC_BWD_BYTES ((size_t)(2 * TT) * sizeof(float) + (size_t)(2 * TT * TC_LD) * sizeof(bf16))

static int tiled(const LkAttn *p) { return p->mask_kind == LK_ATTN_MASK_NONE && p->D == p->Dv && p->D <= TT; }

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
    if (tiled(p)) {
        size_t bytes = (size_t)(4 * TT * TLD) * sizeof(float);
        int64_t blocks = p->BH * ((p->T + TT - 1) / TT);
        if (blocks > 0x7fffffff)
            return rt_fail("lk_attention_f32: %lld tiles of query rows, over a grid's 2^31 - 1", (long long)blocks);
        return lk_smem_optin((const void *)attn_fwd_tiled, bytes) ||
               LOOM_LAUNCH(attn_fwd_tiled, (unsigned)blocks, TTHREADS, bytes, s, o, lse, q, k, v, *p);
    }
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
    if (tiled(p)) {
        size_t kv_bytes = (size_t)(6 * TT * TLD + 2 * TT) * sizeof(float), q_bytes = (size_t)(5 * TT * TLD) * sizeof(float);
        int64_t qb = p->BH * ((p->T + TT - 1) / TT), kb = p->BH * ((p->S + TT - 1) / TT);
        if (qb > 0x7fffffff || kb > 0x7fffffff)
            return rt_fail("lk_attention_grad_f32: %lld tiles of rows, over a grid's 2^31 - 1",
                           (long long)(qb > kb ? qb : kb));
        if (LOOM_LAUNCH(attn_bwd_di, lk_blocks(p->BH * p->T), LK_THREADS, 0, s, di, dout, o, p->BH * p->T, p->D))
            return -1;
        if (kb > 0 && (lk_smem_optin((const void *)attn_bwd_kv_tiled, kv_bytes) ||
                         LOOM_LAUNCH(attn_bwd_kv_tiled, (unsigned)kb, TTHREADS, kv_bytes, s, dk, dv, di, dout, q, k,
                                     v, lse, *p)))
            return -1;
        return qb > 0 && (lk_smem_optin((const void *)attn_bwd_q_tiled, q_bytes) ||
                          LOOM_LAUNCH(attn_bwd_q_tiled, (unsigned)qb, TTHREADS, q_bytes, s, dq, di, dout, q, k, v, lse, *p));
    }
    if (p->BH * p->T != 0 && LOOM_LAUNCH(attn_bwd_q, grid_of(p->BH * p->T), ATT_TILE,
                                    (size_t)(p->D + p->Dv + ATT_TILE) * sizeof(float), s, dq, di, dout, q, k, v, o,
                                    lse, mask, *p))
        return -1;
    if (p->BH * p->S == 0) return 0;
    return LOOM_LAUNCH(attn_bwd_kv, grid_of(p->BH * p->S), ATT_TILE, (size_t)(2 * ATT_TILE) * sizeof(float), s, dk,
                       dv, di, dout, q, k, v, lse, mask, *p);
}

/* bf16 tensor cores where the tiled kernels would run (else the float32 kernels) */
int lk_attention_bf16(cudaStream_t s, float *o, float *lse, const float *q, const float *k, const float *v,
                      const void *mask, const LkAttn *p)
{
    if (!tiled(p) || p->BH * p->T == 0) return lk_attention_f32(s, o, lse, q, k, v, mask, p);
    int64_t blocks = p->BH * ((p->T + TT - 1) / TT);
    if (blocks > 0x7fffffff)
        return rt_fail("lk_attention_bf16: %lld tiles of query rows, over a grid's 2^31 - 1", (long long)blocks);
    return lk_smem_optin((const void *)attn_fwd_tc, TC_FWD_BYTES) ||
           LOOM_LAUNCH(attn_fwd_tc, (unsigned)blocks, TC_THREADS, TC_FWD_BYTES, s, o, lse, q, k, v, *p);
}

int lk_attention_grad_bf16(cudaStream_t s, float *dq, float *dk, float *dv, const float *dout, const float *q,
                           const float *k, const float *v, const float *o, const float *lse, const void *mask,
                           const LkAttn *p, void *ws)
{
    if (!tiled(p)) return lk_attention_grad_f32(s, dq, dk, dv, dout, q, k, v, o, lse, mask, p, ws);
    float *di = (float *)ws;
    int64_t qb = p->BH * ((p->T + TT - 1) / TT), kb = p->BH * ((p->S + TT - 1) / TT);
    if (qb > 0x7fffffff || kb > 0x7fffffff)
        return rt_fail("lk_attention_grad_bf16: %lld tiles of rows, over a grid's 2^31 - 1",
                       (long long)(qb > kb ? qb : kb));
    if (p->BH * p->T > 0 &&
        LOOM_LAUNCH(attn_bwd_di, lk_blocks(p->BH * p->T), LK_THREADS, 0, s, di, dout, o, p->BH * p->T, p->D))
        return -1;
    if (kb > 0 && (lk_smem_optin((const void *)attn_bwd_kv_tc, TC_BWD_BYTES) ||
                   LOOM_LAUNCH(attn_bwd_kv_tc, (unsigned)kb, TC_THREADS, TC_BWD_BYTES, s, dk, dv, di, dout, q, k, v,
                               lse, *p)))
        return -1;
    return qb > 0 && (lk_smem_optin((const void *)attn_bwd_q_tc, TC_BWD_BYTES) ||
                      LOOM_LAUNCH(attn_bwd_q_tc, (unsigned)qb, TC_THREADS, TC_BWD_BYTES, s, dq, di, dout, q, k, v, lse,
                                  *p));
}
