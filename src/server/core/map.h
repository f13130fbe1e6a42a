/*
 * map.h — a string-keyed hash map (separate chaining, power-of-two buckets,
 * grows at load factor 1). Keys are copied; values are borrowed pointers.
 * Used for the session cache and the WebSocket registry, which are touched on
 * every request, so lookups must not allocate.
 */
#ifndef LW_MAP_H
#define LW_MAP_H

#include <stddef.h>

typedef struct lw_map lw_map;

lw_map *lw_map_new(void);
void lw_map_free(lw_map *m);
void *lw_map_get(const lw_map *m, const char *key);
/* Inserts or replaces; LW_OK or LW_ENOMEM. */
int lw_map_put(lw_map *m, const char *key, void *value);
/* Removes key and returns its value (NULL if absent). */
void *lw_map_del(lw_map *m, const char *key);
size_t lw_map_size(const lw_map *m);
/* Calls fn for each entry; fn must not modify the map. */
void lw_map_each(const lw_map *m, void (*fn)(const char *key, void *value, void *arg), void *arg);

#endif
