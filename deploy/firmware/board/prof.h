/* har firmware harness: region markers for the instruction-counting QEMU plugin. Call prof_begin() before and
 * prof_end() after the code to measure (keep I/O outside); every pair becomes one "region" count. Natively (host
 * builds) they are empty calls. */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

void prof_begin(void);
void prof_end(void);

#ifdef __cplusplus
}
#endif
