/* Wire-format pre-check of an ONNX file (see pbcheck.c). */
#ifndef LOOM_PBCHECK_H
#define LOOM_PBCHECK_H

#include <stddef.h>
#include <stdint.h>

#define PB_MAX_DEPTH 64

/* 0 when buf is well-formed protobuf with ONNX messages nested at most
 * PB_MAX_DEPTH deep; -1 with a message in err otherwise. */
int pb_check(const uint8_t *buf, size_t len, char *err, size_t errlen);

#endif
