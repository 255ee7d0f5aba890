/* Tests of the backward and optimizer kernels (kgrad.c, kgrad_nn.c).
 *
 * Every backward kernel gets a gradient check against the FORWARD float32
 * kernel it differentiates: for a random upstream gradient dy and random
 * directions v, the analytic <dx, v> must match the central difference
 * <dy, f(x + h v) - f(x - h v)> / 2h, normalized by sum |dx_i v_i|, within
 * 1e-2 (float32 forward, h ~ 1e-2; 1e-3 across kinks). Shapes cover size-1
 * dims, groups = channels, strided and dilated windows, overlapping pools,
 * every loss reduction with weights and ignore_index. SGD and AdamW are
 * compared over several steps with a double transcription of PyTorch's update
 * formulas, the norm, softmax and loss gradients also directly with double
 * references of their Jacobians (normalized error under 1e-5), and the thread
 * count is checked not to change any bit. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "kernels.h"

static uint64_t rng_state = 88172645463325252ull;

static double urand(void) // uniform in [0, 1)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static float *frand(int64_t n, double lo, double hi)
{
    float *a = malloc((size_t)(n ? n : 1) * sizeof *a);
    for (int64_t i = 0; i < n; i++) a[i] = (float)(lo + (hi - lo) * urand());
    return a;
}

/* A forward function of one perturbed input: y = f(p) with the rest in ctx. */
typedef void (*Fwd)(float *y, const float *p, void *ctx);

static double worst;     // largest normalized error of the finite-difference checks
static double worst_ref; // and of the comparisons with double references

/* Normalized error of the directional derivative along 3 random directions. */
static double grad_err(Fwd f, void *ctx, const float *p, int64_t np, int64_t ny, const float *dp,
                       const float *dy, double h)
{
    float *v = frand(np, -1, 1), *q = frand(np, 0, 0), *yp = frand(ny, 0, 0), *ym = frand(ny, 0, 0);
    double err = 0;
    for (int dir = 0; dir < 3; dir++) {
        for (int64_t i = 0; i < np; i++) v[i] = (float)(2 * urand() - 1);
        for (int64_t i = 0; i < np; i++) q[i] = p[i] + (float)h * v[i];
        f(yp, q, ctx);
        for (int64_t i = 0; i < np; i++) q[i] = p[i] - (float)h * v[i];
        f(ym, q, ctx);
        double lhs = 0, rhs = 0, scale = 1e-6;
        for (int64_t i = 0; i < ny; i++) lhs += (double)dy[i] * ((double)yp[i] - ym[i]);
        // the perturbation actually applied, (p + h v) - (p - h v), may differ from 2 h v by rounding
        for (int64_t i = 0; i < np; i++) {
            double dv = ((double)(p[i] + (float)h * v[i]) - (double)(p[i] - (float)h * v[i]));
            rhs += (double)dp[i] * dv, scale += fabs((double)dp[i] * dv);
        }
        double e = fabs(lhs - rhs) / scale;
        if (e > err) err = e;
    }
    free(v), free(q), free(yp), free(ym);
    if (err > worst) worst = err;
    return err;
}

#define CHECK_GRAD(f, ctx, p, np, ny, dp, dy, h)                                          \
    do {                                                                                  \
        double e_ = grad_err(f, ctx, p, np, ny, dp, dy, h);                               \
        if (!(e_ < 1e-2)) fprintf(stderr, "  %s:%d: gradient error %g\n", __FILE__, __LINE__, e_); \
        CHECK(e_ < 1e-2);                                                                 \
    } while (0)

/* ---- activations ---- */

typedef struct { int act; float a, b, g; } ActCtx;

static void act_fwd(float *y, const float *x, void *vc)
{
    ActCtx *c = vc;
    for (int i = 0; i < 64; i++) {
        double v = x[i];
        switch (c->act) {
        case K_ACT_RELU: y[i] = (float)fmax(v, 0); break;
        case K_ACT_LEAKY_RELU: y[i] = (float)(v >= 0 ? v : c->a * v); break;
        case K_ACT_ELU: y[i] = (float)(v >= 0 ? v : c->a * (exp(v) - 1)); break;
        case K_ACT_SELU: y[i] = (float)(v > 0 ? c->g * v : c->g * (c->a * exp(v) - c->a)); break;
        case K_ACT_HARD_SIGMOID: y[i] = (float)fmax(0, fmin(1, c->a * v + c->b)); break;
        case K_ACT_HARD_SWISH: y[i] = (float)(v * fmax(0, fmin(1, v / 6 + 0.5))); break;
        case K_ACT_GELU: y[i] = (float)(0.5 * v * (1 + erf(v * 0.7071067811865476))); break;
        default:
            y[i] = (float)(0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))));
        }
    }
}

static void test_activation_grad(void)
{
    static const float al[] = {0, 0.01f, 1.0f, 1.67326319217681884765625f, 0.2f, 0, 0, 0};
    for (int act = K_ACT_RELU; act <= K_ACT_GELU_TANH; act++) {
        ActCtx c = {act, al[act], 0.5f, 1.05070102214813232421875f};
        float *x = frand(64, -4, 4), *dy = frand(64, -1, 1), *dx = frand(64, 0, 0);
        k_activation_grad_f32(dx, dy, x, 64, act, c.a, c.b, c.g);
        CHECK_GRAD(act_fwd, &c, x, 64, 64, dx, dy, 1e-3);
        free(x), free(dy), free(dx);
    }
}

/* ---- softmax ---- */

typedef struct { int64_t o, l, i; int log; } SmCtx;

static void sm_fwd(float *y, const float *x, void *vc)
{
    SmCtx *c = vc;
    k_softmax_f32(y, x, c->o, c->l, c->i, c->log);
}

static void test_softmax_grad(void)
{
    static const int64_t shapes[][3] = {{2, 5, 3}, {1, 1, 1}, {3, 7, 1}, {1, 4, 6}};
    for (int s = 0; s < 4; s++)
        for (int log = 0; log < 2; log++) {
            SmCtx c = {shapes[s][0], shapes[s][1], shapes[s][2], log};
            int64_t n = c.o * c.l * c.i;
            float *x = frand(n, -3, 3), *y = frand(n, 0, 0), *dy = frand(n, -1, 1), *dx = frand(n, 0, 0);
            sm_fwd(y, x, &c);
            k_softmax_grad_f32(dx, dy, y, c.o, c.l, c.i, log);
            CHECK_GRAD(sm_fwd, &c, x, n, n, dx, dy, 1e-2);
            free(x), free(y), free(dy), free(dx);
        }
}

/* ---- normalization ---- */

/* The inputs of a norm forward; `which` names the perturbed one (0 x, 1 scale, 2 bias). */
typedef struct {
    const float *x, *scale, *bias, *mean, *var;
    int64_t a, b, c, d; // layernorm: rows, cols; channel norms: N, C, groups, spatial
    int which, training;
} NormCtx;

static void pick(const NormCtx *c, const float *p, const float **x, const float **s, const float **b)
{
    *x = c->which == 0 ? p : c->x, *s = c->which == 1 ? p : c->scale, *b = c->which == 2 ? p : c->bias;
}

static void ln_fwd(float *y, const float *p, void *vc)
{
    NormCtx *c = vc;
    const float *x, *s, *b;
    pick(c, p, &x, &s, &b);
    k_layernorm_f32(y, NULL, NULL, x, s, b, c->a, c->b, 1e-5f);
}

static void bn_fwd(float *y, const float *p, void *vc)
{
    NormCtx *c = vc;
    const float *x, *s, *b;
    pick(c, p, &x, &s, &b);
    if (c->training) k_batchnorm_train_f32(y, NULL, NULL, x, s, b, c->mean, c->var, c->a, c->b, c->d, 1e-5f, 0.9f);
    else k_batchnorm_f32(y, x, s, b, c->mean, c->var, c->a, c->b, c->d, 1e-5f);
}

static void gn_fwd(float *y, const float *p, void *vc)
{
    NormCtx *c = vc;
    const float *x, *s, *b;
    pick(c, p, &x, &s, &b);
    k_groupnorm_f32(y, x, s, b, c->a, c->b, c->c, c->d, 1e-5f);
}

/* Checks dx, dscale, dbias of one norm case; f is the forward, np the parameter count. */
static void norm_case(Fwd f, NormCtx *c, int64_t n, int64_t np, const float *dy, const float *dx,
                      const float *ds, const float *db)
{
    const float *args[3] = {c->x, c->scale, c->bias}, *grads[3] = {dx, ds, db};
    for (int w = 0; w < 3; w++) {
        c->which = w;
        CHECK_GRAD(f, c, args[w], w ? np : n, n, grads[w], dy, 1e-2);
    }
}

static void test_layernorm_grad(void)
{
    static const int64_t shapes[][2] = {{3, 8}, {1, 1}, {5, 1}, {2, 300}, {4, 33}};
    for (int s = 0; s < 5; s++)
        for (int given = 0; given < 2; given++) {
            int64_t R = shapes[s][0], L = shapes[s][1], n = R * L;
            float *x = frand(n, -2, 3), *sc = frand(L, 0.5, 1.5), *bi = frand(L, -1, 1);
            float *dy = frand(n, -1, 1), *dx = frand(n, 0, 0), *ds = frand(L, 0, 0), *db = frand(L, 0, 0);
            float *y = frand(n, 0, 0), *mean = frand(R, 0, 0), *is = frand(R, 0, 0);
            void *ws = malloc(k_layernorm_grad_f32_ws(R));
            k_layernorm_f32(y, mean, is, x, sc, bi, R, L, 1e-5f);
            k_layernorm_grad_f32(dx, ds, db, dy, x, sc, given ? mean : NULL, given ? is : NULL, R, L,
                                 1e-5f, ws);
            NormCtx c = {x, sc, bi, NULL, NULL, R, L, 0, 0, 0, 0};
            norm_case(ln_fwd, &c, n, L, dy, dx, ds, db);
            free(x), free(sc), free(bi), free(dy), free(dx), free(ds), free(db), free(y), free(mean),
                free(is), free(ws);
        }
}

static void rms_fwd(float *y, const float *p, void *vc)
{
    NormCtx *c = vc;
    const float *x, *s, *b;
    pick(c, p, &x, &s, &b);
    k_rmsnorm_f32(y, x, s, c->a, c->b, 1e-5f);
}

/* loom.RMSNormGrad: dx and dscale against finite differences of k_rmsnorm_f32 */
static void test_rmsnorm_grad(void)
{
    /* not one column: y = sign(x) * scale there, whose slope (eps / |x|^3) is
     * below float rounding, so finite differences see only noise */
    static const int64_t shapes[][2] = {{3, 8}, {1, 2}, {5, 3}, {2, 300}, {4, 33}};
    for (int s = 0; s < 5; s++) {
        int64_t R = shapes[s][0], L = shapes[s][1], n = R * L;
        float *x = frand(n, -2, 3), *sc = frand(L, 0.5, 1.5);
        float *dy = frand(n, -1, 1), *dx = frand(n, 0, 0), *ds = frand(L, 0, 0), *dx2 = frand(n, 0, 0);
        void *ws = malloc(k_layernorm_grad_f32_ws(R));
        k_rmsnorm_grad_f32(dx, ds, dy, x, sc, R, L, 1e-5f, ws);
        k_rmsnorm_grad_f32(dx2, NULL, dy, x, sc, R, L, 1e-5f, ws); /* dscale not wanted: the same dx */
        CHECK(!memcmp(dx, dx2, (size_t)n * sizeof *dx));
        NormCtx c = {x, sc, NULL, NULL, NULL, R, L, 0, 0, 0, 0};
        const float *args[2] = {x, sc}, *grads[2] = {dx, ds};
        for (int w = 0; w < 2; w++) {
            c.which = w;
            CHECK_GRAD(rms_fwd, &c, args[w], w ? L : n, n, grads[w], dy, 1e-2);
        }
        free(x), free(sc), free(dy), free(dx), free(ds), free(dx2), free(ws);
    }
}

static void test_batchnorm_grad(void)
{
    static const int64_t shapes[][3] = {{2, 3, 5}, {1, 1, 4}, {4, 2, 1}, {3, 4, 7}};
    for (int s = 0; s < 4; s++)
        for (int training = 0; training < 2; training++) {
            int64_t N = shapes[s][0], C = shapes[s][1], S = shapes[s][2], n = N * C * S;
            float *x = frand(n, -2, 3), *sc = frand(C, 0.5, 1.5), *bi = frand(C, -1, 1);
            float *mean = frand(C, -0.5, 0.5), *var = frand(C, 0.5, 2);
            float *dy = frand(n, -1, 1), *dx = frand(n, 0, 0), *ds = frand(C, 0, 0), *db = frand(C, 0, 0);
            k_batchnorm_grad_f32(dx, ds, db, dy, x, sc, mean, var, N, C, S, 1e-5f, training);
            NormCtx c = {x, sc, bi, mean, var, N, C, 0, S, 0, training};
            norm_case(bn_fwd, &c, n, C, dy, dx, ds, db);
            /* dx written over dy (the programs do, where dy dies there): the same bits */
            float *io = malloc((size_t)n * sizeof *io), *ds2 = frand(C, 0, 0), *db2 = frand(C, 0, 0);
            memcpy(io, dy, (size_t)n * sizeof *io);
            k_batchnorm_grad_f32(io, ds2, db2, io, x, sc, mean, var, N, C, S, 1e-5f, training);
            CHECK(!memcmp(io, dx, (size_t)n * sizeof *io) && !memcmp(ds2, ds, (size_t)C * sizeof *ds) &&
                  !memcmp(db2, db, (size_t)C * sizeof *db));
            free(io), free(ds2), free(db2);
            free(x), free(sc), free(bi), free(mean), free(var), free(dy), free(dx), free(ds), free(db);
        }
}

/* y = Relu(BatchNormalization(x)) as the forward program computes it: the
 * kernel, then Relu's t > 0 ? t : 0 */
static float *bn_relu_fwd(const float *x, const float *sc, const float *bi, const float *mean, const float *var,
                          int64_t N, int64_t C, int64_t S)
{
    float *y = frand(N * C * S, 0, 0);
    k_batchnorm_f32(y, x, sc, bi, mean, var, N, C, S, 1e-5f);
    for (int64_t i = 0; i < N * C * S; i++) y[i] = y[i] > 0 ? y[i] : 0.0f;
    return y;
}

/* BatchNormGrad with relu 1 (ir_fold_bn_relu_grad): bit for bit the
 * ActivationGrad of the Relu on the forward's output, then BatchNormGrad;
 * with dx written over dy, and without dx */
static void test_batchnorm_relu_grad(void)
{
    static const int64_t shapes[][3] = {{2, 3, 5}, {1, 1, 4}, {4, 2, 1}, {3, 4, 7}};
    for (int s = 0; s < 4; s++) {
        int64_t N = shapes[s][0], C = shapes[s][1], S = shapes[s][2], n = N * C * S;
        float *x = frand(n, -2, 3), *sc = frand(C, 0.5, 1.5), *bi = frand(C, -1, 1);
        float *mean = frand(C, -0.5, 0.5), *var = frand(C, 0.5, 2), *dy = frand(n, -1, 1);
        float *y = bn_relu_fwd(x, sc, bi, mean, var, N, C, S), *db_in = frand(n, 0, 0);
        float *want = frand(n, 0, 0), *wds = frand(C, 0, 0), *wdb = frand(C, 0, 0);
        k_activation_grad_f32(db_in, dy, y, n, K_ACT_RELU, 0, 0, 0);
        k_batchnorm_grad_f32(want, wds, wdb, db_in, x, sc, mean, var, N, C, S, 1e-5f, 0);
        int zeros = 0;
        for (int64_t i = 0; i < n; i++) zeros += y[i] == 0;
        CHECK(n < 8 || (zeros > 0 && zeros < n)); /* the mask cuts some, not all */
        float *dx = frand(n, 0, 0), *ds = frand(C, 0, 0), *db = frand(C, 0, 0);
        k_batchnorm_relu_grad_f32(dx, ds, db, dy, x, sc, bi, mean, var, N, C, S, 1e-5f);
        CHECK(!memcmp(dx, want, (size_t)n * sizeof *dx) && !memcmp(ds, wds, (size_t)C * sizeof *ds) &&
              !memcmp(db, wdb, (size_t)C * sizeof *db));
        float *io = malloc((size_t)n * sizeof *io);
        memcpy(io, dy, (size_t)n * sizeof *io);
        memset(ds, 0, (size_t)C * sizeof *ds), memset(db, 0, (size_t)C * sizeof *db);
        k_batchnorm_relu_grad_f32(io, ds, db, io, x, sc, bi, mean, var, N, C, S, 1e-5f);
        CHECK(!memcmp(io, want, (size_t)n * sizeof *io) && !memcmp(ds, wds, (size_t)C * sizeof *ds));
        memset(ds, 0, (size_t)C * sizeof *ds), memset(db, 0, (size_t)C * sizeof *db);
        k_batchnorm_relu_grad_f32(NULL, ds, db, dy, x, sc, bi, mean, var, N, C, S, 1e-5f);
        CHECK(!memcmp(ds, wds, (size_t)C * sizeof *ds) && !memcmp(db, wdb, (size_t)C * sizeof *db));
        free(x), free(sc), free(bi), free(mean), free(var), free(dy), free(y), free(db_in), free(want), free(wds);
        free(wdb), free(dx), free(ds), free(db), free(io);
    }
}

static void test_groupnorm_grad(void)
{
    // groups 1 (LayerNorm over C), 2, and C (InstanceNorm)
    static const int64_t shapes[][4] = {{2, 4, 1, 5}, {2, 4, 2, 3}, {3, 6, 6, 4}, {1, 1, 1, 1}, {2, 3, 3, 1}};
    for (int s = 0; s < 5; s++) {
        int64_t N = shapes[s][0], C = shapes[s][1], Gr = shapes[s][2], S = shapes[s][3], n = N * C * S;
        float *x = frand(n, -2, 3), *sc = frand(C, 0.5, 1.5), *bi = frand(C, -1, 1);
        float *dy = frand(n, -1, 1), *dx = frand(n, 0, 0), *ds = frand(C, 0, 0), *db = frand(C, 0, 0);
        void *ws = malloc(k_groupnorm_grad_f32_ws(N, Gr));
        k_groupnorm_grad_f32(dx, ds, db, dy, x, sc, N, C, Gr, S, 1e-5f, ws);
        NormCtx c = {x, sc, bi, NULL, NULL, N, C, Gr, S, 0, 0};
        norm_case(gn_fwd, &c, n, C, dy, dx, ds, db);
        free(x), free(sc), free(bi), free(dy), free(dx), free(ds), free(db), free(ws);
    }
}

/* ---- convolution ---- */

typedef struct { const KConv *p; const float *x; void *ws; } ConvCtx;

static void conv_fwd(float *y, const float *w, void *vc)
{
    ConvCtx *c = vc;
    k_conv_f32(y, c->x, w, NULL, c->p, c->ws);
}

static void test_conv_grad_weight(void)
{
    // nd, N, C, M, group, in, k, stride, dilation, pad begin, pad end
    static const int64_t cs[][11] = {
        {1, 2, 3, 4, 1, 9, 3, 1, 1, 1, 1}, {1, 1, 4, 4, 4, 7, 2, 2, 1, 0, 1}, // depthwise
        {2, 2, 2, 6, 2, 6, 3, 2, 2, 2, 1}, {2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, // size 1
        {2, 3, 3, 2, 1, 5, 1, 1, 1, 0, 0}, {3, 1, 2, 2, 1, 4, 2, 1, 2, 1, 0},
        {2, 2, 6, 6, 6, 5, 3, 1, 1, 1, 1},
    };
    for (int t = 0; t < 7; t++) {
        const int64_t *q = cs[t];
        KConv p = {.nd = (int)q[0], .N = q[1], .C = q[2], .M = q[3], .group = q[4]};
        int64_t pin = 1, pout = 1, kp = 1;
        for (int i = 0; i < p.nd; i++) {
            p.in[i] = q[5] + i, p.k[i] = q[6], p.stride[i] = q[7], p.dilation[i] = q[8], p.pad[i] = q[9];
            p.out[i] = (p.in[i] + q[9] + q[10] - (q[6] - 1) * q[8] - 1) / q[7] + 1;
            pin *= p.in[i], pout *= p.out[i], kp *= p.k[i];
        }
        int64_t nx = p.N * p.C * pin, ny = p.N * p.M * pout, nw = p.M * (p.C / p.group) * kp;
        float *x = frand(nx, -1, 1), *w = frand(nw, -1, 1), *dy = frand(ny, -1, 1), *dw = frand(nw, 0, 0);
        size_t wsz = k_conv_grad_weight_f32_ws(&p), fsz = k_conv_f32_ws(&p);
        void *ws = malloc(wsz > fsz ? wsz : fsz);
        k_conv_grad_weight_f32(dw, dy, x, &p, ws);
        ConvCtx c = {&p, x, ws};
        CHECK_GRAD(conv_fwd, &c, w, nw, ny, dw, dy, 1e-2);
        /* x read as Relu(BatchNormalization(x)) (ir_fold_bn_relu_grad): bit
         * for bit the gradient over the forward's Relu output */
        float *sc = frand(p.C, 0.5, 1.5), *bi = frand(p.C, -1, 1), *mean = frand(p.C, -0.5, 0.5);
        float *var = frand(p.C, 0.5, 2), *y = bn_relu_fwd(x, sc, bi, mean, var, p.N, p.C, pin);
        float *want = frand(nw, 0, 0), *got = frand(nw, 0, 0);
        void *bws = malloc(k_conv_grad_weight_bn_relu_f32_ws(&p));
        k_conv_grad_weight_f32(want, dy, y, &p, ws);
        k_conv_grad_weight_bn_relu_f32(got, dy, x, sc, bi, mean, var, 1e-5f, &p, bws);
        CHECK(!memcmp(got, want, (size_t)nw * sizeof *got));
        free(x), free(w), free(dy), free(dw), free(ws);
        free(sc), free(bi), free(mean), free(var), free(y), free(want), free(got), free(bws);
    }
}

/* The forms that read x as a bfloat16 copy (low-bit storage, widened at
 * use: optimizer.h, opt_reads_bf16): bit for bit the float32 kernels on the
 * copy widened (k_bf16_to_f32), as the program that widens with a Cast
 * before them computes; BatchNormGrad with and without the ReLU, with dx
 * over dy and without dx, and the convolution's weight gradient with its
 * x read as Relu(BatchNormalization(x)) */
static void test_bf16x_reads(void)
{
    static const int64_t shapes[][3] = {{2, 3, 5}, {1, 1, 4}, {3, 4, 7}};
    for (int s = 0; s < 3; s++) {
        int64_t N = shapes[s][0], C = shapes[s][1], S = shapes[s][2], n = N * C * S;
        float *x = frand(n, -2, 3), *sc = frand(C, 0.5, 1.5), *bi = frand(C, -1, 1), *xw = frand(n, 0, 0);
        float *mean = frand(C, -0.5, 0.5), *var = frand(C, 0.5, 2), *dy = frand(n, -1, 1);
        uint16_t *x16 = malloc((size_t)n * sizeof *x16);
        k_f32_to_bf16(x16, x, n);
        k_bf16_to_f32(xw, x16, n);
        for (int relu = 0; relu < 2; relu++) {
            float *want = frand(n, 0, 0), *wds = frand(C, 0, 0), *wdb = frand(C, 0, 0);
            float *got = frand(n, 0, 0), *ds = frand(C, 0, 0), *db = frand(C, 0, 0), *io = frand(n, 0, 0);
            if (relu) k_batchnorm_relu_grad_f32(want, wds, wdb, dy, xw, sc, bi, mean, var, N, C, S, 1e-5f);
            else k_batchnorm_grad_f32(want, wds, wdb, dy, xw, sc, mean, var, N, C, S, 1e-5f, 0);
            if (relu) k_batchnorm_relu_grad_bf16x(got, ds, db, dy, x16, sc, bi, mean, var, N, C, S, 1e-5f);
            else k_batchnorm_grad_bf16x(got, ds, db, dy, x16, sc, mean, var, N, C, S, 1e-5f);
            CHECK(!memcmp(got, want, (size_t)n * sizeof *got) && !memcmp(ds, wds, (size_t)C * sizeof *ds) &&
                  !memcmp(db, wdb, (size_t)C * sizeof *db));
            memcpy(io, dy, (size_t)n * sizeof *io);
            memset(ds, 0, (size_t)C * sizeof *ds), memset(db, 0, (size_t)C * sizeof *db);
            if (relu) k_batchnorm_relu_grad_bf16x(io, ds, db, io, x16, sc, bi, mean, var, N, C, S, 1e-5f);
            else k_batchnorm_grad_bf16x(io, ds, db, io, x16, sc, mean, var, N, C, S, 1e-5f);
            CHECK(!memcmp(io, want, (size_t)n * sizeof *io) && !memcmp(ds, wds, (size_t)C * sizeof *ds));
            memset(ds, 0, (size_t)C * sizeof *ds), memset(db, 0, (size_t)C * sizeof *db);
            if (relu) k_batchnorm_relu_grad_bf16x(NULL, ds, db, dy, x16, sc, bi, mean, var, N, C, S, 1e-5f);
            else k_batchnorm_grad_bf16x(NULL, ds, db, dy, x16, sc, mean, var, N, C, S, 1e-5f);
            CHECK(!memcmp(ds, wds, (size_t)C * sizeof *ds) && !memcmp(db, wdb, (size_t)C * sizeof *db));
            free(want), free(wds), free(wdb), free(got), free(ds), free(db), free(io);
        }
        free(x), free(sc), free(bi), free(xw), free(mean), free(var), free(dy), free(x16);
    }
    // nd, N, C, M, in, k, stride, pad: a 3x3 window with pads, a 1x1 one, a strided one
    static const int64_t cs[][8] = {{2, 2, 3, 4, 5, 3, 1, 1}, {2, 3, 4, 2, 4, 1, 1, 0}, {1, 2, 2, 3, 9, 3, 2, 1}};
    for (int t = 0; t < 3; t++) {
        const int64_t *q = cs[t];
        KConv p = {.nd = (int)q[0], .N = q[1], .C = q[2], .M = q[3], .group = 1};
        int64_t pin = 1, pout = 1, kp = 1;
        for (int i = 0; i < p.nd; i++) {
            p.in[i] = q[4], p.k[i] = q[5], p.stride[i] = q[6], p.dilation[i] = 1, p.pad[i] = q[7];
            p.out[i] = (p.in[i] + 2 * q[7] - q[5]) / q[6] + 1;
            pin *= p.in[i], pout *= p.out[i], kp *= p.k[i];
        }
        int64_t nx = p.N * p.C * pin, ny = p.N * p.M * pout, nw = p.M * p.C * kp;
        float *x = frand(nx, -1, 1), *xw = frand(nx, 0, 0), *dy = frand(ny, -1, 1);
        float *sc = frand(p.C, 0.5, 1.5), *bi = frand(p.C, -1, 1), *mean = frand(p.C, -0.5, 0.5);
        float *var = frand(p.C, 0.5, 2), *want = frand(nw, 0, 0), *got = frand(nw, 0, 0);
        uint16_t *x16 = malloc((size_t)nx * sizeof *x16);
        k_f32_to_bf16(x16, x, nx);
        k_bf16_to_f32(xw, x16, nx);
        void *ws = malloc(k_conv_grad_weight_bn_relu_f32_ws(&p));
        k_conv_grad_weight_bn_relu_f32(want, dy, xw, sc, bi, mean, var, 1e-5f, &p, ws);
        k_conv_grad_weight_bn_relu_bf16x(got, dy, x16, sc, bi, mean, var, 1e-5f, &p, ws);
        CHECK(!memcmp(got, want, (size_t)nw * sizeof *got));
        free(x), free(xw), free(dy), free(sc), free(bi), free(mean), free(var), free(want), free(got), free(x16);
        free(ws);
    }
}

/* dx written over dy or over x (the arena does either when that input dies
 * at the BatchNormGrad): bit for bit dx into its own buffer, for given and
 * batch statistics and the ReLU-folded gradient, with and without dscale,
 * dbias; one and several threads (k_par_for splits the channels). */
static void test_batchnorm_grad_in_place(void)
{
    static const int64_t shapes[][3] = {{2, 3, 5}, {1, 1, 4}, {3, 70, 33}};
    for (int s = 0; s < 3; s++) {
        int64_t N = shapes[s][0], C = shapes[s][1], S = shapes[s][2], n = N * C * S;
        float *x = frand(n, -2, 3), *sc = frand(C, 0.5, 1.5), *bi = frand(C, -1, 1);
        float *mean = frand(C, -0.5, 0.5), *var = frand(C, 0.5, 2), *dy = frand(n, -1, 1);
        for (int kind = 0; kind < 3; kind++) { /* given statistics, batch statistics, relu */
            float *want = frand(n, 0, 0), *wds = frand(C, 0, 0), *wdb = frand(C, 0, 0);
            float *io = frand(n, 0, 0), *ds = frand(C, 0, 0), *db = frand(C, 0, 0);
            if (kind == 2) k_batchnorm_relu_grad_f32(want, wds, wdb, dy, x, sc, bi, mean, var, N, C, S, 1e-5f);
            else k_batchnorm_grad_f32(want, wds, wdb, dy, x, sc, mean, var, N, C, S, 1e-5f, kind);
            for (int over = 0; over < 2; over++) { /* over dy, over x */
                memcpy(io, over ? x : dy, (size_t)n * sizeof *io);
                const float *dyi = over ? dy : io, *xi = over ? io : x;
                memset(ds, 0, (size_t)C * sizeof *ds), memset(db, 0, (size_t)C * sizeof *db);
                if (kind == 2) k_batchnorm_relu_grad_f32(io, ds, db, dyi, xi, sc, bi, mean, var, N, C, S, 1e-5f);
                else k_batchnorm_grad_f32(io, ds, db, dyi, xi, sc, mean, var, N, C, S, 1e-5f, kind);
                CHECK(!memcmp(io, want, (size_t)n * sizeof *io) && !memcmp(ds, wds, (size_t)C * sizeof *ds) &&
                      !memcmp(db, wdb, (size_t)C * sizeof *db));
            }
            free(want), free(wds), free(wdb), free(io), free(ds), free(db);
        }
        free(x), free(sc), free(bi), free(mean), free(var), free(dy);
    }
}

/* loom.ActivationGrad's dx written over dy or over x (the arena does either
 * when that input dies there, or a fused loop's output over a leaf): bit for
 * bit dx into its own buffer, for ReLU, GELU (both forms) and ELU. */
static void test_activation_grad_in_place(void)
{
    static const int acts[] = {K_ACT_RELU, K_ACT_GELU, K_ACT_GELU_TANH, K_ACT_ELU};
    int64_t n = 70001; /* several threads' share */
    float *x = frand(n, -3, 3), *dy = frand(n, -1, 1), *want = frand(n, 0, 0), *io = frand(n, 0, 0);
    for (size_t a = 0; a < sizeof acts / sizeof *acts; a++) {
        k_activation_grad_f32(want, dy, x, n, acts[a], 1.0f, 0, 0);
        for (int over = 0; over < 2; over++) { /* over dy, over x */
            memcpy(io, over ? x : dy, (size_t)n * sizeof *io);
            k_activation_grad_f32(io, over ? dy : io, over ? io : x, n, acts[a], 1.0f, 0, 0);
            CHECK(!memcmp(io, want, (size_t)n * sizeof *io));
        }
    }
    free(x), free(dy), free(want), free(io);
}

/* ---- pooling ---- */

typedef struct { const KPool *p; int max; } PoolCtx;

static void pool_fwd(float *y, const float *x, void *vc)
{
    PoolCtx *c = vc;
    if (c->max) k_maxpool_f32(y, NULL, x, c->p);
    else k_avgpool_f32(y, x, c->p);
}

static void test_pool_grad(void)
{
    // nd, NC, in, k, stride, dilation, pad begin, pad end, count_include_pad
    static const int64_t cs[][9] = {
        {2, 3, 6, 3, 1, 1, 1, 1, 0}, {2, 2, 7, 3, 2, 1, 1, 1, 1}, {1, 4, 9, 2, 2, 2, 0, 1, 0},
        {3, 2, 4, 2, 1, 1, 0, 0, 1}, {2, 1, 1, 1, 1, 1, 0, 0, 0}, {2, 2, 5, 3, 2, 1, 0, 2, 0},
    };
    for (int t = 0; t < 6; t++)
        for (int max = 0; max < 2; max++) {
            const int64_t *q = cs[t];
            KPool p = {.nd = (int)q[0], .NC = q[1], .count_include_pad = (int)q[8]};
            int64_t pin = 1, pout = 1;
            for (int i = 0; i < p.nd; i++) {
                p.in[i] = q[2] - i, p.k[i] = q[3], p.stride[i] = q[4], p.dilation[i] = q[5], p.pad[i] = q[6];
                p.out[i] = (p.in[i] + q[6] + q[7] - (q[3] - 1) * q[5] - 1) / q[4] + 1;
                pin *= p.in[i], pout *= p.out[i];
            }
            int64_t nx = p.NC * pin, ny = p.NC * pout;
            float *x = frand(nx, -1, 1), *dy = frand(ny, -1, 1), *dx = frand(nx, 0, 0);
            void *ws = malloc(k_maxpool_grad_f32_ws(&p));
            if (max) k_maxpool_grad_f32(dx, dy, x, &p, ws);
            else k_avgpool_grad_f32(dx, dy, &p);
            PoolCtx c = {&p, max};
            CHECK_GRAD(pool_fwd, &c, x, nx, ny, dx, dy, max ? 1e-4 : 1e-2);
            free(x), free(dy), free(dx), free(ws);
        }
}

/* MaxPoolGrad with the maxima found in Relu(BatchNormalization(x))
 * (ir_fold_bn_relu_grad): bit for bit k_maxpool_grad_f32 over the forward's
 * Relu output, whose zeros tie; the last case pools 300x300 images, more
 * than one block of rows. */
static void test_maxpool_grad_bn_relu(void)
{
    // nd, N, C, in, k, stride, pad
    static const int64_t cs[][7] = {{2, 1, 3, 6, 3, 1, 1}, {2, 2, 2, 7, 3, 2, 1}, {1, 2, 3, 9, 2, 2, 0},
                                    {3, 1, 2, 4, 2, 1, 0}, {2, 3, 2, 300, 3, 2, 1}};
    for (int t = 0; t < 5; t++) {
        const int64_t *q = cs[t];
        int64_t N = q[1], C = q[2];
        KPool p = {.nd = (int)q[0], .NC = N * C};
        int64_t pin = 1, pout = 1;
        for (int i = 0; i < p.nd; i++) {
            p.in[i] = q[3], p.k[i] = q[4], p.stride[i] = q[5], p.dilation[i] = 1, p.pad[i] = q[6];
            p.out[i] = (p.in[i] + 2 * q[6] - q[4]) / q[5] + 1;
            pin *= p.in[i], pout *= p.out[i];
        }
        int64_t nx = p.NC * pin, ny = p.NC * pout;
        float *x = frand(nx, -2, 3), *dy = frand(ny, -1, 1), *sc = frand(C, 0.5, 1.5), *bi = frand(C, -1, 1);
        float *mean = frand(C, -0.5, 0.5), *var = frand(C, 0.5, 2), *y = bn_relu_fwd(x, sc, bi, mean, var, N, C, pin);
        float *want = frand(nx, 0, 0), *got = frand(nx, 0, 0);
        void *ws = malloc(k_maxpool_grad_f32_ws(&p)), *bws = malloc(k_maxpool_grad_bn_relu_f32_ws(&p));
        if (t == 4) CHECK(k_maxpool_grad_bn_relu_f32_ws(&p) < (size_t)nx * sizeof(float)); /* blocks, not a copy of x */
        k_maxpool_grad_f32(want, dy, y, &p, ws);
        k_maxpool_grad_bn_relu_f32(got, dy, x, sc, bi, mean, var, 1e-5f, C, &p, bws);
        CHECK(!memcmp(got, want, (size_t)nx * sizeof *got));
        free(x), free(dy), free(sc), free(bi), free(mean), free(var), free(y), free(want), free(got), free(ws), free(bws);
    }
}

static void test_maxpool_grad_ties(void)
{
    // all-equal input, overlapping 2x2 windows at stride 1: each window's
    // first position (its top-left) takes the whole dy, as k_maxpool_f32 picks it
    KPool p = {.nd = 2, .NC = 1, .in = {3, 3}, .out = {2, 2}, .k = {2, 2}, .stride = {1, 1},
               .dilation = {1, 1}};
    float x[9], dy[4] = {1, 2, 4, 8}, dx[9];
    for (int i = 0; i < 9; i++) x[i] = 0.5f;
    char ws[64];
    CHECK(k_maxpool_grad_f32_ws(&p) <= sizeof ws);
    k_maxpool_grad_f32(dx, dy, x, &p, ws);
    static const float want[9] = {1, 2, 0, 4, 8, 0, 0, 0, 0};
    for (int i = 0; i < 9; i++) CHECK(dx[i] == want[i]);
}

/* ---- resize ---- */

typedef struct { const int64_t *in, *out; const float *scale; int rank, mode, coord, nearest; } RsCtx;

static void rs_fwd(float *y, const float *x, void *vc)
{
    RsCtx *c = vc;
    k_resize_f32(y, x, c->in, c->out, c->rank, c->scale, NULL, c->mode, c->coord, c->nearest, 0);
}

static void test_resize_grad(void)
{
    static const int64_t ins[][4] = {{1, 2, 3, 4}, {2, 1, 5, 3}, {1, 1, 4, 1}};
    static const int64_t outs[][4] = {{1, 2, 7, 8}, {2, 1, 3, 6}, {1, 1, 9, 2}};
    static const int coords[] = {0, 1, 2, 3, 5, 6};
    for (int s = 0; s < 3; s++)
        for (int mode = 0; mode < 2; mode++)
            for (int ci = 0; ci < 6; ci++) {
                float scale[4];
                int64_t nx = 1, ny = 1;
                for (int k = 0; k < 4; k++) {
                    scale[k] = (float)outs[s][k] / (float)ins[s][k];
                    nx *= ins[s][k], ny *= outs[s][k];
                }
                RsCtx c = {ins[s], outs[s], scale, 4, mode, coords[ci], ci % 4};
                float *x = frand(nx, -1, 1), *dy = frand(ny, -1, 1), *dx = frand(nx, 0, 0);
                k_resize_grad_f32(dx, dy, ins[s], outs[s], 4, scale, mode, coords[ci], ci % 4);
                CHECK_GRAD(rs_fwd, &c, x, nx, ny, dx, dy, 1e-2);
                free(x), free(dy), free(dx);
            }
}

/* ---- indexing ---- */

typedef struct { const void *idx; int64_t outer, len, nidx, inner; const int64_t *xd, *d; int rank, axis; } IxCtx;

static void gather_fwd(float *y, const float *x, void *vc)
{
    IxCtx *c = vc;
    k_gather(y, x, c->idx, 0, c->outer, c->len, c->nidx, c->inner, 4);
}

static void gather_el_fwd(float *y, const float *x, void *vc)
{
    IxCtx *c = vc;
    k_gather_elements(y, x, c->xd, c->idx, 1, c->d, c->rank, c->axis, 4);
}

static void test_gather_grad(void)
{
    // outer, axis_len, nidx, inner: an embedding (outer 1, wide rows), a middle axis, size 1
    static const int64_t cs[][4] = {{1, 10, 12, 300}, {3, 5, 7, 2}, {1, 1, 3, 1}, {2, 4, 0, 3}};
    for (int t = 0; t < 4; t++) {
        IxCtx c = {NULL, cs[t][0], cs[t][1], cs[t][2], cs[t][3], NULL, NULL, 0, 0};
        int64_t idx[16], nx = c.outer * c.len * c.inner, ny = c.outer * c.nidx * c.inner;
        for (int64_t i = 0; i < c.nidx; i++) idx[i] = (int64_t)(urand() * 2 * c.len) - c.len; // negatives wrap
        c.idx = idx;
        float *x = frand(nx, -1, 1), *dy = frand(ny, -1, 1), *dx = frand(nx, 0, 0);
        CHECK(k_gather_grad_f32(dx, dy, idx, 0, c.outer, c.len, c.nidx, c.inner) == 0);
        if (ny) CHECK_GRAD(gather_fwd, &c, x, nx, ny, dx, dy, 1e-2);
        free(x), free(dy), free(dx);
    }
    int64_t bad = 5;
    float d1[2], x1[4];
    CHECK(k_gather_grad_f32(x1, d1, &bad, 0, 1, 4, 1, 1) == -1);
    CHECK_STR_CONTAINS(k_error(), "index 5");
}

static void test_gather_elements_grad(void)
{
    static const int64_t xd[][3] = {{3, 4, 2}, {2, 3, 5}, {1, 1, 1}};
    static const int64_t dd[][3] = {{5, 4, 2}, {2, 3, 6}, {1, 1, 3}};
    for (int t = 0; t < 3; t++)
        for (int axis = 0; axis < 3; axis++) {
            int64_t d[3], nx = xd[t][0] * xd[t][1] * xd[t][2], ny = 1;
            for (int k = 0; k < 3; k++) d[k] = k == axis ? dd[t][k] : (dd[t][k] < xd[t][k] ? dd[t][k] : xd[t][k]), ny *= d[k];
            int32_t *idx = malloc((size_t)ny * sizeof *idx);
            for (int64_t i = 0; i < ny; i++) idx[i] = (int32_t)(urand() * xd[t][axis]) - (i % 2 ? (int32_t)xd[t][axis] : 0);
            IxCtx c = {idx, 0, 0, 0, 0, xd[t], d, 3, axis};
            float *x = frand(nx, -1, 1), *dy = frand(ny, -1, 1), *dx = frand(nx, 0, 0);
            CHECK(k_gather_elements_grad_f32(dx, xd[t], dy, idx, 1, d, 3, axis) == 0);
            CHECK_GRAD(gather_el_fwd, &c, x, nx, ny, dx, dy, 1e-2);
            free(idx), free(x), free(dy), free(dx);
        }
}

typedef struct { const int64_t *xd, *d, *st, *sp; } SlCtx;

static void slice_fwd(float *y, const float *x, void *vc)
{
    SlCtx *c = vc;
    int64_t xs[3], ss[3], ys[3], off = 0;
    for (int k = 2; k >= 0; k--) {
        xs[k] = k == 2 ? 1 : xs[k + 1] * c->xd[k + 1];
        ys[k] = k == 2 ? 1 : ys[k + 1] * c->d[k + 1];
        ss[k] = xs[k] * c->sp[k], off += c->st[k] * xs[k];
    }
    k_copy_nd(y, ys, x + off, ss, c->d, 3, 4);
}

static void test_slice_grad(void)
{
    static const int64_t xd[3] = {4, 5, 6}, d[3] = {2, 3, 2}, st[3] = {1, 4, 0}, sp[3] = {2, -1, 3};
    SlCtx c = {xd, d, st, sp};
    float *x = frand(120, -1, 1), *dy = frand(12, -1, 1), *dx = frand(120, 7, 7);
    k_slice_grad_f32(dx, xd, dy, d, 3, st, sp);
    CHECK_GRAD(slice_fwd, &c, x, 120, 12, dx, dy, 1e-2);
    int nz = 0;
    for (int i = 0; i < 120; i++) nz += dx[i] != 0;
    CHECK_EQ_INT(nz, 12);
    free(x), free(dy), free(dx);
}

/* ---- losses ---- */

typedef struct { const int64_t *t; const float *w; int64_t N, C, d; int red, has_ig, sce; } LossCtx;

static void loss_fwd(float *y, const float *x, void *vc)
{
    LossCtx *c = vc;
    if (c->sce) k_sce_loss_f32(y, NULL, x, c->t, c->w, c->N, c->C, c->d, c->red, -1, c->has_ig);
    else k_nll_loss_f32(y, x, c->t, c->w, c->N, c->C, c->d, c->red, -1, c->has_ig);
}

static void test_loss_grad(void)
{
    static const int64_t shapes[][3] = {{4, 5, 1}, {2, 3, 4}, {1, 1, 1}, {3, 6, 2}};
    for (int s = 0; s < 4; s++)
        for (int sce = 0; sce < 2; sce++)
            for (int red = 0; red < 3; red++)
                for (int var = 0; var < 4; var++) { // bit 0: weights, bit 1: ignore_index
                    int64_t N = shapes[s][0], C = shapes[s][1], d = shapes[s][2], n = N * C * d, nt = N * d;
                    int64_t t[64];
                    for (int64_t i = 0; i < nt; i++) t[i] = (var & 2) && i % 3 == 1 ? -1 : (int64_t)(urand() * C);
                    float *w = var & 1 ? frand(C, 0.2, 2) : NULL;
                    float *x = frand(n, -3, 0), *dx = frand(n, 0, 0), *lp = frand(n, 0, 0);
                    float *dl = frand(red ? 1 : nt, -1, 1), y[64];
                    LossCtx c = {t, w, N, C, d, red, (var & 2) != 0, sce};
                    int rc = sce ? k_sce_loss_grad_f32(dx, dl, x, NULL, t, w, N, C, d, red, -1, c.has_ig)
                                 : k_nll_loss_grad_f32(dx, dl, t, w, N, C, d, red, -1, c.has_ig);
                    CHECK(rc == 0);
                    CHECK_GRAD(loss_fwd, &c, x, n, red ? 1 : nt, dx, dl, 1e-2);
                    if (sce) { // with the forward's log_prob: the same gradient
                        float *dx2 = frand(n, 0, 0);
                        k_sce_loss_f32(y, lp, x, t, w, N, C, d, red, -1, c.has_ig);
                        k_sce_loss_grad_f32(dx2, dl, x, lp, t, w, N, C, d, red, -1, c.has_ig);
                        for (int64_t i = 0; i < n; i++) CHECK(fabsf(dx2[i] - dx[i]) < 1e-5f);
                        free(dx2);
                    }
                    free(w), free(x), free(dx), free(lp), free(dl);
                }
    // every target ignored: mean's 0 / 0 loss, and a zero gradient (PyTorch's)
    int64_t t[3] = {-1, -1, -1};
    float x[6] = {1, 2, 3, 4, 5, 6}, dx[6], dl = 1;
    CHECK(k_sce_loss_grad_f32(dx, &dl, x, NULL, t, NULL, 3, 2, 1, 2, -1, 1) == 0);
    for (int i = 0; i < 6; i++) CHECK(dx[i] == 0);
    t[1] = 2;
    CHECK(k_nll_loss_grad_f32(dx, &dl, t, NULL, 3, 2, 1, 2, -1, 1) == -1);
    CHECK_STR_CONTAINS(k_error(), "target 2");
}

/* ---- direct comparison with double-precision references of the derivative ---- */

/* Normalized error max |a - b| / max |b|, recorded in `worst_ref`. */
static double norm_err(const float *a, const double *b, int64_t n)
{
    double e = 0, s = 1e-30;
    for (int64_t i = 0; i < n; i++) s = fmax(s, fabs(b[i]));
    for (int64_t i = 0; i < n; i++) e = fmax(e, fabs(a[i] - b[i]));
    if (e / s > worst_ref) worst_ref = e / s;
    return e / s;
}

/* dx over one normalized set of n elements at offsets off[], from the full
 * Jacobian of y_i = sc_i (x_i - m) / sqrt(v + eps):
 * dy_i/dx_j = sc_i s (delta_ij - 1/n - xhat_i xhat_j / n). O(n^2), independent
 * of the kernels' folded formula. */
static void ref_norm_set(double *dx, const float *dy, const float *x, const int64_t *off,
                         const double *sc, int64_t n, double eps)
{
    double m = 0, v = 0;
    for (int64_t i = 0; i < n; i++) m += x[off[i]];
    m /= (double)n;
    for (int64_t i = 0; i < n; i++) v += (x[off[i]] - m) * (x[off[i]] - m);
    v /= (double)n;
    double s = 1 / sqrt(v + eps);
    for (int64_t j = 0; j < n; j++) {
        double acc = 0, xj = (x[off[j]] - m) * s;
        for (int64_t i = 0; i < n; i++) {
            double xi = (x[off[i]] - m) * s;
            acc += dy[off[i]] * sc[i] * s * ((i == j) - 1.0 / (double)n - xi * xj / (double)n);
        }
        dx[off[j]] = acc;
    }
}

static void test_norm_grad_reference(void)
{
    // LayerNorm rows, GroupNorm groups (groups 2 and C), training BatchNorm channels
    int64_t N = 3, C = 4, S = 5, n = N * C * S, off[64];
    double sc[64], rdx[64], rds[4], rdb[4];
    float *x = frand(n, -2, 3), *scale = frand(C * S, 0.5, 1.5), *dy = frand(n, -1, 1);
    float *dx = frand(n, 0, 0), *ds = frand(C * S, 0, 0), *db = frand(C * S, 0, 0);
    void *ws = malloc(k_layernorm_grad_f32_ws(N * C) + k_groupnorm_grad_f32_ws(N, C));
    // LayerNorm over (C, S) per sample
    for (int64_t r = 0; r < N; r++) {
        for (int64_t i = 0; i < C * S; i++) off[i] = r * C * S + i, sc[i] = scale[i];
        ref_norm_set(rdx, dy, x, off, sc, C * S, 1e-5);
    }
    k_layernorm_grad_f32(dx, ds, db, dy, x, scale, NULL, NULL, N, C * S, 1e-5f, ws);
    CHECK(norm_err(dx, rdx, n) < 1e-5);
    for (int groups = 2; groups <= C; groups += C - 2) {
        int64_t cpg = C / groups;
        for (int64_t r = 0; r < N * groups; r++) {
            for (int64_t i = 0; i < cpg * S; i++) off[i] = r * cpg * S + i, sc[i] = scale[(r % groups) * cpg + i / S];
            ref_norm_set(rdx, dy, x, off, sc, cpg * S, 1e-5);
        }
        for (int64_t c = 0; c < C; c++) { // dscale = sum dy * xhat, dbias = sum dy
            rds[c] = rdb[c] = 0;
            for (int64_t b = 0; b < N; b++) {
                const float *xg = x + (b * groups + c / cpg) * cpg * S;
                double m = 0, v = 0;
                for (int64_t i = 0; i < cpg * S; i++) m += xg[i];
                m /= (double)(cpg * S);
                for (int64_t i = 0; i < cpg * S; i++) v += (xg[i] - m) * (xg[i] - m);
                v /= (double)(cpg * S);
                for (int64_t i = 0; i < S; i++) {
                    int64_t k = (b * C + c) * S + i;
                    rds[c] += dy[k] * (x[k] - m) / sqrt(v + 1e-5), rdb[c] += dy[k];
                }
            }
        }
        k_groupnorm_grad_f32(dx, ds, db, dy, x, scale, N, C, groups, S, 1e-5f, ws);
        CHECK(norm_err(dx, rdx, n) < 1e-5);
        CHECK(norm_err(ds, rds, C) < 1e-5);
        CHECK(norm_err(db, rdb, C) < 1e-5);
    }
    for (int64_t c = 0; c < C; c++) {
        for (int64_t i = 0; i < N * S; i++) off[i] = (i / S * C + c) * S + i % S, sc[i] = scale[c];
        ref_norm_set(rdx, dy, x, off, sc, N * S, 1e-5);
    }
    k_batchnorm_grad_f32(dx, ds, db, dy, x, scale, NULL, NULL, N, C, S, 1e-5f, 1);
    CHECK(norm_err(dx, rdx, n) < 1e-5);
    free(x), free(scale), free(dy), free(dx), free(ds), free(db), free(ws);
}

static void test_softmax_loss_grad_reference(void)
{
    // softmax: dx_j = sum_i dy_i y_i (delta_ij - y_j); log-softmax: dx_j = sum_i dy_i (delta_ij - p_j)
    int64_t L = 9, n = 2 * L;
    float *x = frand(n, -3, 3), *y = frand(n, 0, 0), *dy = frand(n, -1, 1), *dx = frand(n, 0, 0);
    double r[18];
    for (int log = 0; log < 2; log++) {
        k_softmax_f32(y, x, 2, L, 1, 0);
        for (int64_t b = 0; b < 2; b++)
            for (int64_t j = 0; j < L; j++) {
                double acc = 0, pj = y[b * L + j];
                for (int64_t i = 0; i < L; i++) {
                    double pi = y[b * L + i];
                    acc += dy[b * L + i] * (log ? (i == j) - pj : pi * ((i == j) - pj));
                }
                r[b * L + j] = acc;
            }
        if (log) k_softmax_f32(y, x, 2, L, 1, 1);
        k_softmax_grad_f32(dx, dy, y, 2, L, 1, log);
        CHECK(norm_err(dx, r, n) < 1e-5);
    }
    // weighted mean cross-entropy with one ignored target: dx = w_t (p - onehot) / sum w
    int64_t t[2] = {3, -1};
    float w[9], dl = 1.5f;
    for (int i = 0; i < 9; i++) w[i] = 0.5f + 0.1f * (float)i;
    k_softmax_f32(y, x, 2, L, 1, 0);
    for (int64_t j = 0; j < n; j++) r[j] = j < L ? dl * w[3] * (y[j] - (j == 3)) / w[3] : 0;
    CHECK(k_sce_loss_grad_f32(dx, &dl, x, NULL, t, w, 2, L, 1, 2, -1, 1) == 0);
    CHECK(norm_err(dx, r, n) < 1e-5);
    free(x), free(y), free(dy), free(dx);
}

/* ---- global norm and optimizers ---- */

static void test_global_norm(void)
{
    int64_t n[3] = {1, 100000, 37};
    float *g[3];
    double ref = 0;
    for (int t = 0; t < 3; t++) {
        g[t] = frand(n[t], -1, 1);
        for (int64_t i = 0; i < n[t]; i++) ref += (double)g[t][i] * g[t][i];
    }
    float y, y1;
    k_global_norm_f32(&y, (const float *const *)g, n, 3);
    CHECK(fabs(y - sqrt(ref)) <= 1e-6 * sqrt(ref));
    k_set_threads(1);
    k_global_norm_f32(&y1, (const float *const *)g, n, 3);
    k_set_threads(4);
    CHECK(y1 == y);
    for (int t = 0; t < 3; t++) free(g[t]);
}

static double max_rel(const float *a, const double *b, int64_t n)
{
    double e = 0, s = 1e-12;
    for (int64_t i = 0; i < n; i++) s = fmax(s, fabs(b[i]));
    for (int64_t i = 0; i < n; i++) e = fmax(e, fabs(a[i] - b[i]) / s);
    return e;
}

static void test_sgd(void)
{
    enum { n = 257 };
    for (int cfg = 0; cfg < 4; cfg++) {
        float mom = cfg ? 0.9f : 0, wd = cfg >= 2 ? 0.01f : 0, lr = 0.1f, scale = 0.25f;
        int nest = cfg == 3;
        float *p = frand(n, -1, 1), *buf = frand(n, 0, 0);
        double rp[n], rb[n] = {0};
        for (int i = 0; i < n; i++) rp[i] = p[i];
        for (int step = 1; step <= 5; step++) {
            float *g = frand(n, -1, 1);
            const float *gs = cfg & 1 ? &scale : NULL;
            k_sgd_f32(p, mom != 0 ? buf : NULL, g, lr, gs, n, mom, wd, nest);
            for (int i = 0; i < n; i++) { // torch.optim.SGD, dampening 0
                double d = g[i] * (gs ? (double)scale : 1.0);
                if (wd != 0) d += (double)wd * rp[i];
                if (mom != 0) {
                    rb[i] = step == 1 ? d : (double)mom * rb[i] + d;
                    d = nest ? d + (double)mom * rb[i] : rb[i];
                }
                rp[i] -= (double)lr * d;
            }
            free(g);
        }
        double e = max_rel(p, rp, n);
        worst_ref = fmax(worst_ref, e);
        CHECK(e < 1e-5);
        free(p), free(buf);
    }
}

static void test_adamw(void)
{
    enum { n = 300 };
    for (int cfg = 0; cfg < 2; cfg++) {
        float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = cfg ? 0.1f : 0, scale = 0.5f;
        float *p = frand(n, -1, 1), *m = frand(n, 0, 0), *v = frand(n, 0, 0);
        double rp[n], rm[n] = {0}, rv[n] = {0};
        for (int i = 0; i < n; i++) rp[i] = p[i];
        for (int step = 1; step <= 10; step++) {
            float *g = frand(n, -1, 1);
            const float *gs = cfg ? &scale : NULL;
            k_adamw_f32(p, m, v, g, lr, step, gs, n, b1, b2, eps, wd);
            for (int i = 0; i < n; i++) { // torch.optim.AdamW
                double gi = g[i] * (gs ? (double)scale : 1.0);
                rp[i] *= 1 - (double)lr * wd;
                rm[i] = b1 * rm[i] + (1 - (double)b1) * gi;
                rv[i] = b2 * rv[i] + (1 - (double)b2) * gi * gi;
                double mh = rm[i] / (1 - pow(b1, step)), vh = rv[i] / (1 - pow(b2, step));
                rp[i] -= lr * mh / (sqrt(vh) + eps);
            }
            free(g);
        }
        double e = fmax(max_rel(p, rp, n), fmax(max_rel(m, rm, n), max_rel(v, rv, n)));
        worst_ref = fmax(worst_ref, e);
        CHECK(e < 1e-5);
        free(p), free(m), free(v);
    }
}

/* ---- thread-count independence ---- */

static int same_bits(const float *a, const float *b, int64_t n) { return !memcmp(a, b, (size_t)n * sizeof *a); }

static void test_threads_bitwise(void)
{
    int64_t R = 64, L = 1024, n = R * L;
    float *x = frand(n, -1, 2), *sc = frand(L, 0.5, 1.5), *dy = frand(n, -1, 1);
    float *a = frand(n + 2 * L, 0, 0), *b = frand(n + 2 * L, 0, 0);
    void *ws = malloc(k_layernorm_grad_f32_ws(R) + k_groupnorm_grad_f32_ws(R, 8));
    int64_t idx[64];
    for (int i = 0; i < 64; i++) idx[i] = i % 7;
    // each kernel once on 1 thread into a, once on 4 into b
    for (int k = 0; k < 4; k++) {
        int64_t len = k == 0 ? n + 2 * L : k == 1 ? n + 128 : k == 2 ? 7 * 1024 : n + 32;
        for (int th = 0; th < 2; th++) {
            float *o = th ? b : a;
            k_set_threads(th ? 4 : 1);
            if (k == 0) k_layernorm_grad_f32(o, o + n, o + n + L, dy, x, sc, NULL, NULL, R, L, 1e-5f, ws);
            if (k == 1) k_groupnorm_grad_f32(o, o + n, o + n + 64, dy, x, sc, 4, 64, 8, 256, 1e-5f, ws);
            if (k == 2) k_gather_grad_f32(o, dy, idx, 0, 1, 7, 64, 1024);
            if (k == 3) k_batchnorm_grad_f32(o, o + n, o + n + 16, dy, x, sc, NULL, NULL, 16, 16, 256, 1e-5f, 1);
        }
        CHECK(same_bits(a, b, len));
    }
    k_set_threads(4);
    free(x), free(sc), free(dy), free(a), free(b), free(ws);
}

int main(void)
{
    RUN(test_activation_grad);
    RUN(test_softmax_grad);
    RUN(test_layernorm_grad);
    RUN(test_rmsnorm_grad);
    RUN(test_batchnorm_grad);
    RUN(test_batchnorm_relu_grad);
    RUN(test_maxpool_grad_bn_relu);
    RUN(test_groupnorm_grad);
    RUN(test_conv_grad_weight);
    RUN(test_bf16x_reads);
    RUN(test_batchnorm_grad_in_place);
    RUN(test_activation_grad_in_place);
    RUN(test_pool_grad);
    RUN(test_maxpool_grad_ties);
    RUN(test_resize_grad);
    RUN(test_gather_grad);
    RUN(test_gather_elements_grad);
    RUN(test_slice_grad);
    RUN(test_loss_grad);
    RUN(test_norm_grad_reference);
    RUN(test_softmax_loss_grad_reference);
    RUN(test_global_norm);
    RUN(test_sgd);
    RUN(test_adamw);
    RUN(test_threads_bitwise);
    printf("worst normalized error: finite differences %.3g, double references %.3g\n", worst, worst_ref);
    return CHECK_DONE();
}
