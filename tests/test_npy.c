/*
 * test_npy.c - .npy reading and writing: round trips of every type and rank,
 * the exact header numpy.save writes, format versions 2.0/3.0, Fortran order,
 * one test per kind of malformed file (each with its own status and a
 * message), argument validation of clattn_npy_save and its no-file-left-behind
 * guarantee.
 */
#include "tests.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* A path in the per-process temp dir; every file of this suite starts "npy_". */
static void tmp_path(char *buf, size_t size, const char *name)
{
    int n = snprintf(buf, size, "%s/npy_%s", test_tmpdir(), name);
    ck_assert_msg(n > 0 && (size_t)n < size, "path too long");
}

static void write_bytes(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
    if (len > 0)
        ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* Reads a whole file into a malloc'ed buffer. */
static unsigned char *read_bytes(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    ck_assert_int_ge(n, 0);
    ck_assert_int_eq(fseek(f, 0, SEEK_SET), 0);
    unsigned char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/*
 * Writes a .npy file by hand: magic, version major.minor, the header length
 * field (2 bytes for major 1, else 4), header text padded with spaces and a
 * '\n' so the data starts at a multiple of 64, then datalen bytes of data
 * (data may be NULL: zeros).
 */
static void write_npy_raw(const char *path, int major, int minor, const char *header,
                          const void *data, size_t datalen)
{
    size_t pre = major == 1 ? 10 : 12;
    size_t hl = strlen(header) + 1;
    size_t total = pre + hl;
    size_t pad = (64 - total % 64) % 64;
    hl += pad;
    size_t size = pre + hl + datalen;
    unsigned char *buf = calloc(size, 1);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = (unsigned char)minor;
    buf[8] = (unsigned char)(hl & 0xff);
    buf[9] = (unsigned char)((hl >> 8) & 0xff);
    if (major != 1) {
        buf[10] = (unsigned char)((hl >> 16) & 0xff);
        buf[11] = (unsigned char)((hl >> 24) & 0xff);
    }
    memset(buf + pre, ' ', hl);
    memcpy(buf + pre, header, strlen(header));
    buf[pre + hl - 1] = '\n';
    if (data != NULL && datalen > 0)
        memcpy(buf + pre + hl, data, datalen);
    write_bytes(path, buf, size);
    free(buf);
}

/* Data offset of a format-1.0 file image. */
static size_t v1_data_offset(const unsigned char *buf)
{
    return 10 + ((size_t)buf[8] | (size_t)buf[9] << 8);
}

static void fill_random(void *data, size_t bytes, uint64_t *state)
{
    unsigned char *p = data;
    for (size_t i = 0; i < bytes; i += 8) {
        uint64_t r = test_rand_u64(state);
        size_t n = bytes - i < 8 ? bytes - i : 8;
        memcpy(p + i, &r, n);
    }
}

static void assert_zeroed(const clattn_npy *a, int line)
{
    ck_assert_msg(a->data == NULL, "line %d: data not NULL after a failed load", line);
    ck_assert_msg(a->ndim == 0 && a->count == 0 && a->type == 0,
                  "line %d: out not zeroed (ndim %d, count %zu)", line, a->ndim, a->count);
    for (int i = 0; i < CLATTN_NPY_MAX_DIMS; ++i)
        ck_assert_msg(a->shape[i] == 0, "line %d: shape[%d] not zeroed", line, i);
}

/*
 * Loads path, expecting status `expected`, a message naming the path and
 * containing `needle` (if not NULL), and a zeroed out.
 */
static void expect_load_fail_at(int line, const char *what, const char *path,
                                clattn_status expected, const char *needle)
{
    clattn_npy a;
    memset(&a, 0xAB, sizeof a);
    char err[512];
    memset(err, 0, sizeof err);
    clattn_status st = clattn_npy_load(path, &a, err, sizeof err);
    ck_assert_msg(st == expected, "line %d %s: %s: status %d, expected %d (message: %s)", line,
                  what, path, (int)st, (int)expected, err);
    ck_assert_msg(err[0] != '\0', "line %d: empty error message", line);
    ck_assert_msg(strchr(err, '\n') == NULL, "line %d: message is not one line: %s", line, err);
    ck_assert_msg(strstr(err, path) != NULL, "line %d: message does not name the path: %s", line,
                  err);
    if (needle != NULL)
        ck_assert_msg(strstr(err, needle) != NULL, "line %d %s: message lacks \"%s\": %s",
                      line, what, needle, err);
    assert_zeroed(&a, line);
    clattn_npy_free(&a); /* a zeroed struct frees to a no-op */
}
#define EXPECT_LOAD_FAIL(path, status, needle) \
    expect_load_fail_at(__LINE__, "", path, status, needle)

static clattn_npy load_ok_at(int line, const char *path)
{
    clattn_npy a;
    memset(&a, 0xAB, sizeof a);
    char err[512] = "";
    clattn_status st = clattn_npy_load(path, &a, err, sizeof err);
    ck_assert_msg(st == CLATTN_SUCCESS, "line %d: load %s failed with %d: %s", line, path,
                  (int)st, err);
    return a;
}
#define LOAD_OK(path) load_ok_at(__LINE__, path)

/* Names of the entries of dir other than "." and ".." that contain part. */
static int count_entries_containing(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "opendir %s: %s", dir, strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (part == NULL || strstr(e->d_name, part) != NULL)
            n++;
    }
    closedir(d);
    return n;
}

static const float k_f32_0to5[6] = {0, 1, 2, 3, 4, 5};

/* ------------------------------------------------------------------------ */
/* Type sizes and free                                                      */
/* ------------------------------------------------------------------------ */

START_TEST(test_type_size)
{
    ck_assert_uint_eq(clattn_npy_type_size(CLATTN_NPY_F32), 4);
    ck_assert_uint_eq(clattn_npy_type_size(CLATTN_NPY_F16), 2);
    ck_assert_uint_eq(clattn_npy_type_size(CLATTN_NPY_I32), 4);
    ck_assert_uint_eq(clattn_npy_type_size(CLATTN_NPY_F64), 8);
    ck_assert_uint_eq(clattn_npy_type_size(CLATTN_NPY_I64), 8);
    ck_assert_uint_eq(clattn_npy_type_size(CLATTN_NPY_TYPE_COUNT_), 0);
    ck_assert_uint_eq(clattn_npy_type_size((clattn_npy_type)-1), 0);
    ck_assert_uint_eq(clattn_npy_type_size((clattn_npy_type)1000), 0);
}
END_TEST

START_TEST(test_free)
{
    clattn_npy_free(NULL);
    clattn_npy a;
    memset(&a, 0, sizeof a);
    a.data = malloc(16);
    a.ndim = 2;
    a.count = 4;
    a.shape[0] = 2;
    a.shape[1] = 2;
    clattn_npy_free(&a);
    assert_zeroed(&a, __LINE__);
    clattn_npy_free(&a); /* twice is harmless */
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Round trips                                                              */
/* ------------------------------------------------------------------------ */

/* _i = type; every rank 0..4, with and without a zero-size dimension. */
START_TEST(test_round_trip)
{
    clattn_npy_type type = (clattn_npy_type)_i;
    size_t elsize = clattn_npy_type_size(type);
    uint64_t state = test_seed() ^ (0x9e3779b97f4a7c15ull * (uint64_t)(_i + 1));
    char path[512];
    tmp_path(path, sizeof path, "round_trip.npy");

    for (int ndim = 0; ndim <= 4; ++ndim) {
        for (int zero = 0; zero <= (ndim > 0 ? 1 : 0); ++zero) {
            int64_t shape[4];
            size_t count = 1;
            for (int d = 0; d < ndim; ++d) {
                shape[d] = 1 + (int64_t)(test_rand_u64(&state) % 5);
                if (d == 0 && ndim >= 2)
                    shape[d] += 1; /* at least 2 elements: never a constant array */
                count *= (size_t)shape[d];
            }
            if (zero) {
                shape[(int)(test_rand_u64(&state) % (uint64_t)ndim)] = 0;
                count = 0;
            }
            size_t bytes = count * elsize;
            void *data = malloc(bytes > 0 ? bytes : 1);
            ck_assert_ptr_nonnull(data);
            fill_random(data, bytes, &state);

            char err[512] = "";
            clattn_status st = clattn_npy_save(path, type, ndim, shape, data, err, sizeof err);
            ck_assert_msg(st == CLATTN_SUCCESS, "save type %d ndim %d: %d %s", _i, ndim, (int)st,
                          err);

            /* file layout: 64-byte aligned data, header ends with '\n', exact size */
            size_t flen;
            unsigned char *file = read_bytes(path, &flen);
            ck_assert_int_eq(memcmp(file, "\x93NUMPY\x01\x00", 8), 0);
            size_t off = v1_data_offset(file);
            ck_assert_uint_eq(off % 64, 0);
            ck_assert_int_eq(file[off - 1], '\n');
            ck_assert_uint_eq(flen, off + bytes);
            if (bytes > 0)
                ck_assert_int_eq(memcmp(file + off, data, bytes), 0);
            free(file);

            clattn_npy a = LOAD_OK(path);
            ck_assert_int_eq(a.type, type);
            ck_assert_int_eq(a.ndim, ndim);
            ck_assert_uint_eq(a.count, count);
            for (int d = 0; d < ndim; ++d)
                ck_assert_int_eq(a.shape[d], shape[d]);
            for (int d = ndim; d < CLATTN_NPY_MAX_DIMS; ++d)
                ck_assert_int_eq(a.shape[d], 0);
            if (bytes > 0) {
                ck_assert_ptr_nonnull(a.data);
                ck_assert_int_eq(memcmp(a.data, data, bytes), 0);
            }
            clattn_npy_free(&a);
            ck_assert_ptr_null(a.data);
            free(data);
        }
    }
    unlink(path);
}
END_TEST

START_TEST(test_round_trip_max_dims)
{
    char path[512];
    tmp_path(path, sizeof path, "max_dims.npy");
    int64_t shape[CLATTN_NPY_MAX_DIMS] = {2, 1, 3, 1, 2, 1, 1, 2};
    int32_t data[24];
    for (int i = 0; i < 24; ++i)
        data[i] = i * 7 - 30;
    char err[512] = "";
    ck_assert_int_eq(clattn_npy_save(path, CLATTN_NPY_I32, CLATTN_NPY_MAX_DIMS, shape, data, err,
                                     sizeof err),
                     CLATTN_SUCCESS);
    clattn_npy a = LOAD_OK(path);
    ck_assert_int_eq(a.ndim, CLATTN_NPY_MAX_DIMS);
    ck_assert_uint_eq(a.count, 24);
    ck_assert_int_eq(memcmp(a.shape, shape, sizeof shape), 0);
    ck_assert_int_eq(memcmp(a.data, data, sizeof data), 0);
    clattn_npy_free(&a);
    unlink(path);
}
END_TEST

START_TEST(test_save_overwrites)
{
    char path[512];
    tmp_path(path, sizeof path, "overwrite.npy");
    int64_t s1[1] = {6}, s2[2] = {1, 2};
    double d2[2] = {-1.5, 2.25};
    ck_assert_int_eq(clattn_npy_save(path, CLATTN_NPY_F32, 1, s1, k_f32_0to5, NULL, 0),
                     CLATTN_SUCCESS);
    ck_assert_int_eq(clattn_npy_save(path, CLATTN_NPY_F64, 2, s2, d2, NULL, 0), CLATTN_SUCCESS);
    clattn_npy a = LOAD_OK(path);
    ck_assert_int_eq(a.type, CLATTN_NPY_F64);
    ck_assert_int_eq(a.ndim, 2);
    ck_assert_int_eq(memcmp(a.data, d2, sizeof d2), 0);
    clattn_npy_free(&a);
    unlink(path);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Header layout                                                            */
/* ------------------------------------------------------------------------ */

/* What numpy.save(np.arange(6, dtype='<f4').reshape(2, 3)) writes. */
START_TEST(test_header_exact_f32_2x3)
{
    char path[512];
    tmp_path(path, sizeof path, "header_exact.npy");
    int64_t shape[2] = {2, 3};
    ck_assert_int_eq(clattn_npy_save(path, CLATTN_NPY_F32, 2, shape, k_f32_0to5, NULL, 0),
                     CLATTN_SUCCESS);

    unsigned char expect[128];
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    memcpy(expect, "\x93NUMPY\x01\x00", 8);
    expect[8] = 118;
    expect[9] = 0;
    memset(expect + 10, ' ', 118);
    memcpy(expect + 10, dict, strlen(dict));
    expect[127] = '\n';

    size_t flen;
    unsigned char *file = read_bytes(path, &flen);
    ck_assert_uint_eq(flen, 128 + sizeof k_f32_0to5);
    ck_assert_uint_eq(v1_data_offset(file), 128);
    for (size_t i = 0; i < 128; ++i)
        ck_assert_msg(file[i] == expect[i], "header byte %zu is 0x%02x, expected 0x%02x", i,
                      file[i], expect[i]);
    ck_assert_int_eq(memcmp(file + 128, k_f32_0to5, sizeof k_f32_0to5), 0);
    free(file);
    unlink(path);
}
END_TEST

/* Shape tuples are written as Python does: (), (5,), (2, 3, 4). */
START_TEST(test_header_shape_tuples)
{
    static const struct {
        int ndim;
        int64_t shape[3];
        const char *text;
    } cases[] = {
        {0, {0}, "'shape': (), }"},
        {1, {5}, "'shape': (5,), }"},
        {1, {0}, "'shape': (0,), }"},
        {3, {2, 3, 4}, "'shape': (2, 3, 4), }"},
    };
    char path[512];
    tmp_path(path, sizeof path, "tuples.npy");
    double data[24] = {0};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
        ck_assert_int_eq(clattn_npy_save(path, CLATTN_NPY_F64, cases[c].ndim, cases[c].shape,
                                         data, NULL, 0),
                         CLATTN_SUCCESS);
        size_t flen;
        unsigned char *file = read_bytes(path, &flen);
        size_t off = v1_data_offset(file);
        ck_assert_uint_eq(off % 64, 0);
        char *hdr = malloc(off - 10 + 1);
        ck_assert_ptr_nonnull(hdr);
        memcpy(hdr, file + 10, off - 10);
        hdr[off - 10] = '\0';
        ck_assert_msg(strncmp(hdr, "{'descr': '<f8', 'fortran_order': False, ", 41) == 0,
                      "header: %s", hdr);
        ck_assert_msg(strstr(hdr, cases[c].text) != NULL, "header lacks %s: %s", cases[c].text,
                      hdr);
        /* after the dict only spaces, then exactly one '\n' at the end */
        char *end = strchr(hdr, '}');
        ck_assert_ptr_nonnull(end);
        for (char *p = end + 1; p < hdr + (off - 10) - 1; ++p)
            ck_assert_int_eq(*p, ' ');
        ck_assert_int_eq(hdr[off - 11], '\n');
        free(hdr);
        free(file);
    }
    unlink(path);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Reading hand-made files                                                  */
/* ------------------------------------------------------------------------ */

static void check_f32_2x3(const char *path, clattn_npy_type type)
{
    clattn_npy a = LOAD_OK(path);
    ck_assert_int_eq(a.type, type);
    ck_assert_int_eq(a.ndim, 2);
    ck_assert_int_eq(a.shape[0], 2);
    ck_assert_int_eq(a.shape[1], 3);
    ck_assert_uint_eq(a.count, 6);
    ck_assert_int_eq(memcmp(a.data, k_f32_0to5, sizeof k_f32_0to5), 0);
    clattn_npy_free(&a);
}

START_TEST(test_version_2_and_3)
{
    char path[512];
    tmp_path(path, sizeof path, "v2.npy");
    const char *h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    write_npy_raw(path, 2, 0, h, k_f32_0to5, sizeof k_f32_0to5);
    size_t flen;
    unsigned char *file = read_bytes(path, &flen);
    ck_assert_int_eq(memcmp(file, "\x93NUMPY\x02\x00", 8), 0); /* really a 2.0 file */
    free(file);
    check_f32_2x3(path, CLATTN_NPY_F32);
    write_npy_raw(path, 3, 0, h, k_f32_0to5, sizeof k_f32_0to5);
    check_f32_2x3(path, CLATTN_NPY_F32);
    unlink(path);
}
END_TEST

/* Key order, quotes, spacing, trailing commas, byte-order prefixes, 2L. */
START_TEST(test_header_variants)
{
    static const char *headers[] = {
        "{\"shape\": (2, 3), \"fortran_order\": False, \"descr\": \"<f4\"}",
        "{'descr':'<f4','fortran_order':False,'shape':(2,3),}",
        "{ 'shape' : ( 2 , 3 , ) , 'descr' : '|f4' , 'fortran_order' : False }",
        "{'fortran_order': False, 'shape': (2L, 3L), 'descr': '=f4', }",
        "{'descr': 'f4', 'fortran_order': False, 'shape': (+2, 3)}",
        "\n\t{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }  ",
    };
    char path[512];
    tmp_path(path, sizeof path, "variants.npy");
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; ++i) {
        write_npy_raw(path, 1, 0, headers[i], k_f32_0to5, sizeof k_f32_0to5);
        check_f32_2x3(path, CLATTN_NPY_F32);
    }
    /* no padding at all (header length not a multiple of 16/64) */
    const char *h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}";
    size_t hl = strlen(h);
    unsigned char buf[256];
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)hl;
    buf[9] = 0;
    memcpy(buf + 10, h, hl);
    memcpy(buf + 10 + hl, k_f32_0to5, sizeof k_f32_0to5);
    write_bytes(path, buf, 10 + hl + sizeof k_f32_0to5);
    check_f32_2x3(path, CLATTN_NPY_F32);
    unlink(path);
}
END_TEST

START_TEST(test_scalar_and_empty_files)
{
    char path[512];
    tmp_path(path, sizeof path, "scalar.npy");
    int64_t v = -1234567890123ll;
    write_npy_raw(path, 1, 0, "{'descr': '<i8', 'fortran_order': False, 'shape': (), }", &v,
                  sizeof v);
    clattn_npy a = LOAD_OK(path);
    ck_assert_int_eq(a.type, CLATTN_NPY_I64);
    ck_assert_int_eq(a.ndim, 0);
    ck_assert_uint_eq(a.count, 1);
    ck_assert_int_eq(*(int64_t *)a.data, v);
    clattn_npy_free(&a);

    write_npy_raw(path, 1, 0, "{'descr': '<f2', 'fortran_order': True, 'shape': (3, 0, 2), }",
                  NULL, 0);
    a = LOAD_OK(path);
    ck_assert_int_eq(a.type, CLATTN_NPY_F16);
    ck_assert_int_eq(a.ndim, 3);
    ck_assert_int_eq(a.shape[1], 0);
    ck_assert_uint_eq(a.count, 0);
    clattn_npy_free(&a);
    unlink(path);
}
END_TEST

START_TEST(test_fortran_order)
{
    char path[512];
    tmp_path(path, sizeof path, "fortran.npy");
    write_npy_raw(path, 1, 0, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
                  k_f32_0to5, sizeof k_f32_0to5);
    clattn_npy a = LOAD_OK(path);
    ck_assert_int_eq(a.ndim, 2);
    ck_assert_int_eq(a.shape[0], 2);
    ck_assert_int_eq(a.shape[1], 3);
    static const float expect[6] = {0, 2, 4, 1, 3, 5}; /* [[0,2,4],[1,3,5]] */
    const float *f = a.data;
    for (int i = 0; i < 6; ++i)
        ck_assert_msg(f[i] == expect[i], "element %d is %g, expected %g", i, (double)f[i],
                      (double)expect[i]);
    clattn_npy_free(&a);

    /* 3-D: element [i][j][k] of a Fortran (2, 3, 4) array sits at i + 2j + 6k */
    int64_t fdata[24];
    for (int i = 0; i < 24; ++i)
        fdata[i] = i;
    write_npy_raw(path, 1, 0, "{'descr': '<i8', 'fortran_order': True, 'shape': (2, 3, 4), }",
                  fdata, sizeof fdata);
    a = LOAD_OK(path);
    const int64_t *c = a.data;
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
            for (int k = 0; k < 4; ++k)
                ck_assert_int_eq(c[(i * 3 + j) * 4 + k], i + 2 * j + 6 * k);
    clattn_npy_free(&a);

    /* 1-D Fortran order is the same as C order */
    write_npy_raw(path, 1, 0, "{'descr': '<f4', 'fortran_order': True, 'shape': (6,), }",
                  k_f32_0to5, sizeof k_f32_0to5);
    a = LOAD_OK(path);
    ck_assert_int_eq(memcmp(a.data, k_f32_0to5, sizeof k_f32_0to5), 0);
    clattn_npy_free(&a);
    unlink(path);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Malformed files                                                          */
/* ------------------------------------------------------------------------ */

/* Well-formed preamble, bad header or data: one case per iteration. */
static const struct bad_case {
    const char *name;
    const char *header;
    size_t datalen;
    clattn_status status;
    const char *needle;
} k_bad[] = {
    {"garbage header", "this is not a dict at all", 24, CLATTN_ERROR_NPY_FORMAT, "header"},
    {"unterminated dict", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ", 24,
     CLATTN_ERROR_NPY_FORMAT, "header"},
    {"missing shape", "{'descr': '<f4', 'fortran_order': False, }", 24,
     CLATTN_ERROR_NPY_FORMAT, "'shape'"},
    {"missing descr", "{'fortran_order': False, 'shape': (2, 3), }", 24,
     CLATTN_ERROR_NPY_FORMAT, "'descr'"},
    {"missing fortran_order", "{'descr': '<f4', 'shape': (2, 3), }", 24,
     CLATTN_ERROR_NPY_FORMAT, "'fortran_order'"},
    {"unknown key", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1, }", 24,
     CLATTN_ERROR_NPY_FORMAT, "'x'"},
    {"duplicate key", "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}",
     24, CLATTN_ERROR_NPY_FORMAT, "duplicate"},
    {"fortran_order not bool", "{'descr': '<f4', 'fortran_order': 'no', 'shape': (2, 3), }", 24,
     CLATTN_ERROR_NPY_FORMAT, "fortran_order"},
    {"shape not a tuple", "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }", 24,
     CLATTN_ERROR_NPY_FORMAT, "shape"},
    {"shape (6) is an int", "{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", 24,
     CLATTN_ERROR_NPY_FORMAT, "shape"},
    {"text after dict", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } junk", 24,
     CLATTN_ERROR_NPY_FORMAT, "after"},
    {"complex dtype", "{'descr': '<c8', 'fortran_order': False, 'shape': (2, 3), }", 48,
     CLATTN_ERROR_NPY_DTYPE, "'<c8'"},
    {"object dtype", "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", 16,
     CLATTN_ERROR_NPY_DTYPE, "'|O'"},
    {"unicode dtype", "{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }", 24,
     CLATTN_ERROR_NPY_DTYPE, "'<U3'"},
    {"unsigned dtype", "{'descr': '<u4', 'fortran_order': False, 'shape': (2, 3), }", 24,
     CLATTN_ERROR_NPY_DTYPE, "'<u4'"},
    {"structured dtype",
     "{'descr': [('a', '<f4'), ('b', '<i4', (2,))], 'fortran_order': False, 'shape': (2,), }",
     24, CLATTN_ERROR_NPY_DTYPE, "structured"},
    {"big-endian f4", "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24,
     CLATTN_ERROR_NPY_DTYPE, "big-endian"},
    {"big-endian i8", "{'descr': '>i8', 'fortran_order': False, 'shape': (3,), }", 24,
     CLATTN_ERROR_NPY_DTYPE, "big-endian"},
    {"negative dim", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, -1), }", 0,
     CLATTN_ERROR_NPY_SHAPE, "shape (3, -1) has a negative dimension"},
    {"non-integer dim", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2.5), }", 20,
     CLATTN_ERROR_NPY_SHAPE, "non-integer"},
    {"None dim", "{'descr': '<f4', 'fortran_order': False, 'shape': (None,), }", 4,
     CLATTN_ERROR_NPY_SHAPE, "non-integer"},
    {"dim overflows int64",
     "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 4,
     CLATTN_ERROR_NPY_SHAPE, "overflow"},
    {"dim 2^62", "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,), }",
     16, CLATTN_ERROR_NPY_SHAPE, "overflow"},
    {"dims 2^31 x 2^31 x 2^31",
     "{'descr': '<i8', 'fortran_order': False, "
     "'shape': (2147483648, 2147483648, 2147483648), }",
     16, CLATTN_ERROR_NPY_SHAPE, "overflow"},
    {"9 dims", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }",
     4, CLATTN_ERROR_NPY_SHAPE, "9 dimensions"},
    {"truncated data", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20,
     CLATTN_ERROR_NPY_TRUNCATED, "truncated"},
    {"no data", "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 0,
     CLATTN_ERROR_NPY_TRUNCATED, "truncated"},
    {"shape bigger than file",
     "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }", 24,
     CLATTN_ERROR_NPY_TRUNCATED, "truncated"},
    {"trailing bytes", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 28,
     CLATTN_ERROR_NPY_FORMAT, "trailing"},
    {"trailing bytes after empty array",
     "{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }", 1,
     CLATTN_ERROR_NPY_FORMAT, "trailing"},
};

START_TEST(test_bad_header_case)
{
    const struct bad_case *c = &k_bad[_i];
    char path[512];
    tmp_path(path, sizeof path, "bad_case.npy");
    unsigned char *data = calloc(c->datalen + 1, 1);
    ck_assert_ptr_nonnull(data);
    write_npy_raw(path, 1, 0, c->header, data, c->datalen);
    free(data);
    expect_load_fail_at(__LINE__, c->name, path, c->status, c->needle);
    unlink(path);
}
END_TEST

START_TEST(test_missing_file)
{
    char path[512];
    tmp_path(path, sizeof path, "does_not_exist.npy");
    unlink(path);
    EXPECT_LOAD_FAIL(path, CLATTN_ERROR_IO, strerror(ENOENT));
}
END_TEST

START_TEST(test_directory_is_io_error)
{
    EXPECT_LOAD_FAIL(test_tmpdir(), CLATTN_ERROR_IO, NULL);
}
END_TEST

START_TEST(test_empty_file)
{
    char path[512];
    tmp_path(path, sizeof path, "empty.npy");
    write_bytes(path, "", 0);
    EXPECT_LOAD_FAIL(path, CLATTN_ERROR_NPY_FORMAT, "empty");
    unlink(path);
}
END_TEST

START_TEST(test_truncated_preamble)
{
    char path[512];
    tmp_path(path, sizeof path, "short_preamble.npy");
    write_bytes(path, "\x93NUMPY\x01", 7);
    EXPECT_LOAD_FAIL(path, CLATTN_ERROR_NPY_TRUNCATED, NULL);
    write_bytes(path, "\x93NUM", 4);
    EXPECT_LOAD_FAIL(path, CLATTN_ERROR_NPY_TRUNCATED, NULL);
    write_bytes(path, "\x93NUMPY\x02\x00\x10\x00", 10); /* 2.0 needs a 4-byte length */
    EXPECT_LOAD_FAIL(path, CLATTN_ERROR_NPY_TRUNCATED, NULL);
    unlink(path);
}
END_TEST

START_TEST(test_bad_magic)
{
    char path[512];
    tmp_path(path, sizeof path, "bad_magic.npy");
    char buf[128];
    memset(buf, ' ', sizeof buf);
    memcpy(buf, "\x93NUMPX\x01\x00\x76\x00", 10);
    write_bytes(path, buf, sizeof buf);
    EXPECT_LOAD_FAIL(path, CLATTN_ERROR_NPY_FORMAT, "magic");
    write_bytes(path, "hello, this is a text file\n", 27);
    EXPECT_LOAD_FAIL(path, CLATTN_ERROR_NPY_FORMAT, "magic");
    unlink(path);
}
END_TEST

START_TEST(test_bad_version)
{
    char path[512];
    tmp_path(path, sizeof path, "bad_version.npy");
    const char *h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    write_npy_raw(path, 9, 0, h, k_f32_0to5, sizeof k_f32_0to5);
    EXPECT_LOAD_FAIL(path, CLATTN_ERROR_NPY_FORMAT, "9.0");
    write_npy_raw(path, 1, 1, h, k_f32_0to5, sizeof k_f32_0to5);
    EXPECT_LOAD_FAIL(path, CLATTN_ERROR_NPY_FORMAT, "1.1");
    write_npy_raw(path, 0, 0, h, k_f32_0to5, sizeof k_f32_0to5);
    EXPECT_LOAD_FAIL(path, CLATTN_ERROR_NPY_FORMAT, "0.0");
    unlink(path);
}
END_TEST

START_TEST(test_header_length_beyond_file)
{
    char path[512];
    tmp_path(path, sizeof path, "hdr_beyond.npy");
    const char *h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n";
    unsigned char buf[128];
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = 0xe8; /* 1000 */
    buf[9] = 0x03;
    memcpy(buf + 10, h, strlen(h));
    write_bytes(path, buf, 10 + strlen(h));
    EXPECT_LOAD_FAIL(path, CLATTN_ERROR_NPY_FORMAT, "beyond");

    /* version 2.0 with a 4 GiB header length */
    memcpy(buf, "\x93NUMPY\x02\x00\xff\xff\xff\xff", 12);
    memcpy(buf + 12, h, strlen(h));
    write_bytes(path, buf, 12 + strlen(h));
    EXPECT_LOAD_FAIL(path, CLATTN_ERROR_NPY_FORMAT, "beyond");

    /* zero header length */
    memcpy(buf, "\x93NUMPY\x01\x00\x00\x00", 10);
    write_bytes(path, buf, 10);
    EXPECT_LOAD_FAIL(path, CLATTN_ERROR_NPY_FORMAT, NULL);
    unlink(path);
}
END_TEST

START_TEST(test_load_null_arguments)
{
    clattn_npy a;
    memset(&a, 0xAB, sizeof a);
    char err[256] = "";
    ck_assert_int_eq(clattn_npy_load(NULL, &a, err, sizeof err), CLATTN_ERROR_NULL_ARGUMENT);
    ck_assert_str_ne(err, "");
    assert_zeroed(&a, __LINE__);
    char path[512];
    tmp_path(path, sizeof path, "whatever.npy");
    err[0] = '\0';
    ck_assert_int_eq(clattn_npy_load(path, NULL, err, sizeof err), CLATTN_ERROR_NULL_ARGUMENT);
    ck_assert_str_ne(err, "");
}
END_TEST

/* err may be NULL or tiny; messages are truncated, never overrun. */
START_TEST(test_error_buffer_sizes)
{
    char path[512];
    tmp_path(path, sizeof path, "does_not_exist_either.npy");
    clattn_npy a;
    ck_assert_int_eq(clattn_npy_load(path, &a, NULL, 0), CLATTN_ERROR_IO);
    ck_assert_int_eq(clattn_npy_load(path, &a, NULL, 100), CLATTN_ERROR_IO);
    char small[9];
    memset(small, 'z', sizeof small);
    ck_assert_int_eq(clattn_npy_load(path, &a, small, 8), CLATTN_ERROR_IO);
    ck_assert_uint_eq(strlen(small), 7);
    ck_assert_int_eq(small[8], 'z');
    char one = 'z';
    ck_assert_int_eq(clattn_npy_load(path, &a, &one, 1), CLATTN_ERROR_IO);
    ck_assert_int_eq(one, '\0');
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Saving: validation and failures                                          */
/* ------------------------------------------------------------------------ */

START_TEST(test_save_bad_args)
{
    char path[512];
    tmp_path(path, sizeof path, "bad_args.npy");
    unlink(path);
    int64_t s23[2] = {2, 3};
    int64_t neg[2] = {2, -3};
    int64_t big[3] = {INT64_C(1) << 31, INT64_C(1) << 31, INT64_C(1) << 31};
    int64_t huge[1] = {INT64_C(1) << 62};
    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    int64_t zero[2] = {0, 3};
    static const struct {
        int use_path; /* 0: NULL, 1: path, 2: "" */
        int type, ndim;
        int shape_kind; /* 0 NULL, 1 s23, 2 neg, 3 big, 4 huge, 5 nine */
        int data;
        clattn_status status;
    } cases[] = {
        {0, CLATTN_NPY_F32, 2, 1, 1, CLATTN_ERROR_NULL_ARGUMENT},
        {2, CLATTN_NPY_F32, 2, 1, 1, CLATTN_ERROR_INVALID_VALUE},
        {1, CLATTN_NPY_TYPE_COUNT_, 2, 1, 1, CLATTN_ERROR_NPY_DTYPE},
        {1, -1, 2, 1, 1, CLATTN_ERROR_NPY_DTYPE},
        {1, CLATTN_NPY_F32, -1, 1, 1, CLATTN_ERROR_INVALID_VALUE},
        {1, CLATTN_NPY_F32, 9, 5, 1, CLATTN_ERROR_NPY_SHAPE},
        {1, CLATTN_NPY_F32, 2, 0, 1, CLATTN_ERROR_NULL_ARGUMENT},
        {1, CLATTN_NPY_F32, 2, 2, 1, CLATTN_ERROR_NPY_SHAPE},
        {1, CLATTN_NPY_F64, 3, 3, 1, CLATTN_ERROR_NPY_SHAPE},
        {1, CLATTN_NPY_F32, 1, 4, 1, CLATTN_ERROR_NPY_SHAPE},
        {1, CLATTN_NPY_F32, 2, 1, 0, CLATTN_ERROR_NULL_ARGUMENT},
    };
    const int64_t *shapes[] = {NULL, s23, neg, big, huge, nine};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        const char *p = cases[i].use_path == 0 ? NULL : cases[i].use_path == 1 ? path : "";
        char err[512] = "";
        clattn_status st =
            clattn_npy_save(p, (clattn_npy_type)cases[i].type, cases[i].ndim,
                            shapes[cases[i].shape_kind], cases[i].data ? k_f32_0to5 : NULL, err,
                            sizeof err);
        ck_assert_msg(st == cases[i].status, "case %zu: status %d, expected %d (%s)", i, (int)st,
                      (int)cases[i].status, err);
        ck_assert_msg(err[0] != '\0', "case %zu: empty message", i);
        ck_assert_msg(!file_exists(path), "case %zu: a file was written", i);
    }
    ck_assert_int_eq(count_entries_containing(test_tmpdir(), "npy_bad_args"), 0);

    /* NULL data is fine when there are no elements; so are NULL shape with ndim 0 */
    ck_assert_int_eq(clattn_npy_save(path, CLATTN_NPY_F32, 2, zero, NULL, NULL, 0),
                     CLATTN_SUCCESS);
    clattn_npy a = LOAD_OK(path);
    ck_assert_uint_eq(a.count, 0);
    ck_assert_int_eq(a.shape[0], 0);
    ck_assert_int_eq(a.shape[1], 3);
    clattn_npy_free(&a);
    float one = 42.0f;
    ck_assert_int_eq(clattn_npy_save(path, CLATTN_NPY_F32, 0, NULL, &one, NULL, 0),
                     CLATTN_SUCCESS);
    a = LOAD_OK(path);
    ck_assert_int_eq(a.ndim, 0);
    ck_assert_uint_eq(a.count, 1);
    ck_assert(*(float *)a.data == 42.0f);
    clattn_npy_free(&a);
    unlink(path);
}
END_TEST

START_TEST(test_save_missing_directory)
{
    char dir[512], path[600];
    tmp_path(dir, sizeof dir, "no_such_dir");
    rmdir(dir);
    snprintf(path, sizeof path, "%s/a.npy", dir);
    char err[1024] = "";
    int64_t shape[1] = {6};
    clattn_status st = clattn_npy_save(path, CLATTN_NPY_F32, 1, shape, k_f32_0to5, err, sizeof err);
    ck_assert_msg(st == CLATTN_ERROR_IO, "status %d (%s)", (int)st, err);
    ck_assert_msg(strstr(err, path) != NULL, "message does not name the path: %s", err);
    ck_assert_msg(strstr(err, strerror(ENOENT)) != NULL, "message lacks strerror: %s", err);
    ck_assert(!file_exists(path));
    ck_assert(!file_exists(dir));
}
END_TEST

/* A save that fails after the temporary file exists (rename over a directory). */
START_TEST(test_failed_save_leaves_no_temp_file)
{
    char dir[512], target[600], good[600];
    tmp_path(dir, sizeof dir, "save_fail_dir");
    ck_assert_msg(mkdir(dir, 0700) == 0 || errno == EEXIST, "mkdir %s: %s", dir, strerror(errno));
    snprintf(target, sizeof target, "%s/target", dir);
    snprintf(good, sizeof good, "%s/good.npy", dir);
    ck_assert_msg(mkdir(target, 0700) == 0 || errno == EEXIST, "mkdir: %s", strerror(errno));

    int64_t shape[2] = {2, 3};
    char err[1024] = "";
    clattn_status st =
        clattn_npy_save(target, CLATTN_NPY_F32, 2, shape, k_f32_0to5, err, sizeof err);
    ck_assert_msg(st == CLATTN_ERROR_IO, "status %d (%s)", (int)st, err);
    ck_assert_int_eq(count_entries_containing(dir, ".tmp."), 0);
    ck_assert_int_eq(count_entries_containing(dir, NULL), 1); /* only "target" */
    ck_assert_msg(strstr(err, target) != NULL, "message does not name the path: %s", err);

    /* a successful save leaves exactly the file */
    ck_assert_int_eq(clattn_npy_save(good, CLATTN_NPY_F32, 2, shape, k_f32_0to5, NULL, 0),
                     CLATTN_SUCCESS);
    ck_assert_int_eq(count_entries_containing(dir, NULL), 2);
    ck_assert_int_eq(count_entries_containing(dir, ".tmp."), 0);
    check_f32_2x3(good, CLATTN_NPY_F32);

    unlink(good);
    rmdir(target);
    rmdir(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */

Suite *suite_npy(void)
{
    Suite *s = suite_create("npy");

    TCase *tc = tcase_create("basics");
    tcase_add_test(tc, test_type_size);
    tcase_add_test(tc, test_free);
    suite_add_tcase(s, tc);

    tc = tcase_create("round_trip");
    tcase_add_loop_test(tc, test_round_trip, 0, CLATTN_NPY_TYPE_COUNT_);
    tcase_add_test(tc, test_round_trip_max_dims);
    tcase_add_test(tc, test_save_overwrites);
    tcase_add_test(tc, test_header_exact_f32_2x3);
    tcase_add_test(tc, test_header_shape_tuples);
    suite_add_tcase(s, tc);

    tc = tcase_create("read");
    tcase_add_test(tc, test_version_2_and_3);
    tcase_add_test(tc, test_header_variants);
    tcase_add_test(tc, test_scalar_and_empty_files);
    tcase_add_test(tc, test_fortran_order);
    suite_add_tcase(s, tc);

    tc = tcase_create("malformed");
    tcase_add_loop_test(tc, test_bad_header_case, 0, (int)(sizeof k_bad / sizeof k_bad[0]));
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_directory_is_io_error);
    tcase_add_test(tc, test_empty_file);
    tcase_add_test(tc, test_truncated_preamble);
    tcase_add_test(tc, test_bad_magic);
    tcase_add_test(tc, test_bad_version);
    tcase_add_test(tc, test_header_length_beyond_file);
    tcase_add_test(tc, test_load_null_arguments);
    tcase_add_test(tc, test_error_buffer_sizes);
    suite_add_tcase(s, tc);

    tc = tcase_create("save");
    tcase_add_test(tc, test_save_bad_args);
    tcase_add_test(tc, test_save_missing_directory);
    tcase_add_test(tc, test_failed_save_leaves_no_temp_file);
    suite_add_tcase(s, tc);

    return s;
}
