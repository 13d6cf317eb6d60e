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
#include <strings.h>

#include "app/app_internal.h"
#include "common/text.h"
#include "form/form.h"
#include "json/json.h"

#define SMALL 256

/* Error locations by source, as FastAPI writes them (a form field is in the "body"). */
static const char *const source_names[] = {"path",   "query",  "body", "request",
                                           "header", "cookie", "body"};

/* Appends {"type", "loc": [source, key(, index)], "msg", "input"(, "ctx")} to *errors, the
 * shape of FastAPI's 422 entries (the location names the alias, as FastAPI's does). index
 * is the position in a list parameter, or -1; ctx may be NULL. */
static int add_error_at(PyObject **errors, const char *type, const arg_plan_t *a, Py_ssize_t index,
                        const char *msg, PyObject *input, PyObject *ctx)
{
    int rc = -1;
    PyObject *err = NULL, *loc = NULL;
    if (*errors == NULL && (*errors = PyList_New(0)) == NULL)
        return -1;
    if (a->source == ARG_BODY && !(a->flags & ARG_FLAG_EMBED))
        loc = Py_BuildValue("[s]", "body");
    else if (index >= 0)
        loc = Py_BuildValue("[sOn]", source_names[a->source], a->key, index);
    else
        loc = Py_BuildValue("[sO]", source_names[a->source], a->key);
    if (loc == NULL)
        goto done;
    err = Py_BuildValue("{sssOsssO}", "type", type, "loc", loc, "msg", msg, "input",
                        input ? input : Py_None);
    if (err == NULL || (ctx != NULL && PyDict_SetItemString(err, "ctx", ctx) < 0))
        goto done;
    rc = PyList_Append(*errors, err);
done:
    Py_XDECREF(loc);
    Py_XDECREF(err);
    return rc;
}

static int add_error(PyObject **errors, const char *type, const arg_plan_t *a, const char *msg,
                     PyObject *input)
{
    return add_error_at(errors, type, a, -1, msg, input, NULL);
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
static PyObject *convert_text(const arg_plan_t *a, Py_ssize_t index, const char *s, size_t n,
                              PyObject **errors, int *failed)
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
            size_t zeros = ++i;
            while (i < n && s[i] == '0')
                i++;
            ok = i > zeros; /* "1.0" is an integer to pydantic, "1." is not */
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
        if (text && add_error_at(errors, "int_parsing", a, index,
                                 "Input should be a valid integer, unable to parse string as an "
                                 "integer",
                                 text, NULL) == 0)
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
        if (add_error_at(errors, "float_parsing", a, index,
                         "Input should be a valid number, unable to parse string as a number", text,
                         NULL) == 0)
            *failed = 1;
        Py_XDECREF(text);
        return NULL;
    }
    if (a->conv == CONV_BOOL) {
        int b = parse_bool(s, n);
        if (b >= 0)
            return Py_NewRef(b ? Py_True : Py_False);
        text = PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "replace");
        if (text && add_error_at(errors, "bool_parsing", a, index,
                                 "Input should be a valid boolean, unable to interpret input", text,
                                 NULL) == 0)
            *failed = 1;
        Py_XDECREF(text);
        return NULL;
    }
    /* CONV_STR and anything textual: invalid UTF-8 is replaced, as Starlette does; header
     * values are latin-1 (RFC 9110 §5.5 obs-text), as Starlette decodes them. */
    if (a->source == ARG_HEADER || a->source == ARG_COOKIE)
        return PyUnicode_DecodeLatin1(s, (Py_ssize_t)n, NULL);
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "replace");
}

/* Decodes (when needed) then converts a path or query value. */
static PyObject *convert_slice(const arg_plan_t *a, Py_ssize_t index, const char *s, size_t n,
                               int plus_is_space, PyObject **errors, int *failed)
{
    if (!db_pct_needs_decoding(s, n, plus_is_space))
        return convert_text(a, index, s, n, errors, failed);
    char small[SMALL];
    char *buf = n <= SMALL ? small : malloc(n);
    if (buf == NULL)
        return PyErr_NoMemory();
    size_t m = db_pct_decode(buf, s, n, plus_is_space);
    PyObject *res = convert_text(a, index, buf, m, errors, failed);
    if (buf != small)
        free(buf);
    return res;
}

typedef struct {
    const char *p;
    size_t n;
    int found;
    int raw; /* a multipart part's content: no percent-decoding */
} qslot_t;

/* One pass over the query string: for each "key=value" whose decoded key names a query
 * parameter, remember the value (the last occurrence wins, like Starlette's mapping). List
 * parameters collect every occurrence separately (bind_query_list). */
static int next_pair(const char *q, size_t qlen, size_t *i, const char **key, size_t *klen,
                     const char **val, size_t *vlen);
static int query_key(const char **key, size_t *klen, char *kbuf);

static void scan_query(const route_plan_t *plan, int source, const char *q, size_t qlen,
                       qslot_t *slots)
{
    const char *key, *val;
    size_t klen, vlen, i = 0;
    char kbuf[SMALL];
    while (next_pair(q, qlen, &i, &key, &klen, &val, &vlen)) {
        if (!query_key(&key, &klen, kbuf))
            continue;
        for (int k = 0; k < plan->nargs; k++) {
            const arg_plan_t *a = &plan->args[k];
            if (a->source == source && !(a->flags & ARG_FLAG_LIST) && (size_t)a->ckey_len == klen &&
                memcmp(a->ckey, key, klen) == 0) {
                slots[k].p = val;
                slots[k].n = vlen;
                slots[k].found = 1;
            }
        }
    }
}

/* The text of a request slice as an error's "input" (decoded like the value was). */
static PyObject *slice_text(const arg_plan_t *a, const char *s, size_t n, int pct, int plus)
{
    if (a->source == ARG_HEADER || a->source == ARG_COOKIE)
        return PyUnicode_DecodeLatin1(s, (Py_ssize_t)n, NULL);
    if (!pct || !db_pct_needs_decoding(s, n, plus))
        return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "replace");
    char *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return PyErr_NoMemory();
    size_t m = db_pct_decode(buf, s, n, plus);
    PyObject *res = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)m, "replace");
    free(buf);
    return res;
}

/* Records one failed constraint: message built from a format with the bound, ctx {key: bound}.
 * Returns 1 (recorded) or -1 (exception). */
static int constraint_error(PyObject **errors, const char *type, const arg_plan_t *a,
                            Py_ssize_t index, PyObject *msg, const char *ctx_key, PyObject *bound,
                            PyObject *input)
{
    PyObject *ctx;
    const char *cmsg;
    int rc = -1;
    if (msg == NULL)
        return -1;
    cmsg = PyUnicode_AsUTF8(msg);
    ctx = cmsg ? Py_BuildValue("{sO}", ctx_key, bound) : NULL;
    if (ctx != NULL && add_error_at(errors, type, a, index, cmsg, input, ctx) == 0)
        rc = 1;
    Py_XDECREF(ctx);
    Py_DECREF(msg);
    return rc;
}

/* Compares value with a bound; returns 1 when `value op bound` holds, 0 when not, -1 on
 * error (e.g. comparing incomparable types is a TypeError). */
static int holds(PyObject *value, PyObject *bound, int op)
{
    return PyObject_RichCompareBool(value, bound, op);
}

/* min_length/max_length of a str (in characters) or a list (in items), with pydantic's
 * error types and messages. Returns 0 (ok), 1 (an error recorded) or -1. */
static int check_length(const arg_plan_t *a, Py_ssize_t index, Py_ssize_t len, int is_list,
                        PyObject *input, PyObject **errors)
{
    int short_ = a->min_len >= 0 && len < a->min_len;
    if (!short_ && !(a->max_len >= 0 && len > a->max_len))
        return 0;
    Py_ssize_t limit = short_ ? a->min_len : a->max_len;
    const char *side = short_ ? "at least" : "at most", *plural = limit == 1 ? "" : "s";
    PyObject *msg =
        is_list
            ? PyUnicode_FromFormat("List should have %s %zd item%s after validation, not %zd", side,
                                   limit, plural, len)
            : PyUnicode_FromFormat("String should have %s %zd character%s", side, limit, plural);
    PyObject *bound = PyLong_FromSsize_t(limit);
    if (bound == NULL) {
        Py_XDECREF(msg);
        return -1;
    }
    const char *type = is_list ? (short_ ? "too_short" : "too_long")
                               : (short_ ? "string_too_short" : "string_too_long");
    int r = constraint_error(errors, type, a, index, msg, short_ ? "min_length" : "max_length",
                             bound, input);
    Py_DECREF(bound);
    return r;
}

/* Applies the parameter's constraints (pydantic's order: bounds, lengths, pattern) to a
 * converted scalar, or the lengths to a whole list (index -1 with a list value). input is
 * what the error shows (the request's text). Returns 0 (ok), 1 (an error recorded) or -1. */
static int check_constraints(const arg_plan_t *a, Py_ssize_t index, PyObject *value,
                             PyObject *input, PyObject **errors)
{
    int r;
    if (!a->has_checks || value == Py_None)
        return 0;
    if (PyList_Check(value))
        return check_length(a, -1, PyList_GET_SIZE(value), 1, input, errors);
    if (PyLong_Check(value) || PyFloat_Check(value)) {
        if (a->gt && (r = holds(value, a->gt, Py_GT)) != 1)
            return r < 0 ? -1
                         : constraint_error(
                               errors, "greater_than", a, index,
                               PyUnicode_FromFormat("Input should be greater than %S", a->gt), "gt",
                               a->gt, input);
        if (a->ge && (r = holds(value, a->ge, Py_GE)) != 1)
            return r < 0
                       ? -1
                       : constraint_error(errors, "greater_than_equal", a, index,
                                          PyUnicode_FromFormat(
                                              "Input should be greater than or equal to %S", a->ge),
                                          "ge", a->ge, input);
        if (a->lt && (r = holds(value, a->lt, Py_LT)) != 1)
            return r < 0 ? -1
                         : constraint_error(
                               errors, "less_than", a, index,
                               PyUnicode_FromFormat("Input should be less than %S", a->lt), "lt",
                               a->lt, input);
        if (a->le && (r = holds(value, a->le, Py_LE)) != 1)
            return r < 0 ? -1
                         : constraint_error(errors, "less_than_equal", a, index,
                                            PyUnicode_FromFormat(
                                                "Input should be less than or equal to %S", a->le),
                                            "le", a->le, input);
        return 0;
    }
    if (PyUnicode_Check(value)) {
        r = check_length(a, index, PyUnicode_GET_LENGTH(value), 0, input, errors);
        if (r != 0)
            return r;
        if (a->pattern) {
            PyObject *m = PyObject_CallMethod(a->pattern, "search", "O", value);
            if (m == NULL)
                return -1;
            r = m != Py_None;
            Py_DECREF(m);
            if (!r) {
                PyObject *src = PyObject_GetAttrString(a->pattern, "pattern");
                r = src ? constraint_error(
                              errors, "string_pattern_mismatch", a, index,
                              PyUnicode_FromFormat("String should match pattern '%S'", src),
                              "pattern", src, input)
                        : -1;
                Py_XDECREF(src);
                return r;
            }
        }
    }
    return 0;
}

/* Converts a slice and applies the constraints. Returns a new reference, or NULL with
 * *failed set (an error recorded) or an exception. */
/* A path/query/header/cookie/form value of a type the binder does not convert itself
 * (Enum, UUID, datetime, Decimal, Literal, ...): the text goes through the parameter's
 * pydantic validator, which returns (True, value) or (False, [errors with loc relative to
 * the value]); the errors are located under the parameter (and list index). Returns a new
 * reference, or NULL with *failed set or an exception set. Consumes text. */
static PyObject *validate_text(const arg_plan_t *a, Py_ssize_t index, PyObject *text,
                               PyObject **errors, int *failed)
{
    PyObject *res = PyObject_CallOneArg(a->validator, text), *out = NULL;
    Py_DECREF(text);
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
    Py_ssize_t n = PySequence_Size(list);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PySequence_GetItem(list, i);
        if (e == NULL || !PyDict_Check(e)) {
            Py_XDECREF(e);
            goto done;
        }
        PyObject *type = PyDict_GetItemString(e, "type");
        PyObject *msg = PyDict_GetItemString(e, "msg");
        PyObject *input = PyDict_GetItemString(e, "input");
        PyObject *ctx = PyDict_GetItemString(e, "ctx");
        const char *ctype = type && PyUnicode_Check(type) ? PyUnicode_AsUTF8(type) : NULL;
        const char *cmsg = msg && PyUnicode_Check(msg) ? PyUnicode_AsUTF8(msg) : NULL;
        int r = ctype && cmsg ? add_error_at(errors, ctype, a, index, cmsg, input, ctx) : -1;
        Py_DECREF(e);
        if (r < 0)
            goto done;
    }
    *failed = 1;
done:
    Py_DECREF(res);
    return out;
}

static PyObject *bind_slice(const arg_plan_t *a, Py_ssize_t index, const char *s, size_t n, int pct,
                            int plus, PyObject **errors, int *failed)
{
    PyObject *v = pct ? convert_slice(a, index, s, n, plus, errors, failed)
                      : convert_text(a, index, s, n, errors, failed);
    if (v != NULL && a->validator != NULL)
        return validate_text(a, index, v, errors, failed);
    if (v == NULL || !a->has_checks)
        return v;
    PyObject *input = slice_text(a, s, n, pct, plus);
    int r = input ? check_constraints(a, index, v, input, errors) : -1;
    Py_XDECREF(input);
    if (r != 0) {
        Py_DECREF(v);
        *failed = r > 0;
        return NULL;
    }
    return v;
}

/* Decodes a query key in place into kbuf when needed; returns 0 to skip the pair. */
static int query_key(const char **key, size_t *klen, char *kbuf)
{
    if (db_pct_needs_decoding(*key, *klen, 1)) {
        if (*klen > SMALL)
            return 0; /* no parameter name is that long */
        *klen = db_pct_decode(kbuf, *key, *klen, 1);
        *key = kbuf;
    }
    return 1;
}

/* Splits the next "key=value" pair of a query string or form body at *i (form/form.h's
 * iterator, WHATWG URL §5.1). A pair with an empty key names no parameter and is skipped.
 * Returns 0 at the end. */
static int next_pair(const char *q, size_t qlen, size_t *i, const char **key, size_t *klen,
                     const char **val, size_t *vlen)
{
    form_urlencoded_t it = {q, qlen, *i};
    int found;
    while ((found = form_urlencoded_next(&it, key, klen, val, vlen)) && *klen == 0)
        ;
    *i = it.pos;
    return found;
}

/* Every occurrence of a list query parameter (?ids=1&ids=2), in order. */
static PyObject *bind_query_list(const arg_plan_t *a, const char *q, size_t qlen, PyObject **errors,
                                 int *failed)
{
    PyObject *list = PyList_New(0);
    const char *key, *val;
    size_t klen, vlen, i = 0;
    int bad = 0;
    char kbuf[SMALL];
    *failed = 0;
    if (list == NULL)
        return NULL;
    while (next_pair(q, qlen, &i, &key, &klen, &val, &vlen)) {
        if (!query_key(&key, &klen, kbuf) || (size_t)a->ckey_len != klen ||
            memcmp(a->ckey, key, klen) != 0)
            continue;
        int f = 0;
        PyObject *v = bind_slice(a, PyList_GET_SIZE(list), val, vlen, 1, 1, errors, &f);
        if (v == NULL && !f)
            goto error;
        if (v == NULL) {
            bad = 1;
            v = Py_NewRef(Py_None); /* keeps the positions of later errors right */
        }
        int rc = PyList_Append(list, v);
        Py_DECREF(v);
        if (rc < 0)
            goto error;
    }
    if (bad) {
        *failed = 1;
        Py_DECREF(list);
        return NULL;
    }
    return list;
error:
    Py_DECREF(list);
    return NULL;
}

/* A header parameter: the first field of that name (Starlette's headers[name]), or every
 * field of that name for a list parameter. Returns NULL without an exception when absent. */
static PyObject *bind_header(const arg_plan_t *a, const http_request_t *head, PyObject **errors,
                             int *failed)
{
    *failed = 0;
    if (!(a->flags & ARG_FLAG_LIST)) {
        const http_header_t *h = http_find_header(head, a->ckey, (size_t)a->ckey_len);
        if (h == NULL)
            return NULL;
        return bind_slice(a, -1, h->value, h->value_len, 0, 0, errors, failed);
    }
    PyObject *list = PyList_New(0);
    int bad = 0;
    if (list == NULL)
        return NULL;
    for (size_t k = 0; k < head->num_headers; k++) {
        const http_header_t *h = &head->headers[k];
        if (h->name_len != (size_t)a->ckey_len || strncasecmp(h->name, a->ckey, h->name_len))
            continue;
        int f = 0;
        PyObject *v =
            bind_slice(a, PyList_GET_SIZE(list), h->value, h->value_len, 0, 0, errors, &f);
        if (v == NULL && !f) {
            Py_DECREF(list);
            return NULL;
        }
        bad |= v == NULL;
        int rc = PyList_Append(list, v ? v : Py_None);
        Py_XDECREF(v);
        if (rc < 0) {
            Py_DECREF(list);
            return NULL;
        }
    }
    if (bad || PyList_GET_SIZE(list) == 0) {
        *failed = bad;
        Py_DECREF(list);
        return NULL;
    }
    return list;
}

/* A cookie parameter: "name=value" pairs of the Cookie header fields (RFC 6265 §5.4: joined
 * with "; "), the last one of that name winning as in Starlette; a value in double quotes
 * loses them. Returns NULL without an exception when absent. */
static PyObject *bind_cookie(const arg_plan_t *a, const http_request_t *head, PyObject **errors,
                             int *failed)
{
    const char *found = NULL;
    size_t found_len = 0;
    *failed = 0;
    for (size_t k = 0; k < head->num_headers; k++) {
        const http_header_t *h = &head->headers[k];
        if (h->name_len != 6 || strncasecmp(h->name, "cookie", 6) != 0)
            continue;
        size_t i = 0, n = h->value_len;
        const char *s = h->value;
        while (i < n) {
            size_t start = i;
            while (i < n && s[i] != ';')
                i++;
            size_t end = i++;
            while (start < end && s[start] == ' ')
                start++;
            while (end > start && s[end - 1] == ' ')
                end--;
            size_t eq = start;
            while (eq < end && s[eq] != '=')
                eq++;
            size_t kend = eq;
            while (kend > start && s[kend - 1] == ' ')
                kend--;
            if (eq == end || kend - start != (size_t)a->ckey_len ||
                memcmp(s + start, a->ckey, kend - start) != 0)
                continue;
            size_t vstart = eq + 1;
            while (vstart < end && s[vstart] == ' ')
                vstart++;
            if (end - vstart >= 2 && s[vstart] == '"' && s[end - 1] == '"')
                vstart++, end--;
            found = s + vstart;
            found_len = end - vstart;
        }
    }
    if (found == NULL)
        return NULL;
    return bind_slice(a, -1, found, found_len, 0, 0, errors, failed);
}

/* The position and message the standard library's json module gives for an invalid
 * body: FastAPI decodes with it, so its 422 reports json.JSONDecodeError's pos and msg.
 * Only on the error path; *pos and *msg stay as they are when json accepts the body (our
 * decoder is the stricter one there) or cannot be imported. Returns 1 when json.loads
 * failed otherwise than with JSONDecodeError (bytes that are not UTF-8, UTF-16 or UTF-32):
 * FastAPI answers such a body 400, not 422; else 0. */
static int stdlib_json_error(const server_request_t *req, PyObject **pos, PyObject **msg)
{
    /* Looked up on each error, as FastAPI calls json.loads (a patched one included). */
    PyObject *mod = PyImport_ImportModule("json");
    PyObject *loads = mod ? PyObject_GetAttrString(mod, "loads") : NULL;
    PyObject *decode_error = loads ? PyObject_GetAttrString(mod, "JSONDecodeError") : NULL;
    Py_XDECREF(mod);
    if (decode_error == NULL) {
        Py_XDECREF(loads);
        PyErr_Clear();
        return 0;
    }
    int other = 0;
    PyObject *body = PyBytes_FromStringAndSize(req->body, (Py_ssize_t)req->body_len);
    PyObject *res = body ? PyObject_CallOneArg(loads, body) : NULL;
    Py_XDECREF(body);
    Py_DECREF(loads);
    if (res != NULL) {
        Py_DECREF(res);
        Py_DECREF(decode_error);
        return 0;
    }
    PyObject *exc = pyloop_fetch_exception();
    if (exc != NULL && !PyObject_IsInstance(exc, decode_error)) {
        other = PyObject_IsInstance(exc, PyExc_Exception) > 0;
        PyErr_Clear();
        Py_DECREF(exc);
        Py_DECREF(decode_error);
        return other;
    }
    Py_DECREF(decode_error);
    PyObject *p = exc ? PyObject_GetAttrString(exc, "pos") : NULL;
    PyObject *m = p ? PyObject_GetAttrString(exc, "msg") : NULL;
    PyErr_Clear();
    Py_XDECREF(exc);
    if (p != NULL && m != NULL) {
        Py_XSETREF(*pos, p);
        Py_XSETREF(*msg, m);
        return 0;
    }
    Py_XDECREF(p);
    Py_XDECREF(m);
    return 0;
}

/* Raises FastAPI's answer to a body it could not read as JSON for another reason than its
 * syntax: HTTPException(400, "There was an error parsing the body"). */
static void raise_body_parse_error(void)
{
    PyObject *exc = app_cfg.http_exception_class
                        ? PyObject_CallFunction(app_cfg.http_exception_class, "is", 400,
                                                "There was an error parsing the body")
                        : NULL;
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    } else if (!PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "There was an error parsing the body");
    }
}

/* Records the decode error currently set as FastAPI's "json_invalid" entry:
 * loc ["body", position], ctx {"error": message}. Other exceptions propagate. */
static int body_json_error(const server_request_t *req, PyObject **errors)
{
    int rc = -1;
    PyObject *exc = pyloop_fetch_exception(), *pos = NULL, *msg = NULL, *err = NULL;
    if (exc == NULL || !PyObject_IsInstance(exc, PyExc_ValueError)) {
        pyloop_restore_exception(exc);
        return -1;
    }
    pos = PyObject_GetAttrString(exc, "pos");
    msg = PyObject_GetAttrString(exc, "msg");
    PyErr_Clear();
    if (stdlib_json_error(req, &pos, &msg)) {
        raise_body_parse_error();
        goto done;
    }
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

/* Takes a body validator's result: (True, value) gives value (new reference);
 * (False, [error dicts with loc relative to the value]) records them, their locations
 * prefixed with this parameter's own, and sets *failed. Consumes res. */
static PyObject *validator_result(const arg_plan_t *a, PyObject *res, PyObject **errors,
                                  int *failed)
{
    PyObject *out = NULL;
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

/* Checks a decoded body value against the parameter's kind. Returns a new reference, or
 * NULL with an error recorded (*failed) or an exception set. */
static PyObject *check_body(const arg_plan_t *a, PyObject *value, PyObject **errors, int *failed)
{
    *failed = 0;
    if (value == Py_None && (a->flags & ARG_FLAG_OPTIONAL))
        return Py_NewRef(value);
    if ((a->conv == CONV_DICT && !PyDict_Check(value)) ||
        (a->conv == CONV_LIST && !PyList_Check(value))) {
        /* A body not declared as JSON arrives as bytes: its error shows it as text. */
        PyObject *shown =
            PyBytes_Check(value)
                ? PyUnicode_DecodeUTF8(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), "replace")
                : Py_NewRef(value);
        if (shown == NULL)
            return NULL;
        int r = a->conv == CONV_DICT
                    ? add_error(errors, "dict_type", a, "Input should be a valid dictionary", shown)
                    : add_error(errors, "list_type", a, "Input should be a valid list", shown);
        Py_DECREF(shown);
        if (r == 0)
            *failed = 1;
        return NULL;
    }
    if (a->conv != CONV_MODEL)
        return Py_NewRef(value);
    PyObject *res = PyObject_CallOneArg(a->validator, value);
    if (res == NULL)
        return NULL;
    return validator_result(a, res, errors, failed);
}

/* Whether the body is to be decoded as JSON: its Content-Type is application/json or
 * application/<subtype>+json (RFC 6839 §3.1), parameters aside; without a Content-Type only
 * when the route is not strict about it. */
static int is_json_body(const server_request_t *req, int strict)
{
    const http_header_t *h = http_find_header(req->head, "content-type", 12);
    if (h == NULL)
        return !strict;
    const char *v = h->value;
    size_t n = h->value_len, end = 0;
    while (end < n && v[end] != ';' && v[end] != ' ' && v[end] != '\t')
        end++;
    if (end < 12 || strncasecmp(v, "application/", 12) != 0)
        return 0;
    const char *sub = v + 12;
    size_t sub_len = end - 12;
    if (sub_len == 4 && strncasecmp(sub, "json", 4) == 0)
        return 1;
    return sub_len > 5 && strncasecmp(sub + sub_len - 5, "+json", 5) == 0;
}

/* Resolves one body parameter from the (lazily decoded) body. */
static PyObject *bind_body(const arg_plan_t *a, server_request_t *req, int plan_strict,
                           PyObject **decoded, PyObject **errors, int *failed)
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
    if (*decoded == NULL && a->json_validator != NULL &&
        !(a->flags & (ARG_FLAG_EMBED | ARG_FLAG_OPTIONAL)) && is_json_body(req, plan_strict)) {
        /* The only body parameter is a model: pydantic validates the raw JSON bytes in one
         * pass (validate_json), with no Python dict in between. Invalid JSON is refused
         * with None instead, and the general path below reports it as FastAPI does. */
        PyObject *raw =
            PyMemoryView_FromMemory((char *)req->body, (Py_ssize_t)req->body_len, PyBUF_READ);
        PyObject *res = raw ? PyObject_CallOneArg(a->json_validator, raw) : NULL;
        if (raw != NULL) {
            /* The view must not outlive the request's buffer: release it now. */
            PyObject *r = PyObject_CallMethod(raw, "release", NULL);
            Py_XDECREF(r);
            Py_DECREF(raw);
        }
        if (res == NULL)
            return NULL;
        if (res != Py_None)
            return validator_result(a, res, errors, failed);
        Py_DECREF(res);
    }
    if (*decoded == NULL && !is_json_body(req, plan_strict)) {
        /* Not declared as JSON: the body is handed over as bytes, which a JSON-typed
         * parameter then refuses (FastAPI's strict Content-Type rule, a CSRF guard: a
         * form post from another site cannot pass for JSON). */
        *decoded = PyBytes_FromStringAndSize(req->body, (Py_ssize_t)req->body_len);
        if (*decoded == NULL)
            return NULL;
    }
    if (*decoded == NULL) {
        *decoded = json_decode(req->body, req->body_len);
        if (*decoded == NULL) {
            int r = body_json_error(req, errors);
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

/* Whether the body is an HTML form (application/x-www-form-urlencoded, RFC 1866 §8.2.1 /
 * WHATWG URL §5): parameters after ';' are allowed, the media type is case-insensitive.
 * Form fields of any other body are absent (then missing, as in FastAPI). */
static int is_form_body(const server_request_t *req)
{
    static const char type[] = "application/x-www-form-urlencoded";
    const size_t n = sizeof(type) - 1;
    const http_header_t *h = http_find_header(req->head, "content-type", 12);
    if (h == NULL || h->value_len < n || strncasecmp(h->value, type, n) != 0)
        return 0;
    return h->value_len == n || h->value[n] == ';' || h->value[n] == ' ' || h->value[n] == '\t';
}

/* Whether the body is multipart/form-data (RFC 7578 §4; parameters after ';'). */
static int is_multipart_body(const server_request_t *req)
{
    static const char type[] = "multipart/form-data";
    const size_t n = sizeof(type) - 1;
    const http_header_t *h = http_find_header(req->head, "content-type", 12);
    if (h == NULL || h->value_len < n || strncasecmp(h->value, type, n) != 0)
        return 0;
    return h->value_len == n || h->value[n] == ';' || h->value[n] == ' ' || h->value[n] == '\t';
}

/* A form that breaks the route's limits, or a malformed multipart body, is answered 400
 * with Starlette's message, as FastAPI does: raised as HTTPException(400, message). */
static void raise_form_error(PyObject *message)
{
    PyObject *cls = app_cfg.http_exception_class;
    PyObject *exc = cls ? PyObject_CallFunction(cls, "iO", 400, message) : NULL;
    if (exc != NULL) {
        PyErr_SetObject(cls, exc);
        Py_DECREF(exc);
    } else if (!PyErr_Occurred()) {
        PyErr_SetObject(PyExc_ValueError, message);
    }
}

/* Starlette's FormParser limits on an urlencoded body: each field's raw name and value
 * together at most max_part_size bytes, at most max_fields fields. 0, or -1 with the
 * HTTPException set. */
static int check_urlencoded_limits(const route_plan_t *plan, const server_request_t *req)
{
    const app_form_limits_t *lim = &plan->form_limits;
    const char *key, *val;
    size_t klen, vlen, i = 0, n = 0;
    while (next_pair(req->body, req->body_len, &i, &key, &klen, &val, &vlen)) {
        PyObject *msg = NULL;
        if ((uint64_t)(klen + vlen) > lim->max_part_size)
            msg = PyUnicode_FromFormat("Field exceeded maximum size of %lluKB.",
                                       (unsigned long long)(lim->max_part_size / 1024));
        else if (++n > lim->max_fields)
            msg = PyUnicode_FromFormat("Too many fields. Maximum number of fields is %zu.",
                                       lim->max_fields);
        if (msg != NULL) {
            raise_form_error(msg);
            Py_DECREF(msg);
            return -1;
        }
        if (PyErr_Occurred())
            return -1;
    }
    return 0;
}

/* The parts of a multipart body (form_py.c), the route's limits applied; NULL with the
 * HTTPException (or MemoryError) set. */
static PyObject *multipart_parts(const route_plan_t *plan, const server_request_t *req)
{
    const http_header_t *h = http_find_header(req->head, "content-type", 12);
    PyObject *parts = app_multipart_parts(h->value, h->value_len, req->body ? req->body : "",
                                          req->body_len, &plan->form_limits);
    if (parts == NULL && PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyObject *exc = pyloop_fetch_exception();
        PyObject *msg = exc ? PyObject_Str(exc) : NULL;
        Py_XDECREF(exc);
        if (msg != NULL) {
            raise_form_error(msg);
            Py_DECREF(msg);
        }
    }
    return parts;
}

/* Form fields from multipart parts: the content of the last part of each name without a
 * filename (FormData.get's answer), as raw slices of the parts' bytes. */
static void scan_parts(const route_plan_t *plan, PyObject *parts, qslot_t *slots)
{
    for (Py_ssize_t j = 0; j < PyList_GET_SIZE(parts); j++) {
        PyObject *part = PyList_GET_ITEM(parts, j); /* (name, filename, ctype, headers, data) */
        if (PyTuple_GET_ITEM(part, 1) != Py_None)
            continue;
        Py_ssize_t nlen;
        const char *name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(part, 0), &nlen);
        if (name == NULL) {
            PyErr_Clear();
            continue;
        }
        PyObject *data = PyTuple_GET_ITEM(part, 4);
        for (int k = 0; k < plan->nargs; k++) {
            const arg_plan_t *a = &plan->args[k];
            if (a->source == ARG_FORM && !(a->flags & ARG_FLAG_LIST) && a->ckey_len == nlen &&
                memcmp(a->ckey, name, (size_t)nlen) == 0) {
                slots[k].p = PyBytes_AS_STRING(data);
                slots[k].n = (size_t)PyBytes_GET_SIZE(data);
                slots[k].found = 1;
                slots[k].raw = 1;
            }
        }
    }
}

/* Every part of a list form field's name (without a filename), in order. */
static PyObject *bind_parts_list(const arg_plan_t *a, PyObject *parts, PyObject **errors,
                                 int *failed)
{
    PyObject *list = PyList_New(0);
    int bad = 0;
    *failed = 0;
    for (Py_ssize_t j = 0; list != NULL && j < PyList_GET_SIZE(parts); j++) {
        PyObject *part = PyList_GET_ITEM(parts, j);
        Py_ssize_t nlen;
        const char *name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(part, 0), &nlen);
        if (name == NULL || PyTuple_GET_ITEM(part, 1) != Py_None || a->ckey_len != nlen ||
            memcmp(a->ckey, name, (size_t)nlen) != 0) {
            PyErr_Clear();
            continue;
        }
        PyObject *data = PyTuple_GET_ITEM(part, 4);
        int f = 0;
        PyObject *v = bind_slice(a, PyList_GET_SIZE(list), PyBytes_AS_STRING(data),
                                 (size_t)PyBytes_GET_SIZE(data), 0, 0, errors, &f);
        if (v == NULL && !f)
            Py_CLEAR(list);
        if (list == NULL)
            break;
        if (v == NULL) {
            bad = 1;
            v = Py_NewRef(Py_None);
        }
        int rc = PyList_Append(list, v);
        Py_DECREF(v);
        if (rc < 0)
            Py_CLEAR(list);
    }
    if (list != NULL && bad) {
        Py_DECREF(list);
        *failed = 1;
        return NULL;
    }
    return list;
}

int bind_arguments(const route_plan_t *plan, const router_match_t *m, server_request_t *req,
                   PyObject **args, PyObject **request_obj, PyObject **errors)
{
    qslot_t small_slots[16];
    qslot_t *slots = NULL;
    PyObject *decoded = NULL, *parts = NULL; /* slots may point into parts' bytes */
    int rc = -1, body_failed = 0;
    if (plan->has_query) {
        slots = plan->nargs <= 16 ? small_slots : calloc((size_t)plan->nargs, sizeof(qslot_t));
        if (slots == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memset(slots, 0, sizeof(qslot_t) * (size_t)plan->nargs);
        scan_query(plan, ARG_QUERY, req->head->query, req->head->query_len, slots);
        if (plan->has_form && is_form_body(req)) {
            if (check_urlencoded_limits(plan, req) < 0)
                goto done;
            scan_query(plan, ARG_FORM, req->body, req->body_len, slots);
        } else if (plan->has_form && is_multipart_body(req)) {
            /* FastAPI binds Form() fields from a multipart body as well. */
            if ((parts = multipart_parts(plan, req)) == NULL)
                goto done;
            scan_parts(plan, parts, slots);
        }
    }
    for (int i = 0; i < plan->nargs; i++) {
        const arg_plan_t *a = &plan->args[i];
        PyObject *v = NULL;
        int failed = 0;
        switch (a->source) {
        case ARG_PATH: {
            const router_param_t *p = &m->params[a->path_index];
            /* Already decoded: the router matched the decoded path (invoke.c). */
            v = bind_slice(a, -1, p->value, p->value_len, 0, 0, errors, &failed);
            break;
        }
        case ARG_QUERY:
        case ARG_HEADER:
        case ARG_COOKIE:
        case ARG_FORM:
            if (a->source == ARG_FORM && (a->flags & ARG_FLAG_LIST)) {
                if (is_form_body(req))
                    v = bind_query_list(a, req->body, req->body_len, errors, &failed);
                else if (parts != NULL)
                    v = bind_parts_list(a, parts, errors, &failed);
                if (v != NULL && PyList_GET_SIZE(v) == 0) {
                    Py_CLEAR(v); /* absent: the default applies, or it is missing */
                }
            } else if (a->source == ARG_QUERY && (a->flags & ARG_FLAG_LIST)) {
                v = bind_query_list(a, req->head->query, req->head->query_len, errors, &failed);
                if (v != NULL && PyList_GET_SIZE(v) == 0) {
                    Py_CLEAR(v); /* absent: the default applies, or it is missing */
                }
            } else if (a->source == ARG_QUERY || a->source == ARG_FORM) {
                if (slots[i].found)
                    v = bind_slice(a, -1, slots[i].p, slots[i].n, !slots[i].raw, !slots[i].raw,
                                   errors, &failed);
            } else if (a->source == ARG_HEADER) {
                v = bind_header(a, req->head, errors, &failed);
            } else {
                v = bind_cookie(a, req->head, errors, &failed);
            }
            if (v == NULL && !failed && !PyErr_Occurred()) {
                if (a->def)
                    v = Py_NewRef(a->def);
                else if (add_error(errors, "missing", a, "Field required", NULL) == 0)
                    failed = 1;
            }
            if (v != NULL && (a->flags & ARG_FLAG_LIST) && v != a->def) {
                int r = check_constraints(a, -1, v, v, errors);
                if (r != 0) {
                    Py_CLEAR(v);
                    if (r < 0)
                        goto done;
                    failed = 1;
                }
            }
            break;
        case ARG_BODY:
            if (body_failed == 2)
                continue;
            v = bind_body(a, req, plan->strict_content_type, &decoded, errors, &failed);
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
    Py_XDECREF(parts);
    if (slots && slots != small_slots)
        free(slots);
    return rc;
}
