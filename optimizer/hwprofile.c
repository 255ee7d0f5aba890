/* Hardware profiles: the built-in table and the JSON files that override it.
 *
 * "cpu" is the machine loom was developed on (an AMD EPYC, Zen 3, two cores
 * under KVM, 23.5 GiB), measured with
 *     cc -O3 -march=native -fopenmp bench/cpu_device.c -lopenblas -o build/cpu_device
 *     GOMP_SPINCOUNT=100000 build/cpu_device
 * which prints a device file with these figures (bench/cpu_device.c says how
 * each is taken); run it on another machine and pass its output with
 * --device FILE. The half-precision and int8 rates are the float32 one: loom's
 * cpu kernels widen those types to float32.
 *
 * The GPUs are NVIDIA's datasheet figures, dense (the datasheets print twice
 * these with structured sparsity, which loom does not use): "NVIDIA A100
 * Tensor Core GPU" datasheet (SXM4 parts), "NVIDIA H100 Tensor Core GPU"
 * datasheet (SXM5 and PCIe), "NVIDIA H200 Tensor Core GPU" datasheet (SXM).
 * FP32 matrix rate: the plain FP32 figure (not TF32), FP64: the FP64 tensor
 * core figure. Host link: PCIe Gen4 x16 (A100) or Gen5 x16, half the
 * bidirectional figure the datasheets print. Memory: the nominal size.
 * launch_s is not a datasheet figure: 5 us is a usual launch-to-launch gap of
 * small kernels issued from the host, an estimate. */
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "optimizer.h"

#define T 1e12
#define G 1e9
#define GIB ((int64_t)1 << 30)

static const OptDevice devices[] = {
    {"cpu", "this machine: AMD EPYC (Zen 3), 2 threads, measured by bench/cpu_device.c",
     75.2 * G, 75.2 * G, 75.2 * G, 47.5 * G, 75.2 * G, 24.3 * G, 12.7 * G, 9.94 * G, 0.67e-6, 25276063744, 0},
    {"a100-40gb", "NVIDIA A100 SXM4 40GB, datasheet (dense), HBM2, PCIe Gen4",
     19.5 * T, 312 * T, 312 * T, 19.5 * T, 624 * T, 19.5 * T, 1555 * G, 32 * G, 5e-6, 40 * GIB, 1},
    {"a100-80gb", "NVIDIA A100 SXM4 80GB, datasheet (dense), HBM2e, PCIe Gen4",
     19.5 * T, 312 * T, 312 * T, 19.5 * T, 624 * T, 19.5 * T, 2039 * G, 32 * G, 5e-6, 80 * GIB, 1},
    {"h100-sxm", "NVIDIA H100 SXM5 80GB, datasheet (dense), HBM3, PCIe Gen5",
     67 * T, 989.5 * T, 989.5 * T, 67 * T, 1979 * T, 67 * T, 3350 * G, 64 * G, 5e-6, 80 * GIB, 1},
    {"h100-pcie", "NVIDIA H100 PCIe 80GB, datasheet (dense), HBM2e, PCIe Gen5",
     51 * T, 756 * T, 756 * T, 51 * T, 1513 * T, 51 * T, 2000 * G, 64 * G, 5e-6, 80 * GIB, 1},
    {"h200", "NVIDIA H200 SXM 141GB, datasheet (dense), HBM3e, PCIe Gen5",
     67 * T, 989.5 * T, 989.5 * T, 67 * T, 1979 * T, 67 * T, 4800 * G, 64 * G, 5e-6, 141 * GIB, 1},
};
enum { NDEVICES = sizeof devices / sizeof *devices };

int opt_device_count(void) { return NDEVICES; }

const OptDevice *opt_device_at(int i) { return i >= 0 && i < NDEVICES ? &devices[i] : NULL; }

static const OptDevice *builtin(const char *name)
{
    for (int i = 0; i < NDEVICES; i++)
        if (!strcmp(devices[i].name, name)) return &devices[i];
    return NULL;
}

static void names(char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < NDEVICES && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? ", " : "", devices[i].name);
}

/* The numeric fields a file may set. */
static const struct {
    const char *key;
    size_t off;
} fields[] = {
    {"flops_f32", offsetof(OptDevice, flops_f32)},   {"flops_bf16", offsetof(OptDevice, flops_bf16)},
    {"flops_f16", offsetof(OptDevice, flops_f16)},   {"flops_f64", offsetof(OptDevice, flops_f64)},
    {"flops_i8", offsetof(OptDevice, flops_i8)},     {"vec_flops_f32", offsetof(OptDevice, vec_flops_f32)},
    {"mem_bw", offsetof(OptDevice, mem_bw)},         {"link_bw", offsetof(OptDevice, link_bw)},
    {"launch_s", offsetof(OptDevice, launch_s)},     {"copy_overlap", offsetof(OptDevice, copy_overlap)},
};

/* One member of an override file into d; -1 with the message in err. */
static int set_field(const char *path, const OptJson *m, OptDevice *d, char *err, size_t nerr)
{
    if (!strcmp(m->key, "base")) return 0;
    if (!strcmp(m->key, "name") || !strcmp(m->key, "what")) {
        char *dst = !strcmp(m->key, "name") ? d->name : d->what;
        size_t cap = !strcmp(m->key, "name") ? sizeof d->name : sizeof d->what;
        if (m->kind != OPT_JSON_STR || !m->str[0] || strlen(m->str) >= cap) {
            snprintf(err, nerr, "%s: line %d: \"%s\" must be a non-empty string of fewer than %zu bytes", path,
                     m->line, m->key, cap);
            return -1;
        }
        strcpy(dst, m->str);
        return 0;
    }
    int mem = !strcmp(m->key, "mem_bytes");
    double *slot = NULL;
    for (size_t k = 0; k < sizeof fields / sizeof *fields; k++)
        if (!strcmp(m->key, fields[k].key)) slot = (double *)((char *)d + fields[k].off);
    if (!slot && !mem) {
        char list[512] = "base, name, what, mem_bytes";
        for (size_t k = 0, n = strlen(list); k < sizeof fields / sizeof *fields; k++)
            n += (size_t)snprintf(list + n, sizeof list - n, ", %s", fields[k].key);
        snprintf(err, nerr, "%s: line %d: unknown field \"%s\" (known: %s)", path, m->line, m->key, list);
        return -1;
    }
    /* launch_s may be 0; every rate and the memory size must be positive */
    int zero_ok = !strcmp(m->key, "launch_s") || !strcmp(m->key, "copy_overlap");
    if (m->kind != OPT_JSON_NUM || m->num < 0 || (!zero_ok && m->num == 0) || (mem && m->num >= 9.2e18) ||
        (mem && m->num != (double)(int64_t)m->num)) {
        char got[64];
        if (m->kind == OPT_JSON_NUM) snprintf(got, sizeof got, "%g", m->num);
        else snprintf(got, sizeof got, "a%s %s", m->kind == OPT_JSON_ARR || m->kind == OPT_JSON_OBJ ? "n" : "",
                      opt_json_kind_name(m->kind));
        snprintf(err, nerr, "%s: line %d: \"%s\" must be a %s, not %s", path, m->line, m->key,
                 mem ? "positive whole number of bytes" : zero_ok ? "number >= 0" : "positive number", got);
        return -1;
    }
    if (mem) d->mem_bytes = (int64_t)m->num;
    else *slot = m->num;
    return 0;
}

static int load_file(const char *path, OptDevice *out, char *err, size_t nerr)
{
    char list[256];
    names(list, sizeof list);
    OptJson *j = opt_json_read_file(path, err, nerr);
    if (!j) return -1;
    int rc = -1;
    const OptJson *base = opt_json_get(j, "base");
    const OptDevice *b = base && base->kind == OPT_JSON_STR ? builtin(base->str) : NULL;
    if (j->kind != OPT_JSON_OBJ) {
        snprintf(err, nerr, "%s: a device file is a JSON object, not a%s %s", path, j->kind == OPT_JSON_ARR ? "n" : "",
                 opt_json_kind_name(j->kind));
    } else if (!base) {
        snprintf(err, nerr, "%s: no \"base\": name the built-in profile the file overrides (%s)", path, list);
    } else if (!b) {
        snprintf(err, nerr, "%s: line %d: unknown base %s%s%s (%s)", path, base->line,
                 base->kind == OPT_JSON_STR ? "'" : "", base->kind == OPT_JSON_STR ? base->str : "of another type",
                 base->kind == OPT_JSON_STR ? "'" : "", list);
    } else {
        OptDevice d = *b;
        snprintf(d.what, sizeof d.what, "%s, overridden by %s", b->name, path);
        rc = 0;
        for (const OptJson *m = j->child; m && rc == 0; m = m->next) rc = set_field(path, m, &d, err, nerr);
        if (rc == 0) *out = d;
    }
    opt_json_free(j);
    return rc;
}

int opt_device_lookup(const char *name_or_json_path, OptDevice *out, char *err, size_t nerr)
{
    const char *s = name_or_json_path;
    size_t n = strlen(s);
    if (strchr(s, '/') || (n >= 5 && !strcmp(s + n - 5, ".json"))) return load_file(s, out, err, nerr);
    const OptDevice *b = builtin(s);
    if (!b) {
        char list[256];
        names(list, sizeof list);
        snprintf(err, nerr, "unknown device '%s' (%s, or a JSON file based on one)", s, list);
        return -1;
    }
    *out = *b;
    return 0;
}
