/*
 * Pydantic models straight from JSON bytes (owned by the JSON codec): _core.ModelDecoder.
 *
 * pydantic-core's validate_json spends most of its time per field and per instance on
 * machinery a plain model does not use, so a request body with a list of 100 small models
 * cost ~85 us. A ModelDecoder is built once per body model from a plan made by
 * data_bridge._model_decode (which reads the model's core schema and refuses anything it
 * cannot reproduce exactly: validators, aliases, strict mode, string transformations,
 * extra="allow"/"forbid", unions other than Optional, ...). Calling it with the body bytes
 * parses the JSON with the decoder's own string and number rules (decode.c) and builds the
 * instances as pydantic-core does: the object made by the class's tp_alloc, __dict__ in
 * field order, __pydantic_fields_set__ the fields present in the input, no extra, no
 * private attributes.
 *
 * Only input whose outcome is certain is taken here: a JSON value of exactly the declared
 * kind (an int token for int, a number for float, a string for str, true/false for bool),
 * constraints met, every required field present. Anything else (invalid JSON, a wrong
 * type that pydantic's lax mode might coerce, a value out of range, a missing field, a
 * NaN, an int beyond 18 digits, an escaped key) abandons the attempt and the call is
 * handed to the fallback (the model's model_validate_json), which then accepts with
 * coercion or raises pydantic's own ValidationError. So results and errors are always
 * pydantic's; the fast path only skips its cost. tests/py/test_json_model_decode.py holds
 * the differential test against pydantic.
 */
#include <math.h>
#include <string.h>

#include <patchlevel.h>

/* CPython 3.11 only (as decode.c's build_dict): an instance's __dict__ is made as a copy of
 * a finished hash table of its field names (dmodel_t.keys), its values then stored in
 * place, instead of one PyDict_SetItem (hash probe, insert) per field. The internal
 * header is the interpreter's own description of the layout; other versions, and debug
 * builds that count references, use PyDict_SetItem. */
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 && !defined(Py_LIMITED_API)
#define Py_BUILD_CORE_MODULE 1
#define MODEL_DICT_TEMPLATE  1
#endif

#include "json/json_internal.h"

#include <structmember.h>

#if defined(MODEL_DICT_TEMPLATE)
#include <internal/pycore_dict.h>
#if defined(Py_REF_DEBUG)
#undef MODEL_DICT_TEMPLATE
#endif
#endif

enum { DK_STR, DK_INT, DK_FLOAT, DK_BOOL, DK_ANY, DK_LIST, DK_DICT, DK_MODEL, DK_COUNT };

static const char *const kind_names[DK_COUNT] = {"str", "int",  "float", "bool",
                                                 "any", "list", "dict",  "model"};

/* What a value must be: a kind, Optional or not, and the constraints pydantic checks. */
typedef struct dspec dspec_t;
struct dspec {
    unsigned char kind;
    unsigned char nullable;
    unsigned char has_lo, lo_excl, has_hi, hi_excl, has_mul;
    long long ilo, ihi, imul;    /* DK_INT bounds (gt/ge, lt/le) and multiple_of */
    double flo, fhi;             /* DK_FLOAT bounds */
    Py_ssize_t min_len, max_len; /* str (code points), list and dict (items); -1: none */
    dspec_t *item;               /* DK_LIST items, DK_DICT values: owned */
    Py_ssize_t model;            /* DK_MODEL: index into the decoder's models */
};

typedef struct {
    PyObject *name;   /* the field name: __dict__ key (owned, interned) */
    const char *utf8; /* its UTF-8 form, owned by name */
    Py_ssize_t len;
    dspec_t spec;
    PyObject *def; /* default when absent (owned); NULL: required */
    /* DEF_VALUE: def itself; DEF_COPY: a deep copy (unhashable defaults, as pydantic-core
     * copies them); DEF_FACTORY: def() (a default_factory). */
    int def_kind;
} dfield_t;

enum { DEF_VALUE, DEF_COPY, DEF_FACTORY, DEF_OMIT };

/* What a planned class is made into: a pydantic model (its __dict__ and pydantic's slots),
 * a dataclass (its __dict__), or a TypedDict (the dict itself). */
enum { FLAVOR_MODEL, FLAVOR_DATACLASS, FLAVOR_TYPED_DICT };

typedef struct {
    PyTypeObject *cls;      /* owned */
    int flavor;             /* FLAVOR_MODEL, FLAVOR_DATACLASS or FLAVOR_TYPED_DICT */
    int plain_new;          /* tp_new is object's and the class is not abstract */
    Py_ssize_t off_fset;    /* offsets of the slots __pydantic_fields_set__, */
    Py_ssize_t off_extra;   /* __pydantic_extra__ */
    Py_ssize_t off_private; /* and __pydantic_private__ in the instance */
    PyObject *all_set;      /* set of every field name (owned): copied when all are present */
    Py_ssize_t nfields;
    dfield_t *fields; /* owned */
    /* The keys table of a dict of every field in order (3.11): the entries' keys are the
     * fields' names (borrowed), their values NULL. PyObject_Malloc'd; NULL: none. */
    void *keys;
    size_t keys_size;
} dmodel_t;

typedef struct {
    PyObject_HEAD
    PyObject *fallback; /* called with the body when the fast path cannot decide */
    PyObject *deepcopy; /* copy.deepcopy, for unhashable defaults */
    Py_ssize_t nmodels;
    dmodel_t *models;
    dspec_t root;          /* what the whole document must be */
    Py_ssize_t fast, slow; /* calls answered here / by the fallback (for tests) */
} ModelDecoder;

/* One decoding: the decoder state plus the plan. depth bounds recursion as the plain
 * decoder does (the fallback then reports the nesting). */
typedef struct {
    json_decoder_t d;
    ModelDecoder *md;
    int depth;
} mstate_t;

#define FIELDS_INLINE 32

static PyObject *dec_spec(mstate_t *st, const dspec_t *s);

/* ---- values ----------------------------------------------------------------------- */

/* The number token at p: sets *is_int and returns the count of its digits (sign, point
 * and exponent excluded), or -1 when p does not start a number. */
static Py_ssize_t number_token(const unsigned char *p, const unsigned char *end, int *is_int)
{
    Py_ssize_t digits = 0;
    *is_int = 1;
    if (p < end && *p == '-')
        p++;
    if (p >= end || *p < '0' || *p > '9')
        return -1;
    while (p < end && *p >= '0' && *p <= '9') {
        p++;
        digits++;
    }
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E'))
        *is_int = 0;
    return digits;
}

static int len_ok(const dspec_t *s, Py_ssize_t n)
{
    return (s->min_len < 0 || n >= s->min_len) && (s->max_len < 0 || n <= s->max_len);
}

static PyObject *dec_int(mstate_t *st, const dspec_t *s)
{
    int is_int;
    Py_ssize_t digits = number_token(st->d.p, st->d.end, &is_int);
    /* A float token (5.0 is an int for pydantic's lax mode) and very long integers are
     * left to pydantic. */
    if (digits < 0 || !is_int || digits > 18)
        return NULL;
    PyObject *v = json_parse_number(&st->d.p, st->d.start, st->d.end);
    if (v == NULL || !(s->has_lo | s->has_hi | s->has_mul))
        return v;
    long long x = PyLong_AsLongLong(v); /* at most 18 digits: always fits */
    if ((s->has_lo && (s->lo_excl ? x <= s->ilo : x < s->ilo)) ||
        (s->has_hi && (s->hi_excl ? x >= s->ihi : x > s->ihi)) ||
        (s->has_mul && x % s->imul != 0)) {
        Py_DECREF(v);
        return NULL;
    }
    return v;
}

static PyObject *dec_float(mstate_t *st, const dspec_t *s)
{
    int is_int;
    Py_ssize_t digits = number_token(st->d.p, st->d.end, &is_int);
    /* An integer token becomes float(int) in pydantic; up to 15 digits that is exact. */
    if (digits < 0 || (is_int && digits > 15))
        return NULL;
    PyObject *v = json_parse_number(&st->d.p, st->d.start, st->d.end);
    if (v == NULL)
        return NULL;
    double x;
    if (PyLong_CheckExact(v)) {
        x = PyLong_AsDouble(v);
        Py_DECREF(v);
        v = PyFloat_FromDouble(x);
        if (v == NULL)
            return NULL;
    } else {
        x = PyFloat_AS_DOUBLE(v);
    }
    /* Infinity (1e400) is pydantic's to judge (allow_inf_nan). */
    if (!isfinite(x) || (s->has_lo && (s->lo_excl ? x <= s->flo : x < s->flo)) ||
        (s->has_hi && (s->hi_excl ? x >= s->fhi : x > s->fhi))) {
        Py_DECREF(v);
        return NULL;
    }
    return v;
}

static PyObject *dec_literal(mstate_t *st, const char *word, size_t n, PyObject *value)
{
    if ((size_t)(st->d.end - st->d.p) < n || memcmp(st->d.p, word, n) != 0)
        return NULL;
    st->d.p += n;
    return Py_NewRef(value);
}

static int enter(mstate_t *st)
{
    return ++st->depth <= JSON_MAX_DEPTH ? 0 : -1;
}

/* After an item or member: ',' (another follows; 1) or the closing byte (0); else -1. */
static int next_member(mstate_t *st, unsigned char close)
{
    json_dec_skip_ws(&st->d);
    if (st->d.p >= st->d.end)
        return -1;
    if (*st->d.p == ',') {
        st->d.p++;
        json_dec_skip_ws(&st->d);
        return 1;
    }
    if (*st->d.p == close) {
        st->d.p++;
        return 0;
    }
    return -1;
}

static PyObject *dec_list(mstate_t *st, const dspec_t *s)
{
    if (*st->d.p != '[' || enter(st) < 0)
        return NULL;
    st->d.p++;
    json_dec_skip_ws(&st->d);
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    if (st->d.p < st->d.end && *st->d.p == ']') {
        st->d.p++;
    } else {
        for (;;) {
            PyObject *v = dec_spec(st, s->item);
            if (v == NULL)
                goto fail;
            int r = PyList_Append(list, v);
            Py_DECREF(v);
            if (r < 0 || (r = next_member(st, ']')) < 0)
                goto fail;
            if (r == 0)
                break;
        }
    }
    st->depth--;
    if (!len_ok(s, PyList_GET_SIZE(list)))
        goto fail;
    return list;
fail:
    Py_DECREF(list);
    return NULL;
}

/* Parses '"key":' at d.p into a new str (any key; the object is a dict[str, ...]). */
static PyObject *dec_key(mstate_t *st)
{
    if (st->d.p >= st->d.end || *st->d.p != '"')
        return NULL;
    PyObject *key = json_dec_string(&st->d, 1);
    if (key == NULL)
        return NULL;
    json_dec_skip_ws(&st->d);
    if (st->d.p >= st->d.end || *st->d.p != ':') {
        Py_DECREF(key);
        return NULL;
    }
    st->d.p++;
    json_dec_skip_ws(&st->d);
    return key;
}

static PyObject *dec_dict(mstate_t *st, const dspec_t *s)
{
    if (*st->d.p != '{' || enter(st) < 0)
        return NULL;
    st->d.p++;
    json_dec_skip_ws(&st->d);
    PyObject *dict = PyDict_New();
    if (dict == NULL)
        return NULL;
    if (st->d.p < st->d.end && *st->d.p == '}') {
        st->d.p++;
    } else {
        for (;;) {
            PyObject *key = dec_key(st);
            if (key == NULL)
                goto fail;
            PyObject *v = dec_spec(st, s->item);
            int r = v == NULL ? -1 : PyDict_SetItem(dict, key, v);
            Py_DECREF(key);
            Py_XDECREF(v);
            if (r < 0 || (r = next_member(st, '}')) < 0)
                goto fail;
            if (r == 0)
                break;
        }
    }
    st->depth--;
    if (!len_ok(s, PyDict_GET_SIZE(dict)))
        goto fail;
    return dict;
fail:
    Py_DECREF(dict);
    return NULL;
}

/* ---- models ----------------------------------------------------------------------- */

/* The field named by the key at d.p (an opening quote): its index, -1 for a key that is no
 * field (then skipped, validated), -2 to give up. The bytes of a key without escapes are
 * compared with the field names directly; the field expected next in definition order is
 * tried first. */
static Py_ssize_t match_key(mstate_t *st, const dmodel_t *m, Py_ssize_t expect)
{
    const unsigned char *s = st->d.p + 1, *p, *end = st->d.end;
    Py_ssize_t found = -1;
    /* Field names are identifiers (no quote, backslash or control byte), so the key's
     * bytes being the name followed by '"' means the key is the name: no scan needed. */
    if (expect < m->nfields) {
        const dfield_t *f = &m->fields[expect];
        if (end - s > f->len && s[f->len] == '"' && memcmp(f->utf8, s, (size_t)f->len) == 0) {
            found = expect;
            p = s + f->len;
            goto matched;
        }
    }
    p = s;
    while (p < end && *p != '"' && *p != '\\' && *p >= 0x20)
        p++;
    if (p >= end || *p != '"')
        return -2; /* escapes or control bytes in a key: pydantic's to judge */
    Py_ssize_t n = p - s;
    for (Py_ssize_t i = 0; i < m->nfields; i++) {
        if (m->fields[i].len == n && memcmp(m->fields[i].utf8, s, (size_t)n) == 0) {
            found = i;
            break;
        }
    }
matched:
    if (found >= 0) {
        st->d.p = p + 1;
    } else {
        /* An ignored key must still be valid UTF-8: decode it to check. */
        PyObject *key = json_dec_string(&st->d, 1);
        if (key == NULL)
            return -2;
        Py_DECREF(key);
    }
    json_dec_skip_ws(&st->d);
    if (st->d.p >= st->d.end || *st->d.p != ':')
        return -2;
    st->d.p++;
    json_dec_skip_ws(&st->d);
    return found;
}

/* Makes the instance as pydantic-core does: the class's tp_new with no arguments (never
 * __init__), then __dict__ and, for a model, its slots set directly.
 *
 * When tp_new is object's own (every plain model and dataclass), the object is made by
 * tp_alloc alone: object.__new__ would also give an instance of a managed-dict class
 * (CPython 3.11+) an empty inline-values array, which setting __dict__ then turns into a
 * dict only to throw both away, three allocations per instance for nothing. tp_alloc
 * leaves the dict and values pointers NULL, so PyObject_GenericSetDict just stores ours.
 * object.__new__'s other work does not apply: no arguments to check, and an abstract class
 * keeps the tp_new path, which refuses it. */
static PyObject *make_instance(const dmodel_t *m, PyObject *dict, PyObject *fset)
{
    static PyObject *no_args;
    PyObject *obj;
    if (m->plain_new) {
        obj = m->cls->tp_alloc(m->cls, 0);
    } else {
        if (no_args == NULL && (no_args = PyTuple_New(0)) == NULL)
            return NULL;
        if (m->cls->tp_new == NULL) {
            PyErr_SetString(PyExc_TypeError, "class cannot be instantiated");
            return NULL;
        }
        obj = m->cls->tp_new(m->cls, no_args, NULL);
    }
    if (obj == NULL)
        return NULL;
    if (PyObject_GenericSetDict(obj, dict, NULL) < 0) {
        Py_DECREF(obj);
        return NULL;
    }
    if (m->flavor == FLAVOR_DATACLASS)
        return obj;
    char *base = (char *)obj;
    *(PyObject **)(base + m->off_fset) = Py_NewRef(fset);
    *(PyObject **)(base + m->off_extra) = Py_NewRef(Py_None);
    *(PyObject **)(base + m->off_private) = Py_NewRef(Py_None);
    return obj;
}

#if defined(MODEL_DICT_TEMPLATE)
/* The dict of the model's nf field values (new references, every one set), made from the
 * model's keys table: its index and keys copied as they are, the values stored in the
 * entries. The result is the table PyDict_SetItem in field order would have built (the
 * template was built so), with the same size, so CPython's free list of small tables
 * takes it back. The dict takes over the values; NULL with an exception on failure (the
 * values are then still the caller's). */
static PyObject *dict_from_template(const dmodel_t *m, PyObject **vals)
{
    PyDictKeysObject *dk = PyObject_Malloc(m->keys_size);
    if (dk == NULL)
        return PyErr_NoMemory();
    PyObject *dict = PyDict_New();
    if (dict == NULL) {
        PyObject_Free(dk);
        return NULL;
    }
    PyDictObject *mp = (PyDictObject *)dict;
    if (mp->ma_values != NULL || mp->ma_used != 0) {
        /* Not the empty combined dict PyDict_New always gives on 3.11: refuse. */
        Py_DECREF(dict);
        PyObject_Free(dk);
        PyErr_SetString(PyExc_SystemError, "unexpected dict layout");
        return NULL;
    }
    memcpy(dk, m->keys, m->keys_size);
    PyDictUnicodeEntry *ep = DK_UNICODE_ENTRIES(dk);
    int track = 0;
    for (Py_ssize_t i = 0; i < m->nfields; i++) {
        PyObject *v = vals[i];
        Py_INCREF(ep[i].me_key);
        ep[i].me_value = v;
        /* As PyDict_SetItem: tracked once it holds what the collector may need to see. */
        track |= PyObject_IS_GC(v) && (!PyTuple_CheckExact(v) || PyObject_GC_IsTracked(v));
    }
    mp->ma_keys->dk_refcnt--; /* the shared empty table PyDict_New counted */
    mp->ma_keys = dk;
    mp->ma_used = m->nfields;
    if (track)
        PyObject_GC_Track(dict);
    return dict;
}

/* Builds m->keys from a dict of every field name (None values) made by PyDict_SetItem in
 * field order: its table, copied with the values cleared. Without one (a layout not
 * expected, an omittable key) m->keys stays NULL and instances use PyDict_SetItem. */
static int model_keys_template(dmodel_t *m)
{
    for (Py_ssize_t i = 0; i < m->nfields; i++)
        if (m->fields[i].def_kind == DEF_OMIT)
            return 0;
    /* Grown from empty as pydantic-core grows an instance's dict (PyDict_New, then one
     * insertion per field): a table of str keys only (_PyDict_NewPresized would give the
     * general kind, 8 more bytes per entry) and of the size pydantic's has. */
    PyObject *dict = PyDict_New();
    if (dict == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < m->nfields; i++) {
        if (PyDict_SetItem(dict, m->fields[i].name, Py_None) < 0) {
            Py_DECREF(dict);
            return -1;
        }
    }
    PyDictKeysObject *src = ((PyDictObject *)dict)->ma_keys;
    if (((PyDictObject *)dict)->ma_values == NULL && src->dk_kind == DICT_KEYS_UNICODE &&
        src->dk_nentries == m->nfields && src->dk_refcnt == 1) {
        size_t usable = (((size_t)1 << src->dk_log2_size) << 1) / 3;
        size_t size = sizeof(PyDictKeysObject) + ((size_t)1 << src->dk_log2_index_bytes) +
                      sizeof(PyDictUnicodeEntry) * usable;
        PyDictKeysObject *dk = PyObject_Malloc(size);
        if (dk == NULL) {
            Py_DECREF(dict);
            PyErr_NoMemory();
            return -1;
        }
        memcpy(dk, src, size);
        dk->dk_refcnt = 1;
        dk->dk_version = 0;
        PyDictUnicodeEntry *ep = DK_UNICODE_ENTRIES(dk);
        for (Py_ssize_t i = 0; i < m->nfields; i++)
            ep[i].me_value = NULL; /* the keys stay the fields' own (interned) names */
        m->keys = dk;
        m->keys_size = size;
    }
    Py_DECREF(dict);
    return 0;
}
#endif

static PyObject *dec_model(mstate_t *st, const dmodel_t *m)
{
    PyObject *inline_vals[FIELDS_INLINE];
    PyObject **vals = inline_vals;
    PyObject *dict = NULL, *fset = NULL, *obj = NULL;
    Py_ssize_t nf = m->nfields, present = 0;
    if (*st->d.p != '{' || enter(st) < 0)
        return NULL;
    if (nf > FIELDS_INLINE && (vals = PyMem_Calloc((size_t)nf, sizeof(PyObject *))) == NULL)
        return PyErr_NoMemory();
    if (vals == inline_vals)
        memset(vals, 0, (size_t)nf * sizeof(PyObject *));
    st->d.p++;
    json_dec_skip_ws(&st->d);
    if (st->d.p < st->d.end && *st->d.p == '}') {
        st->d.p++;
    } else {
        Py_ssize_t expect = 0;
        for (;;) {
            if (st->d.p >= st->d.end || *st->d.p != '"')
                goto done;
            Py_ssize_t i = match_key(st, m, expect);
            if (i == -2)
                goto done;
            PyObject *v;
            if (i >= 0) {
                v = dec_spec(st, &m->fields[i].spec);
                if (v == NULL)
                    goto done;
                /* Of repeated keys the last one counts, as in pydantic. */
                if (vals[i] == NULL)
                    present++;
                Py_XSETREF(vals[i], v);
                expect = i + 1;
            } else {
                /* extra="ignore": the value is parsed (it must be valid) and dropped. */
                v = json_dec_value(&st->d);
                if (v == NULL)
                    goto done;
                Py_DECREF(v);
            }
            int r = next_member(st, '}');
            if (r < 0)
                goto done;
            if (r == 0)
                break;
        }
    }
    st->depth--;
    /* The fields present in the input are the ones "set" (before defaults fill the rest);
     * a TypedDict has no such record. */
    if (m->flavor == FLAVOR_TYPED_DICT) {
        fset = Py_NewRef(Py_None);
    } else if (present == nf) {
        fset = PySet_New(m->all_set);
    } else {
        fset = PySet_New(NULL);
        for (Py_ssize_t i = 0; fset != NULL && i < nf; i++) {
            if (vals[i] != NULL && PySet_Add(fset, m->fields[i].name) < 0)
                goto done;
        }
    }
    if (fset == NULL)
        goto done;
    /* Defaults for the fields absent from the input. */
    for (Py_ssize_t i = 0; i < nf; i++) {
        const dfield_t *f = &m->fields[i];
        if (vals[i] != NULL || f->def_kind == DEF_OMIT)
            continue; /* present, or a TypedDict's NotRequired key: absent in the result too */
        if (f->def == NULL)
            goto done; /* missing: pydantic's error */
        if (f->def_kind == DEF_COPY)
            vals[i] = PyObject_CallOneArg(st->md->deepcopy, f->def);
        else if (f->def_kind == DEF_FACTORY)
            vals[i] = PyObject_CallNoArgs(f->def);
        else
            vals[i] = Py_NewRef(f->def);
        if (vals[i] == NULL)
            goto done;
    }
#if defined(MODEL_DICT_TEMPLATE)
    /* Every field has a value here (a model with a NotRequired key has no template). */
    if (m->keys != NULL) {
        if ((dict = dict_from_template(m, vals)) == NULL)
            goto done;
        memset(vals, 0, (size_t)nf * sizeof(PyObject *)); /* the dict owns the values now */
    }
#endif
    if (dict == NULL) {
        if ((dict = _PyDict_NewPresized(nf)) == NULL)
            goto done;
        for (Py_ssize_t i = 0; i < nf; i++) {
            if (vals[i] != NULL && PyDict_SetItem(dict, m->fields[i].name, vals[i]) < 0)
                goto done;
        }
    }
    obj = m->flavor == FLAVOR_TYPED_DICT ? Py_NewRef(dict) : make_instance(m, dict, fset);
done:
    for (Py_ssize_t i = 0; i < nf; i++)
        Py_XDECREF(vals[i]);
    if (vals != inline_vals)
        PyMem_Free(vals);
    Py_XDECREF(dict);
    Py_XDECREF(fset);
    return obj;
}

static PyObject *dec_spec(mstate_t *st, const dspec_t *s)
{
    if (st->d.p >= st->d.end)
        return NULL;
    unsigned char c = *st->d.p;
    if (c == 'n')
        return s->nullable || s->kind == DK_ANY ? dec_literal(st, "null", 4, Py_None) : NULL;
    switch (s->kind) {
    case DK_STR: {
        if (c != '"')
            return NULL;
        PyObject *v = json_dec_string(&st->d, 0);
        if (v != NULL && (s->min_len >= 0 || s->max_len >= 0) &&
            !len_ok(s, PyUnicode_GET_LENGTH(v)))
            Py_CLEAR(v);
        return v;
    }
    case DK_INT:
        return dec_int(st, s);
    case DK_FLOAT:
        return dec_float(st, s);
    case DK_BOOL:
        if (c == 't')
            return dec_literal(st, "true", 4, Py_True);
        return c == 'f' ? dec_literal(st, "false", 5, Py_False) : NULL;
    case DK_ANY:
        return json_dec_value(&st->d);
    case DK_LIST:
        return dec_list(st, s);
    case DK_DICT:
        return dec_dict(st, s);
    case DK_MODEL:
        return dec_model(st, &st->md->models[s->model]);
    }
    return NULL;
}

/* ---- the Python type ---------------------------------------------------------------- */

static void spec_clear(dspec_t *s)
{
    if (s->item != NULL) {
        spec_clear(s->item);
        PyMem_Free(s->item);
        s->item = NULL;
    }
}

/* Reads an int or float bound from checks[name] into the spec; 0 absent, 1 set, -1. */
static int read_bound(PyObject *checks, const char *name, const dspec_t *s, long long *iv,
                      double *fv)
{
    PyObject *v = PyDict_GetItemString(checks, name);
    if (v == NULL)
        return 0;
    if (s->kind == DK_INT) {
        int overflow;
        *iv = PyLong_Check(v) ? PyLong_AsLongLongAndOverflow(v, &overflow) : -1;
        if (!PyLong_Check(v) || overflow || (*iv == -1 && PyErr_Occurred())) {
            PyErr_Format(PyExc_ValueError, "int bound %s must be a 64-bit int", name);
            return -1;
        }
        return 1;
    }
    *fv = PyFloat_AsDouble(v);
    return *fv == -1.0 && PyErr_Occurred() ? -1 : 1;
}

static int read_len(PyObject *checks, const char *name, Py_ssize_t *out)
{
    PyObject *v = PyDict_GetItemString(checks, name);
    *out = -1;
    if (v == NULL)
        return 0;
    *out = PyLong_AsSsize_t(v);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

/* spec: (kind, nullable, arg, checks). */
static int spec_parse(PyObject *t, dspec_t *s, Py_ssize_t nmodels)
{
    memset(s, 0, sizeof(*s));
    s->min_len = s->max_len = -1;
    PyObject *kind, *nullable, *arg, *checks;
    if (!PyTuple_Check(t) || !PyArg_ParseTuple(t, "UOOO", &kind, &nullable, &arg, &checks)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "a spec is (kind, nullable, arg, checks)");
        return -1;
    }
    int k;
    for (k = 0; k < DK_COUNT; k++) {
        if (PyUnicode_CompareWithASCIIString(kind, kind_names[k]) == 0)
            break;
    }
    if (k == DK_COUNT) {
        PyErr_Format(PyExc_ValueError, "unknown kind %R", kind);
        return -1;
    }
    s->kind = (unsigned char)k;
    s->nullable = (unsigned char)PyObject_IsTrue(nullable);
    if (k == DK_LIST || k == DK_DICT) {
        if ((s->item = PyMem_Calloc(1, sizeof(dspec_t))) == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        if (spec_parse(arg, s->item, nmodels) < 0)
            return -1;
    } else if (k == DK_MODEL) {
        s->model = PyLong_AsSsize_t(arg);
        if (s->model < 0 || s->model >= nmodels) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "model index out of range");
            return -1;
        }
    }
    if (checks == Py_None)
        return 0;
    if (!PyDict_Check(checks)) {
        PyErr_SetString(PyExc_TypeError, "checks must be a dict or None");
        return -1;
    }
    int r;
    if ((r = read_bound(checks, "gt", s, &s->ilo, &s->flo)) < 0)
        return -1;
    if (r) {
        s->has_lo = s->lo_excl = 1;
    } else if ((r = read_bound(checks, "ge", s, &s->ilo, &s->flo)) < 0) {
        return -1;
    } else if (r) {
        s->has_lo = 1;
    }
    if ((r = read_bound(checks, "lt", s, &s->ihi, &s->fhi)) < 0)
        return -1;
    if (r) {
        s->has_hi = s->hi_excl = 1;
    } else if ((r = read_bound(checks, "le", s, &s->ihi, &s->fhi)) < 0) {
        return -1;
    } else if (r) {
        s->has_hi = 1;
    }
    if (k == DK_INT) {
        double unused;
        if ((r = read_bound(checks, "multiple_of", s, &s->imul, &unused)) < 0)
            return -1;
        if (r && s->imul == 0) {
            PyErr_SetString(PyExc_ValueError, "multiple_of must not be 0");
            return -1;
        }
        s->has_mul = (unsigned char)r;
    }
    if (read_len(checks, "min_length", &s->min_len) < 0 ||
        read_len(checks, "max_length", &s->max_len) < 0)
        return -1;
    return 0;
}

/* The offset of a __slots__ member of cls (pydantic's BaseModel slots). */
static Py_ssize_t slot_offset(PyTypeObject *cls, const char *name)
{
    PyObject *descr = PyObject_GetAttrString((PyObject *)cls, name);
    if (descr == NULL)
        return -1;
    Py_ssize_t off = -1;
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *def = ((PyMemberDescrObject *)descr)->d_member;
        if (def->type == T_OBJECT_EX)
            off = def->offset;
    }
    Py_DECREF(descr);
    if (off < 0)
        PyErr_Format(PyExc_TypeError, "%s.%s is not an object slot", cls->tp_name, name);
    return off;
}

/* model: (cls, fields[, flavor]), each field (name, spec, default) with default () for a
 * required field, (value,), (factory, "factory"), or (None, None, "omit") for a key a
 * TypedDict may lack. */
static int model_parse(PyObject *t, dmodel_t *m, Py_ssize_t nmodels)
{
    PyObject *cls, *fields;
    int flavor = FLAVOR_MODEL;
    if (!PyTuple_Check(t) ||
        !PyArg_ParseTuple(t, "O!O!|i", &PyType_Type, &cls, &PyTuple_Type, &fields, &flavor))
        return -1;
    if (flavor < FLAVOR_MODEL || flavor > FLAVOR_TYPED_DICT) {
        PyErr_SetString(PyExc_ValueError, "unknown flavor");
        return -1;
    }
    m->cls = (PyTypeObject *)Py_NewRef(cls);
    m->flavor = flavor;
    m->plain_new = m->cls->tp_new == PyBaseObject_Type.tp_new &&
                   m->cls->tp_alloc == PyType_GenericAlloc &&
                   !PyType_HasFeature(m->cls, Py_TPFLAGS_IS_ABSTRACT);
    if (flavor == FLAVOR_MODEL &&
        ((m->off_fset = slot_offset(m->cls, "__pydantic_fields_set__")) < 0 ||
         (m->off_extra = slot_offset(m->cls, "__pydantic_extra__")) < 0 ||
         (m->off_private = slot_offset(m->cls, "__pydantic_private__")) < 0))
        return -1;
    if ((m->all_set = PySet_New(NULL)) == NULL)
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(fields);
    if ((m->fields = PyMem_Calloc(n ? (size_t)n : 1, sizeof(dfield_t))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        dfield_t *f = &m->fields[i];
        PyObject *name, *spec, *def;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(fields, i), "UOO!", &name, &spec, &PyTuple_Type,
                              &def))
            return -1;
        m->nfields = i + 1; /* from here on, the field is cleared with the model */
        f->name = Py_NewRef(name);
        PyUnicode_InternInPlace(&f->name);
        if ((f->utf8 = PyUnicode_AsUTF8AndSize(f->name, &f->len)) == NULL)
            return -1;
        if (spec_parse(spec, &f->spec, nmodels) < 0 || PySet_Add(m->all_set, f->name) < 0)
            return -1;
        if (PyTuple_GET_SIZE(def) == 3) {
            f->def_kind = DEF_OMIT;
        } else if (PyTuple_GET_SIZE(def) == 2) {
            f->def = Py_NewRef(PyTuple_GET_ITEM(def, 0));
            f->def_kind = DEF_FACTORY;
        } else if (PyTuple_GET_SIZE(def) == 1) {
            f->def = Py_NewRef(PyTuple_GET_ITEM(def, 0));
            /* pydantic-core deep-copies a default that cannot be hashed (a list, a dict). */
            if (PyObject_Hash(f->def) == -1) {
                PyErr_Clear();
                f->def_kind = DEF_COPY;
            }
        }
    }
#if defined(MODEL_DICT_TEMPLATE)
    if (model_keys_template(m) < 0)
        return -1;
#endif
    return 0;
}

static void models_clear(ModelDecoder *self)
{
    for (Py_ssize_t i = 0; i < self->nmodels; i++) {
        dmodel_t *m = &self->models[i];
        for (Py_ssize_t j = 0; j < m->nfields; j++) {
            Py_CLEAR(m->fields[j].name);
            Py_CLEAR(m->fields[j].def);
            spec_clear(&m->fields[j].spec);
        }
        PyMem_Free(m->fields);
        if (m->keys != NULL)
            PyObject_Free(m->keys);
        m->keys = NULL;
        Py_CLEAR(m->cls);
        Py_CLEAR(m->all_set);
    }
    PyMem_Free(self->models);
    self->models = NULL;
    self->nmodels = 0;
}

static int md_clear(ModelDecoder *self)
{
    models_clear(self);
    spec_clear(&self->root);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->deepcopy);
    return 0;
}

static int md_traverse(ModelDecoder *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fallback);
    for (Py_ssize_t i = 0; i < self->nmodels; i++) {
        Py_VISIT(self->models[i].cls);
        for (Py_ssize_t j = 0; j < self->models[i].nfields; j++)
            Py_VISIT(self->models[i].fields[j].def);
    }
    return 0;
}

static void md_dealloc(ModelDecoder *self)
{
    PyObject_GC_UnTrack(self);
    md_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int md_init(ModelDecoder *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"models", "root", "fallback", NULL};
    PyObject *models, *fallback, *root;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!OO:ModelDecoder", kwlist, &PyTuple_Type,
                                     &models, &root, &fallback))
        return -1;
    md_clear(self);
    Py_ssize_t n = PyTuple_GET_SIZE(models);
    PyObject *copy = PyImport_ImportModule("copy");
    if (copy == NULL)
        return -1;
    self->deepcopy = PyObject_GetAttrString(copy, "deepcopy");
    Py_DECREF(copy);
    if (self->deepcopy == NULL)
        return -1;
    if ((self->models = PyMem_Calloc(n ? (size_t)n : 1, sizeof(dmodel_t))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        self->nmodels = i + 1;
        if (model_parse(PyTuple_GET_ITEM(models, i), &self->models[i], n) < 0)
            return -1;
    }
    if (spec_parse(root, &self->root, n) < 0)
        return -1;
    self->fallback = Py_NewRef(fallback);
    return 0;
}

/* decode(data): the model instance from a bytes-like JSON document. */
static PyObject *md_call(ModelDecoder *self, PyObject *args, PyObject *kwds)
{
    PyObject *data;
    if (!PyArg_ParseTuple(args, "O:ModelDecoder", &data) ||
        (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "ModelDecoder takes one positional argument");
        return NULL;
    }
    if (self->fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ModelDecoder is not initialised");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    mstate_t st;
    st.md = self;
    st.depth = 0;
    json_dec_begin(&st.d, view.buf, (size_t)view.len);
    PyObject *res = NULL;
    int gc_was_enabled = 0;
    if (json_errors_init() < 0)
        goto done;
    /* Many instances, dicts and sets are made and no Python code runs (except deepcopy of
     * a default), so a collection in the middle would only walk the growing result. */
    gc_was_enabled = PyGC_Disable();
    json_dec_skip_ws(&st.d);
    if (st.d.p < st.d.end)
        res = dec_spec(&st, &self->root);
    if (res != NULL) {
        json_dec_skip_ws(&st.d);
        if (st.d.p != st.d.end)
            Py_CLEAR(res);
    }
done:
    if (gc_was_enabled)
        PyGC_Enable();
    json_dec_end(&st.d);
    if (res != NULL) {
        PyBuffer_Release(&view);
        self->fast++;
        return res;
    }
    /* Not decided here (or an error such as MemoryError, which the fallback meets again):
     * pydantic-core validates the same bytes and returns or raises its own answer. */
    PyErr_Clear();
    self->slow++;
    res = PyObject_CallOneArg(self->fallback, data);
    PyBuffer_Release(&view);
    return res;
}

static PyObject *md_counts(ModelDecoder *self, void *closure)
{
    (void)closure;
    return Py_BuildValue("nn", self->fast, self->slow);
}

static PyGetSetDef md_getset[] = {
    {"counts", (getter)md_counts, NULL, "(calls decoded here, calls given to the fallback)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ModelDecoder_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core.ModelDecoder",
    .tp_basicsize = sizeof(ModelDecoder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "ModelDecoder(models, root, fallback): a value of the root spec (a pydantic "
              "model, a list of them, ...) from JSON bytes, decoded natively when the plan "
              "allows and by fallback(data) otherwise.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)md_init,
    .tp_dealloc = (destructor)md_dealloc,
    .tp_traverse = (traverseproc)md_traverse,
    .tp_clear = (inquiry)md_clear,
    .tp_call = (ternaryfunc)md_call,
    .tp_getset = md_getset,
};

int json_model_decoder_init(PyObject *module)
{
    if (PyType_Ready(&ModelDecoder_Type) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "ModelDecoder", (PyObject *)&ModelDecoder_Type);
}
