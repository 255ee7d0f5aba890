/* libFuzzer target: the whole import pipeline (wire check, protobuf-c,
 * IR construction, verifier, folding and shape inference) on arbitrary bytes.
 * Any crash, sanitizer report, leak or hang is a bug; an error is fine. */
#include <stddef.h>
#include <stdint.h>

#include "frontend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    IrGraph *g = ir_graph_new("fuzz.onnx");
    if (onnx_load_bytes(g, data, size, NULL, 0) == 0 && ir_verify(g) == 0 && onnx_fold_infer(g) == 0)
        ir_verify(g);
    ir_graph_free(g);
    return 0;
}
