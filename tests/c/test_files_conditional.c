/*
 * TAP tests for If-None-Match matching (csrc/files/conditional.c), each case as
 * data_bridge.api's StaticFiles decides it in Python:
 *   tags = [t.strip().removeprefix("W/") for t in value.split(",")]; "*" in tags or etag in tags
 */
#include "files/files.h"
#include "tap.h"

static int listed(const char *v, const char *etag)
{
    return files_etag_listed(v, strlen(v), etag, strlen(etag));
}

int main(void)
{
    const char *e = "\"abc\"";
    TAP_EQ_INT(listed("\"abc\"", e), 1);
    TAP_EQ_INT(listed("W/\"abc\"", e), 1);
    TAP_EQ_INT(listed(" W/\"abc\" ", e), 1);
    TAP_EQ_INT(listed("\"x\", \"abc\"", e), 1);
    TAP_EQ_INT(listed("\"x\",W/\"abc\",\"y\"", e), 1);
    TAP_EQ_INT(listed("*", e), 1);
    TAP_EQ_INT(listed(" * ", e), 1);
    TAP_EQ_INT(listed("\"x\", *", e), 1);
    TAP_EQ_INT(listed("\"abcd\"", e), 0);
    TAP_EQ_INT(listed("abc", e), 0);
    TAP_EQ_INT(listed("", e), 0);
    TAP_EQ_INT(listed(",,,", e), 0);
    TAP_EQ_INT(listed("W/W/\"abc\"", e), 0); /* removeprefix takes one "W/" */
    TAP_EQ_INT(listed("w/\"abc\"", e), 0);   /* case matters */
    TAP_EQ_INT(listed("W/ \"abc\"", e), 0);  /* stripped before, not after, the prefix */
    TAP_EQ_INT(listed("**", e), 0);
    /* str.strip() also strips \x1c-\x1f, \x85 and \xa0 of a Latin-1 decoded value. */
    TAP_EQ_INT(listed("\x1f\"abc\"\xa0", e), 1);
    TAP_EQ_INT(listed("\x85\"abc\"\t", e), 1);
    TAP_EQ_INT(listed("\x80\"abc\"", e), 0);
    /* An empty tag never matches an empty member. */
    TAP_EQ_INT(files_etag_listed("", 0, "", 0), 0);
    return tap_done();
}
