/*
 * geo.c — GeoIP lookups over MaxMind-format databases (libmaxminddb).
 *
 * A lw_geo holds up to LW_GEO_PER_KIND databases of each kind (location, ASN,
 * connection type, anonymity), best first; a lookup takes, for each kind, the
 * first database that has an entry for the address. Two per kind because the
 * free databases sometimes come split by address family (-ipv4 / -ipv6), and
 * so that a Country database can back a City database with holes.
 *
 * Files are classified by their metadata database_type; a type we do not know
 * is classified by the keys of its first record instead. Location records are
 * read in both layouts: GeoIP2 ({"country": {"iso_code": …}, "city": …}) and
 * the flat one of @ip-location-db ({"country_code": …, "city": …}).
 */
#include "geo.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <maxminddb.h>

#include "log.h"
#include "lw.h"

#define GEO_SUB "geo"

enum geo_kind { GEO_LOC, GEO_ASN, GEO_CONN, GEO_ANON, GEO_KINDS, GEO_UNKNOWN = -1 };

static const char *const geo_kind_name[GEO_KINDS] = {"location", "ASN", "connection type", "anonymity"};

/* Limits of a directory scan: files considered (the first ones by name), a
 * file name's length, databases kept per kind, and search-tree nodes visited
 * when looking for a sample record of an unlabelled database. */
#define LW_GEO_MAX_FILES 32
#define LW_GEO_FILENAME_MAX 256
#define LW_GEO_PER_KIND 2
#define LW_GEO_MAX_DBS (GEO_KINDS * LW_GEO_PER_KIND)
#define LW_GEO_PROBE_NODES 4096
#define LW_GEO_PATH_MAX 4096

struct geo_db {
    MMDB_s mmdb; /* never copied: MMDB_entry_s values point back at it */
    enum geo_kind kind;
    int rank; /* higher is better within a kind */
    char name[LW_GEO_FILENAME_MAX];
};

struct lw_geo {
    struct geo_db *db[LW_GEO_MAX_DBS]; /* grouped by kind, best first */
    size_t n;
};

/* ---- classification ---------------------------------------------------- */

enum {
    PROBE_COUNTRY_MAP = 1 << 0,  /* GeoIP2 location layout */
    PROBE_COUNTRY_CODE = 1 << 1, /* flat @ip-location-db layout */
    PROBE_CITY = 1 << 2,
    PROBE_ASN = 1 << 3,
    PROBE_CONN = 1 << 4,
    PROBE_ANON = 1 << 5,
};

static bool geo_has_key(MMDB_entry_s *e, const char *key)
{
    MMDB_entry_data_s d;
    return MMDB_get_value(e, &d, key, NULL) == MMDB_SUCCESS && d.has_data;
}

/* Finds the first data record of the search tree (depth first, left first)
 * and reports which of the keys we read it has; 0 if none found within
 * LW_GEO_PROBE_NODES nodes. */
static int geo_probe(const MMDB_s *m)
{
    uint32_t stack[160];
    size_t top = 0;
    stack[top++] = 0;
    for (int visits = 0; top > 0 && visits < LW_GEO_PROBE_NODES; visits++) {
        uint32_t node_no = stack[--top];
        MMDB_search_node_s node;
        if (MMDB_read_node(m, node_no, &node) != MMDB_SUCCESS)
            return 0;
        MMDB_entry_s *found = NULL;
        if (node.left_record_type == MMDB_RECORD_TYPE_DATA)
            found = &node.left_record_entry;
        else if (node.right_record_type == MMDB_RECORD_TYPE_DATA)
            found = &node.right_record_entry;
        if (found) {
            int keys = 0;
            if (geo_has_key(found, "country") || geo_has_key(found, "location"))
                keys |= PROBE_COUNTRY_MAP;
            if (geo_has_key(found, "country_code"))
                keys |= PROBE_COUNTRY_CODE;
            if (geo_has_key(found, "city"))
                keys |= PROBE_CITY;
            if (geo_has_key(found, "autonomous_system_number"))
                keys |= PROBE_ASN;
            if (geo_has_key(found, "connection_type"))
                keys |= PROBE_CONN;
            if (geo_has_key(found, "is_anonymous"))
                keys |= PROBE_ANON;
            return keys;
        }
        /* Right pushed first so that the left subtree is visited first. */
        if (node.right_record_type == MMDB_RECORD_TYPE_SEARCH_NODE && top < sizeof stack / sizeof stack[0])
            stack[top++] = (uint32_t)node.right_record;
        if (node.left_record_type == MMDB_RECORD_TYPE_SEARCH_NODE && top < sizeof stack / sizeof stack[0])
            stack[top++] = (uint32_t)node.left_record;
    }
    return 0;
}

/* Decides what a database is for from its metadata database_type (MaxMind's
 * "GeoIP2-City", "GeoLite2-ASN", …, DB-IP's "DBIP-City-Lite", @ip-location-db's
 * "country ipvAll"), falling back on the keys of a sample record. */
static enum geo_kind geo_classify(const MMDB_s *m, int *rank)
{
    const char *t = m->metadata.database_type ? m->metadata.database_type : "";
    int keys = geo_probe(m);
    /* The flat layout carries less than GeoIP2's at the same level. */
    int flat = (keys & PROBE_COUNTRY_CODE) && !(keys & PROBE_COUNTRY_MAP) ? 1 : 0;
    *rank = 0;
    if (strcasestr(t, "Anonymous-IP"))
        return GEO_ANON;
    if (strcasestr(t, "Connection-Type"))
        return GEO_CONN;
    if (strcasestr(t, "City") || strcasestr(t, "Enterprise")) {
        *rank = 4 - flat;
        return GEO_LOC;
    }
    if (strcasestr(t, "Country")) {
        *rank = 2 - flat;
        return GEO_LOC;
    }
    if (strcasestr(t, "ASN") || strcasestr(t, "ISP"))
        return GEO_ASN;
    /* An unknown label: judge by the record itself. */
    if (keys & (PROBE_COUNTRY_MAP | PROBE_COUNTRY_CODE)) {
        *rank = ((keys & PROBE_CITY) ? 4 : 2) - flat;
        return GEO_LOC;
    }
    if (keys & PROBE_ASN)
        return GEO_ASN;
    if (keys & PROBE_CONN)
        return GEO_CONN;
    if (keys & PROBE_ANON)
        return GEO_ANON;
    return GEO_UNKNOWN;
}

/* ---- loading ----------------------------------------------------------- */

static void geo_db_free(struct geo_db *d)
{
    if (!d)
        return;
    MMDB_close(&d->mmdb);
    lw_free(d);
}

void lw_geo_close(lw_geo *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n; i++)
        geo_db_free(g->db[i]);
    lw_free(g);
}

size_t lw_geo_count(const lw_geo *g)
{
    return g ? g->n : 0;
}

/* Is a better than b for the same kind? Rank, then IPv6 (it covers both
 * families), then name, so that the choice does not depend on readdir order. */
static bool geo_better(const struct geo_db *a, const struct geo_db *b)
{
    if (a->rank != b->rank)
        return a->rank > b->rank;
    if (a->mmdb.metadata.ip_version != b->mmdb.metadata.ip_version)
        return a->mmdb.metadata.ip_version > b->mmdb.metadata.ip_version;
    return strcmp(a->name, b->name) < 0;
}

/* Takes ownership of d: keeps it among the best LW_GEO_PER_KIND of its kind,
 * or frees it (or the one it displaces). */
static void geo_keep(lw_geo *g, struct geo_db *d)
{
    size_t first = 0, count = 0;
    while (first < g->n && g->db[first]->kind < d->kind)
        first++;
    while (first + count < g->n && g->db[first + count]->kind == d->kind)
        count++;
    size_t pos = first;
    while (pos < first + count && !geo_better(d, g->db[pos]))
        pos++;
    if (count == LW_GEO_PER_KIND) {
        if (pos == first + count) {
            lw_log_info(GEO_SUB, "%s: another %s database is preferred, not used", d->name,
                        geo_kind_name[d->kind]);
            geo_db_free(d);
            return;
        }
        struct geo_db *worst = g->db[first + count - 1];
        lw_log_info(GEO_SUB, "%s: another %s database is preferred, not used", worst->name,
                    geo_kind_name[worst->kind]);
        geo_db_free(worst);
        memmove(&g->db[first + count - 1], &g->db[first + count], (g->n - first - count) * sizeof g->db[0]);
        g->n--;
    }
    memmove(&g->db[pos + 1], &g->db[pos], (g->n - pos) * sizeof g->db[0]);
    g->db[pos] = d;
    g->n++;
}

static bool geo_is_candidate(const char *name)
{
    size_t len = strlen(name);
    return name[0] != '.' && len > 5 && len < LW_GEO_FILENAME_MAX && strcmp(name + len - 5, ".mmdb") == 0;
}

/* Lists the candidate names of dir, sorted, the first LW_GEO_MAX_FILES kept. */
static int geo_scan(const char *dir, char names[][LW_GEO_FILENAME_MAX], size_t *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR)
            return LW_ENOTFOUND;
        lw_log_warn(GEO_SUB, "cannot read %s: %s", dir, strerror(errno));
        return LW_EIO;
    }
    bool dropped = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!geo_is_candidate(e->d_name))
            continue;
        size_t pos = *n;
        while (pos > 0 && strcmp(e->d_name, names[pos - 1]) < 0)
            pos--;
        if (pos == LW_GEO_MAX_FILES) {
            dropped = true;
            continue;
        }
        size_t last = *n < LW_GEO_MAX_FILES ? *n : LW_GEO_MAX_FILES - 1;
        dropped = dropped || *n == LW_GEO_MAX_FILES;
        memmove(names[pos + 1], names[pos], (last - pos) * sizeof names[0]);
        lw_strlcpy(names[pos], e->d_name, LW_GEO_FILENAME_MAX); /* fits: checked by geo_is_candidate */
        if (*n < LW_GEO_MAX_FILES)
            (*n)++;
    }
    closedir(d);
    if (dropped)
        lw_log_warn(GEO_SUB, "%s: more than %d .mmdb files; only the first %d by name are considered", dir,
                    LW_GEO_MAX_FILES, LW_GEO_MAX_FILES);
    return LW_OK;
}

/* Builds a lw_geo from dir. *out is set (possibly with no database) unless the
 * result is LW_ENOMEM. Returns LW_OK, LW_ENOTFOUND (no such dir), LW_EIO (dir
 * unreadable, or some .mmdb could not be opened: the others are in *out). */
static int geo_load(const char *dir, lw_geo **out)
{
    *out = NULL;
    lw_geo *g = lw_calloc(1, sizeof *g);
    if (!g)
        return LW_ENOMEM;
    if (!dir || !dir[0]) {
        *out = g;
        return LW_OK;
    }
    char names[LW_GEO_MAX_FILES][LW_GEO_FILENAME_MAX];
    size_t n = 0;
    int rc = geo_scan(dir, names, &n);
    for (size_t i = 0; i < n; i++) {
        char path[LW_GEO_PATH_MAX];
        int len = snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (len < 0 || (size_t)len >= sizeof path) {
            lw_log_warn(GEO_SUB, "%s/%s: path too long", dir, names[i]);
            rc = LW_EIO;
            continue;
        }
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue; /* a directory named *.mmdb, a dangling link: not a database */
        struct geo_db *d = lw_calloc(1, sizeof *d);
        if (!d) {
            lw_geo_close(g);
            return LW_ENOMEM;
        }
        lw_strlcpy(d->name, names[i], sizeof d->name);
        int err = MMDB_open(path, MMDB_MODE_MMAP, &d->mmdb);
        if (err != MMDB_SUCCESS) {
            lw_log_warn(GEO_SUB, "%s: cannot open: %s%s%s", path, MMDB_strerror(err),
                        err == MMDB_IO_ERROR ? ": " : "", err == MMDB_IO_ERROR ? strerror(errno) : "");
            lw_free(d); /* MMDB_open cleans up after itself on failure */
            if (err == MMDB_OUT_OF_MEMORY_ERROR) {
                lw_geo_close(g);
                return LW_ENOMEM;
            }
            rc = LW_EIO;
            continue;
        }
        d->kind = geo_classify(&d->mmdb, &d->rank);
        if (d->kind == GEO_UNKNOWN) {
            lw_log_info(GEO_SUB, "%s: database type \"%s\" is none Linkward reads, not used", path,
                        d->mmdb.metadata.database_type ? d->mmdb.metadata.database_type : "");
            geo_db_free(d);
            continue;
        }
        lw_log_info(GEO_SUB, "%s: %s database (%s, IPv%u)", path, geo_kind_name[d->kind],
                    d->mmdb.metadata.database_type ? d->mmdb.metadata.database_type : "",
                    (unsigned)d->mmdb.metadata.ip_version);
        geo_keep(g, d);
    }
    if (g->n == 0)
        lw_log_info(GEO_SUB, "no GeoIP database in %s: places and networks stay empty", dir);
    *out = g;
    return rc;
}

lw_geo *lw_geo_open(const char *dir)
{
    lw_geo *g;
    int rc = geo_load(dir, &g);
    if (rc == LW_ENOMEM)
        lw_log_error(GEO_SUB, "out of memory loading GeoIP databases");
    return g;
}

int lw_geo_reload(lw_geo **g, const char *dir)
{
    if (!g)
        return LW_EINVAL;
    lw_geo *fresh;
    int rc = geo_load(dir, &fresh);
    if (rc != LW_OK) {
        lw_geo_close(fresh);
        lw_log_warn(GEO_SUB, "reload of %s failed (%s): keeping the %zu databases in use",
                    dir ? dir : "(none)", lw_strerror(rc), lw_geo_count(*g));
        return rc;
    }
    lw_geo_close(*g);
    *g = fresh;
    lw_log_info(GEO_SUB, "reloaded %s: %zu databases", dir ? dir : "(none)", fresh->n);
    return LW_OK;
}

/* ---- addresses --------------------------------------------------------- */

/* Addresses no database can place: this host, private networks, shared
 * address space, link-local, multicast, reserved. The documentation ranges
 * stay public on purpose: the test world lives there. */
static bool geo_v4_public(const uint8_t a[4])
{
    if (a[0] == 0 || a[0] == 10 || a[0] == 127 || a[0] >= 224)
        return false;
    if (a[0] == 100 && (a[1] & 0xc0) == 64) /* 100.64.0.0/10 carrier-grade NAT */
        return false;
    if (a[0] == 169 && a[1] == 254)
        return false;
    if (a[0] == 172 && (a[1] & 0xf0) == 16)
        return false;
    if (a[0] == 192 && a[1] == 168)
        return false;
    if (a[0] == 192 && a[1] == 0 && a[2] == 0) /* 192.0.0.0/24 protocol assignments */
        return false;
    if (a[0] == 198 && (a[1] & 0xfe) == 18) /* 198.18.0.0/15 benchmarking */
        return false;
    return true;
}

/* Parses ip_text into a sockaddr to look up, or returns false when there is
 * nothing to look up. IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d)
 * addresses become the IPv4 address they carry. */
static bool geo_parse(const char *ip_text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (!ip_text || strnlen(ip_text, INET6_ADDRSTRLEN) >= INET6_ADDRSTRLEN)
        return false;
    if (inet_pton(AF_INET, ip_text, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        return geo_v4_public((const uint8_t *)&sin->sin_addr);
    }
    struct in6_addr a6;
    if (inet_pton(AF_INET6, ip_text, &a6) != 1)
        return false;
    const uint8_t *b = a6.s6_addr;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t zero[12] = {0};
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0) {
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, b + 12, 4);
        return geo_v4_public(b + 12);
    }
    /* ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d (which an IPv6
     * database would answer from its IPv4 subtree). */
    if (memcmp(b, zero, 12) == 0)
        return false;
    if ((b[0] & 0xfe) == 0xfc || b[0] == 0xff) /* unique local, multicast */
        return false;
    if (b[0] == 0xfe && (b[1] & 0x80) == 0x80) /* fe80::/10 link-local, fec0::/10 site-local */
        return false;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = a6;
    return true;
}

/* ---- reading records --------------------------------------------------- */

/* Looks ip up in the databases of one kind, best first. */
static bool geo_find(const lw_geo *g, enum geo_kind kind, const struct sockaddr *sa, MMDB_entry_s *entry)
{
    for (size_t i = 0; i < g->n; i++) {
        const struct geo_db *d = g->db[i];
        if (d->kind != kind)
            continue;
        int err = MMDB_SUCCESS;
        MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&d->mmdb, sa, &err);
        if (err == MMDB_IPV6_LOOKUP_IN_IPV4_DATABASE_ERROR)
            continue; /* an IPv4-only database knows nothing of IPv6 */
        if (err != MMDB_SUCCESS) {
            lw_log_warn(GEO_SUB, "%s: lookup failed: %s", d->name, MMDB_strerror(err));
            continue;
        }
        if (r.found_entry) {
            *entry = r.entry;
            return true;
        }
    }
    return false;
}

/* Fetches the value at path; false when absent, of another shape than the
 * path expects, or unreadable (logged). */
static bool geo_get(MMDB_entry_s *e, const char *const *path, MMDB_entry_data_s *d)
{
    int err = MMDB_aget_value(e, d, path);
    if (err == MMDB_SUCCESS)
        return d->has_data;
    if (err != MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR && err != MMDB_INVALID_LOOKUP_PATH_ERROR)
        lw_log_warn(GEO_SUB, "reading %s: %s", path[0], MMDB_strerror(err));
    return false;
}

/* Valid UTF-8 without control characters (C0, DEL, C1): the strings end up in
 * JSON, logs and terminals. */
static bool geo_clean_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return false;
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
            return false;
        i += len;
    }
    return true;
}

/* Copies the string at path into dst; leaves dst untouched (and returns
 * false) when absent, not a string, too long for cap, or not clean text. */
static bool geo_str(MMDB_entry_s *e, const char *const *path, char *dst, size_t cap)
{
    MMDB_entry_data_s d;
    if (!geo_get(e, path, &d) || d.type != MMDB_DATA_TYPE_UTF8_STRING || d.data_size == 0 ||
        d.data_size >= cap)
        return false;
    if (!geo_clean_utf8((const unsigned char *)d.utf8_string, d.data_size))
        return false;
    memcpy(dst, d.utf8_string, d.data_size);
    dst[d.data_size] = '\0';
    return true;
}

static bool geo_u32(MMDB_entry_s *e, const char *const *path, uint32_t *out)
{
    MMDB_entry_data_s d;
    if (!geo_get(e, path, &d))
        return false;
    switch (d.type) {
    case MMDB_DATA_TYPE_UINT16:
        *out = d.uint16;
        return true;
    case MMDB_DATA_TYPE_UINT32:
        *out = d.uint32;
        return true;
    case MMDB_DATA_TYPE_UINT64:
        if (d.uint64 > UINT32_MAX)
            return false;
        *out = (uint32_t)d.uint64;
        return true;
    case MMDB_DATA_TYPE_INT32:
        if (d.int32 < 0)
            return false;
        *out = (uint32_t)d.int32;
        return true;
    default:
        return false;
    }
}

static bool geo_double(MMDB_entry_s *e, const char *const *path, double *out)
{
    MMDB_entry_data_s d;
    if (!geo_get(e, path, &d))
        return false;
    if (d.type == MMDB_DATA_TYPE_DOUBLE)
        *out = d.double_value;
    else if (d.type == MMDB_DATA_TYPE_FLOAT)
        *out = d.float_value;
    else
        return false;
    return isfinite(*out);
}

static bool geo_bool(MMDB_entry_s *e, const char *key)
{
    const char *const path[] = {key, NULL};
    MMDB_entry_data_s d;
    return geo_get(e, path, &d) && d.type == MMDB_DATA_TYPE_BOOLEAN && d.boolean;
}

#define GEO_KM_PER_DEGREE 111.195 /* of latitude, on the mean Earth sphere */

/* Rounds a coordinate to what the accuracy radius vouches for (see geo.h):
 * the coarsest grid of 1, 0.1, 0.01 or 0.001 degrees whose step is no larger
 * than the radius, so the stored precision is never much finer than the
 * accuracy (20 km -> 0.1 deg, about 11 km; not 0.01 deg, 1.1 km). */
static double geo_round(double v, uint32_t radius_km)
{
    double f = 10.0; /* radius unknown: about 11 km */
    if (radius_km > 0)
        for (f = 1.0; f < 1000.0 && GEO_KM_PER_DEGREE / f > radius_km; f *= 10.0)
            ;
    v = round(v * f) / f;
    return v == 0.0 ? 0.0 : v; /* no "-0.0" */
}

static void geo_read_location(MMDB_entry_s *e, lw_geo_info *out)
{
    static const char *const p_iso[] = {"country", "iso_code", NULL};
    static const char *const p_flat_iso[] = {"country_code", NULL};
    static const char *const p_country[] = {"country", "names", "en", NULL};
    static const char *const p_region[] = {"subdivisions", "0", "names", "en", NULL};
    static const char *const p_flat_region[] = {"state1", NULL};
    static const char *const p_city[] = {"city", "names", "en", NULL};
    static const char *const p_flat_city[] = {"city", NULL};
    static const char *const p_lat[] = {"location", "latitude", NULL};
    static const char *const p_lon[] = {"location", "longitude", NULL};
    static const char *const p_acc[] = {"location", "accuracy_radius", NULL};
    static const char *const p_flat_lat[] = {"latitude", NULL};
    static const char *const p_flat_lon[] = {"longitude", NULL};

    /* Both layouts are tried, GeoIP2 first: the record says which it is. */
    if (!geo_str(e, p_iso, out->country, sizeof out->country))
        geo_str(e, p_flat_iso, out->country, sizeof out->country);
    if (strlen(out->country) != 2 || out->country[0] < 'A' || out->country[0] > 'Z' ||
        out->country[1] < 'A' || out->country[1] > 'Z') {
        /* Without a country nothing else about the place is trusted. */
        out->country[0] = '\0';
        return;
    }
    geo_str(e, p_country, out->country_name, sizeof out->country_name);
    if (!geo_str(e, p_region, out->region, sizeof out->region))
        geo_str(e, p_flat_region, out->region, sizeof out->region);
    if (!geo_str(e, p_city, out->city, sizeof out->city))
        geo_str(e, p_flat_city, out->city, sizeof out->city);

    double lat, lon;
    uint32_t acc = 0;
    bool have = (geo_double(e, p_lat, &lat) && geo_double(e, p_lon, &lon)) ||
                (geo_double(e, p_flat_lat, &lat) && geo_double(e, p_flat_lon, &lon));
    if (have && fabs(lat) <= 90.0 && fabs(lon) <= 180.0) {
        if (!geo_u32(e, p_acc, &acc))
            acc = 0;
        out->has_location = true;
        out->accuracy_radius_km = acc;
        out->latitude = geo_round(lat, acc);
        out->longitude = geo_round(lon, acc);
    }
}

/* Appends part to the network description, " · " between parts, cutting at a
 * character boundary if the whole does not fit in LW_GEO_NETWORK_MAX - 1. */
static void geo_net_add(lw_geo_info *out, const char *part)
{
    static const char sep[] = " \xc2\xb7 "; /* " · " */
    size_t len = strlen(out->network);
    size_t room = sizeof out->network - 1 - len;
    if (len > 0) {
        if (room < sizeof sep - 1 + 1)
            return;
        memcpy(out->network + len, sep, sizeof sep - 1);
        len += sizeof sep - 1;
        room -= sizeof sep - 1;
    }
    size_t n = strlen(part);
    if (n > room) {
        n = room;
        while (n > 0 && ((unsigned char)part[n] & 0xc0) == 0x80)
            n--; /* part[n] would start the cut-off tail: never split a character */
    }
    memcpy(out->network + len, part, n);
    out->network[len + n] = '\0';
}

static void geo_describe_network(lw_geo_info *out)
{
    if (out->tor)
        geo_net_add(out, "Tor exit");
    if (out->vpn)
        geo_net_add(out, "Anonymous VPN");
    if (out->public_proxy)
        geo_net_add(out, "Public proxy");
    if (out->residential_proxy)
        geo_net_add(out, "Residential proxy");
    if (out->hosting)
        geo_net_add(out, "Hosting");
    if (out->anonymous && !out->network[0])
        geo_net_add(out, "Anonymous");
    if (out->connection_type[0])
        geo_net_add(out, out->connection_type);
    if (out->asn) {
        char as[16 + LW_GEO_ORG_MAX];
        int n = out->as_org[0] ? snprintf(as, sizeof as, "AS%" PRIu32 " %s", out->asn, out->as_org)
                               : snprintf(as, sizeof as, "AS%" PRIu32, out->asn);
        if (n > 0 && (size_t)n < sizeof as) /* always: as is sized for the largest */
            geo_net_add(out, as);
    } else if (out->as_org[0]) {
        geo_net_add(out, out->as_org);
    }
}

int lw_geo_lookup(const lw_geo *g, const char *ip_text, lw_geo_info *out)
{
    if (!out)
        return LW_EINVAL;
    memset(out, 0, sizeof *out);
    struct sockaddr_storage ss;
    if (!g || g->n == 0 || !geo_parse(ip_text, &ss))
        return LW_OK;
    const struct sockaddr *sa = (const struct sockaddr *)&ss;
    MMDB_entry_s e;

    if (geo_find(g, GEO_LOC, sa, &e))
        geo_read_location(&e, out);

    if (geo_find(g, GEO_ASN, sa, &e)) {
        static const char *const p_asn[] = {"autonomous_system_number", NULL};
        static const char *const p_org[] = {"autonomous_system_organization", NULL};
        if (!geo_u32(&e, p_asn, &out->asn))
            out->asn = 0;
        geo_str(&e, p_org, out->as_org, sizeof out->as_org);
    }

    if (geo_find(g, GEO_CONN, sa, &e)) {
        static const char *const p_conn[] = {"connection_type", NULL};
        geo_str(&e, p_conn, out->connection_type, sizeof out->connection_type);
    }

    if (geo_find(g, GEO_ANON, sa, &e)) {
        out->vpn = geo_bool(&e, "is_anonymous_vpn");
        out->tor = geo_bool(&e, "is_tor_exit_node");
        out->hosting = geo_bool(&e, "is_hosting_provider");
        out->public_proxy = geo_bool(&e, "is_public_proxy");
        out->residential_proxy = geo_bool(&e, "is_residential_proxy");
        out->anonymous = geo_bool(&e, "is_anonymous") || out->vpn || out->tor || out->hosting ||
                         out->public_proxy || out->residential_proxy;
    }

    geo_describe_network(out);
    return LW_OK;
}

int lw_geo_describe_place(const lw_geo_info *info, char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return LW_ETOOBIG;
    buf[0] = '\0';
    if (!info || !info->country[0])
        return LW_OK;
    const char *place = info->city[0] ? info->city : info->region;
    int n = place[0] ? snprintf(buf, cap, "%s, %s", place, info->country)
                     : snprintf(buf, cap, "%s", info->country);
    if (n < 0 || (size_t)n >= cap) {
        buf[0] = '\0';
        return LW_ETOOBIG;
    }
    return LW_OK;
}

/* ---- arithmetic -------------------------------------------------------- */

#define LW_GEO_EARTH_RADIUS_KM 6371.0088 /* IUGG mean radius */

double lw_geo_distance_km(double lat1, double lon1, double lat2, double lon2)
{
    if (!isfinite(lat1) || !isfinite(lon1) || !isfinite(lat2) || !isfinite(lon2))
        return NAN;
    const double rad = M_PI / 180.0;
    double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
    double s1 = sin(dlat / 2), s2 = sin(dlon / 2);
    double h = s1 * s1 + cos(lat1 * rad) * cos(lat2 * rad) * s2 * s2;
    /* Rounding can push h a hair outside [0, 1] near the antipodes. */
    h = h < 0 ? 0 : h > 1 ? 1 : h;
    return 2.0 * LW_GEO_EARTH_RADIUS_KM * asin(sqrt(h));
}

double lw_geo_speed_kmh(double km, int64_t ms)
{
    if (!(km > 0))
        return 0.0;
    if (ms <= 0)
        return INFINITY;
    return km / ((double)ms / 3600000.0);
}
