/*
 * test_csp.c — what of a CSP violation report may be logged and counted:
 * directives from a fixed set, blocked resources cut to a keyword or a
 * scheme and host (no user, path, query or fragment, whatever the input).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "csp.h"

static void test_directive(void **state)
{
    (void)state;
    assert_string_equal(lw_csp_directive("script-src-elem"), "script-src-elem");
    assert_string_equal(lw_csp_directive("img-src"), "img-src");
    /* CSP 2's violated-directive carries the value too. */
    assert_string_equal(lw_csp_directive("script-src 'self'"), "script-src");
    assert_string_equal(lw_csp_directive("frame-ancestors 'none'"), "frame-ancestors");
    /* Anything else is one label: the metric's label set stays bounded. */
    assert_string_equal(lw_csp_directive("made-up"), "other");
    assert_string_equal(lw_csp_directive("script-src-elemX"), "other");
    assert_string_equal(lw_csp_directive("script"), "other");
    assert_string_equal(lw_csp_directive(""), "other");
    assert_string_equal(lw_csp_directive(NULL), "other");
    assert_string_equal(lw_csp_directive("img-src\"}\n{\"x"), "other");
}

static void blocked(const char *in, const char *want)
{
    char out[LW_CSP_BLOCKED_MAX];
    memset(out, 'Z', sizeof out);
    lw_csp_blocked(in, out, sizeof out);
    assert_string_equal(out, want);
}

static void test_blocked(void **state)
{
    (void)state;
    blocked("inline", "inline");
    blocked("eval", "eval");
    blocked("wasm-eval", "wasm-eval");
    blocked("", "");
    blocked(NULL, "");
    blocked("https://cdn.example/lib.js?token=lws_secret#x", "https://cdn.example");
    blocked("HTTPS://CDN.Example:8443/a", "https://cdn.example:8443");
    blocked("https://user:pass@evil.example/x", "https://evil.example");
    blocked("https://a@b@evil.example", "https://evil.example");
    blocked("wss://evil.example/socket?key=1", "wss://evil.example");
    blocked("http://[2001:db8::1]:8080/x", "http://[2001:db8::1]:8080");
    blocked("data:text/html,<script>secret</script>", "data:");
    blocked("blob:https://x.example/uuid", "blob:");
    blocked("about:blank", "about:");
    blocked("https://", "https:");
    blocked("https://ev\"il.example/", "https:");
    blocked("https://evil.example\r\nX: y", "https:");
    blocked("not a url", "other");
    blocked("1http://x", "other");
    blocked("/relative/path?token=secret", "other");
    /* A host too long for a name is not kept. */
    char longhost[600] = "https://";
    memset(longhost + 8, 'a', 500);
    longhost[508] = '\0';
    blocked(longhost, "https:");
    /* A small buffer is never overrun. */
    char small[12];
    lw_csp_blocked("https://a-long-host.example/", small, sizeof small);
    assert_true(strlen(small) < sizeof small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_directive),
        cmocka_unit_test(test_blocked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
