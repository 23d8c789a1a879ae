/*
 * fake_sdk.c - drives bridge/ivs_bridge.c through the iv_avt callbacks of bridge/ivs_bridge_iv.c
 * exactly as the IoT Video device SDK would (threads per visitor, USR_DATA replies freed through
 * dst.buf_free_fn), checks every reply itself and prints one JSON summary line on stdout.
 *
 *   fake_sdk SOCKET MODE [key=value ...]
 *
 * MODE
 *   churn  threads x count commands (bare JSON, the original document's trailing-comma JSON,
 *          whole action=user_define strings) with viewer, talk, stream-request and peer-loss churn;
 *          then a known state (visitors 0..3 view, visitor 5 talks), get_status and a talk-back
 *          stream request by visitor 6, both reported.
 *   bench  threads x count get_status commands: commands/s, p50, p99, max in microseconds.
 *   run    threads send commands for `seconds`, visitors 0..2 viewing throughout; per call its
 *          duration and kind (ok, or the shim's fixed reply); for fault tests that kill, stop or
 *          restart the daemon meanwhile; with recover_s=S it goes on after `seconds`, for at
 *          most S more, until a call succeeds after a fallback (a slow machine's daemon restart
 *          may take longer than the run). Ends with get_status.
 *   edge   with no daemon: the fixed replies' message_id rule, too-large and NULL src commands,
 *          stream requests failing closed, the API's answers to misuse.
 *   events threads x count viewer start/stop events (no commands), then the known state; with a
 *          small queue=N this overflows the event queue (RESYNC).
 *   stall  for a daemon that stops reading after the first command (tests/bridge_harness.py):
 *          threads x count commands of size bytes each (visitors 100..) fill the socket and the
 *          shim's queue; then visitor 7 sends a small command and its peer is lost. live=0: the
 *          fillers are done (timed out or busy) first, and so is visitor 7's command. live=1: all
 *          of them still wait when the peer is lost (use a timeout longer than the stall). Then
 *          the file mark=PATH is created, the daemon is waited for (wait_ms) and get_status
 *          reported, with visitor 7's reply kind, the peak RSS and (glibc) the heap in use
 *          before and after the fill.
 *   close_race  (hooked build, below) a thread raises an event and is held up for 300 ms right
 *          after the shim unlocks its mutex; meanwhile the main thread closes the bridge: the
 *          event call must not touch the bridge after that unlock (AddressSanitizer watches).
 * Options: threads=16 count=2000 seconds=3 recover_s=0 timeout_ms=2000 queue=0 (shim default) wait_ms=5000
 * (how long to wait for the daemon before starting; 0: start at once) size=60000 live=0 mark=
 * no_monotonic=0 (hooked build: pthread_condattr_setclock fails, as on a libc without it).
 *
 * The hooked build: -DFAKE_SDK_HOOKS -Wl,--wrap=pthread_mutex_unlock
 * -Wl,--wrap=pthread_condattr_setclock (GNU ld or lld) routes the shim's calls of those two
 * through the wrappers below.
 *
 * Exit status 0 when every self-check held (see "problems" in the summary), 1 otherwise, 2 on
 * usage errors.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h> /* mallinfo2: the heap in use, which qemu-user's own memory does not blur */
#define HAVE_MALLINFO2 1
#endif

#include "ivs_bridge.h"
#include "ivs_bridge_iv.h"

#define MAX_THREADS 64

enum kind { K_OK, K_UNAVAILABLE, K_TIMEOUT, K_BUSY, K_TOO_LARGE, K_ERROR, K_STATIC, K_COUNT };
static const char *const kind_names[K_COUNT] = {"ok", "unavailable", "timeout", "busy", "too_large", "error", "static"};

static struct {
    const char *mode;
    int threads;
    long count;
    double seconds;
    double recover_s;
    unsigned timeout_ms;
    unsigned queue;
    unsigned wait_ms;
    unsigned size;
    int live;
    const char *mark;
    int no_monotonic;
} opt = {"", 16, 2000, 3.0, 0.0, 2000, 0, 5000, 60000, 0, NULL, 0};

static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    long calls, kinds[K_COUNT];
    long invalid_json, bad_message_id, empty, bad_nul, bad_free_fn, double_give;
    long given, freed;
    long stream_accept, stream_refuse;
    long timeout_early; /* "timeout" fallbacks that came back before the timeout had passed */
    long late_50ms;     /* calls longer than timeout + 50 ms (reported, not judged: see the Python test) */
    long ok_after_fallback;
    int seen_fallback;
    uint64_t max_ns, max_unavailable_ns;
} st;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ms / 1000u);
    ts.tv_nsec = (long)(ms % 1000u) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- the hooked build ---- */

#ifdef FAKE_SDK_HOOKS
int __real_pthread_mutex_unlock(pthread_mutex_t *mu);
int __wrap_pthread_mutex_unlock(pthread_mutex_t *mu);
int __real_pthread_condattr_setclock(pthread_condattr_t *attr, clockid_t clock);
int __wrap_pthread_condattr_setclock(pthread_condattr_t *attr, clockid_t clock);

static pthread_key_t slow_key; /* set in a thread: its next mutex unlock is followed by 300 ms */

int __wrap_pthread_mutex_unlock(pthread_mutex_t *mu)
{
    int r = __real_pthread_mutex_unlock(mu);
    if (pthread_getspecific(slow_key)) {
        pthread_setspecific(slow_key, NULL);
        sleep_ms(300);
    }
    return r;
}

int __wrap_pthread_condattr_setclock(pthread_condattr_t *attr, clockid_t clock)
{
    if (opt.no_monotonic)
        return EINVAL;
    return __real_pthread_condattr_setclock(attr, clock);
}

static ivs_bridge *race_bridge;

static void *race_thread(void *arg)
{
    (void)arg;
    pthread_setspecific(slow_key, &slow_key);
    ivs_bridge_viewer_started(race_bridge, 1, 0, 2);
    return NULL;
}

/* The close_race mode: the event call is past the shim's mutex when close begins (legal). */
static void close_race(ivs_bridge *b)
{
    pthread_t t;
    race_bridge = b;
    pthread_create(&t, NULL, race_thread, NULL);
    sleep_ms(100);
    ivs_bridge_close(b);
    pthread_join(t, NULL);
}
#endif

/* ---- a strict JSON validator (RFC 8259) that also returns the raw text of two top-level members ---- */

typedef struct {
    const char *p, *end;
    int depth;
    const char *mid, *reason; /* raw spans of the top-level "message_id" and "reason" values */
    size_t mid_len, reason_len;
} jp;

static int j_value(jp *j, int top_member_kind);

static void j_ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int j_string(jp *j)
{
    if (j->p >= j->end || *j->p != '"')
        return -1;
    j->p++;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"')
            return 0;
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            int i;
            if (j->p >= j->end)
                return -1;
            c = (unsigned char)*j->p++;
            if (c == 'u') {
                for (i = 0; i < 4; i++, j->p++)
                    if (j->p >= j->end || !((*j->p >= '0' && *j->p <= '9') || (*j->p >= 'a' && *j->p <= 'f') ||
                                            (*j->p >= 'A' && *j->p <= 'F')))
                        return -1;
            } else if (!strchr("\"\\/bfnrt", c)) {
                return -1;
            }
        }
        /* UTF-8 well-formedness is the daemon's encoder's business; bytes >= 0x80 pass */
    }
    return -1;
}

static int j_digits(jp *j)
{
    const char *s = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > s ? 0 : -1;
}

static int j_number(jp *j)
{
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (j_digits(j) != 0)
        return -1;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j_digits(j) != 0)
            return -1;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (j_digits(j) != 0)
            return -1;
    }
    return 0;
}

static int j_lit(jp *j, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
        return -1;
    j->p += n;
    return 0;
}

/* top_member_kind: 1 message_id, 2 reason, 0 anything else */
static int j_value(jp *j, int top_member_kind)
{
    const char *start;
    int r;
    j_ws(j);
    if (j->p >= j->end)
        return -1;
    start = j->p;
    if (*j->p == '{' || *j->p == '[') {
        char close = *j->p == '{' ? '}' : ']';
        int is_obj = *j->p == '{';
        if (++j->depth > 512)
            return -1;
        j->p++;
        j_ws(j);
        if (j->p < j->end && *j->p == close) {
            j->p++;
            j->depth--;
            return 0;
        }
        for (;;) {
            int member = 0;
            j_ws(j);
            if (is_obj) {
                const char *k = j->p;
                if (j_string(j) != 0)
                    return -1;
                if (j->depth == 1 && j->p - k == 12 && memcmp(k, "\"message_id\"", 12) == 0)
                    member = 1;
                if (j->depth == 1 && j->p - k == 8 && memcmp(k, "\"reason\"", 8) == 0)
                    member = 2;
                j_ws(j);
                if (j->p >= j->end || *j->p++ != ':')
                    return -1;
            }
            if (j_value(j, member) != 0)
                return -1;
            j_ws(j);
            if (j->p >= j->end)
                return -1;
            if (*j->p == ',') {
                j->p++;
                continue;
            }
            if (*j->p++ != close)
                return -1;
            j->depth--;
            break;
        }
        r = 0;
    } else if (*j->p == '"') {
        r = j_string(j);
    } else if (*j->p == 't') {
        r = j_lit(j, "true");
    } else if (*j->p == 'f') {
        r = j_lit(j, "false");
    } else if (*j->p == 'n') {
        r = j_lit(j, "null");
    } else {
        r = j_number(j);
    }
    if (r == 0 && top_member_kind == 1) {
        j->mid = start;
        j->mid_len = (size_t)(j->p - start);
    } else if (r == 0 && top_member_kind == 2) {
        j->reason = start;
        j->reason_len = (size_t)(j->p - start);
    }
    return r;
}

/* Validates text[0..len) as one JSON object. Returns 0 if valid. */
static int json_check(const char *text, size_t len, jp *j)
{
    memset(j, 0, sizeof *j);
    j->p = text;
    j->end = text + len;
    j_ws(j);
    if (j->p >= j->end || *j->p != '{')
        return -1;
    if (j_value(j, 0) != 0)
        return -1;
    j_ws(j);
    return j->p == j->end ? 0 : -1;
}

/* ---- the SDK side: one USR_DATA call, checked ---- */

#define OUTSTANDING_MAX 256
static const uint8_t *outstanding[OUTSTANDING_MAX]; /* reply buffers handed out, not yet freed */

static int reason_is(const jp *j, const char *reason)
{
    size_t n = strlen(reason);
    return j->reason && j->reason_len == n + 2 && memcmp(j->reason + 1, reason, n) == 0;
}

static enum kind classify(const jp *j, const uint8_t *buf, size_t size)
{
    if (!j->reason)
        return K_OK;
    if (reason_is(j, IVS_REASON_UNAVAILABLE))
        return K_UNAVAILABLE;
    if (reason_is(j, IVS_REASON_TIMEOUT))
        return K_TIMEOUT;
    if (reason_is(j, IVS_REASON_BUSY))
        return K_BUSY;
    if (reason_is(j, IVS_REASON_TOO_LARGE))
        return K_TOO_LARGE;
    if (reason_is(j, IVS_REASON_ERROR)) {
        /* the static fallback (shared, never freed) reads exactly like an error reply without message_id */
        static const char fallback[] = "{\"confirmation_topic\":\"\",\"result\":\"7\",\"reason\":\"" IVS_REASON_ERROR "\"}";
        if (size == sizeof fallback - 1 && memcmp(buf, fallback, size) == 0)
            return K_STATIC;
        return K_ERROR;
    }
    return K_OK; /* the daemon's own answer, an error reply included */
}

/*
 * One USR_DATA call as the SDK makes it. expected_mid: the raw JSON of the message_id in src, or
 * NULL. reply_out (optional): a copy of the reply, NUL-terminated, caller frees.
 */
static enum kind sdk_command(uint32_t visitor, uint32_t channel, const char *src, const char *expected_mid,
                             char **reply_out)
{
    iv_avt_usr_data_parm_s p;
    uint64_t t0, dt;
    jp j;
    enum kind k = K_ERROR;
    int valid, i, slot = -1;
    size_t text_len;

    memset(&p, 0, sizeof p);
    p.src = (char *)(uintptr_t)src;
    p.src_len = (uint32_t)strlen(src);
    t0 = now_ns();
    ivs_iv_recv_command(IV_AVT_COMMAND_USR_DATA, visitor, channel, IV_AVT_VIDEO_RES_FL, &p);
    dt = now_ns() - t0;

    text_len = p.dst.size - (IVS_REPLY_SIZE_COUNTS_NUL ? 1u : 0u);
    valid = p.dst.buf && p.dst.size > 0 && json_check((const char *)p.dst.buf, text_len, &j) == 0;
    if (valid)
        k = classify(&j, p.dst.buf, text_len);

    pthread_mutex_lock(&stats_mu);
    st.calls++;
    if (!p.dst.buf || p.dst.size == 0 || text_len == 0) {
        st.empty++;
    } else {
        if (p.dst.buf[text_len] != 0 || memchr(p.dst.buf, 0, text_len) != NULL)
            st.bad_nul++;
        if (!valid) {
            st.invalid_json++;
            fprintf(stderr, "invalid reply: %.*s\n", (int)text_len, (const char *)p.dst.buf);
        } else {
            st.kinds[k]++;
            if (expected_mid && (!j.mid || j.mid_len != strlen(expected_mid) ||
                                 memcmp(j.mid, expected_mid, j.mid_len) != 0)) {
                st.bad_message_id++;
                fprintf(stderr, "message_id %s not echoed: %.*s\n", expected_mid, (int)text_len,
                        (const char *)p.dst.buf);
            }
            if (k == K_TIMEOUT && dt < (uint64_t)opt.timeout_ms * 1000000ull)
                st.timeout_early++;
            if (k != K_OK)
                st.seen_fallback = 1;
            else if (st.seen_fallback)
                st.ok_after_fallback++;
            if (k == K_UNAVAILABLE && dt > st.max_unavailable_ns)
                st.max_unavailable_ns = dt;
        }
        if (p.dst.buf_free_fn != ivs_bridge_free)
            st.bad_free_fn++;
        /* the same live buffer handed out twice would be freed twice */
        for (i = 0; i < OUTSTANDING_MAX; i++) {
            if (outstanding[i] == p.dst.buf && k != K_STATIC)
                st.double_give++;
            if (!outstanding[i] && slot < 0)
                slot = i;
        }
        if (slot >= 0)
            outstanding[slot] = p.dst.buf;
        st.given++;
    }
    if (dt > st.max_ns)
        st.max_ns = dt;
    if (dt > ((uint64_t)opt.timeout_ms + 50u) * 1000000ull)
        st.late_50ms++;
    pthread_mutex_unlock(&stats_mu);

    if (reply_out) {
        *reply_out = malloc(text_len + 1);
        if (*reply_out) {
            memcpy(*reply_out, p.dst.buf ? (const char *)p.dst.buf : "", p.dst.buf ? text_len : 0);
            (*reply_out)[p.dst.buf ? text_len : 0] = 0;
        }
    }
    if (p.dst.buf) {
        pthread_mutex_lock(&stats_mu);
        if (slot >= 0)
            outstanding[slot] = NULL;
        st.freed++;
        pthread_mutex_unlock(&stats_mu);
        if (p.dst.buf_free_fn)
            p.dst.buf_free_fn(p.dst.buf, p.dst.size);
    }
    return k;
}

static int sdk_stream(uint32_t visitor, uint32_t channel, int type)
{
    iv_avt_req_stream_param_s p;
    p.request_type = (iv_avt_request_type_e)type;
    p.request_result = IV_AVT_DEV_STATUS_BUTT; /* must be overwritten */
    ivs_iv_recv_command(IV_AVT_COMMAND_REQ_STREAM, visitor, channel, IV_AVT_VIDEO_RES_FL, &p);
    pthread_mutex_lock(&stats_mu);
    if (p.request_result == IV_AVT_DEV_ACCEPT)
        st.stream_accept++;
    else
        st.stream_refuse++;
    pthread_mutex_unlock(&stats_mu);
    return (int)p.request_result;
}

/* ---- modes ---- */

static const char *const templates[] = {
    "{\"topic\":\"get_status\",\"message_id\":%s}",
    "{\"topic\":\"get_status\",\"message_id\":%s,}", /* the original document's trailing comma */
    "action=user_define&channel=0&cmd={\"topic\":\"get_status\",\"message_id\":%s}",
    "{ \"topic\" : \"get_status\" , \"message_id\" : %s }",
    "{\"topic\":\"no_such_topic\",\"message_id\":%s}",
    "{\"topic\":\"intercom\",\"message_id\":%s}",
};
#define N_TEMPLATES (sizeof templates / sizeof templates[0])

static void make_command(long i, int visitor, char *src, size_t n, char *mid, size_t mid_n)
{
    if (i % 2)
        snprintf(mid, mid_n, "%ld", (long)visitor * 1000000L + i);
    else
        snprintf(mid, mid_n, "\"v%d-%ld\"", visitor, i);
    snprintf(src, n, templates[(size_t)i % N_TEMPLATES], mid);
}

static void *churn_thread(void *arg)
{
    int v = (int)(intptr_t)arg;
    long i;
    char src[256], mid[64];
    for (i = 0; i < opt.count; i++) {
        make_command(i, v, src, sizeof src, mid, sizeof mid);
        sdk_command((uint32_t)v, 0, src, mid, NULL);
        switch (i % 16) {
        case 1:
            ivs_iv_start_real_play((uint32_t)v, 0, (iv_avt_video_res_type_e)(i % 3), NULL);
            break;
        case 3:
            ivs_iv_start_recv_stream((uint32_t)v, 0, IV_AVT_STREAM_TYPE_AUDIO, NULL);
            break;
        case 5:
            sdk_stream((uint32_t)v, 0, (int)((i / 16) % 2));
            break;
        case 7:
            ivs_iv_stop_recv_stream((uint32_t)v, 0, IV_AVT_STREAM_TYPE_AUDIO);
            break;
        case 9:
            ivs_iv_stop_real_play((uint32_t)v, 0, (iv_avt_video_res_type_e)((i - 8) % 3));
            break;
        case 11:
            sdk_command((uint32_t)v, 0, "not json at all", NULL, NULL);
            break;
        case 13:
            if (i % 64 == 13)
                ivs_iv_notify(i % 128 == 13 ? IV_AVT_EVENT_P2P_PEER_ERROR : IV_AVT_EVENT_P2P_LINK_DISCONNECT,
                              (uint32_t)v, 0, IV_AVT_VIDEO_RES_FL);
            else
                ivs_iv_notify(IV_AVT_EVENT_P2P_PEER_READY, (uint32_t)v, 0, IV_AVT_VIDEO_RES_FL);
            break;
        default:
            break;
        }
    }
    return NULL;
}

static void *events_thread(void *arg)
{
    int v = (int)(intptr_t)arg;
    long i;
    for (i = 0; i < opt.count; i++) {
        ivs_iv_start_real_play((uint32_t)v, 0, (iv_avt_video_res_type_e)(i % 3), NULL);
        ivs_iv_stop_real_play((uint32_t)v, 0, (iv_avt_video_res_type_e)(i % 3));
        if (i % 8 == 0) {
            ivs_iv_start_recv_stream((uint32_t)v, 0, IV_AVT_STREAM_TYPE_AUDIO, NULL);
            ivs_iv_stop_recv_stream((uint32_t)v, 0, IV_AVT_STREAM_TYPE_AUDIO);
        }
    }
    return NULL;
}

static int wait_for_daemon(void);

static char *filler; /* stall mode: a get_status command of opt.size bytes */

static void *stall_thread(void *arg)
{
    int v = (int)(intptr_t)arg;
    long i;
    for (i = 0; i < opt.count; i++)
        sdk_command((uint32_t)(100 + v), 0, filler, "1", NULL);
    return NULL;
}

static enum kind v7_kind = K_COUNT;

static void *v7_thread(void *arg)
{
    (void)arg;
    v7_kind = sdk_command(7, 0, "{\"topic\":\"get_status\",\"message_id\":7}", "7", NULL);
    return NULL;
}

/* The peak resident set size in KiB (Linux's VmHWM: getrusage's ru_maxrss survives exec), or -1. */
static long max_rss_kb(void)
{
    char line[128];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = atol(line + 6);
    fclose(f);
    return kb;
}

/* Bytes of heap in use, in KiB (glibc's mallinfo2; all threads' allocations when the process runs
   with MALLOC_ARENA_MAX=1, else the main arena's only), or -1 without it. */
static long heap_kb(void)
{
#ifdef HAVE_MALLINFO2
    return (long)(mallinfo2().uordblks / 1024u);
#else
    return -1;
#endif
}

/* The stall mode (see the top of the file). Returns the ",..." summary extra, malloc'd. */
static char *stall_mode(void)
{
    static const char head[] = "{\"topic\":\"get_status\",\"message_id\":1";
    pthread_t fill[MAX_THREADS], v7;
    long rss_start = max_rss_kb(), rss_end, heap_start = heap_kb(), heap_end;
    char *status = NULL, *out;
    FILE *f;
    size_t n;
    int i;

    if (opt.size < 64 || opt.size > IVS_MAX_BODY || !(filler = malloc(opt.size + 1u)))
        return NULL;
    memset(filler, ' ', opt.size);
    memcpy(filler, head, strlen(head));
    filler[opt.size - 1] = '}';
    filler[opt.size] = 0;
    for (i = 0; i < opt.threads; i++)
        pthread_create(&fill[i], NULL, stall_thread, (void *)(intptr_t)i);
    if (!opt.live) {
        for (i = 0; i < opt.threads; i++)
            pthread_join(fill[i], NULL);
        v7_thread(NULL);
    } else {
        sleep_ms(300); /* the fillers' frames fill the socket */
        pthread_create(&v7, NULL, v7_thread, NULL);
        sleep_ms(200); /* visitor 7's command is queued behind them */
    }
    ivs_iv_notify(IV_AVT_EVENT_P2P_LINK_DISCONNECT, 7, 0, IV_AVT_VIDEO_RES_FL);
    rss_end = max_rss_kb();
    heap_end = heap_kb();
    if (opt.mark && (f = fopen(opt.mark, "w")) != NULL)
        fclose(f);
    if (opt.live) {
        pthread_join(v7, NULL);
        for (i = 0; i < opt.threads; i++)
            pthread_join(fill[i], NULL);
    }
    free(filler);
    if (wait_for_daemon() != 0)
        fprintf(stderr, "fake_sdk: the daemon did not come back within wait_ms\n");
    sdk_command(0, 0, "{\"topic\":\"get_status\",\"message_id\":424242}", "424242", &status);
    n = (status ? strlen(status) : 0) + 224;
    out = malloc(n);
    if (out)
        snprintf(out, n,
                 ",\"v7_kind\":\"%s\",\"rss_start_kb\":%ld,\"rss_filled_kb\":%ld,\"heap_start_kb\":%ld,"
                 "\"heap_filled_kb\":%ld,\"final_status\":%s",
                 v7_kind < K_COUNT ? kind_names[v7_kind] : "none", rss_start, rss_end, heap_start, heap_end,
                 status && *status ? status : "null");
    free(status);
    return out;
}

typedef struct {
    int v;
    uint64_t *lat;
    long n;
} bench_arg;

static void *bench_thread(void *arg)
{
    bench_arg *a = arg;
    long i;
    char src[96];
    for (i = 0; i < opt.count; i++) {
        uint64_t t0 = now_ns();
        snprintf(src, sizeof src, "{\"topic\":\"get_status\",\"message_id\":%ld}", i);
        sdk_command((uint32_t)a->v, 0, src, NULL, NULL);
        a->lat[a->n++] = now_ns() - t0;
    }
    return NULL;
}

static uint64_t run_until, recover_until;

/* True once a call succeeded after a fallback answer (the daemon is back). */
static int recovered(void)
{
    int r;
    pthread_mutex_lock(&stats_mu);
    r = st.ok_after_fallback > 0;
    pthread_mutex_unlock(&stats_mu);
    return r;
}

static void *run_thread(void *arg)
{
    int v = (int)(intptr_t)arg;
    long i = 0;
    char src[256], mid[64];
    while (now_ns() < run_until || (now_ns() < recover_until && !recovered())) {
        make_command(i, v, src, sizeof src, mid, sizeof mid);
        sdk_command((uint32_t)v, 0, src, mid, NULL);
        if (i % 50 == 0)
            sdk_stream((uint32_t)v, 0, 0);
        i++;
        sleep_ms(2);
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Waits until a command is answered by the daemon itself (or wait_ms passes). Not counted. */
static int wait_for_daemon(void)
{
    uint64_t until = now_ns() + (uint64_t)opt.wait_ms * 1000000ull;
    while (now_ns() < until) {
        uint8_t *reply = NULL;
        size_t len = 0;
        iv_avt_usr_data_parm_s p;
        int ok;
        memset(&p, 0, sizeof p);
        p.src = (char *)(uintptr_t) "{\"topic\":\"get_status\"}";
        p.src_len = (uint32_t)strlen(p.src);
        ivs_iv_recv_command(IV_AVT_COMMAND_USR_DATA, 0, 0, IV_AVT_VIDEO_RES_FL, &p);
        reply = p.dst.buf;
        len = p.dst.size;
        ok = reply && !strstr((const char *)reply, "signaling service");
        p.dst.buf_free_fn(reply, len);
        if (ok)
            return 0;
        sleep_ms(20);
    }
    return -1;
}

static void known_state(void)
{
    int v;
    for (v = 0; v < opt.threads; v++)
        ivs_iv_notify(IV_AVT_EVENT_P2P_LINK_DISCONNECT, (uint32_t)v, 0, IV_AVT_VIDEO_RES_FL);
    for (v = 0; v < 4; v++)
        ivs_iv_start_real_play((uint32_t)v, 0, IV_AVT_VIDEO_RES_SD, NULL);
    ivs_iv_start_real_play(0, 0, IV_AVT_VIDEO_RES_HD, NULL); /* a second stream of visitor 0 */
    ivs_iv_start_recv_stream(5, 0, IV_AVT_STREAM_TYPE_AUDIO, NULL);
}

static void print_summary(const char *extra)
{
    int k;
    long problems = st.invalid_json + st.bad_message_id + st.empty + st.bad_nul + st.bad_free_fn + st.double_give +
                    (st.given - st.freed) + st.timeout_early;
    printf("{\"mode\":\"%s\",\"threads\":%d,\"timeout_ms\":%u,\"calls\":%ld,\"kinds\":{", opt.mode, opt.threads,
           opt.timeout_ms, st.calls);
    for (k = 0; k < K_COUNT; k++)
        printf("%s\"%s\":%ld", k ? "," : "", kind_names[k], st.kinds[k]);
    printf("},\"invalid_json\":%ld,\"bad_message_id\":%ld,\"empty\":%ld,\"bad_nul\":%ld,\"bad_free_fn\":%ld,"
           "\"double_give\":%ld,\"given\":%ld,\"freed\":%ld,\"timeout_early\":%ld,\"late_50ms\":%ld,"
           "\"ok_after_fallback\":%ld,\"stream_accept\":%ld,\"stream_refuse\":%ld,\"max_us\":%llu,"
           "\"max_unavailable_us\":%llu,\"problems\":%ld%s}\n",
           st.invalid_json, st.bad_message_id, st.empty, st.bad_nul, st.bad_free_fn, st.double_give, st.given,
           st.freed, st.timeout_early, st.late_50ms, st.ok_after_fallback, st.stream_accept, st.stream_refuse,
           (unsigned long long)(st.max_ns / 1000u), (unsigned long long)(st.max_unavailable_ns / 1000u), problems,
           extra ? extra : "");
    fflush(stdout);
}

/* ",\"final_status\":<reply>,\"final_talk_stream\":N" after the known state */
static char *final_report(void)
{
    char *status = NULL, *out;
    int talk;
    size_t n;
    sdk_command(0, 0, "{\"topic\":\"get_status\",\"message_id\":424242}", "424242", &status);
    talk = sdk_stream(6, 0, IV_AVT_REQUEST_RECV_STREAM);
    n = (status ? strlen(status) : 0) + 96;
    out = malloc(n);
    if (out)
        snprintf(out, n, ",\"final_status\":%s,\"final_talk_stream\":%d", status && *status ? status : "null",
                 talk);
    free(status);
    return out;
}


/* The fixed replies' message_id rule, with no daemon (every answer is the shim's own). */
static int edge_mode(void)
{
    static const struct {
        const char *src;
        const char *mid; /* expected raw message_id, or NULL: must have none */
    } cases[] = {
        {"{\"topic\":\"get_status\",\"message_id\":7}", "7"},
        {"{\"topic\":\"get_status\",\"message_id\":-42,}", "-42"},
        {"{\"message_id\" :\t\"a-b_c.d:e\"}", "\"a-b_c.d:e\""},
        {"action=user_define&channel=0&cmd={\"topic\":\"x\",\"message_id\":1234567890123456}", "1234567890123456"},
        {"{\"message_id\":12345678901234567}", NULL}, /* 17 digits */
        {"{\"message_id\":007}", NULL},              /* not a JSON number */
        {"{\"message_id\":1.5}", NULL},
        {"{\"message_id\":1e3}", NULL},
        {"{\"message_id\":\"has space\"}", NULL},
        {"{\"message_id\":\"quote\\\"inside\"}", NULL},
        {"{\"message_id\":\"0123456789012345678901234567890123456789012345678901234567890123\"}",
         "\"0123456789012345678901234567890123456789012345678901234567890123\""}, /* 64 chars */
        {"{\"message_id\":\"01234567890123456789012345678901234567890123456789012345678901234\"}", NULL}, /* 65 */
        {"{\"message_id\":null}", NULL},
        {"{\"message_id\":", NULL},
        {"{\"message_id\":-}", NULL},
        {"{\"message_id\"}", NULL},
        {"", NULL},
        {"not json", NULL},
    };
    size_t i;
    long bad = 0;
    uint8_t *reply = NULL;
    size_t len = 0;
    char *big;
    iv_avt_usr_data_parm_s p;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = NULL;
        jp j;
        enum kind k = sdk_command(1, 0, cases[i].src, cases[i].mid, &text);
        if (k != K_UNAVAILABLE || !text || json_check(text, strlen(text), &j) != 0 || (!cases[i].mid && j.mid)) {
            fprintf(stderr, "edge case %u: %s -> %s\n", (unsigned)i, cases[i].src, text ? text : "(null)");
            bad++;
        }
        free(text);
    }
    /* NULL src with length 0 is allowed */
    memset(&p, 0, sizeof p);
    ivs_iv_recv_command(IV_AVT_COMMAND_USR_DATA, 1, 0, IV_AVT_VIDEO_RES_FL, &p);
    if (!p.dst.buf || !strstr((const char *)p.dst.buf, IVS_REASON_UNAVAILABLE))
        bad++;
    if (p.dst.buf)
        p.dst.buf_free_fn(p.dst.buf, p.dst.size);
    /* too large: answered before anything else, message_id echoed */
    big = malloc(IVS_MAX_BODY + 2);
    if (!big)
        return 1;
    memset(big, ' ', IVS_MAX_BODY + 1);
    memcpy(big, "{\"message_id\":99,\"x\":\"", 22);
    big[IVS_MAX_BODY + 1] = 0;
    if (sdk_command(1, 0, big, "99", NULL) != K_TOO_LARGE)
        bad++;
    free(big);
    /* stream requests fail closed; unknown request types are refused */
    if (sdk_stream(1, 0, 0) != IV_AVT_DEV_REFUSE || sdk_stream(1, 0, 7) != IV_AVT_DEV_REFUSE)
        bad++;
    /* the API's misuse answers */
    if (ivs_bridge_command(NULL, 0, 0, "{}", 2, &reply, &len) != -1 || !reply || len == 0)
        bad++;
    ivs_bridge_free(reply, len); /* the static fallback: must not be freed */
    if (ivs_bridge_command(NULL, 0, 0, "{}", 2, NULL, NULL) != -1 || ivs_bridge_request_stream(NULL, 0, 0, 0) != 1)
        bad++;
    ivs_bridge_free(NULL, 0);
    return bad ? 1 : 0;
}

static int parse_opt(const char *a)
{
    const char *eq = strchr(a, '=');
    if (!eq)
        return -1;
    if (!strncmp(a, "threads=", 8))
        opt.threads = atoi(eq + 1);
    else if (!strncmp(a, "count=", 6))
        opt.count = atol(eq + 1);
    else if (!strncmp(a, "seconds=", 8))
        opt.seconds = atof(eq + 1);
    else if (!strncmp(a, "recover_s=", 10))
        opt.recover_s = atof(eq + 1);
    else if (!strncmp(a, "timeout_ms=", 11))
        opt.timeout_ms = (unsigned)atol(eq + 1);
    else if (!strncmp(a, "queue=", 6))
        opt.queue = (unsigned)strtoul(eq + 1, NULL, 10);
    else if (!strncmp(a, "wait_ms=", 8))
        opt.wait_ms = (unsigned)atol(eq + 1);
    else if (!strncmp(a, "size=", 5))
        opt.size = (unsigned)atol(eq + 1);
    else if (!strncmp(a, "live=", 5))
        opt.live = atoi(eq + 1);
    else if (!strncmp(a, "mark=", 5))
        opt.mark = eq + 1;
    else if (!strncmp(a, "no_monotonic=", 13))
        opt.no_monotonic = atoi(eq + 1);
    else
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    ivs_options o;
    ivs_bridge *b;
    pthread_t th[MAX_THREADS];
    bench_arg ba[MAX_THREADS];
    char *extra = NULL;
    char bench_extra[256];
    int i, rc = 0;
    uint64_t t0;

    if (argc < 3) {
        fprintf(stderr, "usage: fake_sdk SOCKET churn|bench|run|events|stall|close_race|edge [key=value ...]\n");
        return 2;
    }
    opt.mode = argv[2];
    for (i = 3; i < argc; i++)
        if (parse_opt(argv[i]) != 0) {
            fprintf(stderr, "fake_sdk: bad option %s\n", argv[i]);
            return 2;
        }
    if (opt.threads < 1 || opt.threads > MAX_THREADS || opt.count < 1) {
        fprintf(stderr, "fake_sdk: threads must be 1..%d, count >= 1\n", MAX_THREADS);
        return 2;
    }

#ifdef FAKE_SDK_HOOKS
    if (pthread_key_create(&slow_key, NULL) != 0)
        return 1;
#else
    if (opt.no_monotonic || !strcmp(opt.mode, "close_race")) {
        fprintf(stderr, "fake_sdk: no_monotonic and close_race need the hooked build (FAKE_SDK_HOOKS)\n");
        return 2;
    }
#endif
    memset(&o, 0, sizeof o);
    o.socket_path = argv[1];
    o.reply_timeout_ms = opt.timeout_ms;
    o.event_queue_len = opt.queue;
    b = ivs_bridge_open(&o);
    if (!b) {
        fprintf(stderr, "fake_sdk: ivs_bridge_open failed\n");
        return 1;
    }
    ivs_iv_use(b);
    if (opt.wait_ms && wait_for_daemon() != 0)
        fprintf(stderr, "fake_sdk: the daemon did not answer within wait_ms; going on\n");

    t0 = now_ns();
    if (!strcmp(opt.mode, "churn") || !strcmp(opt.mode, "events")) {
        void *(*fn)(void *) = !strcmp(opt.mode, "churn") ? churn_thread : events_thread;
        for (i = 0; i < opt.threads; i++)
            pthread_create(&th[i], NULL, fn, (void *)(intptr_t)i);
        for (i = 0; i < opt.threads; i++)
            pthread_join(th[i], NULL);
        known_state();
        extra = final_report();
        print_summary(extra);
    } else if (!strcmp(opt.mode, "bench")) {
        uint64_t *all, elapsed;
        long n = 0, j;
        for (i = 0; i < opt.threads; i++) {
            ba[i].v = i;
            ba[i].n = 0;
            ba[i].lat = malloc((size_t)opt.count * sizeof(uint64_t));
            if (!ba[i].lat)
                return 1;
        }
        t0 = now_ns();
        for (i = 0; i < opt.threads; i++)
            pthread_create(&th[i], NULL, bench_thread, &ba[i]);
        for (i = 0; i < opt.threads; i++)
            pthread_join(th[i], NULL);
        elapsed = now_ns() - t0;
        all = malloc((size_t)opt.threads * (size_t)opt.count * sizeof(uint64_t));
        if (!all)
            return 1;
        for (i = 0; i < opt.threads; i++) {
            for (j = 0; j < ba[i].n; j++)
                all[n++] = ba[i].lat[j];
            free(ba[i].lat);
        }
        qsort(all, (size_t)n, sizeof *all, cmp_u64);
        snprintf(bench_extra, sizeof bench_extra,
                 ",\"count\":%ld,\"seconds\":%.3f,\"per_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f", opt.count,
                 (double)elapsed / 1e9, (double)n / ((double)elapsed / 1e9), (double)all[n / 2] / 1e3,
                 (double)all[(size_t)((double)n * 0.99)] / 1e3);
        free(all);
        print_summary(bench_extra);
    } else if (!strcmp(opt.mode, "run")) {
        for (i = 0; i < 3; i++)
            ivs_iv_start_real_play((uint32_t)i, 0, IV_AVT_VIDEO_RES_SD, NULL);
        run_until = now_ns() + (uint64_t)(opt.seconds * 1e9);
        recover_until = run_until + (uint64_t)(opt.recover_s * 1e9);
        for (i = 0; i < opt.threads; i++)
            pthread_create(&th[i], NULL, run_thread, (void *)(intptr_t)i);
        for (i = 0; i < opt.threads; i++)
            pthread_join(th[i], NULL);
        {
            char *status = NULL;
            size_t n;
            sdk_command(0, 0, "{\"topic\":\"get_status\",\"message_id\":424242}", "424242", &status);
            n = (status ? strlen(status) : 0) + 64;
            extra = malloc(n);
            if (extra)
                snprintf(extra, n, ",\"final_status\":%s", status && *status ? status : "null");
            free(status);
        }
        print_summary(extra);
    } else if (!strcmp(opt.mode, "stall")) {
        extra = stall_mode();
        print_summary(extra);
#ifdef FAKE_SDK_HOOKS
    } else if (!strcmp(opt.mode, "close_race")) {
        ivs_iv_use(NULL);
        close_race(b);
        b = NULL;
        print_summary(NULL);
#endif
    } else if (!strcmp(opt.mode, "edge")) {
        rc = edge_mode();
        print_summary(rc ? ",\"edge\":\"failed\"" : ",\"edge\":\"passed\"");
    } else {
        fprintf(stderr, "fake_sdk: unknown mode %s\n", opt.mode);
        rc = 2;
    }
    (void)t0;
    free(extra);
    ivs_iv_use(NULL);
    ivs_bridge_close(b);
    if (rc == 0 && (st.invalid_json + st.bad_message_id + st.empty + st.bad_nul + st.bad_free_fn + st.double_give +
                        (st.given - st.freed) + st.timeout_early !=
                    0))
        rc = 1;
    return rc;
}
