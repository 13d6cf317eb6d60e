/*
 * Argument binding: turns the request's slices into the handler's arguments following the
 * route plan. Path and query values are percent-decoded and converted (str, int, float,
 * bool) with pydantic's lax-mode rules; the JSON body is decoded once by the C codec.
 * Every value that does not convert becomes one FastAPI-style error entry
 * {"type", "loc", "msg", "input"}; the caller answers 422 with all of them.
 *
 * Ownership: args[] receives new references; on any return other than 0 the caller
 * releases whatever was filled (slots start NULL).
 */
#include <stdlib.h>

#include "app/app_internal.h"
#include "common/text.h"
#include "json/json.h"

#define SMALL 256

static const char *const source_names[] = {"path", "query", "body", "request"};

/* Appends {"type", "loc": [source, name], "msg", "input"} to *errors. */
static int add_error(PyObject **errors, const char *type, const arg_plan_t *a, const char *msg,
                     PyObject *input)
{
    int rc = -1;
    PyObject *err = NULL, *loc = NULL;
    if (*errors == NULL && (*errors = PyList_New(0)) == NULL)
        return -1;
    if (a->source == ARG_BODY && !(a->flags & ARG_FLAG_EMBED))
        loc = Py_BuildValue("[s]", "body");
    else
        loc = Py_BuildValue("[sO]", source_names[a->source], a->name);
    if (loc == NULL)
        goto done;
    err = Py_BuildValue("{sssOsssO}", "type", type, "loc", loc, "msg", msg, "input",
                        input ? input : Py_None);
    if (err == NULL)
        goto done;
    rc = PyList_Append(*errors, err);
done:
    Py_XDECREF(loc);
    Py_XDECREF(err);
    return rc;
}

static int is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static int parse_bool(const char *s, size_t n)
{
    static const char *const yes[] = {"1", "on", "t", "true", "y", "yes"};
    static const char *const no[] = {"0", "off", "f", "false", "n", "no"};
    char low[8];
    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] | 0x20 : s[i]);
    for (size_t i = 0; i < 6; i++) {
        if (strlen(yes[i]) == n && memcmp(low, yes[i], n) == 0)
            return 1;
        if (strlen(no[i]) == n && memcmp(low, no[i], n) == 0)
            return 0;
    }
    return -1;
}

/* Converts one decoded text value. Returns a new reference, or NULL with either an
 * exception set (*failed = 0) or a validation error recorded (*failed = 1). */
static PyObject *convert_text(const arg_plan_t *a, const char *s, size_t n, PyObject **errors,
                              int *failed)
{
    PyObject *text = NULL;
    *failed = 0;
    if (a->conv == CONV_INT) {
        /* pydantic's lax str -> int: surrounding whitespace, a sign, digits with single
         * underscores between them (as int() takes them), and a fraction of zeros only. */
        while (n > 0 && is_space(s[0]))
            s++, n--;
        while (n > 0 && is_space(s[n - 1]))
            n--;
        char small[64];
        char *digits = n < sizeof(small) ? small : malloc(n + 1);
        if (digits == NULL)
            return PyErr_NoMemory();
        size_t i = 0, nd = 0;
        int ok = 1;
        if (n > 0 && (s[0] == '-' || s[0] == '+'))
            digits[nd++] = s[i++];
        size_t first = nd;
        for (; i < n && ok; i++) {
            if (s[i] >= '0' && s[i] <= '9')
                digits[nd++] = s[i];
            else if (s[i] == '_')
                ok = nd > first && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9';
            else
                break;
        }
        if (ok && i < n && s[i] == '.' && nd > first) {
            for (i++; i < n && s[i] == '0'; i++)
                ;
        }
        ok = ok && i == n && nd > first && nd - first <= 4300; /* CPython's str->int limit */
        PyObject *res = NULL;
        if (ok && nd - first <= 18) {
            long long v = 0;
            for (size_t k = first; k < nd; k++)
                v = v * 10 + (digits[k] - '0');
            res = PyLong_FromLongLong(first && digits[0] == '-' ? -v : v);
        } else if (ok) {
            digits[nd] = 0;
            res = PyLong_FromString(digits, NULL, 10);
        }
        if (digits != small)
            free(digits);
        if (ok)
            return res;
        text = PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "replace");
        if (text && add_error(errors, "int_parsing", a,
                              "Input should be a valid integer, unable to parse string as an "
                              "integer",
                              text) == 0)
            *failed = 1;
        Py_XDECREF(text);
        return NULL;
    }
    if (a->conv == CONV_FLOAT) {
        char small[64];
        char *z = n < sizeof(small) ? small : malloc(n + 1);
        if (z == NULL)
            return PyErr_NoMemory();
        memcpy(z, s, n);
        z[n] = 0;
        char *end = NULL;
        double d = n ? PyOS_string_to_double(z, &end, NULL) : -1.0;
        int ok = n > 0 && end == z + n && !PyErr_Occurred();
        PyErr_Clear();
        if (z != small)
            free(z);
        if (ok)
            return PyFloat_FromDouble(d);
        /* The slow path takes what float() takes: surrounding whitespace and underscores
         * between digits, as pydantic does. */
        text = PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "replace");
        if (text == NULL)
            return NULL;
        PyObject *f = PyFloat_FromString(text);
        if (f != NULL) {
            Py_DECREF(text);
            return f;
        }
        PyErr_Clear();
        if (add_error(errors, "float_parsing", a,
                      "Input should be a valid number, unable to parse string as a number",
                      text) == 0)
            *failed = 1;
        Py_XDECREF(text);
        return NULL;
    }
    if (a->conv == CONV_BOOL) {
        int b = parse_bool(s, n);
        if (b >= 0)
            return Py_NewRef(b ? Py_True : Py_False);
        text = PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "replace");
        if (text &&
            add_error(errors, "bool_parsing", a,
                      "Input should be a valid boolean, unable to interpret input", text) == 0)
            *failed = 1;
        Py_XDECREF(text);
        return NULL;
    }
    /* CONV_STR and anything textual: invalid UTF-8 is replaced, as Starlette does. */
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "replace");
}

/* Decodes (when needed) then converts a path or query value. */
static PyObject *convert_slice(const arg_plan_t *a, const char *s, size_t n, int plus_is_space,
                               PyObject **errors, int *failed)
{
    if (!db_pct_needs_decoding(s, n, plus_is_space))
        return convert_text(a, s, n, errors, failed);
    char small[SMALL];
    char *buf = n <= SMALL ? small : malloc(n);
    if (buf == NULL)
        return PyErr_NoMemory();
    size_t m = db_pct_decode(buf, s, n, plus_is_space);
    PyObject *res = convert_text(a, buf, m, errors, failed);
    if (buf != small)
        free(buf);
    return res;
}

typedef struct {
    const char *p;
    size_t n;
    int found;
} qslot_t;

/* One pass over the query string: for each "key=value" whose decoded key names a query
 * parameter, remember the value (the last occurrence wins, like Starlette's mapping). */
static void scan_query(const route_plan_t *plan, const char *q, size_t qlen, qslot_t *slots)
{
    size_t i = 0;
    while (i < qlen) {
        size_t start = i;
        while (i < qlen && q[i] != '&')
            i++;
        const char *pair = q + start;
        size_t plen = i - start, klen = 0;
        i++;
        while (klen < plen && pair[klen] != '=')
            klen++;
        if (klen == 0)
            continue;
        const char *key = pair, *val = pair + klen + (klen < plen ? 1 : 0);
        size_t vlen = klen < plen ? plen - klen - 1 : 0;
        char kbuf[SMALL];
        if (db_pct_needs_decoding(key, klen, 1)) {
            if (klen > SMALL)
                continue; /* no parameter name is that long */
            klen = db_pct_decode(kbuf, key, klen, 1);
            key = kbuf;
        }
        for (int k = 0; k < plan->nargs; k++) {
            const arg_plan_t *a = &plan->args[k];
            if (a->source == ARG_QUERY && (size_t)a->cname_len == klen &&
                memcmp(a->cname, key, klen) == 0) {
                slots[k].p = val;
                slots[k].n = vlen;
                slots[k].found = 1;
            }
        }
    }
}

/* Records the decode error currently set as FastAPI's "json_invalid" entry:
 * loc ["body", position], ctx {"error": message}. Other exceptions propagate. */
static int body_json_error(PyObject **errors)
{
    int rc = -1;
    PyObject *exc = app_fetch_exception(), *pos = NULL, *msg = NULL, *err = NULL;
    if (exc == NULL || !PyObject_IsInstance(exc, PyExc_ValueError)) {
        app_restore_exception(exc);
        return -1;
    }
    pos = PyObject_GetAttrString(exc, "pos");
    msg = PyObject_GetAttrString(exc, "msg");
    PyErr_Clear();
    if (*errors == NULL && (*errors = PyList_New(0)) == NULL)
        goto done;
    err = Py_BuildValue("{sss[sO]sss{}s{sO}}", "type", "json_invalid", "loc", "body",
                        pos ? pos : Py_None, "msg", "JSON decode error", "input", "ctx", "error",
                        msg ? msg : Py_None);
    if (err == NULL)
        goto done;
    rc = PyList_Append(*errors, err) < 0 ? -1 : 1;
done:
    Py_DECREF(exc);
    Py_XDECREF(pos);
    Py_XDECREF(msg);
    Py_XDECREF(err);
    return rc;
}

/* Checks a decoded body value against the parameter's kind. Returns a new reference, or
 * NULL with an error recorded (*failed) or an exception set. */
static PyObject *check_body(const arg_plan_t *a, PyObject *value, PyObject **errors, int *failed)
{
    *failed = 0;
    if (value == Py_None && (a->flags & ARG_FLAG_OPTIONAL))
        return Py_NewRef(value);
    if (a->conv == CONV_DICT && !PyDict_Check(value)) {
        if (add_error(errors, "dict_type", a, "Input should be a valid dictionary", value) == 0)
            *failed = 1;
        return NULL;
    }
    if (a->conv == CONV_LIST && !PyList_Check(value)) {
        if (add_error(errors, "list_type", a, "Input should be a valid list", value) == 0)
            *failed = 1;
        return NULL;
    }
    if (a->conv != CONV_MODEL)
        return Py_NewRef(value);
    /* The validator returns (True, value) or (False, [error dicts with loc relative to
     * the value]); the locations are prefixed with this parameter's own. */
    PyObject *res = PyObject_CallOneArg(a->validator, value), *out = NULL;
    if (res == NULL)
        return NULL;
    if (!PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 2) {
        PyErr_SetString(PyExc_TypeError, "validator must return (ok, value)");
        goto done;
    }
    if (PyObject_IsTrue(PyTuple_GET_ITEM(res, 0))) {
        out = Py_NewRef(PyTuple_GET_ITEM(res, 1));
        goto done;
    }
    PyObject *list = PyTuple_GET_ITEM(res, 1);
    if (*errors == NULL && (*errors = PyList_New(0)) == NULL)
        goto done;
    Py_ssize_t n = PySequence_Size(list);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PySequence_GetItem(list, i), *loc = NULL, *prefix = NULL, *full = NULL;
        int ok = -1;
        if (e == NULL || !PyDict_Check(e))
            goto item_done;
        loc = PyDict_GetItemString(e, "loc");
        if (a->flags & ARG_FLAG_EMBED)
            prefix = Py_BuildValue("[sO]", "body", a->name);
        else
            prefix = Py_BuildValue("[s]", "body");
        if (prefix == NULL)
            goto item_done;
        if (loc != NULL) {
            PyObject *rest = PySequence_List(loc);
            full = rest ? PySequence_Concat(prefix, rest) : NULL;
            Py_XDECREF(rest);
        } else {
            full = Py_NewRef(prefix);
        }
        if (full == NULL)
            goto item_done;
        ok = PyDict_SetItemString(e, "loc", full);
        if (ok == 0)
            ok = PyList_Append(*errors, e);
    item_done:
        Py_XDECREF(e);
        Py_XDECREF(prefix);
        Py_XDECREF(full);
        if (ok < 0)
            goto done;
    }
    *failed = 1;
done:
    Py_DECREF(res);
    return out;
}

/* Resolves one body parameter from the (lazily decoded) body. */
static PyObject *bind_body(const arg_plan_t *a, server_request_t *req, PyObject **decoded,
                           PyObject **errors, int *failed)
{
    *failed = 0;
    if (a->conv == CONV_BYTES)
        return PyBytes_FromStringAndSize(req->body ? req->body : "", (Py_ssize_t)req->body_len);
    if (req->body_len == 0) {
        if (a->def)
            return Py_NewRef(a->def);
        if (add_error(errors, "missing", a, "Field required", NULL) == 0)
            *failed = 1;
        return NULL;
    }
    if (*decoded == NULL) {
        *decoded = json_decode(req->body, req->body_len);
        if (*decoded == NULL) {
            int r = body_json_error(errors);
            if (r > 0) {
                *failed = 2; /* reported once for all body parameters */
                *decoded = Py_NewRef(Py_None);
            }
            return NULL;
        }
    }
    PyObject *value = *decoded;
    if (a->flags & ARG_FLAG_EMBED) {
        value = PyDict_Check(*decoded) ? PyDict_GetItemWithError(*decoded, a->name) : NULL;
        if (value == NULL) {
            if (PyErr_Occurred())
                return NULL;
            if (a->def)
                return Py_NewRef(a->def);
            if (add_error(errors, "missing", a, "Field required", NULL) == 0)
                *failed = 1;
            return NULL;
        }
    }
    return check_body(a, value, errors, failed);
}

int bind_arguments(const route_plan_t *plan, const router_match_t *m, server_request_t *req,
                   PyObject **args, PyObject **request_obj, PyObject **errors)
{
    qslot_t small_slots[16];
    qslot_t *slots = NULL;
    PyObject *decoded = NULL;
    int rc = -1, body_failed = 0;
    if (plan->has_query) {
        slots = plan->nargs <= 16 ? small_slots : calloc((size_t)plan->nargs, sizeof(qslot_t));
        if (slots == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memset(slots, 0, sizeof(qslot_t) * (size_t)plan->nargs);
        scan_query(plan, req->head->query, req->head->query_len, slots);
    }
    for (int i = 0; i < plan->nargs; i++) {
        const arg_plan_t *a = &plan->args[i];
        PyObject *v = NULL;
        int failed = 0;
        switch (a->source) {
        case ARG_PATH: {
            const router_param_t *p = &m->params[a->path_index];
            v = convert_slice(a, p->value, p->value_len, 0, errors, &failed);
            break;
        }
        case ARG_QUERY:
            if (slots[i].found)
                v = convert_slice(a, slots[i].p, slots[i].n, 1, errors, &failed);
            else if (a->def)
                v = Py_NewRef(a->def);
            else if (add_error(errors, "missing", a, "Field required", NULL) == 0)
                failed = 1;
            break;
        case ARG_BODY:
            if (body_failed == 2)
                continue;
            v = bind_body(a, req, &decoded, errors, &failed);
            if (failed == 2)
                body_failed = 2;
            break;
        default:
            if (*request_obj == NULL)
                *request_obj = request_new(req, m);
            v = Py_XNewRef(*request_obj);
            break;
        }
        if (v == NULL && !failed)
            goto done;
        args[i] = v;
    }
    rc = *errors ? 1 : 0;
done:
    Py_XDECREF(decoded);
    if (slots && slots != small_slots)
        free(slots);
    return rc;
}
