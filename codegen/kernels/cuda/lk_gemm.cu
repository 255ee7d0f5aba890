/* Products through cuBLASLt (lk.cuh): row-major loom matrices as the
 * column-major ones cuBLASLt computes. A row-major y = op(a) * op(b) (M x N)
 * is the column-major y^T (N x M) = op(b)^T * op(a)^T, so b's buffer is
 * cuBLASLt's A and a's its B, each transposed exactly when loom's is, and a
 * bias over y's columns is the BIAS epilogue's per-row vector of y^T.
 * fp32 in and out, or bf16 in and bf16 or fp32 out; fp32 compute
 * (CUBLAS_COMPUTE_32F: no TF32, and bf16 products accumulated in fp32), with a
 * workspace of RT_CUDA_GEMM_WS_BYTES made at the first product (without one
 * cuBLASLt has no split-K: GPT-2 124M's weight gradients, 768 wide with K
 * 8192, ran at 22-36 TFLOP/s on an H200). The heuristic's choice depends only
 * on the shapes, so results are the same from run to run. A product's
 * descriptors and the heuristic's algorithm are made at its first call and
 * kept, per shape (types, sizes, transposes, strides, epilogue), for the
 * program's life: a training step repeats the same few dozen shapes, and
 * the heuristic query costs host time at every call otherwise. */
#include "lk.cuh"

#include <cublasLt.h>
#include <string.h>

static cublasLtHandle_t handle;
static void *workspace;

static int lt_check(cublasStatus_t s, int line, const char *call)
{
    if (s == CUBLAS_STATUS_SUCCESS) return 0;
    return rt_fail("%s:%d: %s: %s: %s", __FILE__, line, call, cublasLtGetStatusString(s),
                   s == CUBLAS_STATUS_NOT_SUPPORTED ? "cuBLASLt has no kernel for this product on this GPU"
                   : s == CUBLAS_STATUS_NOT_INITIALIZED ? "cuBLASLt could not start: check the GPU and driver"
                                                       : "a loom bug: please report it with the model");
}
#define LT(call) lt_check((call), __LINE__, #call)

/* the handle, made at the first product and kept for the program's life */
static int gemm_init(void)
{
    if (handle) return 0;
    if (RT_CUDA(cudaMalloc(&workspace, (size_t)RT_CUDA_GEMM_WS_BYTES))) return -1;
    return LT(cublasLtCreate(&handle));
}

/* A column-major layout of rows x cols (ld = rows) of type t repeated batch times at stride. */
static int layout(cublasLtMatrixLayout_t *l, cudaDataType_t t, int64_t rows, int64_t cols, int64_t batch,
                  int64_t stride)
{
    int32_t b = (int32_t)batch;
    return LT(cublasLtMatrixLayoutCreate(l, t, (uint64_t)rows, (uint64_t)cols, rows)) ||
                   (batch > 1 && (LT(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &b, sizeof b)) ||
                                  LT(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                                      &stride, sizeof stride))))
               ? -1
               : 0;
}

/* A product's shape, and what cuBLASLt was told of it: the descriptor, the
 * layouts and the algorithm the heuristic chose. */
typedef struct {
    cudaDataType_t ab, yt;
    int64_t batch, M, N, K, stride_a, stride_b, stride_y;
    int trans_a, trans_b, bias;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ly;
    cublasLtMatmulAlgo_t algo;
} Plan;

#define PLANS 256 /* past this many shapes, products plan per call */
static Plan plans[PLANS];
static int nplans;

static void plan_free(Plan *p)
{
    if (p->ly) cublasLtMatrixLayoutDestroy(p->ly);
    if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
    if (p->la) cublasLtMatrixLayoutDestroy(p->la);
    if (p->desc) cublasLtMatmulDescDestroy(p->desc);
}

/* p's descriptors and algorithm, from its shape fields; `name` for messages */
static int plan_make(const char *name, Plan *p)
{
    cublasLtMatmulPreference_t pref = NULL;
    cublasOperation_t opa = p->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, opb = p->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtEpilogue_t epi = p->bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    uint64_t ws = (uint64_t)RT_CUDA_GEMM_WS_BYTES;
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    int64_t M = p->M, N = p->N, K = p->K;
    /* cuBLASLt's A: b's buffer, (N x K) after its op; B: a's, (K x M) after its op */
    int rc = LT(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F)) ||
             LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa)) ||
             LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb)) ||
             LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi)) ||
             layout(&p->la, p->ab, p->trans_b ? K : N, p->trans_b ? N : K, p->batch, p->stride_b) ||
             layout(&p->lb, p->ab, p->trans_a ? M : K, p->trans_a ? K : M, p->batch, p->stride_a) ||
             layout(&p->ly, p->yt, N, M, p->batch, p->stride_y) ||
             LT(cublasLtMatmulPreferenceCreate(&pref)) ||
             LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws)) ||
             LT(cublasLtMatmulAlgoGetHeuristic(handle, p->desc, p->la, p->lb, p->ly, p->ly, pref, 1, &heur, &found))
                 ? -1 : 0;
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (!rc && !found)
        rc = rt_fail("%s: cuBLASLt has no algorithm for [%lld] x (%lld x %lld) * (%lld x %lld)", name,
                     (long long)p->batch, (long long)M, (long long)K, (long long)K, (long long)N);
    if (rc) {
        plan_free(p);
        return -1;
    }
    p->algo = heur.algo;
    return 0;
}

/* Every product: a and b of type ab, y of type yt (fp32 compute and scale
 * whatever the types); `name` is the launcher's, for its messages. */
static int gemm(const char *name, cudaStream_t s, cudaDataType_t ab, cudaDataType_t yt, void *y, const void *a,
                const void *b, const float *bias, int64_t batch, int64_t M, int64_t N, int64_t K, int trans_a,
                int trans_b, float alpha, float beta, int64_t stride_a, int64_t stride_b, int64_t stride_y)
{
    if (batch > INT32_MAX) return rt_fail("%s: %lld matrices in one batch (cuBLASLt takes 2^31 - 1)", name, (long long)batch);
    if (M == 0 || N == 0) return 0;
    if (gemm_init()) return -1;
    Plan key, own, *p = NULL;
    memset(&key, 0, sizeof key);
    key.ab = ab, key.yt = yt, key.batch = batch, key.M = M, key.N = N, key.K = K;
    key.stride_a = stride_a, key.stride_b = stride_b, key.stride_y = stride_y;
    key.trans_a = trans_a, key.trans_b = trans_b, key.bias = bias != NULL;
    for (int i = 0; i < nplans && !p; i++) {
        Plan *q = &plans[i];
        if (q->ab == ab && q->yt == yt && q->batch == batch && q->M == M && q->N == N && q->K == K &&
            q->stride_a == stride_a && q->stride_b == stride_b && q->stride_y == stride_y && q->trans_a == trans_a &&
            q->trans_b == trans_b && q->bias == key.bias)
            p = q;
    }
    if (!p) {
        p = nplans < PLANS ? &plans[nplans] : &own;
        *p = key;
        if (plan_make(name, p)) return -1;
        if (p != &own) nplans++;
    }
    int rc = (bias && LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias))) ||
             LT(cublasLtMatmul(handle, p->desc, &alpha, b, p->la, a, p->lb, &beta, y, p->ly, y, p->ly, &p->algo,
                               workspace, (size_t)RT_CUDA_GEMM_WS_BYTES, s));
    if (p == &own) plan_free(p);
    return rc ? -1 : 0;
}

int lk_gemm_f32(cudaStream_t s, float *y, const float *a, const float *b, const float *bias, int64_t batch,
                int64_t M, int64_t N, int64_t K, int trans_a, int trans_b, float alpha, float beta,
                int64_t stride_a, int64_t stride_b, int64_t stride_y)
{
    return gemm("lk_gemm_f32", s, CUDA_R_32F, CUDA_R_32F, y, a, b, bias, batch, M, N, K, trans_a, trans_b, alpha,
                beta, stride_a, stride_b, stride_y);
}

int lk_gemm_bf16(cudaStream_t s, uint16_t *y, const uint16_t *a, const uint16_t *b, int64_t batch, int64_t M,
                 int64_t N, int64_t K, int trans_a, int trans_b, float alpha, float beta, int64_t stride_a,
                 int64_t stride_b, int64_t stride_y)
{
    return gemm("lk_gemm_bf16", s, CUDA_R_16BF, CUDA_R_16BF, y, a, b, NULL, batch, M, N, K, trans_a, trans_b, alpha,
                beta, stride_a, stride_b, stride_y);
}

int lk_gemm_bf16_f32out(cudaStream_t s, float *y, const uint16_t *a, const uint16_t *b, int64_t batch, int64_t M,
                        int64_t N, int64_t K, int trans_a, int trans_b, float alpha, float beta, int64_t stride_a,
                        int64_t stride_b, int64_t stride_y)
{
    return gemm("lk_gemm_bf16_f32out", s, CUDA_R_16BF, CUDA_R_32F, y, a, b, NULL, batch, M, N, K, trans_a, trans_b,
                alpha, beta, stride_a, stride_b, stride_y);
}

/* y (M x N) = c broadcast from [c_rows, c_cols] */
static __global__ void broadcast2d(float *y, const float *c, int64_t M, int64_t N, int64_t c_rows, int64_t c_cols)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < M * N; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / N, col = i % N;
        y[i] = c[(c_rows == 1 ? 0 : r) * c_cols + (c_cols == 1 ? 0 : col)];
    }
}

int lk_broadcast2d_f32(cudaStream_t s, float *y, const float *c, int64_t M, int64_t N, int64_t c_rows, int64_t c_cols)
{
    return LOOM_LAUNCH(broadcast2d, lk_blocks(M * N), LK_THREADS, 0, s, y, c, M, N, c_rows, c_cols);
}
