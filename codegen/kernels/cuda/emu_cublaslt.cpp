/* The cuBLASLt calls loom's products use (lk_gemm.cu), emulated on the host
 * for `make EMU=1`: descriptors and layouts hold what the real library is
 * told, and cublasLtMatmul computes the product as cuBLASLt defines it
 * (column-major, op(A) * op(B), alpha, beta, strided batches, the DEFAULT
 * and BIAS epilogues) in double, so that the row-major/column-major and
 * transpose bookkeeping of the callers runs for real. Types: all fp32, or
 * A and B bf16 (widened exactly) with C and D both bf16 (rounded to
 * nearest even on store, as the GPU's epilogue) or both fp32; the BIAS
 * epilogue with fp32 D only. Anything else is refused with
 * CUBLAS_STATUS_NOT_SUPPORTED. */
#include "emu.h"

#include <cublasLt.h>
#include <stdlib.h>

void loom_emu_device_enter(void);
void loom_emu_device_leave(void);

/* what a descriptor or layout holds, in its opaque words */
enum { D_COMPUTE, D_SCALE, D_TRANSA, D_TRANSB, D_EPILOGUE, D_BIAS };
enum { L_TYPE, L_ROWS, L_COLS, L_LD, L_BATCH, L_STRIDE };

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h)
{
    *h = (cublasLtHandle_t)malloc(1);
    return *h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t h)
{
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasLtGetStatusString(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_INVALID_VALUE: return "an unsupported value or parameter was passed to the function";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    case CUBLAS_STATUS_ALLOC_FAILED: return "resource allocation failed";
    default: return "emulated cuBLASLt error";
    }
}

const char *cublasLtGetStatusName(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
    }
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute, cudaDataType_t scale)
{
    if (compute != CUBLAS_COMPUTE_32F || scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    *d = (cublasLtMatmulDesc_t)calloc(1, sizeof **d);
    if (!*d) return CUBLAS_STATUS_ALLOC_FAILED;
    (*d)->data[D_COMPUTE] = compute, (*d)->data[D_SCALE] = scale;
    (*d)->data[D_TRANSA] = CUBLAS_OP_N, (*d)->data[D_TRANSB] = CUBLAS_OP_N;
    (*d)->data[D_EPILOGUE] = CUBLASLT_EPILOGUE_DEFAULT;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a,
                                              const void *buf, size_t n)
{
    switch (a) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB: {
        int32_t op;
        if (n != sizeof op) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&op, buf, sizeof op);
        if (op != CUBLAS_OP_N && op != CUBLAS_OP_T) return CUBLAS_STATUS_NOT_SUPPORTED;
        d->data[a == CUBLASLT_MATMUL_DESC_TRANSA ? D_TRANSA : D_TRANSB] = (uint64_t)op;
        return CUBLAS_STATUS_SUCCESS;
    }
    case CUBLASLT_MATMUL_DESC_EPILOGUE: {
        uint32_t e;
        if (n != sizeof e) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&e, buf, sizeof e);
        if (e != CUBLASLT_EPILOGUE_DEFAULT && e != CUBLASLT_EPILOGUE_BIAS) return CUBLAS_STATUS_NOT_SUPPORTED;
        d->data[D_EPILOGUE] = e;
        return CUBLAS_STATUS_SUCCESS;
    }
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: {
        const void *p;
        if (n != sizeof p) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&p, buf, sizeof p);
        d->data[D_BIAS] = (uint64_t)(uintptr_t)p;
        return CUBLAS_STATUS_SUCCESS;
    }
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d)
{
    free(d);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld)
{
    if (type != CUDA_R_32F && type != CUDA_R_16BF) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (ld < (int64_t)(rows ? rows : 1)) return CUBLAS_STATUS_INVALID_VALUE; /* column-major: ld >= rows */
    *l = (cublasLtMatrixLayout_t)calloc(1, sizeof **l);
    if (!*l) return CUBLAS_STATUS_ALLOC_FAILED;
    (*l)->data[L_TYPE] = type, (*l)->data[L_ROWS] = rows, (*l)->data[L_COLS] = cols;
    (*l)->data[L_LD] = (uint64_t)ld, (*l)->data[L_BATCH] = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t a,
                                                const void *buf, size_t n)
{
    if (a == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT) {
        int32_t b;
        if (n != sizeof b) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&b, buf, sizeof b);
        if (b < 1) return CUBLAS_STATUS_INVALID_VALUE;
        l->data[L_BATCH] = (uint64_t)b;
        return CUBLAS_STATUS_SUCCESS;
    }
    if (a == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET) {
        int64_t s;
        if (n != sizeof s) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&s, buf, sizeof s);
        l->data[L_STRIDE] = (uint64_t)s;
        return CUBLAS_STATUS_SUCCESS;
    }
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l)
{
    free(l);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p)
{
    *p = (cublasLtMatmulPreference_t)calloc(1, sizeof **p);
    return *p ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t a, const void *buf, size_t n)
{
    if (a != CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES || n != sizeof(uint64_t)) return CUBLAS_STATUS_NOT_SUPPORTED;
    memcpy(&p->data[0], buf, n);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p)
{
    free(p);
    return CUBLAS_STATUS_SUCCESS;
}

} /* extern "C" */

/* The types are a combination the emulator computes (the file's comment). */
static int types_ok(cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t A, cublasLtMatrixLayout_t B,
                    cublasLtMatrixLayout_t C, cublasLtMatrixLayout_t D)
{
    uint64_t ab = A->data[L_TYPE], y = D->data[L_TYPE];
    if (B->data[L_TYPE] != ab || C->data[L_TYPE] != y) return 0;
    if (d->data[D_EPILOGUE] == CUBLASLT_EPILOGUE_BIAS && y != CUDA_R_32F) return 0;
    return ab == CUDA_R_32F ? y == CUDA_R_32F : ab == CUDA_R_16BF && (y == CUDA_R_16BF || y == CUDA_R_32F);
}

/* bf16 <-> float through the toolkit's conversions (emu.h includes
 * cuda_bf16.h): stores round to nearest even, as the device does */
static double bf16_load(uint16_t h)
{
    __nv_bfloat16_raw r;
    r.x = h;
    return __bfloat162float(__nv_bfloat16(r));
}

static uint16_t bf16_store(float f)
{
    __nv_bfloat16_raw r = __float2bfloat16(f);
    return r.x;
}

/* element i of a matrix of type t (fp32 or bf16) */
static double load(const void *p, uint64_t t, int64_t i)
{
    return t == CUDA_R_16BF ? bf16_load(((const uint16_t *)p)[i]) : (double)((const float *)p)[i];
}

/* The shapes agree as cuBLASLt requires: op(A) m x k, op(B) k x n, C and D m x n, one batch count. */
static int shapes_ok(cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t A, cublasLtMatrixLayout_t B,
                     cublasLtMatrixLayout_t C, cublasLtMatrixLayout_t D)
{
    uint64_t m = D->data[L_ROWS], n = D->data[L_COLS];
    int ta = d->data[D_TRANSA] == CUBLAS_OP_T, tb = d->data[D_TRANSB] == CUBLAS_OP_T;
    uint64_t am = ta ? A->data[L_COLS] : A->data[L_ROWS], ak = ta ? A->data[L_ROWS] : A->data[L_COLS];
    uint64_t bk = tb ? B->data[L_COLS] : B->data[L_ROWS], bn = tb ? B->data[L_ROWS] : B->data[L_COLS];
    uint64_t batch = D->data[L_BATCH];
    return am == m && bn == n && ak == bk && C->data[L_ROWS] == m && C->data[L_COLS] == n &&
           A->data[L_BATCH] == batch && B->data[L_BATCH] == batch && C->data[L_BATCH] == batch;
}

extern "C" {

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t A,
                                              cublasLtMatrixLayout_t B, cublasLtMatrixLayout_t C,
                                              cublasLtMatrixLayout_t D, cublasLtMatmulPreference_t p, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int *returned)
{
    (void)h, (void)p;
    *returned = 0;
    if (requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
    if (!shapes_ok(d, A, B, C, D) || !types_ok(d, A, B, C, D)) return CUBLAS_STATUS_NOT_SUPPORTED;
    memset(&results[0], 0, sizeof results[0]);
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t Ad, const void *B, cublasLtMatrixLayout_t Bd, const void *beta,
                              const void *C, cublasLtMatrixLayout_t Cd, void *D, cublasLtMatrixLayout_t Dd,
                              const cublasLtMatmulAlgo_t *algo, void *ws, size_t ws_bytes, cudaStream_t s)
{
    (void)h, (void)algo, (void)ws, (void)ws_bytes, (void)s;
    if (!shapes_ok(d, Ad, Bd, Cd, Dd)) return CUBLAS_STATUS_INVALID_VALUE;
    if (!types_ok(d, Ad, Bd, Cd, Dd)) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (Cd->data[L_LD] != Dd->data[L_LD] && C == D) return CUBLAS_STATUS_INVALID_VALUE;
    float al, be;
    memcpy(&al, alpha, sizeof al);
    memcpy(&be, beta, sizeof be);
    int64_t m = (int64_t)Dd->data[L_ROWS], n = (int64_t)Dd->data[L_COLS], batch = (int64_t)Dd->data[L_BATCH];
    int ta = d->data[D_TRANSA] == CUBLAS_OP_T, tb = d->data[D_TRANSB] == CUBLAS_OP_T;
    int64_t k = (int64_t)(ta ? Ad->data[L_ROWS] : Ad->data[L_COLS]);
    int64_t lda = (int64_t)Ad->data[L_LD], ldb = (int64_t)Bd->data[L_LD], ldc = (int64_t)Cd->data[L_LD],
            ldd = (int64_t)Dd->data[L_LD];
    uint64_t ab = Ad->data[L_TYPE], yt = Dd->data[L_TYPE];
    size_t abs = ab == CUDA_R_16BF ? 2 : 4, ys = yt == CUDA_R_16BF ? 2 : 4;
    const float *bias = (const float *)(uintptr_t)d->data[D_BIAS];
    if (d->data[D_EPILOGUE] == CUBLASLT_EPILOGUE_BIAS && !bias) return CUBLAS_STATUS_INVALID_VALUE;
    loom_emu_device_enter();
    for (int64_t b = 0; b < batch; b++) {
        const char *a = (const char *)A + b * (int64_t)Ad->data[L_STRIDE] * abs;
        const char *bb = (const char *)B + b * (int64_t)Bd->data[L_STRIDE] * abs;
        const char *c = (const char *)C + b * (int64_t)Cd->data[L_STRIDE] * ys;
        char *y = (char *)D + b * (int64_t)Dd->data[L_STRIDE] * ys;
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < m; i++) {
                double acc = 0;
                for (int64_t q = 0; q < k; q++)
                    acc += load(a, ab, ta ? q + i * lda : i + q * lda) * load(bb, ab, tb ? j + q * ldb : q + j * ldb);
                double r = (double)al * acc;
                if (be != 0) r += (double)be * load(c, yt, i + j * ldc);
                if (d->data[D_EPILOGUE] == CUBLASLT_EPILOGUE_BIAS) r += (double)bias[i];
                if (yt == CUDA_R_16BF) ((uint16_t *)y)[i + j * ldd] = bf16_store((float)r);
                else ((float *)y)[i + j * ldd] = (float)r;
            }
    }
    loom_emu_device_leave();
    return CUBLAS_STATUS_SUCCESS;
}

} /* extern "C" */
