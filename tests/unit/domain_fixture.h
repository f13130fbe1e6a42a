/*
 * domain_fixture.h — what a domain module's test (test_pin_domain.c,
 * test_link_domain.c) starts from in its store: one account with its primary
 * device, as a registration leaves it.
 */
#ifndef LW_TEST_DOMAIN_FIXTURE_H
#define LW_TEST_DOMAIN_FIXTURE_H

#include <string.h>

#include "lw.h"
#include "store.h"

/* Creates account_id (handle) with its active primary session phone_id;
 * pin_hash may be NULL (no PIN). LW_OK or the store's error. */
static __attribute__((unused)) int dx_account_create(lw_store *s, const char *account_id, const char *handle,
                                                     const char *phone_id, const char *pin_hash)
{
    lw_account a;
    memset(&a, 0, sizeof a);
    lw_strlcpy(a.id, account_id, sizeof a.id);
    lw_strlcpy(a.handle, handle, sizeof a.handle);
    lw_strlcpy(a.pin_hash, pin_hash ? pin_hash : "", sizeof a.pin_hash);
    a.inactive_ttl_ms = 30LL * 24 * 3600 * 1000;
    lw_session p;
    memset(&p, 0, sizeof p);
    lw_strlcpy(p.id, phone_id, sizeof p.id);
    lw_strlcpy(p.account_id, account_id, sizeof p.account_id);
    lw_strlcpy(p.role, LW_ROLE_PRIMARY, sizeof p.role);
    lw_strlcpy(p.state, "active", sizeof p.state);
    lw_strlcpy(p.cred_selector, phone_id, sizeof p.cred_selector);
    return lw_store_account_create(s, &a, &p, NULL);
}

#endif
