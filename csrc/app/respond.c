/*
 * Handler results to HTTP responses: dict/list and other JSON-able values are encoded by
 * the C codec straight into the connection's scratch buffer, str too (a JSON string, as
 * FastAPI's default response class writes it) unless the route's response class is a text
 * one; bytes are application/octet-stream; Response objects of the Python layer carry their
 * own status, body and headers. Exceptions become responses: HTTPException {"detail": ...}
 * with its status and headers, anything else a plain-text 500 with the traceback logged.
 *
 * Header values handed over by the application are checked here: a CR, LF or NUL in a
 * name or value would let a response be split (RFC 9110 §5.5), so such a response is
 * refused and answered with 500 instead.
 */
#include "app/app_internal.h"
#include "common/text.h"
#include "json/json.h"

#define CT_JSON  "application/json"
#define CT_BYTES "application/octet-stream"

/* Appends "name: value\r\n" for each pair of an iterable of 2-tuples (or a mapping).
 * Content-Length is computed by the server and skipped; "connection: close" is honoured
 * through *close. Returns 0, or -1 with ValueError for an unsafe name or value. */
int respond_header_lines(PyObject *headers, db_buf_t *out, int *close)
{
    PyObject *items = NULL, *seq = NULL;
    int rc = -1;
    if (PyDict_Check(headers))
        items = PyDict_Items(headers);
    else if (PyObject_HasAttrString(headers, "items") && !PyList_Check(headers))
        items = PyObject_CallMethod(headers, "items", NULL);
    else
        items = Py_NewRef(headers);
    if (items == NULL)
        return -1;
    seq = PySequence_Fast(items, "headers must be a mapping or a sequence of pairs");
    if (seq == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *k, *v;
        Py_ssize_t kn, vn;
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "each header must be a (name, value) pair");
            goto done;
        }
        k = PyTuple_GET_ITEM(pair, 0);
        v = PyTuple_GET_ITEM(pair, 1);
        const char *ks = PyUnicode_Check(k) ? PyUnicode_AsUTF8AndSize(k, &kn) : NULL;
        const char *vs = PyUnicode_Check(v) ? PyUnicode_AsUTF8AndSize(v, &vn) : NULL;
        if (ks == NULL || vs == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "header names and values must be str");
            goto done;
        }
        if (kn == 0) {
            PyErr_SetString(PyExc_ValueError, "empty header name");
            goto done;
        }
        for (Py_ssize_t j = 0; j < kn; j++)
            if (!db_is_tchar((unsigned char)ks[j])) {
                PyErr_Format(PyExc_ValueError, "invalid character in header name %R", k);
                goto done;
            }
        for (Py_ssize_t j = 0; j < vn; j++) {
            unsigned char c = (unsigned char)vs[j];
            if (c == '\r' || c == '\n' || c == 0) {
                PyErr_Format(PyExc_ValueError,
                             "header %R has a CR, LF or NUL in its value (response splitting)", k);
                goto done;
            }
        }
        if (kn == 14 && PyOS_strnicmp(ks, "content-length", 14) == 0)
            continue;
        if (kn == 10 && PyOS_strnicmp(ks, "connection", 10) == 0 && vn == 5 &&
            PyOS_strnicmp(vs, "close", 5) == 0) {
            *close = 1;
            continue;
        }
        if (db_buf_reserve(out, (size_t)(kn + vn + 4)) < 0) {
            PyErr_NoMemory();
            goto done;
        }
        db_buf_append(out, ks, (size_t)kn);
        db_buf_append(out, ": ", 2);
        db_buf_append(out, vs, (size_t)vn);
        db_buf_append(out, "\r\n", 2);
    }
    rc = 0;
done:
    Py_XDECREF(items);
    Py_XDECREF(seq);
    return rc;
}

/* An exception no handler took: FastAPI (Starlette's ServerErrorMiddleware) answers it with
 * a plain-text "Internal Server Error", so clients see the same bytes. */
static void respond_internal_error(server_conn_t *conn)
{
    static const char ctype[] = "text/plain; charset=utf-8", body[] = "Internal Server Error";
    server_conn_respond(conn, 500, ctype, sizeof(ctype) - 1, NULL, 0, body, sizeof(body) - 1);
}

/* Logs the current exception through the Python layer (traceback included). */
static void log_current_exception(const route_plan_t *plan)
{
    PyObject *exc = pyloop_fetch_exception();
    if (exc == NULL)
        return;
    if (app_cfg.log_exception) {
        PyObject *r = PyObject_CallFunctionObjArgs(app_cfg.log_exception, exc,
                                                   plan ? plan->path : Py_None, NULL);
        if (r == NULL)
            PyErr_WriteUnraisable(app_cfg.log_exception);
        Py_XDECREF(r);
    } else {
        pyloop_restore_exception(Py_NewRef(exc));
        PyErr_WriteUnraisable(plan ? plan->handler : Py_None);
    }
    Py_DECREF(exc);
}

/* value as the JSON body: flags are json.h's JSON_OPT_* (non-str keys written as strings,
 * as FastAPI's json.dumps writes them; a route's result takes its plan's json_flags). */
static void respond_json(server_conn_t *conn, const route_plan_t *plan, int status, PyObject *value,
                         unsigned flags, const char *extra, size_t extra_len)
{
    db_buf_t *scratch = server_conn_scratch(conn);
    scratch->len = 0;
    json_enc_opts_t opts = {flags, NULL};
    if (json_encode(value, scratch, &opts) < 0) {
        log_current_exception(plan);
        respond_internal_error(conn);
        return;
    }
    server_conn_respond(conn, status, CT_JSON, sizeof(CT_JSON) - 1, extra, extra_len, scratch->data,
                        scratch->len);
}

/* A Response's `background` (BackgroundTask(s)) runs once the response is written: the
 * Python layer starts a Task for it, whose first step comes after this batch of
 * responses was flushed. A failure to start it is logged; the response stands. */
static void start_background(const route_plan_t *plan, PyObject *resp)
{
    if (app_cfg.background_start == NULL)
        return;
    PyObject *bg = PyObject_GetAttrString(resp, "background");
    if (bg == NULL) {
        PyErr_Clear();
        return;
    }
    if (bg != Py_None) {
        PyObject *r = PyObject_CallOneArg(app_cfg.background_start, bg);
        if (r == NULL)
            log_current_exception(plan);
        Py_XDECREF(r);
    }
    Py_DECREF(bg);
}

static void respond_response_object(server_conn_t *conn, const route_plan_t *plan, PyObject *resp)
{
    PyObject *status = NULL, *body = NULL, *headers = NULL;
    db_buf_t lines;
    db_buf_init(&lines);
    int close = 0;
    long code;
    int streaming =
        app_cfg.streaming_class ? PyObject_IsInstance(resp, app_cfg.streaming_class) : 0;
    if (streaming < 0)
        goto error;
    if (streaming) {
        int r = respond_streaming(conn, resp, &lines, &close, plan ? plan->path : Py_None);
        if (r > 0) {
            /* The head was sent: the failure can only be logged. */
            log_current_exception(plan);
            goto done;
        }
        if (r < 0)
            goto error;
        goto done;
    }
    status = PyObject_GetAttrString(resp, "status_code");
    body = status ? PyObject_GetAttrString(resp, "body") : NULL;
    headers = body ? PyObject_GetAttrString(resp, "raw_headers") : NULL;
    if (headers == NULL)
        goto error;
    code = PyLong_AsLong(status);
    if (code == -1 && PyErr_Occurred())
        goto error;
    if (code < 100 || code > 999) {
        PyErr_Format(PyExc_ValueError, "invalid status code %ld", code);
        goto error;
    }
    if (!PyBytes_Check(body)) {
        PyErr_SetString(PyExc_TypeError, "Response.body must be bytes");
        goto error;
    }
    if (headers != Py_None && respond_header_lines(headers, &lines, &close) < 0)
        goto error;
    if (close)
        server_conn_set_close(conn);
    server_conn_respond(conn, (int)code, NULL, 0, lines.data, lines.len, PyBytes_AS_STRING(body),
                        (size_t)PyBytes_GET_SIZE(body));
    start_background(plan, resp);
    goto done;
error:
    log_current_exception(plan);
    respond_internal_error(conn);
done:
    db_buf_free(&lines);
    Py_XDECREF(status);
    Py_XDECREF(body);
    Py_XDECREF(headers);
}

void respond_result(server_conn_t *conn, const route_plan_t *plan, PyObject *result)
{
    PyTypeObject *t = Py_TYPE(result);
    if (t == &PyDict_Type || t == &PyList_Type) {
        respond_json(conn, plan, plan->status_code, result, plan->json_flags, NULL, 0);
    } else if (PyUnicode_Check(result) && plan->text_ctype != NULL) {
        /* A route whose response class is a text one (PlainTextResponse, HTMLResponse):
         * the str is the body, as that class would render it. */
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(result, &n);
        if (s == NULL) {
            log_current_exception(plan);
            respond_internal_error(conn);
            return;
        }
        server_conn_respond(conn, plan->status_code, PyBytes_AS_STRING(plan->text_ctype),
                            (size_t)PyBytes_GET_SIZE(plan->text_ctype), NULL, 0, s, (size_t)n);
    } else if (PyUnicode_Check(result)) {
        /* A JSON route (FastAPI's default JSONResponse): a str is a JSON string. */
        respond_json(conn, plan, plan->status_code, result, plan->json_flags, NULL, 0);
    } else if (PyBytes_Check(result)) {
        server_conn_respond(conn, plan->status_code, CT_BYTES, sizeof(CT_BYTES) - 1, NULL, 0,
                            PyBytes_AS_STRING(result), (size_t)PyBytes_GET_SIZE(result));
    } else if (app_cfg.response_class && PyObject_IsInstance(result, app_cfg.response_class) > 0) {
        respond_response_object(conn, plan, result);
    } else if (app_cfg.foreign_response_class &&
               PyObject_IsInstance(result, app_cfg.foreign_response_class) > 0) {
        /* A Starlette response from an unmodified FastAPI app's handler: made ours. */
        PyObject *native = PyObject_CallOneArg(app_cfg.foreign_convert, result);
        if (native == NULL) {
            log_current_exception(plan);
            respond_internal_error(conn);
            return;
        }
        respond_response_object(conn, plan, native);
        Py_DECREF(native);
    } else {
        PyErr_Clear();
        respond_json(conn, plan, plan->status_code, result, plan->json_flags, NULL, 0);
    }
}

static PyObject *cancelled_error; /* asyncio.CancelledError */
PyObject *respond_timeout_message;

int respond_init(void)
{
    respond_timeout_message = PyUnicode_InternFromString("data-bridge: handler timeout");
    if (respond_timeout_message == NULL)
        return -1;
    PyObject *mod = PyImport_ImportModule("asyncio.exceptions");
    if (mod == NULL)
        return -1;
    cancelled_error = PyObject_GetAttrString(mod, "CancelledError");
    Py_DECREF(mod);
    return cancelled_error ? 0 : -1;
}

void respond_exception(server_conn_t *conn, const route_plan_t *plan, PyObject *hook,
                       PyObject *request)
{
    PyObject *exc = pyloop_fetch_exception(), *status = NULL, *detail = NULL, *headers = NULL,
             *body = NULL;
    db_buf_t lines;
    db_buf_init(&lines);
    int close = 0;
    if (exc == NULL) {
        respond_internal_error(conn);
        return;
    }
    if (PyObject_TypeCheck(exc, (PyTypeObject *)cancelled_error)) {
        /* Cancelled by the handler timeout (the Task's cancel message is the exception's
         * only argument): 504, as a proxy answers an upstream that took too long (RFC 9110
         * §15.6.5); the connection stays usable. */
        PyObject *args = ((PyBaseExceptionObject *)exc)->args;
        if (args != NULL && PyTuple_GET_SIZE(args) == 1 &&
            PyTuple_GET_ITEM(args, 0) == respond_timeout_message) {
            Py_DECREF(exc);
            server_conn_respond_detail(conn, 504, "Gateway Timeout", NULL, 0);
            return;
        }
        /* Otherwise the server is shutting down (graceful timeout) or application code
         * cancelled it. Not a bug in the handler, so nothing is logged; the client may
         * retry elsewhere (RFC 9110 §15.6.4). */
        Py_DECREF(exc);
        server_conn_set_close(conn);
        server_conn_respond_detail(conn, 503, "Service Unavailable", NULL, 0);
        return;
    }
    if (hook != NULL) {
        /* The app's exception handlers (@app.exception_handler): their result is answered
         * like a handler's; an error inside one is logged and answered 500. */
        PyObject *res = PyObject_CallFunctionObjArgs(hook, exc, request ? request : Py_None, NULL);
        if (res == NULL) {
            log_current_exception(plan);
            respond_internal_error(conn);
            Py_DECREF(exc);
            return;
        }
        if (res != Py_NotImplemented) {
            respond_result(conn, plan, res);
            Py_DECREF(res);
            Py_DECREF(exc);
            return;
        }
        Py_DECREF(res);
    }
    if (app_cfg.http_exception_class == NULL ||
        PyObject_IsInstance(exc, app_cfg.http_exception_class) <= 0) {
        PyErr_Clear();
        pyloop_restore_exception(exc);
        log_current_exception(plan);
        respond_internal_error(conn);
        return;
    }
    status = PyObject_GetAttrString(exc, "status_code");
    detail = status ? PyObject_GetAttrString(exc, "detail") : NULL;
    headers = detail ? PyObject_GetAttrString(exc, "headers") : NULL;
    long code = headers ? PyLong_AsLong(status) : -1;
    if (code < 100 || code > 999 || PyErr_Occurred())
        goto error;
    if (headers != Py_None && respond_header_lines(headers, &lines, &close) < 0)
        goto error;
    body = Py_BuildValue("{sO}", "detail", detail);
    if (body == NULL)
        goto error;
    if (close)
        server_conn_set_close(conn);
    respond_json(conn, plan, (int)code, body, JSON_OPT_NON_STR_KEYS, lines.data, lines.len);
    goto done;
error:
    log_current_exception(plan);
    respond_internal_error(conn);
done:
    db_buf_free(&lines);
    Py_DECREF(exc);
    Py_XDECREF(status);
    Py_XDECREF(detail);
    Py_XDECREF(headers);
    Py_XDECREF(body);
}

void respond_validation_errors(server_conn_t *conn, PyObject *errors)
{
    PyObject *body = Py_BuildValue("{sO}", "detail", errors);
    if (body == NULL) {
        log_current_exception(NULL);
        respond_internal_error(conn);
        return;
    }
    respond_json(conn, NULL, 422, body, JSON_OPT_NON_STR_KEYS, NULL, 0);
    Py_DECREF(body);
}
