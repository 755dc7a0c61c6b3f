/* gemm_tiles.h: the shape-only tiling of C shared by cpt_sgemm (gemm.c) and cpt_gemm_bf16
 * (gemm_bf16.c): C is cut into tiles of about TILE x TILE, equal parts rounded up to
 * TILE_ALIGN, so a tile's arithmetic does not depend on who runs it. */
#ifndef CPT_OPS_GEMM_TILES_H
#define CPT_OPS_GEMM_TILES_H

enum { CPT_GEMM_TILE = 256, CPT_GEMM_TILE_ALIGN = 16 };

/* Parts of n of at most about CPT_GEMM_TILE, equal up to CPT_GEMM_TILE_ALIGN rounding. */
static inline int cpt_gemm_part_size(int n) {
    int parts = (n + CPT_GEMM_TILE - 1) / CPT_GEMM_TILE;
    int p = (n + parts - 1) / parts;
    p = (p + CPT_GEMM_TILE_ALIGN - 1) / CPT_GEMM_TILE_ALIGN * CPT_GEMM_TILE_ALIGN;
    return p < n ? p : n;
}

#endif
