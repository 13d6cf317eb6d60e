/*
 * Request router: a radix tree on path segments with typed-agnostic parameter capture.
 * No Python headers; the app stores an opaque pointer per (method, path) route.
 *
 * Path templates: literal segments, "{name}" for one whole segment, and "{name:path}" as
 * the last segment for the rest of the path (may contain '/'). Literal segments win over
 * parameters at the same depth. Matching is on the bytes given, which the app makes the
 * percent-decoded path (app/invoke.c, as Starlette routes on scope["path"]); the captured
 * slices point into the caller's path buffer.
 *
 * Details (see router.c for the reasons): the trailing slash is significant ("/a/" is not
 * "/a"); "{name}" never matches an empty segment, so "//" matches only a literal "//";
 * "{name:path}" matches any rest, empty too (after a '/'); literal, then parameter, then path child
 * are tried at each depth, with backtracking. A 405 sets `allowed` to every method that would match
 * the path, with HEAD added when GET is there. Param names are identifiers, unique per template;
 * templates of the same shape and method conflict whatever the names.
 */
#ifndef DB_ROUTER_ROUTER_H
#define DB_ROUTER_ROUTER_H

#include <stddef.h>

#define ROUTER_MAX_PARAMS 16

typedef struct router router_t;

typedef struct {
    const char *name; /* the parameter name from the template (owned by the router) */
    size_t name_len;
    const char *value; /* slice into the matched path */
    size_t value_len;
} router_param_t;

typedef struct {
    void *data;     /* the route's opaque pointer */
    size_t nparams; /* in template order */
    router_param_t params[ROUTER_MAX_PARAMS];
    unsigned allowed; /* on ROUTER_METHOD_NOT_ALLOWED: bit (1u << method) per allowed method */
} router_match_t;

enum {
    ROUTER_FOUND = 1,
    ROUTER_NOT_FOUND = 0,
    ROUTER_METHOD_NOT_ALLOWED = -1,
};

enum {
    ROUTER_E_NOMEM = -1,
    ROUTER_E_SYNTAX = -2,   /* bad template: unbalanced braces, empty name, ... */
    ROUTER_E_CONFLICT = -3, /* same method and equivalent template registered twice */
    ROUTER_E_TOO_MANY = -4, /* more than ROUTER_MAX_PARAMS parameters */
    ROUTER_E_METHOD = -5,   /* method outside 0..31 */
};

router_t *router_new(void);
void router_free(router_t *r);
/* method is an http_method_t value (< 32). Returns 0 or a negative ROUTER_E_* code. */
int router_add(router_t *r, int method, const char *tmpl, size_t tmpl_len, void *data);
/* Returns ROUTER_FOUND, ROUTER_NOT_FOUND or ROUTER_METHOD_NOT_ALLOWED. A HEAD request
 * matches a GET route when no HEAD route exists. */
int router_match(const router_t *r, int method, const char *path, size_t path_len,
                 router_match_t *out);
const char *router_error_message(int err);

#endif
