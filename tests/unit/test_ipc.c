/* The monitor-worker channel over a real SOCK_SEQPACKET socketpair: round
 * trips, multi-frame messages, descriptor passing, and hostile frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc.h"

static int setup(void **state)
{
    int *sv = malloc(2 * sizeof(int));
    if (!sv || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) != 0)
        return -1;
    /* Large enough for the multi-frame test to be sent before it is read. */
    int sz = 4 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz);
    *state = sv;
    return 0;
}

static int teardown(void **state)
{
    int *sv = *state;
    close(sv[0]);
    close(sv[1]);
    free(sv);
    return 0;
}

static void test_round_trip_with_reader(void **state)
{
    int *sv = *state;
    ipc_writer w;
    char err[256];
    uint8_t type, *payload, u8;
    size_t len, n;
    uint32_t u32;
    uint64_t u64;
    double f;
    const uint8_t *bytes;
    ipc_writer_init(&w);
    ipc_put_u8(&w, 7);
    ipc_put_u32(&w, 0xdeadbeef);
    ipc_put_u64(&w, 0x0123456789abcdefULL);
    ipc_put_f64(&w, 2.5);
    ipc_put_bytes(&w, "hello", 5);
    assert_false(w.failed);
    assert_int_equal(ipc_send(sv[0], 3, w.data, w.len, -1, err, sizeof err), 0);
    assert_int_equal(
        ipc_recv(sv[1], &type, &payload, &len, 1024, 1000, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(type, 3);
    ipc_reader r;
    ipc_reader_init(&r, payload, len);
    assert_int_equal(ipc_get_u8(&r, &u8), 0);
    assert_int_equal(ipc_get_u32(&r, &u32), 0);
    assert_int_equal(ipc_get_u64(&r, &u64), 0);
    assert_int_equal(ipc_get_f64(&r, &f), 0);
    assert_int_equal(ipc_get_bytes(&r, &bytes, &n, 16), 0);
    assert_int_equal(u8, 7);
    assert_int_equal(u32, 0xdeadbeef);
    assert_true(u64 == 0x0123456789abcdefULL);
    assert_true(f == 2.5);
    assert_int_equal(n, 5);
    assert_memory_equal(bytes, "hello", 5);
    assert_true(ipc_reader_done(&r));
    /* Reading past the end fails and stays failed. */
    assert_int_equal(ipc_get_u8(&r, &u8), -1);
    assert_false(ipc_reader_done(&r));
    free(payload);
    ipc_writer_free(&w);
}

static void test_reader_bounds(void **state)
{
    (void)state;
    const uint8_t lie[] = {0xff, 0xff, 0xff, 0x7f, 'a'}; /* claims 2 GiB of bytes */
    const uint8_t *p;
    size_t n;
    ipc_reader r;
    ipc_reader_init(&r, lie, sizeof lie);
    assert_int_equal(ipc_get_bytes(&r, &p, &n, SIZE_MAX), -1);
    ipc_reader_init(&r, lie, sizeof lie);
    assert_int_equal(ipc_get_bytes(&r, &p, &n, 3), -1); /* over the field's own limit */
}

static void test_multi_frame_message(void **state)
{
    int *sv = *state;
    size_t big = 3 * IPC_FRAME_PAYLOAD + 123;
    uint8_t *data = malloc(big), type, *payload;
    size_t len;
    char err[256];
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 31);
    assert_int_equal(ipc_send(sv[0], 9, data, big, -1, err, sizeof err), 0);
    assert_int_equal(ipc_recv(sv[1], &type, &payload, &len, big, 1000, NULL, NULL, err, sizeof err),
                     0);
    assert_int_equal(len, big);
    assert_memory_equal(payload, data, big);
    free(payload);
    /* The same message against a smaller limit is refused. */
    assert_int_equal(ipc_send(sv[0], 9, data, big, -1, err, sizeof err), 0);
    assert_int_equal(
        ipc_recv(sv[1], &type, &payload, &len, big - 1, 1000, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "larger than allowed"));
    free(data);
}

static void test_descriptor_passing(void **state)
{
    int *sv = *state, fd_out;
    char err[256];
    uint8_t type, *payload;
    size_t len;
    int mfd = memfd_create("model", MFD_CLOEXEC);
    assert_true(mfd >= 0);
    assert_int_equal(write(mfd, "GGUF", 4), 4);
    assert_int_equal(ipc_send(sv[0], 1, "x", 1, mfd, err, sizeof err), 0);
    assert_int_equal(
        ipc_recv(sv[1], &type, &payload, &len, 16, 1000, &fd_out, NULL, err, sizeof err), 0);
    assert_true(fd_out >= 0);
    char buf[4];
    assert_int_equal(pread(fd_out, buf, 4, 0), 4);
    assert_memory_equal(buf, "GGUF", 4);
    close(fd_out);
    free(payload);
    /* A descriptor nobody asked for is closed, not leaked. */
    assert_int_equal(ipc_send(sv[0], 1, "x", 1, mfd, err, sizeof err), 0);
    assert_int_equal(ipc_recv(sv[1], &type, &payload, &len, 16, 1000, NULL, NULL, err, sizeof err),
                     0);
    free(payload);
    close(mfd);
}

static void test_timeout_and_eof(void **state)
{
    int *sv = *state;
    char err[256];
    uint8_t type, *payload;
    size_t len;
    ipc_recv_status st;
    assert_int_equal(ipc_recv(sv[1], &type, &payload, &len, 16, 50, NULL, &st, err, sizeof err),
                     -1);
    assert_true(st.timed_out);
    close(sv[0]);
    sv[0] = socket(AF_UNIX, SOCK_SEQPACKET, 0); /* keep teardown's close valid */
    assert_int_equal(ipc_recv(sv[1], &type, &payload, &len, 16, 1000, NULL, &st, err, sizeof err),
                     -1);
    assert_true(st.eof);
    assert_non_null(strstr(err, "closed"));
}

/* Frames a hostile worker might send: each is refused with an error. */
static void test_hostile_frames(void **state)
{
    int *sv = *state;
    char err[256];
    uint8_t type, *payload;
    size_t len;
    const uint8_t bad_version[] = {2, 1, 0, 0, 0, 0, 0, 0};
    const uint8_t short_header[] = {1, 1, 0};
    const uint8_t length_lie[] = {1, 1, 0, 0, 9, 0, 0, 0, 'a'};
    const uint8_t bad_flags[] = {1, 1, 4, 0, 0, 0, 0, 0};
    /* A MORE frame must be full: empty ones could keep us reading forever. */
    const uint8_t short_more[] = {1, 1, 1, 0, 1, 0, 0, 0, 'a'};
    const uint8_t empty_more[] = {1, 1, 1, 0, 0, 0, 0, 0};
    uint8_t *more_then_other_type = calloc(1, IPC_HEADER + IPC_FRAME_PAYLOAD);
    const uint8_t other_type[] = {1, 2, 0, 0, 0, 0, 0, 0};
    assert_non_null(more_then_other_type);
    memcpy(more_then_other_type, (const uint8_t[]){1, 1, 1, 0, 0, 0, 1, 0}, IPC_HEADER);
    const struct {
        const uint8_t *b;
        size_t n;
    } frames[] = {{bad_version, sizeof bad_version}, {short_header, sizeof short_header},
                  {length_lie, sizeof length_lie},   {bad_flags, sizeof bad_flags},
                  {short_more, sizeof short_more},   {empty_more, sizeof empty_more}};
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        assert_int_equal(write(sv[0], frames[i].b, frames[i].n), (ssize_t)frames[i].n);
        assert_int_equal(
            ipc_recv(sv[1], &type, &payload, &len, 64, 1000, NULL, NULL, err, sizeof err), -1);
        assert_non_null(strstr(err, "malformed frame"));
    }
    assert_int_equal(write(sv[0], more_then_other_type, IPC_HEADER + IPC_FRAME_PAYLOAD),
                     (ssize_t)(IPC_HEADER + IPC_FRAME_PAYLOAD));
    assert_int_equal(write(sv[0], other_type, sizeof other_type), (ssize_t)sizeof other_type);
    assert_int_equal(
        ipc_recv(sv[1], &type, &payload, &len, 1 << 20, 1000, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "malformed frame"));
    free(more_then_other_type);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_with_reader, setup, teardown),
        cmocka_unit_test(test_reader_bounds),
        cmocka_unit_test_setup_teardown(test_multi_frame_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_descriptor_passing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_and_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_frames, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
