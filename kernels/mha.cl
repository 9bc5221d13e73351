/*
 * mha.cl - the element-wise kernels of the multi-head attention layer
 * (src/mha.c) around its CLBlast projections and the attention core:
 *
 *   mha_bias_rope   after a q or k projection: add the bias, then rotate each
 *                   head's pairs (t[i], t[i + Dh/2]) by the angle of the row's
 *                   position (GPT-NeoX half-split RoPE), in place
 *   mha_bias        after the v projection: add the bias in place; and last,
 *                   the output projection plus bo copied into the caller's y
 *
 * Matrices are row-major [rows, width] f32 (width = heads * head_dim); rows
 * run over (batch, position), so a row's position is row % seq. The rotation
 * angles come from a table the host fills once in double precision
 * ([seq_max, head_dim]: cos of the Dh/2 angles, then their sin), so long
 * sequences lose no accuracy to f32 angle arithmetic. One work-item per
 * element (mha_bias) or per rotated pair (mha_bias_rope); all index
 * arithmetic is 64-bit. No -D options are needed.
 */

/* x[row, col] += bias[col] (has_bias), then for RoPE per (row, head, i < hdim):
 * (a, b) = (x[.., i], x[.., i + hdim]) -> (a cos - b sin, b cos + a sin). */
__kernel void mha_bias_rope(__global float *x, long rows, long seq, int heads, int head_dim,
                            __global const float *bias, ulong bias_off, int has_bias, __global const float *table)
{
    const long hdim = head_dim / 2;
    const long per_row = (long)heads * hdim;
    const long g = (long)get_global_id(0);
    if (g >= rows * per_row)
        return;
    const long row = g / per_row, rem = g - row * per_row;
    const long h = rem / hdim, i = rem - h * hdim;
    const long col = h * head_dim + i;
    const long at = row * (long)heads * head_dim + col;
    float a = x[at], b = x[at + hdim];
    if (has_bias) {
        a += bias[bias_off + col];
        b += bias[bias_off + col + hdim];
    }
    const long pos = row % seq;
    const float c = table[pos * head_dim + i], s = table[pos * head_dim + hdim + i];
    x[at] = a * c - b * s;
    x[at + hdim] = b * c + a * s;
}

/* dst[dst_off + e] = src[e] + bias[bias_off + e % width] (has_bias) for the
 * n = rows * width elements; src and dst may be the same buffer (in place). */
__kernel void mha_bias(__global const float *src, __global float *dst, ulong dst_off, long n, long width,
                       __global const float *bias, ulong bias_off, int has_bias)
{
    const long e = (long)get_global_id(0);
    if (e >= n)
        return;
    float t = src[e];
    if (has_bias)
        t += bias[bias_off + e % width];
    dst[dst_off + e] = t;
}
