#include "risk.h"

lw_risk_level lw_risk_assess(lw_app *app, const lw_link_request *r, const lw_account *a, json_t **reasons)
{
    *reasons = json_array();
    return LW_RISK_LOW;
}

const char *lw_risk_name(lw_risk_level l)
{
    return l == LW_RISK_HIGH ? "high" : l == LW_RISK_MEDIUM ? "medium" : "low";
}
