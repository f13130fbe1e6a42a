/* POST /v1/csp-reports: where browsers report what the page's CSP blocked
 * (ASVS 3.4.7). Open to anyone, so it is small (LW_CSP_REPORT_BODY_MAX),
 * rate-limited per address (--rate csp=…), and keeps nothing verbatim: one
 * warn line and one count per violation, from the sanitised fields of csp.h. */
#include <string.h>

#include "api.h"
#include "csp.h"
#include "log.h"
#include "metrics.h"

/* Logs and counts one violation; its fields may be absent or of any type. */
static void record(const char *directive_in, const char *blocked_in, const char *disposition_in)
{
    const char *directive = lw_csp_directive(directive_in);
    char blocked[LW_CSP_BLOCKED_MAX];
    lw_csp_blocked(blocked_in, blocked, sizeof blocked);
    /* "report" for Content-Security-Policy-Report-Only; anything else is enforced. */
    const char *disposition = disposition_in && strcmp(disposition_in, "report") == 0 ? "report" : "enforce";
    char label[64];
    snprintf(label, sizeof label, "directive=\"%s\"", directive);
    lw_metrics_inc("linkward_csp_violations_total", label);
    lw_log_warn("csp", "CSP violation (%s): %s blocked %s", disposition, directive,
                blocked[0] ? blocked : "(none)");
}

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

void lw_api_csp_report(lw_rq *rq)
{
    lw_server *app = rq->app;
    if (lw_api_rate_limited(rq, &app->cfg.rate_csp, "ip", rq->ip, NULL))
        return;
    json_t *legacy = json_is_object(rq->body) ? json_object_get(rq->body, "csp-report") : NULL;
    if (json_is_object(legacy)) {
        /* report-uri: {"csp-report": {"effective-directive", "violated-directive", "blocked-uri", ...}} */
        const char *d = str(legacy, "effective-directive");
        record(d ? d : str(legacy, "violated-directive"), str(legacy, "blocked-uri"),
               str(legacy, "disposition"));
    } else if (json_is_array(rq->body)) {
        /* report-to (Reporting API): [{"type": "csp-violation", "body": {"effectiveDirective", "blockedURL",
         * ...}}, ...] */
        size_t i;
        json_t *r;
        json_array_foreach(rq->body, i, r)
        {
            if (i >= LW_CSP_REPORTS_MAX)
                break;
            json_t *b = json_object_get(r, "body");
            const char *type = str(r, "type");
            if (!type || strcmp(type, "csp-violation") != 0 || !json_is_object(b))
                continue;
            record(str(b, "effectiveDirective"), str(b, "blockedURL"), str(b, "disposition"));
        }
    } else {
        lw_reply_error(rq, 400, "invalid_request",
                       "Expected {\"csp-report\": {...}} (application/csp-report) or a list of reports "
                       "(application/reports+json).");
        return;
    }
    /* Reports of other kinds in a batch are not ours to count, but not an error either. */
    lw_reply_empty(rq, 204);
}
