/*
 * libFuzzer target for the Host field parser (csrc/http/host.c) and the gzip rules
 * (csrc/gzip/): any input is a Host value and an Accept-Encoding / Content-Type value.
 * Invariants: an accepted host is a non-empty prefix of the input, its port (when there
 * is one) is the digits after the ':' that ends it, and the two cover the whole input;
 * the port check never reads outside the port; the gzip predicates return 0 or 1.
 */
#include "gzip/gzip.h"
#include "http/http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char excluded[] = "audio/*\0text/event-stream\0application/grpc\0";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan sees any read past the end. */
    char *v = malloc(size ? size : 1);
    if (v == NULL)
        return 0;
    memcpy(v, data, size);
    http_host_t h;
    if (http_parse_host(v, size, &h) == 0) {
        if (h.host != v || h.host_len == 0 || h.host_len > size)
            abort();
        if (h.port == NULL) {
            if (h.host_len != size)
                abort();
        } else {
            if (h.port != v + h.host_len + 1 || v[h.host_len] != ':' ||
                h.host_len + 1 + h.port_len != size || h.port_len == 0)
                abort();
            for (size_t i = 0; i < h.port_len; i++)
                if (h.port[i] < '0' || h.port[i] > '9')
                    abort();
            int ok = http_host_port_valid(h.port, h.port_len);
            if (ok != 0 && ok != 1)
                abort();
        }
    }
    gzip_policy_t p = {
        .level = 9, .minimum_size = 0, .excluded = excluded, .excluded_len = sizeof(excluded) - 1};
    int a = gzip_accepted(v, size), t = gzip_type_excluded(&p, v, size);
    if ((a != 0 && a != 1) || (t != 0 && t != 1))
        abort();
    free(v);
    return 0;
}
