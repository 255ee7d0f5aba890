/* Data movement and indexing (lk.cuh): the strided copy that Transpose,
 * Slice, Concat and Split pieces and Expand are (kmove.c's k_copy_nd), one
 * thread per element of the copy; Gather (kindex.c's k_gather), one thread
 * per element of y; and Gather's gradient, a scatter-add (kgrad_nn.c's
 * k_gather_grad_f32) that stays deterministic without atomics: a thread per
 * row of dx adds the rows of dy that its indices name in their order (the
 * indices grouped by row first, below), so every element of dx gets the
 * cpu kernel's sum in the same order. An index out of range cannot be reported from the
 * device without a host synchronization: Gather writes all-ones bytes there
 * (NaN in floats, -1 in integers) and its gradient NaN, so that the train
 * driver's loss check, or the output, shows it. */
#include "lk.cuh"

/* element e's offsets in dst and src, in elements */
template <class I> static __device__ inline void nd_offsets(const LkNd &p, I e, I *od, I *os)
{
    I rem = e, d0 = 0, s0 = 0;
    for (int k = p.rank - 1; k >= 0; k--) {
        I d = (I)p.dims[k], i = rem % d;
        rem /= d;
        d0 += i * (I)p.dst_stride[k], s0 += i * (I)p.src_stride[k];
    }
    *od = d0, *os = s0;
}

/* one element of the copy per thread: its index from the flat position, in
 * I (int when every offset fits: 64-bit division is several times slower,
 * and the copies around attention were 6.8 ms of GPT-2 124M's step), moved
 * as one T (lk_copy_nd makes an element of up to 16 bytes where the last
 * axis is contiguous on both sides: the index math once per 16 bytes, and
 * 16-byte loads and stores) */
template <class I, class T> static __global__ void copy_nd(char *dst, const char *src, LkNd p, I n)
{
    for (I e = blockIdx.x * (I)blockDim.x + threadIdx.x; e < n; e += (I)gridDim.x * blockDim.x) {
        I od, os;
        nd_offsets(p, e, &od, &os);
        *(T *)(dst + (int64_t)od * sizeof(T)) = *(const T *)(src + (int64_t)os * sizeof(T));
    }
}

/* any other element size, a byte at a time */
template <class I> static __global__ void copy_nd_bytes(char *dst, const char *src, LkNd p, I n)
{
    for (I e = blockIdx.x * (I)blockDim.x + threadIdx.x; e < n; e += (I)gridDim.x * blockDim.x) {
        I od, os;
        nd_offsets(p, e, &od, &os);
        for (int b = 0; b < p.esize; b++) dst[(int64_t)od * p.esize + b] = src[(int64_t)os * p.esize + b];
    }
}

template <class I> static int copy_launch(cudaStream_t s, void *dst, const void *src, const LkNd &p, I n)
{
    char *d = (char *)dst;
    const char *c = (const char *)src;
    unsigned b = lk_blocks((int64_t)n);
    switch (p.esize) {
    case 16: return LOOM_LAUNCH((copy_nd<I, uint4>), b, LK_THREADS, 0, s, d, c, p, n);
    case 8: return LOOM_LAUNCH((copy_nd<I, uint2>), b, LK_THREADS, 0, s, d, c, p, n);
    case 4: return LOOM_LAUNCH((copy_nd<I, uint32_t>), b, LK_THREADS, 0, s, d, c, p, n);
    case 2: return LOOM_LAUNCH((copy_nd<I, uint16_t>), b, LK_THREADS, 0, s, d, c, p, n);
    case 1: return LOOM_LAUNCH((copy_nd<I, uint8_t>), b, LK_THREADS, 0, s, d, c, p, n);
    default: return LOOM_LAUNCH(copy_nd_bytes<I>, b, LK_THREADS, 0, s, d, c, p, n);
    }
}

/* p with its last axis, where both sides walk it contiguously, taken V bytes
 * at a time: the widest V of 16, 8 and 4 that the row's bytes, both
 * pointers and every other stride in bytes are multiples of (else p) */
static LkNd widen_last(const LkNd *p, const void *dst, const void *src)
{
    LkNd q = *p;
    int r = p->rank - 1;
    if (r < 0 || p->dst_stride[r] != 1 || p->src_stride[r] != 1) return q;
    for (int64_t V = 16; V > p->esize && V >= 4; V /= 2) {
        int ok = (p->dims[r] * p->esize) % V == 0 && (uintptr_t)dst % V == 0 && (uintptr_t)src % V == 0;
        for (int k = 0; k < r && ok; k++)
            ok = (p->dst_stride[k] * p->esize) % V == 0 && (p->src_stride[k] * p->esize) % V == 0;
        if (!ok) continue;
        int64_t f = V / p->esize;
        q.dims[r] = p->dims[r] / f;
        for (int k = 0; k < r; k++) q.dst_stride[k] = p->dst_stride[k] / f, q.src_stride[k] = p->src_stride[k] / f;
        q.esize = (int)V;
        return q;
    }
    return q;
}

int lk_copy_nd(cudaStream_t s, void *dst, const void *src, const LkNd *p0)
{
    LkNd p = widen_last(p0, dst, src);
    int64_t n = 1, reach = 0;
    for (int k = 0; k < p.rank; k++) n *= p.dims[k];
    if (n == 0) return 0;
    // the largest offset either side reaches (strides may be negative or 0)
    for (int k = 0; k < p.rank; k++) {
        int64_t a = p.dst_stride[k] < 0 ? -p.dst_stride[k] : p.dst_stride[k];
        int64_t b = p.src_stride[k] < 0 ? -p.src_stride[k] : p.src_stride[k];
        reach += (p.dims[k] - 1) * (a > b ? a : b);
    }
    if (n < INT32_MAX && reach < INT32_MAX) return copy_launch<int32_t>(s, dst, src, p, (int32_t)n);
    return copy_launch<int64_t>(s, dst, src, p, n);
}

static __device__ int64_t index_at(const void *idx, int is_i32, int64_t t, int64_t len)
{
    int64_t i = is_i32 ? (int64_t)((const int32_t *)idx)[t] : ((const int64_t *)idx)[t];
    if (i < 0) i += len;
    return i >= 0 && i < len ? i : -1;
}

static __global__ void gather(char *y, const char *x, const void *idx, int is_i32, int64_t outer, int64_t len,
                              int64_t nidx, int64_t inner, int esize)
{
    // x is (outer, len, inner), y (outer, nidx, inner), in esize-byte elements
    int64_t n = outer * nidx * inner;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = e % inner, t = e / inner % nidx, o = e / (inner * nidx);
        int64_t i = index_at(idx, is_i32, t, len);
        char *d = y + e * esize;
        const char *s = x + ((o * len + i) * inner + c) * esize;
        for (int b = 0; b < esize; b++) d[b] = i < 0 ? (char)0xff : s[b];
    }
}

int lk_gather(cudaStream_t s, void *y, const void *x, const void *idx, int idx_is_i32, int64_t outer,
              int64_t axis_len, int64_t nidx, int64_t inner, int esize)
{
    int64_t n = outer * nidx * inner;
    if (n == 0) return 0;
    return LOOM_LAUNCH(gather, lk_blocks(n), LK_THREADS, 0, s, (char *)y, (const char *)x, idx, idx_is_i32, outer,
                       axis_len, nidx, inner, esize);
}

/* Gather's gradient through the indices grouped by row of dx (the
 * workspace, int32): cnt[len + 1] (each row's count, then its start),
 * fill[len], the flag of an index out of range, then list[nidx] (the
 * positions t of each row, unordered) and sorted[nidx] (the same in
 * increasing t). dx's rows sum their dy rows in increasing t, as
 * k_gather_grad_f32 adds them: the same sums, bit for bit, with no float
 * atomics. The old kernel (a thread per piece of a column walking every
 * index) took 0.77 ms for GPT-2's embedding on an H100. */
static __global__ void gg_count(int *cnt, int *bad, const void *idx, int is_i32, int64_t nidx, int64_t len)
{
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < nidx; t += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = index_at(idx, is_i32, t, len);
        if (i < 0) *bad = 1;
        else atomicAdd(&cnt[i], 1);
    }
}

static __global__ void gg_scan(int *cnt, int64_t len)
{
    // one block: cnt[0, len) counts -> cnt[0, len] starts (exclusive prefix sums); a thread a range
    __shared__ int part[1024];
    int64_t per = (len + blockDim.x - 1) / blockDim.x, lo = threadIdx.x * per, hi = lo + per < len ? lo + per : len;
    int sum = 0;
    for (int64_t r = lo; r < hi; r++) sum += cnt[r];
    part[threadIdx.x] = sum;
    __syncthreads();
    for (unsigned d = 1; d < blockDim.x; d *= 2) { // inclusive scan of the ranges' sums
        int add = threadIdx.x >= d ? part[threadIdx.x - d] : 0;
        __syncthreads();
        part[threadIdx.x] += add;
        __syncthreads();
    }
    int run = part[threadIdx.x] - sum;
    for (int64_t r = lo; r < hi; r++) {
        int c = cnt[r];
        cnt[r] = run;
        run += c;
    }
    if (threadIdx.x == blockDim.x - 1) cnt[len] = part[threadIdx.x];
}

static __global__ void gg_fill(int *list, int *fill, const int *start, const void *idx, int is_i32, int64_t nidx,
                               int64_t len)
{
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < nidx; t += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = index_at(idx, is_i32, t, len);
        if (i >= 0) list[start[i] + atomicAdd(&fill[i], 1)] = (int)t;
    }
}

static __global__ void gg_sort(int *sorted, const int *list, const int *start, const void *idx, int is_i32,
                               int64_t nidx, int64_t len)
{
    // a thread a position t: its rank among its row's positions (distinct) places it. A row that
    // one index fills (a padding token thousands of times) is read by all of its warps at once,
    // the same entry in every lane: a block a row sorting it took time quadratic in its count
    for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < nidx; t += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = index_at(idx, is_i32, t, len);
        if (i < 0) continue;
        int lo = start[i], c = start[i + 1] - lo, rank = 0;
        for (int k = 0; k < c; k++) rank += list[lo + k] < (int)t;
        sorted[lo + rank] = (int)t;
    }
}

static __global__ void gg_sum(float *dx, const float *dy, const int *sorted, const int *start, const int *bad,
                              int64_t outer, int64_t len, int64_t nidx, int64_t inner)
{
    // dx is (outer, len, inner), dy (outer, nidx, inner); a block a row of dx, its threads along inner
    int nan = *bad;
    for (int64_t b = blockIdx.x; b < outer * len; b += gridDim.x) {
        int64_t o = b / len, r = b % len;
        int lo = start[r], hi = start[r + 1];
        const float *dyo = dy + o * nidx * inner;
        float *d = dx + b * inner;
        for (int64_t c = threadIdx.x; c < inner; c += blockDim.x) {
            float acc = 0.0f;
            for (int k = lo; k < hi; k++) acc += dyo[(int64_t)sorted[k] * inner + c];
            d[c] = nan ? NAN : acc;
        }
    }
}

size_t lk_gather_grad_f32_ws(int64_t axis_len, int64_t nidx) { return (size_t)(2 * axis_len + 2 + 2 * nidx) * 4; }

int lk_gather_grad_f32(cudaStream_t s, float *dx, const float *dy, const void *idx, int idx_is_i32, int64_t outer,
                       int64_t axis_len, int64_t nidx, int64_t inner, void *ws)
{
    if (outer * inner == 0 || axis_len == 0) return 0;
    int *cnt = (int *)ws, *fill = cnt + axis_len + 1, *bad = fill + axis_len, *list = bad + 1, *sorted = list + nidx;
    unsigned rows = (unsigned)(outer * axis_len < 65535 ? outer * axis_len : 65535);
    unsigned threads = (unsigned)(inner >= LK_THREADS ? LK_THREADS : (inner + 31) / 32 * 32);
    return RT_CUDA(cudaMemsetAsync(cnt, 0, (size_t)(2 * axis_len + 2) * 4, s)) ||
           LOOM_LAUNCH(gg_count, lk_blocks(nidx), LK_THREADS, 0, s, cnt, bad, idx, idx_is_i32, nidx, axis_len) ||
           LOOM_LAUNCH(gg_scan, 1, 1024, 0, s, cnt, axis_len) ||
           LOOM_LAUNCH(gg_fill, lk_blocks(nidx), LK_THREADS, 0, s, list, fill, cnt, idx, idx_is_i32, nidx, axis_len) ||
           LOOM_LAUNCH(gg_sort, lk_blocks(nidx), LK_THREADS, 0, s, sorted, list, cnt, idx, idx_is_i32, nidx,
                       axis_len) ||
           LOOM_LAUNCH(gg_sum, rows, threads, 0, s, dx, dy, sorted, cnt, bad, outer, axis_len, nidx, inner);
}

/* kmove.c's pad_map: negative pads crop to the window [lo, lo + n) of each
 * axis, then the pads map (reflect, edge, wrap) or give -1 (the value) */
static __device__ int64_t pad_map(int64_t o, int64_t before, int64_t lo, int64_t n, int mode)
{
    int64_t j = o - before;
    if (j >= 0 && j < n) return lo + j;
    if (mode == 0 || n <= 0) return -1;
    if (mode == 1) { // numpy's repeated reflection, period 2(n-1)
        if (n == 1) return lo;
        int64_t per = 2 * (n - 1);
        j %= per;
        if (j < 0) j += per;
        if (j >= n) j = per - j;
    } else if (mode == 2) {
        j = j < 0 ? 0 : n - 1;
    } else {
        j %= n;
        if (j < 0) j += n;
    }
    return lo + j;
}

static __global__ void pad(char *y, const char *x, LkPad p, const char *value, int64_t total)
{
    // one element of y per thread: its source element, or the value
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        int64_t rem = e, soff = 0, xs = 1;
        int constant = 0;
        for (int k = p.rank - 1; k >= 0; k--) {
            int64_t pb = p.pads[k], pe = p.pads[p.rank + k];
            int64_t out = p.in_dims[k] + pb + pe, o = rem % out;
            rem /= out;
            int64_t j = pad_map(o, pb > 0 ? pb : 0, pb < 0 ? -pb : 0, p.in_dims[k] + (pb < 0 ? pb : 0) + (pe < 0 ? pe : 0),
                                p.mode);
            if (j < 0) constant = 1;
            else soff += j * xs;
            xs *= p.in_dims[k];
        }
        const char *s = constant ? (value ? value : p.value) : x + soff * p.esize;
        for (int b = 0; b < p.esize; b++) y[e * p.esize + b] = s[b];
    }
}

int lk_pad(cudaStream_t s, void *y, const void *x, const LkPad *p, const void *value)
{
    int64_t total = 1;
    for (int k = 0; k < p->rank; k++) total *= p->in_dims[k] + p->pads[k] + p->pads[p->rank + k];
    if (total <= 0) return 0;
    return LOOM_LAUNCH(pad, lk_blocks(total), LK_THREADS, 0, s, (char *)y, (const char *)x, *p, (const char *)value,
                       total);
}
