/* A pre-pass over the protobuf wire format of an ONNX file, before protobuf-c
 * unpacks it. protobuf-c recurses once per nested message and has no depth
 * limit, so a crafted file of nested subgraphs or TypeProtos could overflow
 * the stack. This walker knows which fields of which ONNX messages are
 * messages, descends into them with an explicit stack, and rejects nesting
 * deeper than any real model has, and wire data that is malformed. */
#include <stdio.h>
#include <string.h>

#include "pbcheck.h"

enum { M_NONE, M_MODEL, M_GRAPH, M_NODE, M_ATTR, M_TENSOR, M_SPARSE, M_VALUEINFO, M_TYPE,
       M_TYPE_TENSOR, M_TYPE_SEQ, M_TYPE_MAP, M_TYPE_OPT, M_SHAPE, M_DIM, M_FUNCTION, M_TRAINING,
       M_OTHER };

/* The message type of field `field` inside a message of type `m`, or M_NONE
 * when that field is not a message (a scalar, a string, bytes). M_OTHER is a
 * message with no nested messages of concern (string maps, segments,
 * opset ids); it is skipped as bytes. */
static int child(int m, unsigned field)
{
    switch (m) {
    case M_MODEL:
        return field == 7 ? M_GRAPH : field == 25 ? M_FUNCTION : field == 20 ? M_TRAINING
             : (field == 8 || field == 14) ? M_OTHER : M_NONE;
    case M_GRAPH:
        return field == 1 ? M_NODE : field == 5 ? M_TENSOR : field == 15 ? M_SPARSE
             : (field == 11 || field == 12 || field == 13) ? M_VALUEINFO : field == 14 ? M_OTHER
             : M_NONE;
    case M_NODE: return field == 5 ? M_ATTR : M_NONE;
    case M_ATTR:
        return (field == 5 || field == 10) ? M_TENSOR : (field == 6 || field == 11) ? M_GRAPH
             : (field == 22 || field == 23) ? M_SPARSE : (field == 14 || field == 15) ? M_TYPE
             : M_NONE;
    case M_TENSOR: return (field == 3 || field == 13) ? M_OTHER : M_NONE;
    case M_SPARSE: return (field == 1 || field == 2) ? M_TENSOR : M_NONE;
    case M_VALUEINFO: return field == 2 ? M_TYPE : M_NONE;
    case M_TYPE:
        return field == 1 ? M_TYPE_TENSOR : field == 4 ? M_TYPE_SEQ : field == 5 ? M_TYPE_MAP
             : field == 9 ? M_TYPE_OPT : field == 8 ? M_TYPE_TENSOR : M_NONE;
    case M_TYPE_TENSOR: return field == 2 ? M_SHAPE : M_NONE;
    case M_TYPE_SEQ: return field == 1 ? M_TYPE : M_NONE;
    case M_TYPE_MAP: return field == 2 ? M_TYPE : M_NONE;
    case M_TYPE_OPT: return field == 1 ? M_TYPE : M_NONE;
    case M_SHAPE: return field == 1 ? M_DIM : M_NONE;
    case M_FUNCTION: return field == 7 ? M_NODE : field == 9 ? M_OTHER : M_NONE;
    case M_TRAINING: return (field == 1 || field == 2) ? M_GRAPH : (field == 3 || field == 4) ? M_OTHER
                                                                                               : M_NONE;
    default: return M_NONE;
    }
}

static int read_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*pos >= len) return -1;
        uint8_t b = p[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

int pb_check(const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    struct { size_t end; int type; } stack[PB_MAX_DEPTH + 1];
    int depth = 0;
    size_t pos = 0;
    stack[0].end = len;
    stack[0].type = M_MODEL;
    for (;;) {
        while (depth > 0 && pos == stack[depth].end) depth--;
        if (depth == 0 && pos == len) return 0;
        if (pos > stack[depth].end) goto bad;
        uint64_t key, n;
        if (read_varint(buf, stack[depth].end, &pos, &key) < 0) goto bad;
        unsigned field = (unsigned)(key >> 3), wire = key & 7;
        if (field == 0) goto bad;
        switch (wire) {
        case 0:
            if (read_varint(buf, stack[depth].end, &pos, &n) < 0) goto bad;
            break;
        case 1:
            if (stack[depth].end - pos < 8) goto bad;
            pos += 8;
            break;
        case 5:
            if (stack[depth].end - pos < 4) goto bad;
            pos += 4;
            break;
        case 2: {
            if (read_varint(buf, stack[depth].end, &pos, &n) < 0) goto bad;
            if (n > stack[depth].end - pos) goto bad;
            int c = child(stack[depth].type, field);
            if (c == M_NONE || c == M_OTHER || n == 0) {
                pos += n;
                break;
            }
            if (depth == PB_MAX_DEPTH) {
                snprintf(err, errlen,
                         "messages nested more than %d deep (subgraphs or types within "
                         "types); no ONNX model loom can compile nests this deep",
                         PB_MAX_DEPTH);
                return -1;
            }
            depth++;
            stack[depth].end = pos + n;
            stack[depth].type = c;
            break;
        }
        default: goto bad; /* groups (3, 4) are not used by ONNX; 6, 7 do not exist */
        }
    }
bad:
    snprintf(err, errlen,
             "not a valid ONNX model: malformed protobuf data at byte %zu of %zu (truncated, "
             "corrupted, or not an ONNX file)",
             pos, len);
    return -1;
}
