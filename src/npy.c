/*
 * npy.c - reading and writing NumPy .npy files (clattn_npy_load,
 * clattn_npy_save, clattn_npy_free, clattn_npy_type_size).
 *
 * Reader: format versions 1.0, 2.0 and 3.0; descr '<f4' '<f2' '<i4' '<f8' '<i8'
 * (the byte-order prefixes '<', '|', '=' or none are accepted, big-endian '>'
 * and '!' are rejected with CLATTN_ERROR_NPY_DTYPE: the host is little-endian
 * and no byte swapping is done); Fortran-order data is transposed to C order.
 * Every size taken from the header is checked against the file size (fstat)
 * before anything is allocated; the file must hold exactly the data the header
 * describes (short: NPY_TRUNCATED, extra trailing bytes: NPY_FORMAT).
 *
 * Writer: format 1.0, C order, byte-identical to numpy.save (including the
 * spare growth spaces and the 64-byte data alignment); written to a mkstemp()
 * file in the same directory and renamed over the destination, the temporary
 * file is removed on every failure.
 */
#include "clattn.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif
#endif

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64
#define NPY_GROWTH_AXIS_MAX_DIGITS 21 /* numpy.lib.format.GROWTH_AXIS_MAX_DIGITS */
#define NPY_MAX_NESTING 32

/* ------------------------------------------------------------------------ */
/* Shared helpers                                                           */
/* ------------------------------------------------------------------------ */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void set_err(char *err, size_t err_size, const char *fmt, ...)
{
    if (err == NULL || err_size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
    if (n < 0)
        err[0] = '\0';
    /* Keep the message on one line even if the path holds a newline. */
    for (char *p = err; *p; ++p)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

static const char *type_descr(clattn_npy_type type)
{
    switch (type) {
    case CLATTN_NPY_F32: return "<f4";
    case CLATTN_NPY_F16: return "<f2";
    case CLATTN_NPY_I32: return "<i4";
    case CLATTN_NPY_F64: return "<f8";
    case CLATTN_NPY_I64: return "<i8";
    default: return NULL;
    }
}

CLATTN_API size_t clattn_npy_type_size(clattn_npy_type type)
{
    switch (type) {
    case CLATTN_NPY_F32: return 4;
    case CLATTN_NPY_F16: return 2;
    case CLATTN_NPY_I32: return 4;
    case CLATTN_NPY_F64: return 8;
    case CLATTN_NPY_I64: return 8;
    default: return 0;
    }
}

CLATTN_API void clattn_npy_free(clattn_npy *arr)
{
    if (arr == NULL)
        return;
    free(arr->data);
    memset(arr, 0, sizeof *arr);
}

/* Writes a shape the way Python writes a tuple: (), (5,), (2, 3). */
static void format_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t used = 0;
    int n = snprintf(buf, size, "(");
    used = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < ndim && used < size; ++i) {
        n = snprintf(buf + used, size - used, i == 0 ? "%" PRId64 : ", %" PRId64, shape[i]);
        if (n < 0)
            return;
        used += (size_t)n;
    }
    if (used < size)
        snprintf(buf + used, size - used, ndim == 1 ? ",)" : ")");
}

/*
 * Number of elements and bytes of a shape, 0 on success, -1 when either
 * overflows int64 or size_t. A zero dimension makes both zero.
 */
static int shape_size(int ndim, const int64_t *shape, size_t elsize, size_t *count, size_t *bytes)
{
    uint64_t limit = (uint64_t)INT64_MAX;
    if ((uint64_t)SIZE_MAX < limit)
        limit = (uint64_t)SIZE_MAX;
    for (int i = 0; i < ndim; ++i)
        if (shape[i] == 0) {
            *count = 0;
            *bytes = 0;
            return 0;
        }
    uint64_t c = 1;
    for (int i = 0; i < ndim; ++i) {
        uint64_t d = (uint64_t)shape[i];
        if (c > limit / d)
            return -1;
        c *= d;
    }
    if (c > limit / elsize)
        return -1;
    *count = (size_t)c;
    *bytes = (size_t)(c * elsize);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Header parser                                                            */
/* ------------------------------------------------------------------------ */

/* What the header dict says, plus the problems found in it. */
typedef struct npy_header {
    int has_descr, has_fortran, has_shape;
    int structured;   /* descr is a list (structured dtype) */
    char descr[32];   /* the descr string, truncated to fit for the message */
    int descr_too_long;
    int fortran;
    int ndim;         /* number of dims listed, may exceed CLATTN_NPY_MAX_DIMS */
    int64_t shape[CLATTN_NPY_MAX_DIMS];
    int neg_dim, nonint_dim, huge_dim;
    char shape_text[96]; /* the tuple as written, for messages */
} npy_header;

typedef struct parser {
    const char *p, *end;
    char msg[160]; /* set on a syntax error */
} parser;

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_ident(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_';
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && is_space(*ps->p))
        ps->p++;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int syntax_error(parser *ps, const char *fmt, ...)
{
    if (ps->msg[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->msg, sizeof ps->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/*
 * Parses a Python string literal ('...' or "...") into out (truncated to
 * out_size - 1 characters; *too_long set when it was). Backslash escapes are
 * kept verbatim.
 */
static int parse_string(parser *ps, char *out, size_t out_size, int *too_long)
{
    if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"'))
        return syntax_error(ps, "expected a quoted string");
    char quote = *ps->p++;
    size_t n = 0;
    if (too_long)
        *too_long = 0;
    while (ps->p < ps->end && *ps->p != quote) {
        char c = *ps->p;
        if (c == '\n' || c == '\0')
            return syntax_error(ps, "unterminated string");
        if (c == '\\' && ps->p + 1 < ps->end) {
            if (n + 1 < out_size)
                out[n++] = c;
            else if (too_long)
                *too_long = 1;
            ps->p++;
            c = *ps->p;
        }
        if (n + 1 < out_size)
            out[n++] = c;
        else if (too_long)
            *too_long = 1;
        ps->p++;
    }
    if (ps->p >= ps->end)
        return syntax_error(ps, "unterminated string");
    ps->p++; /* closing quote */
    if (out_size > 0)
        out[n] = '\0';
    return 0;
}

/* Skips any Python literal (string, number, name, tuple, list, dict). */
static int skip_value(parser *ps, int depth)
{
    if (depth > NPY_MAX_NESTING)
        return syntax_error(ps, "values nested too deeply");
    skip_ws(ps);
    if (ps->p >= ps->end)
        return syntax_error(ps, "unexpected end of header");
    char c = *ps->p;
    if (c == '\'' || c == '"') {
        char dummy[1];
        return parse_string(ps, dummy, sizeof dummy, NULL);
    }
    if (c == '(' || c == '[' || c == '{') {
        char close = c == '(' ? ')' : c == '[' ? ']' : '}';
        ps->p++;
        for (;;) {
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == close) {
                ps->p++;
                return 0;
            }
            if (skip_value(ps, depth + 1) != 0)
                return -1;
            skip_ws(ps);
            if (c == '{') {
                if (ps->p >= ps->end || *ps->p != ':')
                    return syntax_error(ps, "expected ':' in a dict");
                ps->p++;
                if (skip_value(ps, depth + 1) != 0)
                    return -1;
                skip_ws(ps);
            }
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->end && *ps->p == close) {
                ps->p++;
                return 0;
            }
            return syntax_error(ps, "expected ',' or '%c'", close);
        }
    }
    if (c == '+' || c == '-' || c == '.' || is_ident(c)) {
        if (c == '+' || c == '-')
            ps->p++;
        const char *start = ps->p;
        while (ps->p < ps->end && (is_ident(*ps->p) || *ps->p == '.'))
            ps->p++;
        if (ps->p == start)
            return syntax_error(ps, "expected a value");
        return 0;
    }
    return syntax_error(ps, "unexpected character '%c'", c);
}

/* descr: a string, or a list for structured dtypes (reported as NPY_DTYPE). */
static int parse_descr(parser *ps, npy_header *h)
{
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '[') {
        h->structured = 1;
        return skip_value(ps, 0);
    }
    if (ps->p < ps->end && (*ps->p == '\'' || *ps->p == '"'))
        return parse_string(ps, h->descr, sizeof h->descr, &h->descr_too_long);
    return syntax_error(ps, "'descr' is not a string");
}

static int parse_bool(parser *ps, int *out)
{
    skip_ws(ps);
    const char *start = ps->p;
    while (ps->p < ps->end && is_ident(*ps->p))
        ps->p++;
    size_t n = (size_t)(ps->p - start);
    if (n == 4 && memcmp(start, "True", 4) == 0) {
        *out = 1;
        return 0;
    }
    if (n == 5 && memcmp(start, "False", 5) == 0) {
        *out = 0;
        return 0;
    }
    return syntax_error(ps, "'fortran_order' is not True or False");
}

/*
 * shape: a tuple of integers. Syntax errors fail; negative, non-integer and
 * int64-overflowing elements are recorded in h and reported later as
 * NPY_SHAPE so that the message can show the whole tuple.
 */
static int parse_shape(parser *ps, npy_header *h)
{
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != '(')
        return syntax_error(ps, "'shape' is not a tuple");
    const char *open = ps->p;
    ps->p++;
    int n = 0, trailing_comma = 0;
    for (;;) {
        skip_ws(ps);
        if (ps->p >= ps->end)
            return syntax_error(ps, "unterminated 'shape' tuple");
        if (*ps->p == ')') {
            ps->p++;
            break;
        }
        /* one element */
        const char *q = ps->p;
        int neg = 0;
        if (*q == '+' || *q == '-') {
            neg = *q == '-';
            q++;
        }
        const char *digits = q;
        uint64_t v = 0;
        int huge = 0;
        while (q < ps->end && is_digit(*q)) {
            unsigned d = (unsigned)(*q - '0');
            if (v > ((uint64_t)INT64_MAX - d) / 10)
                huge = 1;
            else
                v = v * 10 + d;
            q++;
        }
        int is_int = q > digits;
        if (is_int && q < ps->end && (*q == 'L' || *q == 'l')) /* Python 2 long */
            q++;
        if (is_int && q < ps->end && (is_ident(*q) || *q == '.'))
            is_int = 0; /* 2.5, 3e2, 0x10 ... */
        if (is_int) {
            ps->p = q;
            if (n < CLATTN_NPY_MAX_DIMS)
                h->shape[n] = neg ? -(int64_t)v : (int64_t)v;
            if (huge)
                h->huge_dim = 1;
            else if (neg && v != 0)
                h->neg_dim = 1;
        } else {
            /* Not an integer literal: skip whatever value it is. */
            if (skip_value(ps, 1) != 0)
                return -1;
            h->nonint_dim = 1;
        }
        n++;
        if (n > 1000)
            return syntax_error(ps, "'shape' has too many elements");
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            trailing_comma = 1;
            continue;
        }
        trailing_comma = 0;
        if (ps->p < ps->end && *ps->p == ')') {
            ps->p++;
            break;
        }
        return syntax_error(ps, "expected ',' or ')' in 'shape'");
    }
    if (n == 1 && !trailing_comma)
        return syntax_error(ps, "'shape' is not a tuple (a 1-tuple needs a trailing comma)");
    h->ndim = n;
    size_t len = (size_t)(ps->p - open);
    if (len >= sizeof h->shape_text) {
        len = sizeof h->shape_text - 4;
        memcpy(h->shape_text, open, len);
        memcpy(h->shape_text + len, "...", 4);
    } else {
        memcpy(h->shape_text, open, len);
        h->shape_text[len] = '\0';
    }
    return 0;
}

/* Parses the header dict; returns 0 or -1 with ps->msg set. */
static int parse_header(parser *ps, npy_header *h)
{
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != '{')
        return syntax_error(ps, "header is not a Python dict literal");
    ps->p++;
    for (;;) {
        skip_ws(ps);
        if (ps->p >= ps->end)
            return syntax_error(ps, "unterminated header dict");
        if (*ps->p == '}') {
            ps->p++;
            break;
        }
        if (*ps->p != '\'' && *ps->p != '"')
            return syntax_error(ps, "expected a quoted key in the header dict");
        char key[32];
        int too_long = 0;
        if (parse_string(ps, key, sizeof key, &too_long) != 0)
            return -1;
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':')
            return syntax_error(ps, "expected ':' after key '%s'", key);
        ps->p++;
        int rc;
        if (!too_long && strcmp(key, "descr") == 0) {
            if (h->has_descr)
                return syntax_error(ps, "duplicate key 'descr'");
            h->has_descr = 1;
            rc = parse_descr(ps, h);
        } else if (!too_long && strcmp(key, "fortran_order") == 0) {
            if (h->has_fortran)
                return syntax_error(ps, "duplicate key 'fortran_order'");
            h->has_fortran = 1;
            rc = parse_bool(ps, &h->fortran);
        } else if (!too_long && strcmp(key, "shape") == 0) {
            if (h->has_shape)
                return syntax_error(ps, "duplicate key 'shape'");
            h->has_shape = 1;
            rc = parse_shape(ps, h);
        } else {
            return syntax_error(ps, "unexpected key '%s%s' in the header dict", key,
                                too_long ? "..." : "");
        }
        if (rc != 0)
            return -1;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            break;
        }
        return syntax_error(ps, "expected ',' or '}' in the header dict");
    }
    /* Only padding may follow the dict. */
    while (ps->p < ps->end && (is_space(*ps->p) || *ps->p == '\0'))
        ps->p++;
    if (ps->p < ps->end)
        return syntax_error(ps, "unexpected text after the header dict");
    return 0;
}

/* Maps a descr string onto a type; -1 if unsupported, -2 if big-endian. */
static int descr_type(const char *descr, clattn_npy_type *type)
{
    const char *s = descr;
    int big = 0;
    if (*s == '<' || *s == '|' || *s == '=')
        s++;
    else if (*s == '>' || *s == '!') {
        big = 1;
        s++;
    }
    static const struct {
        const char *code;
        clattn_npy_type type;
    } table[] = {
        {"f4", CLATTN_NPY_F32}, {"f2", CLATTN_NPY_F16}, {"i4", CLATTN_NPY_I32},
        {"f8", CLATTN_NPY_F64}, {"i8", CLATTN_NPY_I64},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; ++i)
        if (strcmp(s, table[i].code) == 0) {
            if (big)
                return -2;
            *type = table[i].type;
            return 0;
        }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */
/* ------------------------------------------------------------------------ */

/* Reads up to n bytes; returns the number read, or -1 with errno set. */
static ssize_t read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Reorders a Fortran-order (column-major) array into C order. */
static void fortran_to_c(const unsigned char *src, unsigned char *dst, int ndim,
                         const int64_t *shape, size_t count, size_t elsize)
{
    size_t cstride[CLATTN_NPY_MAX_DIMS]; /* C-order strides in bytes */
    size_t idx[CLATTN_NPY_MAX_DIMS] = {0};
    size_t s = elsize;
    for (int k = ndim - 1; k >= 0; --k) {
        cstride[k] = s;
        s *= (size_t)shape[k];
    }
    size_t off = 0;
    for (size_t e = 0; e < count; ++e) {
        memcpy(dst + off, src + e * elsize, elsize);
        /* advance the Fortran-order index: first axis fastest */
        for (int k = 0; k < ndim; ++k) {
            idx[k]++;
            off += cstride[k];
            if (idx[k] < (size_t)shape[k])
                break;
            off -= idx[k] * cstride[k];
            idx[k] = 0;
        }
    }
}

CLATTN_API clattn_status clattn_npy_load(const char *path, clattn_npy *out, char *err,
                                         size_t err_size)
{
    if (err != NULL && err_size > 0)
        err[0] = '\0';
    if (out != NULL)
        memset(out, 0, sizeof *out);
    if (path == NULL || out == NULL) {
        set_err(err, err_size, "clattn_npy_load: %s is NULL", path == NULL ? "path" : "out");
        return CLATTN_ERROR_NULL_ARGUMENT;
    }

    clattn_status status = CLATTN_SUCCESS;
    char *header = NULL;
    unsigned char *data = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        set_err(err, err_size, "%s: cannot open: %s", path, strerror(errno));
        return CLATTN_ERROR_IO;
    }

    struct stat st;
    if (fstat(fd, &st) != 0) {
        set_err(err, err_size, "%s: cannot stat: %s", path, strerror(errno));
        status = CLATTN_ERROR_IO;
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, err_size, "%s: not a regular file", path);
        status = CLATTN_ERROR_IO;
        goto done;
    }
    uint64_t file_size = (uint64_t)st.st_size;

    /* magic, version and header length */
    unsigned char pre[12];
    size_t pre_want = file_size < sizeof pre ? (size_t)file_size : sizeof pre;
    ssize_t got = read_full(fd, pre, pre_want);
    if (got < 0) {
        set_err(err, err_size, "%s: read failed: %s", path, strerror(errno));
        status = CLATTN_ERROR_IO;
        goto done;
    }
    size_t have = (size_t)got;
    if (have == 0) {
        set_err(err, err_size, "%s: empty file (0 bytes), not a .npy file", path);
        status = CLATTN_ERROR_NPY_FORMAT;
        goto done;
    }
    size_t cmp = have < NPY_MAGIC_LEN ? have : NPY_MAGIC_LEN;
    if (memcmp(pre, NPY_MAGIC, cmp) != 0) {
        set_err(err, err_size, "%s: bad magic (does not start with \\x93NUMPY), not a .npy file",
                path);
        status = CLATTN_ERROR_NPY_FORMAT;
        goto done;
    }
    if (have < 8) {
        set_err(err, err_size, "%s: file ends inside the .npy preamble (%zu bytes)", path, have);
        status = CLATTN_ERROR_NPY_TRUNCATED;
        goto done;
    }
    unsigned major = pre[6], minor = pre[7];
    if (!((major == 1 || major == 2 || major == 3) && minor == 0)) {
        set_err(err, err_size, "%s: unsupported .npy format version %u.%u (1.0, 2.0, 3.0 are)",
                path, major, minor);
        status = CLATTN_ERROR_NPY_FORMAT;
        goto done;
    }
    size_t pre_len = major == 1 ? 10 : 12;
    if (have < pre_len) {
        set_err(err, err_size, "%s: file ends inside the .npy preamble (%zu bytes)", path, have);
        status = CLATTN_ERROR_NPY_TRUNCATED;
        goto done;
    }
    uint64_t header_len = major == 1
                              ? (uint64_t)pre[8] | (uint64_t)pre[9] << 8
                              : (uint64_t)pre[8] | (uint64_t)pre[9] << 8 |
                                    (uint64_t)pre[10] << 16 | (uint64_t)pre[11] << 24;
    if (header_len > file_size - pre_len) {
        set_err(err, err_size,
                "%s: header length %" PRIu64 " extends beyond the end of the file (%" PRIu64
                " bytes)",
                path, header_len, file_size);
        status = CLATTN_ERROR_NPY_FORMAT;
        goto done;
    }
    if (header_len == 0) {
        set_err(err, err_size, "%s: empty header", path);
        status = CLATTN_ERROR_NPY_FORMAT;
        goto done;
    }

    /* the header dict (its size is bounded by the file size checked above) */
    if (lseek(fd, (off_t)pre_len, SEEK_SET) == (off_t)-1) {
        set_err(err, err_size, "%s: seek failed: %s", path, strerror(errno));
        status = CLATTN_ERROR_IO;
        goto done;
    }
    header = malloc((size_t)header_len + 1);
    if (header == NULL) {
        set_err(err, err_size, "%s: out of memory for a %" PRIu64 "-byte header", path,
                header_len);
        status = CLATTN_ERROR_OUT_OF_HOST_MEMORY;
        goto done;
    }
    got = read_full(fd, header, (size_t)header_len);
    if (got < 0) {
        set_err(err, err_size, "%s: read failed: %s", path, strerror(errno));
        status = CLATTN_ERROR_IO;
        goto done;
    }
    if ((uint64_t)got < header_len) {
        set_err(err, err_size, "%s: file ends inside the header (file shrank while reading?)",
                path);
        status = CLATTN_ERROR_NPY_TRUNCATED;
        goto done;
    }
    header[header_len] = '\0';

    npy_header h;
    memset(&h, 0, sizeof h);
    parser ps = {header, header + header_len, {0}};
    if (parse_header(&ps, &h) != 0) {
        size_t at = (size_t)(ps.p - header);
        set_err(err, err_size, "%s: unparsable header at offset %zu: %s", path, at, ps.msg);
        status = CLATTN_ERROR_NPY_FORMAT;
        goto done;
    }
    if (!h.has_descr || !h.has_fortran || !h.has_shape) {
        set_err(err, err_size, "%s: header lacks the key '%s'", path,
                !h.has_descr ? "descr" : !h.has_fortran ? "fortran_order" : "shape");
        status = CLATTN_ERROR_NPY_FORMAT;
        goto done;
    }

    /* dtype */
    clattn_npy_type type = CLATTN_NPY_F32;
    if (h.structured) {
        set_err(err, err_size,
                "%s: structured dtype is not supported (supported: <f4, <f2, <i4, <f8, <i8)",
                path);
        status = CLATTN_ERROR_NPY_DTYPE;
        goto done;
    }
    int dt = h.descr_too_long ? -1 : descr_type(h.descr, &type);
    if (dt == -2) {
        set_err(err, err_size,
                "%s: big-endian dtype '%s' is not supported (the host is little-endian; "
                "convert with astype('<%s'))",
                path, h.descr, h.descr + 1);
        status = CLATTN_ERROR_NPY_DTYPE;
        goto done;
    }
    if (dt != 0) {
        set_err(err, err_size,
                "%s: unsupported dtype '%s%s' (supported: <f4, <f2, <i4, <f8, <i8)", path,
                h.descr, h.descr_too_long ? "..." : "");
        status = CLATTN_ERROR_NPY_DTYPE;
        goto done;
    }
    size_t elsize = clattn_npy_type_size(type);

    /* shape */
    if (h.ndim > CLATTN_NPY_MAX_DIMS) {
        set_err(err, err_size, "%s: shape %s has %d dimensions (at most %d are supported)",
                path, h.shape_text, h.ndim, CLATTN_NPY_MAX_DIMS);
        status = CLATTN_ERROR_NPY_SHAPE;
        goto done;
    }
    if (h.nonint_dim) {
        set_err(err, err_size, "%s: shape %s has a non-integer dimension", path, h.shape_text);
        status = CLATTN_ERROR_NPY_SHAPE;
        goto done;
    }
    if (h.huge_dim) {
        set_err(err, err_size, "%s: shape %s has a dimension that overflows int64", path,
                h.shape_text);
        status = CLATTN_ERROR_NPY_SHAPE;
        goto done;
    }
    if (h.neg_dim) {
        set_err(err, err_size, "%s: shape %s has a negative dimension", path, h.shape_text);
        status = CLATTN_ERROR_NPY_SHAPE;
        goto done;
    }
    size_t count = 0, bytes = 0;
    if (shape_size(h.ndim, h.shape, elsize, &count, &bytes) != 0) {
        set_err(err, err_size, "%s: shape %s of %s overflows the addressable size", path,
                h.shape_text, h.descr);
        status = CLATTN_ERROR_NPY_SHAPE;
        goto done;
    }

    /* data size against the file size, before allocating */
    uint64_t data_off = pre_len + header_len;
    uint64_t avail = file_size - data_off;
    if (avail < (uint64_t)bytes) {
        set_err(err, err_size,
                "%s: truncated: shape %s of %s needs %zu data bytes but the file has %" PRIu64,
                path, h.shape_text, h.descr, bytes, avail);
        status = CLATTN_ERROR_NPY_TRUNCATED;
        goto done;
    }
    if (avail > (uint64_t)bytes) {
        set_err(err, err_size,
                "%s: %" PRIu64 " trailing bytes after the %zu data bytes of shape %s of %s", path,
                avail - (uint64_t)bytes, bytes, h.shape_text, h.descr);
        status = CLATTN_ERROR_NPY_FORMAT;
        goto done;
    }

    if (bytes > 0) {
        data = malloc(bytes);
        if (data == NULL) {
            set_err(err, err_size, "%s: out of memory for %zu data bytes", path, bytes);
            status = CLATTN_ERROR_OUT_OF_HOST_MEMORY;
            goto done;
        }
        got = read_full(fd, data, bytes);
        if (got < 0) {
            set_err(err, err_size, "%s: read failed: %s", path, strerror(errno));
            status = CLATTN_ERROR_IO;
            goto done;
        }
        if ((size_t)got < bytes) {
            set_err(err, err_size,
                    "%s: truncated: read %zu of %zu data bytes (file shrank while reading?)",
                    path, (size_t)got, bytes);
            status = CLATTN_ERROR_NPY_TRUNCATED;
            goto done;
        }
        if (h.fortran && h.ndim > 1) {
            unsigned char *c_order = malloc(bytes);
            if (c_order == NULL) {
                set_err(err, err_size, "%s: out of memory for %zu data bytes", path, bytes);
                status = CLATTN_ERROR_OUT_OF_HOST_MEMORY;
                goto done;
            }
            fortran_to_c(data, c_order, h.ndim, h.shape, count, elsize);
            free(data);
            data = c_order;
        }
    }

    out->type = type;
    out->ndim = h.ndim;
    for (int i = 0; i < h.ndim; ++i)
        out->shape[i] = h.shape[i];
    out->count = count;
    out->data = data;
    data = NULL;

done:
    free(header);
    free(data);
    close(fd);
    if (status != CLATTN_SUCCESS)
        memset(out, 0, sizeof *out);
    return status;
}

/* ------------------------------------------------------------------------ */
/* Saving                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Builds the header numpy.save writes: the dict, GROWTH_AXIS_MAX_DIGITS spare
 * spaces minus the width of the first dimension, then spaces so that the data
 * starts at a multiple of 64, then '\n'. Returns the length of the whole
 * preamble + header (always <= out_size for ndim <= CLATTN_NPY_MAX_DIMS).
 */
static size_t build_header(unsigned char *out, size_t out_size, const char *descr, int ndim,
                           const int64_t *shape)
{
    char shape_text[CLATTN_NPY_MAX_DIMS * 24 + 8];
    format_shape(shape_text, sizeof shape_text, ndim, shape);
    char dict[sizeof shape_text + 96];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     descr, shape_text);
    size_t len = (size_t)n;
    if (ndim > 0) {
        char first[24];
        int w = snprintf(first, sizeof first, "%" PRId64, shape[0]);
        if (w < NPY_GROWTH_AXIS_MAX_DIGITS)
            len += (size_t)(NPY_GROWTH_AXIS_MAX_DIGITS - w);
    }
    size_t hlen = len + 1; /* with '\n' */
    size_t pad = NPY_ALIGN - (10 + hlen) % NPY_ALIGN; /* 1..64, as numpy does */
    size_t header_len = hlen + pad;
    size_t total = 10 + header_len;
    if (total > out_size)
        return 0;
    memcpy(out, NPY_MAGIC, NPY_MAGIC_LEN);
    out[6] = 1;
    out[7] = 0;
    out[8] = (unsigned char)(header_len & 0xff);
    out[9] = (unsigned char)(header_len >> 8);
    memset(out + 10, ' ', header_len);
    memcpy(out + 10, dict, (size_t)n);
    out[total - 1] = '\n';
    return total;
}

CLATTN_API clattn_status clattn_npy_save(const char *path, clattn_npy_type type, int ndim,
                                         const int64_t *shape, const void *data, char *err,
                                         size_t err_size)
{
    if (err != NULL && err_size > 0)
        err[0] = '\0';
    if (path == NULL) {
        set_err(err, err_size, "clattn_npy_save: path is NULL");
        return CLATTN_ERROR_NULL_ARGUMENT;
    }
    if (path[0] == '\0') {
        set_err(err, err_size, "clattn_npy_save: path is empty");
        return CLATTN_ERROR_INVALID_VALUE;
    }
    const char *descr = type_descr(type);
    if (descr == NULL) {
        set_err(err, err_size, "%s: unknown npy type %d", path, (int)type);
        return CLATTN_ERROR_NPY_DTYPE;
    }
    if (ndim < 0) {
        set_err(err, err_size, "%s: ndim %d is negative", path, ndim);
        return CLATTN_ERROR_INVALID_VALUE;
    }
    if (ndim > CLATTN_NPY_MAX_DIMS) {
        set_err(err, err_size, "%s: ndim %d exceeds the maximum of %d", path, ndim,
                CLATTN_NPY_MAX_DIMS);
        return CLATTN_ERROR_NPY_SHAPE;
    }
    if (ndim > 0 && shape == NULL) {
        set_err(err, err_size, "%s: shape is NULL with ndim %d", path, ndim);
        return CLATTN_ERROR_NULL_ARGUMENT;
    }
    char shape_text[CLATTN_NPY_MAX_DIMS * 24 + 8];
    format_shape(shape_text, sizeof shape_text, ndim, shape);
    for (int i = 0; i < ndim; ++i)
        if (shape[i] < 0) {
            set_err(err, err_size, "%s: shape %s has a negative dimension", path, shape_text);
            return CLATTN_ERROR_NPY_SHAPE;
        }
    size_t elsize = clattn_npy_type_size(type);
    size_t count = 0, bytes = 0;
    if (shape_size(ndim, shape, elsize, &count, &bytes) != 0) {
        set_err(err, err_size, "%s: shape %s of %s overflows the addressable size", path,
                shape_text, descr);
        return CLATTN_ERROR_NPY_SHAPE;
    }
    if (data == NULL && count > 0) {
        set_err(err, err_size, "%s: data is NULL for %zu elements", path, count);
        return CLATTN_ERROR_NULL_ARGUMENT;
    }

    unsigned char head[512];
    size_t head_len = build_header(head, sizeof head, descr, ndim, shape);
    if (head_len == 0) {
        set_err(err, err_size, "%s: internal error building the header", path);
        return CLATTN_ERROR_INTERNAL;
    }

    static const char suffix[] = ".tmp.XXXXXX";
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof suffix);
    if (tmp == NULL) {
        set_err(err, err_size, "%s: out of memory", path);
        return CLATTN_ERROR_OUT_OF_HOST_MEMORY;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, suffix, sizeof suffix);

    int fd = mkstemp(tmp);
    if (fd < 0) {
        set_err(err, err_size, "%s: cannot create a temporary file: %s", path, strerror(errno));
        free(tmp);
        return CLATTN_ERROR_IO;
    }
    /* mkstemp creates mode 0600; give the result the usual 0644. */
    (void)fchmod(fd, S_IRUSR | S_IWUSR | S_IRGRP | S_IROTH);
    FILE *f = fdopen(fd, "wb");
    if (f == NULL) {
        set_err(err, err_size, "%s: cannot open %s: %s", path, tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return CLATTN_ERROR_IO;
    }
    int ok = fwrite(head, 1, head_len, f) == head_len;
    if (ok && bytes > 0)
        ok = fwrite(data, 1, bytes, f) == bytes;
    int write_errno = errno;
    if (ok && fflush(f) != 0) {
        ok = 0;
        write_errno = errno;
    }
    if (fclose(f) != 0 && ok) {
        ok = 0;
        write_errno = errno;
    }
    if (!ok) {
        set_err(err, err_size, "%s: write failed: %s", path, strerror(write_errno));
        unlink(tmp);
        free(tmp);
        return CLATTN_ERROR_IO;
    }
    if (rename(tmp, path) != 0) {
        set_err(err, err_size, "%s: cannot rename the temporary file into place: %s", path,
                strerror(errno));
        unlink(tmp);
        free(tmp);
        return CLATTN_ERROR_IO;
    }
    free(tmp);
    return CLATTN_SUCCESS;
}
