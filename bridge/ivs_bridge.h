/*
 * ivs_bridge.h - the C shim between Tencent's IoT Video device SDK and the iotvideo-signaling
 * daemon.
 *
 * The vendor's camera application links ivs_bridge.c and calls these functions from its SDK
 * callbacks (ivs_bridge_iv.c does that wiring for the iv_avt_* callbacks). The shim forwards
 * each call over one Unix stream socket to the daemon's bridge:// listener, using the frame
 * protocol in docs/bridge-protocol.md.
 *
 * Guarantees the camera application can rely on:
 *   - Nothing here connects, reads or writes on the calling thread: one background thread owns
 *     the socket, connects, reconnects with a backoff (50 ms doubling to 1 s) and replays the
 *     viewer/talker/role state after every (re)connect.
 *   - ivs_bridge_command and ivs_bridge_request_stream never wait longer than reply_timeout_ms,
 *     measured from the moment they are called (on CLOCK_MONOTONIC), and answer at once while the
 *     daemon is not connected. (Where pthread_condattr_setclock cannot select CLOCK_MONOTONIC, the
 *     waits are timed on CLOCK_REALTIME, still to the monotonic deadline, but a step of the wall
 *     clock backwards during a wait lengthens that wait.)
 *   - ivs_bridge_command always hands back a non-empty, NUL-terminated JSON reply.
 *   - The event functions never block beyond a short internal mutex.
 *   - No SIGPIPE is ever raised (MSG_NOSIGNAL), sockets are close-on-exec, nothing is written to
 *     stdout or stderr (unless built with -DIVS_BRIDGE_DEBUG).
 *
 * Every function is safe to call from any number of threads at once, between ivs_bridge_open
 * and ivs_bridge_close.
 *
 * C99, POSIX (pthreads, clock_gettime with CLOCK_MONOTONIC, Unix sockets); pipe2 on Linux.
 */
#ifndef IVS_BRIDGE_H
#define IVS_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Roles for ivs_bridge_set_role. */
#define IVS_ROLE_OWNER 0
#define IVS_ROLE_SHARER 1

/* Defaults applied for zero / NULL option fields. */
#define IVS_DEFAULT_SOCKET_PATH "/run/iotvideo-signaling/bridge.sock"
#define IVS_DEFAULT_REPLY_TIMEOUT_MS 2000u
#define IVS_DEFAULT_EVENT_QUEUE_LEN 256u

/* Limits. */
#define IVS_MAX_BODY 65536u    /* the protocol's MAX_BODY: longest frame body either way */
#define IVS_MAX_IN_FLIGHT 1024 /* commands + stream requests waiting at once */
#define IVS_MAX_EVENT_QUEUE_LEN 65536u /* larger event_queue_len values are clamped to it */

/*
 * The fixed error replies of ivs_bridge_command (result codes as in the panel protocol).
 * When the command's src holds "message_id" followed by an integer (at most 16 digits, optional
 * minus) or a string of at most 64 characters from [A-Za-z0-9_.:-], the reply carries
 * "message_id" with the same value and JSON type, as its last member, e.g.
 *   {"confirmation_topic":"","result":"7","reason":"signaling service timeout","message_id":7}
 */
#define IVS_REASON_UNAVAILABLE "signaling service unavailable" /* result "7": not connected, or lost */
#define IVS_REASON_TIMEOUT "signaling service timeout"         /* result "7": no answer in time */
#define IVS_REASON_BUSY "signaling service busy"               /* result "5": too many in flight */
#define IVS_REASON_TOO_LARGE "command too large"               /* result "1": src_len > 65536 */
#define IVS_REASON_ERROR "signaling service error"             /* result "7": ERROR or garbage */

typedef struct ivs_bridge ivs_bridge;

typedef struct {
    const char *socket_path;   /* NULL: IVS_DEFAULT_SOCKET_PATH; copied by ivs_bridge_open */
    uint32_t reply_timeout_ms; /* 0: 2000 */
    uint32_t event_queue_len;  /* 0: 256; events waiting to be sent, at most (see below); values
                                  over IVS_MAX_EVENT_QUEUE_LEN (65536) are clamped to it */
} ivs_options;

/*
 * Allocates a bridge and starts its background thread; returns at once, without connecting
 * (the thread connects, and reconnects whenever the connection fails). opts may be NULL (all
 * defaults). Returns NULL when memory, a pipe or a thread cannot be had, or when socket_path does
 * not fit a sockaddr_un. Call from one thread; the result may then be shared by all threads.
 */
ivs_bridge *ivs_bridge_open(const ivs_options *opts);

/*
 * Stops the background thread (waking it from any wait), answers every call still waiting with
 * "signaling service unavailable", waits for calls already inside the bridge to return, closes
 * the socket and frees everything. NULL is ignored. No call may START on b once close has begun,
 * and any use of b after close returns is undefined.
 */
void ivs_bridge_close(ivs_bridge *b);

/*
 * USR_DATA: sends src (the bytes the SDK handed over, src_len of them; src may be NULL when
 * src_len is 0) as a COMMAND for (visitor, channel) and waits for the daemon's REPLY.
 *
 * On success returns 0 with *reply = a malloc'd copy of the reply followed by a NUL,
 * *reply_len = its length without the NUL (never 0).
 * On failure returns -1 with *reply = one of the fixed JSON error replies above (malloc'd, NUL
 * terminated, *reply_len without the NUL):
 *   unavailable - the daemon is not connected (answered at once, nothing is sent), or the
 *                 connection was lost, or the bridge closed, before the answer came (the
 *                 command was sent then, and the daemon may have run it),
 *   timeout     - reply_timeout_ms passed since the call began,
 *   busy        - IVS_MAX_IN_FLIGHT requests already wait, or 256 KiB of request frames wait to be
 *                 sent (a daemon that does not read),
 *   too large   - src_len > IVS_MAX_BODY,
 *   error       - the daemon answered ERROR, or the connection broke on garbage from it.
 * When even that reply cannot be allocated (or b is NULL), *reply points to a static constant
 * error reply; ivs_bridge_free recognises it and leaves it alone. If reply or reply_len is NULL
 * the call returns -1 and stores what it can.
 * Either way the buffer is released with ivs_bridge_free(*reply, *reply_len).
 *
 * Blocks the calling thread for at most reply_timeout_ms. Any number of threads may call it at
 * once; they share the one connection.
 */
int ivs_bridge_command(ivs_bridge *b, uint32_t visitor, uint32_t channel, const char *src, uint32_t src_len,
                       uint8_t **reply, size_t *reply_len);

/*
 * Frees a reply of ivs_bridge_command; buf NULL and the static fallback reply are ignored. Its
 * signature is the SDK's buf_free_fn (iv_cm_memory_s), so it can be handed over as is. Any thread.
 */
void ivs_bridge_free(uint8_t *buf, size_t len);

/*
 * The SDK's stream request (request_type 0: the peer wants a stream from the camera, live or
 * playback; 1: the peer wants to send one, talk-back). Sends STREAM_REQUEST and waits, like
 * ivs_bridge_command and with the same bound, for STREAM_ANSWER. Returns 0 (accept) or 1 (refuse)
 * as the daemon decided.
 * FAILS CLOSED: while the daemon is not connected, on timeout, on an ERROR answer, when too many
 * requests wait, for an unknown request_type or a NULL b it returns 1 (refuse), so a camera whose
 * signaling service is down never streams against the daemon's admission policy.
 */
int ivs_bridge_request_stream(ivs_bridge *b, uint32_t visitor, uint32_t channel, int request_type);

/*
 * Events. Each one updates the bridge's state table (who views which video_res_type, who talks,
 * roles) and, while the daemon is connected, queues the matching frame for the background thread.
 * They never block beyond a short mutex and never fail visibly.
 *
 * Only changes are forwarded: a start for an entry already in the table or a stop for one that is
 * not there updates nothing and sends nothing, so the daemon's view equals the table's.
 * Events and requests (commands, stream requests) reach the daemon in the order they were made,
 * from one thread or from several. A request whose caller timed out before its frame was sent is
 * not sent at all (one already handed to the socket may still arrive late).
 * When more than event_queue_len events wait to be sent (the daemon reads too slowly), the queued
 * events are dropped and the bridge sends RESYNC followed by the whole table instead, after the
 * requests already queued: a request queued before the overflow is sent, and answered, before
 * the RESYNC, without the dropped events that preceded it and before the resync's state arrives;
 * requests made after the overflow follow the table. After every
 * (re)connect the table is replayed (roles, viewers, talkers), so events that happen while the
 * daemon is away are not lost. video_res_type and role are sent in the one-byte arg field: values
 * outside 0..255 (a role outside 0..1) are ignored.
 */
void ivs_bridge_viewer_started(ivs_bridge *b, uint32_t visitor, uint32_t channel, int video_res_type);
void ivs_bridge_viewer_stopped(ivs_bridge *b, uint32_t visitor, uint32_t channel, int video_res_type);
void ivs_bridge_talk_started(ivs_bridge *b, uint32_t visitor, uint32_t channel);
void ivs_bridge_talk_stopped(ivs_bridge *b, uint32_t visitor, uint32_t channel);
/* The peer is gone: forgets its viewers, talk and role, and always sends PEER_LOST (the daemon
   may hold a session for it opened by a command alone). */
void ivs_bridge_peer_lost(ivs_bridge *b, uint32_t visitor, uint32_t channel);
/* The vendor application knows the visitor's role (the SDK does not tell): IVS_ROLE_OWNER or
   IVS_ROLE_SHARER. Without it the daemon applies its configured default role. Forgotten on
   ivs_bridge_peer_lost. */
void ivs_bridge_set_role(ivs_bridge *b, uint32_t visitor, uint32_t channel, int role);

#ifdef __cplusplus
}
#endif

#endif /* IVS_BRIDGE_H */
