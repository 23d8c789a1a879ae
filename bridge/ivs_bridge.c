/*
 * ivs_bridge.c - the C shim between Tencent's IoT Video device SDK and the iotvideo-signaling
 * daemon (frame protocol: docs/bridge-protocol.md; API: ivs_bridge.h).
 *
 * Theory of operation
 *
 * One background thread (io_main) owns the socket. It connects (non-blocking), sends HELLO, waits
 * for WELCOME, and from then on polls the socket and a wake pipe: it reads and dispatches the
 * daemon's frames, and writes what the SDK threads queued. Any failure closes the socket, answers
 * every waiting caller, and the thread reconnects after a backoff (50 ms doubling to 1 s, reset
 * by a WELCOME).
 *
 * SDK threads never touch the socket. Under the one mutex (b->mu) they append frames to ONE FIFO,
 * b->out, so the daemon sees events and requests in the order they happened:
 *   - requests (COMMAND, STREAM_REQUEST): take a waiter slot (id = slot index | per-slot sequence,
 *     never 0, never reused while waiting), append the frame, and wait on the slot's own condition
 *     variable until the reader answers the slot, the link drops (link_down fails every waiting
 *     slot) or their deadline passes. The request frames queued are capped at OUT_CAP bytes: over
 *     it, the frames of requests that no longer wait are dropped (filter_queue), and if that is not
 *     enough the request is answered "busy";
 *   - events: update the state table (roles, viewers, talkers) and, while the link is up, append
 *     the event's frame. When queue_len event frames already wait, the queued event frames are
 *     dropped (request frames stay, in order) and b->resync set: RESYNC and the whole table follow
 *     everything queued so far (appended by the next request, or by the thread when it takes the
 *     queue), and events are not queued meanwhile (the table has them).
 * The first producer after the thread last took the queue writes one byte to the wake pipe
 * (b->wake_pending). Everything is written under the mutex (the pipe never blocks): once an SDK
 * call has unlocked b->mu for the last time it does not touch b again, so close can free it.
 *
 * The thread takes the queue (take_batch) into its own send buffer only when that buffer is
 * empty, so everything queued meanwhile goes out in one send(). It leaves out the frames of
 * requests whose caller stopped waiting (timed out): a command whose caller was already answered
 * "timeout" never runs later. (Frames already in the send buffer or the kernel's socket buffer
 * cannot be called back: those may still reach a daemon that resumes reading.)
 *
 * After WELCOME, under the same mutex that guards the table, the thread puts the whole table in
 * its send buffer and sets link_up: no event can fall between the replay and the live stream.
 */
#define _POSIX_C_SOURCE 200809L

#include "ivs_bridge.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifdef IVS_BRIDGE_DEBUG
#define IVS_LOG(...) (fprintf(stderr, "ivs_bridge: " __VA_ARGS__), fputc('\n', stderr))
#else
#define IVS_LOG(...) ((void)0)
#endif

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* platforms without it: see open_socket (SO_NOSIGPIPE) */
#endif

/*
 * pipe2 makes the wake pipe close-on-exec atomically, so a fork + exec on another of the
 * application's threads cannot inherit it. Linux has it (kernel 2.6.27, glibc 2.9, musl,
 * uClibc-ng, bionic), but glibc declares it only under _GNU_SOURCE, which this strictly C99 +
 * POSIX file does not define: it is declared here, with the libc's own signature. Build with
 * -DIVS_BRIDGE_NO_PIPE2 for a libc that lacks it. pipe() + fcntl() remain the fallback, also when
 * pipe2 fails with ENOSYS or EINVAL (an older kernel).
 */
#if defined(__linux__) && defined(O_CLOEXEC) && !defined(IVS_BRIDGE_NO_PIPE2)
#define IVS_HAVE_PIPE2 1
int pipe2(int fds[2], int flags);
#endif

/* ---- protocol constants (docs/bridge-protocol.md) ---- */

#define HDR 20u
#define PROTO_VERSION 1u
#define SHIM_NAME "ivs-bridge/1"

enum {
    T_HELLO = 1,
    T_COMMAND = 2,
    T_STREAM_REQUEST = 3,
    T_VIEWER_START = 4,
    T_VIEWER_STOP = 5,
    T_TALK_START = 6,
    T_TALK_STOP = 7,
    T_PEER_LOST = 8,
    T_SET_ROLE = 9,
    T_RESYNC = 10,
    T_WELCOME = 129,
    T_REPLY = 130,
    T_STREAM_ANSWER = 131,
    T_ERROR = 132
};

#define NS_PER_MS 1000000ull
#define BACKOFF_MIN_NS (50ull * NS_PER_MS)
#define BACKOFF_MAX_NS (1000ull * NS_PER_MS)
#define HANDSHAKE_NS (5000ull * NS_PER_MS) /* no WELCOME by then: reconnect */
#define CONNECT_NS (1000ull * NS_PER_MS)   /* a connect still in progress by then: retry */
#define SLOT_BITS 10u                       /* IVS_MAX_IN_FLIGHT == 1 << SLOT_BITS */
#define SEQ_MAX ((1ul << (32u - SLOT_BITS)) - 1ul)
#define OUT_CAP (256u * 1024u) /* bytes of request frames queued for the thread, at most */

/* How a request ended when not with an answer. */
enum fail_kind { F_NONE = 0, F_UNAVAILABLE, F_TIMEOUT, F_BUSY, F_TOO_LARGE, F_ERROR, F_NOMEM };

enum slot_state { S_FREE = 0, S_WAITING, S_ANSWERED, S_FAILED };

typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf_t;

typedef struct {
    pthread_cond_t cond;
    uint32_t id;  /* the id of the request in this slot (valid unless S_FREE) */
    uint32_t seq; /* bumped on every use; id = seq << SLOT_BITS | index, seq in 1..SEQ_MAX */
    uint8_t state;
    uint8_t type; /* T_COMMAND or T_STREAM_REQUEST */
    uint8_t fail; /* enum fail_kind, when S_FAILED */
    uint8_t arg;  /* STREAM_ANSWER's arg */
    uint8_t *body; /* REPLY body: malloc'd, len + 1 bytes, NUL-terminated */
    size_t body_len;
} slot_t;

typedef struct {
    uint32_t visitor, channel;
    int value; /* video_res_type for viewers, role for roles, 0 for talkers */
} entry_t;

typedef struct {
    entry_t *e;
    size_t n, cap;
} table_t;

struct ivs_bridge {
    /* fixed after open */
    struct sockaddr_un addr;
    uint64_t timeout_ns;
    size_t queue_len;
    int wake_r, wake_w;
    int mono_cond; /* the slots' condition variables time on CLOCK_MONOTONIC (else CLOCK_REALTIME) */
    pthread_t thread;
    int thread_started;

    pthread_mutex_t mu;
    /* guarded by mu */
    pthread_cond_t idle; /* close waits here for active == 0 */
    unsigned active;     /* callers inside ivs_bridge_command / _request_stream */
    int stopping;
    int link_up;      /* WELCOME received on the current connection */
    int wake_pending; /* a wake byte is written or the thread will look anyway */
    int resync;       /* the event frames overflowed: RESYNC + table to follow what is queued */
    buf_t out;        /* the FIFO: event and request frames for the thread */
    size_t out_req;   /* bytes of request frames in out (at most OUT_CAP) */
    size_t evn;       /* event frames in out (at most queue_len) */
    table_t roles, viewers, talkers;
    slot_t slots[IVS_MAX_IN_FLIGHT];
    uint16_t free_ring[IVS_MAX_IN_FLIGHT]; /* FIFO of free slot indices: ids spread over 2^32 */
    size_t free_head, free_count;

    /* owned by the I/O thread */
    buf_t send;
    size_t send_off;
    uint8_t *rbuf; /* HDR + IVS_MAX_BODY bytes */
    size_t rlen;
};

static const char fallback_reply[] =
    "{\"confirmation_topic\":\"\",\"result\":\"7\",\"reason\":\"" IVS_REASON_ERROR "\"}";

/* ---- small helpers ---- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void ns_to_timespec(uint64_t ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ns / 1000000000ull);
    ts->tv_nsec = (long)(ns % 1000000000ull);
}

/*
 * The absolute time, on the clock of the slots' condition variables, for a wait that ends at the
 * monotonic deadline (now: the monotonic time, before deadline). Where pthread_condattr_setclock
 * failed that clock is CLOCK_REALTIME, and the deadline is converted at every wait; the waiter
 * checks the monotonic clock after every wake-up, so a step of the wall clock forwards only
 * costs one more wait, but a step backwards during a wait lengthens that wait.
 */
static void cond_deadline(const ivs_bridge *b, uint64_t deadline, uint64_t now, struct timespec *ts)
{
    uint64_t left = deadline - now, ns;
    if (b->mono_cond) {
        ns_to_timespec(deadline, ts);
        return;
    }
    clock_gettime(CLOCK_REALTIME, ts);
    ns = (uint64_t)ts->tv_nsec + left % 1000000000ull;
    ts->tv_sec += (time_t)(left / 1000000000ull + ns / 1000000000ull);
    ts->tv_nsec = (long)(ns % 1000000000ull);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static int buf_reserve(buf_t *b, size_t extra)
{
    size_t need, cap;
    uint8_t *p;
    if (extra > (size_t)-1 - b->len)
        return -1;
    need = b->len + extra;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > (size_t)-1 / 2 ? need : cap * 2;
    p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* Appends a frame; the caller has reserved HDR + body_len bytes. */
static void put_frame(buf_t *b, uint8_t type, uint8_t arg, uint32_t id, uint32_t visitor, uint32_t channel,
                      const void *body, uint32_t body_len)
{
    uint8_t *h = b->p + b->len;
    put32(h, body_len);
    h[4] = type;
    h[5] = arg;
    h[6] = 0;
    h[7] = 0;
    put32(h + 8, id);
    put32(h + 12, visitor);
    put32(h + 16, channel);
    if (body_len)
        memcpy(h + HDR, body, body_len);
    b->len += HDR + body_len;
}

static void wake(ivs_bridge *b)
{
    static const uint8_t one = 1;
    ssize_t r;
    do
        r = write(b->wake_w, &one, 1);
    while (r < 0 && errno == EINTR);
    /* EAGAIN: the pipe is full of wake bytes already, which wakes the thread just as well */
}

static void drain_wake(ivs_bridge *b)
{
    uint8_t sink[64];
    while (read(b->wake_r, sink, sizeof sink) > 0) {
    }
}

static int set_cloexec_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
        return -1;
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

/* The wake pipe, both ends close-on-exec and non-blocking. */
static int open_wake_pipe(int fds[2])
{
#ifdef IVS_HAVE_PIPE2
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0)
        return 0;
    if (errno != ENOSYS && errno != EINVAL)
        return -1;
#endif
    if (pipe(fds) != 0)
        return -1;
    if (set_cloexec_nonblock(fds[0]) != 0 || set_cloexec_nonblock(fds[1]) != 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    return 0;
}

/* ---- fixed error replies ---- */

static int is_json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_id_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == ':' || c == '-';
}

/*
 * Finds "message_id" : <integer or short string> in src and copies the value's JSON text (with the
 * quotes of a string) to out. Returns its length, 0 when there is none that qualifies.
 * Integers: optional minus, 1-16 digits, no leading zero, not followed by a digit, '.', 'e' or 'E'.
 * Strings: at most 64 characters from [A-Za-z0-9_.:-] (so no escaping is ever needed).
 */
static size_t find_message_id(const char *src, size_t len, char out[68])
{
    static const char key[] = "\"message_id\"";
    const size_t klen = sizeof key - 1;
    size_t i;
    if (!src)
        return 0;
    for (i = 0; i + klen <= len; i++) {
        size_t j, k, n;
        if (src[i] != '"' || memcmp(src + i, key, klen) != 0)
            continue;
        j = i + klen;
        while (j < len && is_json_ws(src[j]))
            j++;
        if (j >= len || src[j] != ':')
            continue;
        j++;
        while (j < len && is_json_ws(src[j]))
            j++;
        if (j >= len)
            return 0;
        k = j;
        if (src[k] == '"') {
            for (k = j + 1, n = 0; k < len && n <= 64 && is_id_char(src[k]); k++, n++) {
            }
            if (k >= len || n > 64 || src[k] != '"')
                continue;
            k++; /* the closing quote */
        } else {
            if (src[k] == '-')
                k++;
            for (n = 0; k < len && src[k] >= '0' && src[k] <= '9' && n <= 16; k++, n++) {
            }
            if (n == 0 || n > 16)
                continue;
            if (n > 1 && src[k - n] == '0')
                continue;
            if (k < len && (src[k] == '.' || src[k] == 'e' || src[k] == 'E' || (src[k] >= '0' && src[k] <= '9')))
                continue;
        }
        memcpy(out, src + j, k - j);
        return k - j;
    }
    return 0;
}

/* Stores the fixed error reply for kind and returns -1. reply and reply_len are not NULL. */
static int fail_reply(int kind, const char *src, uint32_t src_len, uint8_t **reply, size_t *reply_len)
{
    const char *result = "7", *reason;
    char mid[68];
    size_t mid_len = find_message_id(src, src_len, mid);
    int n;
    char *p;
    switch (kind) {
    case F_UNAVAILABLE:
        reason = IVS_REASON_UNAVAILABLE;
        break;
    case F_TIMEOUT:
        reason = IVS_REASON_TIMEOUT;
        break;
    case F_BUSY:
        result = "5";
        reason = IVS_REASON_BUSY;
        break;
    case F_TOO_LARGE:
        result = "1";
        reason = IVS_REASON_TOO_LARGE;
        break;
    case F_NOMEM:
        goto fallback;
    default:
        reason = IVS_REASON_ERROR;
        break;
    }
    n = snprintf(NULL, 0, "{\"confirmation_topic\":\"\",\"result\":\"%s\",\"reason\":\"%s\"%s%.*s}", result, reason,
                 mid_len ? ",\"message_id\":" : "", (int)mid_len, mid);
    if (n <= 0)
        goto fallback;
    p = malloc((size_t)n + 1);
    if (!p)
        goto fallback;
    snprintf(p, (size_t)n + 1, "{\"confirmation_topic\":\"\",\"result\":\"%s\",\"reason\":\"%s\"%s%.*s}", result, reason,
             mid_len ? ",\"message_id\":" : "", (int)mid_len, mid);
    *reply = (uint8_t *)p;
    *reply_len = (size_t)n;
    return -1;
fallback:
    *reply = (uint8_t *)(uintptr_t)fallback_reply; /* never written: ivs_bridge_free skips it */
    *reply_len = sizeof fallback_reply - 1;
    return -1;
}

void ivs_bridge_free(uint8_t *buf, size_t len)
{
    (void)len;
    if (buf && buf != (const uint8_t *)fallback_reply)
        free(buf);
}

/* ---- the state table (under mu) ---- */

static long table_find(const table_t *t, uint32_t visitor, uint32_t channel, int match_value, int value)
{
    size_t i;
    for (i = 0; i < t->n; i++)
        if (t->e[i].visitor == visitor && t->e[i].channel == channel && (!match_value || t->e[i].value == value))
            return (long)i;
    return -1;
}

static int table_add(table_t *t, uint32_t visitor, uint32_t channel, int value)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        entry_t *e;
        if (cap > (size_t)-1 / 2 / sizeof *e)
            return -1;
        e = realloc(t->e, cap * sizeof *e);
        if (!e)
            return -1;
        t->e = e;
        t->cap = cap;
    }
    t->e[t->n].visitor = visitor;
    t->e[t->n].channel = channel;
    t->e[t->n].value = value;
    t->n++;
    return 0;
}

static void table_remove_at(table_t *t, size_t i)
{
    t->e[i] = t->e[--t->n];
}

static size_t table_remove_all(table_t *t, uint32_t visitor, uint32_t channel)
{
    size_t i = 0, removed = 0;
    while (i < t->n) {
        if (t->e[i].visitor == visitor && t->e[i].channel == channel) {
            table_remove_at(t, i);
            removed++;
        } else {
            i++;
        }
    }
    return removed;
}

/* Appends SET_ROLE per role, VIEWER_START per viewer, TALK_START per talker. */
static int dump_table(ivs_bridge *b, buf_t *out)
{
    size_t i, frames = b->roles.n + b->viewers.n + b->talkers.n;
    if (frames > ((size_t)-1) / HDR || buf_reserve(out, frames * HDR) != 0)
        return -1;
    for (i = 0; i < b->roles.n; i++)
        put_frame(out, T_SET_ROLE, (uint8_t)b->roles.e[i].value, 0, b->roles.e[i].visitor, b->roles.e[i].channel,
                  NULL, 0);
    for (i = 0; i < b->viewers.n; i++)
        put_frame(out, T_VIEWER_START, (uint8_t)b->viewers.e[i].value, 0, b->viewers.e[i].visitor,
                  b->viewers.e[i].channel, NULL, 0);
    for (i = 0; i < b->talkers.n; i++)
        put_frame(out, T_TALK_START, 0, 0, b->talkers.e[i].visitor, b->talkers.e[i].channel, NULL, 0);
    return 0;
}

/* ---- the queue (under mu) ---- */

static int is_request(uint8_t type)
{
    return type == T_COMMAND || type == T_STREAM_REQUEST;
}

/* 1 when no caller waits any more for the request frame at h (it timed out): never to be sent. */
static int request_stale(const ivs_bridge *b, const uint8_t *h)
{
    uint32_t id = get32(h + 8);
    const slot_t *s = &b->slots[id & (IVS_MAX_IN_FLIGHT - 1)];
    return !(s->state == S_WAITING && s->id == id);
}

/*
 * Walks the queue's frames in order and moves those still to be sent to dst: either the queue
 * itself (compaction in place), or the I/O thread's send buffer, reserved for the whole queue by
 * the caller (the queue is then left empty). Left out: the frames of requests nobody waits for,
 * and, when drop_events, every other frame (events, and a RESYNC + table queued earlier).
 */
static void filter_queue(ivs_bridge *b, buf_t *dst, int drop_events)
{
    buf_t *q = &b->out;
    size_t r = 0, w = dst == q ? 0 : dst->len, req = 0, events = 0;
    while (r < q->len) {
        const uint8_t *h = q->p + r;
        size_t n = HDR + (size_t)get32(h);
        int keep = is_request(h[4]) ? !request_stale(b, h) : !drop_events;
        if (keep) {
            memmove(dst->p + w, h, n); /* in place, w <= r */
            w += n;
            if (is_request(h[4]))
                req += n;
            else if (h[4] != T_RESYNC)
                events++;
        }
        r += n;
    }
    if (dst == q) {
        q->len = w;
        b->out_req = req;
        b->evn = events;
    } else {
        dst->len = w;
        q->len = 0;
        b->out_req = 0;
        b->evn = 0;
    }
}

/* Appends RESYNC and the whole table to buf (the queue or the send buffer), settling b->resync. */
static int queue_resync(ivs_bridge *b, buf_t *buf)
{
    if (buf_reserve(buf, HDR) != 0)
        return -1;
    put_frame(buf, T_RESYNC, 0, 0, 0, 0, NULL, 0);
    if (dump_table(b, buf) != 0) {
        buf->len -= HDR;
        return -1;
    }
    if (buf == &b->out) /* the table's frames count as queued events, as filter_queue counts them */
        b->evn += b->roles.n + b->viewers.n + b->talkers.n;
    b->resync = 0;
    return 0;
}

/* ---- events ---- */

/* Updates the table; returns 1 when the event changes it (and must be forwarded). Under mu. */
static int apply_event(ivs_bridge *b, uint8_t type, uint32_t visitor, uint32_t channel, int value)
{
    long i;
    switch (type) {
    case T_VIEWER_START:
        if (table_find(&b->viewers, visitor, channel, 1, value) >= 0)
            return 0;
        return table_add(&b->viewers, visitor, channel, value) == 0;
    case T_VIEWER_STOP:
        i = table_find(&b->viewers, visitor, channel, 1, value);
        if (i < 0)
            return 0;
        table_remove_at(&b->viewers, (size_t)i);
        return 1;
    case T_TALK_START:
        if (table_find(&b->talkers, visitor, channel, 0, 0) >= 0)
            return 0;
        return table_add(&b->talkers, visitor, channel, 0) == 0;
    case T_TALK_STOP:
        i = table_find(&b->talkers, visitor, channel, 0, 0);
        if (i < 0)
            return 0;
        table_remove_at(&b->talkers, (size_t)i);
        return 1;
    case T_SET_ROLE:
        i = table_find(&b->roles, visitor, channel, 0, 0);
        if (i >= 0) {
            if (b->roles.e[i].value == value)
                return 0;
            b->roles.e[i].value = value;
            return 1;
        }
        return table_add(&b->roles, visitor, channel, value) == 0;
    case T_PEER_LOST:
        table_remove_all(&b->viewers, visitor, channel);
        table_remove_all(&b->talkers, visitor, channel);
        table_remove_all(&b->roles, visitor, channel);
        return 1;
    default:
        return 0;
    }
}

static void event(ivs_bridge *b, uint8_t type, uint32_t visitor, uint32_t channel, int value)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    if (!b->stopping && apply_event(b, type, visitor, channel, value) && b->link_up) {
        if (b->resync) {
            /* nothing to queue: the table, sent after what is queued, has this event */
        } else if (b->evn >= b->queue_len || buf_reserve(&b->out, HDR) != 0) {
            filter_queue(b, &b->out, 1); /* drop the waiting events; the table replaces them */
            b->resync = 1;
        } else {
            put_frame(&b->out, type, (uint8_t)value, 0, visitor, channel, NULL, 0);
            b->evn++;
        }
        if (!b->wake_pending) {
            b->wake_pending = 1;
            wake(b); /* under the mutex: close cannot free b before this call is done with it */
        }
    }
    pthread_mutex_unlock(&b->mu);
}

void ivs_bridge_viewer_started(ivs_bridge *b, uint32_t visitor, uint32_t channel, int video_res_type)
{
    if (video_res_type >= 0 && video_res_type <= 255)
        event(b, T_VIEWER_START, visitor, channel, video_res_type);
}

void ivs_bridge_viewer_stopped(ivs_bridge *b, uint32_t visitor, uint32_t channel, int video_res_type)
{
    if (video_res_type >= 0 && video_res_type <= 255)
        event(b, T_VIEWER_STOP, visitor, channel, video_res_type);
}

void ivs_bridge_talk_started(ivs_bridge *b, uint32_t visitor, uint32_t channel)
{
    event(b, T_TALK_START, visitor, channel, 0);
}

void ivs_bridge_talk_stopped(ivs_bridge *b, uint32_t visitor, uint32_t channel)
{
    event(b, T_TALK_STOP, visitor, channel, 0);
}

void ivs_bridge_peer_lost(ivs_bridge *b, uint32_t visitor, uint32_t channel)
{
    event(b, T_PEER_LOST, visitor, channel, 0);
}

void ivs_bridge_set_role(ivs_bridge *b, uint32_t visitor, uint32_t channel, int role)
{
    if (role == IVS_ROLE_OWNER || role == IVS_ROLE_SHARER)
        event(b, T_SET_ROLE, visitor, channel, role);
}

/* ---- requests ---- */

static void slot_release(ivs_bridge *b, slot_t *s)
{
    size_t index = (size_t)(s - b->slots);
    s->state = S_FREE;
    s->body = NULL;
    s->body_len = 0;
    b->free_ring[(b->free_head + b->free_count) % IVS_MAX_IN_FLIGHT] = (uint16_t)index;
    b->free_count++;
}

/*
 * Sends one request frame and waits for its answer until deadline. Returns F_NONE with *body /
 * *arg set, or the fail kind.
 */
static int request(ivs_bridge *b, uint8_t type, uint8_t arg, uint32_t visitor, uint32_t channel, const char *src,
                   uint32_t src_len, uint64_t deadline, uint8_t **body, size_t *body_len, uint8_t *answer_arg)
{
    slot_t *s;
    size_t index, frame = HDR + (size_t)src_len;
    int result;
    struct timespec ts;

    pthread_mutex_lock(&b->mu);
    if (b->stopping || !b->link_up) {
        pthread_mutex_unlock(&b->mu);
        return F_UNAVAILABLE;
    }
    if (b->out_req + frame > OUT_CAP)
        filter_queue(b, &b->out, 0); /* drop the frames of requests that no longer wait */
    if (b->free_count == 0 || b->out_req + frame > OUT_CAP) {
        pthread_mutex_unlock(&b->mu);
        return F_BUSY;
    }
    /* after an overflow, the table goes before this request: it must see the events before it */
    if ((b->resync && queue_resync(b, &b->out) != 0) || buf_reserve(&b->out, frame) != 0) {
        pthread_mutex_unlock(&b->mu);
        return F_NOMEM;
    }
    index = b->free_ring[b->free_head];
    b->free_head = (b->free_head + 1) % IVS_MAX_IN_FLIGHT;
    b->free_count--;
    s = &b->slots[index];
    s->seq = s->seq >= SEQ_MAX ? 1 : s->seq + 1;
    s->id = (s->seq << SLOT_BITS) | (uint32_t)index;
    s->state = S_WAITING;
    s->type = type;
    s->fail = F_NONE;
    put_frame(&b->out, type, arg, s->id, visitor, channel, src, src_len);
    b->out_req += frame;
    if (!b->wake_pending) {
        b->wake_pending = 1;
        wake(b);
    }
    b->active++;

    while (s->state == S_WAITING) {
        uint64_t now = now_ns();
        if (now >= deadline)
            break;
        cond_deadline(b, deadline, now, &ts);
        pthread_cond_timedwait(&s->cond, &b->mu, &ts);
    }
    switch (s->state) {
    case S_ANSWERED:
        result = F_NONE;
        *body = s->body;
        *body_len = s->body_len;
        *answer_arg = s->arg;
        break;
    case S_FAILED:
        result = s->fail;
        break;
    default:
        result = F_TIMEOUT; /* a late answer finds the slot free (or reused under a new id): dropped */
        break;
    }
    slot_release(b, s);
    if (--b->active == 0 && b->stopping)
        pthread_cond_broadcast(&b->idle);
    pthread_mutex_unlock(&b->mu);
    return result;
}

int ivs_bridge_command(ivs_bridge *b, uint32_t visitor, uint32_t channel, const char *src, uint32_t src_len,
                       uint8_t **reply, size_t *reply_len)
{
    uint64_t deadline;
    uint8_t *body = NULL, arg = 0;
    size_t body_len = 0;
    int kind;

    if (!reply || !reply_len) {
        if (reply)
            *reply = (uint8_t *)(uintptr_t)fallback_reply;
        if (reply_len)
            *reply_len = sizeof fallback_reply - 1;
        return -1;
    }
    if (!b)
        return fail_reply(F_NOMEM, NULL, 0, reply, reply_len);
    if (!src && src_len)
        return fail_reply(F_ERROR, NULL, 0, reply, reply_len);
    if (src_len > IVS_MAX_BODY)
        return fail_reply(F_TOO_LARGE, src, src_len, reply, reply_len);
    deadline = now_ns() + b->timeout_ns;
    kind = request(b, T_COMMAND, 0, visitor, channel, src, src_len, deadline, &body, &body_len, &arg);
    if (kind == F_NONE) {
        *reply = body;
        *reply_len = body_len;
        return 0;
    }
    return fail_reply(kind, src, src_len, reply, reply_len);
}

int ivs_bridge_request_stream(ivs_bridge *b, uint32_t visitor, uint32_t channel, int request_type)
{
    uint64_t deadline;
    uint8_t *body = NULL, arg = 1;
    size_t body_len = 0;
    if (!b || (request_type != 0 && request_type != 1))
        return 1;
    deadline = now_ns() + b->timeout_ns;
    if (request(b, T_STREAM_REQUEST, (uint8_t)request_type, visitor, channel, NULL, 0, deadline, &body, &body_len,
                &arg) != F_NONE)
        return 1;
    free(body);
    return arg == 0 ? 0 : 1;
}

/* ---- the I/O thread ---- */

/* Fails every waiting request with kind and forgets the queues. */
static void link_down(ivs_bridge *b, int kind)
{
    size_t i;
    pthread_mutex_lock(&b->mu);
    b->link_up = 0;
    b->out.len = 0;
    b->out_req = 0;
    b->evn = 0;
    b->resync = 0;
    b->wake_pending = 0;
    for (i = 0; i < IVS_MAX_IN_FLIGHT; i++) {
        slot_t *s = &b->slots[i];
        if (s->state == S_WAITING) {
            s->state = S_FAILED;
            s->fail = (uint8_t)kind;
            pthread_cond_signal(&s->cond);
        }
    }
    pthread_mutex_unlock(&b->mu);
    b->send.len = 0;
    b->send_off = 0;
    b->rlen = 0;
}

/*
 * Moves what the producers queued into the (empty) send buffer, in order, without the frames of
 * requests that timed out meanwhile; then RESYNC and the table if an overflow asked for them. Under mu.
 */
static int take_batch(ivs_bridge *b)
{
    b->wake_pending = 0;
    if (buf_reserve(&b->send, b->out.len) != 0)
        return -1;
    filter_queue(b, &b->send, 0);
    if (b->resync && queue_resync(b, &b->send) != 0)
        return -1;
    return 0;
}

/* Hands an answer to its waiting slot; an id that no longer waits is dropped quietly. */
static void answer(ivs_bridge *b, uint32_t id, uint8_t type, int state, uint8_t fail, uint8_t arg, uint8_t *body,
                   size_t body_len)
{
    slot_t *s = &b->slots[id & (IVS_MAX_IN_FLIGHT - 1)];
    pthread_mutex_lock(&b->mu);
    if (id != 0 && s->state == S_WAITING && s->id == id) {
        if (type != 0 && s->type != type) { /* a REPLY to a stream request or the reverse */
            state = S_FAILED;
            fail = F_ERROR;
        }
        s->state = (uint8_t)state;
        s->fail = fail;
        s->arg = arg;
        if (state == S_ANSWERED && type == T_COMMAND) {
            s->body = body;
            s->body_len = body_len;
            body = NULL;
        }
        pthread_cond_signal(&s->cond);
    }
    pthread_mutex_unlock(&b->mu);
    free(body);
}

enum { FR_OK = 0, FR_GARBAGE = -1, FR_CLOSE = -2 };

/* Handles one frame from the daemon. Returns FR_OK, or why the connection must close. */
static int handle_frame(ivs_bridge *b, const uint8_t *h, const uint8_t *body, uint32_t len, int *welcomed)
{
    uint8_t type = h[4], arg = h[5];
    uint32_t id = get32(h + 8);
    uint8_t *copy;

    if (!*welcomed) {
        if (type == T_WELCOME && arg == PROTO_VERSION) {
            *welcomed = 1;
            pthread_mutex_lock(&b->mu);
            b->out.len = 0;
            b->out_req = 0;
            b->evn = 0;
            b->resync = 0;
            if (dump_table(b, &b->send) != 0) {
                pthread_mutex_unlock(&b->mu);
                return FR_CLOSE;
            }
            b->link_up = 1;
            b->wake_pending = 0;
            pthread_mutex_unlock(&b->mu);
            IVS_LOG("connected to %s", b->addr.sun_path);
            return FR_OK;
        }
        IVS_LOG("handshake refused (frame type %u)", (unsigned)type);
        return type == T_ERROR ? FR_CLOSE : FR_GARBAGE;
    }
    switch (type) {
    case T_REPLY:
        if (len == 0 || memchr(body, 0, len) != NULL)
            return FR_GARBAGE;
        copy = malloc((size_t)len + 1);
        if (!copy) {
            answer(b, id, 0, S_FAILED, F_NOMEM, 0, NULL, 0);
            return FR_OK;
        }
        memcpy(copy, body, len);
        copy[len] = 0;
        answer(b, id, T_COMMAND, S_ANSWERED, F_NONE, 0, copy, len);
        return FR_OK;
    case T_STREAM_ANSWER:
        if (arg > 1)
            return FR_GARBAGE;
        answer(b, id, T_STREAM_REQUEST, S_ANSWERED, F_NONE, arg, NULL, 0);
        return FR_OK;
    case T_ERROR:
        if (arg != 0)
            return FR_GARBAGE; /* fatal (1), or a value the protocol does not have */
        answer(b, id, 0, S_FAILED, F_ERROR, 0, NULL, 0);
        return FR_OK;
    default:
        return FR_GARBAGE; /* unknown type, or a second WELCOME */
    }
}

/* Reads what is there and handles every complete frame. Returns FR_OK or why to close. */
static int read_frames(ivs_bridge *b, int fd, int *welcomed)
{
    for (;;) {
        size_t off = 0;
        ssize_t n = recv(fd, b->rbuf + b->rlen, HDR + IVS_MAX_BODY - b->rlen, 0);
        if (n == 0)
            return FR_CLOSE;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? FR_OK : FR_CLOSE;
        }
        b->rlen += (size_t)n;
        while (b->rlen - off >= HDR) {
            const uint8_t *h = b->rbuf + off;
            uint32_t len = get32(h);
            int r;
            if (len > IVS_MAX_BODY || h[6] != 0 || h[7] != 0)
                return FR_GARBAGE;
            if (b->rlen - off < HDR + (size_t)len)
                break;
            r = handle_frame(b, h, h + HDR, len, welcomed);
            if (r != FR_OK)
                return r;
            off += HDR + (size_t)len;
        }
        if (off) {
            memmove(b->rbuf, b->rbuf + off, b->rlen - off);
            b->rlen -= off;
        }
    }
}

/* Sends what the send buffer holds without blocking. Returns 0, or -1 when the socket failed. */
static int flush(ivs_bridge *b, int fd)
{
    while (b->send_off < b->send.len) {
        ssize_t n = send(fd, b->send.p + b->send_off, b->send.len - b->send_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        }
        b->send_off += (size_t)n;
    }
    b->send.len = 0;
    b->send_off = 0;
    return 0;
}

static int is_stopping(ivs_bridge *b)
{
    int s;
    pthread_mutex_lock(&b->mu);
    s = b->stopping;
    pthread_mutex_unlock(&b->mu);
    return s;
}

static int poll_ms(uint64_t deadline)
{
    uint64_t now = now_ns();
    uint64_t ms;
    if (deadline <= now)
        return 0;
    ms = (deadline - now + NS_PER_MS - 1) / NS_PER_MS;
    return ms > 60000u ? 60000 : (int)ms;
}

static int open_socket(void)
{
    int fd;
#if defined(SOCK_CLOEXEC) && defined(SOCK_NONBLOCK)
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0 || errno != EINVAL)
        return fd;
#endif
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (set_cloexec_nonblock(fd) != 0) {
        close(fd);
        return -1;
    }
#ifdef SO_NOSIGPIPE
    {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
    }
#endif
    return fd;
}

/*
 * One connection's life: connect, HELLO, WELCOME, then serve until it fails or close begins.
 * Returns 1 if WELCOME came; *fail is the kind to fail waiters with.
 */
static int session(ivs_bridge *b, int fd, int *fail)
{
    int welcomed = 0, r;
    uint64_t deadline = now_ns() + CONNECT_NS;
    struct pollfd pfd[2];

    *fail = F_UNAVAILABLE;
    if (connect(fd, (const struct sockaddr *)&b->addr, sizeof b->addr) != 0) {
        int err = 0;
        socklen_t elen = sizeof err;
        if (errno != EINPROGRESS && errno != EINTR)
            return 0; /* refused, no such file, backlog full (EAGAIN): try again later */
        pfd[0].fd = fd;
        pfd[0].events = POLLOUT;
        pfd[1].fd = b->wake_r;
        pfd[1].events = POLLIN;
        do {
            r = poll(pfd, 2, poll_ms(deadline));
            if (r > 0 && (pfd[1].revents & POLLIN)) {
                drain_wake(b);
                if (is_stopping(b))
                    return 0;
            }
        } while ((r < 0 && errno == EINTR) || (r > 0 && !(pfd[0].revents & (POLLOUT | POLLERR | POLLHUP))));
        if (r <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0)
            return 0;
    }

    b->send.len = 0;
    b->send_off = 0;
    b->rlen = 0;
    if (buf_reserve(&b->send, HDR + sizeof SHIM_NAME - 1) != 0)
        return 0;
    put_frame(&b->send, T_HELLO, PROTO_VERSION, 0, 0, 0, SHIM_NAME, (uint32_t)(sizeof SHIM_NAME - 1));
    deadline = now_ns() + HANDSHAKE_NS;

    for (;;) {
        if (welcomed && b->send.len == 0) {
            pthread_mutex_lock(&b->mu);
            r = take_batch(b);
            pthread_mutex_unlock(&b->mu);
            if (r != 0)
                return welcomed;
        }
        if (b->send.len) {
            if (flush(b, fd) != 0)
                return welcomed;
            if (b->send.len == 0 && welcomed)
                continue; /* sent it all: see whether more was queued meanwhile */
        }
        pfd[0].fd = fd;
        pfd[0].events = (short)(POLLIN | (b->send.len ? POLLOUT : 0));
        pfd[0].revents = 0;
        pfd[1].fd = b->wake_r;
        pfd[1].events = POLLIN;
        pfd[1].revents = 0;
        r = poll(pfd, 2, welcomed ? -1 : poll_ms(deadline));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return welcomed;
        }
        if (r == 0 && !welcomed) {
            IVS_LOG("no WELCOME in time");
            return 0;
        }
        if (pfd[1].revents & POLLIN) {
            drain_wake(b);
            if (is_stopping(b))
                return welcomed;
        }
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            r = read_frames(b, fd, &welcomed);
            if (r != FR_OK) {
                if (r == FR_GARBAGE) /* including a fatal ERROR */
                    *fail = F_ERROR;
                IVS_LOG("connection closed (%s)", r == FR_GARBAGE ? "garbage from the daemon" : "end of stream");
                return welcomed;
            }
        }
    }
}

static void *io_main(void *arg)
{
    ivs_bridge *b = arg;
    uint64_t backoff = BACKOFF_MIN_NS;
    while (!is_stopping(b)) {
        int fd = open_socket(), fail = F_UNAVAILABLE, welcomed = 0;
        uint64_t until;
        if (fd >= 0) {
            welcomed = session(b, fd, &fail);
            close(fd);
        }
        link_down(b, fail);
        if (welcomed)
            backoff = BACKOFF_MIN_NS;
        until = now_ns() + backoff;
        for (;;) { /* the backoff, cut short by close */
            struct pollfd p;
            int r;
            p.fd = b->wake_r;
            p.events = POLLIN;
            p.revents = 0;
            r = poll(&p, 1, poll_ms(until));
            if (r > 0)
                drain_wake(b);
            if (is_stopping(b) || now_ns() >= until)
                break;
        }
        if (!welcomed)
            backoff = backoff * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : backoff * 2;
    }
    link_down(b, F_UNAVAILABLE);
    return NULL;
}

/* ---- open / close ---- */

static void destroy(ivs_bridge *b, size_t conds)
{
    size_t i;
    for (i = 0; i < conds; i++)
        pthread_cond_destroy(&b->slots[i].cond);
    if (b->wake_r >= 0)
        close(b->wake_r);
    if (b->wake_w >= 0)
        close(b->wake_w);
    free(b->out.p);
    free(b->send.p);
    free(b->rbuf);
    free(b->roles.e);
    free(b->viewers.e);
    free(b->talkers.e);
    free(b);
}

ivs_bridge *ivs_bridge_open(const ivs_options *opts)
{
    const char *path = opts && opts->socket_path ? opts->socket_path : IVS_DEFAULT_SOCKET_PATH;
    uint32_t timeout_ms = opts && opts->reply_timeout_ms ? opts->reply_timeout_ms : IVS_DEFAULT_REPLY_TIMEOUT_MS;
    uint32_t queue_len = opts && opts->event_queue_len ? opts->event_queue_len : IVS_DEFAULT_EVENT_QUEUE_LEN;
    ivs_bridge *b;
    pthread_condattr_t ca;
    sigset_t all, old;
    size_t i, conds = 0;
    int fds[2];

    if (strlen(path) >= sizeof b->addr.sun_path)
        return NULL;
    b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->wake_r = b->wake_w = -1;
    b->addr.sun_family = AF_UNIX;
    memcpy(b->addr.sun_path, path, strlen(path) + 1);
    b->timeout_ns = (uint64_t)timeout_ms * NS_PER_MS;
    b->queue_len = queue_len > IVS_MAX_EVENT_QUEUE_LEN ? IVS_MAX_EVENT_QUEUE_LEN : queue_len;
    b->rbuf = malloc(HDR + IVS_MAX_BODY);
    if (!b->rbuf || open_wake_pipe(fds) != 0) {
        destroy(b, 0);
        return NULL;
    }
    b->wake_r = fds[0];
    b->wake_w = fds[1];
    if (pthread_condattr_init(&ca) != 0) {
        destroy(b, 0);
        return NULL;
    }
    /* where it fails, the attribute keeps the default clock, CLOCK_REALTIME: see cond_deadline */
    b->mono_cond = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0;
    for (i = 0; i < IVS_MAX_IN_FLIGHT; i++, conds++) {
        if (pthread_cond_init(&b->slots[i].cond, &ca) != 0)
            break;
        b->free_ring[i] = (uint16_t)i;
    }
    pthread_condattr_destroy(&ca);
    if (conds < IVS_MAX_IN_FLIGHT) {
        destroy(b, conds);
        return NULL;
    }
    b->free_count = IVS_MAX_IN_FLIGHT;
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        destroy(b, conds);
        return NULL;
    }
    if (pthread_cond_init(&b->idle, NULL) != 0) {
        pthread_mutex_destroy(&b->mu);
        destroy(b, conds);
        return NULL;
    }
    /* the thread takes no signals: the application's handlers keep running on its own threads */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&b->thread, NULL, io_main, b) != 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_cond_destroy(&b->idle);
        pthread_mutex_destroy(&b->mu);
        destroy(b, conds);
        return NULL;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    b->thread_started = 1;
    return b;
}

void ivs_bridge_close(ivs_bridge *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->stopping = 1;
    pthread_mutex_unlock(&b->mu);
    wake(b);
    if (b->thread_started)
        pthread_join(b->thread, NULL); /* its last act is link_down: every waiter is answered */
    pthread_mutex_lock(&b->mu);
    while (b->active)
        pthread_cond_wait(&b->idle, &b->mu);
    pthread_mutex_unlock(&b->mu);
    pthread_cond_destroy(&b->idle);
    pthread_mutex_destroy(&b->mu);
    destroy(b, IVS_MAX_IN_FLIGHT);
}
