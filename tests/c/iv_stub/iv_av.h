/*
 * STAND-IN for the IoT Video device SDK's iv_av.h, for the tests only (see iv_cm.h here).
 *
 * Only the enums, argument structs and callback shapes the glue (bridge/ivs_bridge_iv.c) and the
 * fake SDK (tests/c/fake_sdk.c) need, matching the SDK's published declarations in names, values,
 * member order and types.
 */
#ifndef IV_AV_H_STAND_IN
#define IV_AV_H_STAND_IN

#include <stdint.h>

#include "iv_cm.h"

typedef enum {
    IV_AVT_STREAM_TYPE_AUDIO = 0,
    IV_AVT_STREAM_TYPE_VIDEO = 1,
    IV_AVT_STREAM_TYPE_AV = 2,
    IV_AVT_STREAM_TYPE_MJPG = 3,
    IV_AVT_STREAM_TYPE_BUTT
} iv_avt_stream_type_e;

typedef enum { IV_AVT_DEV_ACCEPT = 0, IV_AVT_DEV_REFUSE = 1, IV_AVT_DEV_STATUS_BUTT = 10 } iv_avt_device_status_e;

typedef enum {
    IV_AVT_REQUEST_SEND_STREAM = 0, /* the peer wants a stream from the device (live, playback) */
    IV_AVT_REQUEST_RECV_STREAM = 1, /* the peer wants to send one (talk-back) */
    IV_AVT_REQUEST_BUTT
} iv_avt_request_type_e;

typedef enum {
    IV_AVT_VIDEO_RES_FL = 0,
    IV_AVT_VIDEO_RES_SD = 1,
    IV_AVT_VIDEO_RES_HD = 2,
    IV_AVT_VIDEO_RES_PB = 3,
    IV_AVT_VIDEO_AUDIO = 4,
    IV_AVT_VIDEO_RES_BUTT
} iv_avt_video_res_type_e;

/* IV_AVT_COMMAND_USR_DATA's args */
typedef struct {
    char *src;
    uint32_t src_len;
    iv_cm_memory_s dst;
} iv_avt_usr_data_parm_s;

/* IV_AVT_COMMAND_REQ_STREAM's args */
typedef struct {
    iv_avt_request_type_e request_type;
    iv_avt_device_status_e request_result;
} iv_avt_req_stream_param_s;

typedef enum {
    IV_AVT_EVENT_P2P_PEER_READY = 0,
    IV_AVT_EVENT_P2P_PEER_CONNECT_FAIL = 1,
    IV_AVT_EVENT_P2P_PEER_ERROR = 2,
    IV_AVT_EVENT_P2P_PEER_ADDR_CHANGED = 3,
    IV_AVT_EVENT_P2P_WATERMARK_LOW = 4,
    IV_AVT_EVENT_P2P_WATERMARK_WARN = 5,
    IV_AVT_EVENT_P2P_WATERMARK_HIGH = 6,
    IV_AVT_EVENT_P2P_LOCAL_NET_READY = 7,
    IV_AVT_EVENT_P2P_LINK_DISCONNECT = 8,
    IV_AVT_EVENT_P2P_CLI_SEND_CLOSE = 9,
    IV_AVT_EVENT_P2P_BUTT
} iv_avt_event_e;

typedef enum {
    IV_AVT_COMMAND_USR_DATA = 0,
    IV_AVT_COMMAND_REQ_STREAM = 1,
    IV_AVT_COMMAND_CHN_NAME = 2,
    IV_AVT_COMMAND_REQ_IFRAME = 3,
    /* the SDK continues with playback, file-list and call commands; the glue ignores them all */
    IV_AVT_COMMAND_PLAYBACK_PAUSE = 4,
    IV_AVT_COMMAND_TYPE_BUTT = 24
} iv_avt_command_type_e;

#endif
