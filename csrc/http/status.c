/*
 * Static tables of the http component: reason phrases for status codes (RFC 9110 §15 plus
 * the few registered extensions a server actually sends), the status and message for each
 * http_error_t the parser and chunked decoder return, and method names. Everything here is
 * read-only data owned by this file; callers get pointers to string literals.
 */
#include "http/http.h"

const char *http_status_reason(int status)
{
    switch (status) {
    /* 1xx (RFC 9110 §15.2; 103 from RFC 8297) */
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 103:
        return "Early Hints";
    /* 2xx (RFC 9110 §15.3) */
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 203:
        return "Non-Authoritative Information";
    case 204:
        return "No Content";
    case 205:
        return "Reset Content";
    case 206:
        return "Partial Content";
    /* 3xx (RFC 9110 §15.4) */
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 305:
        return "Use Proxy";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    /* 4xx (RFC 9110 §15.5; 425 RFC 8470; 428, 429, 431 RFC 6585; 451 RFC 7725) */
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 425:
        return "Too Early";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 451:
        return "Unavailable For Legal Reasons";
    /* 5xx (RFC 9110 §15.6; 511 RFC 6585) */
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 511:
        return "Network Authentication Required";
    default:
        return "";
    }
}

int http_error_status(int err)
{
    switch (err) {
    case HTTP_E_VERSION_UNSUPPORTED:
        return 505;
    case HTTP_E_URI_TOO_LONG:
        return 414;
    case HTTP_E_HEADERS_TOO_LARGE:
    case HTTP_E_TOO_MANY_HEADERS:
        return 431;
    case HTTP_E_TE_UNKNOWN:
        return 501;
    case HTTP_E_CHUNK_TOO_LARGE:
        return 413;
    default:
        /* Every other parse error, and any unknown negative code, is malformed syntax. */
        return 400;
    }
}

const char *http_error_message(int err)
{
    switch (err) {
    case HTTP_E_BAD_REQUEST:
        return "The request is malformed.";
    case HTTP_E_BAD_METHOD:
        return "The request method is not a valid token.";
    case HTTP_E_BAD_TARGET:
        return "The request target contains invalid characters or has an invalid form.";
    case HTTP_E_BAD_VERSION:
        return "The HTTP version is malformed.";
    case HTTP_E_VERSION_UNSUPPORTED:
        return "Only HTTP/1.0 and HTTP/1.1 are supported.";
    case HTTP_E_URI_TOO_LONG:
        return "The request target is longer than the server accepts.";
    case HTTP_E_HEADERS_TOO_LARGE:
        return "The request header section is larger than the server accepts.";
    case HTTP_E_TOO_MANY_HEADERS:
        return "The request has more header fields than the server accepts.";
    case HTTP_E_BAD_HEADER_NAME:
        return "A header field name is empty or contains invalid characters.";
    case HTTP_E_SPACE_BEFORE_COLON:
        return "Whitespace between a header field name and the colon is not allowed.";
    case HTTP_E_BAD_HEADER_VALUE:
        return "A header field value contains a control character.";
    case HTTP_E_OBS_FOLD:
        return "Header field line folding (obs-fold) is not allowed.";
    case HTTP_E_BARE_CR:
        return "A CR must be followed by LF.";
    case HTTP_E_BARE_LF:
        return "A line must end with CRLF, not a bare LF.";
    case HTTP_E_BAD_CONTENT_LENGTH:
        return "Content-Length is malformed or has conflicting values.";
    case HTTP_E_CL_AND_TE:
        return "Content-Length and Transfer-Encoding must not both be present.";
    case HTTP_E_TE_NOT_CHUNKED:
        return "Transfer-Encoding must end with chunked, applied exactly once.";
    case HTTP_E_TE_UNKNOWN:
        return "The request uses a transfer coding the server does not implement.";
    case HTTP_E_TE_HTTP10:
        return "Transfer-Encoding is not allowed in an HTTP/1.0 request.";
    case HTTP_E_MISSING_HOST:
        return "An HTTP/1.1 request must have a Host header field.";
    case HTTP_E_DUPLICATE_HOST:
        return "The request has more than one Host header field.";
    case HTTP_E_BAD_CHUNK:
        return "The chunked body has a malformed chunk size line, extension or CRLF.";
    case HTTP_E_CHUNK_TOO_LARGE:
        return "The chunked body is larger than the server accepts.";
    case HTTP_E_BAD_TRAILER:
        return "The chunked body has a malformed or oversized trailer section.";
    case HTTP_E_BAD_HOST:
        return "The Host header field is not a valid host and optional port.";
    default:
        return "The request is malformed.";
    }
}

const char *http_method_name(http_method_t m)
{
    static const char *const names[HTTP_METHOD_COUNT] = {
        [HTTP_GET] = "GET",         [HTTP_HEAD] = "HEAD",   [HTTP_POST] = "POST",
        [HTTP_PUT] = "PUT",         [HTTP_PATCH] = "PATCH", [HTTP_DELETE] = "DELETE",
        [HTTP_OPTIONS] = "OPTIONS", [HTTP_TRACE] = "TRACE", [HTTP_CONNECT] = "CONNECT",
        [HTTP_OTHER] = "OTHER",
    };
    if ((unsigned)m >= HTTP_METHOD_COUNT)
        return "";
    return names[m];
}
