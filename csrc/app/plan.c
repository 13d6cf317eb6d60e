/*
 * Route plans: the Python layer inspects each handler's signature once at startup
 * (data_bridge/api/_plan.py) and hands the result here as a list of tuples
 * (name, source, conv | flags, default, validator, path_index, key, checks), where key is
 * the name looked up in the request and checks is None or the constraints tuple
 * (gt, ge, lt, le, min_length, max_length, pattern), each None when absent. This file turns that
 * into a flat C array so that binding a request needs no Python-level introspection.
 *
 * Ownership: a plan owns references to the handler, the names, defaults and validators;
 * plan_free releases them. Plans live as long as the Server object that holds them.
 */
#include <stdlib.h>

#include "app/app_internal.h"
#include "json/json.h"

/* Marks "no default" on the Python side: the parameter is required. */
static int is_required_marker(PyObject *def)
{
    return def == NULL || def == Py_Ellipsis;
}

void plan_free(route_plan_t *plan)
{
    if (plan == NULL)
        return;
    Py_XDECREF(plan->request_class);
    Py_XDECREF(plan->text_ctype);
    Py_XDECREF(plan->file_cache);
    for (int i = 0; i < plan->nargs; i++) {
        Py_XDECREF(plan->args[i].name);
        Py_XDECREF(plan->args[i].def);
        Py_XDECREF(plan->args[i].validator);
        Py_XDECREF(plan->args[i].json_validator);
        Py_XDECREF(plan->args[i].key);
        Py_XDECREF(plan->args[i].gt);
        Py_XDECREF(plan->args[i].ge);
        Py_XDECREF(plan->args[i].lt);
        Py_XDECREF(plan->args[i].le);
        Py_XDECREF(plan->args[i].pattern);
    }
    Py_XDECREF(plan->handler);
    Py_XDECREF(plan->path);
    Py_XDECREF(plan->kwnames);
    free(plan);
}

static PyObject *none_to_null(PyObject *o)
{
    return o == Py_None ? NULL : Py_NewRef(o);
}

static int length_bound(PyObject *o, Py_ssize_t *out)
{
    *out = -1;
    if (o == Py_None)
        return 0;
    *out = PyLong_AsSsize_t(o);
    if (*out < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "length constraints must be >= 0");
        return -1;
    }
    return 0;
}

static int plan_checks(arg_plan_t *a, PyObject *checks)
{
    PyObject *gt, *ge, *lt, *le, *min_len, *max_len, *pattern;
    a->min_len = a->max_len = -1;
    if (checks == Py_None)
        return 0;
    if (!PyTuple_Check(checks) || !PyArg_ParseTuple(checks, "OOOOOOO;parameter constraints", &gt,
                                                    &ge, &lt, &le, &min_len, &max_len, &pattern))
        return -1;
    a->gt = none_to_null(gt);
    a->ge = none_to_null(ge);
    a->lt = none_to_null(lt);
    a->le = none_to_null(le);
    a->pattern = none_to_null(pattern);
    if (length_bound(min_len, &a->min_len) < 0 || length_bound(max_len, &a->max_len) < 0)
        return -1;
    a->has_checks =
        a->gt || a->ge || a->lt || a->le || a->pattern || a->min_len >= 0 || a->max_len >= 0;
    return 0;
}

static int plan_arg(arg_plan_t *a, PyObject *spec)
{
    PyObject *name, *def, *validator, *key, *checks;
    int source, conv, path_index;
    if (!PyTuple_Check(spec) ||
        !PyArg_ParseTuple(spec, "UiiOOiUO;route parameter spec", &name, &source, &conv, &def,
                          &validator, &path_index, &key, &checks))
        return -1;
    if (source < ARG_PATH || source > ARG_FORM) {
        PyErr_Format(PyExc_ValueError, "bad parameter source %d", source);
        return -1;
    }
    a->cname = PyUnicode_AsUTF8AndSize(name, &a->cname_len);
    if (a->cname == NULL)
        return -1;
    a->name = Py_NewRef(name);
    a->ckey = PyUnicode_AsUTF8AndSize(key, &a->ckey_len);
    if (a->ckey == NULL)
        return -1;
    a->key = Py_NewRef(key);
    if (plan_checks(a, checks) < 0)
        return -1;
    a->source = source;
    a->conv = conv & 0xff;
    a->flags = conv & ~0xff;
    a->path_index = path_index;
    a->def = is_required_marker(def) ? NULL : Py_NewRef(def);
    a->validator = validator == Py_None ? NULL : Py_NewRef(validator);
    if (a->validator != NULL && source == ARG_BODY) {
        /* A validator that can also read the raw JSON bytes (pydantic's validate_json)
         * carries that form as its `json` attribute. */
        a->json_validator = PyObject_GetAttrString(a->validator, "json");
        if (a->json_validator == NULL)
            PyErr_Clear();
    }
    if (a->conv == CONV_MODEL && a->validator == NULL) {
        PyErr_SetString(PyExc_ValueError, "a model parameter needs a validator");
        return -1;
    }
    return 0;
}

route_plan_t *plan_build(PyObject *handler, PyObject *path, PyObject *params, int status_code,
                         const router_t *router_unused)
{
    (void)router_unused;
    PyObject *seq = PySequence_Fast(params, "route parameters must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > APP_MAX_ARGS) {
        PyErr_Format(PyExc_ValueError, "a handler takes at most %d parameters", APP_MAX_ARGS);
        Py_DECREF(seq);
        return NULL;
    }
    route_plan_t *plan = calloc(1, sizeof(*plan) + (size_t)n * sizeof(arg_plan_t));
    PyObject *kw = NULL;
    if (plan == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    plan->handler = Py_NewRef(handler);
    plan->path = Py_NewRef(path);
    plan->status_code = status_code;
    plan->json_flags = JSON_OPT_NON_STR_KEYS;
    plan->npositional = -1;
    Py_ssize_t nkw = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        arg_plan_t *a = &plan->args[i];
        plan->nargs = (int)i + 1; /* plan_free releases the slots filled so far */
        if (plan_arg(a, PySequence_Fast_GET_ITEM(seq, i)) < 0)
            goto error;
        if (a->source == ARG_QUERY || a->source == ARG_FORM)
            plan->has_query = 1;
        if (a->source == ARG_FORM)
            plan->has_form = 1;
        if (a->flags & ARG_FLAG_KWONLY) {
            if (plan->npositional < 0)
                plan->npositional = (int)i;
            nkw++;
        } else if (plan->npositional >= 0) {
            PyErr_SetString(PyExc_ValueError, "keyword-only parameters must come last");
            goto error;
        }
    }
    plan->nargs = (int)n;
    if (plan->npositional < 0)
        plan->npositional = (int)n;
    if (nkw) {
        kw = PyTuple_New(nkw);
        if (kw == NULL)
            goto error;
        for (Py_ssize_t i = 0; i < nkw; i++)
            PyTuple_SET_ITEM(kw, i, Py_NewRef(plan->args[plan->npositional + i].name));
        plan->kwnames = kw;
    }
    Py_DECREF(seq);
    return plan;
error:
    Py_DECREF(seq);
    plan_free(plan);
    return NULL;
}
