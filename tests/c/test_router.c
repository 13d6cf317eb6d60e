/*
 * Unit tests for csrc/router: static routes, parameters, literal-over-parameter priority
 * with backtracking, {name:path}, 404 versus 405 with the allowed mask, HEAD answered by
 * GET, conflicts, template syntax errors, a thousand generated routes and the parameter
 * limit. Routes carry small integers cast to pointers as their data, so a match can be
 * checked by number.
 */
#include "http/http.h"
#include "router/router.h"
#include "tap.h"

#include <stdint.h>
#include <stdlib.h>

_Static_assert(HTTP_GET == 0 && HTTP_HEAD == 1 && HTTP_POST == 2 && HTTP_DELETE == 5,
               "router.c hard-codes GET and HEAD as 0 and 1");

#define ID(n)  ((void *)(uintptr_t)(n))
#define BIT(m) (1u << (m))

static router_match_t m;

static int add(router_t *r, int method, const char *t, int id)
{
    return router_add(r, method, t, strlen(t), ID(id));
}

/* Matches and returns the route id, 0 for 404, -405 for 405. */
static int match(const router_t *r, int method, const char *path)
{
    int rc = router_match(r, method, path, strlen(path), &m);
    if (rc == ROUTER_FOUND)
        return (int)(uintptr_t)m.data;
    if (rc == ROUTER_METHOD_NOT_ALLOWED)
        return -405;
    return 0;
}

static int param_is(size_t i, const char *name, const char *value)
{
    return i < m.nparams && m.params[i].name_len == strlen(name) &&
           memcmp(m.params[i].name, name, strlen(name)) == 0 &&
           m.params[i].value_len == strlen(value) &&
           memcmp(m.params[i].value, value, strlen(value)) == 0;
}

static void test_static(void)
{
    router_t *r = router_new();
    TAP_OK(r != NULL);
    TAP_EQ_INT(add(r, HTTP_GET, "/", 1), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/plaintext", 2), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/json", 3), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/a/b/c", 4), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/a/", 5), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/x//y", 6), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/"), 1);
    TAP_EQ_INT(match(r, HTTP_GET, "/plaintext"), 2);
    TAP_EQ_INT(m.nparams, 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/json"), 3);
    TAP_EQ_INT(match(r, HTTP_GET, "/a/b/c"), 4);
    TAP_EQ_INT(match(r, HTTP_GET, "/a/b"), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/a/b/c/"), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/a/b/c/d"), 0);
    /* Trailing slash is significant. */
    TAP_EQ_INT(match(r, HTTP_GET, "/a/"), 5);
    TAP_EQ_INT(match(r, HTTP_GET, "/a"), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/plaintext/"), 0);
    /* Empty segments match only literally. */
    TAP_EQ_INT(match(r, HTTP_GET, "/x//y"), 6);
    TAP_EQ_INT(match(r, HTTP_GET, "/x/y"), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "//"), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/plain"), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/plaintextx"), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/PLAINTEXT"), 0);
    /* Not origin-form: never routed. */
    TAP_EQ_INT(match(r, HTTP_GET, "plaintext"), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "*"), 0);
    TAP_EQ_INT(match(r, HTTP_GET, ""), 0);
    TAP_EQ_INT(router_match(r, HTTP_GET, NULL, 0, &m), ROUTER_NOT_FOUND);
    /* The length is honoured, not a terminator. */
    TAP_EQ_INT(router_match(r, HTTP_GET, "/jsonXYZ", 5, &m), ROUTER_FOUND);
    TAP_EQ_INT((int)(uintptr_t)m.data, 3);
    router_free(r);
}

static void test_params(void)
{
    router_t *r = router_new();
    TAP_EQ_INT(add(r, HTTP_GET, "/users/{user_id}", 1), 0);
    TAP_EQ_INT(add(r, HTTP_DELETE, "/users/{uid}", 2), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/orgs/{org}/repos/{repo}", 3), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/{a}/{b}/{c}", 4), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/users/42"), 1);
    TAP_EQ_INT(m.nparams, 1);
    TAP_OK(param_is(0, "user_id", "42"));
    /* Same node, another method: that route's own names. */
    TAP_EQ_INT(match(r, HTTP_DELETE, "/users/42"), 2);
    TAP_OK(param_is(0, "uid", "42"));
    TAP_EQ_INT(match(r, HTTP_GET, "/users/%20x%2F"), 1);
    TAP_OK(param_is(0, "user_id", "%20x%2F"));
    /* A parameter never matches an empty segment or more than one segment. */
    TAP_EQ_INT(match(r, HTTP_GET, "/users/"), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/users/1/2/3"), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/orgs/acme/repos/rocket"), 3);
    TAP_EQ_INT(m.nparams, 2);
    TAP_OK(param_is(0, "org", "acme"));
    TAP_OK(param_is(1, "repo", "rocket"));
    TAP_EQ_INT(match(r, HTTP_GET, "/p/q/r"), 4);
    TAP_OK(param_is(0, "a", "p") && param_is(1, "b", "q") && param_is(2, "c", "r"));
    TAP_EQ_INT(match(r, HTTP_GET, "/p//r"), 0);
    router_free(r);
}

static void test_priority(void)
{
    router_t *r = router_new();
    TAP_EQ_INT(add(r, HTTP_GET, "/users/{id}/posts", 1), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/users/me", 2), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/users/{id}", 3), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/users/me/settings", 4), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/{section}/me/profile", 5), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/users/me"), 2);
    TAP_EQ_INT(m.nparams, 0);
    /* Backtracking: the literal "me" has no "posts" child, so {id} takes "me". */
    TAP_EQ_INT(match(r, HTTP_GET, "/users/me/posts"), 1);
    TAP_OK(param_is(0, "id", "me"));
    TAP_EQ_INT(match(r, HTTP_GET, "/users/7/posts"), 1);
    TAP_OK(param_is(0, "id", "7"));
    TAP_EQ_INT(match(r, HTTP_GET, "/users/me/settings"), 4);
    TAP_EQ_INT(match(r, HTTP_GET, "/users/7"), 3);
    TAP_EQ_INT(match(r, HTTP_GET, "/users/7/settings"), 0);
    /* Backtracking two levels up, from the literal "users" to {section}. */
    TAP_EQ_INT(match(r, HTTP_GET, "/users/me/profile"), 5);
    TAP_OK(param_is(0, "section", "users"));
    TAP_EQ_INT(match(r, HTTP_GET, "/admin/me/profile"), 5);
    TAP_OK(param_is(0, "section", "admin"));
    router_free(r);

    /* A literal route that lacks the method does not hide a parameter route that has it. */
    r = router_new();
    TAP_EQ_INT(add(r, HTTP_GET, "/users/me", 1), 0);
    TAP_EQ_INT(add(r, HTTP_DELETE, "/users/{id}", 2), 0);
    TAP_EQ_INT(match(r, HTTP_DELETE, "/users/me"), 2);
    TAP_OK(param_is(0, "id", "me"));
    TAP_EQ_INT(match(r, HTTP_PUT, "/users/me"), -405);
    TAP_EQ_INT(m.allowed, BIT(HTTP_GET) | BIT(HTTP_HEAD) | BIT(HTTP_DELETE));
    router_free(r);
}

static void test_path_params(void)
{
    router_t *r = router_new();
    TAP_EQ_INT(add(r, HTTP_GET, "/static/{file:path}", 1), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/static/index.html", 2), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/static/", 3), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/files/{kind}/{rest:path}", 4), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/files/{kind}", 5), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/{all:path}", 6), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/static/css/site.css"), 1);
    TAP_OK(param_is(0, "file", "css/site.css"));
    TAP_EQ_INT(match(r, HTTP_GET, "/static/a"), 1);
    TAP_OK(param_is(0, "file", "a"));
    TAP_EQ_INT(match(r, HTTP_GET, "/static/a/"), 1);
    TAP_OK(param_is(0, "file", "a/"));
    TAP_EQ_INT(match(r, HTTP_GET, "/static//x"), 1);
    TAP_OK(param_is(0, "file", "/x"));
    TAP_EQ_INT(match(r, HTTP_GET, "/static/index.html"), 2);
    /* A route of its own wins over an empty rest: literals are tried first. */
    TAP_EQ_INT(match(r, HTTP_GET, "/static/"), 3);
    TAP_EQ_INT(match(r, HTTP_GET, "/files/img"), 5);
    TAP_EQ_INT(match(r, HTTP_GET, "/files/img/a/b.png"), 4);
    TAP_OK(param_is(0, "kind", "img") && param_is(1, "rest", "a/b.png"));
    /* An empty rest matches too, as Starlette's ".*" does. */
    TAP_EQ_INT(match(r, HTTP_GET, "/files/img/"), 4);
    TAP_OK(param_is(0, "kind", "img") && param_is(1, "rest", ""));
    /* The catch-all at the root takes whatever nothing else takes. */
    TAP_EQ_INT(match(r, HTTP_GET, "/static"), 6);
    TAP_OK(param_is(0, "all", "static"));
    TAP_EQ_INT(match(r, HTTP_GET, "/"), 6);
    TAP_OK(param_is(0, "all", ""));
    TAP_EQ_INT(match(r, HTTP_GET, "//"), 6);
    TAP_OK(param_is(0, "all", "/"));
    router_free(r);

    /* A parameter and a path parameter at the same depth: one segment goes to {x}. */
    r = router_new();
    TAP_EQ_INT(add(r, HTTP_GET, "/a/{x}", 1), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/a/{p:path}", 2), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/a/foo"), 1);
    TAP_EQ_INT(match(r, HTTP_GET, "/a/foo/bar"), 2);
    TAP_OK(param_is(0, "p", "foo/bar"));
    /* {x} never takes an empty segment; the path parameter takes an empty rest. */
    TAP_EQ_INT(match(r, HTTP_GET, "/a/"), 2);
    TAP_OK(param_is(0, "p", ""));
    TAP_EQ_INT(match(r, HTTP_GET, "/a"), 0);
    router_free(r);
}

static void test_methods(void)
{
    router_t *r = router_new();
    TAP_EQ_INT(add(r, HTTP_GET, "/items", 1), 0);
    TAP_EQ_INT(add(r, HTTP_POST, "/items", 2), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/docs", 3), 0);
    TAP_EQ_INT(add(r, HTTP_HEAD, "/docs", 4), 0);
    TAP_EQ_INT(add(r, HTTP_POST, "/upload", 5), 0);
    TAP_EQ_INT(add(r, HTTP_OTHER, "/other", 6), 0);
    TAP_EQ_INT(add(r, 31, "/m31", 7), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/items"), 1);
    TAP_EQ_INT(match(r, HTTP_POST, "/items"), 2);
    /* HEAD falls back to GET, unless a HEAD route exists. */
    TAP_EQ_INT(match(r, HTTP_HEAD, "/items"), 1);
    TAP_EQ_INT(match(r, HTTP_HEAD, "/docs"), 4);
    TAP_EQ_INT(match(r, HTTP_HEAD, "/upload"), -405);
    TAP_EQ_INT(m.allowed, BIT(HTTP_POST));
    /* 405 with the allowed mask, HEAD included where GET is. */
    TAP_EQ_INT(match(r, HTTP_DELETE, "/items"), -405);
    TAP_EQ_INT(m.allowed, BIT(HTTP_GET) | BIT(HTTP_HEAD) | BIT(HTTP_POST));
    TAP_EQ_INT(m.data == NULL, 1);
    TAP_EQ_INT(match(r, HTTP_OPTIONS, "/docs"), -405);
    TAP_EQ_INT(m.allowed, BIT(HTTP_GET) | BIT(HTTP_HEAD));
    TAP_EQ_INT(match(r, HTTP_GET, "/other"), -405);
    TAP_EQ_INT(m.allowed, BIT(HTTP_OTHER));
    TAP_EQ_INT(match(r, HTTP_OTHER, "/other"), 6);
    TAP_EQ_INT(match(r, 31, "/m31"), 7);
    /* Out-of-range methods never match but still get a 405 on a known path. */
    TAP_EQ_INT(match(r, 32, "/items"), -405);
    TAP_EQ_INT(match(r, -1, "/items"), -405);
    TAP_EQ_INT(match(r, HTTP_DELETE, "/nope"), 0);
    TAP_EQ_INT(m.allowed, 0);
    /* allowed is reset on success. */
    m.allowed = 123;
    TAP_EQ_INT(match(r, HTTP_GET, "/items"), 1);
    TAP_EQ_INT(m.allowed, 0);
    router_free(r);
}

static void test_conflicts(void)
{
    router_t *r = router_new();
    TAP_EQ_INT(add(r, HTTP_GET, "/users/{id}", 1), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/users/{user_id}", 2), ROUTER_E_CONFLICT);
    TAP_EQ_INT(add(r, HTTP_GET, "/users/{id}", 2), ROUTER_E_CONFLICT);
    TAP_EQ_INT(add(r, HTTP_POST, "/users/{user_id}", 3), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/users/{id}/", 4), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/users/{p:path}", 5), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/users/{q:path}", 6), ROUTER_E_CONFLICT);
    TAP_EQ_INT(add(r, HTTP_GET, "/users/me", 7), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/users/me", 8), ROUTER_E_CONFLICT);
    TAP_EQ_INT(add(r, HTTP_HEAD, "/users/me", 9), 0);
    /* The failed registrations left the router as it was. */
    TAP_EQ_INT(match(r, HTTP_GET, "/users/42"), 1);
    TAP_OK(param_is(0, "id", "42"));
    TAP_EQ_INT(match(r, HTTP_POST, "/users/42"), 3);
    TAP_OK(param_is(0, "user_id", "42"));
    TAP_EQ_INT(match(r, HTTP_GET, "/users/me"), 7);
    router_free(r);
}

static void test_syntax(void)
{
    static const char *bad[] = {
        "",
        "users",
        "users/{id}",
        "/{",
        "/}",
        "/{}",
        "/{id",
        "/id}",
        "/{1id}",
        "/{id-x}",
        "/{a b}",
        "/x{id}",
        "/{id}x",
        "/f.{ext}",
        "/{id:int}",
        "/{id:}",
        "/{:path}",
        "/{p:path}/more",
        "/{p:path}/",
        "/{a}/{a}",
        "/{a}/{b:path}x",
        "/{a}/{a:path}",
        "/{{a}}",
        "/{a}}",
        "/{p:paths}",
        "/{p:Path}",
    };
    router_t *r = router_new();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = add(r, HTTP_GET, bad[i], 1);
        TAP_EQ_INT(rc, ROUTER_E_SYNTAX);
        if (rc != ROUTER_E_SYNTAX)
            printf("#   template %s\n", bad[i]);
    }
    TAP_EQ_INT(router_add(r, HTTP_GET, NULL, 0, NULL), ROUTER_E_SYNTAX);
    TAP_EQ_INT(router_add(NULL, HTTP_GET, "/", 1, NULL), ROUTER_E_SYNTAX);
    TAP_EQ_INT(add(r, 32, "/", 1), ROUTER_E_METHOD);
    TAP_EQ_INT(add(r, -1, "/", 1), ROUTER_E_METHOD);
    /* An embedded NUL is refused, not taken as the end of the template. */
    TAP_EQ_INT(router_add(r, HTTP_GET, "/a\0b", 4, NULL), ROUTER_E_SYNTAX);
    /* Nothing was registered by the failures. */
    TAP_EQ_INT(match(r, HTTP_GET, "/"), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/users/1"), 0);
    /* Edge cases that are valid. */
    TAP_EQ_INT(add(r, HTTP_GET, "/{_a1}/{B_2}", 1), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/caf%C3%A9/x-y_z.~!$&'()*+,;=:@", 2), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/caf%C3%A9/x-y_z.~!$&'()*+,;=:@"), 2);
    TAP_EQ_INT(add(r, HTTP_GET, "/caf\xc3\xa9", 3), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/caf\xc3\xa9"), 3);

    for (int e = 0; e >= -6; e--)
        TAP_OK(router_error_message(e) != NULL && router_error_message(e)[0] != '\0');
    TAP_OK(strstr(router_error_message(ROUTER_E_CONFLICT), "already") != NULL);
    router_free(r);
}

/* Literals with bytes a request target cannot carry as they are: the app matches the
 * decoded path, where "%20", "%3F", "%23" and "%09" became these. */
static void test_decoded_literals(void)
{
    router_t *r = router_new();
    TAP_EQ_INT(add(r, HTTP_GET, "/a b", 1), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/a?b", 2), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/a#b/{x}", 3), 0);
    TAP_EQ_INT(add(r, HTTP_GET, "/a\tb", 4), 0);
    TAP_EQ_INT(match(r, HTTP_GET, "/a b"), 1);
    TAP_EQ_INT(match(r, HTTP_GET, "/a?b"), 2);
    TAP_EQ_INT(match(r, HTTP_GET, "/a#b/?"), 3);
    TAP_OK(param_is(0, "x", "?"));
    TAP_EQ_INT(match(r, HTTP_GET, "/a\tb"), 4);
    TAP_EQ_INT(match(r, HTTP_GET, "/a%20b"), 0);
    router_free(r);
}

static void test_many_routes(void)
{
    router_t *r = router_new();
    char buf[128];
    int rc_all = 0;
    /* 1,000 routes in a scrambled order so that literal children are inserted unsorted. */
    for (int k = 0; k < 1000; k++) {
        int i = (k * 7919) % 1000;
        switch (i % 4) {
        case 0:
            snprintf(buf, sizeof buf, "/r%d", i);
            break;
        case 1:
            snprintf(buf, sizeof buf, "/api/v%d/items/{id}", i);
            break;
        case 2:
            snprintf(buf, sizeof buf, "/api/v%d/items/{id}/tags/{tag}", i);
            break;
        default:
            snprintf(buf, sizeof buf, "/g/%d/{rest:path}", i);
            break;
        }
        rc_all |= add(r, i % 2 ? HTTP_POST : HTTP_GET, buf, i + 1);
    }
    TAP_EQ_INT(rc_all, 0);
    int wrong = 0;
    for (int i = 0; i < 1000; i++) {
        int method = i % 2 ? HTTP_POST : HTTP_GET;
        switch (i % 4) {
        case 0:
            snprintf(buf, sizeof buf, "/r%d", i);
            wrong += match(r, method, buf) != i + 1 || m.nparams != 0;
            break;
        case 1:
            snprintf(buf, sizeof buf, "/api/v%d/items/x%d", i, i);
            wrong += match(r, method, buf) != i + 1 || m.nparams != 1;
            break;
        case 2:
            snprintf(buf, sizeof buf, "/api/v%d/items/1/tags/t", i);
            wrong += match(r, method, buf) != i + 1 || !param_is(1, "tag", "t");
            break;
        default:
            snprintf(buf, sizeof buf, "/g/%d/a/b/c", i);
            wrong += match(r, method, buf) != i + 1 || !param_is(0, "rest", "a/b/c");
            break;
        }
        wrong += match(r, HTTP_PUT, buf) != -405;
        snprintf(buf, sizeof buf, "/r%dx", i);
        wrong += match(r, HTTP_GET, buf) != 0;
    }
    TAP_EQ_INT(wrong, 0);
    /* Re-registering every route conflicts. */
    int conflicts = 0;
    for (int i = 0; i < 1000; i += 4) {
        snprintf(buf, sizeof buf, "/r%d", i);
        conflicts += add(r, HTTP_GET, buf, 0) == ROUTER_E_CONFLICT;
    }
    TAP_EQ_INT(conflicts, 250);
    router_free(r);
}

static void test_max_params(void)
{
    char t[512], p[512];
    size_t tl = 0, pl = 0;
    for (int i = 0; i < ROUTER_MAX_PARAMS; i++) {
        tl += (size_t)snprintf(t + tl, sizeof t - tl, "/{p%d}", i);
        pl += (size_t)snprintf(p + pl, sizeof p - pl, "/v%d", i);
    }
    router_t *r = router_new();
    TAP_EQ_INT(router_add(r, HTTP_GET, t, tl, ID(1)), 0);
    TAP_EQ_INT(router_match(r, HTTP_GET, p, pl, &m), ROUTER_FOUND);
    TAP_EQ_INT(m.nparams, ROUTER_MAX_PARAMS);
    TAP_OK(param_is(0, "p0", "v0"));
    TAP_OK(param_is(15, "p15", "v15"));
    /* Seventeen parameters, the last one a path parameter. */
    char t2[600];
    snprintf(t2, sizeof t2, "%s/{rest:path}", t);
    TAP_EQ_INT(add(r, HTTP_GET, t2, 2), ROUTER_E_TOO_MANY);
    snprintf(t2, sizeof t2, "/x%s/{q}", t);
    TAP_EQ_INT(add(r, HTTP_GET, t2, 2), ROUTER_E_TOO_MANY);
    /* A syntax error in a template that is also too long is reported as syntax. */
    snprintf(t2, sizeof t2, "/x%s/{q}/{", t);
    TAP_EQ_INT(add(r, HTTP_GET, t2, 2), ROUTER_E_SYNTAX);
    /* Sixteen with a path parameter last is fine. */
    tl = 0;
    for (int i = 0; i < ROUTER_MAX_PARAMS - 1; i++)
        tl += (size_t)snprintf(t + tl, sizeof t - tl, "/{p%d}", i);
    snprintf(t + tl, sizeof t - tl, "/{tail:path}");
    TAP_EQ_INT(add(r, HTTP_POST, t, 3), 0);
    TAP_EQ_INT(match(r, HTTP_POST, "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17/18"), 3);
    TAP_OK(param_is(15, "tail", "16/17/18"));
    router_free(r);
}

static void test_deep(void)
{
    /* A template with thousands of segments: building, matching and freeing must neither
     * recurse per segment nor slow down. */
    size_t n = 5000, len = 2 * n;
    char *t = malloc(len + 1);
    TAP_OK(t != NULL);
    if (t == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        t[2 * i] = '/';
        t[2 * i + 1] = 'a';
    }
    router_t *r = router_new();
    TAP_EQ_INT(router_add(r, HTTP_GET, t, len, ID(1)), 0);
    TAP_EQ_INT(router_match(r, HTTP_GET, t, len, &m), ROUTER_FOUND);
    TAP_EQ_INT(router_match(r, HTTP_GET, t, len - 2, &m), ROUTER_NOT_FOUND);
    router_free(r);
    free(t);
}

int main(void)
{
    test_static();
    test_params();
    test_priority();
    test_path_params();
    test_methods();
    test_conflicts();
    test_syntax();
    test_decoded_literals();
    test_many_routes();
    test_max_params();
    test_deep();
    return tap_done();
}
