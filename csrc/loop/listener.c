/*
 * Listening sockets for create_server / create_unix_server: a uv_tcp_t or uv_pipe_t opened
 * on a (duplicated) listening fd. Each accepted connection becomes a stream transport and is
 * handed to a Python callable (pyloop.Server._accepted), which creates the protocol.
 *
 * Ownership: the listener holds a reference to itself from handle init until its close
 * callback; the Server holds the Python reference that close() is called through. The
 * listener owns its fd: libuv closes it in uv_close().
 */
#include "loop/loop_internal.h"

typedef struct {
    /* clang-format off */
    PyObject_HEAD
    PyLoopObject *loop;
    /* clang-format on */
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    PyObject *on_accept;
    int is_pipe;
    int family;
    int handle_open;
    loop_open_link_t link; /* in loop->open_links while handle_open */
} PyLoopListenerObject;

static int listener_traverse(PyLoopListenerObject *l, visitproc visit, void *arg)
{
    Py_VISIT(l->loop);
    Py_VISIT(l->on_accept);
    return 0;
}

static int listener_clear(PyLoopListenerObject *l)
{
    Py_CLEAR(l->on_accept);
    return 0;
}

static void listener_dealloc(PyLoopListenerObject *l)
{
    PyObject_GC_UnTrack(l);
    listener_clear(l);
    Py_CLEAR(l->loop);
    Py_TYPE(l)->tp_free((PyObject *)l);
}

static void on_listener_close(uv_handle_t *handle)
{
    Py_DECREF((PyObject *)handle->data); /* pairs with the INCREF in loop_stream_listen */
}

static void close_listener_handle(PyLoopListenerObject *l)
{
    if (l->handle_open) {
        l->handle_open = 0;
        loop_open_link_remove(l->loop, &l->link);
        uv_close(&l->h.handle, on_listener_close);
    }
}

static PyObject *listener_close(PyLoopListenerObject *l, PyObject *unused)
{
    (void)unused;
    close_listener_handle(l);
    Py_CLEAR(l->on_accept); /* breaks the Server -> listener -> Server._accepted cycle */
    Py_RETURN_NONE;
}

/* Loop close with the server still listening: asyncio leaves the listening socket to the
 * garbage collector; here the fd is closed now so that nothing leaks. No warning: asyncio's
 * Server gives none either. */
static void listener_abandon(loop_open_link_t *link)
{
    PyLoopListenerObject *l =
        (PyLoopListenerObject *)((char *)link - offsetof(PyLoopListenerObject, link));

    close_listener_handle(l);
    Py_CLEAR(l->on_accept);
}

static void on_connection(uv_stream_t *server, int status)
{
    PyLoopListenerObject *l = server->data;
    PyLoopStreamObject *t;
    PyObject *res;
    int rc;

    pyloop_enter(l->loop);
    if (!l->handle_open || l->on_accept == NULL)
        return;
    if (status < 0) {
        errno = -status;
        PyErr_SetFromErrno(PyExc_OSError);
        pyloop_report_exception(l->loop, "socket.accept() out of system resource");
        return;
    }
    t = loop_stream_new(l->loop, l->is_pipe);
    if (t == NULL) {
        pyloop_report_exception(l->loop, "cannot create a transport for an accepted connection");
        return;
    }
    t->family = l->family;
    rc = uv_accept(server, &t->h.stream);
    if (rc < 0) {
        loop_stream_close(t);
        Py_DECREF(t);
        return; /* EAGAIN: another process took it */
    }
    if (!l->is_pipe)
        uv_tcp_nodelay(&t->h.tcp, 1);
    if (loop_stream_fill_addresses(t) < 0) {
        pyloop_report_exception(l->loop, "cannot read the addresses of a connection");
        loop_stream_close(t);
        Py_DECREF(t);
        return;
    }
    res = PyObject_CallOneArg(l->on_accept, (PyObject *)t);
    if (res == NULL) {
        pyloop_report_exception(l->loop, "Error in connection accept callback");
        loop_stream_close(t);
    }
    Py_XDECREF(res);
    Py_DECREF(t);
}

static PyMethodDef listener_methods[] = {
    {"close", (PyCFunction)listener_close, METH_NOARGS, "Stop listening and close the fd."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PyLoopListener_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core._Listener",
    .tp_basicsize = sizeof(PyLoopListenerObject),
    .tp_dealloc = (destructor)listener_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)listener_traverse,
    .tp_clear = (inquiry)listener_clear,
    .tp_methods = listener_methods,
};

/* loop._stream_listen(fd, is_pipe, family, backlog, on_accept) -> listener owning fd. */
PyObject *loop_stream_listen(PyLoopObject *self, PyObject *args)
{
    int fd, is_pipe, family, backlog, rc;
    PyObject *on_accept;
    PyLoopListenerObject *l;

    if (!PyArg_ParseTuple(args, "ipiiO:_stream_listen", &fd, &is_pipe, &family, &backlog,
                          &on_accept))
        return NULL;
    if (loop_check_open(self) < 0)
        return NULL;
    l = PyObject_GC_New(PyLoopListenerObject, &PyLoopListener_Type);
    if (l == NULL)
        return NULL;
    Py_INCREF(self);
    l->loop = self;
    Py_INCREF(on_accept);
    l->on_accept = on_accept;
    l->is_pipe = is_pipe;
    l->family = family;
    l->handle_open = 0;
    PyObject_GC_Track(l);
    rc = is_pipe ? uv_pipe_init(&self->nat->uvl, &l->h.pipe, 0)
                 : uv_tcp_init(&self->nat->uvl, &l->h.tcp);
    if (rc < 0)
        goto fail;
    l->h.handle.data = l;
    l->handle_open = 1;
    loop_open_link_add(self, &l->link, listener_abandon);
    Py_INCREF(l); /* held by the libuv handle; released in on_listener_close */
    rc = is_pipe ? uv_pipe_open(&l->h.pipe, fd) : uv_tcp_open(&l->h.tcp, fd);
    if (rc < 0)
        goto fail;
    rc = uv_listen(&l->h.stream, backlog, on_connection);
    if (rc < 0)
        goto fail;
    return (PyObject *)l;
fail:
    errno = -rc;
    PyErr_SetFromErrno(PyExc_OSError);
    close_listener_handle(l);
    Py_DECREF(l);
    return NULL;
}

int loop_listener_init(PyObject *module)
{
    (void)module;
    return PyType_Ready(&PyLoopListener_Type);
}
