/*
 * fuzz.h — the libFuzzer entry points every harness defines. The same
 * harness source builds two ways: linked with libFuzzer (clang, `make fuzz`)
 * and with replay_main.c (any compiler, `make test` replays the corpora).
 */
#ifndef LW_FUZZ_H
#define LW_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Called once per input; must not keep state that changes later answers. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional: called once before the first input. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
