/* Placeholder so the extension links before the loop lands; the loop owner deletes it. */
#include "loop/loop.h"

int loop_module_init(PyObject *module)
{
    (void)module;
    return 0;
}
