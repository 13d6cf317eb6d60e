/*
 * The encoder's slow path (owned by the JSON codec): subclasses of the core types,
 * datetime/date/time (RFC 3339 text, the same as isoformat()), timedelta (total seconds,
 * as FastAPI's jsonable_encoder), UUID, Enum (its value),
 * Decimal (a number, or a string under JSON_OPT_DECIMAL_STRING), dataclasses (fields in
 * definition order), pydantic v2 models (encode_model.c; model_dump(mode="json",
 * by_alias=True) under sort_keys/indent) and, last, the caller's
 * `default`. The stdlib classes are looked up once, on the first object that reaches this
 * path, so importing data_bridge costs nothing for them; pydantic is never imported: a
 * model is recognised by its __pydantic_serializer__ attribute. The looked-up objects are
 * strong references kept for the life of the process.
 */
#include <math.h>
#include <string.h>

#include "json/dtoa.h"
#include "json/json_internal.h"

/* After Python.h (via json.h): datetime.h relies on its types. */
#include <datetime.h>

static int types_loaded;
static PyObject *uuid_type;         /* uuid.UUID */
static PyObject *decimal_type;      /* decimal.Decimal */
static PyObject *enum_type;         /* enum.Enum */
static PyObject *field_marker;      /* dataclasses._FIELD: marks real fields */
static PyObject *str_value_;        /* "_value_" */
static PyObject *str_dc_fields;     /* "__dataclass_fields__" */
static PyObject *str_struct_fields; /* "__struct_fields__" (msgspec.Struct) */
static PyObject *to_builtins;       /* msgspec.to_builtins, imported on first use */
static PyObject *str_field_type;    /* "_field_type" */
static PyObject *str_name;          /* "name" */
static PyObject *str_pyd_ser;       /* "__pydantic_serializer__" */
static PyObject *str_model_dump;    /* "model_dump" */
static PyObject *str_utcoffset;     /* "utcoffset" */
static PyObject *dump_kwargs;       /* {"mode": "json", "by_alias": True} */

static PyObject *import_attr(const char *module, const char *name)
{
    PyObject *m = PyImport_ImportModule(module);
    if (m == NULL)
        return NULL;
    PyObject *attr = PyObject_GetAttrString(m, name);
    Py_DECREF(m);
    return attr;
}

static int load_types(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return -1;
    if ((uuid_type = import_attr("uuid", "UUID")) == NULL ||
        (decimal_type = import_attr("decimal", "Decimal")) == NULL ||
        (enum_type = import_attr("enum", "Enum")) == NULL ||
        (field_marker = import_attr("dataclasses", "_FIELD")) == NULL ||
        (str_value_ = PyUnicode_InternFromString("_value_")) == NULL ||
        (str_dc_fields = PyUnicode_InternFromString("__dataclass_fields__")) == NULL ||
        (str_struct_fields = PyUnicode_InternFromString("__struct_fields__")) == NULL ||
        (str_field_type = PyUnicode_InternFromString("_field_type")) == NULL ||
        (str_name = PyUnicode_InternFromString("name")) == NULL ||
        (str_pyd_ser = PyUnicode_InternFromString("__pydantic_serializer__")) == NULL ||
        (str_model_dump = PyUnicode_InternFromString("model_dump")) == NULL ||
        (str_utcoffset = PyUnicode_InternFromString("utcoffset")) == NULL ||
        (dump_kwargs = Py_BuildValue("{s:s,s:O}", "mode", "json", "by_alias", Py_True)) == NULL)
        return -1;
    types_loaded = 1;
    return 0;
}

static inline int ensure_types(void)
{
    return JSON_LIKELY(types_loaded) ? 0 : load_types();
}

static char *put2(char *d, int v)
{
    memcpy(d, json_digits2 + 2 * v, 2);
    return d + 2;
}

static char *put_fraction(char *d, int us)
{
    *d++ = '.';
    d = put2(d, us / 10000);
    d = put2(d, us / 100 % 100);
    return put2(d, us % 100);
}

static char *put_time(char *d, int h, int m, int s, int us)
{
    d = put2(d, h);
    *d++ = ':';
    d = put2(d, m);
    *d++ = ':';
    d = put2(d, s);
    return us ? put_fraction(d, us) : d;
}

/* Appends the UTC offset of an aware datetime or time ("+HH:MM", with ":SS[.ffffff]" when
 * the offset has them, as isoformat() does); nothing when utcoffset() is None. Returns the
 * new end, or NULL with an exception set. */
static char *put_offset(char *d, PyObject *obj, int *aware)
{
    PyObject *off = PyObject_CallMethodNoArgs(obj, str_utcoffset);
    char *res = NULL;
    if (off == NULL)
        goto done;
    if (off == Py_None) {
        *aware = 0;
        res = d;
        goto done;
    }
    if (!PyDelta_Check(off)) {
        PyErr_SetString(json_EncodeError, "utcoffset() did not return a timedelta");
        goto done;
    }
    *aware = 1;
    long total = PyDateTime_DELTA_GET_DAYS(off) * 86400L + PyDateTime_DELTA_GET_SECONDS(off);
    int us = PyDateTime_DELTA_GET_MICROSECONDS(off);
    if (total < 0) {
        *d++ = '-';
        /* Negative deltas are normalised with positive seconds/microseconds. */
        if (us) {
            total += 1;
            us = 1000000 - us;
        }
        total = -total;
    } else {
        *d++ = '+';
    }
    d = put2(d, (int)(total / 3600 % 100));
    *d++ = ':';
    d = put2(d, (int)(total / 60 % 60));
    if (total % 60 || us) {
        *d++ = ':';
        d = put2(d, (int)(total % 60));
        if (us)
            d = put_fraction(d, us);
    }
    res = d;
done:
    Py_XDECREF(off);
    return res;
}

static char *put_date(char *d, int y, int m, int day)
{
    d = put2(d, y / 100);
    d = put2(d, y % 100);
    *d++ = '-';
    d = put2(d, m);
    *d++ = '-';
    return put2(d, day);
}

int json_format_datetime(PyObject *obj, unsigned flags, char *buf)
{
    if (ensure_types() < 0)
        return -1;
    char *d = buf;
    int aware = 0;
    if (PyDateTime_Check(obj)) {
        d = put_date(d, PyDateTime_GET_YEAR(obj), PyDateTime_GET_MONTH(obj),
                     PyDateTime_GET_DAY(obj));
        *d++ = 'T';
        d = put_time(d, PyDateTime_DATE_GET_HOUR(obj), PyDateTime_DATE_GET_MINUTE(obj),
                     PyDateTime_DATE_GET_SECOND(obj), PyDateTime_DATE_GET_MICROSECOND(obj));
        if ((d = put_offset(d, obj, &aware)) == NULL)
            return -1;
        if (!aware && (flags & JSON_OPT_NAIVE_UTC))
            *d++ = 'Z';
        return (int)(d - buf);
    }
    if (PyDate_Check(obj)) {
        d = put_date(d, PyDateTime_GET_YEAR(obj), PyDateTime_GET_MONTH(obj),
                     PyDateTime_GET_DAY(obj));
        return (int)(d - buf);
    }
    if (PyTime_Check(obj)) {
        d = put_time(d, PyDateTime_TIME_GET_HOUR(obj), PyDateTime_TIME_GET_MINUTE(obj),
                     PyDateTime_TIME_GET_SECOND(obj), PyDateTime_TIME_GET_MICROSECOND(obj));
        if ((d = put_offset(d, obj, &aware)) == NULL)
            return -1;
        return (int)(d - buf);
    }
    return 0;
}

/* str(Decimal) of a finite value is always a valid JSON number ([-]digits[.digits][E±n]);
 * NaN, sNaN and Infinity are refused like float NaN and Infinity. */
static PyObject *decimal_text(PyObject *obj)
{
    PyObject *s = PyObject_Str(obj);
    if (s == NULL)
        return NULL;
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(s, &n);
    if (p == NULL) {
        Py_DECREF(s);
        return NULL;
    }
    if (memchr(p, 'N', (size_t)n) || memchr(p, 'n', (size_t)n) || memchr(p, 'I', (size_t)n)) {
        PyErr_Format(json_EncodeError, "Decimal %s is not allowed in JSON", p);
        Py_DECREF(s);
        return NULL;
    }
    return s;
}

static int put_raw(json_encoder_t *e, const char *p, size_t n, int quoted)
{
    if (json_reserve(e, n + 2) < 0)
        return -1;
    char *d = e->out->data + e->out->len;
    if (quoted)
        *d++ = '"';
    memcpy(d, p, n);
    d += n;
    if (quoted)
        *d++ = '"';
    e->out->len = (size_t)(d - e->out->data);
    return 0;
}

static int put_str_object(json_encoder_t *e, PyObject *s, int quoted)
{
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(s, &n);
    if (p == NULL)
        return -1;
    return put_raw(e, p, (size_t)n, quoted);
}

/* Encodes `value` in place of `owner` (an Enum, a model, default()'s argument), one level
 * deeper so that a conversion that keeps producing new objects stops at the depth limit. */
static int encode_converted(json_encoder_t *e, PyObject *owner, PyObject *value)
{
    if (json_enc_push(e, owner) < 0)
        return -1;
    int rc = json_encode_value(e, value);
    json_enc_pop(e);
    return rc;
}

/* A dataclass becomes a dict of its fields (ClassVar and InitVar pseudo-fields excluded,
 * as dataclasses.fields() does), then goes through the dict writer for sort_keys/indent. */
static int encode_dataclass(json_encoder_t *e, PyObject *obj, PyObject *fields)
{
    int rc = -1;
    PyObject *dict = NULL, *ftype = NULL, *value = NULL;
    if (!PyDict_Check(fields)) {
        PyErr_SetString(json_EncodeError, "__dataclass_fields__ is not a dict");
        goto done;
    }
    if ((dict = PyDict_New()) == NULL)
        goto done;
    Py_ssize_t pos = 0;
    PyObject *name, *field;
    while (PyDict_Next(fields, &pos, &name, &field)) {
        ftype = PyObject_GetAttr(field, str_field_type);
        if (ftype == NULL)
            goto done;
        int is_field = ftype == field_marker;
        Py_CLEAR(ftype);
        if (!is_field)
            continue;
        value = PyObject_GetAttr(obj, name);
        if (value == NULL || PyDict_SetItem(dict, name, value) < 0)
            goto done;
        Py_CLEAR(value);
    }
    rc = encode_converted(e, obj, dict);
done:
    Py_XDECREF(dict);
    Py_XDECREF(ftype);
    Py_XDECREF(value);
    return rc;
}

/* PyObject_GetOptionalAttr exists only from 3.13: *res is NULL when there is no such
 * attribute, and the return value is -1 only for a real error. */
static int get_optional_attr(PyObject *obj, PyObject *name, PyObject **res)
{
    *res = PyObject_GetAttr(obj, name);
    if (*res != NULL)
        return 0;
    if (!PyErr_ExceptionMatches(PyExc_AttributeError))
        return -1;
    PyErr_Clear();
    return 0;
}

static int not_serializable(PyObject *obj)
{
    PyErr_Format(json_EncodeError, "Type is not JSON serializable: %.200s (pass default=)",
                 Py_TYPE(obj)->tp_name);
    return -1;
}

int json_encode_other(json_encoder_t *e, PyObject *obj)
{
    int rc = json_encode_core_subclass(e, obj);
    if (rc <= 0)
        return rc;
    if (!(e->flags & (JSON_OPT_SORT_KEYS | JSON_OPT_INDENT_2))) {
        /* A model class seen before: straight to its cached plan, without the type
         * tests and attribute lookups below. */
        rc = json_encode_cached_model(e, obj);
        if (rc <= 0)
            return rc;
    }
    if (ensure_types() < 0)
        return -1;
    PyObject *tmp = NULL, *fields = NULL;
    PyTypeObject *t = Py_TYPE(obj);
    char buf[64];
    rc = -1;
    Py_INCREF(obj); /* Python code below may drop the container's reference. */

    int n = json_format_datetime(obj, e->flags, buf);
    if (n != 0) {
        if (n > 0)
            rc = put_raw(e, buf, (size_t)n, 1);
        goto done;
    }
    if (PyDelta_Check(obj)) {
        /* A timedelta as its total seconds, as FastAPI's jsonable_encoder writes it. */
        double secs = (double)PyDateTime_DELTA_GET_DAYS(obj) * 86400.0 +
                      (double)PyDateTime_DELTA_GET_SECONDS(obj) +
                      (double)PyDateTime_DELTA_GET_MICROSECONDS(obj) / 1e6;
        n = json_dtoa(secs, buf);
        rc = put_raw(e, buf, (size_t)n, 0);
        goto done;
    }
    if ((PyObject *)t == uuid_type || PyObject_TypeCheck(obj, (PyTypeObject *)uuid_type)) {
        if ((tmp = PyObject_Str(obj)) != NULL)
            rc = put_str_object(e, tmp, 1);
        goto done;
    }
    if (PyObject_TypeCheck(obj, (PyTypeObject *)enum_type)) {
        if ((tmp = PyObject_GetAttr(obj, str_value_)) != NULL)
            rc = encode_converted(e, obj, tmp);
        goto done;
    }
    if (PyObject_TypeCheck(obj, (PyTypeObject *)decimal_type)) {
        if ((tmp = decimal_text(obj)) != NULL)
            rc = put_str_object(e, tmp, (e->flags & JSON_OPT_DECIMAL_STRING) != 0);
        goto done;
    }
    if (get_optional_attr((PyObject *)t, str_dc_fields, &fields) < 0)
        goto done;
    if (fields != NULL) {
        /* A dataclass response model is written as pydantic writes it (encode_model.c). */
        rc = e->flags & JSON_OPT_AS_MODEL && !(e->flags & (JSON_OPT_SORT_KEYS | JSON_OPT_INDENT_2))
                 ? json_encode_model(e, obj)
                 : encode_dataclass(e, obj, fields);
        goto done;
    }
    if (!(e->flags & (JSON_OPT_SORT_KEYS | JSON_OPT_INDENT_2)) &&
        get_optional_attr((PyObject *)t, str_pyd_ser, &tmp) < 0)
        goto done;
    if (tmp != NULL) {
        /* Written from its __dict__ when its class is plain, else by its serializer's
         * to_json(); either way the text pydantic writes, without a dict in between. */
        rc = json_encode_model(e, obj);
        goto done;
    }
    if (PyObject_HasAttr((PyObject *)t, str_pyd_ser)) {
        /* sort_keys or indent: the model's data go through the dict writer. */
        PyObject *meth = PyObject_GetAttr(obj, str_model_dump);
        if (meth == NULL)
            goto done;
        PyObject *empty = PyTuple_New(0);
        if (empty != NULL)
            tmp = PyObject_Call(meth, empty, dump_kwargs);
        Py_XDECREF(empty);
        Py_DECREF(meth);
        if (tmp != NULL)
            rc = encode_converted(e, obj, tmp);
        goto done;
    }
    if (PyObject_HasAttr((PyObject *)t, str_struct_fields)) {
        /* A msgspec.Struct: msgspec's own builtins (its rename, omit_defaults and tag
         * settings applied), then written like any dict. */
        if (to_builtins == NULL) {
            PyObject *m = PyImport_ImportModule("msgspec");
            to_builtins = m ? PyObject_GetAttrString(m, "to_builtins") : NULL;
            Py_XDECREF(m);
        }
        if (to_builtins != NULL && (tmp = PyObject_CallOneArg(to_builtins, obj)) != NULL)
            rc = encode_converted(e, obj, tmp);
        goto done;
    }
    if (e->default_fn != NULL) {
        if ((tmp = PyObject_CallOneArg(e->default_fn, obj)) != NULL)
            rc = encode_converted(e, obj, tmp);
        goto done;
    }
    rc = not_serializable(obj);
done:
    Py_XDECREF(tmp);
    Py_XDECREF(fields);
    Py_DECREF(obj);
    return rc;
}

PyObject *json_key_to_str(json_encoder_t *e, PyObject *key)
{
    char buf[64];
    if (key == Py_None)
        return PyUnicode_FromString("null");
    if (key == Py_True)
        return PyUnicode_FromString("true");
    if (key == Py_False)
        return PyUnicode_FromString("false");
    if (ensure_types() < 0)
        return NULL;
    if (PyObject_TypeCheck(key, (PyTypeObject *)enum_type)) {
        PyObject *value = PyObject_GetAttr(key, str_value_);
        if (value == NULL)
            return NULL;
        PyObject *res = PyUnicode_Check(value) ? Py_NewRef(value) : json_key_to_str(e, value);
        Py_DECREF(value);
        return res;
    }
    if (PyLong_Check(key))
        return PyLong_Type.tp_repr(key);
    if (PyFloat_Check(key)) {
        double v = PyFloat_AS_DOUBLE(key);
        if (!isfinite(v)) {
            PyErr_SetString(json_EncodeError, "NaN and Infinity are not allowed as JSON keys");
            return NULL;
        }
        return PyUnicode_FromStringAndSize(buf, json_dtoa(v, buf));
    }
    int n = json_format_datetime(key, e->flags, buf);
    if (n < 0)
        return NULL;
    if (n > 0)
        return PyUnicode_FromStringAndSize(buf, n);
    if (PyObject_TypeCheck(key, (PyTypeObject *)uuid_type))
        return PyObject_Str(key);
    if (PyObject_TypeCheck(key, (PyTypeObject *)decimal_type))
        return decimal_text(key);
    PyErr_Format(json_EncodeError, "dict key of type %.200s cannot be converted to str",
                 Py_TYPE(key)->tp_name);
    return NULL;
}
