/*
 * csp.h — Content-Security-Policy violation reports (ASVS 3.4.7): what of a
 * browser's report may be logged and counted. A report is written by the
 * browser but its fields come from the page and from whoever sends it (the
 * endpoint is open to anyone), so nothing of it is kept verbatim: the
 * directive is one of a fixed set (a bounded metrics label), the blocked
 * resource is reduced to a keyword or a scheme and host (a URL's path and
 * query can carry tokens), every other field is dropped.
 */
#ifndef LW_CSP_H
#define LW_CSP_H

#include <stddef.h>

/* Where pages send their reports (the route, the CSP, Reporting-Endpoints). */
#define LW_CSP_REPORT_PATH "/v1/csp-reports"

/* Largest report body accepted: a report is about 1 KiB; the Reporting API
 * may batch a few. */
#define LW_CSP_REPORT_BODY_MAX 8192
/* Violations taken from one Reporting API batch at most. */
#define LW_CSP_REPORTS_MAX 16
/* Room for a sanitised blocked resource: scheme, "://", host, port. */
#define LW_CSP_BLOCKED_MAX 300

/* The directive as a known CSP directive name ("script-src-elem"), taking
 * the first word of a legacy violated-directive ("script-src 'self'"), or
 * "other". Never NULL; the string is static. */
const char *lw_csp_directive(const char *reported);

/* The blocked resource without anything that could carry a secret: a CSP
 * keyword ("inline", "eval", ...), "scheme:" for data:, blob: and the like,
 * "scheme://host[:port]" for URLs (no user, path, query or fragment), "" when
 * empty, else "other". Written to dst (cap >= LW_CSP_BLOCKED_MAX). */
void lw_csp_blocked(const char *reported, char *dst, size_t cap);

#endif
