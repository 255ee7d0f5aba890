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
        if (!(ir_ops[i].flags & OPF_INTERNAL) && strcmp(ir_ops[i].name, name) == 0) return i;
    return -1;
}

int ir_op_count_onnx(void)
{
    int n = 0;
    for (int i = 0; i < IR_NOPS; i++) n += !(ir_ops[i].flags & OPF_INTERNAL);
    return n;
}
