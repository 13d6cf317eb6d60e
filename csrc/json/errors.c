/*
 * The codec's exception classes and the decode-error constructor (owned by the JSON
 * codec). JSONEncodeError subclasses TypeError, as the stdlib raises TypeError for
 * unserialisable objects. JSONDecodeError subclasses json.JSONDecodeError (itself a
 * ValueError) so that `except json.JSONDecodeError` catches it and msg, doc, pos, lineno
 * and colno mean what they mean in the stdlib: the stdlib's __init__ computes line and
 * column from doc and pos. pos counts characters, not bytes, also for bytes input (the
 * document is decoded with replacement characters for the exception's doc).
 */
#include "json/json_internal.h"

PyObject *json_EncodeError;
PyObject *json_DecodeError;

int json_errors_init(void)
{
    if (json_EncodeError != NULL)
        return 0;
    PyObject *json = NULL, *base = NULL;
    int rc = -1;
    json_EncodeError = PyErr_NewExceptionWithDoc(
        "data_bridge.json.JSONEncodeError",
        "Raised by dumps for an object that has no JSON form: an unsupported type, NaN or "
        "Infinity, a circular reference, nesting beyond the depth limit, a non-str key.",
        PyExc_TypeError, NULL);
    if (json_EncodeError == NULL)
        goto done;
    if ((json = PyImport_ImportModule("json")) == NULL)
        goto done;
    if ((base = PyObject_GetAttrString(json, "JSONDecodeError")) == NULL)
        goto done;
    json_DecodeError = PyErr_NewExceptionWithDoc(
        "data_bridge.json.JSONDecodeError",
        "Raised by loads for a document that is not strict RFC 8259 JSON. A subclass of "
        "json.JSONDecodeError: msg, doc, pos (in characters), lineno and colno are set.",
        base, NULL);
    if (json_DecodeError == NULL)
        goto done;
    rc = 0;
done:
    Py_XDECREF(json);
    Py_XDECREF(base);
    return rc;
}

void json_raise_decode_error(const char *p, size_t n, size_t pos, const char *msg)
{
    PyObject *doc = NULL, *exc = NULL;
    if (pos > n)
        pos = n;
    /* Everything before the error position has been validated as UTF-8, so its character
     * count is the number of bytes that do not continue a sequence. */
    Py_ssize_t chars = 0;
    for (size_t i = 0; i < pos; i++)
        chars += ((unsigned char)p[i] & 0xC0) != 0x80;
    doc = PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, "replace");
    if (doc == NULL)
        goto done;
    exc = PyObject_CallFunction(json_DecodeError, "sOn", msg, doc, chars);
    if (exc == NULL)
        goto done;
    PyErr_SetObject(json_DecodeError, exc);
done:
    Py_XDECREF(doc);
    Py_XDECREF(exc);
}
