/* router_runtime._speedups: the optional compiled engine of the runtime (features and tree scoring).
 *
 * A plain CPython C-API module, built at install time when a C compiler is present (setup.py marks the
 * extension optional); router_runtime/compiled.py is its only user and the pure-Python code in
 * features.py / trees.py stays the reference.  Every result must be bit-identical to that reference:
 *
 *   FeaturePlan(ops, max_chars, as_text)  a compiled FeatureSpec; ``extract(query)`` gives the same
 *                                         list of floats as ``FeatureSpec.extract(query)``.
 *   Scorer(q_splits, contrib, sizes, offsets, leaves, unit, scale, bias)
 *                                         a compiled CandidateScorer; ``score(q, bases)`` gives the
 *                                         same list as ``CandidateScorer.score(q, bases)`` (pure Python).
 *   Scorer.stack(bases) -> PackedBases    candidate bases validated once and packed, for ``score``.
 *
 * Text is processed as UTF-8 bytes: a byte < 0x80 is always one ASCII code point and bytes >= 0x80
 * only occur inside multi-byte characters, so ASCII classes, runs, tokens, ASCII lower-casing and
 * substring search on bytes equal their code-point meaning; non-ASCII classes decode code points.
 *
 * Memory safety first: constructors validate every input (types, lengths, index ranges) and raise
 * TypeError / ValueError; nothing is indexed without a bound that was checked; scratch memory is per
 * call (another thread may run while a Python-level conversion or a GC pass runs).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Bit-identical float results need plain IEEE double evaluation: no x87 excess precision, no fused
 * multiply-add.  Refusing to build is the safe outcome (the install falls back to pure Python). */
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "router_runtime._speedups needs FLT_EVAL_METHOD == 0 (IEEE double arithmetic, e.g. SSE2)"
#endif
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(_MSC_VER)
#pragma fp_contract(off)
#endif

/* Bump when the constructor arguments change: compiled.py refuses a stale build of another format. */
#define FORMAT_VERSION 2
/* setup.py passes the sha256 of this file: compiled.py compares it with the source next to it. */
#ifndef ZETA_SOURCE_SHA256
#define ZETA_SOURCE_SHA256 ""
#endif

#define MAX_OUTPUTS (1 << 24)      /* feature outputs of one plan */
#define MAX_AC_CELLS (1 << 24)     /* states x byte classes of one literal automaton */
#define MAX_INDEX ((Py_ssize_t)1 << 30)

enum { OP_CHARS, OP_BYTES, OP_CLASS, OP_RUNS, OP_LITERAL, OP_CONTAINS, OP_TOKENS, OP_RATIO, OP_LOG1P, OP_STATIC,
       N_OPKINDS };

#define MAX_STATIC_DIMS 64
#define MAX_STATIC_ROWS 65536

static PyObject *float_zero = NULL; /* shared 0.0 and 1.0 objects: floats are immutable */
static PyObject *float_one = NULL;

static double
std_nan(void)
{
    /* The NaN float('nan') has (Py_NAN may be the negative "default NaN" on x86). */
    const uint64_t bits = 0x7ff8000000000000ULL;
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static PyObject *
new_float(double v)
{
    if (v == 0.0 && !signbit(v)) {
        Py_INCREF(float_zero);
        return float_zero;
    }
    if (v == 1.0) {
        Py_INCREF(float_one);
        return float_one;
    }
    return PyFloat_FromDouble(v);
}

/* An exact int (not bool) as a C long long within [lo, hi]; -1 with an exception set otherwise. */
static int
get_int(PyObject *o, long long lo, long long hi, const char *what, long long *out)
{
    if (!PyLong_Check(o) || PyBool_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, got %.100s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow || v < lo || v > hi) {
        PyErr_Format(PyExc_ValueError, "%s must be in [%lld, %lld]", what, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int
get_double(PyObject *o, const char *what, double *out)
{
    if (!PyFloat_Check(o) && !(PyLong_Check(o) && !PyBool_Check(o))) {
        PyErr_Format(PyExc_TypeError, "%s must be a float, got %.100s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    double v = PyFloat_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred())
        return -1;
    *out = v;
    return 0;
}

/* A tuple holding the items of a list or tuple (a private snapshot: later mutation cannot matter). */
static PyObject *
as_tuple(PyObject *o, const char *what)
{
    if (PyTuple_Check(o)) {
        Py_INCREF(o);
        return o;
    }
    if (PyList_Check(o))
        return PyList_AsTuple(o);
    PyErr_Format(PyExc_TypeError, "%s must be a list or tuple, got %.100s", what, Py_TYPE(o)->tp_name);
    return NULL;
}

/* ================================================================================================
 * UTF-8 helpers
 */

/* The code point starting at s[i] (a lead byte >= 0xC0).  The input is valid UTF-8 (it comes from a
 * str), but a truncated sequence still never reads past n: it decodes as U+FFFD. */
static inline uint32_t
decode_at(const uint8_t *s, Py_ssize_t n, Py_ssize_t i)
{
    uint8_t b = s[i];
    if (b < 0xE0) {
        if (i + 1 >= n)
            return 0xFFFD;
        return ((uint32_t)(b & 0x1F) << 6) | (s[i + 1] & 0x3F);
    }
    if (b < 0xF0) {
        if (i + 2 >= n)
            return 0xFFFD;
        return ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
    }
    if (i + 3 >= n)
        return 0xFFFD;
    return ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[i + 1] & 0x3F) << 12) | ((uint32_t)(s[i + 2] & 0x3F) << 6)
           | (s[i + 3] & 0x3F);
}

static uint8_t LOWER[256];  /* ASCII lower-casing of a byte */
static uint8_t TOKCHAR[256]; /* lower-cased byte if in [A-Za-z0-9_], else 0 */

static void
init_tables(void)
{
    for (int c = 0; c < 256; c++) {
        LOWER[c] = (uint8_t)((c >= 'A' && c <= 'Z') ? c + 32 : c);
        int tok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        TOKCHAR[c] = tok ? LOWER[c] : 0;
    }
}

/* ================================================================================================
 * code point classes
 */

typedef struct {
    uint32_t lo, hi;
} Range;

static int
range_cmp(const void *a, const void *b)
{
    const Range *x = a, *y = b;
    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    return x->hi < y->hi ? -1 : (x->hi > y->hi);
}

static inline int
in_ranges(const Range *r, Py_ssize_t n, uint32_t cp)
{
    Py_ssize_t lo = 0, hi = n; /* first range with r.lo > cp */
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (r[mid].lo <= cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && cp <= r[lo - 1].hi;
}

/* ================================================================================================
 * Aho-Corasick automaton over byte classes: every literal of every count_literal and contains_any
 * feature, found in one pass over the ASCII lower-cased text.  Lower-casing changes only A-Z, so a
 * literal occurs in the raw text exactly where its lower-cased form occurs in the lowered text and the
 * raw bytes there equal the literal: literals of case-sensitive features that contain ASCII letters
 * are verified against the raw bytes at each match.  (A literal of an ascii_lower feature that
 * contains A-Z can never match the lowered text: it is left out, as in Python, where it counts 0.)
 */

typedef struct {
    int32_t n_states, n_cls;
    uint8_t map[256];      /* input byte -> class of its lower-cased form */
    int32_t *delta;        /* [state * n_cls + class] -> next state * n_cls, or -(that) - 1 if it reports */
    int32_t *own_head;     /* per state: first entry whose literal ends exactly here, -1 if none */
    int32_t *dict_link;    /* per state: nearest proper-suffix state with entries, 0 if none */
    int32_t n_entries;
    int32_t *entry_next, *entry_op, *entry_len;
    uint8_t *entry_count;  /* 1: count_literal (non-overlapping count), 0: contains_any (flag) */
    Py_ssize_t *entry_raw; /* offset of the raw literal in raw_pool when it must be verified, else -1 */
    uint8_t *raw_pool;
} AC;

typedef struct {
    PyObject *lit; /* bytes (borrowed during construction) */
    int32_t op;
    uint8_t count; /* count_literal */
    uint8_t lower; /* the feature matches ascii_lower(text) */
} ACEntry;

static void
ac_free(AC *ac)
{
    PyMem_Free(ac->delta);
    PyMem_Free(ac->own_head);
    PyMem_Free(ac->dict_link);
    PyMem_Free(ac->entry_next);
    PyMem_Free(ac->entry_op);
    PyMem_Free(ac->entry_len);
    PyMem_Free(ac->entry_count);
    PyMem_Free(ac->entry_raw);
    PyMem_Free(ac->raw_pool);
    memset(ac, 0, sizeof *ac);
}

static int
has_byte_in(PyObject *lit, uint8_t lo, uint8_t hi)
{
    const uint8_t *s = (const uint8_t *)PyBytes_AS_STRING(lit);
    for (Py_ssize_t i = 0; i < PyBytes_GET_SIZE(lit); i++)
        if (s[i] >= lo && s[i] <= hi)
            return 1;
    return 0;
}

static int
is_letter_lit(PyObject *lit)
{
    return has_byte_in(lit, 'A', 'Z') || has_byte_in(lit, 'a', 'z');
}

static int
ac_build(AC *ac, const ACEntry *all, Py_ssize_t n_all)
{
    memset(ac, 0, sizeof *ac);
    ACEntry *entries = PyMem_Malloc((n_all ? (size_t)n_all : 1) * sizeof(ACEntry));
    if (!entries) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t n_entries = 0;
    for (Py_ssize_t e = 0; e < n_all; e++)
        if (!(all[e].lower && has_byte_in(all[e].lit, 'A', 'Z')))
            entries[n_entries++] = all[e];
    if (n_entries == 0) {
        PyMem_Free(entries);
        return 0;
    }
    if (n_entries > INT32_MAX / 2) {
        PyMem_Free(entries);
        PyErr_SetString(PyExc_ValueError, "too many literals");
        return -1;
    }
    /* byte classes of the lower-cased literals: 0 for bytes in none, 1.. for each byte that occurs */
    int32_t cls[256] = {0};
    int32_t n_cls = 1;
    long long total = 0, raw_total = 0;
    for (Py_ssize_t e = 0; e < n_entries; e++) {
        const uint8_t *s = (const uint8_t *)PyBytes_AS_STRING(entries[e].lit);
        Py_ssize_t n = PyBytes_GET_SIZE(entries[e].lit);
        total += n;
        if (!entries[e].lower && is_letter_lit(entries[e].lit))
            raw_total += n;
        for (Py_ssize_t i = 0; i < n; i++)
            if (!cls[LOWER[s[i]]])
                cls[LOWER[s[i]]] = n_cls++;
    }
    /* at most 256 - 26 distinct lower-cased bytes, so n_cls <= 231 and every class fits a byte */
    long long states_max = total + 1;
    if (states_max * n_cls > MAX_AC_CELLS) {
        PyMem_Free(entries);
        PyErr_SetString(PyExc_ValueError, "literals too long to compile (automaton would be too large)");
        return -1;
    }
    for (int c = 0; c < 256; c++)
        ac->map[c] = (uint8_t)cls[LOWER[c]];
    ac->n_cls = n_cls;
    size_t cells = (size_t)states_max * (size_t)n_cls;
    ac->delta = PyMem_Malloc(cells * sizeof(int32_t));
    ac->own_head = PyMem_Malloc((size_t)states_max * sizeof(int32_t));
    ac->dict_link = PyMem_Malloc((size_t)states_max * sizeof(int32_t));
    int32_t *fail = PyMem_Malloc((size_t)states_max * sizeof(int32_t));
    int32_t *queue = PyMem_Malloc((size_t)states_max * sizeof(int32_t));
    ac->entry_next = PyMem_Malloc((size_t)n_entries * sizeof(int32_t));
    ac->entry_op = PyMem_Malloc((size_t)n_entries * sizeof(int32_t));
    ac->entry_len = PyMem_Malloc((size_t)n_entries * sizeof(int32_t));
    ac->entry_count = PyMem_Malloc((size_t)n_entries);
    ac->entry_raw = PyMem_Malloc((size_t)n_entries * sizeof(Py_ssize_t));
    ac->raw_pool = PyMem_Malloc(raw_total ? (size_t)raw_total : 1);
    if (!ac->delta || !ac->own_head || !ac->dict_link || !fail || !queue || !ac->entry_next || !ac->entry_op
        || !ac->entry_len || !ac->entry_count || !ac->entry_raw || !ac->raw_pool) {
        PyMem_Free(fail);
        PyMem_Free(queue);
        PyMem_Free(entries);
        ac_free(ac);
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < cells; i++)
        ac->delta[i] = -1;
    for (long long i = 0; i < states_max; i++) {
        ac->own_head[i] = -1;
        ac->dict_link[i] = 0;
        fail[i] = 0;
    }
    int32_t n_states = 1;
    Py_ssize_t raw_off = 0;
    ac->n_entries = (int32_t)n_entries;
    for (Py_ssize_t e = 0; e < n_entries; e++) {
        const uint8_t *s = (const uint8_t *)PyBytes_AS_STRING(entries[e].lit);
        Py_ssize_t n = PyBytes_GET_SIZE(entries[e].lit);
        int32_t st = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            int32_t *cell = &ac->delta[(size_t)st * n_cls + cls[LOWER[s[i]]]];
            if (*cell < 0)
                *cell = n_states++;
            st = *cell;
        }
        ac->entry_op[e] = entries[e].op;
        ac->entry_len[e] = (int32_t)n;
        ac->entry_count[e] = entries[e].count;
        ac->entry_raw[e] = -1;
        if (!entries[e].lower && is_letter_lit(entries[e].lit)) {
            memcpy(ac->raw_pool + raw_off, s, (size_t)n);
            ac->entry_raw[e] = raw_off;
            raw_off += n;
        }
        ac->entry_next[e] = ac->own_head[st];
        ac->own_head[st] = (int32_t)e;
    }
    PyMem_Free(entries);
    /* breadth-first: failure links, the complete transition function, output (dictionary) links */
    int32_t head = 0, tail = 0;
    for (int32_t c = 0; c < n_cls; c++) {
        int32_t *cell = &ac->delta[c];
        if (*cell < 0)
            *cell = 0;
        else {
            fail[*cell] = 0;
            queue[tail++] = *cell;
        }
    }
    while (head < tail) {
        int32_t u = queue[head++];
        for (int32_t c = 0; c < n_cls; c++) {
            int32_t *cell = &ac->delta[(size_t)u * n_cls + c];
            int32_t via_fail = ac->delta[(size_t)fail[u] * n_cls + c];
            if (*cell < 0)
                *cell = via_fail;
            else {
                int32_t v = *cell;
                fail[v] = via_fail;
                ac->dict_link[v] = ac->own_head[via_fail] >= 0 ? via_fail : ac->dict_link[via_fail];
                queue[tail++] = v;
            }
        }
    }
    /* encode: premultiplied target, negative when the target reports a match */
    for (size_t i = 0; i < (size_t)n_states * n_cls; i++) {
        int32_t t = ac->delta[i];
        int32_t pm = t * n_cls;
        ac->delta[i] = (ac->own_head[t] >= 0 || ac->dict_link[t] != 0) ? -pm - 1 : pm;
    }
    ac->n_states = n_states;
    PyMem_Free(fail);
    PyMem_Free(queue);
    return 0;
}

/* cnt[op]: count_literal count or contains_any flag; next_ok[op]: where the next counted match may start */
static void
ac_scan(const AC *ac, const uint8_t *s, Py_ssize_t n, int64_t *cnt, int64_t *next_ok)
{
    const int32_t *delta = ac->delta;
    const uint8_t *map = ac->map;
    const int32_t n_cls = ac->n_cls;
    int32_t st = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t v = delta[st + map[s[i]]];
        if (v < 0) {
            v = -v - 1;
            int32_t state = v / n_cls;
            int32_t u = ac->own_head[state] >= 0 ? state : ac->dict_link[state];
            int64_t end = (int64_t)i + 1;
            while (u != 0) {
                for (int32_t e = ac->own_head[u]; e >= 0; e = ac->entry_next[e]) {
                    int32_t op = ac->entry_op[e];
                    int64_t start = end - ac->entry_len[e]; /* >= 0: the automaton consumed len bytes */
                    if (ac->entry_raw[e] >= 0
                        && memcmp(s + start, ac->raw_pool + ac->entry_raw[e], (size_t)ac->entry_len[e]) != 0)
                        continue;
                    if (ac->entry_count[e]) {
                        if (start >= next_ok[op]) {
                            cnt[op] += 1;
                            next_ok[op] = end;
                        }
                    }
                    else
                        cnt[op] = 1;
                }
                u = ac->dict_link[u];
            }
        }
        st = v;
    }
}

/* ================================================================================================
 * token vocabulary: open addressing on a 64-bit FNV-1a hash of the (lower-case) token
 */

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

typedef struct {
    uint64_t h;
    Py_ssize_t off, len;
    int32_t bucket; /* -1: empty slot */
} TokSlot;

typedef struct {
    TokSlot *slots;
    size_t mask;
    uint8_t *keys;
} TokTable;

static void
tok_free(TokTable *t)
{
    PyMem_Free(t->slots);
    PyMem_Free(t->keys);
    t->slots = NULL;
    t->keys = NULL;
}

/* vocab: dict of token bytes -> bucket in [0, n_buckets) (token_buckets) or row in [0, n_buckets)
 * (static_embedding, n_buckets = the number of table rows). */
static int
tok_build(TokTable *t, PyObject *vocab, long long n_buckets)
{
    memset(t, 0, sizeof *t);
    if (!PyDict_Check(vocab)) {
        PyErr_Format(PyExc_TypeError, "token_buckets vocab must be a dict of bytes -> int, got %.100s",
                     Py_TYPE(vocab)->tp_name);
        return -1;
    }
    Py_ssize_t n = PyDict_Size(vocab);
    size_t cap = 8;
    while (cap < (size_t)n + (size_t)n / 2 + 1) {
        if (cap > ((size_t)1 << 40)) {
            PyErr_SetString(PyExc_ValueError, "token vocab too large");
            return -1;
        }
        cap <<= 1;
    }
    Py_ssize_t pos = 0, total = 0;
    PyObject *k, *v;
    while (PyDict_Next(vocab, &pos, &k, &v)) {
        if (!PyBytes_Check(k) || PyBytes_GET_SIZE(k) == 0) {
            PyErr_SetString(PyExc_TypeError, "token_buckets vocab keys must be non-empty bytes");
            return -1;
        }
        const uint8_t *s = (const uint8_t *)PyBytes_AS_STRING(k);
        for (Py_ssize_t i = 0; i < PyBytes_GET_SIZE(k); i++) {
            if (!TOKCHAR[s[i]] || TOKCHAR[s[i]] != s[i]) {
                PyErr_SetString(PyExc_ValueError, "token_buckets vocab tokens must match [a-z0-9_]+");
                return -1;
            }
        }
        long long b;
        if (get_int(v, 0, n_buckets - 1, "token_buckets vocab bucket", &b) < 0)
            return -1;
        if (total > PY_SSIZE_T_MAX - PyBytes_GET_SIZE(k)) {
            PyErr_SetString(PyExc_ValueError, "token vocab too large");
            return -1;
        }
        total += PyBytes_GET_SIZE(k);
    }
    t->slots = PyMem_Malloc(cap * sizeof(TokSlot));
    t->keys = PyMem_Malloc(total ? (size_t)total : 1);
    if (!t->slots || !t->keys) {
        tok_free(t);
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < cap; i++)
        t->slots[i].bucket = -1;
    t->mask = cap - 1;
    pos = 0;
    Py_ssize_t off = 0;
    while (PyDict_Next(vocab, &pos, &k, &v)) {
        const uint8_t *s = (const uint8_t *)PyBytes_AS_STRING(k);
        Py_ssize_t len = PyBytes_GET_SIZE(k);
        if (off + len > total) { /* the dict changed under us: impossible without Python code, but safe */
            tok_free(t);
            PyErr_SetString(PyExc_RuntimeError, "vocab changed during compilation");
            return -1;
        }
        uint64_t h = FNV_OFFSET;
        for (Py_ssize_t i = 0; i < len; i++)
            h = (h ^ s[i]) * FNV_PRIME;
        memcpy(t->keys + off, s, (size_t)len);
        size_t i = (size_t)h & t->mask;
        while (t->slots[i].bucket >= 0)
            i = (i + 1) & t->mask;
        t->slots[i].h = h;
        t->slots[i].off = off;
        t->slots[i].len = len;
        t->slots[i].bucket = (int32_t)PyLong_AsLong(v); /* validated above */
        off += len;
    }
    return 0;
}

/* The bucket of the token s[0:len] (raw text bytes, compared lower-cased), or -1. */
static inline int32_t
tok_lookup(const TokTable *t, uint64_t h, const uint8_t *s, Py_ssize_t len)
{
    size_t i = (size_t)h & t->mask;
    for (;;) {
        const TokSlot *slot = &t->slots[i];
        if (slot->bucket < 0)
            return -1;
        if (slot->h == h && slot->len == len) {
            const uint8_t *key = t->keys + slot->off;
            Py_ssize_t k = 0;
            while (k < len && TOKCHAR[s[k]] == key[k])
                k++;
            if (k == len)
                return slot->bucket;
        }
        i = (i + 1) & t->mask;
    }
}

/* ================================================================================================
 * FeaturePlan
 */

typedef struct {
    int kind;
    Py_ssize_t out;      /* first output position */
    Py_ssize_t n_out;    /* 1, or n_buckets */
    /* count_class / count_runs */
    Range *ranges;       /* merged, sorted */
    Py_ssize_t n_ranges;
    uint8_t ascii[256];  /* membership of each byte as an ASCII code point (bytes >= 0x80: 0) */
    uint8_t *members;    /* count_class: the ASCII member bytes */
    int n_members;
    int has_na;          /* some range reaches >= 0x80 */
    int na_all;          /* the non-ASCII part is exactly [0x80, 0x10FFFF] */
    /* token_buckets; static_embedding (tok maps a token to its row) */
    TokTable tok;
    uint64_t *packed;    /* static_embedding: n_rows x n_chunks; byte k of chunk c = row[8c + k] + 128 */
    double *scale;       /* static_embedding: n_out dequantization scales */
    Py_ssize_t n_rows, n_chunks;
    Py_ssize_t sum_off;  /* static_embedding: its first slot in the per-call scratch (see static_add) */
    /* ratio / log1p: output positions of the operands */
    Py_ssize_t a, b;
} Op;

typedef struct {
    PyObject_HEAD
    Py_ssize_t n_ops, n_out, max_chars;
    Op *ops;
    AC ac;
    int need_hist;
    Py_ssize_t n_tok_ops, n_na_ops;
    Py_ssize_t *tok_ops, *na_ops; /* token_buckets / static_embedding ops; count_class ops with a partial
                                   * non-ASCII part */
    Py_ssize_t n_sums;            /* int64 sums of every static_embedding op */
    PyObject *as_text; /* text.as_text: for anything but a valid str */
} PlanObject;

static void
plan_free_ops(PlanObject *p)
{
    if (p->ops) {
        for (Py_ssize_t i = 0; i < p->n_ops; i++) {
            PyMem_Free(p->ops[i].ranges);
            PyMem_Free(p->ops[i].members);
            PyMem_Free(p->ops[i].packed);
            PyMem_Free(p->ops[i].scale);
            tok_free(&p->ops[i].tok);
        }
        PyMem_Free(p->ops);
        p->ops = NULL;
    }
    ac_free(&p->ac);
    PyMem_Free(p->tok_ops);
    PyMem_Free(p->na_ops);
    p->tok_ops = p->na_ops = NULL;
}

static int
plan_traverse(PlanObject *p, visitproc visit, void *arg)
{
    Py_VISIT(p->as_text);
    return 0;
}

static int
plan_clear(PlanObject *p)
{
    Py_CLEAR(p->as_text);
    return 0;
}

static void
plan_dealloc(PlanObject *p)
{
    PyObject_GC_UnTrack(p);
    plan_clear(p);
    plan_free_ops(p);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static int
parse_ranges(Op *op, PyObject *obj)
{
    PyObject *t = as_tuple(obj, "ranges");
    if (!t)
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(t);
    if (n == 0 || n > (1 << 20)) {
        Py_DECREF(t);
        PyErr_SetString(PyExc_ValueError, "ranges must be a non-empty list of (lo, hi) pairs");
        return -1;
    }
    Range *r = PyMem_Malloc((size_t)n * sizeof(Range));
    if (!r) {
        Py_DECREF(t);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyTuple_GET_ITEM(t, i);
        long long lo, hi;
        if (!(PyTuple_Check(pair) || PyList_Check(pair)) || PySequence_Fast_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "each range must be a (lo, hi) pair");
            goto fail;
        }
        if (get_int(PySequence_Fast_GET_ITEM(pair, 0), 0, 0x10FFFF, "range lo", &lo) < 0
            || get_int(PySequence_Fast_GET_ITEM(pair, 1), 0, 0x10FFFF, "range hi", &hi) < 0)
            goto fail;
        if (lo > hi) {
            PyErr_SetString(PyExc_ValueError, "range needs lo <= hi");
            goto fail;
        }
        r[i].lo = (uint32_t)lo;
        r[i].hi = (uint32_t)hi;
    }
    Py_DECREF(t);
    qsort(r, (size_t)n, sizeof(Range), range_cmp);
    Py_ssize_t m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (m > 0 && r[i].lo <= r[m - 1].hi + 1) {
            if (r[i].hi > r[m - 1].hi)
                r[m - 1].hi = r[i].hi;
        }
        else
            r[m++] = r[i];
    }
    op->ranges = r;
    op->n_ranges = m;
    int n_members = 0;
    for (int c = 0; c < 128; c++) {
        op->ascii[c] = (uint8_t)in_ranges(r, m, (uint32_t)c);
        n_members += op->ascii[c];
    }
    op->members = PyMem_Malloc(n_members ? (size_t)n_members : 1);
    if (!op->members) {
        PyErr_NoMemory();
        return -1;
    }
    op->n_members = 0;
    for (int c = 0; c < 128; c++)
        if (op->ascii[c])
            op->members[op->n_members++] = (uint8_t)c;
    op->has_na = r[m - 1].hi >= 0x80;
    /* the non-ASCII part is everything: one merged range covering [0x80, 0x10FFFF] */
    op->na_all = r[m - 1].hi == 0x10FFFF && r[m - 1].lo <= 0x80;
    return 0;
fail:
    Py_DECREF(t);
    PyMem_Free(r);
    return -1;
}

static int
check_literal(PyObject *lit)
{
    if (!PyBytes_Check(lit) || PyBytes_GET_SIZE(lit) == 0 || PyBytes_GET_SIZE(lit) > (1 << 20)) {
        PyErr_SetString(PyExc_TypeError, "literals must be non-empty bytes (UTF-8), at most 1 MiB");
        return -1;
    }
    return 0;
}

static int
check_flag(PyObject *flag)
{
    if (!PyBool_Check(flag)) {
        PyErr_SetString(PyExc_TypeError, "ascii_lower must be a bool");
        return -1;
    }
    return 0;
}

/* (OP_STATIC, dims, vocab {token bytes: row}, table bytes (rows x dims int8), scale (dims floats)) */
static int
parse_static(Op *op, PyObject *d)
{
    PyObject *table = PyTuple_GET_ITEM(d, 3), *scale_arg = PyTuple_GET_ITEM(d, 4);
    if (!PyBytes_Check(table)) {
        PyErr_SetString(PyExc_TypeError, "static_embedding table must be bytes");
        return -1;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(table);
    if (size % op->n_out != 0 || size / op->n_out > MAX_STATIC_ROWS) {
        PyErr_SetString(PyExc_ValueError, "static_embedding table must be rows x dims bytes, at most 65536 rows");
        return -1;
    }
    op->n_rows = size / op->n_out;
    PyObject *vocab = PyTuple_GET_ITEM(d, 2);
    if (!PyDict_Check(vocab) || PyDict_Size(vocab) != op->n_rows) {
        PyErr_SetString(PyExc_ValueError, "static_embedding vocab must be a dict with one token per table row");
        return -1;
    }
    /* rows in [0, n_rows): with as many distinct tokens as rows, every row is reachable */
    if (tok_build(&op->tok, vocab, (long long)op->n_rows) < 0)
        return -1;
    PyObject *sc = as_tuple(scale_arg, "static_embedding scale");
    if (!sc)
        return -1;
    if (PyTuple_GET_SIZE(sc) != op->n_out) {
        Py_DECREF(sc);
        PyErr_SetString(PyExc_ValueError, "static_embedding scale must have dims floats");
        return -1;
    }
    op->n_chunks = (op->n_out + 7) / 8;
    op->packed = PyMem_Calloc(op->n_rows ? (size_t)op->n_rows * (size_t)op->n_chunks : 1, sizeof(uint64_t));
    op->scale = PyMem_Malloc((size_t)op->n_out * sizeof(double));
    if (!op->packed || !op->scale) {
        Py_DECREF(sc);
        PyErr_NoMemory();
        return -1;
    }
    const int8_t *rows = (const int8_t *)PyBytes_AS_STRING(table);
    for (Py_ssize_t r = 0; r < op->n_rows; r++)
        for (Py_ssize_t j = 0; j < op->n_out; j++)
            op->packed[r * op->n_chunks + j / 8] |= (uint64_t)(rows[r * op->n_out + j] + 128) << (8 * (j % 8));
    for (Py_ssize_t j = 0; j < op->n_out; j++) {
        if (get_double(PyTuple_GET_ITEM(sc, j), "static_embedding scale", &op->scale[j]) < 0) {
            Py_DECREF(sc);
            return -1;
        }
        if (!isfinite(op->scale[j])) {
            Py_DECREF(sc);
            PyErr_SetString(PyExc_ValueError, "static_embedding scale must be finite");
            return -1;
        }
    }
    Py_DECREF(sc);
    return 0;
}

static PyObject *
plan_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"ops", "max_chars", "as_text", NULL};
    PyObject *ops_arg, *as_text;
    Py_ssize_t max_chars;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OnO:FeaturePlan", kwlist, &ops_arg, &max_chars, &as_text))
        return NULL;
    if (max_chars < 1) {
        PyErr_SetString(PyExc_ValueError, "max_chars must be >= 1");
        return NULL;
    }
    if (!PyCallable_Check(as_text)) {
        PyErr_SetString(PyExc_TypeError, "as_text must be callable");
        return NULL;
    }
    PyObject *ops = as_tuple(ops_arg, "ops");
    if (!ops)
        return NULL;
    PlanObject *p = (PlanObject *)type->tp_alloc(type, 0);
    ACEntry *lits_all = NULL;
    uint8_t *single = NULL; /* per output position: 1 when a single-output feature produced it */
    if (!p) {
        Py_DECREF(ops);
        return NULL;
    }
    Py_INCREF(as_text);
    p->as_text = as_text;
    p->max_chars = max_chars;
    Py_ssize_t n_ops = PyTuple_GET_SIZE(ops);
    if (n_ops > MAX_OUTPUTS) {
        PyErr_SetString(PyExc_ValueError, "too many features");
        goto fail;
    }
    p->ops = PyMem_Calloc(n_ops ? (size_t)n_ops : 1, sizeof(Op));
    if (!p->ops) {
        PyErr_NoMemory();
        goto fail;
    }
    p->n_ops = n_ops;
    Py_ssize_t n_lits = 0, cap_lits = 0, n_tok = 0, n_na = 0;
    /* first pass: count literals and outputs */
    Py_ssize_t pos = 0;
    for (Py_ssize_t i = 0; i < n_ops; i++) {
        PyObject *d = PyTuple_GET_ITEM(ops, i);
        if (!PyTuple_Check(d) || PyTuple_GET_SIZE(d) < 1) {
            PyErr_Format(PyExc_TypeError, "ops[%zd] must be a non-empty tuple", i);
            goto fail;
        }
        long long kind;
        if (get_int(PyTuple_GET_ITEM(d, 0), 0, N_OPKINDS - 1, "op kind", &kind) < 0)
            goto fail;
        static const Py_ssize_t arity[N_OPKINDS] = {1, 1, 2, 2, 3, 3, 3, 3, 2, 5};
        if (PyTuple_GET_SIZE(d) != arity[kind]) {
            PyErr_Format(PyExc_ValueError, "ops[%zd]: op kind %lld takes %zd fields, got %zd", i, kind,
                         arity[kind], PyTuple_GET_SIZE(d));
            goto fail;
        }
        Op *op = &p->ops[i];
        op->kind = (int)kind;
        op->n_out = 1;
        if (kind == OP_TOKENS) {
            long long nb;
            if (get_int(PyTuple_GET_ITEM(d, 1), 1, MAX_OUTPUTS, "n_buckets", &nb) < 0)
                goto fail;
            op->n_out = (Py_ssize_t)nb;
        }
        else if (kind == OP_STATIC) {
            long long dims;
            if (get_int(PyTuple_GET_ITEM(d, 1), 1, MAX_STATIC_DIMS, "static_embedding dims", &dims) < 0)
                goto fail;
            op->n_out = (Py_ssize_t)dims;
            op->sum_off = p->n_sums;
            p->n_sums += op->n_out + 2 * ((op->n_out + 7) / 8);
        }
        else if (kind == OP_LITERAL) {
            if (check_literal(PyTuple_GET_ITEM(d, 1)) < 0)
                goto fail;
            if (check_flag(PyTuple_GET_ITEM(d, 2)) < 0)
                goto fail;
            cap_lits++;
        }
        else if (kind == OP_CONTAINS) {
            PyObject *lits = PyTuple_GET_ITEM(d, 1);
            if (!PyTuple_Check(lits) || PyTuple_GET_SIZE(lits) == 0) {
                PyErr_Format(PyExc_TypeError, "ops[%zd]: contains_any literals must be a non-empty tuple", i);
                goto fail;
            }
            for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(lits); j++)
                if (check_literal(PyTuple_GET_ITEM(lits, j)) < 0)
                    goto fail;
            if (check_flag(PyTuple_GET_ITEM(d, 2)) < 0)
                goto fail;
            cap_lits += PyTuple_GET_SIZE(lits);
        }
        op->out = pos;
        if (pos > MAX_OUTPUTS - op->n_out) {
            PyErr_SetString(PyExc_ValueError, "too many feature outputs");
            goto fail;
        }
        pos += op->n_out;
    }
    p->n_out = pos;
    single = PyMem_Calloc(pos ? (size_t)pos : 1, 1);
    lits_all = PyMem_Malloc((cap_lits ? (size_t)cap_lits : 1) * sizeof(ACEntry));
    p->tok_ops = PyMem_Malloc((size_t)(n_ops ? n_ops : 1) * sizeof(Py_ssize_t));
    p->na_ops = PyMem_Malloc((size_t)(n_ops ? n_ops : 1) * sizeof(Py_ssize_t));
    if (!single || !lits_all || !p->tok_ops || !p->na_ops) {
        PyErr_NoMemory();
        goto fail;
    }
    /* second pass: the parameters */
    for (Py_ssize_t i = 0; i < n_ops; i++) {
        PyObject *d = PyTuple_GET_ITEM(ops, i);
        Op *op = &p->ops[i];
        switch (op->kind) {
        case OP_CHARS:
        case OP_BYTES:
            break;
        case OP_CLASS:
        case OP_RUNS:
            if (parse_ranges(op, PyTuple_GET_ITEM(d, 1)) < 0)
                goto fail;
            if (op->kind == OP_CLASS) {
                p->need_hist = 1;
                if (op->has_na && !op->na_all)
                    p->na_ops[n_na++] = i;
            }
            break;
        case OP_LITERAL: {
            ACEntry e = {PyTuple_GET_ITEM(d, 1), (int32_t)i, 1, PyTuple_GET_ITEM(d, 2) == Py_True};
            if (n_lits >= cap_lits)
                goto changed;
            lits_all[n_lits++] = e;
            break;
        }
        case OP_CONTAINS: {
            PyObject *lits = PyTuple_GET_ITEM(d, 1);
            for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(lits); j++) {
                ACEntry e = {PyTuple_GET_ITEM(lits, j), (int32_t)i, 0, PyTuple_GET_ITEM(d, 2) == Py_True};
                if (n_lits >= cap_lits)
                    goto changed;
                lits_all[n_lits++] = e;
            }
            break;
        }
        case OP_TOKENS:
            if (tok_build(&op->tok, PyTuple_GET_ITEM(d, 2), (long long)op->n_out) < 0)
                goto fail;
            p->tok_ops[n_tok++] = i;
            break;
        case OP_STATIC:
            if (parse_static(op, d) < 0)
                goto fail;
            p->tok_ops[n_tok++] = i;
            break;
        case OP_RATIO:
        case OP_LOG1P: {
            long long a, b = 0;
            if (get_int(PyTuple_GET_ITEM(d, 1), 0, (long long)op->out - 1, "ratio/log1p operand", &a) < 0)
                goto fail;
            if (op->kind == OP_RATIO
                && get_int(PyTuple_GET_ITEM(d, 2), 0, (long long)op->out - 1, "ratio operand", &b) < 0)
                goto fail;
            if (!single[a] || !single[b]) {
                PyErr_Format(PyExc_ValueError, "ops[%zd]: an operand is not a single-output feature", i);
                goto fail;
            }
            op->a = (Py_ssize_t)a;
            op->b = (Py_ssize_t)b;
            break;
        }
        }
        if (op->n_out == 1 && op->kind != OP_TOKENS && op->kind != OP_STATIC)
            single[op->out] = 1;
    }
    p->n_tok_ops = n_tok;
    p->n_na_ops = n_na;
    if (ac_build(&p->ac, lits_all, n_lits) < 0)
        goto fail;
    PyMem_Free(single);
    PyMem_Free(lits_all);
    Py_DECREF(ops);
    return (PyObject *)p;
changed:
    PyErr_SetString(PyExc_RuntimeError, "ops changed during compilation");
fail:
    PyMem_Free(single);
    PyMem_Free(lits_all);
    Py_DECREF(ops);
    Py_DECREF(p);
    return NULL;
}

static PyObject *
nan_list(Py_ssize_t n)
{
    PyObject *out = PyList_New(n);
    if (!out)
        return NULL;
    double nan = std_nan();
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PyFloat_FromDouble(nan);
        if (!f) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, f);
    }
    return out;
}

/* static_embedding sums, four dims per 64-bit add.  A row is stored as 8-byte chunks of row[d] + 128
 * (0..255, one byte per dim: the table stays as small as the int8 one); a chunk's even bytes and its
 * odd bytes, masked apart, are two words of four 16-bit lanes, added to two accumulators.  257 rows
 * add up to at most 65,535 per lane, so nothing carries into the next lane; every 257 tokens (and at
 * the end) the lanes are flushed into exact int64 sums of row[d] + 128, and the reader subtracts 128 n.
 * scratch = [n_out int64 sums][2 x n_chunks lane words: even bytes, odd bytes of each chunk]. */
#define STATIC_FLUSH_EVERY 257
#define EVEN_BYTES 0x00FF00FF00FF00FFULL

static inline void
static_flush(const Op *op, int64_t *scratch)
{
    uint64_t *lanes = (uint64_t *)(scratch + op->n_out);
    for (Py_ssize_t j = 0; j < op->n_out; j++) {
        const uint64_t word = lanes[2 * (j / 8) + (j % 8) % 2];
        scratch[j] += (int64_t)((word >> (16 * ((j % 8) / 2))) & 0xFFFF);
    }
    memset(lanes, 0, 2 * (size_t)op->n_chunks * sizeof(uint64_t));
}

static inline void
static_add(const Op *op, int32_t row, int64_t *scratch, int64_t *n)
{
    uint64_t *lanes = (uint64_t *)(scratch + op->n_out);
    const uint64_t *src = op->packed + (size_t)row * (size_t)op->n_chunks;
    for (Py_ssize_t c = 0; c < op->n_chunks; c++) {
        const uint64_t x = src[c];
        lanes[2 * c] += x & EVEN_BYTES;
        lanes[2 * c + 1] += (x >> 8) & EVEN_BYTES;
    }
    if (++*n % STATIC_FLUSH_EVERY == 0)
        static_flush(op, scratch);
}

/* The features of t (a str without lone surrogates, already cut to max_chars). */
static PyObject *
plan_run(PlanObject *p, const uint8_t *s, Py_ssize_t nbytes, Py_ssize_t nchars)
{
    const Py_ssize_t n_ops = p->n_ops, n_out = p->n_out;
    int64_t hist[256];
    int64_t small[256];
    size_t need = (size_t)n_out * sizeof(double) + (2 * (size_t)n_ops + (size_t)p->n_sums) * sizeof(int64_t);
    void *block = need <= sizeof small ? (void *)small : PyMem_Malloc(need);
    if (!block)
        return PyErr_NoMemory();
    double *vals = block;
    int64_t *cnt = (int64_t *)(vals + n_out);
    int64_t *next_ok = cnt + n_ops;
    int64_t *sums = next_ok + n_ops; /* static_embedding scratch (see static_add); cnt[k] is its token count */
    memset(block, 0, need);
    const int ascii_text = nbytes == nchars;

    int64_t n_ascii = nbytes; /* ASCII bytes (known exactly when the histogram ran or the text is ASCII) */
    if (p->need_hist) {
        uint32_t h[4][256];
        memset(hist, 0, sizeof hist);
        for (Py_ssize_t off = 0; off < nbytes; off += ((Py_ssize_t)1 << 28)) {
            Py_ssize_t end = nbytes - off > ((Py_ssize_t)1 << 28) ? off + ((Py_ssize_t)1 << 28) : nbytes;
            memset(h, 0, sizeof h);
            Py_ssize_t i = off;
            for (; i + 4 <= end; i += 4) {
                h[0][s[i]]++;
                h[1][s[i + 1]]++;
                h[2][s[i + 2]]++;
                h[3][s[i + 3]]++;
            }
            for (; i < end; i++)
                h[0][s[i]]++;
            for (int c = 0; c < 256; c++)
                hist[c] += (int64_t)h[0][c] + h[1][c] + h[2][c] + h[3][c];
        }
        n_ascii = 0;
        for (int c = 0; c < 128; c++)
            n_ascii += hist[c];
    }
    if (p->ac.n_states)
        ac_scan(&p->ac, s, nbytes, cnt, next_ok);
    if (p->n_tok_ops) {
        Py_ssize_t i = 0;
        while (i < nbytes) {
            if (!TOKCHAR[s[i]]) {
                i++;
                continue;
            }
            Py_ssize_t start = i;
            uint64_t h = FNV_OFFSET;
            uint8_t c;
            while (i < nbytes && (c = TOKCHAR[s[i]]) != 0) {
                h = (h ^ c) * FNV_PRIME;
                i++;
            }
            for (Py_ssize_t k = 0; k < p->n_tok_ops; k++) {
                const Op *op = &p->ops[p->tok_ops[k]];
                int32_t b = tok_lookup(&op->tok, h, s + start, i - start);
                if (op->kind == OP_TOKENS) {
                    if (b >= 0 && b < op->n_out)
                        vals[op->out + b] += 1.0;
                }
                else if (b >= 0 && b < op->n_rows)
                    static_add(op, b, sums + op->sum_off, &cnt[p->tok_ops[k]]);
            }
        }
    }
    if (p->n_na_ops && !ascii_text) {
        for (Py_ssize_t i = 0; i < nbytes; i++) {
            if (s[i] < 0xC0)
                continue;
            uint32_t cp = decode_at(s, nbytes, i);
            for (Py_ssize_t k = 0; k < p->n_na_ops; k++) {
                const Op *op = &p->ops[p->na_ops[k]];
                if (in_ranges(op->ranges, op->n_ranges, cp))
                    cnt[p->na_ops[k]]++;
            }
        }
    }
    for (Py_ssize_t k = 0; k < n_ops; k++) {
        Op *op = &p->ops[k];
        double *out = &vals[op->out];
        switch (op->kind) {
        case OP_CHARS:
            *out = (double)nchars;
            break;
        case OP_BYTES:
            *out = (double)nbytes;
            break;
        case OP_CLASS: {
            int64_t c = cnt[k];
            for (int j = 0; j < op->n_members; j++)
                c += hist[op->members[j]];
            if (op->na_all)
                c += (int64_t)nchars - n_ascii;
            *out = (double)c;
            break;
        }
        case OP_RUNS: {
            int64_t c = 0;
            const uint8_t *m = op->ascii;
            if (!op->has_na || ascii_text) {
                uint8_t prev = 0;
                for (Py_ssize_t i = 0; i < nbytes; i++) {
                    uint8_t cur = m[s[i]];
                    c += cur & (uint8_t)(prev ^ 1);
                    prev = cur;
                }
            }
            else {
                int prev = 0;
                for (Py_ssize_t i = 0; i < nbytes; i++) {
                    int cur;
                    if (s[i] < 0x80)
                        cur = m[s[i]];
                    else if (s[i] >= 0xC0)
                        cur = in_ranges(op->ranges, op->n_ranges, decode_at(s, nbytes, i));
                    else
                        continue; /* continuation byte: same code point */
                    c += cur && !prev;
                    prev = cur;
                }
            }
            *out = (double)c;
            break;
        }
        case OP_LITERAL:
            *out = (double)cnt[k];
            break;
        case OP_CONTAINS:
            *out = cnt[k] ? 1.0 : 0.0;
            break;
        case OP_TOKENS:
            break; /* filled by the token pass */
        case OP_STATIC: {
            /* (float(s) * scale) / n, the reference's order; exact integer sums before it */
            const int64_t n = cnt[k];
            int64_t *acc = sums + op->sum_off;
            static_flush(op, acc);
            for (Py_ssize_t j = 0; j < op->n_out; j++)
                out[j] = n ? ((double)(acc[j] - 128 * n) * op->scale[j]) / (double)n : 0.0;
            break;
        }
        case OP_RATIO: {
            double num = vals[op->a], den = vals[op->b];
            if (isnan(num) || isnan(den))
                *out = std_nan();
            else if (den == 0.0)
                *out = 0.0;
            else
                *out = num / den;
            break;
        }
        case OP_LOG1P: {
            /* math.log1p: x == 0 returns x (keeps -0.0), else libm log1p; a domain error raises */
            double x = vals[op->a];
            if (x == 0.0)
                *out = x;
            else {
                double r = log1p(x);
                if ((isnan(r) && !isnan(x)) || (isinf(r) && isfinite(x))) {
                    if (block != small)
                        PyMem_Free(block);
                    PyErr_SetString(PyExc_ValueError, "math domain error");
                    return NULL;
                }
                *out = r;
            }
            break;
        }
        }
    }
    PyObject *list = PyList_New(n_out);
    if (list) {
        for (Py_ssize_t i = 0; i < n_out; i++) {
            PyObject *f = new_float(vals[i]);
            if (!f) {
                Py_CLEAR(list);
                break;
            }
            PyList_SET_ITEM(list, i, f);
        }
    }
    if (block != small)
        PyMem_Free(block);
    return list;
}

/* extract(query): like FeatureSpec.extract for a fitted spec (the caller checks fitting). */
static PyObject *
plan_extract(PlanObject *p, PyObject *query)
{
    PyObject *text = NULL; /* a new reference when we had to convert or cut */
    PyObject *utf8 = NULL;
    PyObject *t = query;
    if (!PyUnicode_Check(t)) {
        text = PyObject_CallOneArg(p->as_text, query);
        if (!text)
            return NULL;
        if (text == Py_None) {
            Py_DECREF(text);
            return nan_list(p->n_out);
        }
        if (!PyUnicode_Check(text)) {
            Py_DECREF(text);
            PyErr_SetString(PyExc_TypeError, "as_text returned a non-str");
            return NULL;
        }
        t = text;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(t) < 0)
        goto fail;
#endif
    if (PyUnicode_GET_LENGTH(t) > p->max_chars) {
        PyObject *cut = PyUnicode_Substring(t, 0, p->max_chars);
        if (!cut)
            goto fail;
        Py_XDECREF(text);
        text = cut;
        t = cut;
    }
    const uint8_t *s;
    Py_ssize_t nbytes, nchars = PyUnicode_GET_LENGTH(t);
    if (PyUnicode_IS_ASCII(t)) {
        s = (const uint8_t *)PyUnicode_DATA(t);
        nbytes = nchars;
    }
    else {
        /* a temporary UTF-8 copy (PyUnicode_AsUTF8AndSize would keep one alive inside the str) */
        utf8 = PyUnicode_AsUTF8String(t);
        if (!utf8) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
                goto fail;
            /* lone surrogates: as_text replaces them with U+FFFD, then once more from the top */
            PyErr_Clear();
            PyObject *fixed = PyObject_CallOneArg(p->as_text, t);
            if (!fixed)
                goto fail;
            if (!PyUnicode_Check(fixed)) {
                Py_DECREF(fixed);
                PyErr_SetString(PyExc_TypeError, "as_text returned a non-str");
                goto fail;
            }
            PyObject *again = PyUnicode_GET_LENGTH(fixed) == nchars
                                  ? PyUnicode_AsUTF8String(fixed)
                                  : NULL;
            Py_DECREF(fixed);
            if (!again) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError, "as_text changed the length of the text");
                goto fail;
            }
            utf8 = again;
        }
        s = (const uint8_t *)PyBytes_AS_STRING(utf8);
        nbytes = PyBytes_GET_SIZE(utf8);
    }
    PyObject *res = plan_run(p, s, nbytes, nchars);
    Py_XDECREF(utf8);
    Py_XDECREF(text);
    return res;
fail:
    Py_XDECREF(utf8);
    Py_XDECREF(text);
    return NULL;
}

static PyObject *
plan_get_n_out(PlanObject *p, void *closure)
{
    return PyLong_FromSsize_t(p->n_out);
}

static PyObject *
plan_get_max_chars(PlanObject *p, void *closure)
{
    return PyLong_FromSsize_t(p->max_chars);
}

static PyMethodDef plan_methods[] = {
    {"extract", (PyCFunction)plan_extract, METH_O,
     "extract(query) -> list[float]: the feature vector of a str, bytes or None query."},
    {NULL},
};

static PyGetSetDef plan_getset[] = {
    {"n_out", (getter)plan_get_n_out, NULL, "number of outputs", NULL},
    {"max_chars", (getter)plan_get_max_chars, NULL, "code points kept of each query", NULL},
    {NULL},
};

static PyTypeObject PlanType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "router_runtime._speedups.FeaturePlan",
    .tp_basicsize = sizeof(PlanObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "FeaturePlan(ops, max_chars, as_text): a compiled feature spec (see router_runtime/compiled.py).",
    .tp_new = plan_new,
    .tp_dealloc = (destructor)plan_dealloc,
    .tp_traverse = (traverseproc)plan_traverse,
    .tp_clear = (inquiry)plan_clear,
    .tp_methods = plan_methods,
    .tp_getset = plan_getset,
};

/* ================================================================================================
 * Scorer and PackedBases
 */

typedef struct {
    PyObject_HEAD
    Py_ssize_t n_trees, n_leaves, n_q, q_need;
    int64_t *leaves;
    int32_t *offsets, *sizes, *qmask;
    int32_t *q_input;
    double *q_thr, *q_fill;
    int32_t *c_start, *c_tree, *c_w; /* per query split s: pairs c_start[s] .. c_start[s+1]-1 */
    double unit, scale, bias;
} ScorerObject;

typedef struct {
    PyObject_HEAD
    ScorerObject *owner;
    Py_ssize_t n_rows, n_trees;
    int32_t *idx; /* n_rows x n_trees leaf indices (tree offset + candidate part) */
} PackedObject;

static PyTypeObject ScorerType;
static PyTypeObject PackedType;

static void
scorer_dealloc(ScorerObject *sc)
{
    PyMem_Free(sc->leaves);
    PyMem_Free(sc->offsets);
    PyMem_Free(sc->sizes);
    PyMem_Free(sc->qmask);
    PyMem_Free(sc->q_input);
    PyMem_Free(sc->q_thr);
    PyMem_Free(sc->q_fill);
    PyMem_Free(sc->c_start);
    PyMem_Free(sc->c_tree);
    PyMem_Free(sc->c_w);
    Py_TYPE(sc)->tp_free((PyObject *)sc);
}

static PyObject *
scorer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"q_splits", "contrib", "sizes", "offsets", "leaves", "unit", "scale", "bias", NULL};
    PyObject *a_q, *a_contrib, *a_sizes, *a_offsets, *a_leaves;
    double unit, scale, bias;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOddd:Scorer", kwlist, &a_q, &a_contrib, &a_sizes,
                                     &a_offsets, &a_leaves, &unit, &scale, &bias))
        return NULL;
    PyObject *q = NULL, *contrib = NULL, *sizes = NULL, *offsets = NULL, *leaves = NULL;
    ScorerObject *sc = NULL;
    if (!(q = as_tuple(a_q, "q_splits")) || !(contrib = as_tuple(a_contrib, "contrib"))
        || !(sizes = as_tuple(a_sizes, "sizes")) || !(offsets = as_tuple(a_offsets, "offsets"))
        || !(leaves = as_tuple(a_leaves, "leaves")))
        goto fail;
    if (!isfinite(unit) || !isfinite(scale) || !isfinite(bias)) {
        PyErr_SetString(PyExc_ValueError, "unit, scale and bias must be finite");
        goto fail;
    }
    Py_ssize_t n_trees = PyTuple_GET_SIZE(sizes), n_leaves = PyTuple_GET_SIZE(leaves), n_q = PyTuple_GET_SIZE(q);
    if (PyTuple_GET_SIZE(offsets) != n_trees) {
        PyErr_SetString(PyExc_ValueError, "offsets and sizes must have one entry per tree");
        goto fail;
    }
    if (PyTuple_GET_SIZE(contrib) != n_q) {
        PyErr_SetString(PyExc_ValueError, "contrib must have one entry per query split");
        goto fail;
    }
    if (n_leaves > INT32_MAX || n_trees > INT32_MAX || n_q > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "ensemble too large");
        goto fail;
    }
    sc = (ScorerObject *)type->tp_alloc(type, 0);
    if (!sc)
        goto fail;
    sc->n_trees = n_trees;
    sc->n_leaves = n_leaves;
    sc->n_q = n_q;
    sc->unit = unit;
    sc->scale = scale;
    sc->bias = bias;
    sc->leaves = PyMem_Malloc((n_leaves ? (size_t)n_leaves : 1) * sizeof(int64_t));
    sc->offsets = PyMem_Malloc((n_trees ? (size_t)n_trees : 1) * sizeof(int32_t));
    sc->sizes = PyMem_Malloc((n_trees ? (size_t)n_trees : 1) * sizeof(int32_t));
    sc->qmask = PyMem_Calloc(n_trees ? (size_t)n_trees : 1, sizeof(int32_t));
    sc->q_input = PyMem_Malloc((n_q ? (size_t)n_q : 1) * sizeof(int32_t));
    sc->q_thr = PyMem_Malloc((n_q ? (size_t)n_q : 1) * sizeof(double));
    sc->q_fill = PyMem_Malloc((n_q ? (size_t)n_q : 1) * sizeof(double));
    sc->c_start = PyMem_Malloc(((size_t)n_q + 1) * sizeof(int32_t));
    if (!sc->leaves || !sc->offsets || !sc->sizes || !sc->qmask || !sc->q_input || !sc->q_thr || !sc->q_fill
        || !sc->c_start) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n_leaves; i++) {
        long long v;
        if (get_int(PyTuple_GET_ITEM(leaves, i), INT64_MIN, INT64_MAX, "leaf", &v) < 0)
            goto fail;
        sc->leaves[i] = (int64_t)v;
    }
    /* trees: offsets are the running sum of sizes (powers of two up to 2^16), covering all leaves */
    long long off = 0;
    uint64_t bound = 0; /* sum over trees of the largest |leaf|: no sum of one leaf per tree exceeds it */
    for (Py_ssize_t t = 0; t < n_trees; t++) {
        long long size, o;
        if (get_int(PyTuple_GET_ITEM(sizes, t), 1, 1 << 16, "tree size", &size) < 0
            || get_int(PyTuple_GET_ITEM(offsets, t), 0, INT32_MAX, "tree offset", &o) < 0)
            goto fail;
        if ((size & (size - 1)) != 0) {
            PyErr_SetString(PyExc_ValueError, "tree sizes must be powers of two");
            goto fail;
        }
        if (o != off || off + size > n_leaves) {
            PyErr_SetString(PyExc_ValueError, "tree offsets must be the running sum of tree sizes within leaves");
            goto fail;
        }
        uint64_t mx = 0;
        for (long long i = o; i < o + size; i++) {
            int64_t v = sc->leaves[i];
            uint64_t a = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
            if (a > mx)
                mx = a;
        }
        if (mx > (uint64_t)INT64_MAX - bound) {
            PyErr_SetString(PyExc_ValueError, "leaf values too large for exact 64-bit summation");
            goto fail;
        }
        bound += mx;
        sc->offsets[t] = (int32_t)o;
        sc->sizes[t] = (int32_t)size;
        off += size;
    }
    if (off != n_leaves) {
        PyErr_SetString(PyExc_ValueError, "tree sizes must add up to the number of leaves");
        goto fail;
    }
    /* query splits and their (tree, weight) contributions */
    Py_ssize_t n_pairs = 0;
    long long q_need = 0;
    for (Py_ssize_t s = 0; s < n_q; s++) {
        PyObject *split = PyTuple_GET_ITEM(q, s);
        long long input;
        if (!PyTuple_Check(split) || PyTuple_GET_SIZE(split) != 3) {
            PyErr_SetString(PyExc_TypeError, "each query split must be a tuple (input, threshold, nan_fill)");
            goto fail;
        }
        if (get_int(PyTuple_GET_ITEM(split, 0), 0, MAX_INDEX, "query split input", &input) < 0
            || get_double(PyTuple_GET_ITEM(split, 1), "query split threshold", &sc->q_thr[s]) < 0
            || get_double(PyTuple_GET_ITEM(split, 2), "query split nan_fill", &sc->q_fill[s]) < 0)
            goto fail;
        sc->q_input[s] = (int32_t)input;
        if (input + 1 > q_need)
            q_need = input + 1;
        PyObject *pairs = PyTuple_GET_ITEM(contrib, s);
        if (!PyTuple_Check(pairs)) {
            PyErr_SetString(PyExc_TypeError, "each contrib entry must be a tuple of (tree, weight) pairs");
            goto fail;
        }
        if (PyTuple_GET_SIZE(pairs) > INT32_MAX - n_pairs) {
            PyErr_SetString(PyExc_ValueError, "too many contributions");
            goto fail;
        }
        n_pairs += PyTuple_GET_SIZE(pairs);
    }
    sc->q_need = (Py_ssize_t)q_need;
    sc->c_tree = PyMem_Malloc((n_pairs ? (size_t)n_pairs : 1) * sizeof(int32_t));
    sc->c_w = PyMem_Malloc((n_pairs ? (size_t)n_pairs : 1) * sizeof(int32_t));
    if (!sc->c_tree || !sc->c_w) {
        PyErr_NoMemory();
        goto fail;
    }
    Py_ssize_t k = 0;
    for (Py_ssize_t s = 0; s < n_q; s++) {
        PyObject *pairs = PyTuple_GET_ITEM(contrib, s);
        sc->c_start[s] = (int32_t)k;
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(pairs); j++) {
            PyObject *pair = PyTuple_GET_ITEM(pairs, j);
            long long tree, w;
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
                PyErr_SetString(PyExc_TypeError, "each contribution must be a (tree, weight) tuple");
                goto fail;
            }
            if (get_int(PyTuple_GET_ITEM(pair, 0), 0, (long long)n_trees - 1, "contribution tree", &tree) < 0
                || get_int(PyTuple_GET_ITEM(pair, 1), 1, 1 << 15, "contribution weight", &w) < 0)
                goto fail;
            /* a power of two below the tree's size, each position at most once: qidx stays in the tree */
            if ((w & (w - 1)) != 0 || w >= sc->sizes[tree] || (sc->qmask[tree] & w)) {
                PyErr_SetString(PyExc_ValueError,
                                "contribution weights must be distinct powers of two below the tree size");
                goto fail;
            }
            sc->qmask[tree] |= (int32_t)w;
            sc->c_tree[k] = (int32_t)tree;
            sc->c_w[k] = (int32_t)w;
            k++;
        }
    }
    sc->c_start[n_q] = (int32_t)k;
    Py_DECREF(q);
    Py_DECREF(contrib);
    Py_DECREF(sizes);
    Py_DECREF(offsets);
    Py_DECREF(leaves);
    return (PyObject *)sc;
fail:
    Py_XDECREF(q);
    Py_XDECREF(contrib);
    Py_XDECREF(sizes);
    Py_XDECREF(offsets);
    Py_XDECREF(leaves);
    Py_XDECREF(sc);
    return NULL;
}

/* Item i of a list or tuple, as a new reference; a list may have shrunk meanwhile (Python code runs
 * in __float__ / __index__), so the bound is checked at every access. */
static PyObject *
seq_item(PyObject *seq, Py_ssize_t i)
{
    if (i >= PySequence_Fast_GET_SIZE(seq)) {
        PyErr_SetString(PyExc_ValueError, "sequence changed size during scoring");
        return NULL;
    }
    PyObject *o = PySequence_Fast_GET_ITEM(seq, i);
    Py_INCREF(o);
    return o;
}

/* Leaf index of each tree for one candidate base given as a sequence of ints (checked: in the tree,
 * no query bit set), into idx[n_trees]. */
static int
load_base(ScorerObject *sc, PyObject *base, int32_t *idx)
{
    PyObject *seq = PySequence_Fast(base, "each candidate base must be a sequence of ints");
    if (!seq)
        return -1;
    if (PySequence_Fast_GET_SIZE(seq) != sc->n_trees) {
        PyErr_Format(PyExc_ValueError, "a candidate base must have %zd entries (one per tree), got %zd",
                     sc->n_trees, PySequence_Fast_GET_SIZE(seq));
        Py_DECREF(seq);
        return -1;
    }
    for (Py_ssize_t t = 0; t < sc->n_trees; t++) {
        PyObject *o = seq_item(seq, t);
        if (!o) {
            Py_DECREF(seq);
            return -1;
        }
        long long v;
        int err;
        if (PyLong_CheckExact(o) || (PyLong_Check(o) && !PyBool_Check(o))) {
            int overflow = 0;
            v = PyLong_AsLongLongAndOverflow(o, &overflow);
            err = (v == -1 && PyErr_Occurred()) ? -1 : 0;
            if (!err && overflow)
                v = -1; /* out of range below */
        }
        else {
            /* numpy integers and other __index__ types */
            PyObject *i = PyNumber_Index(o);
            err = i ? 0 : -1;
            if (i) {
                int overflow = 0;
                v = PyLong_AsLongLongAndOverflow(i, &overflow);
                if (v == -1 && PyErr_Occurred())
                    err = -1;
                else if (overflow)
                    v = -1;
                Py_DECREF(i);
            }
        }
        Py_DECREF(o);
        if (err) {
            Py_DECREF(seq);
            return -1;
        }
        long long rel = v - sc->offsets[t];
        if (rel < 0 || rel >= sc->sizes[t] || (rel & sc->qmask[t])) {
            PyErr_Format(PyExc_ValueError, "candidate base entry %zd is not a leaf index of tree %zd", t, t);
            Py_DECREF(seq);
            return -1;
        }
        idx[t] = (int32_t)v;
    }
    Py_DECREF(seq);
    return 0;
}

static PyObject *
packed_from(ScorerObject *sc, PyObject *bases)
{
    PyObject *seq = PySequence_Fast(bases, "bases must be a sequence of candidate bases");
    if (!seq)
        return NULL;
    Py_ssize_t n_rows = PySequence_Fast_GET_SIZE(seq);
    if (sc->n_trees && n_rows > (PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(int32_t)) / sc->n_trees) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    PackedObject *pk = PyObject_New(PackedObject, &PackedType);
    if (!pk) {
        Py_DECREF(seq);
        return NULL;
    }
    Py_INCREF(sc);
    pk->owner = sc;
    pk->n_rows = n_rows;
    pk->n_trees = sc->n_trees;
    size_t cells = (size_t)n_rows * (size_t)sc->n_trees;
    pk->idx = PyMem_Malloc(cells ? cells * sizeof(int32_t) : 1);
    if (!pk->idx) {
        Py_DECREF(seq);
        Py_DECREF(pk);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t r = 0; r < n_rows; r++) {
        PyObject *row = seq_item(seq, r);
        if (!row || load_base(sc, row, pk->idx + (size_t)r * sc->n_trees) < 0) {
            Py_XDECREF(row);
            Py_DECREF(seq);
            Py_DECREF(pk);
            return NULL;
        }
        Py_DECREF(row);
    }
    Py_DECREF(seq);
    return (PyObject *)pk;
}

static PyObject *
scorer_stack(ScorerObject *sc, PyObject *bases)
{
    return packed_from(sc, bases);
}

static int
load_query(ScorerObject *sc, PyObject *q, double *qv)
{
    PyObject *seq = PySequence_Fast(q, "q must be a sequence of floats");
    if (!seq)
        return -1;
    if (PySequence_Fast_GET_SIZE(seq) < sc->q_need) {
        PyErr_Format(PyExc_ValueError, "q has %zd values, the ensemble reads %zd", PySequence_Fast_GET_SIZE(seq),
                     sc->q_need);
        Py_DECREF(seq);
        return -1;
    }
    for (Py_ssize_t i = 0; i < sc->q_need; i++) {
        if (i >= PySequence_Fast_GET_SIZE(seq)) {
            PyErr_SetString(PyExc_ValueError, "q changed size during scoring");
            Py_DECREF(seq);
            return -1;
        }
        PyObject *o = PySequence_Fast_GET_ITEM(seq, i);
        if (PyFloat_CheckExact(o)) {
            qv[i] = PyFloat_AS_DOUBLE(o);
            continue;
        }
        Py_INCREF(o);
        double v = PyFloat_AsDouble(o);
        Py_DECREF(o);
        if (v == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        qv[i] = v;
    }
    Py_DECREF(seq);
    return 0;
}

static PyObject *
scorer_score(ScorerObject *sc, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "score(q, bases) takes exactly 2 arguments");
        return NULL;
    }
    PyObject *q = args[0], *bases = args[1];
    PackedObject *pk = NULL;
    if (Py_IS_TYPE(bases, &PackedType)) {
        pk = (PackedObject *)bases;
        if (pk->owner != sc) {
            PyErr_SetString(PyExc_ValueError, "these packed bases belong to another scorer");
            return NULL;
        }
        Py_INCREF(pk);
    }
    else {
        pk = (PackedObject *)packed_from(sc, bases);
        if (!pk)
            return NULL;
    }
    double qv_small[256];
    int32_t qi_small[1024];
    double *qv = sc->q_need <= 256 ? qv_small : PyMem_Malloc((size_t)sc->q_need * sizeof(double));
    int32_t *qidx = sc->n_trees <= 1024 ? qi_small : PyMem_Malloc((size_t)sc->n_trees * sizeof(int32_t));
    PyObject *out = NULL;
    if (!qv || !qidx) {
        PyErr_NoMemory();
        goto done;
    }
    if (load_query(sc, q, qv) < 0)
        goto done;
    memset(qidx, 0, (size_t)sc->n_trees * sizeof(int32_t));
    for (Py_ssize_t s = 0; s < sc->n_q; s++) {
        double v = qv[sc->q_input[s]];
        if (v != v)
            v = sc->q_fill[s];
        if (v > sc->q_thr[s]) {
            for (int32_t k = sc->c_start[s]; k < sc->c_start[s + 1]; k++)
                qidx[sc->c_tree[k]] += sc->c_w[k];
        }
    }
    out = PyList_New(pk->n_rows);
    if (!out)
        goto done;
    const int64_t *leaves = sc->leaves;
    const uint64_t n_leaves = (uint64_t)sc->n_leaves;
    for (Py_ssize_t r = 0; r < pk->n_rows; r++) {
        const int32_t *idx = pk->idx + (size_t)r * sc->n_trees;
        int64_t total = 0;
        for (Py_ssize_t t = 0; t < sc->n_trees; t++) {
            uint64_t i = (uint64_t)((int64_t)idx[t] + qidx[t]);
            if (i >= n_leaves) { /* cannot happen: bases and weights were validated; never read out of bounds */
                PyErr_SetString(PyExc_SystemError, "leaf index out of range");
                Py_CLEAR(out);
                goto done;
            }
            total += leaves[i];
        }
        /* float(total) * unit * scale + bias, rounded step by step like Python (no FMA) */
        volatile double x = (double)total * sc->unit;
        x = x * sc->scale;
        x = x + sc->bias;
        PyObject *f = PyFloat_FromDouble(x);
        if (!f) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, r, f);
    }
done:
    if (qv && qv != qv_small)
        PyMem_Free(qv);
    if (qidx && qidx != qi_small)
        PyMem_Free(qidx);
    Py_DECREF(pk);
    return out;
}

static PyObject *
scorer_get(ScorerObject *sc, void *closure)
{
    switch ((int)(intptr_t)closure) {
    case 0:
        return PyLong_FromSsize_t(sc->n_trees);
    case 1:
        return PyLong_FromSsize_t(sc->q_need);
    default:
        return PyLong_FromSsize_t(sc->n_q);
    }
}

static PyMethodDef scorer_methods[] = {
    {"score", (PyCFunction)(void (*)(void))scorer_score, METH_FASTCALL,
     "score(q, bases) -> list[float]: raw predictions for one query vector and the candidates' bases\n"
     "(a PackedBases from stack(), or a sequence of candidate_base tuples)."},
    {"stack", (PyCFunction)scorer_stack, METH_O,
     "stack(bases) -> PackedBases: candidate bases validated and packed once, for score()."},
    {NULL},
};

static PyGetSetDef scorer_getset[] = {
    {"n_trees", (getter)scorer_get, NULL, "number of trees", (void *)0},
    {"q_need", (getter)scorer_get, NULL, "minimum length of a query vector", (void *)1},
    {"n_query_splits", (getter)scorer_get, NULL, "number of query splits", (void *)2},
    {NULL},
};

static PyTypeObject ScorerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "router_runtime._speedups.Scorer",
    .tp_basicsize = sizeof(ScorerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Scorer(q_splits, contrib, sizes, offsets, leaves, unit, scale, bias): a compiled CandidateScorer.",
    .tp_new = scorer_new,
    .tp_dealloc = (destructor)scorer_dealloc,
    .tp_methods = scorer_methods,
    .tp_getset = scorer_getset,
};

static void
packed_dealloc(PackedObject *pk)
{
    PyMem_Free(pk->idx);
    Py_XDECREF(pk->owner);
    PyObject_Free(pk);
}

static Py_ssize_t
packed_len(PackedObject *pk)
{
    return pk->n_rows;
}

static PyObject *
packed_item(PackedObject *pk, Py_ssize_t r)
{
    if (r < 0 || r >= pk->n_rows) {
        PyErr_SetString(PyExc_IndexError, "PackedBases index out of range");
        return NULL;
    }
    PyObject *t = PyTuple_New(pk->n_trees);
    if (!t)
        return NULL;
    for (Py_ssize_t i = 0; i < pk->n_trees; i++) {
        PyObject *v = PyLong_FromLong(pk->idx[(size_t)r * pk->n_trees + i]);
        if (!v) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

static PySequenceMethods packed_as_sequence = {
    .sq_length = (lenfunc)packed_len,
    .sq_item = (ssizeargfunc)packed_item,
};

static PyTypeObject PackedType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "router_runtime._speedups.PackedBases",
    .tp_basicsize = sizeof(PackedObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Candidate bases validated and packed by Scorer.stack (a read-only sequence of tuples).",
    .tp_dealloc = (destructor)packed_dealloc,
    .tp_as_sequence = &packed_as_sequence,
};

/* ================================================================================================
 * module
 */

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "router_runtime._speedups",
    .m_doc = "Optional compiled engine of router_runtime (features and tree scoring); see compiled.py.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    init_tables();
    if (PyType_Ready(&PlanType) < 0 || PyType_Ready(&ScorerType) < 0 || PyType_Ready(&PackedType) < 0)
        return NULL;
    if (!float_zero && !(float_zero = PyFloat_FromDouble(0.0)))
        return NULL;
    if (!float_one && !(float_one = PyFloat_FromDouble(1.0)))
        return NULL;
    PyObject *m = PyModule_Create(&speedups_module);
    if (!m)
        return NULL;
    if (PyModule_AddIntConstant(m, "FORMAT_VERSION", FORMAT_VERSION) < 0
        || PyModule_AddStringConstant(m, "SOURCE_SHA256", ZETA_SOURCE_SHA256) < 0
        || PyModule_AddObjectRef(m, "FeaturePlan", (PyObject *)&PlanType) < 0
        || PyModule_AddObjectRef(m, "Scorer", (PyObject *)&ScorerType) < 0
        || PyModule_AddObjectRef(m, "PackedBases", (PyObject *)&PackedType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
