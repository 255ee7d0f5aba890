/* The op table, expanded from the rows in ops.h. */
#include <string.h>

#include "ops_impl.h"

const IrOpInfo ir_ops[IR_NOPS] = {
#define OP_ROW(e, onnx, mi, ma, mo, mx, shape, eval, fpe, flags, attrs) \
    [IR_OP_##e] = {onnx, mi, ma, mo, mx, shape, eval, fpe, flags, attrs},
    IR_OPS(OP_ROW)
#undef OP_ROW
};

int ir_op_lookup(const char *name)
{
    for (int i = 0; i < IR_NOPS; i++)
        if (strcmp(ir_ops[i].name, name) == 0) return i;
    return -1;
}
