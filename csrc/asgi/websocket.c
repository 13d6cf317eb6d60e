/*
 * The ASGI websocket scope (spec "WebSocket", www 2.4) for applications served through
 * csrc/asgi/: a request with "Upgrade: websocket" does not become an http scope; its scope
 * is built as the http one (scope.c) and handed, with a `_core._WebSocketUpgrade` for the
 * pending request (app/websocket.c), to data_bridge._asgi_ws.run, which checks the
 * handshake and drives the application's receive/send over the native WebSocket session
 * (server/ws.c does the protocol). That driver is Python: it runs once per connection,
 * not per message; messages are the session's str/bytes wrapped in the spec's dicts.
 *
 * Ownership: the upgrade object holds the connection and finishes the pending request when
 * the driver is done (or when it is deallocated); the driver's Task is kept by the Python
 * module until it ends.
 */
#include <strings.h>

#include "asgi/asgi_internal.h"

static PyObject *driver; /* data_bridge._asgi_ws.run, imported on first use */

/* Whether the request asks for a WebSocket (an Upgrade field holding the token). */
int asgi_ws_is_upgrade(const server_request_t *req)
{
    const http_request_t *h = req->head;
    for (size_t i = 0; i < h->num_headers; i++) {
        const http_header_t *f = &h->headers[i];
        if (f->name_len != 7 || strncasecmp(f->name, "upgrade", 7) != 0)
            continue;
        const char *v = f->value;
        size_t n = f->value_len;
        for (size_t j = 0; j + 9 <= n; j++) {
            /* A token of the comma-separated list (RFC 9110 §7.8), case-insensitive. */
            if (strncasecmp(v + j, "websocket", 9) == 0 &&
                (j == 0 || v[j - 1] == ' ' || v[j - 1] == ',' || v[j - 1] == '\t') &&
                (j + 9 == n || v[j + 9] == ' ' || v[j + 9] == ',' || v[j + 9] == '\t'))
                return 1;
        }
    }
    return 0;
}

int asgi_ws_dispatch(AsgiAppObject *a, server_conn_t *conn, server_request_t *req)
{
    PyObject *scope = NULL, *upgrade = NULL, *r = NULL;
    if (driver == NULL) {
        PyObject *mod = PyImport_ImportModule("data_bridge._asgi_ws");
        driver = mod ? PyObject_GetAttrString(mod, "run") : NULL;
        Py_XDECREF(mod);
    }
    if (driver == NULL || a->app == NULL || (scope = asgi_scope_new(a, conn, req)) == NULL ||
        (upgrade = ws_upgrade_new(conn)) == NULL)
        goto error;
    /* run() schedules the driver's Task and returns; the request is pending from now on
     * and the upgrade object finishes it. */
    r = PyObject_CallFunctionObjArgs(driver, a->app, scope, upgrade, a->loop,
                                     a->log ? a->log : Py_None, NULL);
    if (r == NULL)
        goto error;
    Py_DECREF(r);
    Py_DECREF(scope);
    /* Whatever happens to the upgrade object now, it finishes the request exactly once. */
    Py_DECREF(upgrade);
    return SERVER_DISPATCH_PENDING;
error:
    /* A libuv callback never returns with an exception set: logged, answered 500. */
    PyErr_WriteUnraisable(a->app ? a->app : Py_None);
    Py_XDECREF(scope);
    if (upgrade != NULL) {
        /* The request is not pending yet: the object must not finish it. */
        ws_upgrade_disarm(upgrade);
        Py_DECREF(upgrade);
    }
    server_conn_respond(conn, 500, "text/plain; charset=utf-8", 25, NULL, 0,
                        "Internal Server Error", 21);
    return SERVER_DISPATCH_DONE;
}
