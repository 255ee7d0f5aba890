/* Internal to the cpu kernels: the Winograd F(2x2, 3x3) convolution that
 * k_conv_post_f32 takes for a 3x3, stride-1, one-group 2-D conv whose
 * weights come prepared, where the processor has AVX-512 (kwino.c). */
#ifndef LOOM_KWINO_H
#define LOOM_KWINO_H

#include "kernels.h"
#include "ktile.h"
#include "kwindow.h"

/* Whether conv p (geometry g) can take this path on this processor. */
int k_wino_ok(const KConv *p, const KGeo *g);
/* Workspace bytes the path needs (whatever the processor; 0 when the shape
 * can never take it). */
int64_t k_wino_bytes(const KConv *p, const KGeo *g);
/* Bytes of the prepared weights (0: the shape never takes the path), and
 * their preparation from w (nothing on a processor without AVX-512). */
int64_t k_wino_pack_bytes(const KConv *p, const KGeo *g);
void k_wino_pack(void *pack, const float *w, const KConv *p, const KGeo *g);
/* y = conv(x, w) through post (NULL: none), from w prepared in pack;
 * images side by side when par. */
void k_wino_conv(float *y, const float *x, const void *pack, const KTilePost *post, const KConv *p,
                 const KGeo *g, void *ws, int par);

#endif
