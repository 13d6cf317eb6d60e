/*
 * The Python face of the JSON codec (owned by the JSON codec): dumps() and loads() as
 * METH_FASTCALL functions of data_bridge._core, with keyword parsing done here so that
 * data_bridge.json can re-export them with no Python frame in between. dumps() encodes
 * straight into the bytes object it returns (json_encode_to_bytes), so a large result is
 * written once and never copied.
 */
#include "json/json_internal.h"

/* Keyword names, interned once so that the usual call compares pointers. */
static PyObject *kw_default, *kw_sort_keys, *kw_indent, *kw_non_str_keys, *kw_naive_utc,
    *kw_decimal_as_string, *kw_option;

static int kw_is(PyObject *name, PyObject *interned)
{
    return name == interned || PyUnicode_Compare(name, interned) == 0;
}

static int set_flag(unsigned *flags, unsigned bit, PyObject *value)
{
    int t = PyObject_IsTrue(value);
    if (t < 0)
        return -1;
    if (t)
        *flags |= bit;
    else
        *flags &= ~bit;
    return 0;
}

static int parse_dumps_kwargs(PyObject *const *kwvalues, PyObject *kwnames, json_enc_opts_t *o)
{
    Py_ssize_t nk = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nk; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i), *v = kwvalues[i];
        if (kw_is(name, kw_default)) {
            o->default_fn = v == Py_None ? NULL : v;
            if (o->default_fn != NULL && !PyCallable_Check(v)) {
                PyErr_SetString(PyExc_TypeError, "dumps() default must be callable or None");
                return -1;
            }
        } else if (kw_is(name, kw_sort_keys)) {
            if (set_flag(&o->flags, JSON_OPT_SORT_KEYS, v) < 0)
                return -1;
        } else if (kw_is(name, kw_indent)) {
            if (v == Py_None) {
                o->flags &= ~JSON_OPT_INDENT_2;
            } else if (PyLong_Check(v) && PyLong_AsLong(v) == 2) {
                o->flags |= JSON_OPT_INDENT_2;
            } else {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError, "dumps() indent must be None or 2");
                return -1;
            }
        } else if (kw_is(name, kw_non_str_keys)) {
            if (set_flag(&o->flags, JSON_OPT_NON_STR_KEYS, v) < 0)
                return -1;
        } else if (kw_is(name, kw_naive_utc)) {
            if (set_flag(&o->flags, JSON_OPT_NAIVE_UTC, v) < 0)
                return -1;
        } else if (kw_is(name, kw_decimal_as_string)) {
            if (set_flag(&o->flags, JSON_OPT_DECIMAL_STRING, v) < 0)
                return -1;
        } else if (kw_is(name, kw_option)) {
            unsigned long bits = v == Py_None ? 0 : PyLong_AsUnsignedLong(v);
            if (bits == (unsigned long)-1 && PyErr_Occurred())
                return -1;
            o->flags |= (unsigned)bits;
        } else {
            PyErr_Format(PyExc_TypeError, "dumps() got an unexpected keyword argument '%U'", name);
            return -1;
        }
    }
    return 0;
}

static PyObject *json_py_dumps(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    (void)self;
    json_enc_opts_t opts = {0, NULL};
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError, "dumps() takes exactly 1 positional argument (%zd given)",
                     nargs);
        return NULL;
    }
    if (kwnames != NULL && parse_dumps_kwargs(args + 1, kwnames, &opts) < 0)
        return NULL;
    return json_encode_to_bytes(args[0], &opts);
}

/* _json_encode_append(prefix, obj, **dumps options) -> bytes: runs json_encode, the entry
 * point the HTTP server uses, on a db_buf_t that already holds prefix, so that the tests
 * cover that path and its "appends to out" contract. Not part of the public API. */
static PyObject *json_py_encode_append(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                       PyObject *kwnames)
{
    (void)self;
    json_enc_opts_t opts = {0, NULL};
    db_buf_t buf;
    PyObject *res = NULL;
    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "_json_encode_append(prefix: bytes, obj, **options)");
        return NULL;
    }
    if (kwnames != NULL && parse_dumps_kwargs(args + 2, kwnames, &opts) < 0)
        return NULL;
    db_buf_init(&buf);
    /* No zero-length append: memcpy to the NULL data of an empty buffer is undefined. */
    if (PyBytes_GET_SIZE(args[0]) > 0 &&
        db_buf_append(&buf, PyBytes_AS_STRING(args[0]), (size_t)PyBytes_GET_SIZE(args[0])) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (json_encode(args[1], &buf, &opts) < 0)
        goto done;
    res = PyBytes_FromStringAndSize(buf.data ? buf.data : "", (Py_ssize_t)buf.len);
done:
    db_buf_free(&buf);
    return res;
}

/* A str with lone surrogates has no UTF-8 form: report it as a decode error at the
 * surrogate, since the stdlib would accept it but strict JSON text cannot carry it. */
static PyObject *surrogate_error(PyObject *doc)
{
    Py_ssize_t pos = 0;
    PyObject *exc = NULL;
    if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (value == NULL || PyUnicodeEncodeError_GetStart(value, &pos) < 0)
            pos = 0;
        PyErr_Clear();
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        exc =
            PyObject_CallFunction(json_DecodeError, "sOn",
                                  "str contains a lone surrogate (not valid UTF-8 text)", doc, pos);
        if (exc != NULL)
            PyErr_SetObject(json_DecodeError, exc);
        Py_XDECREF(exc);
    }
    return NULL;
}

static PyObject *json_py_loads(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    (void)self;
    if (nargs != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_SetString(PyExc_TypeError, "loads() takes exactly 1 positional argument");
        return NULL;
    }
    PyObject *data = args[0];
    if (PyBytes_Check(data))
        return json_decode(PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data));
    if (PyUnicode_Check(data)) {
        Py_ssize_t n;
        const char *p = PyUnicode_AsUTF8AndSize(data, &n);
        if (p == NULL)
            return surrogate_error(data);
        return json_decode(p, (size_t)n);
    }
    if (PyObject_CheckBuffer(data) && !PyUnicode_Check(data)) {
        Py_buffer view;
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
            return NULL;
        PyObject *res = json_decode(view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
        return res;
    }
    PyErr_Format(PyExc_TypeError,
                 "loads() argument must be bytes, bytearray, memoryview or str, not %.100s",
                 Py_TYPE(data)->tp_name);
    return NULL;
}

PyDoc_STRVAR(dumps_doc,
             "dumps(obj, /, *, default=None, sort_keys=False, indent=None, non_str_keys=False,\n"
             "      naive_utc=False, decimal_as_string=False, option=0) -> bytes\n\n"
             "Serialise obj to compact UTF-8 JSON (RFC 8259). Raises JSONEncodeError.");

PyDoc_STRVAR(loads_doc, "loads(data, /) -> object\n\n"
                        "Parse one strict RFC 8259 JSON document from bytes, bytearray, "
                        "memoryview or str.\nRaises JSONDecodeError (pos counts characters).");

static PyMethodDef json_methods[] = {
    {"dumps", (PyCFunction)(void (*)(void))json_py_dumps, METH_FASTCALL | METH_KEYWORDS, dumps_doc},
    {"loads", (PyCFunction)(void (*)(void))json_py_loads, METH_FASTCALL | METH_KEYWORDS, loads_doc},
    {"_json_encode_append", (PyCFunction)(void (*)(void))json_py_encode_append,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {NULL, NULL, 0, NULL},
};

static int intern_kw(PyObject **slot, const char *name)
{
    *slot = PyUnicode_InternFromString(name);
    return *slot == NULL ? -1 : 0;
}

int json_module_init(PyObject *module)
{
    if (json_errors_init() < 0)
        return -1;
    if (intern_kw(&kw_default, "default") < 0 || intern_kw(&kw_sort_keys, "sort_keys") < 0 ||
        intern_kw(&kw_indent, "indent") < 0 || intern_kw(&kw_non_str_keys, "non_str_keys") < 0 ||
        intern_kw(&kw_naive_utc, "naive_utc") < 0 ||
        intern_kw(&kw_decimal_as_string, "decimal_as_string") < 0 ||
        intern_kw(&kw_option, "option") < 0)
        return -1;
    if (PyModule_AddFunctions(module, json_methods) < 0 || json_model_decoder_init(module) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "JSONEncodeError", json_EncodeError) < 0 ||
        PyModule_AddObjectRef(module, "JSONDecodeError", json_DecodeError) < 0)
        return -1;
    if (PyModule_AddIntConstant(module, "OPT_SORT_KEYS", JSON_OPT_SORT_KEYS) < 0 ||
        PyModule_AddIntConstant(module, "OPT_INDENT_2", JSON_OPT_INDENT_2) < 0 ||
        PyModule_AddIntConstant(module, "OPT_NON_STR_KEYS", JSON_OPT_NON_STR_KEYS) < 0 ||
        PyModule_AddIntConstant(module, "OPT_NAIVE_UTC", JSON_OPT_NAIVE_UTC) < 0 ||
        PyModule_AddIntConstant(module, "OPT_DECIMAL_STRING", JSON_OPT_DECIMAL_STRING) < 0 ||
        PyModule_AddIntConstant(module, "JSON_MAX_DEPTH", JSON_MAX_DEPTH) < 0)
        return -1;
    return 0;
}
