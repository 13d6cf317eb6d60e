/*
 * ASGI 3 on the native server: any ASGI application (Starlette, FastAPI, Litestar, Django,
 * a bare `async def app(scope, receive, send)`) served by the C HTTP/1.1 server on PyLoop.
 * References are to the ASGI specification, https://asgi.readthedocs.io/en/latest/specs/:
 * "main" (www.html's siblings: the application interface, ASGI 3) and "www" (HTTP and
 * lifespan, spec_version 2.4).
 *
 * The server's parser, limits and framing answer every request before the application sees
 * it (malformed requests, 413, 414, 431 never reach it); a complete request is dispatched
 * to asgi_dispatch, which builds the `http` scope in C, makes the receive and send
 * callables (C objects) and runs `app(scope, receive, send)` as an asyncio Task on the
 * loop. The response the application sends is written by the server's own writer
 * (server_conn_respond for a body sent in one message, the streaming writer of
 * server/stream.c for more_body).
 *
 * The lifespan protocol is driven by the Python layer (data_bridge/_serve.py) at serve
 * start and stop: it runs once per process, not per request.
 */
#ifndef DB_ASGI_ASGI_H
#define DB_ASGI_ASGI_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "server/server.h"

/* Registers _core.AsgiApp (the served application and its settings) and the private types
 * of the receive/send machinery. Returns 0 or -1 with an exception. */
int asgi_module_init(PyObject *module);
/* 1 when obj is an _core.AsgiApp. */
int asgi_app_check(PyObject *obj);
/* The server's dispatch callback for an ASGI application; ctx is the AsgiApp object (kept
 * alive by whoever made the server for as long as the server exists). */
int asgi_dispatch(void *ctx, server_conn_t *conn, server_request_t *req);
/* Whether the request asks for a WebSocket (an Upgrade field holding the token). */
int asgi_ws_is_upgrade(const server_request_t *req);

#endif
