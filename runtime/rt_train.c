/* The `train` command of generated programs (rt_train.h): command line, data,
 * schedule, checkpoints, logging and the diagnosis of a non-finite loss,
 * around the model's forward+backward and update (model.c). */
#include "rt_train.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The arena and the weights blob are the device's memory (rt.h): every read
 * and write of them here goes through its hooks. */
#define DEV(m) ((m)->device ? (m)->device : &rt_device_host)

/* ---- schedule and data order ---- */

double rt_train_lr(double base, int schedule, int64_t warmup, int64_t total, int64_t step)
{
    if (warmup > 0 && step <= warmup) return base * (double)step / (double)warmup;
    if (schedule != RT_SCHEDULE_COSINE) return base;
    if (total <= warmup) return base;
    double t = (double)(step - warmup) / (double)(total - warmup);
    if (t > 1) t = 1;
    return base * 0.5 * (1 + cos(3.14159265358979323846 * t));
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void rt_train_permutation(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch)
{
    uint64_t s = seed ^ ((uint64_t)epoch * 0xd1b54a32d192ed03ull);
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(splitmix64(&s) % (uint64_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* ---- messages ---- */

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "train: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "; see 'train --help'\n");
    va_end(ap);
    return 2;
}

static int error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "train: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 1;
}

/* "float32[784]": a tensor's per-sample type (dims after the first). */
static const char *sample_str(char *buf, size_t n, rt_dtype dt, int rank, const int64_t *dims)
{
    char shape[200];
    snprintf(buf, n, "%s%s", rt_dtype_name(dt), rt_shape_str(shape, sizeof shape, rank > 0 ? rank - 1 : 0, dims + 1));
    return buf;
}

/* ---- the command line ---- */

typedef struct {
    const char **data;     /* per input: its file */
    int64_t steps, warmup, total_steps, save_every, print_every;
    double lr;
    int schedule, shuffle, have_seed;
    uint64_t seed;
    const char *save, *resume, *log, *dump_grads, *profile;
} Args;

static void help(const rt_train_model *m)
{
    char s[256];
    printf("usage: train --data NAME=FILE.npy... [--steps N] [--lr X] [--schedule constant|cosine]\n"
           "             [--warmup N] [--total-steps N] [--shuffle] [--seed N] [--save FILE.safetensors]\n"
           "             [--save-every N] [--resume FILE.safetensors] [--log FILE.jsonl]\n"
           "             [--print-every N] [--dump-grads FILE.safetensors] [--profile FILE.json]\n\n"
           "Trains %s. Each --data file holds one input's samples along its first axis;\n"
           "a step takes the next %lld of them (in order, wrapping around; --shuffle draws them\n"
           "in a new permutation each epoch, from --seed). A progress line on stdout per\n"
           "step (--print-every N: every N-th step and the last).\n\n",
           m->model, (long long)m->batch);
    printf("data inputs (per sample):\n");
    for (int i = 0; i < m->ninputs; i++)
        printf("  %-24s %s\n", m->inputs[i].name,
               sample_str(s, sizeof s, m->inputs[i].dtype, m->inputs[i].rank, m->inputs[i].dims));
    printf("\nloss       %s\noptimizer  %s\n", m->loss, m->optimizer);
    printf("lr         %g, schedule %s, warm-up %lld steps (compiled; --lr, --schedule and\n"
           "           --warmup override; cosine decays to 0 at --total-steps, by default the\n"
           "           last step of this run)\n",
           (double)m->lr, m->schedule == RT_SCHEDULE_COSINE ? "cosine" : "constant", (long long)m->warmup);
    printf("parameters %d trained; memory %lld bytes (arena %lld, weights and optimizer state %lld)\n",
           m->nparams, (long long)(m->arena_bytes + m->weights_bytes), (long long)m->arena_bytes,
           (long long)m->weights_bytes);
    if (m->host_bytes > 0)
        printf("host pool  %lld bytes of host memory for the values the schedule offloads\n", (long long)m->host_bytes);
    printf("\n");
    printf("  --steps N          steps to run (default 10)\n"
           "  --lr X             base learning rate (0 allowed)\n"
           "  --seed N           the seed of the shuffle and of Dropout masks (default 0; a\n"
           "                     checkpoint's seed on --resume)\n"
           "  --save FILE        checkpoint (parameters by ONNX name, optimizer state, step,\n"
           "                     seed) every --save-every N steps and at the end; atomic\n"
           "  --resume FILE      start from a checkpoint this program wrote\n"
           "  --log FILE         one JSON object per step: step, loss, lr, step_ms,\n"
           "                     samples_per_s, peak_device_bytes\n"
           "  --print-every N    print the progress line of every N-th step and of the last\n"
           "                     (default 1: every step; --log still records every step)\n"
           "  --dump-grads FILE  after the first forward and backward: the loss and the\n"
           "                     gradient of every trained parameter (safetensors)\n"
           "  --profile FILE     a program built with `make PROFILE=1`: every step's time of\n"
           "                     each kernel call and fused loop, the first step left out as a\n"
           "                     warm-up (JSON, what `loom profile` reads)\n");
}

/* "--flag VALUE" or "--flag=VALUE": 1 with *val, -1 when the value is missing, 0 not this flag. */
static int flag_value(int argc, char **argv, int *i, const char *flag, const char **val)
{
    size_t n = strlen(flag);
    if (strncmp(argv[*i], flag, n)) return 0;
    if (argv[*i][n] == '=') {
        *val = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n]) return 0;
    if (*i + 1 >= argc) return -1;
    *val = argv[++*i];
    return 1;
}

static int parse_count(const char *flag, const char *v, int64_t lo, int64_t *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo) return usage("%s needs a whole number from %lld, not '%s'", flag, (long long)lo, v);
    *out = x;
    return 0;
}

static int parse_args(const rt_train_model *m, int argc, char **argv, Args *a)
{
    a->steps = 10;
    a->print_every = 1;
    a->lr = m->lr;
    a->schedule = m->schedule;
    a->warmup = m->warmup;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        int64_t n;
        if (!strcmp(argv[i], "--shuffle")) {
            a->shuffle = 1;
        } else if ((r = flag_value(argc, argv, &i, "--data", &v)) != 0) {
            if (r < 0) return usage("--data needs NAME=FILE.npy");
            const char *eq = strchr(v, '=');
            int k = -1;
            for (int j = 0; j < m->ninputs && eq; j++)
                if (strlen(m->inputs[j].name) == (size_t)(eq - v) && !strncmp(m->inputs[j].name, v, (size_t)(eq - v)))
                    k = j;
            if (k < 0 && !eq && m->ninputs == 1) k = 0, eq = v - 1;
            if (k < 0) return usage("--data '%s' names no data input of this model", v);
            a->data[k] = eq + 1;
        } else if ((r = flag_value(argc, argv, &i, "--steps", &v)) != 0) {
            if (r < 0 || parse_count("--steps", v, 0, &a->steps)) return r < 0 ? usage("--steps needs a count") : 2;
        } else if ((r = flag_value(argc, argv, &i, "--warmup", &v)) != 0) {
            if (r < 0 || parse_count("--warmup", v, 0, &a->warmup)) return r < 0 ? usage("--warmup needs a count") : 2;
        } else if ((r = flag_value(argc, argv, &i, "--total-steps", &v)) != 0) {
            if (r < 0 || parse_count("--total-steps", v, 1, &a->total_steps))
                return r < 0 ? usage("--total-steps needs a count") : 2;
        } else if ((r = flag_value(argc, argv, &i, "--save-every", &v)) != 0) {
            if (r < 0 || parse_count("--save-every", v, 1, &a->save_every))
                return r < 0 ? usage("--save-every needs a count") : 2;
        } else if ((r = flag_value(argc, argv, &i, "--print-every", &v)) != 0) {
            if (r < 0 || parse_count("--print-every", v, 1, &a->print_every))
                return r < 0 ? usage("--print-every needs a count") : 2;
        } else if ((r = flag_value(argc, argv, &i, "--seed", &v)) != 0) {
            if (r < 0 || parse_count("--seed", v, 0, &n)) return r < 0 ? usage("--seed needs a number") : 2;
            a->seed = (uint64_t)n;
            a->have_seed = 1;
        } else if ((r = flag_value(argc, argv, &i, "--lr", &v)) != 0) {
            char *end;
            if (r < 0) return usage("--lr needs a value");
            a->lr = strtod(v, &end);
            if (end == v || *end || !isfinite(a->lr) || a->lr < 0)
                return usage("--lr needs a finite number >= 0, not '%s'", v);
        } else if ((r = flag_value(argc, argv, &i, "--schedule", &v)) != 0) {
            if (r < 0) return usage("--schedule needs constant or cosine");
            if (!strcmp(v, "constant")) a->schedule = RT_SCHEDULE_CONSTANT;
            else if (!strcmp(v, "cosine")) a->schedule = RT_SCHEDULE_COSINE;
            else return usage("unknown schedule '%s' (constant, cosine)", v);
        } else if ((r = flag_value(argc, argv, &i, "--save", &v)) != 0) {
            if (r < 0) return usage("--save needs a file");
            a->save = v;
        } else if ((r = flag_value(argc, argv, &i, "--resume", &v)) != 0) {
            if (r < 0) return usage("--resume needs a file");
            a->resume = v;
        } else if ((r = flag_value(argc, argv, &i, "--log", &v)) != 0) {
            if (r < 0) return usage("--log needs a file");
            a->log = v;
        } else if ((r = flag_value(argc, argv, &i, "--dump-grads", &v)) != 0) {
            if (r < 0) return usage("--dump-grads needs a file");
            a->dump_grads = v;
        } else if ((r = flag_value(argc, argv, &i, "--profile", &v)) != 0) {
            if (r < 0) return usage("--profile needs a file");
            a->profile = v;
        } else {
            return usage("unknown argument '%s'", argv[i]);
        }
    }
    if (a->save_every && !a->save) return usage("--save-every needs --save FILE");
    if (a->profile && a->steps < 2) return usage("--profile needs --steps 2 or more (the first is a warm-up)");
    return 0;
}

/* ---- data ---- */

typedef struct {
    rt_tensor t;
    size_t sample_bytes;
} Data;

/* Loads every input's file and checks it against the compiled input. */
static int load_data(const rt_train_model *m, const Args *a, Data *d, int64_t *nsamples)
{
    char want[256], got[256];
    for (int i = 0; i < m->ninputs; i++) {
        const rt_train_tensor *in = &m->inputs[i];
        if (!a->data[i])
            return error("no --data for input '%s' (%s per sample): add --data %s=FILE.npy", in->name,
                         sample_str(want, sizeof want, in->dtype, in->rank, in->dims), in->name);
        if (rt_npy_read(a->data[i], &d[i].t)) return error("%s", rt_error());
        const rt_tensor *t = &d[i].t;
        int same = (t->dtype == in->dtype || (in->dtype == RT_BF16 && t->dtype == RT_U16)) &&
                   t->rank == in->rank && t->rank >= 1;
        for (int k = 1; same && k < in->rank; k++) same = t->dims[k] == in->dims[k];
        if (!same) {
            char shape[200], all[220];
            snprintf(got, sizeof got, "%s%s", rt_dtype_name(t->dtype), rt_shape_str(shape, sizeof shape, t->rank, t->dims));
            rt_shape_str(shape, sizeof shape, in->rank - 1, in->dims + 1);
            snprintf(all, sizeof all, "[N%s%s", in->rank > 1 ? "," : "]", in->rank > 1 ? shape + 1 : "");
            return error("--data %s: expected %s per sample (a %s array %s, N samples), got %s from %s", in->name,
                         sample_str(want, sizeof want, in->dtype, in->rank, in->dims), rt_dtype_name(in->dtype),
                         all, got, a->data[i]);
        }
        if (t->dims[0] < 1) return error("--data %s: %s holds no samples", in->name, a->data[i]);
        if (i > 0 && t->dims[0] != *nsamples)
            return error("--data %s: %s holds %lld samples, but --data %s holds %lld; every input needs "
                         "one entry per sample", in->name, a->data[i], (long long)t->dims[0], m->inputs[0].name,
                         (long long)*nsamples);
        *nsamples = t->dims[0];
        d[i].sample_bytes = t->nbytes / (size_t)t->dims[0];
    }
    return 0;
}

/* Copies the batch of step index s (from 0) into the arena. */
typedef struct {
    int64_t *perm, epoch; /* the permutation of `epoch`, with --shuffle */
} Order;

static int fill_batch(const rt_train_model *m, const Data *d, int64_t n, const Args *a, uint64_t seed,
                      Order *o, int64_t s, char *arena)
{
    for (int64_t b = 0; b < m->batch; b++) {
        int64_t k = s * m->batch + b, epoch = k / n, pos = k % n;
        if (a->shuffle && o->epoch != epoch) {
            rt_train_permutation(o->perm, n, seed, epoch);
            o->epoch = epoch;
        }
        int64_t idx = a->shuffle ? o->perm[pos] : pos;
        for (int i = 0; i < m->ninputs; i++)
            if (DEV(m)->upload(arena + m->inputs[i].offset + (size_t)b * d[i].sample_bytes,
                               (const char *)d[i].t.data + (size_t)idx * d[i].sample_bytes, d[i].sample_bytes))
                return -1;
    }
    return 0;
}

/* ---- files ---- */

/* weights.safetensors in the folder of this program. */
static char *default_weights(const char *argv0)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) exe[n] = 0;
    else snprintf(exe, sizeof exe, "%s", argv0);
    char *slash = strrchr(exe, '/');
    const char *dir = slash ? (*slash = 0, exe) : ".";
    size_t len = strlen(dir) + 32;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s/weights.safetensors", slash && !*dir ? "" : dir);
    return p;
}

/* Tensor t of st into the device's blob, through a host buffer. */
static int load_one(const rt_train_model *m, const rt_st_file *st, const rt_train_tensor *t, char *blob)
{
    size_t n = (size_t)rt_nbytes(t->dtype, t->rank, t->dims);
    void *h = malloc(n ? n : 1);
    if (!h) return rt_fail("out of memory (%zu bytes for tensor '%s')", n, t->name);
    int rc = rt_st_load(st, t->name, t->dtype, t->rank, t->dims, h) || DEV(m)->upload(blob + t->offset, h, n);
    free(h);
    return rc ? -1 : 0;
}

static int load_tensors(const rt_train_model *m, const char *path, const rt_train_tensor *t, int n, char *blob)
{
    rt_st_file *st;
    if (rt_st_open(path, &st)) return -1;
    for (int i = 0; i < n; i++)
        if (load_one(m, st, &t[i], blob)) {
            rt_st_close(st);
            return -1;
        }
    rt_st_close(st);
    return 0;
}

/* A host copy of the n tensors t (their bytes at pool + offset) in one
 * buffer, which the caller frees; ptr[i] points at tensor i's. */
static char *download_all(const rt_train_model *m, const rt_train_tensor *t, int n, const char *pool,
                          const void **ptr)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (size_t)rt_nbytes(t[i].dtype, t[i].rank, t[i].dims);
    char *h = malloc(total ? total : 1);
    if (!h) {
        rt_fail("out of memory (%zu bytes)", total);
        return NULL;
    }
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t k = (size_t)rt_nbytes(t[i].dtype, t[i].rank, t[i].dims);
        if (DEV(m)->download(h + at, pool + t[i].offset, k)) {
            free(h);
            return NULL;
        }
        ptr[i] = h + at;
        at += k;
    }
    return h;
}

static rt_st_tensor st_of(const char *name, rt_dtype dt, int rank, const int64_t *dims, const void *data)
{
    rt_st_tensor t = {.name = name, .dtype = dt, .rank = rank, .data = data};
    if (rank) memcpy(t.dims, dims, (size_t)rank * sizeof *dims);
    t.nbytes = (size_t)rt_nbytes(dt, rank, dims);
    return t;
}

/* A checkpoint: the state tensors, then train/step and train/seed. */
static int save(const rt_train_model *m, const char *path, const char *weights, int64_t step, uint64_t seed)
{
    rt_st_tensor *t = calloc((size_t)m->nstate + 2, sizeof *t);
    const void **ptr = calloc((size_t)m->nstate + 1, sizeof *ptr);
    char *host = t && ptr ? download_all(m, m->state, m->nstate, weights, ptr) : NULL;
    if (!host) {
        free(t);
        free(ptr);
        return t && ptr ? -1 : rt_fail("out of memory");
    }
    for (int i = 0; i < m->nstate; i++)
        t[i] = st_of(m->state[i].name, m->state[i].dtype, m->state[i].rank, m->state[i].dims, ptr[i]);
    int64_t s = step, sd = (int64_t)seed;
    t[m->nstate] = st_of("train/step", RT_I64, 0, NULL, &s);
    t[m->nstate + 1] = st_of("train/seed", RT_I64, 0, NULL, &sd);
    rt_st_meta meta[] = {{"producer", "loom train"}, {"loom_model", m->fingerprint}};
    int rc = rt_st_write(path, t, m->nstate + 2, meta, 2);
    free(t);
    free(ptr);
    free(host);
    return rc;
}

static int resume(const rt_train_model *m, const char *path, char *weights, int64_t *step, uint64_t *seed)
{
    rt_st_file *st;
    if (rt_st_open(path, &st)) return -1;
    const char *fp = rt_st_meta_find(st, "loom_model");
    int64_t s, sd;
    int rc = 0;
    if (!fp)
        rc = rt_fail("%s is not a checkpoint of a loom training program (no loom_model metadata)", path);
    else if (strcmp(fp, m->fingerprint))
        rc = rt_fail("%s is a checkpoint of another model or shape (model fingerprint %s; this program's is %s): "
                     "resume from a checkpoint this program wrote", path, fp, m->fingerprint);
    for (int i = 0; i < m->nstate && !rc; i++) rc = load_one(m, st, &m->state[i], weights);
    if (!rc) rc = rt_st_load(st, "train/step", RT_I64, 0, NULL, &s);
    if (!rc) rc = rt_st_load(st, "train/seed", RT_I64, 0, NULL, &sd);
    rt_st_close(st);
    if (!rc) *step = s, *seed = (uint64_t)sd;
    return rc;
}

/* --dump-grads: each gradient is read by the step's grad hook just before
 * its parameter's update (its bytes are reused after that), into one host
 * buffer; the file is written once the step's loss is known to be finite. */
static struct {
    const rt_train_model *m;
    const char *arena;
    char *host;
    size_t *at;   /* per parameter: its gradient's place in host */
    int missing;  /* gradients not read yet */
} grads_at;

static int grads_begin(const rt_train_model *m, const char *arena)
{
    size_t total = 0;
    grads_at.at = malloc(((size_t)m->nparams + 1) * sizeof *grads_at.at);
    for (int i = 0; grads_at.at && i < m->nparams; i++) {
        grads_at.at[i] = total;
        total += (size_t)rt_nbytes(m->params[i].dtype, m->params[i].rank, m->params[i].dims);
    }
    grads_at.host = grads_at.at ? malloc(total ? total : 1) : NULL;
    if (!grads_at.host) {
        free(grads_at.at);
        return rt_fail("out of memory (%zu bytes of gradients)", total);
    }
    grads_at.m = m;
    grads_at.arena = arena;
    grads_at.missing = m->nparams;
    return 0;
}

static int grad_hook(int i)
{
    const rt_train_model *m = grads_at.m;
    if (i < 0 || i >= m->nparams) return rt_fail("the step read the gradient of parameter %d of %d", i, m->nparams);
    grads_at.missing--;
    return DEV(m)->download(grads_at.host + grads_at.at[i], grads_at.arena + m->grad_offset[i],
                            (size_t)rt_nbytes(m->params[i].dtype, m->params[i].rank, m->params[i].dims));
}

static int grads_write(const char *path, float loss)
{
    const rt_train_model *m = grads_at.m;
    rt_st_tensor *t = calloc((size_t)m->nparams + 1, sizeof *t);
    if (!t) return rt_fail("out of memory");
    if (grads_at.missing) {
        free(t);
        return rt_fail("the step updated %d of %d parameters without reading their gradients",
                       grads_at.missing, m->nparams);
    }
    t[0] = st_of("loss", RT_F32, 0, NULL, &loss);
    for (int i = 0; i < m->nparams; i++)
        t[i + 1] = st_of(m->params[i].name, m->params[i].dtype, m->params[i].rank, m->params[i].dims,
                         grads_at.host + grads_at.at[i]);
    rt_st_meta meta = {"producer", "loom train"};
    int rc = rt_st_write(path, t, m->nparams + 1, &meta, 1);
    free(t);
    return rc;
}

static void grads_end(void)
{
    free(grads_at.host);
    free(grads_at.at);
    memset(&grads_at, 0, sizeof grads_at);
}

/* ---- a non-finite loss ---- */

/* The index of the first non-finite float32 of n at p, or -1. */
static int64_t first_nonfinite(const float *p, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return i;
    return -1;
}

static int64_t numel(int rank, const int64_t *dims)
{
    int64_t n = 1;
    for (int k = 0; k < rank; k++) n *= dims[k];
    return n;
}

/* The first non-finite float32 of a tensor of n at pool + offset (a host
 * copy), or -1; its value in *val. -2 when it cannot be read. */
static int64_t device_nonfinite(const rt_train_model *m, const char *pool, int64_t offset, int64_t n, float *val)
{
    float *h = malloc((size_t)(n ? n : 1) * sizeof *h);
    if (!h || DEV(m)->download(h, pool + offset, (size_t)n * sizeof *h)) {
        free(h);
        return -2;
    }
    int64_t at = first_nonfinite(h, n);
    if (at >= 0) *val = h[at];
    free(h);
    return at;
}

/* The probe of the re-run: the arena and the next check, for probe(). */
static struct {
    const rt_train_model *m;
    const char *arena;
    int next;
    int found; /* the check that holds a non-finite value, or -1 */
} probe_at;

static int probe(int step)
{
    const rt_train_model *m = probe_at.m;
    for (; probe_at.next < m->nchecks && m->checks[probe_at.next].step <= step; probe_at.next++) {
        const rt_train_check *c = &m->checks[probe_at.next];
        float val;
        int64_t at = device_nonfinite(m, probe_at.arena, c->offset, numel(c->rank, c->dims), &val);
        if (at != -1) {
            probe_at.found = at == -2 ? -2 : probe_at.next; /* -2: unreadable */
            return 1;
        }
    }
    return 0;
}

/* Names the first non-finite tensor of step `step` (the batch is in the arena). */
static int diagnose(const rt_train_model *m, char *arena, char *weights, int64_t step, float loss)
{
    char shape[200];
    for (int i = 0; i < m->nstate; i++) {
        const rt_train_tensor *t = &m->state[i];
        if (t->dtype != RT_F32) continue;
        float val;
        int64_t at = device_nonfinite(m, weights, t->offset, numel(t->rank, t->dims), &val);
        if (at == -2) return error("step %lld: %s", (long long)step, rt_error());
        if (at >= 0)
            return error("step %lld: the loss is %g; the first non-finite tensor is '%s' %s%s (element %lld is "
                         "%g), from the updates before this step: lower --lr, or compile with --clip-norm",
                         (long long)step, (double)loss, t->name, rt_dtype_name(t->dtype),
                         rt_shape_str(shape, sizeof shape, t->rank, t->dims), (long long)at,
                         (double)val);
    }
    for (int i = 0; i < m->ninputs; i++) {
        const rt_train_tensor *t = &m->inputs[i];
        if (t->dtype != RT_F32) continue;
        float val;
        int64_t at = device_nonfinite(m, arena, t->offset, numel(t->rank, t->dims), &val);
        if (at == -2) return error("step %lld: %s", (long long)step, rt_error());
        if (at >= 0)
            return error("step %lld: the loss is %g; the first non-finite tensor is the batch of data input "
                         "'%s' (element %lld is %g): check the --data file", (long long)step, (double)loss,
                         t->name, (long long)at, (double)val);
    }
    probe_at.m = m;
    probe_at.arena = arena;
    probe_at.next = 0;
    probe_at.found = -1;
    int rc = m->step(arena, weights, probe, NULL); /* the loss is not finite: no update runs */
    if (rc < 0) return error("step %lld: %s", (long long)step, rt_error());
    if (probe_at.found == -2) return error("step %lld: %s", (long long)step, rt_error());
    if (probe_at.found < 0)
        return error("step %lld: the loss is %g, but no value of the step is non-finite when it is run again",
                     (long long)step, (double)loss);
    const rt_train_check *c = &m->checks[probe_at.found];
    return error("step %lld: the loss is %g; the first non-finite tensor is '%s' float32%s, computed by node "
                 "'%s' (%s)", (long long)step, (double)loss, c->name,
                 rt_shape_str(shape, sizeof shape, c->rank, c->dims), c->node, c->op);
}

uint64_t rt_train_rng_key;

/* ---- the run ---- */

int rt_train_main(const rt_train_model *m, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            help(m);
            return 0;
        }
    const rt_device *dev = DEV(m);
    if (rt_threads_check() || dev->init() || dev->memory_check(m->arena_bytes, m->weights_bytes)) {
        fprintf(stderr, "train: %s\n", rt_error());
        return 1;
    }
    Args a;
    memset(&a, 0, sizeof a);
    const char *paths[64] = {0};
    a.data = m->ninputs <= 64 ? paths : calloc((size_t)m->ninputs, sizeof *a.data);
    Data *d = calloc((size_t)m->ninputs + 1, sizeof *d);
    char *arena = dev->alloc(m->arena_bytes), *weights = arena ? dev->alloc(m->weights_bytes) : NULL;
    char *host = weights && m->host_bytes > 0 ? dev->alloc_host(m->host_bytes) : NULL;
    if (m->host) *m->host = host;
    char *wpath = default_weights(argv[0]);
    Order order = {NULL, -1};
    FILE *log = NULL;
    int64_t n = 0, start = 0;
    uint64_t seed = 0;
    int rc = parse_args(m, argc, argv, &a);
    if (rc) goto out;
    rc = 1;
    if (!arena || !weights) {
        error("%s", rt_error());
        goto out;
    }
    if (m->host_bytes > 0 && !host) {
        error("the host pool for offloaded values (%lld bytes): %s", (long long)m->host_bytes, rt_error());
        goto out;
    }
    if (!a.data || !d || !wpath) {
        error("out of memory");
        goto out;
    }
    if (load_data(m, &a, d, &n)) goto out;
    if (load_tensors(m, wpath, m->weights, m->nweights, weights)) {
        error("%s", rt_error());
        goto out;
    }
    seed = a.seed;
    if (a.resume && resume(m, a.resume, weights, &start, &seed)) {
        error("--resume: %s", rt_error());
        goto out;
    }
    if (a.have_seed) seed = a.seed;
    if (a.shuffle && !(order.perm = malloc((size_t)n * sizeof *order.perm))) {
        error("out of memory (a permutation of %lld samples)", (long long)n);
        goto out;
    }
    if (a.log && !(log = fopen(a.log, "w"))) {
        error("cannot write the log %s: %s", a.log, strerror(errno));
        goto out;
    }
    int64_t total = a.total_steps ? a.total_steps : start + a.steps;
    int64_t peak = m->arena_bytes + m->weights_bytes;
    for (int64_t k = 0; k < a.steps; k++) {
        int64_t step = start + k + 1;
        double lr = rt_train_lr(a.lr, a.schedule, a.warmup, total, step);
        double t0 = rt_now();
        float lr32 = (float)lr;
        if (fill_batch(m, d, n, &a, seed, &order, step - 1, arena) ||
            dev->upload(weights + m->lr_offset, &lr32, sizeof lr32) ||
            (m->step_offset >= 0 && dev->upload(weights + m->step_offset, &step, sizeof step))) {
            error("step %lld: %s", (long long)step, rt_error());
            goto out;
        }
        rt_train_rng_key = seed * 0x9e3779b97f4a7c15ull ^ (uint64_t)step * 0xd1b54a32d192ed03ull;
        int dump = k == 0 && a.dump_grads;
        if (dump && grads_begin(m, arena)) {
            error("--dump-grads: %s", rt_error());
            goto out;
        }
        if (m->step(arena, weights, NULL, dump ? grad_hook : NULL)) {
            error("step %lld: %s", (long long)step, rt_error());
            goto out;
        }
        float loss;
        if (dev->download(&loss, arena + m->loss_offset, sizeof loss)) {
            error("step %lld: %s", (long long)step, rt_error());
            goto out;
        }
        if (!isfinite(loss)) { /* the step updated nothing: run it again to find the first bad value */
            if (fill_batch(m, d, n, &a, seed, &order, step - 1, arena)) error("step %lld: %s", (long long)step, rt_error());
            else diagnose(m, arena, weights, step, loss);
            goto out;
        }
        if (dump && grads_write(a.dump_grads, loss)) {
            error("--dump-grads: %s", rt_error());
            goto out;
        }
        double ms = (rt_now() - t0) * 1e3, sps = ms > 0 ? (double)m->batch * 1e3 / ms : 0;
        if (a.profile && k == 0) rt_prof_reset(); /* the warm-up step is not counted */
        else if (a.profile) rt_prof_run_end(ms * 1e-3);
        if (step % a.print_every == 0 || k + 1 == a.steps) {
            printf("step %lld/%lld  loss %.6f  lr %.3e  %.2f ms  %.1f samples/s\n", (long long)step,
                   (long long)(start + a.steps), (double)loss, lr, ms, sps);
            fflush(stdout);
        }
        if (log) {
            fprintf(log, "{\"step\": %lld, \"loss\": %.9g, \"lr\": %.9g, \"step_ms\": %.4f, \"samples_per_s\": %.2f, "
                         "\"peak_device_bytes\": %lld}\n", (long long)step, (double)loss, (double)(float)lr, ms, sps,
                    (long long)peak);
            if (fflush(log)) {
                error("cannot write the log %s: %s", a.log, strerror(errno));
                goto out;
            }
        }
        if (a.save_every && step % a.save_every == 0 && k + 1 < a.steps && save(m, a.save, weights, step, seed)) {
            error("--save: %s", rt_error());
            goto out;
        }
    }
    if (a.save && save(m, a.save, weights, start + a.steps, seed)) {
        error("--save: %s", rt_error());
        goto out;
    }
    if (a.profile && rt_prof_write(a.profile)) {
        error("--profile: %s", rt_error());
        goto out;
    }
    rc = 0;
out:
    grads_end();
    if (log && fclose(log) && rc == 0) rc = error("cannot write the log %s: %s", a.log, strerror(errno));
    for (int i = 0; d && i < m->ninputs; i++) rt_tensor_free(&d[i].t);
    if (a.data != paths) free(a.data);
    free(d);
    free(order.perm);
    if (arena) dev->release(arena);
    if (weights) dev->release(weights);
    if (host) dev->release_host(host);
    free(wpath);
    return rc;
}
