/*
 * store_fixture.h — where a store test keeps its database, so that the same
 * test bodies (test_store.c, test_sweep.c) run against every backend.
 *
 * By default each test gets a SQLite file in a fresh temporary directory.
 * With LINKWARD_TEST_PG set — to a postgres:// URL, or to the path of a file
 * whose first line is one (what tests/tools/pg_start.sh writes; CTest's
 * unit.*.pg tests point there) — each test gets a fresh schema on that
 * server instead, reached through search_path in the store's URL, and
 * dropped afterwards. The role in the URL needs CREATE on its database.
 *
 * Raw access behind the store's back (fx_exec, fx_long) goes to the same
 * database file or schema, for the checks that need it.
 */
#ifndef LW_TEST_STORE_FIXTURE_H
#define LW_TEST_STORE_FIXTURE_H

#include <dirent.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Not every program uses every helper. */
#define FX_FN static __attribute__((unused))

typedef struct store_fx {
    bool pg;
    char dir[64];        /* SQLite: the temporary directory */
    char path[128];      /* SQLite: the database file in it */
    char server[512];    /* PostgreSQL: the server URL as configured */
    char schema[64];     /* PostgreSQL: this test's schema */
    char location[1024]; /* what lw_store_open is given */
} store_fx;

/* The PostgreSQL server URL from LINKWARD_TEST_PG into dst; false when the
 * variable is unset (SQLite run). A set but unusable value fails the run:
 * silently testing SQLite instead would hide that PostgreSQL was never tested. */
FX_FN bool fx_pg_server(char *dst, size_t cap)
{
    const char *v = getenv("LINKWARD_TEST_PG");
    if (v == NULL || v[0] == '\0')
        return false;
    if (strncmp(v, "postgres://", 11) == 0 || strncmp(v, "postgresql://", 13) == 0) {
        int n = snprintf(dst, cap, "%s", v);
        if (n <= 0 || (size_t)n >= cap) {
            fprintf(stderr, "LINKWARD_TEST_PG: URL too long\n");
            exit(1);
        }
        return true;
    }
    FILE *fp = fopen(v, "r");
    if (fp == NULL || fgets(dst, (int)cap, fp) == NULL) {
        fprintf(stderr,
                "LINKWARD_TEST_PG=%s: neither a postgres:// URL nor a readable file holding one "
                "(is the fixtures.postgres test running?)\n",
                v);
        exit(1);
    }
    fclose(fp);
    dst[strcspn(dst, "\r\n")] = '\0';
    if (strncmp(dst, "postgres", 8) != 0) {
        fprintf(stderr, "LINKWARD_TEST_PG=%s: the file does not hold a postgres:// URL\n", v);
        exit(1);
    }
    return true;
}

FX_FN const char *fx_backend_name(void)
{
    char url[512];
    return fx_pg_server(url, sizeof(url)) ? "postgres" : "sqlite";
}

/* The server URL narrowed to one schema, with an application_name so a test
 * can find (and terminate) exactly its own connections. */
FX_FN void fx_url(const store_fx *fx, const char *app, char *dst, size_t cap)
{
    const char *sep = strchr(fx->server, '?') != NULL ? "&" : "?";
    int n = snprintf(dst, cap, "%s%soptions=-csearch_path%%3D%s&application_name=%s", fx->server, sep,
                     fx->schema, app);
    if (n <= 0 || (size_t)n >= cap) {
        fprintf(stderr, "store fixture: URL too long\n");
        exit(1);
    }
}

/* The fixture's own DDL (DROP SCHEMA ... CASCADE) talks a lot; not worth a line. */
static void fx_quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

FX_FN PGconn *fx_pg_connect(const char *url)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "store fixture: cannot connect to PostgreSQL: %s", PQerrorMessage(c));
        exit(1);
    }
    PQsetNoticeProcessor(c, fx_quiet, NULL);
    return c;
}

/* Runs fixed test SQL on a raw connection; the test fails on error. */
FX_FN void fx_pg_run(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "store fixture: %s: %s", sql, PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
}

/* SQL on the server's own database, outside the test's schema. */
FX_FN void fx_pg_admin(const store_fx *fx, const char *sql)
{
    PGconn *c = fx_pg_connect(fx->server);
    fx_pg_run(c, sql);
    PQfinish(c);
}

/* A raw connection into the test's schema (application_name <schema>_raw). */
FX_FN PGconn *fx_pg_raw(const store_fx *fx)
{
    char app[80], url[1024];
    snprintf(app, sizeof(app), "%s_raw", fx->schema);
    fx_url(fx, app, url, sizeof(url));
    return fx_pg_connect(url);
}

static void fx_rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[512];
        int n = snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (n > 0 && (size_t)n < sizeof(p))
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* A fresh, empty place for one test's database; fx->location names it. */
FX_FN void fx_init(store_fx *fx, const char *tag)
{
    static int counter;
    memset(fx, 0, sizeof(*fx));
    if (fx_pg_server(fx->server, sizeof(fx->server))) {
        fx->pg = true;
        snprintf(fx->schema, sizeof(fx->schema), "lwt_%s_%ld_%d", tag, (long)getpid(), ++counter);
        char sql[128];
        snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", fx->schema);
        fx_pg_admin(fx, sql);
        fx_url(fx, fx->schema, fx->location, sizeof(fx->location));
        return;
    }
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/lw-%s-XXXXXX", tag);
    if (mkdtemp(fx->dir) == NULL) {
        perror("store fixture: mkdtemp");
        exit(1);
    }
    snprintf(fx->path, sizeof(fx->path), "%s/linkward.db", fx->dir);
    snprintf(fx->location, sizeof(fx->location), "%s", fx->path);
}

FX_FN void fx_fini(store_fx *fx)
{
    if (fx->pg) {
        char sql[128];
        snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", fx->schema);
        fx_pg_admin(fx, sql);
    } else {
        fx_rm_dir(fx->dir);
    }
}

/* Fixed test SQL on the test's database, behind the store's back. */
FX_FN void fx_exec(const store_fx *fx, const char *sql)
{
    if (fx->pg) {
        PGconn *c = fx_pg_raw(fx);
        fx_pg_run(c, sql);
        PQfinish(c);
        return;
    }
    sqlite3 *db = NULL;
    if (sqlite3_open(fx->path, &db) != SQLITE_OK || sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "store fixture: %s: %s\n", sql, sqlite3_errmsg(db));
        exit(1);
    }
    sqlite3_close(db);
}

/* The first column of the first row of a query, as a number. */
FX_FN long fx_long(const store_fx *fx, const char *sql)
{
    long v = 0;
    if (fx->pg) {
        PGconn *c = fx_pg_raw(fx);
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
            fprintf(stderr, "store fixture: %s: %s", sql, PQerrorMessage(c));
            exit(1);
        }
        v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        PQfinish(c);
        return v;
    }
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open(fx->path, &db) != SQLITE_OK || sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        fprintf(stderr, "store fixture: %s: %s\n", sql, sqlite3_errmsg(db));
        exit(1);
    }
    v = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Skips the rest of a test on a backend it does not apply to, saying why. */
#define FX_SQLITE_ONLY(fx, why)                                                                              \
    do {                                                                                                     \
        if ((fx)->pg) {                                                                                      \
            print_message("[   NOTE   ] SQLite only (%s): skipped on PostgreSQL\n", (why));                  \
            skip();                                                                                          \
        }                                                                                                    \
    } while (0)

#define FX_PG_ONLY(fx, why)                                                                                  \
    do {                                                                                                     \
        if (!(fx)->pg) {                                                                                     \
            print_message("[   NOTE   ] PostgreSQL only (%s): skipped on SQLite; "                           \
                          "set LINKWARD_TEST_PG to run it\n",                                                \
                          (why));                                                                            \
            skip();                                                                                          \
        }                                                                                                    \
    } while (0)

#endif
