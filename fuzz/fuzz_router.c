/*
 * libFuzzer target for csrc/router. The first input byte picks a mode:
 *   even: match the rest of the input as a path, with every method, against a fixed route
 *         set built once;
 *   odd:  build a fresh router from the input's lines ("<method byte><template>"), then
 *         match every line, and every line with its first byte dropped, as a path.
 * Each match is checked against invariants that do not depend on knowing the right answer:
 * captured slices lie inside the path, substituting the captures into the matched route's
 * template gives back the path exactly, a 405's allowed methods really match, and a
 * registered template without parameters matches itself. The fuzzer owns nothing beyond a
 * single input; the fixed router lives for the whole process.
 */
#include "router/router.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NMETHODS  10 /* http_method_t values GET..OTHER */
#define M_GET     0
#define M_HEAD    1
#define MAX_LINES 64

typedef struct {
    const char *t;
    size_t n;
    int method;
} route_info_t;

static const char *fixed_templates[] = {
    "/",
    "/plaintext",
    "/json",
    "/users/{user_id}",
    "/users/me",
    "/users/{id}/posts",
    "/users/{id}/posts/{post_id}",
    "/users/me/settings",
    "/{section}/me/profile",
    "/static/{file:path}",
    "/static/index.html",
    "/static/",
    "/a//b",
    "/a/",
    "/files/{kind}/{rest:path}",
    "/files/{kind}",
    "/x/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}/{j}/{k}/{l}/{m}/{n}/{o}/{p}",
};
#define NFIXED (sizeof(fixed_templates) / sizeof(fixed_templates[0]))

static route_info_t fixed_info[NFIXED * NMETHODS];
static size_t fixed_count;
static router_t *fixed_router;

static void fail(void)
{
    abort();
}

/* Rebuilds the path from the route's template and the captures; it must equal the path. */
static void check_reconstruct(const route_info_t *ri, const router_match_t *m, const char *path,
                              size_t len)
{
    size_t pi = 0, pos = 0, k = 0;
    const char *t = ri->t;
    while (pi < ri->n) {
        if (t[pi] == '{') {
            const char *close = memchr(t + pi, '}', ri->n - pi);
            if (close == NULL || k >= m->nparams)
                fail();
            const router_param_t *p = &m->params[k++];
            int is_path = memchr(t + pi, ':', (size_t)(close - (t + pi))) != NULL;
            /* {name} is never empty; {name:path} may be (Starlette's ".*"). */
            if ((p->value_len == 0 && !is_path) || p->value < path ||
                p->value + p->value_len > path + len)
                fail();
            if (!is_path && memchr(p->value, '/', p->value_len) != NULL)
                fail();
            if (p->value != path + pos)
                fail();
            size_t nlen = (size_t)(close - (t + pi)) - 1;
            if (is_path)
                nlen -= 5;
            if (p->name_len != nlen || memcmp(p->name, t + pi + 1, nlen) != 0)
                fail();
            pos += p->value_len;
            pi = (size_t)(close - t) + 1;
        } else {
            if (pos >= len || path[pos] != t[pi])
                fail();
            pos++;
            pi++;
        }
    }
    if (pos != len || k != m->nparams)
        fail();
}

static void check_match(const router_t *r, const route_info_t *info, size_t ninfo, const char *path,
                        size_t len)
{
    router_match_t m;
    int results[32];
    for (int method = 0; method < NMETHODS; method++) {
        int rc = router_match(r, method, path, len, &m);
        results[method] = rc;
        if (rc == ROUTER_FOUND) {
            size_t idx = (size_t)(uintptr_t)m.data;
            if (idx >= ninfo || m.nparams > ROUTER_MAX_PARAMS || m.allowed != 0)
                fail();
            const route_info_t *ri = &info[idx];
            if (ri->method != method && !(method == M_HEAD && ri->method == M_GET))
                fail();
            check_reconstruct(ri, &m, path, len);
        } else if (rc == ROUTER_METHOD_NOT_ALLOWED) {
            if (m.allowed == 0 || (m.allowed & (1u << method)) || m.data != NULL)
                fail();
            if (method == M_HEAD && (m.allowed & (1u << M_GET)))
                fail();
            if ((m.allowed & (1u << M_GET)) && !(m.allowed & (1u << M_HEAD)))
                fail();
        } else if (rc == ROUTER_NOT_FOUND) {
            if (m.allowed != 0 || m.data != NULL)
                fail();
        } else {
            fail();
        }
    }
    /* Every method in a 405's allowed set matches; a 404 is a 404 for every method. */
    for (int method = 0; method < NMETHODS; method++) {
        if (results[method] == ROUTER_NOT_FOUND) {
            for (int other = 0; other < NMETHODS; other++)
                if (results[other] != ROUTER_NOT_FOUND)
                    fail();
        }
        if (results[method] == ROUTER_METHOD_NOT_ALLOWED) {
            /* Matching is deterministic, so the same 405 comes back. */
            if (router_match(r, method, path, len, &m) != ROUTER_METHOD_NOT_ALLOWED)
                fail();
            for (int a = 0; a < NMETHODS; a++)
                if ((m.allowed & (1u << a)) && results[a] != ROUTER_FOUND)
                    fail();
        }
    }
}

static void build_fixed(void)
{
    fixed_router = router_new();
    if (fixed_router == NULL)
        fail();
    for (size_t i = 0; i < NFIXED; i++) {
        /* Every template gets a few methods so that 405s and HEAD fallbacks occur. */
        for (int method = 0; method < NMETHODS; method++) {
            if ((i + (size_t)method) % 3 != 0 && method != M_GET)
                continue;
            if (method == M_GET && i % 4 == 3)
                continue;
            route_info_t *ri = &fixed_info[fixed_count];
            ri->t = fixed_templates[i];
            ri->n = strlen(ri->t);
            ri->method = method;
            if (router_add(fixed_router, method, ri->t, ri->n, (void *)(uintptr_t)fixed_count))
                fail();
            fixed_count++;
        }
    }
}

static void fuzz_built(const char *data, size_t size)
{
    route_info_t info[MAX_LINES];
    const char *lines[MAX_LINES];
    size_t line_lens[MAX_LINES];
    size_t nlines = 0, ninfo = 0;
    for (size_t s = 0; s < size && nlines < MAX_LINES;) {
        const char *nl = memchr(data + s, '\n', size - s);
        size_t e = nl ? (size_t)(nl - data) : size;
        lines[nlines] = data + s;
        line_lens[nlines] = e - s;
        nlines++;
        s = e + 1;
    }
    router_t *r = router_new();
    if (r == NULL)
        return;
    for (size_t i = 0; i < nlines; i++) {
        if (line_lens[i] < 1)
            continue;
        int method = (unsigned char)lines[i][0] % NMETHODS;
        route_info_t *ri = &info[ninfo];
        ri->t = lines[i] + 1;
        ri->n = line_lens[i] - 1;
        ri->method = method;
        int rc = router_add(r, method, ri->t, ri->n, (void *)(uintptr_t)ninfo);
        if (rc == 0) {
            ninfo++;
        } else if (rc != ROUTER_E_SYNTAX && rc != ROUTER_E_CONFLICT && rc != ROUTER_E_TOO_MANY &&
                   rc != ROUTER_E_NOMEM) {
            fail();
        }
        if (router_error_message(rc) == NULL)
            fail();
    }
    /* A template without parameters is reached before any alternative, so it matches
     * itself exactly. */
    for (size_t i = 0; i < ninfo; i++) {
        if (memchr(info[i].t, '{', info[i].n) != NULL)
            continue;
        router_match_t m;
        if (router_match(r, info[i].method, info[i].t, info[i].n, &m) != ROUTER_FOUND ||
            (size_t)(uintptr_t)m.data != i)
            fail();
    }
    for (size_t i = 0; i < nlines; i++) {
        check_match(r, info, ninfo, lines[i], line_lens[i]);
        if (line_lens[i] > 0)
            check_match(r, info, ninfo, lines[i] + 1, line_lens[i] - 1);
    }
    router_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fixed_router == NULL)
        build_fixed();
    if (size == 0)
        return 0;
    const char *rest = (const char *)data + 1;
    if (data[0] % 2 == 0) {
        /* Copy to a buffer of the exact size so ASan sees any read past the path. */
        char *path = malloc(size - 1 ? size - 1 : 1);
        if (path == NULL)
            return 0;
        memcpy(path, rest, size - 1);
        check_match(fixed_router, fixed_info, fixed_count, path, size - 1);
        free(path);
    } else {
        fuzz_built(rest, size - 1);
    }
    return 0;
}
