/*
 * Pydantic v2 models in the JSON encoder (owned by the JSON codec). Calling a model's
 * pydantic-core serializer costs a few microseconds per call, most of it fixed overhead,
 * so a list of small models used to cost far more than the same data as dicts. A class
 * whose serializer would write nothing but {"field": value, ...} ("plain": decided once
 * per class by data_bridge._model_plan.plan) is written here straight from the instance
 * __dict__, each value checked against the field's declared type exactly. Any surprise
 * (a missing or extra key, a subclass instance, an int in a float field, a NaN, an int
 * beyond 64 bits) abandons the attempt for that model: the output is rewound to where
 * the model began and the serializer's to_json(obj, by_alias=True) writes it instead, so
 * the result is always what pydantic writes.
 *
 * Plans are cached by class in a small set-associative table (CACHE_SETS sets of
 * CACHE_WAYS entries). An entry holds a weak reference to its class, so the cache never
 * keeps a class alive, and the table has a fixed size, so classes created in a loop only
 * evict each other. A plan is reference-counted in C: the table holds one count and an
 * encoding in progress another, because encoding a nested model may evict the entry of
 * the model being written. Plans hold their nested model classes weakly too, so that two
 * classes that refer to each other are not kept alive by the table.
 */
#include <math.h>
#include <string.h>

#include "json/json_internal.h"

enum {
    KIND_STR,
    KIND_INT,
    KIND_FLOAT,
    KIND_BOOL,
    KIND_NONE,
    KIND_LIST,
    KIND_DICT,
    KIND_MODEL,
};

/* The values a field (or a list item, a dict value) may hold. */
typedef struct model_spec model_spec_t;
struct model_spec {
    unsigned char kind;
    unsigned char nullable; /* None is allowed too (Optional[...]) */
    model_spec_t *item;     /* KIND_LIST, KIND_DICT: owned */
    PyObject *cls_ref;      /* KIND_MODEL: owned weak reference to the model class */
};

typedef struct {
    PyObject *name; /* the __dict__ key (owned str) */
    PyObject *key;  /* '{"name":' or ',"name":' (owned bytes) */
    model_spec_t spec;
} model_field_t;

typedef struct {
    Py_ssize_t refs;
    /* A standard-library dataclass's plan: the pydantic serializer (owned) that writes
     * an instance which does not fit the plan. NULL for a model, whose class has its own
     * (__pydantic_serializer__). */
    PyObject *serializer;
    Py_ssize_t nfields;
    model_field_t fields[];
} model_plan_t;

/* The answer for a class that is not plain; never freed. */
static model_plan_t not_plain = {.refs = 1, .nfields = 0};

#define CACHE_SETS 256
#define CACHE_WAYS 4

typedef struct {
    PyTypeObject *type; /* compared by address only; wr says whether it is still alive */
    PyObject *wr;       /* owned weak reference to type */
    model_plan_t *plan; /* one count owned */
} cache_slot_t;

static cache_slot_t cache[CACHE_SETS][CACHE_WAYS];
static unsigned char cache_victim[CACHE_SETS];

static PyObject *planner;       /* data_bridge._model_plan.plan, imported on first use */
static PyObject *str_ser;       /* "__pydantic_serializer__" */
static PyObject *str_to_json;   /* "to_json" */
static PyObject *kwnames_alias; /* ("by_alias",) */
static PyObject *kind_names[8]; /* "str", "int", ... in KIND_* order */

static int names_loaded;

static int load_names(void)
{
    static const char *const kinds[8] = {"str",  "int",  "float", "bool",
                                         "none", "list", "dict",  "model"};
    /* A failed attempt may leave some of these set; the next one replaces them. */
    PyObject *m = PyImport_ImportModule("data_bridge._model_plan");
    if (m == NULL)
        return -1;
    Py_XSETREF(planner, PyObject_GetAttrString(m, "plan"));
    Py_DECREF(m);
    if (planner == NULL)
        return -1;
    Py_CLEAR(str_ser);
    Py_CLEAR(str_to_json);
    Py_CLEAR(kwnames_alias);
    for (int i = 0; i < 8; i++)
        Py_CLEAR(kind_names[i]);
    if ((str_ser = PyUnicode_InternFromString("__pydantic_serializer__")) == NULL ||
        (str_to_json = PyUnicode_InternFromString("to_json")) == NULL ||
        (kwnames_alias = Py_BuildValue("(s)", "by_alias")) == NULL)
        return -1;
    for (int i = 0; i < 8; i++) {
        if ((kind_names[i] = PyUnicode_InternFromString(kinds[i])) == NULL)
            return -1;
    }
    names_loaded = 1;
    return 0;
}

/* The object a weak reference points to (borrowed), or Py_None once it is dead. Only
 * ever compared with the type of an object we hold, which is then alive. */
static inline PyObject *weak_target(PyObject *wr)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *obj;
    if (PyWeakref_GetRef(wr, &obj) <= 0) {
        PyErr_Clear();
        return Py_None;
    }
    Py_DECREF(obj);
    return obj;
#else
    return PyWeakref_GET_OBJECT(wr);
#endif
}

/* ---- plans ------------------------------------------------------------------------ */

static void spec_clear(model_spec_t *s)
{
    if (s->item != NULL) {
        spec_clear(s->item);
        PyMem_Free(s->item);
        s->item = NULL;
    }
    Py_CLEAR(s->cls_ref);
}

static void plan_release(model_plan_t *p)
{
    if (p == &not_plain || --p->refs > 0)
        return;
    for (Py_ssize_t i = 0; i < p->nfields; i++) {
        Py_XDECREF(p->fields[i].name);
        Py_XDECREF(p->fields[i].key);
        spec_clear(&p->fields[i].spec);
    }
    Py_XDECREF(p->serializer);
    PyMem_Free(p);
}

static int bad_plan(void)
{
    PyErr_SetString(PyExc_TypeError, "data_bridge._model_plan.plan returned a malformed plan");
    return -1;
}

/* Fills s from the planner's (kind, nullable, arg). Recursion is bounded by the planner
 * (and the depth argument, should it not be). Returns 0 or -1 with an exception set; s
 * is then cleared by the caller. */
static int spec_parse(model_spec_t *s, PyObject *t, int depth)
{
    if (depth > 64 || !PyTuple_CheckExact(t) || PyTuple_GET_SIZE(t) != 3)
        return bad_plan();
    PyObject *kind = PyTuple_GET_ITEM(t, 0), *arg = PyTuple_GET_ITEM(t, 2);
    int k = 0;
    while (k < 8 && kind != kind_names[k])
        k++;
    if (k == 8) {
        for (k = 0; k < 8; k++) {
            if (PyUnicode_Check(kind) && PyUnicode_Compare(kind, kind_names[k]) == 0)
                break;
        }
        if (k == 8)
            return bad_plan();
    }
    int nullable = PyObject_IsTrue(PyTuple_GET_ITEM(t, 1));
    if (nullable < 0)
        return -1;
    s->kind = (unsigned char)k;
    s->nullable = (unsigned char)nullable;
    if (k == KIND_LIST || k == KIND_DICT) {
        if ((s->item = PyMem_Calloc(1, sizeof(model_spec_t))) == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        return spec_parse(s->item, arg, depth + 1);
    }
    if (k == KIND_MODEL) {
        if (!PyType_Check(arg))
            return bad_plan();
        s->cls_ref = PyWeakref_NewRef(arg, NULL);
        return s->cls_ref == NULL ? -1 : 0;
    }
    return 0;
}

/* A plan (one count, for the cache) from the planner's tuple of (key, name, spec), or
 * from its dict {"fields": that tuple, "serializer": ...} for a dataclass. */
static model_plan_t *plan_build(PyObject *res)
{
    PyObject *fields = res, *serializer = NULL;
    if (PyDict_CheckExact(res)) {
        fields = PyDict_GetItemString(res, "fields");
        serializer = PyDict_GetItemString(res, "serializer");
        if (fields == NULL || serializer == NULL) {
            bad_plan();
            return NULL;
        }
    }
    if (!PyTuple_CheckExact(fields)) {
        bad_plan();
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(fields);
    model_plan_t *p = PyMem_Calloc(1, sizeof(model_plan_t) + (size_t)n * sizeof(model_field_t));
    if (p == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    p->refs = 1;
    p->serializer = Py_XNewRef(serializer);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PyTuple_GET_ITEM(fields, i);
        model_field_t *mf = &p->fields[i];
        p->nfields = i + 1; /* so that plan_release frees what was filled so far */
        if (!PyTuple_CheckExact(f) || PyTuple_GET_SIZE(f) != 3 ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(f, 0)) ||
            !PyUnicode_CheckExact(PyTuple_GET_ITEM(f, 1))) {
            bad_plan();
            goto fail;
        }
        mf->key = Py_NewRef(PyTuple_GET_ITEM(f, 0));
        mf->name = Py_NewRef(PyTuple_GET_ITEM(f, 1));
        if (spec_parse(&mf->spec, PyTuple_GET_ITEM(f, 2), 0) < 0)
            goto fail;
    }
    return p;
fail:
    plan_release(p);
    return NULL;
}

/* ---- the cache -------------------------------------------------------------------- */

/* Types are allocated at least 16 bytes apart; the shifts mix in higher address bits. */
static inline size_t cache_index(PyTypeObject *t)
{
    uintptr_t h = (uintptr_t)t;
    return (size_t)(((h >> 4) ^ (h >> 12)) & (CACHE_SETS - 1));
}

/* The cached plan of t (borrowed: take a count before running any Python code), or
 * NULL when t is not in the cache. */
static inline model_plan_t *cache_lookup(PyTypeObject *t)
{
    cache_slot_t *set = cache[cache_index(t)];
    for (int i = 0; i < CACHE_WAYS; i++) {
        if (set[i].type == t && weak_target(set[i].wr) == (PyObject *)t)
            return set[i].plan;
    }
    return NULL;
}

static void slot_clear(cache_slot_t *s)
{
    if (s->plan != NULL)
        plan_release(s->plan);
    Py_XDECREF(s->wr);
    s->type = NULL;
    s->wr = NULL;
    s->plan = NULL;
}

/* Stores t -> p, taking over the caller's count of p. A free slot or one whose class has
 * died is reused first; otherwise the set's entries are replaced in turn. Returns 0, or
 * -1 with an exception set (p is then released). Runs no Python code. */
static int cache_insert(PyTypeObject *t, model_plan_t *p)
{
    PyObject *wr = PyWeakref_NewRef((PyObject *)t, NULL);
    if (wr == NULL) {
        plan_release(p);
        return -1;
    }
    size_t idx = cache_index(t);
    cache_slot_t *set = cache[idx], *slot = NULL;
    for (int i = 0; i < CACHE_WAYS && slot == NULL; i++) {
        if (set[i].type == NULL || set[i].type == t || weak_target(set[i].wr) == Py_None)
            slot = &set[i];
    }
    if (slot == NULL) {
        slot = &set[cache_victim[idx]];
        cache_victim[idx] = (unsigned char)((cache_victim[idx] + 1) % CACHE_WAYS);
    }
    slot_clear(slot);
    slot->type = t;
    slot->wr = wr;
    slot->plan = p;
    return 0;
}

/* The plan of model class t, with a count for the caller (plan_release it), computing
 * and caching it on first use; &not_plain when t is not plain; NULL with an exception
 * set on error. */
static model_plan_t *plan_acquire(PyTypeObject *t)
{
    model_plan_t *p = cache_lookup(t);
    if (JSON_LIKELY(p != NULL)) {
        p->refs++;
        return p;
    }
    if (!names_loaded && load_names() < 0)
        return NULL;
    PyObject *res = PyObject_CallOneArg(planner, (PyObject *)t);
    if (res == NULL)
        return NULL;
    if (res == Py_NotImplemented) {
        /* Not fully defined yet (forward references): ask again next time. */
        Py_DECREF(res);
        return &not_plain;
    }
    p = res == Py_None ? &not_plain : plan_build(res);
    Py_DECREF(res);
    if (p == NULL)
        return NULL;
    /* The planner ran Python code, which may have cached t meanwhile (a re-entrant
     * dumps); inserting again just replaces that entry. */
    p->refs++;
    if (cache_insert(t, p) < 0) {
        plan_release(p);
        return NULL;
    }
    return p;
}

/* ---- writing ---------------------------------------------------------------------- */

static inline int put(json_encoder_t *e, const char *s, size_t n)
{
    if (JSON_UNLIKELY(json_reserve(e, n) < 0))
        return -1;
    memcpy(e->out->data + e->out->len, s, n);
    e->out->len += n;
    return 0;
}

/* The serializer's own JSON for obj, spliced in: to_json(obj, by_alias=True), since
 * FastAPI writes response models by alias. The serializer is the plan's for a dataclass,
 * else the model class's. */
static int write_with_serializer(json_encoder_t *e, PyObject *obj, const model_plan_t *p)
{
    int rc = -1;
    PyObject *res = NULL;
    /* args[0] is scratch space that PY_VECTORCALL_ARGUMENTS_OFFSET lets the callee use. */
    PyObject *args[4] = {NULL, NULL, obj, Py_True};
    PyObject *ser = p->serializer != NULL ? Py_NewRef(p->serializer)
                                          : PyObject_GetAttr((PyObject *)Py_TYPE(obj), str_ser);
    if (ser == NULL)
        goto done;
    args[1] = ser;
    res = PyObject_VectorcallMethod(str_to_json, args + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                    kwnames_alias);
    if (res == NULL)
        goto done;
    if (!PyBytes_Check(res)) {
        PyErr_SetString(json_EncodeError, "__pydantic_serializer__.to_json returned no bytes");
        goto done;
    }
    rc = put(e, PyBytes_AS_STRING(res), (size_t)PyBytes_GET_SIZE(res));
done:
    Py_XDECREF(ser);
    Py_XDECREF(res);
    return rc;
}

static int write_model(json_encoder_t *e, PyObject *obj, model_plan_t *plan);
static int write_value(json_encoder_t *e, const model_spec_t *s, PyObject *v);

/* Writes the model obj (held by the caller) whose plan is p (a count held by the
 * caller): natively, or by its serializer when the values do not fit the plan. */
static int encode_with_plan(json_encoder_t *e, PyObject *obj, model_plan_t *p)
{
    if (p != &not_plain) {
        size_t start = e->out->len;
        /* The model is a nesting level, like the dict it stands for. */
        if (json_enc_push(e, obj) < 0)
            return -1;
        int rc = write_model(e, obj, p);
        json_enc_pop(e);
        if (rc <= 0)
            return rc;
        e->out->len = start;
    }
    return write_with_serializer(e, obj, p);
}

int json_encode_model(json_encoder_t *e, PyObject *obj)
{
    model_plan_t *p = plan_acquire(Py_TYPE(obj));
    if (p == NULL)
        return -1;
    Py_INCREF(obj); /* Python code (a nested serializer) may drop the container's reference. */
    int rc = encode_with_plan(e, obj, p);
    Py_DECREF(obj);
    plan_release(p);
    return rc;
}

int json_encode_cached_model(json_encoder_t *e, PyObject *obj)
{
    model_plan_t *p = cache_lookup(Py_TYPE(obj));
    /* A dataclass is written by its values unless pydantic's form was asked for. */
    if (p == NULL || (p->serializer != NULL && !(e->flags & JSON_OPT_AS_MODEL)))
        return 1;
    p->refs++;
    Py_INCREF(obj);
    int rc = encode_with_plan(e, obj, p);
    Py_DECREF(obj);
    plan_release(p);
    return rc;
}

/* The fields of obj in plan order from its __dict__. Returns 0 when written, 1 when the
 * instance does not fit the plan (the caller rewinds), -1 with an exception set. */
static int write_model(json_encoder_t *e, PyObject *obj, model_plan_t *plan)
{
    PyObject *dict = PyObject_GenericGetDict(obj, NULL);
    if (dict == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        return 1;
    }
    int rc = 1;
    /* Exactly the fields, in order: pydantic writes __dict__ in its own order and skips
     * keys that are not fields, so anything else is left to it. */
    if (!PyDict_CheckExact(dict) || PyDict_GET_SIZE(dict) != plan->nfields)
        goto done;
    if (plan->nfields == 0) {
        rc = put(e, "{}", 2);
        goto done;
    }
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    for (Py_ssize_t i = 0; i < plan->nfields; i++) {
        const model_field_t *f = &plan->fields[i];
        /* The dict may only change through Python code run by a nested serializer; the
         * size check catches a shrunken one, the key check a reordered one. */
        if (!PyDict_Next(dict, &pos, &k, &v)) {
            rc = 1;
            goto done;
        }
        if (k != f->name && !(PyUnicode_CheckExact(k) && PyUnicode_Compare(k, f->name) == 0)) {
            rc = 1;
            goto done;
        }
        if (put(e, PyBytes_AS_STRING(f->key), (size_t)PyBytes_GET_SIZE(f->key)) < 0) {
            rc = -1;
            goto done;
        }
        Py_INCREF(v); /* The dict's reference may go while v is written (as above). */
        rc = write_value(e, &f->spec, v);
        Py_DECREF(v);
        if (rc != 0)
            goto done;
    }
    rc = put(e, "}", 1);
done:
    Py_DECREF(dict);
    return rc;
}

/* A list whose items must all match s. Returns as write_model. */
static int write_list(json_encoder_t *e, const model_spec_t *s, PyObject *list)
{
    int rc = -1;
    Py_INCREF(list);
    if (json_enc_push(e, list) < 0)
        goto done;
    if (put(e, "[", 1) < 0)
        goto pop;
    /* The size is read again each time: a nested serializer may change the list. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        if (i > 0 && put(e, ",", 1) < 0) {
            rc = -1;
            goto pop;
        }
        PyObject *item = Py_NewRef(PyList_GET_ITEM(list, i));
        rc = write_value(e, s, item);
        Py_DECREF(item);
        if (rc != 0)
            goto pop;
    }
    rc = put(e, "]", 1);
pop:
    json_enc_pop(e);
done:
    Py_DECREF(list);
    return rc;
}

/* A dict with str keys whose values must all match s. Returns as write_model. */
static int write_dict(json_encoder_t *e, const model_spec_t *s, PyObject *dict)
{
    int rc = -1;
    Py_INCREF(dict);
    if (json_enc_push(e, dict) < 0)
        goto done;
    if (put(e, "{", 1) < 0)
        goto pop;
    Py_ssize_t pos = 0, i = 0;
    PyObject *k, *v;
    while (PyDict_Next(dict, &pos, &k, &v)) {
        if (!PyUnicode_CheckExact(k)) {
            rc = 1;
            goto pop;
        }
        if (i++ > 0 && put(e, ",", 1) < 0) {
            rc = -1;
            goto pop;
        }
        /* Hold both: the dict's references may go while the value is written. */
        Py_INCREF(k);
        Py_INCREF(v);
        rc = json_encode_str(e, k) < 0 || put(e, ":", 1) < 0 ? -1 : write_value(e, s, v);
        Py_DECREF(k);
        Py_DECREF(v);
        if (rc != 0)
            goto pop;
    }
    rc = put(e, "}", 1);
pop:
    json_enc_pop(e);
done:
    Py_DECREF(dict);
    return rc;
}

/* One value checked against s exactly: a subclass of a core type may have its own
 * JSON form for pydantic, and an instance of a subclass of a nested model carries fields
 * the declared model's serializer drops. Returns as write_model. */
static int write_value(json_encoder_t *e, const model_spec_t *s, PyObject *v)
{
    if (v == Py_None)
        return s->nullable || s->kind == KIND_NONE ? put(e, "null", 4) : 1;
    switch (s->kind) {
    case KIND_STR:
        return PyUnicode_CheckExact(v) ? json_encode_str(e, v) : 1;
    case KIND_INT:
        return PyLong_CheckExact(v) ? json_write_int64(e, v) : 1;
    case KIND_FLOAT:
        /* pydantic writes NaN and Infinity as null (ser_json_inf_nan); left to it. */
        if (!PyFloat_CheckExact(v) || !isfinite(PyFloat_AS_DOUBLE(v)))
            return 1;
        return json_write_float(e, PyFloat_AS_DOUBLE(v));
    case KIND_BOOL:
        if (v == Py_True)
            return put(e, "true", 4);
        return v == Py_False ? put(e, "false", 5) : 1;
    case KIND_LIST:
        return PyList_CheckExact(v) ? write_list(e, s->item, v) : 1;
    case KIND_DICT:
        return PyDict_CheckExact(v) ? write_dict(e, s->item, v) : 1;
    case KIND_MODEL:
        /* Exactly the declared class; its own plan (or serializer) writes it, and a
         * failure there is rewound there, not here. */
        if ((PyObject *)Py_TYPE(v) != weak_target(s->cls_ref))
            return 1;
        return json_encode_model(e, v);
    default:
        return 1;
    }
}
