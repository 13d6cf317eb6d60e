/*
 * Header values of multipart bodies: the parameter syntax shared by Content-Type and
 * Content-Disposition (RFC 9110 §5.6.6, quoted-string §5.6.4), the boundary parameter
 * (RFC 2046 §5.1.1), and Content-Disposition: form-data (RFC 7578 §4.2, RFC 6266, with
 * filename* of RFC 8187). Slices point into the caller's bytes; decoded text is written to
 * the caller's buffer. Nothing here allocates.
 */
#include "form/form_internal.h"

#include "common/text.h"

#include <string.h>

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Bytes allowed in a quoted-string besides '"' and '\' (qdtext, RFC 9110 §5.6.4). */
static int is_qdtext(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

int form_ieq(const char *s, size_t n, const char *word)
{
    size_t i = 0;
    for (; i < n && word[i]; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c != word[i])
            return 0;
    }
    return i == n && word[i] == '\0';
}

int form_media_type_is(const char *s, size_t n, const char *type, size_t *pos)
{
    size_t i = 0;
    while (i < n && is_ows(s[i]))
        i++;
    size_t start = i;
    while (i < n && (db_is_tchar((unsigned char)s[i]) || s[i] == '/'))
        i++;
    if (!form_ieq(s + start, i - start, type))
        return 0;
    *pos = i;
    return 1;
}

int form_param_next(const char *s, size_t n, size_t *pos, form_param_t *out)
{
    size_t i = *pos;
    /* Empty parameters (";;") are allowed by the grammar: *( OWS ";" OWS [ parameter ] ). */
    for (;;) {
        while (i < n && is_ows(s[i]))
            i++;
        if (i == n) {
            *pos = i;
            return 0;
        }
        if (s[i] != ';')
            return -1;
        i++;
        while (i < n && is_ows(s[i]))
            i++;
        if (i < n && s[i] != ';')
            break;
    }
    if (i == n) {
        *pos = i;
        return 0;
    }
    size_t start = i;
    while (i < n && db_is_tchar((unsigned char)s[i]))
        i++;
    if (i == start)
        return -1;
    /* The name is set before the value is checked, so a caller can tell which parameter
     * was malformed. */
    out->name = s + start;
    out->name_len = i - start;
    /* The grammar has no space around '='; tolerating it costs nothing and some clients
     * send it. */
    while (i < n && is_ows(s[i]))
        i++;
    if (i == n || s[i] != '=')
        return -1;
    i++;
    while (i < n && is_ows(s[i]))
        i++;
    if (i < n && s[i] == '"') {
        start = ++i;
        while (i < n && s[i] != '"') {
            if (s[i] == '\\' && i + 1 < n)
                i++;
            if (!is_qdtext((unsigned char)s[i]))
                return -1;
            i++;
        }
        if (i == n)
            return -1; /* no closing quote */
        out->value = s + start;
        out->value_len = i - start;
        out->quoted = 1;
        i++;
    } else {
        /* A token by the grammar. Clients also send unquoted values with other printable
         * bytes (boundaries with '=' or '/', raw UTF-8 file names); they are unambiguous up
         * to the next ';', so they are taken and left to the value's own checks. */
        start = i;
        while (i < n && s[i] != ';' && s[i] != '"' && is_qdtext((unsigned char)s[i]))
            i++;
        if (i < n && s[i] != ';')
            return -1;
        size_t end = i;
        while (end > start && is_ows(s[end - 1]))
            end--;
        if (end == start)
            return -1;
        out->value = s + start;
        out->value_len = end - start;
        out->quoted = 0;
    }
    *pos = i;
    return 1;
}

/* bcharsnospace of RFC 2046 §5.1.1 (bchars adds the space). */
static int is_bchar_nospace(unsigned char c)
{
    if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
        return 1;
    return c != 0 && strchr("'()+_,-./:=?", c) != NULL;
}

int form_multipart_boundary(const char *ct, size_t n, char *out)
{
    size_t pos = 0, len = 0;
    int found = 0;
    /* Skip the media type; the caller checks it. */
    while (pos < n && ct[pos] != ';')
        pos++;
    form_param_t p = {0};
    int rc;
    while ((rc = form_param_next(ct, n, &pos, &p)) > 0) {
        if (!form_ieq(p.name, p.name_len, "boundary"))
            continue;
        if (found)
            return FORM_E_BAD_BOUNDARY; /* two boundaries: which one would the sender mean? */
        found = 1;
        for (size_t i = 0; i < p.value_len; i++) {
            char c = p.value[i];
            if (p.quoted && c == '\\' && i + 1 < p.value_len)
                c = p.value[++i];
            if (len == FORM_MAX_BOUNDARY || (c != ' ' && !is_bchar_nospace((unsigned char)c)))
                return FORM_E_BAD_BOUNDARY;
            out[len++] = c;
        }
        if (len == 0 || out[len - 1] == ' ')
            return FORM_E_BAD_BOUNDARY;
    }
    if (rc < 0 && (found || (p.name && form_ieq(p.name, p.name_len, "boundary"))))
        return FORM_E_BAD_BOUNDARY;
    if (rc < 0)
        return FORM_E_NO_BOUNDARY;
    return found ? (int)len : FORM_E_NO_BOUNDARY;
}

/* Copies a parameter value to dst. Quoted values lose their quoted-pairs for '"' and '\'
 * only: browsers do not escape backslashes in file names (WHATWG HTML's multipart/form-data
 * encoding percent-encodes '"' instead), and old clients send Windows paths, so a '\'
 * before anything else stays, as python-multipart (Starlette) keeps it. */
static size_t copy_value(char *dst, const form_param_t *p)
{
    size_t o = 0;
    for (size_t i = 0; i < p->value_len; i++) {
        char c = p->value[i];
        if (p->quoted && c == '\\' && i + 1 < p->value_len &&
            (p->value[i + 1] == '"' || p->value[i + 1] == '\\'))
            c = p->value[++i];
        dst[o++] = c;
    }
    return o;
}

/* attr-char of RFC 8187 §3.2.1. */
static int is_attr_char(unsigned char c)
{
    if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
        return 1;
    return c != 0 && strchr("!#$&+-.^_`|~", c) != NULL;
}

/* Decodes an RFC 8187 ext-value (charset "'" [language] "'" value-chars) into dst as UTF-8
 * (room for 2 * n bytes: ISO-8859-1 doubles at most). Returns the length, or -1 when the
 * value is malformed or its charset is neither UTF-8 nor ISO-8859-1 (the two RFC 8187 §3.2.1
 * names); RFC 6266 §4.3 then falls back to the plain filename parameter. */
static long decode_ext_value(char *dst, const char *s, size_t n)
{
    size_t q1 = 0;
    while (q1 < n && s[q1] != '\'')
        q1++;
    if (q1 == n)
        return -1;
    int latin1;
    if (form_ieq(s, q1, "utf-8"))
        latin1 = 0;
    else if (form_ieq(s, q1, "iso-8859-1"))
        latin1 = 1;
    else
        return -1;
    size_t q2 = q1 + 1;
    while (q2 < n && s[q2] != '\'')
        q2++;
    if (q2 == n)
        return -1;
    size_t o = 0;
    for (size_t i = q2 + 1; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            int h = i + 2 < n ? db_hexval((unsigned char)s[i + 1]) : -1;
            int l = i + 2 < n ? db_hexval((unsigned char)s[i + 2]) : -1;
            if (h < 0 || l < 0)
                return -1;
            c = (unsigned char)(h * 16 + l);
            i += 2;
        } else if (!is_attr_char(c)) {
            return -1;
        }
        if (latin1 && c >= 0x80) {
            dst[o++] = (char)(0xc0 | (c >> 6));
            dst[o++] = (char)(0x80 | (c & 0x3f));
        } else {
            dst[o++] = (char)c;
        }
    }
    return (long)o;
}

int form_disposition_parse(const char *v, size_t n, char *dbuf, form_part_t *part)
{
    size_t pos;
    /* RFC 7578 §4.2: the disposition type is "form-data". */
    if (!form_media_type_is(v, n, "form-data", &pos))
        return FORM_E_BAD_DISPOSITION;
    int have_name = 0, have_file = 0, have_ext = 0, seen_ext = 0, rc;
    size_t used = 0;
    form_param_t p;
    while ((rc = form_param_next(v, n, &pos, &p)) > 0) {
        if (form_ieq(p.name, p.name_len, "name")) {
            if (have_name++)
                return FORM_E_BAD_DISPOSITION; /* a repeated parameter is ambiguous */
            part->name = dbuf + used;
            part->name_len = copy_value(dbuf + used, &p);
            used += part->name_len;
        } else if (form_ieq(p.name, p.name_len, "filename")) {
            if (have_file++)
                return FORM_E_BAD_DISPOSITION;
            if (!have_ext) {
                part->filename = dbuf + used;
                part->filename_len = copy_value(dbuf + used, &p);
                used += part->filename_len;
            }
        } else if (form_ieq(p.name, p.name_len, "filename*")) {
            if (seen_ext++)
                return FORM_E_BAD_DISPOSITION;
            /* RFC 6266 §4.3: filename* wins over filename when the recipient reads it. An
             * ext-value is never quoted (RFC 8187 §3.2.1); a quoted or malformed one is
             * ignored, so the part is still a file. */
            long m = p.quoted ? -1 : decode_ext_value(dbuf + used, p.value, p.value_len);
            if (m >= 0) {
                have_ext = 1;
                part->filename = dbuf + used;
                part->filename_len = (size_t)m;
                used += (size_t)m;
            } else if (!have_file) {
                part->filename = dbuf + used;
                part->filename_len = 0;
            }
            part->has_filename = 1;
        }
    }
    if (rc < 0)
        return FORM_E_BAD_DISPOSITION;
    if (have_file)
        part->has_filename = 1;
    if (!have_name)
        return FORM_E_MISSING_NAME;
    return 0;
}
