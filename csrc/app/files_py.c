/*
 * _core.parse_range(value, size): the Range header of a file of size bytes
 * (csrc/files/range.c) for FileResponse: ("ranges", [(start, end), ...]) with end
 * exclusive, ("ignore", None), ("malformed", message) or ("unsatisfiable", None).
 */
#include "app/app_internal.h"
#include "files/files.h"

PyObject *app_parse_range(PyObject *module, PyObject *args)
{
    (void)module;
    const char *value;
    Py_ssize_t n;
    unsigned long long size;
    if (!PyArg_ParseTuple(args, "s#K:parse_range", &value, &n, &size))
        return NULL;
    files_range_t ranges[FILES_MAX_RANGES];
    size_t count = 0;
    const char *message = NULL;
    switch (files_parse_range(value, (size_t)n, size, ranges, &count, &message)) {
    case FILES_RANGE_IGNORE:
        return Py_BuildValue("(sO)", "ignore", Py_None);
    case FILES_RANGE_MALFORMED:
        return Py_BuildValue("(ss)", "malformed", message);
    case FILES_RANGE_UNSATISFIABLE:
        return Py_BuildValue("(sO)", "unsatisfiable", Py_None);
    default:
        break;
    }
    PyObject *list = PyList_New((Py_ssize_t)count);
    for (size_t i = 0; list != NULL && i < count; i++) {
        PyObject *pair = Py_BuildValue("(KK)", (unsigned long long)ranges[i].start,
                                       (unsigned long long)ranges[i].end);
        if (pair == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, pair);
    }
    return list ? Py_BuildValue("(sN)", "ranges", list) : NULL;
}
