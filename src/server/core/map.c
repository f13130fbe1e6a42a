#include "map.h"

#include <string.h>

#include "lw.h"

typedef struct node {
    struct node *next;
    void *value;
    size_t hash;
    char key[];
} node;

struct lw_map {
    node **buckets;
    size_t nbuckets; /* power of two */
    size_t size;
};

/* FNV-1a: keys are random ids, so a simple hash distributes well. */
static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

lw_map *lw_map_new(void)
{
    lw_map *m = lw_calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->nbuckets = 64;
    m->buckets = lw_calloc(m->nbuckets, sizeof *m->buckets);
    if (!m->buckets) {
        lw_free(m);
        return NULL;
    }
    return m;
}

void lw_map_free(lw_map *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        node *n = m->buckets[i];
        while (n) {
            node *next = n->next;
            lw_free(n);
            n = next;
        }
    }
    lw_free(m->buckets);
    lw_free(m);
}

static node **find(const lw_map *m, const char *key, size_t h)
{
    node **p = &m->buckets[h & (m->nbuckets - 1)];
    for (; *p; p = &(*p)->next)
        if ((*p)->hash == h && strcmp((*p)->key, key) == 0)
            return p;
    return p;
}

void *lw_map_get(const lw_map *m, const char *key)
{
    node **p = find(m, key, hash_str(key));
    return *p ? (*p)->value : NULL;
}

static void grow(lw_map *m)
{
    size_t nb = m->nbuckets * 2;
    node **b = lw_calloc(nb, sizeof *b);
    if (!b)
        return; /* keep working with longer chains */
    for (size_t i = 0; i < m->nbuckets; i++) {
        node *n = m->buckets[i];
        while (n) {
            node *next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
            n = next;
        }
    }
    lw_free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
}

int lw_map_put(lw_map *m, const char *key, void *value)
{
    size_t h = hash_str(key);
    node **p = find(m, key, h);
    if (*p) {
        (*p)->value = value;
        return LW_OK;
    }
    size_t klen = strlen(key);
    node *n = lw_malloc(sizeof *n + klen + 1);
    if (!n)
        return LW_ENOMEM;
    memcpy(n->key, key, klen + 1);
    n->hash = h;
    n->value = value;
    n->next = NULL;
    *p = n;
    if (++m->size > m->nbuckets)
        grow(m);
    return LW_OK;
}

void *lw_map_del(lw_map *m, const char *key)
{
    node **p = find(m, key, hash_str(key));
    if (!*p)
        return NULL;
    node *n = *p;
    void *v = n->value;
    *p = n->next;
    lw_free(n);
    m->size--;
    return v;
}

size_t lw_map_size(const lw_map *m)
{
    return m->size;
}

void lw_map_each(const lw_map *m, void (*fn)(const char *, void *, void *), void *arg)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (node *n = m->buckets[i]; n; n = n->next)
            fn(n->key, n->value, arg);
}
