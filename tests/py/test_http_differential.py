"""Differential tests: our request-head parser (csrc/http/parser.c, through the test hook
_core._parse_request) against llhttp (through httptools) on generated requests.

Two families:

* Valid requests (Hypothesis strategies below). Both parsers must accept, and agree on the
  method, the request-target and its path/query split, the version, every field name and
  OWS-stripped value in order, the body framing (Content-Length / chunked, checked by
  feeding llhttp exactly the body our parser expects and seeing the message end there),
  keep-alive, and the length of the head. Each parser is also checked against a small RFC
  model of the same request.

* Mutations of valid requests (request smuggling and syntax edge cases). Our parser must
  reject each with the expected error code and status from csrc/http/http.h, or accept it
  when the mutation is one that RFC 9110/9112 allows. Disagreements with llhttp are only
  allowed when their category is listed in LLHTTP_ACCEPTS_WE_REJECT (a deliberate
  strictness of ours) or OURS_ACCEPTS_LLHTTP_REJECTS (RFC-permitted input llhttp refuses),
  each with its reason. Any other disagreement fails.

Everything is derandomized so that CI sees the same examples on every run.
"""

from __future__ import annotations

import dataclasses

import httptools
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from data_bridge import _core

# ---------------------------------------------------------------------------------------
# The contract in csrc/http/http.h: error code -> status.
# ---------------------------------------------------------------------------------------

E_BAD_REQUEST = -1
E_BAD_METHOD = -2
E_BAD_TARGET = -3
E_BAD_VERSION = -4
E_VERSION_UNSUPPORTED = -5
E_URI_TOO_LONG = -6
E_HEADERS_TOO_LARGE = -7
E_TOO_MANY_HEADERS = -8
E_BAD_HEADER_NAME = -9
E_SPACE_BEFORE_COLON = -10
E_BAD_HEADER_VALUE = -11
E_OBS_FOLD = -12
E_BARE_CR = -13
E_BARE_LF = -14
E_BAD_CONTENT_LENGTH = -15
E_CL_AND_TE = -16
E_TE_NOT_CHUNKED = -17
E_TE_UNKNOWN = -18
E_TE_HTTP10 = -19
E_MISSING_HOST = -20
E_DUPLICATE_HOST = -21

ERROR_STATUS = {
    -1: 400, -2: 400, -3: 400, -4: 400, -5: 505, -6: 414, -7: 431, -8: 431, -9: 400,
    -10: 400, -11: 400, -12: 400, -13: 400, -14: 400, -15: 400, -16: 400, -17: 400,
    -18: 501, -19: 400, -20: 400, -21: 400, -22: 400, -23: 413, -24: 400,
}  # fmt: skip

# http_method_t in http.h; anything else is HTTP_OTHER.
METHOD_CODES = {
    b"GET": 0, b"HEAD": 1, b"POST": 2, b"PUT": 3, b"PATCH": 4, b"DELETE": 5,
    b"OPTIONS": 6, b"TRACE": 7, b"CONNECT": 8,
}  # fmt: skip
METHOD_OTHER = 9

# ---------------------------------------------------------------------------------------
# Documented differences. Keys are mutation categories (see MUTATIONS below).
# ---------------------------------------------------------------------------------------

# llhttp (strict mode, httptools >= 0.6) ACCEPTS these; we reject on purpose.
LLHTTP_ACCEPTS_WE_REJECT = {
    # RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
    # HTTP/1.1 request message that lacks a Host header field and to any request message
    # that contains more than one Host header field line". llhttp does not look at Host.
    "missing_host": "RFC 9112 §3.2 MUST 400; llhttp does not check Host",
    "duplicate_host": "RFC 9112 §3.2 MUST 400; llhttp does not check Host",
    # RFC 9112 §6.1: HTTP/1.0 has no Transfer-Encoding; a 1.0 message carrying one MUST be
    # treated as having faulty framing. llhttp decodes it as chunked.
    "te_http10": "RFC 9112 §6.1 faulty framing; ambiguous between 1.0 hops (smuggling)",
    # RFC 9112 §6.1: a server that receives a transfer coding it does not understand SHOULD
    # respond 501. llhttp passes "gzip, chunked" through and leaves the gzip to the app; we
    # decode only chunked, so the body the app would see is not the representation.
    "te_coding_before_chunked": "RFC 9112 §6.1 SHOULD 501 for codings we do not implement",
    # RFC 9110 §8.6: the value is 1*DIGIT and recipients must guard against overflow. We
    # keep lengths in int64_t; llhttp uses uint64_t, so 2^63 .. 2^64-1 passes there.
    "cl_above_int64": "RFC 9110 §8.6 overflow guard; our lengths are int64_t",
    # RFC 9110 §6.2 / §15.6.6: only HTTP/1.x is spoken on this connection (505). llhttp
    # accepts "HTTP/0.9" and "HTTP/2.0" request-lines as versions it knows.
    "version_unsupported": "RFC 9110 §15.6.6 505 for a major version we do not speak",
    # RFC 9112 §3: "recipients MAY ... parse on whitespace-delimited word boundaries"; we
    # require the single SP of the grammar, since lenient splitting differs between
    # parsers and that difference is a request-line confusion vector.
    "request_line_whitespace": "RFC 9112 §3 grammar: exactly one SP between elements",
    # RFC 9112 §2.3 / Appendix C.1: an HTTP/0.9 "GET /path" line has no version; we do not
    # speak 0.9 (400). llhttp takes it as a 0.9 request and goes on to read fields.
    "http09_request_line": "RFC 9112 §2.3 HTTP-version is required; no HTTP/0.9",
    # RFC 9112 §3.2.4: asterisk-form is exactly "*" and only for OPTIONS.
    "asterisk_form": "RFC 9112 §3.2.4 asterisk-form is '*' and only with OPTIONS",
    # RFC 9112 §3.2.3: authority-form (uri-host ":" port) is the only form for CONNECT.
    # llhttp treats any CONNECT as a tunnel upgrade whatever its target.
    "connect_target": "RFC 9112 §3.2.3 CONNECT needs authority-form host:port",
    # RFC 9110 §4.2.4: "A recipient SHOULD parse for userinfo and treat its presence as an
    # error" (a phishing vector).
    "absolute_form_userinfo": "RFC 9110 §4.2.4 SHOULD treat userinfo as an error",
    # RFC 9110 §7.4 / §4.2: we are an origin server for http and https only; absolute-form
    # with another scheme is not a resource we can route (400, not a proxy).
    "absolute_form_scheme": "RFC 9110 §4.2: only http/https targets are served here",
    # RFC 9112 §2.2 lets a server ignore empty lines before the request-line and MAY accept
    # a bare LF as a line terminator; we accept neither bare LF form (only CRLF empty lines)
    # because parsers disagreeing on line ends is the classic smuggling split.
    "bare_lf_leading": "RFC 9112 §2.2 MAY; we reject every bare LF (smuggling)",
    # RFC 9112 §2.2: a bare CR is invalid wherever it occurs ("MUST consider that element to
    # be invalid or replace each bare CR with SP"); llhttp skips CR and LF bytes before the
    # request-line, we only skip CRLF empty lines.
    "bare_cr_leading": "RFC 9112 §2.2 bare CR is invalid; only CRLF empty lines are skipped",
    # RFC 9112 §2.3: HTTP-name is the case-sensitive "HTTP". llhttp also speaks RTSP and ICE
    # and accepts "RTSP/1.0" / "ICE/1.0" on a request-line.
    "protocol_not_http": 'RFC 9112 §2.3 HTTP-name is "HTTP"; llhttp also parses RTSP/ICE',
    # RFC 9112 §2.2: a server "SHOULD ignore at least one empty line (CRLF) received prior
    # to the request-line"; we ignore up to 8 and then answer 400, llhttp any number.
    "leading_empty_lines": "RFC 9112 §2.2 SHOULD ignore at least one; we cap it at 8",
    # Configured limits (docs/architecture.md): target 8 KiB -> 414 (RFC 9112 §3), header
    # block 64 KiB and 100 fields -> 431 (RFC 6585 §5). llhttp itself has no limits.
    "limits": "RFC 9112 §3 / RFC 6585 §5: our configured size limits; llhttp has none",
    # Listed for completeness with the brief: httptools >= 0.6 rejects these itself, so the
    # entries are unused today, but a lenient llhttp build (or set_dangerous_leniencies)
    # accepting them is a known, deliberate difference.
    "bare_lf": "RFC 9112 §2.2 MAY accept bare LF; we never do (smuggling)",
    "obs_fold": "RFC 9112 §5.2 server MUST reject obs-fold or replace it; we reject",
}

# llhttp REJECTS these; we accept them because the cited RFC text allows it.
OURS_ACCEPTS_LLHTTP_REJECTS = {
    # RFC 9110 §9.1: method = token, case-sensitive; §16.1 lets new methods be defined.
    # llhttp knows a fixed list of registered methods (and RTSP/ICE ones).
    "extension_method": "RFC 9110 §9.1 method = token; extension methods are valid",
    # RFC 9110 §8.6: a Content-Length "consisting of the same decimal value repeated as a
    # comma-separated list (e.g, "Content-Length: 42, 42") MAY ... [be replaced] with a
    # single instance"; RFC 9110 §5.3 makes repeated field lines that same list.
    "cl_duplicate_equal": "RFC 9110 §8.6 identical repeated value MAY be accepted",
    # RFC 9110 §6.2: a 1.x request with a higher minor version SHOULD be processed as the
    # highest 1.x we implement (1.1).
    "version_higher_minor": "RFC 9110 §6.2 SHOULD treat HTTP/1.x (x > 1) as 1.1",
    # RFC 9110 §5.6.1: list syntax is element *( OWS "," OWS element ) and "a recipient
    # MUST parse and ignore a reasonable number of empty list elements". llhttp rejects
    # "chunked," and "chunked , " (OWS before the comma), and a trailing HTAB after
    # "chunked" although RFC 9112 §5.1 puts OWS (SP or HTAB) around every field value.
    "te_list_syntax": "RFC 9110 §5.6.1 / RFC 9112 §5.1 list and OWS syntax is valid",
}

# Not accept/reject but the keep-alive decision (checked in the valid-request test).
# RFC 9112 §9.3: "If the "close" connection option is present ..., the connection will not
# persist"; that comes before the HTTP/1.0 "keep-alive" rule. llhttp answers
# should_keep_alive() == True for an HTTP/1.0 request with both "keep-alive" and "close".
KEEP_ALIVE_LLHTTP_10_CLOSE_AND_KEEPALIVE = "RFC 9112 §9.3: close takes precedence"
# llhttp also honours the non-standard Proxy-Connection field (RFC 9112 Appendix C.2.2);
# we read Connection only (RFC 9112 §9.6). See test_proxy_connection_is_ignored.


# ---------------------------------------------------------------------------------------
# The two parsers.
# ---------------------------------------------------------------------------------------


def ours(data: bytes) -> dict:
    return _core._parse_request(data)


def ours_error(data: bytes) -> int | None:
    r = ours(data)
    if "error" in r:
        assert r["error"] != 0, f"our parser wants more bytes for a complete head: {data!r}"
        assert r["status"] == ERROR_STATUS[r["error"]], r
        return r["error"]
    return None


class _Recorder:
    """httptools callbacks, recording what llhttp saw."""

    def __init__(self) -> None:
        self.parser: httptools.HttpRequestParser | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_complete = 0
        self.keep_alive: bool | None = None
        self.method: bytes | None = None
        self.version: str | None = None
        self.body = b""
        self.messages = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_complete += 1
        assert self.parser is not None
        # llhttp resets its flags after the message, so ask while they are still set.
        self.keep_alive = self.parser.should_keep_alive()
        self.method = self.parser.get_method()
        self.version = self.parser.get_http_version()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.messages += 1


def llhttp_parser() -> tuple[httptools.HttpRequestParser, _Recorder]:
    rec = _Recorder()
    parser = httptools.HttpRequestParser(rec)
    rec.parser = parser
    return parser, rec


def llhttp_verdict(head: bytes) -> str:
    """'accept' (head complete, or a CONNECT/Upgrade tunnel), 'reject' or 'incomplete'."""
    parser, rec = llhttp_parser()
    try:
        parser.feed_data(head)
    except httptools.HttpParserUpgrade:
        return "accept"
    except httptools.HttpParserError:
        return "reject"
    return "accept" if rec.headers_complete else "incomplete"


# ---------------------------------------------------------------------------------------
# Requests and an RFC model of the valid ones.
# ---------------------------------------------------------------------------------------

OWS = b" \t"


@dataclasses.dataclass
class Req:
    method: bytes
    target: bytes
    version: bytes  # b"HTTP/1.1"
    fields: list[tuple[bytes, bytes]]  # (name, value as sent, OWS included)
    lead: bytes = b""  # empty lines before the request-line

    def head(self) -> bytes:
        lines = [self.method + b" " + self.target + b" " + self.version]
        lines += [name + b":" + value for name, value in self.fields]
        return self.lead + b"\r\n".join(lines) + b"\r\n\r\n"

    def copy(self, **changes) -> Req:
        return dataclasses.replace(self, fields=list(self.fields), **changes)

    def find(self, name: bytes) -> list[int]:
        return [i for i, (n, _) in enumerate(self.fields) if n.lower() == name]

    def drop(self, *names: bytes) -> Req:
        self.fields = [(n, v) for n, v in self.fields if n.lower() not in names]
        return self

    def as_11_with_host(self) -> Req:
        self.version = b"HTTP/1.1"
        if not self.find(b"host"):
            self.fields.insert(0, (b"Host", b"example.com"))
        return self


def list_elements(value: bytes) -> list[bytes]:
    """RFC 9110 §5.6.1 #rule elements, lowercased, empty ones dropped."""
    return [e.strip(OWS).lower() for e in value.split(b",") if e.strip(OWS)]


@dataclasses.dataclass
class Model:
    version_minor: int
    headers: list[tuple[bytes, bytes]]
    content_length: int
    chunked: bool
    keep_alive: bool
    expect_continue: bool
    connection: list[bytes]


def rfc_model(req: Req) -> Model:
    """What RFC 9112 says about a valid request built by the strategies below."""
    minor = int(req.version[-1:])
    headers = [(n, v.strip(OWS)) for n, v in req.fields]
    cl = -1
    chunked = False
    connection: list[bytes] = []
    expect = False
    for name, value in headers:
        lname = name.lower()
        if lname == b"content-length":
            cl = int(value)
        elif lname == b"transfer-encoding":
            chunked = list_elements(value)[-1:] == [b"chunked"]
        elif lname == b"connection":
            connection += list_elements(value)
        elif lname == b"expect":
            expect = expect or value.lower() == b"100-continue"
    # RFC 9112 §9.3
    if b"close" in connection:
        keep_alive = False
    else:
        keep_alive = minor == 1 or b"keep-alive" in connection
    # RFC 9110 §10.1.1: a server MUST ignore 100-continue in an HTTP/1.0 request.
    return Model(minor, headers, cl, chunked, keep_alive, expect and minor == 1, connection)


# ---------------------------------------------------------------------------------------
# Strategies for valid requests.
# ---------------------------------------------------------------------------------------

TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
SUB_DELIMS = "!$&'()*+,;="
PCHAR = UNRESERVED + SUB_DELIMS + ":@"

# Field names that steer framing or the connection, in either parser; generated
# deliberately below, never by chance.
SPECIAL_FIELDS = {
    b"host", b"content-length", b"transfer-encoding", b"connection", b"expect",
    b"upgrade", b"proxy-connection", b"keep-alive", b"te", b"trailer",
}  # fmt: skip

# Methods llhttp knows for HTTP/1.x requests (a subset of its table); CONNECT is left to
# the targeted tests since it needs authority-form and is a tunnel in llhttp.
KNOWN_METHODS = [
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"TRACE", b"PATCH",
    b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"PURGE",
    b"REPORT", b"SEARCH",
]  # fmt: skip


def over(alphabet: bytes, min_size: int = 0, max_size: int = 12) -> st.SearchStrategy[bytes]:
    """Bytes drawn from `alphabet` (repeats weigh more). One binary draw mapped through a
    translation table: much cheaper to generate than a list of sampled bytes."""
    table = bytes(alphabet[i % len(alphabet)] for i in range(256))
    return st.binary(min_size=min_size, max_size=max_size).map(lambda b: b.translate(table))


def over_items(items: list[bytes], max_size: int) -> st.SearchStrategy[bytes]:
    """Like over(), for multi-byte items (percent-escapes)."""
    return st.binary(max_size=max_size).map(lambda b: b"".join(items[x % len(items)] for x in b))


def random_case(word: bytes) -> st.SearchStrategy[bytes]:
    def flip(mask: int) -> bytes:
        return bytes(
            c ^ 0x20 if mask >> i & 1 and (0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A) else c
            for i, c in enumerate(word)
        )

    return st.integers(0, 2 ** len(word) - 1).map(flip)


token = over(TCHAR.encode(), 1, 12)

methods = st.one_of(
    st.sampled_from(KNOWN_METHODS),
    st.sampled_from([b"get", b"Post", b"FOO", b"M-SEARCH-X", b"X_CUSTOM", b"PRI"]),
    token.filter(lambda m: m != b"CONNECT"),
)

PCT = [b"%2F", b"%20", b"%41", b"%e9", b"%00", b"%3F", b"%25", b"%7e", b"%C3%A9"]
PATH_ITEMS = [bytes([c]) for c in PCHAR.encode()] + [b"/"] * 8 + PCT
QUERY_ITEMS = PATH_ITEMS + [b"?", b"=", b"&"] * 3
HOSTS = [b"example.com", b"a", b"x-y.example", b"127.0.0.1", b"[::1]", b"localhost", b"0"]
authority = st.tuples(
    st.sampled_from(HOSTS), st.sampled_from([b"", b":80", b":8080", b":1", b":65535"])
).map(b"".join)
path = over_items(PATH_ITEMS, 24).map(lambda p: b"/" + p)
query = st.one_of(st.just(b""), over_items(QUERY_ITEMS, 24).map(lambda q: b"?" + q))
origin_form = st.tuples(path, query).map(b"".join)
absolute_form = st.tuples(
    st.sampled_from([b"http://", b"https://", b"HTTP://", b"Https://"]),
    authority,
    st.one_of(st.just(b""), path),
    query,
).map(b"".join)
targets = st.one_of(origin_form, origin_form, origin_form, absolute_form)

VCHAR_OBS = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))
# Field values: visible ASCII and obs-text with internal SP/HTAB (weighted up), OWS around.
VALUE_TABLE = bytes((VCHAR_OBS + b" \t" * 12)[i % (len(VCHAR_OBS) + 24)] for i in range(256))


def ows_from(bits: int) -> bytes:
    """0-3 bytes of OWS (SP/HTAB) chosen by the low 5 bits."""
    return bytes(b" \t"[bits >> (2 + i) & 1] for i in range(bits & 3))


# Each strategy here is one or two Hypothesis draws: per-draw overhead dominates the
# module's runtime, so values are decoded from a binary draw rather than composed.
def value_from(raw: bytes) -> bytes:
    if len(raw) < 2:
        return ows_from(raw[0]) if raw else b""
    return ows_from(raw[0]) + raw[2:].translate(VALUE_TABLE).strip(OWS) + ows_from(raw[1])


field_value = st.binary(max_size=26).map(value_from)


def with_ows(core: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """A field-value with leading and trailing OWS around `core` (RFC 9112 §5)."""
    return st.tuples(st.integers(0, 0xFFFF), core).map(
        lambda t: ows_from(t[0] & 0xFF) + t[1] + ows_from(t[0] >> 8)
    )


extension_field = st.tuples(token.filter(lambda n: n.lower() not in SPECIAL_FIELDS), field_value)

# Connection options, some with the special meanings in odd case, some near misses.
CONNECTION_TOKENS = [
    b"close", b"keep-alive", b"Close", b"KEEP-ALIVE", b"cLoSe", b"Keep-Alive", b"upgrade",
    b"te", b"x-foo", b"closed", b"keep-alivex", b"xclose", b"keep", b"alive", b"CLOSE",
    b"keep-Alive",
]  # fmt: skip
LIST_SEPS = [b",", b", ", b" ,", b" , ", b"\t,\t", b",  ", b",,", b", ,"]


def list_from(raw: bytes) -> bytes:
    """A #rule list (RFC 9110 §5.6.1): element *( OWS "," OWS element ), one byte each."""
    out = CONNECTION_TOKENS[raw[0] % 16]
    for b in raw[1:]:
        out += LIST_SEPS[b >> 5] + CONNECTION_TOKENS[b % 16]
    return out


connection_value = st.binary(min_size=1, max_size=4).map(list_from)


@st.composite
def valid_requests(draw) -> Req:
    minor = draw(st.sampled_from([0, 1]))
    fields = draw(st.lists(extension_field, max_size=8))
    if minor == 1 or draw(st.booleans()):
        fields.append((draw(random_case(b"Host")), draw(with_ows(authority))))
    framing = draw(st.sampled_from(["none", "length", "chunked"] if minor else ["none", "length"]))
    if framing == "length":
        digits = b"0" * draw(st.integers(0, 2)) + b"%d" % draw(st.integers(0, 40))
        fields.append((draw(random_case(b"Content-Length")), draw(with_ows(st.just(digits)))))
    elif framing == "chunked":
        te = random_case(b"chunked")
        fields.append((draw(random_case(b"Transfer-Encoding")), draw(with_ows(te))))
    if draw(st.booleans()):
        conn = connection_value
        fields.append((draw(random_case(b"Connection")), draw(with_ows(conn))))
    if draw(st.booleans()):
        exp = st.one_of(random_case(b"100-continue"), token)
        fields.append((draw(random_case(b"Expect")), draw(with_ows(exp))))
    return Req(
        method=draw(methods),
        target=draw(targets),
        version=b"HTTP/1.%d" % minor,
        fields=draw(st.permutations(fields)),
        lead=draw(st.sampled_from([b"", b"", b"\r\n", b"\r\n\r\n"])),
    )


def body_for(model: Model) -> bytes:
    if model.chunked:
        return b"5\r\nhello\r\n0\r\n\r\n"
    return b"b" * max(model.content_length, 0)


def expected_path_query(target: bytes) -> tuple[bytes, bytes]:
    """Path and query per llhttp's URL parser (httptools.parse_url)."""
    url = httptools.parse_url(target)
    return url.path or b"/", url.query or b""


# ---------------------------------------------------------------------------------------
# 1. Valid requests: both accept and agree.
# ---------------------------------------------------------------------------------------

VALID_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _known_method(req: Req) -> Req:
    return req if req.method in KNOWN_METHODS else req.copy(method=b"POST")


def _bare_transfer_coding(req: Req) -> Req:
    req = req.copy()
    req.fields = [
        (n, v.strip(OWS) if n.lower() == b"transfer-encoding" else v) for n, v in req.fields
    ]
    return req


# Documented reasons for llhttp to refuse a request we generate as valid, each with the
# change that takes the reason away (keys of OURS_ACCEPTS_LLHTTP_REJECTS).
LLHTTP_NORMALIZATIONS = [
    ("extension_method", _known_method),
    ("te_list_syntax", _bare_transfer_coding),
]


def check_valid(req: Req) -> None:
    head = req.head()
    model = rfc_model(req)
    body = body_for(model)

    # Our parser against the RFC model.
    r = ours(head)
    assert "error" not in r, (r, head)
    assert r["consumed"] == len(head)
    assert r["method"] == req.method
    assert r["method_code"] == METHOD_CODES.get(req.method, METHOD_OTHER)
    assert r["target"] == req.target
    assert r["version_minor"] == model.version_minor
    assert r["headers"] == model.headers
    assert r["content_length"] == model.content_length
    assert bool(r["chunked"]) == model.chunked
    assert bool(r["keep_alive"]) == model.keep_alive
    assert bool(r["expect_continue"]) == model.expect_continue
    # The head is the same with the body and a pipelined request behind it, and one byte
    # short of the blank line it is incomplete.
    assert ours(head + body + b"GET / HTTP/1.1\r\n")["consumed"] == len(head)
    assert ours(head[:-1]) == {"error": 0, "status": 0, "message": "incomplete"}

    # llhttp on the same bytes. When it refuses, the only acceptable reasons are the
    # documented ones: undo each that applies (LLHTTP_NORMALIZATIONS) and compare the rest.
    llreq = req
    if llhttp_verdict(head) != "accept":
        for category, normalize in LLHTTP_NORMALIZATIONS:
            normalized = normalize(llreq)
            if normalized.head() == llreq.head():
                continue
            assert category in OURS_ACCEPTS_LLHTTP_REJECTS
            llreq = normalized
            if llhttp_verdict(llreq.head()) == "accept":
                break
        assert llhttp_verdict(llreq.head()) == "accept", (
            f"llhttp rejects a valid request for an undocumented reason: {head!r}"
        )
    event(f"llhttp normalized: {llreq.method != req.method}, {llreq.fields != req.fields}")
    llhead = llreq.head()
    parser, rec = llhttp_parser()
    parser.feed_data(llhead[:-1])
    assert rec.headers_complete == 0, "llhttp ends the head before the blank line"
    parser.feed_data(llhead[-1:])
    assert rec.headers_complete == 1, "llhttp does not end the head at the blank line"

    assert rec.method == llreq.method
    assert rec.url == r["target"]
    assert (r["path"], r["query"]) == expected_path_query(r["target"])
    assert rec.version == f"1.{r['version_minor']}"
    # llhttp strips leading OWS from a field value but keeps trailing OWS; RFC 9112 §5
    # excludes both from the value.
    assert [(n, v.rstrip(OWS)) for n, v in rec.headers] == r["headers"]

    # Framing: llhttp must end the message exactly where our framing says it ends.
    if model.content_length > 0:
        parser.feed_data(body[:-1])
        assert rec.messages == 0, "llhttp ended the body early"
        parser.feed_data(body[-1:])
        assert rec.body == body
    elif model.chunked:
        parser.feed_data(body)
        assert rec.body == b"hello"
    assert rec.messages == 1, "llhttp did not end the message where we do"

    if rec.keep_alive != bool(r["keep_alive"]):
        # The one documented keep-alive difference (see its constant above).
        assert model.version_minor == 0, (rec.keep_alive, head)
        assert b"close" in model.connection and b"keep-alive" in model.connection, head
        assert rec.keep_alive and not r["keep_alive"]
        assert KEEP_ALIVE_LLHTTP_10_CLOSE_AND_KEEPALIVE
        event("keep-alive: documented llhttp difference")
    event(f"framing: CL {model.content_length >= 0}, chunked {model.chunked}")


@VALID_SETTINGS
@given(valid_requests())
def test_valid_requests_agree(req):
    check_valid(req)


# ---------------------------------------------------------------------------------------
# 2. Mutations.
# ---------------------------------------------------------------------------------------
# Each mutation takes a valid request and a Hypothesis `data` and returns
# (category, bytes, expected our error code or None for "we accept").


def pick(data, seq):
    return data.draw(st.sampled_from(seq))


def pick_field(data, req: Req) -> int:
    if not req.fields:
        req.fields.append((b"X-Pad", b"1"))
    return data.draw(st.integers(0, len(req.fields) - 1))


def insert_at(data, s: bytes, byte: bytes) -> bytes:
    i = data.draw(st.integers(0, len(s)))
    return s[:i] + byte + s[i:]


def framed(req: Req, *fields: tuple[bytes, bytes]) -> Req:
    """req as 1.1 with Host, with its own framing fields replaced by `fields`."""
    req = req.copy().drop(b"content-length", b"transfer-encoding").as_11_with_host()
    for f in fields:
        req.fields.append(f)
    return req


def m_cl_conflict(data, req):
    a = data.draw(st.integers(0, 10**6))
    b = a + data.draw(st.integers(1, 10**6))
    if data.draw(st.booleans()):
        a, b = b, a
    if data.draw(st.booleans()):
        r = framed(req, (b"Content-Length", b"%d" % a), (b"content-length", b"%d" % b))
    else:
        r = framed(req, (b"Content-Length", b" %d, %d" % (a, b)))
    return "cl_conflict", r.head(), E_BAD_CONTENT_LENGTH


BAD_CL = [
    b"", b"+3", b"-3", b"0x3", b"3a", b"3 3", b"3.0", b"1e3", b"3,", b",3", b"3,,3",
    b"\"3\"", b"\xb3", b"99999999999999999999999",
    b"18446744073709551616",  # 2^64
]  # fmt: skip


def m_cl_invalid(data, req):
    return (
        "cl_invalid",
        framed(req, (b"Content-Length", pick(data, BAD_CL))).head(),
        E_BAD_CONTENT_LENGTH,
    )


def m_cl_above_int64(data, req):
    n = data.draw(st.integers(2**63, 2**64 - 1))
    return (
        "cl_above_int64",
        framed(req, (b"Content-Length", b"%d" % n)).head(),
        E_BAD_CONTENT_LENGTH,
    )


def m_cl_duplicate_equal(data, req):
    n = data.draw(st.integers(0, 40))
    if data.draw(st.booleans()):
        r = framed(req, (b"Content-Length", b"%d" % n), (b"CONTENT-LENGTH", b"%d" % n))
    else:
        r = framed(req, (b"Content-Length", b"%d, %d" % (n, n)))
    return "cl_duplicate_equal", r.head(), None


def m_cl_and_te(data, req):
    f = [(b"Content-Length", b"%d" % data.draw(st.integers(0, 40)))]
    f.append((b"Transfer-Encoding", pick(data, [b"chunked", b"identity", b"gzip, chunked"])))
    if data.draw(st.booleans()):
        f.reverse()
    return "cl_and_te", framed(req, *f).head(), E_CL_AND_TE


TE_NOT_FINAL = [
    [b"chunked, gzip"], [b"chunked, chunked"], [b"chunked,identity"],
    [b"chunked", b"chunked"], [b"chunked", b"gzip"], [b""], [b","], [b" , "],
]  # fmt: skip


def m_te_not_final(data, req):
    values = pick(data, TE_NOT_FINAL)
    r = framed(req, *[(b"Transfer-Encoding", v) for v in values])
    return "te_not_final", r.head(), E_TE_NOT_CHUNKED


TE_UNKNOWN = [
    b"gzip", b"identity", b"deflate", b"compress", b"x-custom", b"chunked;q=1", b"\"chunked\"",
    b"xchunked", b"chunkedx", b"gzip, identity", b"chunk", b"ch\xfcnked",
]  # fmt: skip


def m_te_unknown(data, req):
    return (
        "te_unknown",
        framed(req, (b"Transfer-Encoding", pick(data, TE_UNKNOWN))).head(),
        E_TE_UNKNOWN,
    )


def m_te_coding_before_chunked(data, req):
    values = pick(data, [[b"gzip, chunked"], [b"identity, chunked"], [b"gzip", b"chunked"]])
    r = framed(req, *[(b"Transfer-Encoding", v) for v in values])
    return "te_coding_before_chunked", r.head(), E_TE_UNKNOWN


def m_te_list_syntax(data, req):
    value = pick(data, [b"chunked,", b"chunked , ", b"chunked, ,", b", chunked", b",,chunked"])
    r = framed(req, (b"Transfer-Encoding", value))
    return "te_list_syntax", r.head(), None


def m_te_http10(data, req):
    r = framed(req, (b"Transfer-Encoding", b"chunked"))
    r.version = b"HTTP/1.0"
    return "te_http10", r.head(), E_TE_HTTP10


def m_bare_cr(data, req):
    head = req.head()
    # Anywhere in the head except just before a LF (that would make a CRLF) and past the
    # blank line.
    spots = [i for i in range(len(head)) if head[i] != 0x0A]
    i = pick(data, spots)
    category = "bare_cr_leading" if i <= len(req.lead) else "bare_cr"
    return category, head[:i] + b"\r" + head[i:], E_BARE_CR


def m_bare_lf(data, req):
    head = req.head()
    crlfs = [i for i in range(len(head) - 1) if head[i : i + 2] == b"\r\n"]
    if data.draw(st.booleans()):
        i = pick(data, crlfs)
        category = "bare_lf_leading" if i < len(req.lead) else "bare_lf"
        return category, head[:i] + head[i + 1 :], E_BARE_LF
    k = pick_field(data, req)
    name, value = req.fields[k]
    req.fields[k] = (name, insert_at(data, value, b"\n"))
    return "bare_lf", req.head(), E_BARE_LF


def m_obs_fold(data, req):
    if data.draw(st.booleans()):
        # Whitespace before the first field line (RFC 9112 §2.2 / §5.2).
        ws = data.draw(st.sampled_from([b" ", b"\t", b"  "]))
        req.fields.insert(0, (ws + b"X-Folded", b" a"))
        return "obs_fold", req.head(), E_OBS_FOLD
    k = pick_field(data, req)
    name, value = req.fields[k]
    rws = data.draw(st.sampled_from([b" ", b"\t", b" \t"]))
    req.fields[k] = (name, value + b"\r\n" + rws + data.draw(st.sampled_from([b"x", b"a b"])))
    return "obs_fold", req.head(), E_OBS_FOLD


def m_space_before_colon(data, req):
    k = pick_field(data, req)
    name, value = req.fields[k]
    req.fields[k] = (name + data.draw(st.sampled_from([b" ", b"\t", b"  ", b" \t"])), value)
    return "space_before_colon", req.head(), E_SPACE_BEFORE_COLON


VALUE_CTLS = [bytes([c]) for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]]


def m_ctl_in_value(data, req):
    k = pick_field(data, req)
    name, value = req.fields[k]
    req.fields[k] = (name, insert_at(data, value, pick(data, VALUE_CTLS)))
    return "ctl_in_value", req.head(), E_BAD_HEADER_VALUE


NOT_TCHAR = [
    bytes([c])
    for c in range(256)
    if chr(c) not in TCHAR and c not in (0x0A, 0x0D, 0x20, 0x09, ord(":"))
]


def m_bad_name_char(data, req):
    if data.draw(st.integers(0, 9)) == 0:
        req.fields.append((b"", b" empty-name"))
        return "bad_name_char", req.head(), E_BAD_HEADER_NAME
    k = pick_field(data, req)
    name, value = req.fields[k]
    req.fields[k] = (insert_at(data, name, pick(data, NOT_TCHAR)), value)
    return "bad_name_char", req.head(), E_BAD_HEADER_NAME


def m_bad_method(data, req):
    if data.draw(st.integers(0, 9)) == 0:
        req.method = b""
    else:
        req.method = insert_at(data, req.method, pick(data, [*NOT_TCHAR, b"\t", b":"]))
    return "bad_method", req.head(), E_BAD_METHOD


TARGET_BAD = [bytes([c]) for c in [*range(0x00, 0x0A), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]]
TARGET_BAD += [bytes([c]) for c in range(0x80, 0x100)]


def m_bad_target_byte(data, req):
    req.target = insert_at(data, req.target, pick(data, TARGET_BAD))
    return "bad_target_byte", req.head(), E_BAD_TARGET


BAD_VERSIONS = [
    b"HTTP/1.10", b"HTTP/11", b"http/1.1", b"hTTP/1.1", b"HTTP/1.", b"HTTP/.1", b"HTTPS/1.1",
    b"HTTP/a.1", b"HTTP/1.a", b"HTTP/1.1 ", b"HTTP /1.1", b"HTTP/1,1", b"HTTP/+1.1", b"",
    b"HTTP", b"HTTP/1", b"1.1", b"HTTP/1.1x", b"HTTP/\xb9.1", b"HTTP/1.1\t",
]  # fmt: skip


def m_bad_version(data, req):
    req.version = pick(data, BAD_VERSIONS)
    return "bad_version", req.head(), E_BAD_VERSION


def m_protocol_not_http(data, req):
    req.method = pick(data, [b"GET", b"OPTIONS", b"PLAY", b"SETUP", b"SOURCE"])
    req.version = pick(data, [b"RTSP/1.0", b"ICE/1.0", b"RTSP/2.0"])
    return "protocol_not_http", req.head(), E_BAD_VERSION


def m_version_unsupported(data, req):
    v = pick(data, [b"HTTP/0.9", b"HTTP/0.0", b"HTTP/2.0", b"HTTP/3.0", b"HTTP/2.1", b"HTTP/9.9"])
    req.version = v
    return "version_unsupported", req.head(), E_VERSION_UNSUPPORTED


def m_version_higher_minor(data, req):
    req = req.copy().as_11_with_host()
    req.version = b"HTTP/1.%d" % data.draw(st.integers(2, 9))
    return "version_higher_minor", req.head(), None


def m_missing_host(data, req):
    req = req.copy().drop(b"host")
    req.version = b"HTTP/1.1"
    return "missing_host", req.head(), E_MISSING_HOST


def m_duplicate_host(data, req):
    req = req.copy().as_11_with_host()
    req.version = pick(data, [b"HTTP/1.1", b"HTTP/1.0"])
    name = data.draw(random_case(b"host"))
    value = pick(data, [b"example.com", b"evil.example", b""])
    req.fields.insert(data.draw(st.integers(0, len(req.fields))), (name, value))
    return "duplicate_host", req.head(), E_DUPLICATE_HOST


def m_request_line_whitespace(data, req):
    extra = pick(data, [b" ", b"  "])
    if data.draw(st.booleans()):
        req.method += extra
        return "request_line_whitespace", req.head(), E_BAD_TARGET
    req.target += extra
    return "request_line_whitespace", req.head(), E_BAD_VERSION


def m_http09(data, req):
    line = req.method + b" " + req.target
    rest = b"".join(n + b":" + v + b"\r\n" for n, v in req.fields)
    return "http09_request_line", req.lead + line + b"\r\n" + rest + b"\r\n", E_BAD_VERSION


def m_asterisk_form(data, req):
    if data.draw(st.booleans()):
        req.method = pick(data, [b"GET", b"POST", b"HEAD", b"DELETE"])
        req.target = b"*"
    else:
        req.method = b"OPTIONS"
        req.target = pick(data, [b"*?x", b"*/a", b"**", b"*x"])
    return "asterisk_form", req.head(), E_BAD_TARGET


def m_connect_target(data, req):
    req.method = b"CONNECT"
    req.target = pick(
        data,
        [b"/a", b"/", b"example.com", b"example.com:", b":443", b"example.com:443/a",
         b"example.com:44x", b"u@example.com:443", b"*"],
    )  # fmt: skip
    return "connect_target", req.head(), E_BAD_TARGET


def m_authority_form_non_connect(data, req):
    req.method = pick(data, [b"GET", b"POST", b"OPTIONS"])
    req.target = b"example.com:443"
    return "authority_form_non_connect", req.head(), E_BAD_TARGET


def m_absolute_form_userinfo(data, req):
    user = pick(data, [b"u", b"user:pw", b""])
    req.target = b"http://" + user + b"@example.com" + data.draw(path)
    return "absolute_form_userinfo", req.head(), E_BAD_TARGET


def m_absolute_form_scheme(data, req):
    req.target = pick(data, [b"ftp://example.com/a", b"ws://example.com/", b"httpx://h/a"])
    return "absolute_form_scheme", req.head(), E_BAD_TARGET


MUTATIONS = [
    m_cl_conflict, m_cl_invalid, m_cl_above_int64, m_cl_duplicate_equal, m_cl_and_te,
    m_te_not_final, m_te_unknown, m_te_coding_before_chunked, m_te_list_syntax, m_te_http10,
    m_bare_cr, m_bare_lf, m_obs_fold, m_space_before_colon, m_ctl_in_value, m_bad_name_char,
    m_bad_method, m_bad_target_byte, m_bad_version, m_protocol_not_http, m_version_unsupported,
    m_version_higher_minor, m_missing_host, m_duplicate_host, m_request_line_whitespace,
    m_http09, m_asterisk_form, m_connect_target, m_authority_form_non_connect,
    m_absolute_form_userinfo, m_absolute_form_scheme,
]  # fmt: skip


def check_mutation(category: str, data: bytes, expected: int | None) -> None:
    got = ours_error(data)
    assert got == expected, f"{category}: ours gave {got}, expected {expected}: {data!r}"
    verdict = llhttp_verdict(data)
    if currently_in_test_context():  # statistics for --hypothesis-show-statistics
        event(f"{category}: llhttp {verdict}")
    if expected is None:
        r = ours(data)
        assert r["consumed"] == len(data)
        if verdict == "reject":
            assert category in OURS_ACCEPTS_LLHTTP_REJECTS, (
                f"{category}: llhttp rejects what we accept, with no RFC reason listed: {data!r}"
            )
    elif verdict == "accept":
        assert category in LLHTTP_ACCEPTS_WE_REJECT, (
            f"{category}: llhttp accepts what we reject ({expected}), not a documented "
            f"deliberate strictness: {data!r}"
        )


MUTATION_SETTINGS = settings(VALID_SETTINGS, max_examples=15)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.__name__[2:] for m in MUTATIONS])
@MUTATION_SETTINGS
@given(req=valid_requests(), data=st.data())
def test_mutations(mutation, req, data):
    # Start from a request both parsers accept, so that llhttp's verdict on the mutated
    # request is about the mutation.
    for _, normalize in LLHTTP_NORMALIZATIONS:
        req = normalize(req)
    assert "error" not in ours(req.head())
    assert llhttp_verdict(req.head()) == "accept", req.head()
    category, mutated, expected = mutation(data, req.copy())
    check_mutation(category, mutated, expected)


# The accepted mutations carry their meaning too: check what our parser made of them.


@pytest.mark.parametrize(
    "fields,length",
    [
        ([(b"Content-Length", b"7"), (b"content-length", b"7")], 7),
        ([(b"Content-Length", b"7, 7")], 7),
        ([(b"Content-Length", b"007,7 ,  7")], 7),
    ],
)
def test_cl_duplicate_equal_is_one_length(fields, length):
    head = Req(b"POST", b"/", b"HTTP/1.1", [(b"Host", b"h"), *fields]).head()
    r = ours(head)
    assert r["content_length"] == length
    assert not r["chunked"]


@pytest.mark.parametrize("value", [b"chunked,", b"chunked , ", b", chunked", b"CHUNKED,,"])
def test_te_list_syntax_is_chunked(value):
    head = Req(b"POST", b"/", b"HTTP/1.1", [(b"Host", b"h"), (b"Transfer-Encoding", value)])
    r = ours(head.head())
    assert r["chunked"] and r["content_length"] == -1


@pytest.mark.parametrize("minor", range(2, 10))
def test_higher_minor_is_http11(minor):
    r = ours(b"GET / HTTP/1.%d\r\nHost: h\r\n\r\n" % minor)
    assert r["version_minor"] == 1 and r["keep_alive"]


# ---------------------------------------------------------------------------------------
# 3. Targeted cases: one fixed example per documented difference, and the special forms
#    the generators leave out.
# ---------------------------------------------------------------------------------------

H = b"Host: example.com\r\n"

FIXED = [
    ("missing_host", b"GET / HTTP/1.1\r\n\r\n", E_MISSING_HOST),
    ("duplicate_host", b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", E_DUPLICATE_HOST),
    ("te_http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", E_TE_HTTP10),
    (
        "te_coding_before_chunked",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n",
        E_TE_UNKNOWN,
    ),
    (
        "cl_above_int64",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 9223372036854775808\r\n\r\n",
        E_BAD_CONTENT_LENGTH,
    ),
    ("version_unsupported", b"GET / HTTP/2.0\r\n" + H + b"\r\n", E_VERSION_UNSUPPORTED),
    ("version_unsupported", b"GET / HTTP/0.9\r\n" + H + b"\r\n", E_VERSION_UNSUPPORTED),
    ("request_line_whitespace", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", E_BAD_TARGET),
    ("request_line_whitespace", b"GET /  HTTP/1.1\r\n" + H + b"\r\n", E_BAD_VERSION),
    ("http09_request_line", b"GET /\r\n" + H + b"\r\n", E_BAD_VERSION),
    ("asterisk_form", b"GET * HTTP/1.1\r\n" + H + b"\r\n", E_BAD_TARGET),
    ("asterisk_form", b"OPTIONS *?x HTTP/1.1\r\n" + H + b"\r\n", E_BAD_TARGET),
    ("connect_target", b"CONNECT /a HTTP/1.1\r\n" + H + b"\r\n", E_BAD_TARGET),
    ("connect_target", b"CONNECT example.com HTTP/1.1\r\n" + H + b"\r\n", E_BAD_TARGET),
    ("absolute_form_userinfo", b"GET http://u@h/ HTTP/1.1\r\n" + H + b"\r\n", E_BAD_TARGET),
    ("absolute_form_scheme", b"GET ftp://h/a HTTP/1.1\r\n" + H + b"\r\n", E_BAD_TARGET),
    ("bare_lf_leading", b"\nGET / HTTP/1.1\r\n" + H + b"\r\n", E_BARE_LF),
    ("bare_cr_leading", b"\rGET / HTTP/1.1\r\n" + H + b"\r\n", E_BARE_CR),
    ("protocol_not_http", b"GET / RTSP/1.0\r\n" + H + b"\r\n", E_BAD_VERSION),
    ("bare_lf", b"GET / HTTP/1.1\n" + H + b"\r\n", E_BARE_LF),
    ("bare_lf", b"GET / HTTP/1.1\r\n" + H + b"\n", E_BARE_LF),
    ("bare_lf", b"GET / HTTP/1.1\r\nHost: example.com\nX: y\r\n\r\n", E_BARE_LF),
    ("bare_cr", b"GET / HTTP/1.1\r\nHost: example.com\rX: y\r\n\r\n", E_BARE_CR),
    ("obs_fold", b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n", E_OBS_FOLD),
    ("obs_fold", b"GET / HTTP/1.1\r\n X: a\r\n" + H + b"\r\n", E_OBS_FOLD),
    ("space_before_colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", E_SPACE_BEFORE_COLON),
    (
        "cl_and_te",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        E_CL_AND_TE,
    ),
    (
        "cl_conflict",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
        E_BAD_CONTENT_LENGTH,
    ),
    (
        "te_not_final",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n",
        E_TE_NOT_CHUNKED,
    ),
    ("ctl_in_value", b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n", E_BAD_HEADER_VALUE),
    ("bad_name_char", b"GET / HTTP/1.1\r\n" + H + b"X\x80: a\r\n\r\n", E_BAD_HEADER_NAME),
    ("bad_method", b"G(T / HTTP/1.1\r\n" + H + b"\r\n", E_BAD_METHOD),
    ("bad_target_byte", b"GET /\x7f HTTP/1.1\r\n" + H + b"\r\n", E_BAD_TARGET),
    ("bad_version", b"GET / HTTP/1.10\r\n" + H + b"\r\n", E_BAD_VERSION),
    ("bad_request", b"GET\r\n" + H + b"\r\n", E_BAD_REQUEST),
    ("bad_request", b"GET / HTTP/1.1\r\n" + H + b"NoColon\r\n\r\n", E_BAD_REQUEST),
    ("leading_empty_lines", b"\r\n" * 9 + b"GET / HTTP/1.1\r\n" + H + b"\r\n", E_BAD_REQUEST),
    ("limits", b"GET /" + b"a" * 8192 + b" HTTP/1.1\r\n" + H + b"\r\n", E_URI_TOO_LONG),
    ("limits", b"GET / HTTP/1.1\r\n" + H + b"X: y\r\n" * 100 + b"\r\n", E_TOO_MANY_HEADERS),
    (
        "limits",
        b"GET / HTTP/1.1\r\n" + H + b"X: " + b"y" * 65536 + b"\r\n\r\n",
        E_HEADERS_TOO_LARGE,
    ),
    ("cl_duplicate_equal", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\n", None),
    ("te_list_syntax", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked,\r\n\r\n", None),
    ("te_list_syntax", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\t\r\n\r\n", None),
    ("version_higher_minor", b"GET / HTTP/1.2\r\n" + H + b"\r\n", None),
    ("extension_method", b"FOO / HTTP/1.1\r\n" + H + b"\r\n", None),
    ("extension_method", b"get / HTTP/1.1\r\n" + H + b"\r\n", None),
]


@pytest.mark.parametrize(
    "category,data,expected", FIXED, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(FIXED)]
)
def test_fixed_cases(category, data, expected):
    check_mutation(category, data, expected)


def test_allow_lists_are_disjoint_and_exemplified():
    assert not set(LLHTTP_ACCEPTS_WE_REJECT) & set(OURS_ACCEPTS_LLHTTP_REJECTS)
    # Every documented difference has a fixed example, so none of them is a stale entry.
    fixed = {category for category, _, _ in FIXED}
    assert set(LLHTTP_ACCEPTS_WE_REJECT) <= fixed
    assert set(OURS_ACCEPTS_LLHTTP_REJECTS) <= fixed


@pytest.mark.parametrize(
    "target,path,query",
    [
        (b"*", b"*", b""),  # OPTIONS asterisk-form (RFC 9112 §3.2.4)
        (b"http://example.com", b"/", b""),  # absolute-form without a path: "/"
        (b"http://example.com?q=1", b"/", b"q=1"),
        (b"HTTPS://Example.com:8443/a/b?c=d", b"/a/b", b"c=d"),
    ],
)
def test_special_targets(target, path, query):
    method = b"OPTIONS" if target == b"*" else b"GET"
    data = method + b" " + target + b" HTTP/1.1\r\n" + H + b"\r\n"
    r = ours(data)
    assert (r["target"], r["path"], r["query"]) == (target, path, query)
    assert llhttp_verdict(data) == "accept"
    if target != b"*":
        assert (path, query) == expected_path_query(target)


@pytest.mark.parametrize("target", [b"example.com:443", b"[::1]:8080", b"10.0.0.1:1"])
def test_connect_authority_form(target):
    data = b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n"
    r = ours(data)
    assert r["method_code"] == METHOD_CODES[b"CONNECT"]
    assert r["target"] == target and r["consumed"] == len(data)
    parser, _ = llhttp_parser()
    with pytest.raises(httptools.HttpParserUpgrade):  # llhttp: a tunnel from here on
        parser.feed_data(data)


def test_proxy_connection_is_ignored():
    # llhttp treats the non-standard Proxy-Connection like Connection; RFC 9112 §9.6
    # defines only Connection, and Appendix C.2.2 describes Proxy-Connection as a
    # mistake that recipients need not honour. We ignore it.
    for version, field, ll_ka, our_ka in [
        (b"1.1", b"Proxy-Connection: close", False, True),
        (b"1.0", b"Proxy-Connection: keep-alive", True, False),
    ]:
        data = b"GET / HTTP/" + version + b"\r\n" + H + field + b"\r\n\r\n"
        parser, rec = llhttp_parser()
        parser.feed_data(data)
        assert (rec.keep_alive, bool(ours(data)["keep_alive"])) == (ll_ka, our_ka)


def test_http10_close_wins_over_keep_alive():
    data = b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
    assert not ours(data)["keep_alive"]  # RFC 9112 §9.3
    parser, rec = llhttp_parser()
    parser.feed_data(data)
    assert rec.keep_alive is True  # the documented llhttp difference


# A '#' is not allowed anywhere in a request-target (RFC 9112 §3.2: origin-form is
# absolute-path ["?" query], absolute-form is absolute-URI, which has no fragment), and
# RFC 9112 §3 says a recipient of an invalid request-line SHOULD respond 400 and SHOULD
# NOT autocorrect it. This module first found the parser dropping "#..." after an
# absolute-form authority and keeping it as a path byte elsewhere; both are refused now.


@pytest.mark.parametrize("target", [b"http://example.com#/admin", b"http://example.com#x?y"])
def test_fragment_after_authority_rejected(target):
    data = b"GET " + target + b" HTTP/1.1\r\n" + H + b"\r\n"
    assert llhttp_verdict(data) == "reject"
    assert ours_error(data) == E_BAD_TARGET


@pytest.mark.parametrize(
    "target", [b"/a#f", b"/a?b#c", b"http://example.com/a#f"], ids=["path", "query", "absolute"]
)
def test_fragment_in_target_rejected(target):
    data = b"GET " + target + b" HTTP/1.1\r\n" + H + b"\r\n"
    assert ours_error(data) == E_BAD_TARGET
