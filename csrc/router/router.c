/*
 * The request router: a tree of path segments, built once at startup by router_add and
 * walked per request by router_match without allocating.
 *
 * A path "/s1/s2/.../sk" is the list of segments s1..sk taken after the leading '/', so
 * "/" is one empty segment, "/a/" is "a" followed by an empty segment (the trailing slash
 * is significant) and "//" is two empty segments. Every tree node stands for a prefix of
 * segments. Its children are: literal children (sorted by segment text, found by binary
 * search), at most one "{name}" child (any non-empty segment; empty segments therefore
 * match only literally) and at most one "{name:path}" child, which is always a leaf and
 * captures the rest of the path including '/', empty too: Starlette's path convertor is
 * ".*", so "/files/{p:path}" matches "/files/" with p == "" (and redirect_slashes sends
 * "/files" there). A route "/files/" of its own still wins: literals are tried first.
 *
 * Matching tries, at each depth, the literal child, then the parameter child, then the
 * path child, and backtracks when a subtree has no route for the path, so "/users/me" and
 * "/users/{id}/posts" both work. The first node in that order that has a route for the
 * method wins (a HEAD request uses the GET route when the node has no HEAD route). When
 * some nodes match the path but none has the method, the answer is 405 and `allowed` is
 * the union of their methods, which is exactly the set of methods for which router_match
 * on the same path would succeed. Each node is visited at most once per match because a
 * node's depth fixes the path segment it is compared with, so a match costs O(path length)
 * when nothing backtracks and O(visited nodes) at worst. The walk is iterative: a node
 * records its parent and what kind of child it is, and the cursor for the parent is
 * recovered from the segment length or the captured slice, so no stack is needed.
 *
 * Param names are stored per route, not per node: GET "/users/{id}" and DELETE
 * "/users/{user_id}" share one node, and each match reports the names of its own route.
 * Templates with the same shape and method conflict whatever their names are.
 *
 * Ownership: the router owns every node, every route record and the copies of the
 * literal segments and parameter names; router_match hands out pointers to those names
 * (valid until router_free) and slices into the caller's path buffer. The `data` pointers
 * belong to the caller. A router_add that fails with ROUTER_E_NOMEM may leave empty nodes
 * behind; they carry no route, so matching is unaffected.
 */
#include "router/router.h"

#include <stdlib.h>
#include <string.h>

/* These mirror HTTP_GET and HTTP_HEAD of http_method_t in http/http.h; the router keeps
 * methods as small ints so that it does not depend on the parser. The unit test checks
 * that the values agree. */
#define ROUTER_M_GET  0
#define ROUTER_M_HEAD 1

enum { NODE_ROOT, NODE_LITERAL, NODE_PARAM, NODE_REST };

typedef struct {
    const char *p;
    size_t n;
} router_name_t;

/* One registered (method, template) pair; the parameter names live in the same block. */
typedef struct {
    void *data;
    int method;
    size_t nparams;
    router_name_t names[]; /* followed by the name text */
} router_route_t;

typedef struct router_node router_node_t;

struct router_node {
    router_node_t *parent;
    router_node_t **lits; /* sorted by (segment bytes, length) */
    size_t nlits;
    size_t caplits;
    router_node_t *param;
    router_node_t *rest;
    /* routes[i] is the route of the i-th set bit in methods, so the route for method m is
     * routes[popcount(methods & ((1 << m) - 1))]: O(1) without a 32-slot table. */
    router_route_t **routes;
    unsigned methods;
    unsigned char kind;
    unsigned char depth_params; /* parameters captured on the way here, including this node */
    size_t seg_len;
    char seg[]; /* the literal segment for NODE_LITERAL */
};

struct router {
    router_node_t *root;
};

/* A parsed template segment; used twice, once to validate and once to insert. */
typedef struct {
    int kind;         /* NODE_LITERAL, NODE_PARAM or NODE_REST */
    const char *text; /* literal text, or the parameter name */
    size_t len;
} router_seg_t;

static router_node_t *node_new(router_node_t *parent, int kind, const char *seg, size_t len)
{
    router_node_t *n = malloc(sizeof(*n) + len);
    if (n == NULL)
        return NULL;
    memset(n, 0, sizeof(*n));
    n->parent = parent;
    n->kind = (unsigned char)kind;
    n->depth_params = parent ? parent->depth_params : 0;
    if (kind == NODE_PARAM || kind == NODE_REST)
        n->depth_params++;
    n->seg_len = len;
    if (len)
        memcpy(n->seg, seg, len);
    return n;
}

static void node_free(router_node_t *n)
{
    for (unsigned i = 0, k = (unsigned)__builtin_popcount(n->methods); i < k; i++)
        free(n->routes[i]);
    free(n->routes);
    free(n->lits);
    free(n);
}

router_t *router_new(void)
{
    router_t *r = malloc(sizeof(*r));
    if (r == NULL)
        return NULL;
    r->root = node_new(NULL, NODE_ROOT, NULL, 0);
    if (r->root == NULL) {
        free(r);
        return NULL;
    }
    return r;
}

void router_free(router_t *r)
{
    if (r == NULL)
        return;
    /* Post-order walk through parent pointers: a template with thousands of segments must
     * not turn into thousands of stack frames. Children are detached as they are entered. */
    router_node_t *n = r->root;
    while (n != NULL) {
        router_node_t *child = NULL;
        if (n->nlits) {
            child = n->lits[--n->nlits];
        } else if (n->param) {
            child = n->param;
            n->param = NULL;
        } else if (n->rest) {
            child = n->rest;
            n->rest = NULL;
        }
        if (child) {
            n = child;
            continue;
        }
        router_node_t *parent = n->parent;
        node_free(n);
        n = parent;
    }
    free(r);
}

static int seg_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

/* Binary search among the literal children; *pos receives the insertion point on a miss. */
static router_node_t *find_literal(const router_node_t *n, const char *s, size_t len, size_t *pos)
{
    size_t lo = 0, hi = n->nlits;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const router_node_t *c = n->lits[mid];
        int cmp = seg_cmp(c->seg, c->seg_len, s, len);
        if (cmp == 0)
            return n->lits[mid];
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (pos)
        *pos = lo;
    return NULL;
}

static int is_ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_ident_char(unsigned char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

/* Bytes a literal may hold: all but the template syntax's braces and NUL (a template with
 * one is a mistake, not a route). The app matches the percent-decoded path (app/invoke.c),
 * so a space, another control, '?' or '#' is reachable (written %20, %09, %3F, %23 by the
 * client), as in Starlette; so are bytes >= 0x80. */
static int is_literal_char(unsigned char c)
{
    return c != '\0' && c != '{' && c != '}';
}

/* Classifies the segment tmpl[s, e). "{name}" and "{name:path}" must fill the whole
 * segment; partial-segment parameters such as "/f.{ext}" are not supported. */
static int parse_segment(const char *t, size_t s, size_t e, router_seg_t *out)
{
    size_t len = e - s;
    const char *p = t + s;
    if (len == 0 || p[0] != '{') {
        for (size_t i = 0; i < len; i++)
            if (!is_literal_char((unsigned char)p[i]))
                return ROUTER_E_SYNTAX;
        out->kind = NODE_LITERAL;
        out->text = p;
        out->len = len;
        return 0;
    }
    if (len < 3 || p[len - 1] != '}')
        return ROUTER_E_SYNTAX;
    const char *name = p + 1;
    size_t inner = len - 2, nlen = 0;
    while (nlen < inner && name[nlen] != ':')
        nlen++;
    if (nlen == 0 || !is_ident_start((unsigned char)name[0]))
        return ROUTER_E_SYNTAX;
    for (size_t i = 1; i < nlen; i++)
        if (!is_ident_char((unsigned char)name[i]))
            return ROUTER_E_SYNTAX;
    out->text = name;
    out->len = nlen;
    if (nlen == inner) {
        out->kind = NODE_PARAM;
        return 0;
    }
    /* The only convertor is "path"; types such as int are the binder's business. */
    if (inner - nlen - 1 == 4 && memcmp(name + nlen + 1, "path", 4) == 0) {
        out->kind = NODE_REST;
        return 0;
    }
    return ROUTER_E_SYNTAX;
}

/* Validates the whole template and collects its parameter names, before anything in the
 * tree changes, so a bad template leaves the router exactly as it was. */
static int validate_template(const char *t, size_t len, router_name_t *names, size_t *nnames)
{
    if (t == NULL || len == 0 || t[0] != '/')
        return ROUTER_E_SYNTAX;
    size_t n = 0;
    int too_many = 0;
    for (size_t s = 1;;) {
        const char *slash = memchr(t + s, '/', len - s);
        size_t e = slash ? (size_t)(slash - t) : len;
        router_seg_t seg;
        int rc = parse_segment(t, s, e, &seg);
        if (rc < 0)
            return rc;
        if (seg.kind == NODE_REST && e != len)
            return ROUTER_E_SYNTAX; /* "{name:path}" must be the last segment */
        if (seg.kind != NODE_LITERAL) {
            for (size_t i = 0; i < n && i < ROUTER_MAX_PARAMS; i++)
                if (names[i].n == seg.len && memcmp(names[i].p, seg.text, seg.len) == 0)
                    return ROUTER_E_SYNTAX; /* duplicate name */
            if (n < ROUTER_MAX_PARAMS) {
                names[n].p = seg.text;
                names[n].n = seg.len;
            } else {
                too_many = 1;
            }
            n++;
        }
        if (e == len)
            break;
        s = e + 1;
    }
    /* Syntax errors take precedence over the count, so the count is reported last. */
    if (too_many)
        return ROUTER_E_TOO_MANY;
    *nnames = n;
    return 0;
}

static router_node_t *child_for(router_node_t *n, const router_seg_t *seg)
{
    router_node_t **slot;
    if (seg->kind == NODE_PARAM) {
        slot = &n->param;
    } else if (seg->kind == NODE_REST) {
        slot = &n->rest;
    } else {
        size_t pos = 0;
        router_node_t *c = find_literal(n, seg->text, seg->len, &pos);
        if (c)
            return c;
        if (n->nlits == n->caplits) {
            size_t cap = n->caplits ? n->caplits * 2 : 4;
            router_node_t **tmp = realloc(n->lits, cap * sizeof(*tmp));
            if (tmp == NULL)
                return NULL;
            n->lits = tmp;
            n->caplits = cap;
        }
        c = node_new(n, NODE_LITERAL, seg->text, seg->len);
        if (c == NULL)
            return NULL;
        memmove(n->lits + pos + 1, n->lits + pos, (n->nlits - pos) * sizeof(*n->lits));
        n->lits[pos] = c;
        n->nlits++;
        return c;
    }
    if (*slot == NULL)
        *slot = node_new(n, seg->kind, NULL, 0);
    return *slot;
}

static size_t route_index(unsigned methods, int method)
{
    return (size_t)__builtin_popcount(methods & ((1u << method) - 1u));
}

int router_add(router_t *r, int method, const char *tmpl, size_t tmpl_len, void *data)
{
    router_name_t names[ROUTER_MAX_PARAMS];
    size_t nnames = 0;
    if (r == NULL)
        return ROUTER_E_SYNTAX;
    if (method < 0 || method >= 32)
        return ROUTER_E_METHOD;
    int rc = validate_template(tmpl, tmpl_len, names, &nnames);
    if (rc < 0)
        return rc;

    router_node_t *n = r->root;
    for (size_t s = 1;;) {
        const char *slash = memchr(tmpl + s, '/', tmpl_len - s);
        size_t e = slash ? (size_t)(slash - tmpl) : tmpl_len;
        router_seg_t seg;
        parse_segment(tmpl, s, e, &seg); /* cannot fail: validated above */
        n = child_for(n, &seg);
        if (n == NULL)
            return ROUTER_E_NOMEM;
        if (e == tmpl_len)
            break;
        s = e + 1;
    }

    unsigned bit = 1u << method;
    if (n->methods & bit)
        return ROUTER_E_CONFLICT;

    size_t text_len = 0;
    for (size_t i = 0; i < nnames; i++)
        text_len += names[i].n;
    router_route_t *route = malloc(sizeof(*route) + nnames * sizeof(router_name_t) + text_len);
    if (route == NULL)
        return ROUTER_E_NOMEM;
    route->data = data;
    route->method = method;
    route->nparams = nnames;
    char *text = (char *)(route->names + nnames);
    for (size_t i = 0; i < nnames; i++) {
        memcpy(text, names[i].p, names[i].n);
        route->names[i].p = text;
        route->names[i].n = names[i].n;
        text += names[i].n;
    }

    size_t count = (size_t)__builtin_popcount(n->methods);
    router_route_t **tmp = realloc(n->routes, (count + 1) * sizeof(*tmp));
    if (tmp == NULL) {
        free(route);
        return ROUTER_E_NOMEM;
    }
    n->routes = tmp;
    size_t idx = route_index(n->methods, method);
    memmove(n->routes + idx + 1, n->routes + idx, (count - idx) * sizeof(*n->routes));
    n->routes[idx] = route;
    n->methods |= bit;
    return 0;
}

/* The route of node n for the request method, with HEAD answered by GET when the node has
 * no HEAD route of its own (RFC 9110 section 9.3.2: HEAD is GET without the content). */
static const router_route_t *node_route(const router_node_t *n, int method, unsigned want)
{
    if (n->methods & want)
        return n->routes[route_index(n->methods, method)];
    if (method == ROUTER_M_HEAD && (n->methods & (1u << ROUTER_M_GET)))
        return n->routes[route_index(n->methods, ROUTER_M_GET)];
    return NULL;
}

static int found(const router_route_t *route, router_match_t *out)
{
    out->data = route->data;
    out->nparams = route->nparams;
    for (size_t i = 0; i < route->nparams; i++) {
        out->params[i].name = route->names[i].p;
        out->params[i].name_len = route->names[i].n;
    }
    return ROUTER_FOUND;
}

static size_t segment_end(const char *path, size_t len, size_t start)
{
    const char *slash = memchr(path + start, '/', len - start);
    return slash ? (size_t)(slash - path) : len;
}

/* The walk state is (node, cursor, stage). The cursor c is the index of the '/' before the
 * next unconsumed segment, or len when every segment is consumed. The stage says which
 * alternative of the node comes next: 0 literal, 1 parameter, 2 rest, 3 exhausted. */
int router_match(const router_t *r, int method, const char *path, size_t path_len,
                 router_match_t *out)
{
    unsigned want = (method >= 0 && method < 32) ? 1u << method : 0u;
    unsigned allowed = 0;
    out->data = NULL;
    out->nparams = 0;
    out->allowed = 0;
    /* Only origin-form paths are routed; "*" and absolute-form are the server's concern. */
    if (r == NULL || path == NULL || path_len == 0 || path[0] != '/')
        return ROUTER_NOT_FOUND;

    const router_node_t *n = r->root;
    size_t c = 0;
    int stage = 0;
    for (;;) {
        if (c == path_len) {
            /* Every segment is consumed: n is a candidate, and it has no alternatives. */
            const router_route_t *route = node_route(n, method, want);
            if (route)
                return found(route, out);
            allowed |= n->methods;
            stage = 3;
        }
        if (stage < 3) {
            size_t s = c + 1, e = segment_end(path, path_len, s);
            if (stage == 0) {
                router_node_t *child = find_literal(n, path + s, e - s, NULL);
                if (child) {
                    n = child;
                    c = e;
                    continue;
                }
                stage = 1;
            }
            if (stage == 1) {
                if (n->param && e > s) {
                    router_param_t *p = &out->params[n->param->depth_params - 1];
                    p->value = path + s;
                    p->value_len = e - s;
                    n = n->param;
                    c = e;
                    stage = 0;
                    continue;
                }
                stage = 2;
            }
            /* stage 2: the rest of the path, possibly empty (s == path_len: the path ends
             * with the '/' before it). */
            if (n->rest && s <= path_len) {
                router_param_t *p = &out->params[n->rest->depth_params - 1];
                p->value = path + s;
                p->value_len = path_len - s;
                const router_route_t *route = node_route(n->rest, method, want);
                if (route)
                    return found(route, out);
                allowed |= n->rest->methods;
            }
        }
        /* Backtrack: return to the parent with its cursor and its next alternative. */
        if (n->kind == NODE_ROOT)
            break;
        if (n->kind == NODE_LITERAL) {
            c -= n->seg_len + 1;
            stage = 1;
        } else {
            c = (size_t)(out->params[n->depth_params - 1].value - path) - 1;
            stage = 2;
        }
        n = n->parent;
    }
    if (allowed == 0)
        return ROUTER_NOT_FOUND;
    if (allowed & (1u << ROUTER_M_GET))
        allowed |= 1u << ROUTER_M_HEAD;
    out->allowed = allowed;
    return ROUTER_METHOD_NOT_ALLOWED;
}

const char *router_error_message(int err)
{
    switch (err) {
    case 0:
        return "no error";
    case ROUTER_E_NOMEM:
        return "out of memory";
    case ROUTER_E_SYNTAX:
        return "invalid path template: it must start with '/', parameters must be whole "
               "segments written {name} or {name:path} with a unique identifier as name, "
               "{name:path} must be the last segment, and literals must not contain "
               "'{', '}' or NUL";
    case ROUTER_E_CONFLICT:
        return "a route with the same method and the same path shape is already registered";
    case ROUTER_E_TOO_MANY:
        return "too many path parameters in one template (at most 16)";
    case ROUTER_E_METHOD:
        return "method out of range (must be 0..31)";
    default:
        return "unknown router error";
    }
}
