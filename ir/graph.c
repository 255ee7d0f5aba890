/* Graph construction and the small services every pass uses: the bump arena,
 * the name map, value and node creation, attributes, topological order, use
 * lists, compaction and error formatting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* ---- allocation ---- */

void ir_assert_fail(const char *file, int line, const char *cond)
{
    fprintf(stderr, "%s:%d: internal error: assertion '%s' failed (a loom bug; please report it)\n",
            file, line, cond);
    abort();
}

void *ir_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "loom: out of memory allocating %zu bytes\n", n);
        exit(2);
    }
    return p;
}

void *ir_xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p) {
        fprintf(stderr, "loom: out of memory allocating %zu x %zu bytes\n", n, m);
        exit(2);
    }
    return p;
}

void *ir_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fprintf(stderr, "loom: out of memory allocating %zu bytes\n", n);
        exit(2);
    }
    return p;
}

struct IrArenaBlock {
    IrArenaBlock *next;
    size_t used, cap;
    max_align_t data[];
};

void *ir_alloc(IrGraph *g, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    IrArenaBlock *b = g->arena;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 60000 ? n : 60000;
        b = ir_xmalloc(sizeof *b + cap);
        b->next = g->arena;
        b->used = 0;
        b->cap = cap;
        g->arena = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

const char *ir_strndup(IrGraph *g, const char *s, size_t n)
{
    char *p = ir_alloc(g, n + 1);
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

const char *ir_strdup(IrGraph *g, const char *s) { return ir_strndup(g, s, strlen(s)); }

/* ---- name map: open addressing, value ids keyed by name ---- */

struct IrNameMap {
    int *slot; /* value id or -1 */
    size_t cap;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void names_insert(IrGraph *g, int vid);

static void names_grow(IrGraph *g)
{
    struct IrNameMap *m = g->names;
    free(m->slot);
    m->cap = m->cap ? m->cap * 2 : 256;
    m->slot = ir_xmalloc(m->cap * sizeof *m->slot);
    memset(m->slot, -1, m->cap * sizeof *m->slot);
    for (int i = 0; i < g->nvalues; i++) names_insert(g, i);
}

static void names_insert(IrGraph *g, int vid)
{
    struct IrNameMap *m = g->names;
    size_t i = hash_str(g->values[vid].name) & (m->cap - 1);
    while (m->slot[i] >= 0) i = (i + 1) & (m->cap - 1);
    m->slot[i] = vid;
}

int ir_value_find(const IrGraph *g, const char *name)
{
    const struct IrNameMap *m = g->names;
    if (!m->cap) return -1;
    size_t i = hash_str(name) & (m->cap - 1);
    for (; m->slot[i] >= 0; i = (i + 1) & (m->cap - 1))
        if (strcmp(g->values[m->slot[i]].name, name) == 0) return m->slot[i];
    return -1;
}

/* ---- graph ---- */

IrGraph *ir_graph_new(const char *path)
{
    IrGraph *g = ir_xcalloc(1, sizeof *g);
    g->names = ir_xcalloc(1, sizeof *g->names);
    g->path = ir_strdup(g, path ? path : "<memory>");
    g->graph_name = "";
    g->producer = "";
    return g;
}

void ir_graph_free(IrGraph *g)
{
    if (!g) return;
    for (int i = 0; i < g->nvalues; i++) free(g->values[i].data);
    free(g->values);
    free(g->nodes);
    free(g->inputs);
    free(g->outputs);
    free(g->names->slot);
    free(g->names);
    for (IrArenaBlock *b = g->arena, *nb; b; b = nb) {
        nb = b->next;
        free(b);
    }
    free(g);
}

int ir_value_new(IrGraph *g, const char *name, IrRole role)
{
    IR_ASSERT(ir_value_find(g, name) < 0);
    if (g->nvalues == g->cap_values) {
        g->cap_values = g->cap_values ? g->cap_values * 2 : 64;
        g->values = ir_xrealloc(g->values, g->cap_values * sizeof *g->values);
    }
    int id = g->nvalues++;
    IrValue *v = &g->values[id];
    memset(v, 0, sizeof *v);
    v->name = ir_strdup(g, name);
    v->role = role;
    v->rank = -1;
    v->producer = -1;
    v->decl_rank = -1;
    v->alias = -1;
    if ((size_t)g->nvalues * 2 > g->names->cap)
        names_grow(g); /* reinserts every value, this one included */
    else
        names_insert(g, id);
    return id;
}

void ir_value_swap_names(IrGraph *g, int a, int b)
{
    const char *t = g->values[a].name;
    g->values[a].name = g->values[b].name;
    g->values[b].name = t;
    struct IrNameMap *m = g->names;
    memset(m->slot, -1, m->cap * sizeof *m->slot);
    for (int i = 0; i < g->nvalues; i++) names_insert(g, i);
}

const char *ir_unique_name(IrGraph *g, const char *base)
{
    size_t n = strlen(base) + 24;
    char *buf = ir_alloc(g, n);
    for (int k = g->nvalues;; k++) {
        snprintf(buf, n, "%s__%d", base, k);
        if (ir_value_find(g, buf) < 0) return buf;
    }
}

void ir_value_set_shape(IrValue *v, IrDType dt, int rank, const int64_t *dims)
{
    IR_ASSERT(rank >= 0 && rank <= IR_MAX_RANK);
    v->dtype = dt;
    v->rank = rank;
    for (int i = 0; i < rank; i++) v->dims[i] = dims[i];
}

int64_t ir_value_numel(const IrValue *v)
{
    int64_t n = 1;
    for (int i = 0; i < v->rank; i++) n *= v->dims[i];
    return n;
}

int64_t ir_value_bytes(const IrValue *v) { return ir_value_numel(v) * ir_dtype_size(v->dtype); }

void ir_value_set_data(IrGraph *g, int vid, void *data)
{
    IrValue *v = &g->values[vid];
    if (v->data != data) free(v->data);
    v->data = data;
}

int ir_node_new(IrGraph *g, IrOp op, const char *name, int nin, const int *in, int nout,
                const int *out)
{
    if (g->nnodes == g->cap_nodes) {
        g->cap_nodes = g->cap_nodes ? g->cap_nodes * 2 : 64;
        g->nodes = ir_xrealloc(g->nodes, g->cap_nodes * sizeof *g->nodes);
    }
    int id = g->nnodes++;
    IrNode *n = &g->nodes[id];
    memset(n, 0, sizeof *n);
    n->op = op;
    if (name && *name) {
        n->name = ir_strdup(g, name);
    } else {
        char buf[64];
        snprintf(buf, sizeof buf, "%s_%d", ir_ops[op].name, id);
        n->name = ir_strdup(g, buf);
    }
    n->nin = nin;
    n->nout = nout;
    n->in = ir_alloc(g, (nin ? nin : 1) * sizeof(int));
    n->out = ir_alloc(g, (nout ? nout : 1) * sizeof(int));
    if (nin) memcpy(n->in, in, nin * sizeof(int));
    if (nout) memcpy(n->out, out, nout * sizeof(int));
    n->onnx_index = -1;
    n->fwd = -1;
    for (int i = 0; i < nout; i++) g->values[out[i]].producer = id;
    return id;
}

/* ---- attributes ---- */

static IrAttr *attr_add(IrGraph *g, int node, const char *name, IrAttrKind kind)
{
    IrNode *n = &g->nodes[node];
    for (int i = 0; i < n->nattr; i++)
        if (strcmp(n->attr[i].name, name) == 0) {
            n->attr[i].kind = kind;
            return &n->attr[i];
        }
    IrAttr *a = ir_alloc(g, (n->nattr + 1) * sizeof *a);
    if (n->nattr) memcpy(a, n->attr, n->nattr * sizeof *a);
    n->attr = a;
    a = &n->attr[n->nattr++];
    a->name = ir_strdup(g, name);
    a->kind = kind;
    return a;
}

void ir_attr_set_int(IrGraph *g, int node, const char *name, int64_t v)
{
    attr_add(g, node, name, IR_ATTR_INT)->u.i = v;
}

void ir_attr_set_float(IrGraph *g, int node, const char *name, float v)
{
    attr_add(g, node, name, IR_ATTR_FLOAT)->u.f = v;
}

void ir_attr_set_string(IrGraph *g, int node, const char *name, const char *v)
{
    const char *s = ir_strdup(g, v);
    attr_add(g, node, name, IR_ATTR_STRING)->u.s = s;
}

void ir_attr_set_ints(IrGraph *g, int node, const char *name, int64_t n, const int64_t *v)
{
    int64_t *p = ir_alloc(g, (n ? n : 1) * sizeof *p);
    if (n) memcpy(p, v, n * sizeof *p);
    IrAttr *a = attr_add(g, node, name, IR_ATTR_INTS);
    a->n = n;
    a->u.is = p;
}

void ir_attr_set_floats(IrGraph *g, int node, const char *name, int64_t n, const float *v)
{
    float *p = ir_alloc(g, (n ? n : 1) * sizeof *p);
    if (n) memcpy(p, v, n * sizeof *p);
    IrAttr *a = attr_add(g, node, name, IR_ATTR_FLOATS);
    a->n = n;
    a->u.fs = p;
}

void ir_attr_set_strings(IrGraph *g, int node, const char *name, int64_t n, const char **v)
{
    const char **p = ir_alloc(g, (n ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = ir_strdup(g, v[i]);
    IrAttr *a = attr_add(g, node, name, IR_ATTR_STRINGS);
    a->n = n;
    a->u.ss = p;
}

void ir_attr_set_tensor(IrGraph *g, int node, const char *name, int value)
{
    attr_add(g, node, name, IR_ATTR_TENSOR)->u.tensor = value;
}

const IrAttr *ir_attr_find(const IrNode *n, const char *name)
{
    for (int i = 0; i < n->nattr; i++)
        if (strcmp(n->attr[i].name, name) == 0) return &n->attr[i];
    return NULL;
}

int64_t ir_attr_int(const IrNode *n, const char *name, int64_t dflt)
{
    const IrAttr *a = ir_attr_find(n, name);
    return a && a->kind == IR_ATTR_INT ? a->u.i : dflt;
}

float ir_attr_float(const IrNode *n, const char *name, float dflt)
{
    const IrAttr *a = ir_attr_find(n, name);
    return a && a->kind == IR_ATTR_FLOAT ? a->u.f : dflt;
}

const char *ir_attr_string(const IrNode *n, const char *name, const char *dflt)
{
    const IrAttr *a = ir_attr_find(n, name);
    return a && a->kind == IR_ATTR_STRING ? a->u.s : dflt;
}

const int64_t *ir_attr_ints(const IrNode *n, const char *name, int64_t *count)
{
    const IrAttr *a = ir_attr_find(n, name);
    if (!a || a->kind != IR_ATTR_INTS) {
        *count = 0;
        return NULL;
    }
    *count = a->n;
    return a->u.is;
}

const float *ir_attr_floats(const IrNode *n, const char *name, int64_t *count)
{
    const IrAttr *a = ir_attr_find(n, name);
    if (!a || a->kind != IR_ATTR_FLOATS) {
        *count = 0;
        return NULL;
    }
    *count = a->n;
    return a->u.fs;
}

/* ---- structure ---- */

IrUses ir_uses_build(const IrGraph *g)
{
    IrUses u;
    u.start = ir_xcalloc(g->nvalues + 1, sizeof(int));
    int total = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead) continue;
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] >= 0) u.start[n->in[j] + 1]++, total++;
    }
    for (int v = 0; v < g->nvalues; v++) u.start[v + 1] += u.start[v];
    u.node = ir_xmalloc((total ? total : 1) * sizeof(int));
    int *fill = ir_xmalloc((g->nvalues + 1) * sizeof(int));
    memcpy(fill, u.start, (g->nvalues + 1) * sizeof(int));
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead) continue;
        for (int j = 0; j < n->nin; j++) {
            int v = n->in[j];
            /* a node reading one value twice is listed once */
            if (v >= 0 && (fill[v] == u.start[v] || u.node[fill[v] - 1] != i)) u.node[fill[v]++] = i;
        }
    }
    /* close the gaps left by de-duplication */
    int w = 0;
    for (int v = 0; v < g->nvalues; v++) {
        int s = u.start[v], e = fill[v];
        u.start[v] = w;
        for (int k = s; k < e; k++) u.node[w++] = u.node[k];
    }
    u.start[g->nvalues] = w;
    free(fill);
    return u;
}

void ir_uses_free(IrUses *u)
{
    free(u->start);
    free(u->node);
    u->start = u->node = NULL;
}

int ir_topo_order(IrGraph *g, int *order)
{
    /* Kahn's algorithm; ties broken by node id so the model's order is kept
     * when it is already topological. */
    int *pending = ir_xcalloc((size_t)(g->nnodes > 0 ? g->nnodes : 1), sizeof(int));
    IrUses u = ir_uses_build(g);
    int live = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->dead) continue;
        live++;
        for (int j = 0; j < n->nin; j++) {
            int v = n->in[j];
            if (v < 0) continue;
            int p = g->values[v].producer;
            int dup = 0;
            for (int k = 0; k < j; k++) dup |= n->in[k] == v;
            if (p >= 0 && !g->nodes[p].dead && !dup) pending[i]++;
        }
    }
    /* a min-heap of ready node ids */
    int *heap = ir_xmalloc((size_t)(g->nnodes > 0 ? g->nnodes : 1) * sizeof(int));
    int nh = 0, cnt = 0;
#define HPUSH(x)                                                              \
    do {                                                                      \
        int c_ = nh++;                                                        \
        heap[c_] = (x);                                                       \
        while (c_ && heap[(c_ - 1) / 2] > heap[c_]) {                         \
            int p_ = (c_ - 1) / 2, t_ = heap[p_];                             \
            heap[p_] = heap[c_], heap[c_] = t_, c_ = p_;                      \
        }                                                                     \
    } while (0)
    for (int i = 0; i < g->nnodes; i++)
        if (!g->nodes[i].dead && pending[i] == 0) HPUSH(i);
    while (nh) {
        int x = heap[0];
        heap[0] = heap[--nh];
        for (int c = 0;;) {
            int l = 2 * c + 1, r = l + 1, m = c;
            if (l < nh && heap[l] < heap[m]) m = l;
            if (r < nh && heap[r] < heap[m]) m = r;
            if (m == c) break;
            int t = heap[m];
            heap[m] = heap[c], heap[c] = t, c = m;
        }
        order[cnt++] = x;
        const IrNode *n = &g->nodes[x];
        for (int j = 0; j < n->nout; j++) {
            int v = n->out[j];
            for (int k = u.start[v]; k < u.start[v + 1]; k++)
                if (--pending[u.node[k]] == 0) HPUSH(u.node[k]);
        }
    }
#undef HPUSH
    int rc = cnt;
    if (cnt != live) {
        int stuck = -1;
        for (int i = 0; i < g->nnodes && stuck < 0; i++)
            if (!g->nodes[i].dead && pending[i] > 0) stuck = i;
        rc = ir_fail(g, stuck, "the graph has a cycle through this node; ONNX graphs must be acyclic");
    }
    free(heap);
    free(pending);
    ir_uses_free(&u);
    return rc;
}

int ir_view_root(const IrGraph *g, int v)
{
    for (int p; (p = g->values[v].producer) >= 0 && (ir_ops[g->nodes[p].op].flags & OPF_VIEW) &&
                g->nodes[p].out[0] == v && g->nodes[p].in[0] >= 0;)
        v = g->nodes[p].in[0];
    return v;
}

void ir_reorder(IrGraph *g, const int *order, int count)
{
    IrNode *nodes = ir_xmalloc((g->cap_nodes ? g->cap_nodes : 1) * sizeof *nodes);
    int *pos = ir_xmalloc((g->nnodes ? g->nnodes : 1) * sizeof *pos);
    for (int i = 0; i < g->nnodes; i++) pos[i] = -1;
    for (int k = 0; k < count; k++) {
        nodes[k] = g->nodes[order[k]];
        pos[order[k]] = k;
    }
    for (int k = 0; k < count; k++)
        if (nodes[k].fwd >= 0) nodes[k].fwd = pos[nodes[k].fwd];
    free(pos);
    free(g->nodes);
    g->nodes = nodes;
    g->nnodes = count;
    for (int i = 0; i < g->nvalues; i++) g->values[i].producer = -1;
    for (int k = 0; k < count; k++)
        for (int j = 0; j < nodes[k].nout; j++) g->values[nodes[k].out[j]].producer = k;
}

IrGraph *ir_graph_copy(const IrGraph *g)
{
    IrGraph *c = ir_graph_new(NULL);
    c->path = g->path;
    c->graph_name = g->graph_name;
    c->producer = g->producer;
    c->opset = g->opset;
    c->ir_version = g->ir_version;
    for (int i = 0; i < g->nvalues; i++) {
        const IrValue *v = &g->values[i];
        int id = ir_value_new(c, v->name, v->role);
        IrValue *cv = &c->values[id];
        const char *name = cv->name;
        *cv = *v;
        cv->name = name;
        cv->data = NULL;
        if (v->data && ir_value_bytes(v) <= IR_COPY_DATA_MAX) {
            size_t n = (size_t)ir_value_bytes(v);
            cv->data = ir_xmalloc(n);
            memcpy(cv->data, v->data, n);
        }
    }
    c->nnodes = c->cap_nodes = g->nnodes;
    c->nodes = ir_xmalloc((g->nnodes ? g->nnodes : 1) * sizeof *c->nodes);
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *n = &c->nodes[i];
        *n = g->nodes[i];
        n->in = ir_alloc(c, (n->nin ? n->nin : 1) * sizeof(int));
        n->out = ir_alloc(c, (n->nout ? n->nout : 1) * sizeof(int));
        memcpy(n->in, g->nodes[i].in, n->nin * sizeof(int));
        memcpy(n->out, g->nodes[i].out, n->nout * sizeof(int));
    }
    c->ninputs = g->ninputs;
    c->noutputs = g->noutputs;
    c->inputs = ir_xmalloc((g->ninputs ? g->ninputs : 1) * sizeof(int));
    c->outputs = ir_xmalloc((g->noutputs ? g->noutputs : 1) * sizeof(int));
    memcpy(c->inputs, g->inputs, g->ninputs * sizeof(int));
    memcpy(c->outputs, g->outputs, g->noutputs * sizeof(int));
    return c;
}

void ir_compact(IrGraph *g)
{
    int *vmap = ir_xmalloc((g->nvalues ? g->nvalues : 1) * sizeof(int));
    char *used = ir_xcalloc(g->nvalues ? g->nvalues : 1, 1);
    for (int i = 0; i < g->ninputs; i++) used[g->inputs[i]] = 1;
    for (int i = 0; i < g->noutputs; i++) used[g->outputs[i]] = 1;
    for (int i = 0; i < g->nnodes; i++) {
        IrNode *n = &g->nodes[i];
        if (n->dead) continue;
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] >= 0) used[n->in[j]] = 1;
        for (int j = 0; j < n->nout; j++) used[n->out[j]] = 1;
        for (int j = 0; j < n->nattr; j++)
            if (n->attr[j].kind == IR_ATTR_TENSOR) used[n->attr[j].u.tensor] = 1;
    }
    int nv = 0;
    for (int i = 0; i < g->nvalues; i++) {
        if (!used[i]) {
            free(g->values[i].data);
            vmap[i] = -1;
            continue;
        }
        vmap[i] = nv;
        g->values[nv++] = g->values[i];
    }
    g->nvalues = nv;
    int *nmap = ir_xmalloc((g->nnodes ? g->nnodes : 1) * sizeof(int));
    int nn = 0;
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i].dead) {
            nmap[i] = -1;
            continue;
        }
        nmap[i] = nn;
        g->nodes[nn++] = g->nodes[i];
    }
    g->nnodes = nn;
    for (int i = 0; i < nn; i++) {
        IrNode *n = &g->nodes[i];
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] >= 0) n->in[j] = vmap[n->in[j]];
        for (int j = 0; j < n->nout; j++) n->out[j] = vmap[n->out[j]];
        for (int j = 0; j < n->nattr; j++)
            if (n->attr[j].kind == IR_ATTR_TENSOR) n->attr[j].u.tensor = vmap[n->attr[j].u.tensor];
    }
    for (int i = 0; i < nn; i++)
        if (g->nodes[i].fwd >= 0) g->nodes[i].fwd = nmap[g->nodes[i].fwd];
    for (int i = 0; i < nv; i++) {
        IrValue *v = &g->values[i];
        v->producer = v->producer >= 0 ? nmap[v->producer] : -1;
        if (v->alias >= 0) v->alias = vmap[v->alias];
    }
    for (int i = 0; i < g->ninputs; i++) g->inputs[i] = vmap[g->inputs[i]];
    for (int i = 0; i < g->noutputs; i++) g->outputs[i] = vmap[g->outputs[i]];
    /* rebuild the name map over the surviving values */
    g->names->cap /= 2;
    names_grow(g);
    free(nmap);
    free(used);
    free(vmap);
}

/* ---- errors ---- */

int ir_vfail(IrGraph *g, int node, const char *fmt, va_list ap)
{
    int k;
    if (node >= 0 && node < g->nnodes) {
        const IrNode *n = &g->nodes[node];
        k = snprintf(g->err, sizeof g->err, "%s: node '%s' (%s, opset %d): ", g->path, n->name,
                     ir_ops[n->op].name, g->opset);
    } else {
        k = snprintf(g->err, sizeof g->err, "%s: ", g->path);
    }
    if (k < 0 || (size_t)k >= sizeof g->err) k = 0;
    vsnprintf(g->err + k, sizeof g->err - k, fmt, ap);
    return -1;
}

int ir_fail(IrGraph *g, int node, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ir_vfail(g, node, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- dtypes and roles ---- */

int ir_dtype_size(IrDType t)
{
    switch (t) {
#define X(e, n, sz, s) \
    case IR_##e: return sz;
        IR_DTYPES(X)
#undef X
    default: return 0;
    }
}

const char *ir_dtype_name(IrDType t)
{
    switch (t) {
#define X(e, n, sz, s) \
    case IR_##e: return s;
        IR_DTYPES(X)
#undef X
    default: return "?";
    }
}

int ir_dtype_is_float(IrDType t) { return t == IR_F32 || t == IR_F16 || t == IR_BF16 || t == IR_F64; }

int ir_dtype_is_int(IrDType t)
{
    return t == IR_I8 || t == IR_I16 || t == IR_I32 || t == IR_I64 || t == IR_U8 || t == IR_U16 ||
           t == IR_U32 || t == IR_U64;
}

const char *ir_role_name(IrRole r)
{
    static const char *names[] = {"activation", "input", "param", "const",
                                  "grad",       "opt_state", "loss"};
    return (unsigned)r < sizeof names / sizeof *names ? names[r] : "?";
}
