/* x86 matrix-matrix products for batches (nb >= 4, prefill), included by
 * kernels_x86.h after its helpers (internal; uses its KX_DOT4* macros).
 *
 * A register tile is one weight row against KB_T (8) activation rows: the
 * weight block is unpacked once for 8 products.
 *  - Block-exact types (Q4_0/Q4_1/Q5_0/Q5_1, kernels_impl.h): a vector's 8
 *    lanes are the 8 activation rows. The tile's codes are stored
 *    transposed by dword (kb_prep_exact_group) and the weight's codes
 *    broadcast by dword, so maddubs's leave each row's sums in its own
 *    lanes: one conversion and one fmadd per block for all 8 outputs.
 *  - Q8_0 and k-quants: 8 int32 partials per output in a vector, one
 *    accumulator per row. For k-quants there is no room in the 16 AVX2
 *    registers for two per row, so the lane groups (block b goes to group
 *    b % 2) are computed one after the other: even blocks, then odd. Each
 *    lane still sees exactly its own fmadd's in increasing block order.
 * Every output is bit for bit the scalar reference's.
 *
 * What depends on the activations alone is prepared once per tile and row
 * block (kb_prep): the activation scales as floats, eight to a vector (lane
 * t = activation row t), so a block's eight d_w * d_a products are one
 * multiply and the min terms of Q4_1/Q5_1 one fmadd; for k-quants the
 * per-32-element sums of the activation bsums, packed so that a super-block's
 * eight min sums (one per row) take four madd's. */
#ifndef ENGINE_KERNELS_X86_BATCH_H
#define ENGINE_KERNELS_X86_BATCH_H

#define KB_T    8  /* activation rows per tile */
#define KB_ROWS 32 /* weight rows kept hot (L2) while the activation tiles pass */
/* Longest row the tile scratch holds, in 32-element blocks; longer rows
 * (n > 16384) take kx_row_tile (4 rows at a time). */
#define KB_MAX_BLOCKS 512
#define KB_MAX_SUPER  (KB_MAX_BLOCKS / 8)

/* Activation-side data of one tile (rows a[0..KB_T-1]; a partial tile
 * repeats its last row). qs holds the rows' 8-bit codes interleaved by
 * block: block b's (32 codes, or 256 for k-quants) of row 0, of row 1, ...,
 * so that every load is 32-byte aligned (an activation block of 34 or 36
 * bytes often straddles two cache lines) and one pointer serves all rows.
 * Legacy types use d and s per block; k-quants d and bs per super-block:
 * bs[sb][c2] lane t holds, for chunks c = 2*c2 and 2*c2+1 of row t,
 * bsums[2c] + bsums[2c+1] as the low and high int16. */
typedef struct kb_tile {
    const uint8_t *a[KB_T];
    _Alignas(32) int8_t qs[KB_MAX_BLOCKS * KB_T * QK32];
    union {
        struct {
            float d[KB_MAX_BLOCKS][KB_T], s[KB_MAX_BLOCKS][KB_T];
            int32_t off[KB_MAX_BLOCKS][KB_T]; /* block-exact: -offset * sum of codes */
        } legacy;
        struct {
            float d[KB_MAX_SUPER][KB_T];
            int32_t bs[KB_MAX_SUPER][4][KB_T];
        } k;
    } u;
} kb_tile;

static int kb_is_legacy(uint32_t type)
{
    return type == TT_Q4_0 || type == TT_Q4_1 || type == TT_Q5_0 || type == TT_Q5_1 ||
           type == TT_Q8_0;
}

static int kb_is_kquant(uint32_t type)
{
    return type == TT_Q4_K || type == TT_Q5_K || type == TT_Q6_K;
}

/* Fills the activation-side data of a tile for rows of nblk blocks (32- or
 * 256-element, by type). Exact conversions only, so nothing rounds. */
/* Block b of rows 4g..4g+3 (codes c[0..3]) into the block-exact layout:
 * the 32 bytes at ((b * 2 + g) * 4 + k) * 32 hold, in bytes 4j..4j+3,
 * codes 4k..4k+3 of row 4g+j and, in bytes 16+4j..16+4j+3, its codes
 * 16+4k..16+4k+3 (a 4x4 transpose of dwords in each 128-bit half). A
 * weight block's codes broadcast the same way (kb_exact_row) then line up
 * with four rows at once. Returns the four rows' code sums as lanes j (low
 * half: codes 0..15, high half: 16..31). */
KX_ALWAYS_INLINE __m256i kb_prep_exact_group(const int8_t *const c[4], int8_t *dst)
{
    const __m256i r0 = kx_load(c[0]), r1 = kx_load(c[1]), r2 = kx_load(c[2]), r3 = kx_load(c[3]);
    const __m256i t0 = _mm256_unpacklo_epi32(r0, r1), t1 = _mm256_unpackhi_epi32(r0, r1);
    const __m256i t2 = _mm256_unpacklo_epi32(r2, r3), t3 = _mm256_unpackhi_epi32(r2, r3);
    const __m256i v0 = _mm256_unpacklo_epi64(t0, t2), v1 = _mm256_unpackhi_epi64(t0, t2);
    const __m256i v2 = _mm256_unpacklo_epi64(t1, t3), v3 = _mm256_unpackhi_epi64(t1, t3);
    _mm256_store_si256((__m256i *)dst, v0);
    _mm256_store_si256((__m256i *)(dst + 32), v1);
    _mm256_store_si256((__m256i *)(dst + 64), v2);
    _mm256_store_si256((__m256i *)(dst + 96), v3);
    const __m256i one = _mm256_set1_epi8(1);
    return KX_DOT4_SUM4(one, v0, one, v1, one, v2, one, v3);
}

static void kb_prep(uint32_t type, int64_t nblk, kb_tile *tl)
{
    if (q_block_exact(type)) {
        const int q8_1 = activation_type(type) == TT_Q8_1;
        const size_t ab = q8_1 ? sizeof(block_q8_1) : sizeof(block_q8_0);
        const __m256i neg_offset = _mm256_set1_epi32(-kx_code_offset(type));
        for (int64_t b = 0; b < nblk; b++) {
            const int8_t *codes[KB_T];
            for (int t = 0; t < KB_T; t++) {
                const uint8_t *blk = tl->a[t] + (size_t)b * ab;
                codes[t] = (const int8_t *)blk + (q8_1 ? 4 : 2);
                tl->u.legacy.d[b][t] = kx_h2f(blk);
                tl->u.legacy.s[b][t] = q8_1 ? kx_h2f(blk + 2) : 0.0f;
            }
            int8_t *dst = tl->qs + (size_t)b * KB_T * QK32;
            const __m256i s0 = kb_prep_exact_group(codes, dst);
            const __m256i s1 = kb_prep_exact_group(codes + 4, dst + 4 * QK32);
            const __m256i sums = _mm256_add_epi32(_mm256_permute2x128_si256(s0, s1, 0x20),
                                                  _mm256_permute2x128_si256(s0, s1, 0x31));
            _mm256_storeu_si256((__m256i *)tl->u.legacy.off[b],
                                _mm256_mullo_epi32(sums, neg_offset));
        }
        return;
    }
    if (type == TT_Q8_0) {
        for (int64_t b = 0; b < nblk; b++)
            for (int t = 0; t < KB_T; t++) {
                const uint8_t *blk = tl->a[t] + (size_t)b * sizeof(block_q8_0);
                memcpy(tl->qs + ((size_t)b * KB_T + t) * QK32, blk + 2, QK32);
                tl->u.legacy.d[b][t] = kx_h2f(blk);
            }
        return;
    }
    for (int64_t b = 0; b < nblk; b++)
        for (int t = 0; t < KB_T; t++) {
            const block_q8_K *y = (const block_q8_K *)(const void *)tl->a[t] + b;
            memcpy(tl->qs + ((size_t)b * KB_T + t) * QK_K, y->qs, QK_K);
            tl->u.k.d[b][t] = y->d;
            for (int c2 = 0; c2 < 4; c2++) {
                const int lo = y->bsums[4 * c2] + y->bsums[4 * c2 + 1];
                const int hi = y->bsums[4 * c2 + 2] + y->bsums[4 * c2 + 3];
                tl->u.k.bs[b][c2][t] = (int32_t)(((uint32_t)(uint16_t)hi << 16) | (uint16_t)lo);
            }
        }
}

/* The eight products dw * d[t] of one block, stored to out; returns out
 * hidden from the optimiser, so that each d[t] is then broadcast straight
 * from memory (a load, not two shuffles, and no pointer per t). */
KX_ALWAYS_INLINE const float *kb_scales(float dw, const float *d8, float *out)
{
    _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_set1_ps(dw), _mm256_loadu_ps(d8)));
    __asm__("" : "+r"(out)::"memory");
    return out;
}

/* Lane groups of a type's canonical order (kernels_impl.h): block b goes to
 * group b % groups. */
static inline int kb_groups(uint32_t type)
{
    return q_groups(type);
}

/* lanes_fold of 8 rows' 8 lanes at once: lane t of the result is
 * lanes_fold(v[t], 8), by the same additions with the same operands in the
 * same order (lane i + lane i+4, then i + i+2, then 0 + 1), rows gathered by
 * shuffles instead of stored and summed one float at a time. */
KX_ALWAYS_INLINE __m256 kb_fold8x8(const __m256 v[KB_T])
{
    __m256 s[4]; /* s[t]: the 4 half-folded lanes of row t, then of row t + 4 */
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++)
        s[t] = _mm256_add_ps(_mm256_permute2f128_ps(v[t], v[t + 4], 0x20),
                             _mm256_permute2f128_ps(v[t], v[t + 4], 0x31));
    const __m256 t01 =
        _mm256_add_ps(_mm256_shuffle_ps(s[0], s[1], 0x44), _mm256_shuffle_ps(s[0], s[1], 0xEE));
    const __m256 t23 =
        _mm256_add_ps(_mm256_shuffle_ps(s[2], s[3], 0x44), _mm256_shuffle_ps(s[2], s[3], 0xEE));
    return _mm256_add_ps(_mm256_shuffle_ps(t01, t23, 0x88), _mm256_shuffle_ps(t01, t23, 0xDD));
}

/* Writes the NT results of one weight row from the G lane groups' 8-lane
 * accumulators of each activation row: the fold of the row's G * 8 lanes
 * (group 0 first) as lanes_fold does (its first step for 16 lanes is group 0
 * + group 1); with two groups the min terms (lane t of mins: group 0's plus
 * group 1's) are then added (sign +1) or subtracted (-1). */
KX_ALWAYS_INLINE void kb_results(int NT, int G, __m256 gacc[Q_GROUPS][KB_T], __m256 mins,
                                 int min_sign, float *out)
{
    __m256 v[KB_T];
#pragma GCC unroll 8
    for (int t = 0; t < KB_T; t++)
        v[t] = t >= NT  ? _mm256_setzero_ps()
               : G == 1 ? gacc[0][t]
                        : _mm256_add_ps(gacc[0][t], gacc[1][t]);
    __m256 r = kb_fold8x8(v);
    if (G > 1)
        r = min_sign > 0 ? _mm256_add_ps(r, mins) : _mm256_sub_ps(r, mins);
    float o[KB_T];
    _mm256_storeu_ps(o, r);
    memcpy(out, o, (size_t)NT * sizeof(float));
}

/* One Q8_0 weight row against NT activation rows: one 8-lane accumulator
 * per row (Q8_0's one lane group), |w| x sign(a, w). */
KX_ALWAYS_INLINE void kb_q8_0_row(int NT, int64_t nblk, const uint8_t *w, const kb_tile *tl,
                                  float *out)
{
    __m256 acc[Q_GROUPS][KB_T];
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        acc[0][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nblk; b++) {
        const uint8_t *wblk = w + (size_t)b * sizeof(block_q8_0);
        const __m256i q = kx_load(wblk + 2), u = _mm256_sign_epi8(q, q);
        float dd[KB_T];
        const float *ddp = kb_scales(kx_h2f(wblk), tl->u.legacy.d[b], dd);
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) {
            const __m256i s = kx_load(tl->qs + ((size_t)b * KB_T + t) * QK32);
            const __m256i p = KX_DOT4(u, _mm256_sign_epi8(s, q));
            acc[0][t] =
                _mm256_fmadd_ps(_mm256_broadcast_ss(ddp + t), _mm256_cvtepi32_ps(p), acc[0][t]);
        }
    }
    kb_results(NT, 1, acc, _mm256_setzero_ps(), +1, out);
}

/* Block b of a block-exact weight row against the tile's 8 rows into
 * acc (lane t = row t). The weight's codes 4k..4k+3 (and 16+4k..16+4k+3)
 * are broadcast to the lanes of four rows (one dword shuffle), so four
 * maddubs's against the prepared layout (kb_prep_exact_group) leave each
 * row's two half-block sums in its own lanes; two permutes and an add make
 * the eight exact block integers, then one conversion and one fmadd serve
 * all eight outputs. */
KX_ALWAYS_INLINE void kb_exact_block(uint32_t type, int64_t b, const uint8_t *wblk,
                                     const kb_tile *tl, __m256 *acc, __m256 *mins)
{
    const __m256i u = kx_exact_codes(type, wblk);
    const __m256i u0 = _mm256_shuffle_epi32(u, 0x00), u1 = _mm256_shuffle_epi32(u, 0x55);
    const __m256i u2 = _mm256_shuffle_epi32(u, 0xAA), u3 = _mm256_shuffle_epi32(u, 0xFF);
    const int8_t *A = tl->qs + (size_t)b * KB_T * QK32;
    const __m256i g0 =
        KX_DOT4_SUM4(u0, kx_load(A), u1, kx_load(A + 32), u2, kx_load(A + 64), u3, kx_load(A + 96));
    const __m256i g1 = KX_DOT4_SUM4(u0, kx_load(A + 128), u1, kx_load(A + 160), u2,
                                    kx_load(A + 192), u3, kx_load(A + 224));
    __m256i p = _mm256_add_epi32(_mm256_permute2x128_si256(g0, g1, 0x20),
                                 _mm256_permute2x128_si256(g0, g1, 0x31));
    if (kx_code_offset(type))
        p = _mm256_add_epi32(p, kx_load(tl->u.legacy.off[b]));
    const __m256 dd =
        _mm256_mul_ps(_mm256_set1_ps(kx_h2f(wblk)), _mm256_loadu_ps(tl->u.legacy.d[b]));
    *acc = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(p), *acc);
    if (type == TT_Q4_1 || type == TT_Q5_1)
        *mins = _mm256_fmadd_ps(_mm256_set1_ps(kx_h2f(wblk + 2)),
                                _mm256_loadu_ps(tl->u.legacy.s[b]), *mins);
}

/* One block-exact weight row against the tile's 8 rows: block b into the
 * lane accumulator b % 8 (eight vectors, one lane per row), then the
 * canonical fold of the eight, as vector adds. */
KX_ALWAYS_INLINE void kb_exact_row(uint32_t type, int64_t nblk, const uint8_t *w, const kb_tile *tl,
                                   float *out)
{
    const size_t wb = kx_legacy_bytes(type);
    __m256 acc[Q_LANES], mins = _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < Q_LANES; i++)
        acc[i] = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + Q_LANES <= nblk; b += Q_LANES)
#pragma GCC unroll 8
        for (int i = 0; i < Q_LANES; i++)
            kb_exact_block(type, b + i, w + (size_t)(b + i) * wb, tl, &acc[i], &mins);
    for (; b < nblk; b++)
        kb_exact_block(type, b, w + (size_t)b * wb, tl, &acc[b % Q_LANES], &mins);
    for (int half = Q_LANES / 2; half >= 1; half /= 2)
#pragma GCC unroll 4
        for (int i = 0; i < half; i++)
            acc[i] = _mm256_add_ps(acc[i], acc[i + half]);
    const int with_min = type == TT_Q4_1 || type == TT_Q5_1;
    _mm256_storeu_ps(out, with_min ? _mm256_add_ps(acc[0], mins) : acc[0]);
}

/* ---------------------------------------------------------------- k-quants */

/* The eight super-block min sums of one Q4_K/Q5_K weight super-block (mins
 * mn[0..7]) against the tile's rows: lane t = sum_c mn[c] * (bsums[2c] +
 * bsums[2c+1]) of row t, exact in int32. */
KX_ALWAYS_INLINE __m256i kb_min_sums(const uint8_t mn[8], const int32_t bs[4][KB_T])
{
    __m256i s = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int c2 = 0; c2 < 4; c2++) {
        const __m256i m = _mm256_set1_epi32((int)((uint32_t)mn[2 * c2 + 1] << 16 | mn[2 * c2]));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(m, kx_load(bs[c2])));
    }
    return s;
}

/* Lane group g of one Q4_K/Q5_K weight row against NT rows of Q8_K. */
KX_ALWAYS_INLINE __m256 kb_q45k_group(uint32_t type, int NT, int64_t nsb, int g, int G,
                                      const uint8_t *w, const kb_tile *tl, __m256 *gacc)
{
    const size_t wb = type == TT_Q4_K ? sizeof(block_q4_K) : sizeof(block_q5_K);
    __m256 acc[KB_T], mins = _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = g; b < nsb; b += G) {
        const uint8_t *wblk = w + (size_t)b * wb;
        const uint8_t *qs =
            type == TT_Q4_K ? ((const block_q4_K *)wblk)->qs : ((const block_q5_K *)wblk)->qs;
        uint8_t sc[8], mn[8];
        kx_kscales(wblk + 4, sc, mn);
        __m256i qh = _mm256_setzero_si256();
        if (type == TT_Q5_K)
            qh = kx_load(((const block_q5_K *)wblk)->qh);
        __m256i p[KB_T];
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++)
            p[t] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int pr = 0; pr < 4; pr++) {
            __m256i lo, hi;
            kx_q45k_pair(type, qs, qh, pr, &lo, &hi);
            const __m256i s_lo = _mm256_set1_epi16(sc[2 * pr]);
            const __m256i s_hi = _mm256_set1_epi16(sc[2 * pr + 1]);
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++) {
                const int8_t *aq = tl->qs + ((size_t)b * KB_T + t) * QK_K + 64 * pr;
                p[t] = _mm256_add_epi32(p[t], KX_DOT4_SCALED(lo, kx_load(aq), s_lo));
                p[t] = _mm256_add_epi32(p[t], KX_DOT4_SCALED(hi, kx_load(aq + 32), s_hi));
            }
        }
        float dd[KB_T];
        const float *ddp = kb_scales(kx_h2f(wblk), tl->u.k.d[b], dd);
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++)
            acc[t] =
                _mm256_fmadd_ps(_mm256_broadcast_ss(ddp + t), _mm256_cvtepi32_ps(p[t]), acc[t]);
        /* lane t: fmaf(dmin_w * d_t, (float)summs_t, mins_t), as scalar */
        const __m256 dmin =
            _mm256_mul_ps(_mm256_set1_ps(kx_h2f(wblk + 2)), _mm256_loadu_ps(tl->u.k.d[b]));
        mins = _mm256_fmadd_ps(dmin, _mm256_cvtepi32_ps(kb_min_sums(mn, tl->u.k.bs[b])), mins);
    }
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        gacc[t] = acc[t];
    return mins;
}

KX_ALWAYS_INLINE void kb_q45k_row(uint32_t type, int NT, int64_t nsb, const uint8_t *w,
                                  const kb_tile *tl, float *out)
{
    __m256 gacc[Q_GROUPS][KB_T];
    const int G = kb_groups(type);
    __m256 mg[Q_GROUPS];
#pragma GCC unroll 2
    for (int g = 0; g < G; g++)
        mg[g] = kb_q45k_group(type, NT, nsb, g, G, w, tl, gacc[g]);
    const __m256 mins = G == 1 ? mg[0] : _mm256_add_ps(mg[0], mg[1]);
    kb_results(NT, G, gacc, mins, -1, out);
}

/* Lane group g of one Q6_K weight row against NT rows of Q8_K. */
KX_ALWAYS_INLINE void kb_q6k_group(int NT, int64_t nsb, int g, int G, const uint8_t *w,
                                   const kb_tile *tl, __m256 *gacc)
{
    __m256 acc[KB_T];
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = g; b < nsb; b += G) {
        const block_q6_K *x = (const block_q6_K *)(const void *)w + b;
        __m256i p[KB_T];
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++)
            p[t] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i qv[4];
            kx_q6k_half(x, h, qv);
#pragma GCC unroll 4
            for (int s = 0; s < 4; s++) {
                const __m256i q = qv[s];
                const int c = 4 * h + s;
                const __m256i sc16 = _mm256_set_m128i(_mm_set1_epi16(x->scales[2 * c + 1]),
                                                      _mm_set1_epi16(x->scales[2 * c]));
#pragma GCC unroll 8
                for (int t = 0; t < NT; t++) {
                    const int8_t *aq = tl->qs + ((size_t)b * KB_T + t) * QK_K + 32 * c;
                    p[t] = _mm256_add_epi32(p[t], KX_DOT4_Q6(q, kx_load(aq), sc16));
                }
            }
        }
        float dd[KB_T];
        const float *ddp = kb_scales(kx_h2f(&x->d), tl->u.k.d[b], dd);
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++)
            acc[t] =
                _mm256_fmadd_ps(_mm256_broadcast_ss(ddp + t), _mm256_cvtepi32_ps(p[t]), acc[t]);
    }
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++)
        gacc[t] = acc[t];
}

KX_ALWAYS_INLINE void kb_q6k_row(int NT, int64_t nsb, const uint8_t *w, const kb_tile *tl,
                                 float *out)
{
    __m256 gacc[Q_GROUPS][KB_T];
    const int G = kb_groups(TT_Q6_K);
#pragma GCC unroll 2
    for (int g = 0; g < G; g++)
        kb_q6k_group(NT, nsb, g, G, w, tl, gacc[g]);
    kb_results(NT, G, gacc, _mm256_setzero_ps(), +1, out);
}

/* ---------------------------------------------------------------- driver */

/* One weight row against the tile, NT (4 or KB_T) rows computed. */
static void kb_row(uint32_t type, int NT, int64_t n, const uint8_t *w, const kb_tile *tl,
                   float *out)
{
#define KB_NT(call)                                                                                \
    do {                                                                                           \
        if (NT == KB_T)                                                                            \
            call(KB_T);                                                                            \
        else                                                                                       \
            call(4);                                                                               \
    } while (0)
#define KB_Q8_0(N) kb_q8_0_row(N, n / QK32, w, tl, out)
#define KB_Q4_K(N) kb_q45k_row(TT_Q4_K, N, n / QK_K, w, tl, out)
#define KB_Q5_K(N) kb_q45k_row(TT_Q5_K, N, n / QK_K, w, tl, out)
#define KB_Q6_K(N) kb_q6k_row(N, n / QK_K, w, tl, out)
    switch (type) {
    case TT_Q4_0: /* block-exact types: always the 8 lanes (kb_exact_row) */
        kb_exact_row(TT_Q4_0, n / QK32, w, tl, out);
        break;
    case TT_Q4_1:
        kb_exact_row(TT_Q4_1, n / QK32, w, tl, out);
        break;
    case TT_Q5_0:
        kb_exact_row(TT_Q5_0, n / QK32, w, tl, out);
        break;
    case TT_Q5_1:
        kb_exact_row(TT_Q5_1, n / QK32, w, tl, out);
        break;
    case TT_Q8_0:
        KB_NT(KB_Q8_0);
        break;
    case TT_Q4_K:
        KB_NT(KB_Q4_K);
        break;
    case TT_Q5_K:
        KB_NT(KB_Q5_K);
        break;
    default: /* TT_Q6_K (kb_mul_mat checks) */
        KB_NT(KB_Q6_K);
        break;
    }
#undef KB_NT
}

/* 1 when kb_mul_mat computes this product: at least 4 activation rows, a
 * quantized type, rows that fit the tile scratch. */
static int kb_handles(uint32_t type, int64_t n, int64_t nb)
{
    return nb >= 4 && ((kb_is_legacy(type) && n / QK32 <= KB_MAX_BLOCKS) ||
                       (kb_is_kquant(type) && n / QK_K <= KB_MAX_SUPER));
}

/* mul_mat for batches (see quant.h; kb_handles says which): blocks of
 * KB_ROWS weight rows; within a block, activation rows in tiles of KB_T (of
 * 4 when nb < KB_T), each tile prepared once and run against every row of
 * the block. A last partial tile is moved back to end at row nb, overlapping
 * the one before; only its new rows are stored. Outputs computed twice are
 * computed the same way, so the loop order changes which outputs are
 * computed when, never how. */
static void kb_mul_mat(uint32_t type, int64_t n, const uint8_t *w, size_t w_stride,
                       const uint8_t *a, size_t a_stride, int64_t nb, float *y, size_t y_stride,
                       int64_t r0, int64_t r1)
{
    kb_tile tl;
    const int NT = nb >= KB_T ? KB_T : 4;
    const int64_t nblk = kb_is_legacy(type) ? n / QK32 : n / QK_K;
    for (int64_t rb = r0; rb < r1; rb += KB_ROWS) {
        const int64_t re = rb + KB_ROWS < r1 ? rb + KB_ROWS : r1;
        for (int64_t done = 0; done < nb;) {
            const int64_t first = done + NT <= nb ? done : nb - NT;
            for (int t = 0; t < KB_T; t++)
                tl.a[t] = a + (size_t)(first + (t < NT ? t : NT - 1)) * a_stride;
            kb_prep(type, nblk, &tl);
            for (int64_t r = rb; r < re; r++) {
                float out[KB_T];
                kb_row(type, NT, n, w + (size_t)r * w_stride, &tl, out);
                for (int64_t t = done - first; t < NT; t++)
                    y[(size_t)(first + t) * y_stride + (size_t)r] = out[t];
            }
            done = first + NT;
        }
    }
}

#endif
