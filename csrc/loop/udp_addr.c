/*
 * Address conversion for the UDP transport (udp.c): sendto()'s Python address to a
 * struct sockaddr, with socket.sendto()'s rules and error types for AF_INET and AF_INET6
 * ((host, port) and (host, port[, flowinfo[, scope_id]]); '' and '<broadcast>'; host
 * names resolved with a blocking getaddrinfo, as socket.sendto() does on asyncio's loop).
 * Numeric hosts, the common case, are parsed here without calling into Python.
 */
#include "loop/loop_internal.h"

#include <string.h>
#include <arpa/inet.h>

/* Parses a numeric host; returns 0, or -1 when host is not a numeric address of the family
 * (no exception set). '' and '<broadcast>' mean what they mean to socket.sendto(). */
static int parse_numeric(int family, const char *host, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        if (host[0] == '\0')
            host = "0.0.0.0";
        else if (strcmp(host, "<broadcast>") == 0)
            host = "255.255.255.255";
        return uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0 ? 0 : -1;
    }
    if (host[0] == '\0')
        host = "::";
    return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0 ? 0 : -1;
}

/* Resolves a host name the way socket.sendto() does (a blocking getaddrinfo, as on asyncio's
 * loop); stores the first result in ss. Returns 0 or -1 with an exception (socket.gaierror
 * is an OSError). */
static int resolve_host(int family, PyObject *host, int port, struct sockaddr_storage *ss)
{
    PyObject *socket_mod, *infos = NULL, *numeric;
    const char *h;
    int rc = -1;

    socket_mod = PyImport_ImportModule("socket");
    if (socket_mod == NULL)
        return -1;
    infos =
        PyObject_CallMethod(socket_mod, "getaddrinfo", "Oiii", host, port, family, (int)SOCK_DGRAM);
    Py_DECREF(socket_mod);
    if (infos == NULL)
        return -1;
    if (!PyList_Check(infos) || PyList_GET_SIZE(infos) == 0) {
        PyErr_SetString(PyExc_OSError, "getaddrinfo() returned empty list");
        goto done;
    }
    /* Each entry is (family, type, proto, canonname, sockaddr); sockaddr[0] is numeric. */
    numeric = PySequence_GetItem(PyList_GET_ITEM(infos, 0), 4);
    if (numeric == NULL)
        goto done;
    if (PyTuple_Check(numeric) && PyTuple_GET_SIZE(numeric) >= 2 &&
        PyUnicode_Check(PyTuple_GET_ITEM(numeric, 0))) {
        h = PyUnicode_AsUTF8(PyTuple_GET_ITEM(numeric, 0));
        if (h != NULL) {
            if (parse_numeric(family, h, port, ss) == 0)
                rc = 0;
            else
                PyErr_Format(PyExc_OSError, "cannot parse the address of %R", host);
        }
    } else {
        PyErr_SetString(PyExc_OSError, "unexpected getaddrinfo() result");
    }
    Py_DECREF(numeric);
done:
    Py_DECREF(infos);
    return rc;
}

static int immutable_ints(PyObject *addr)
{
    for (Py_ssize_t i = 1; i < PyTuple_GET_SIZE(addr); i++) {
        if (!PyLong_CheckExact(PyTuple_GET_ITEM(addr, i)))
            return 0;
    }
    return 1;
}

/* Converts a sendto() address like socket.sendto() does for the socket's family: (host,
 * port) for AF_INET, (host, port[, flowinfo[, scope_id]]) for AF_INET6. Returns 0, or -1
 * with TypeError/OverflowError (bad argument) or OSError (name resolution). */
int loop_udp_addr_from_py(int family, PyObject *addr, struct sockaddr_storage *ss, int *cacheable)
{
    const char *fam = family == AF_INET6 ? "AF_INET6" : "AF_INET";
    PyObject *host_o, *host_s = NULL;
    Py_ssize_t n;
    long port;
    unsigned long flowinfo = 0, scope_id = 0;
    const char *host;
    int rc = -1;

    if (!PyTuple_Check(addr)) {
        PyErr_Format(PyExc_TypeError, "%s address must be tuple, not %.200s", fam,
                     Py_TYPE(addr)->tp_name);
        return -1;
    }
    n = PyTuple_GET_SIZE(addr);
    if ((family == AF_INET && n != 2) || (family == AF_INET6 && (n < 2 || n > 4))) {
        PyErr_Format(PyExc_TypeError,
                     family == AF_INET
                         ? "AF_INET address must be a pair (host, port)"
                         : "AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])");
        return -1;
    }
    host_o = PyTuple_GET_ITEM(addr, 0);
    if (PyUnicode_Check(host_o)) {
        host_s = PyUnicode_AsEncodedString(host_o, "idna", NULL);
    } else if (PyBytes_Check(host_o) || PyByteArray_Check(host_o)) {
        host_s = PyBytes_FromObject(host_o);
    } else {
        PyErr_Format(PyExc_TypeError, "str, bytes or bytearray expected, not %.200s",
                     Py_TYPE(host_o)->tp_name);
        return -1;
    }
    if (host_s == NULL)
        return -1;
    port = PyLong_AsLong(PyTuple_GET_ITEM(addr, 1));
    if (port == -1 && PyErr_Occurred())
        goto done;
    if (port < 0 || port > 0xffff) {
        PyErr_SetString(PyExc_OverflowError, "sendto(): port must be 0-65535.");
        goto done;
    }
    if (n >= 3) {
        flowinfo = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(addr, 2));
        if (flowinfo == (unsigned long)-1 && PyErr_Occurred())
            goto done;
        if (flowinfo > 0xfffff) {
            PyErr_SetString(PyExc_OverflowError, "sendto(): flowinfo must be 0-1048575.");
            goto done;
        }
    }
    if (n == 4) {
        scope_id = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(addr, 3));
        if (scope_id == (unsigned long)-1 && PyErr_Occurred())
            goto done;
    }
    host = PyBytes_AS_STRING(host_s);
    if (strlen(host) != (size_t)PyBytes_GET_SIZE(host_s)) {
        PyErr_SetString(PyExc_TypeError, "host name must not contain null character");
        goto done;
    }
    if (parse_numeric(family, host, (int)port, ss) < 0 &&
        resolve_host(family, host_o, (int)port, ss) < 0)
        goto done;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        a6->sin6_flowinfo = htonl((uint32_t)flowinfo);
        if (n == 4)
            a6->sin6_scope_id = (uint32_t)scope_id;
    }
    /* Only a tuple of exact str and ints may be cached by identity: it cannot change. */
    *cacheable = PyTuple_CheckExact(addr) && PyUnicode_CheckExact(host_o) && immutable_ints(addr);
    rc = 0;
done:
    Py_XDECREF(host_s);
    return rc;
}
