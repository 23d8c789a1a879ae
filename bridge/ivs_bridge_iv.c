/*
 * ivs_bridge_iv.c - the iv_avt_* callbacks of Tencent's IoT Video device SDK in terms of the
 * ivs_bridge API (see ivs_bridge_iv.h).
 *
 * Signatures follow the SDK's iv_av.h (iv_avt_init_parm_s). Where Tencent's documents disagree:
 *   - the older "audio/video transmission" page (product/1131/42234) describes a previous API
 *     (iv_avt_start_multiple_live_stream_cb, iv_avt_recv_user_data_cb ...); the header marks
 *     iv_avt_recv_user_data_cb deprecated in favour of IV_AVT_COMMAND_USR_DATA, which is what
 *     this file implements;
 *   - iv_avt_notify_cb carries a fourth argument, video_res_type, in the header; the glue ignores it;
 *   - the SDK's sample sets dst.size = strlen + 1 (NUL counted); see IVS_REPLY_SIZE_COUNTS_NUL.
 */
#include "ivs_bridge_iv.h"

#include <stddef.h>

static ivs_bridge *bridge;

void ivs_iv_use(ivs_bridge *b)
{
    bridge = b;
}

static void usr_data(uint32_t visitor, uint32_t channel, iv_avt_usr_data_parm_s *p)
{
    uint8_t *reply = NULL;
    size_t len = 0;
    ivs_bridge_command(bridge, visitor, channel, p->src, p->src_len, &reply, &len);
    p->dst.buf = reply;
    p->dst.size = len + (IVS_REPLY_SIZE_COUNTS_NUL ? 1u : 0u);
    p->dst.buf_free_fn = ivs_bridge_free;
}

int ivs_iv_recv_command(iv_avt_command_type_e command, uint32_t visitor, uint32_t channel,
                        iv_avt_video_res_type_e video_res_type, void *args)
{
    (void)video_res_type;
    if (!args)
        return 0;
    switch (command) {
    case IV_AVT_COMMAND_USR_DATA:
        usr_data(visitor, channel, (iv_avt_usr_data_parm_s *)args);
        break;
    case IV_AVT_COMMAND_REQ_STREAM: {
        iv_avt_req_stream_param_s *p = (iv_avt_req_stream_param_s *)args;
        p->request_result = ivs_bridge_request_stream(bridge, visitor, channel, (int)p->request_type) == 0
                                ? IV_AVT_DEV_ACCEPT
                                : IV_AVT_DEV_REFUSE;
        break;
    }
    default:
        /* channel names, I frames, playback control, file lists, calls: the vendor's own code */
        break;
    }
    return 0;
}

void ivs_iv_start_real_play(uint32_t visitor, uint32_t channel, iv_avt_video_res_type_e video_res_type, void *args)
{
    (void)args;
    ivs_bridge_viewer_started(bridge, visitor, channel, (int)video_res_type);
}

void ivs_iv_stop_real_play(uint32_t visitor, uint32_t channel, iv_avt_video_res_type_e video_res_type)
{
    ivs_bridge_viewer_stopped(bridge, visitor, channel, (int)video_res_type);
}

int ivs_iv_start_recv_stream(uint32_t visitor, uint32_t channel, iv_avt_stream_type_e stream_type,
                             iv_cm_av_data_info_s *p_av_data_info)
{
    (void)stream_type;
    (void)p_av_data_info;
    ivs_bridge_talk_started(bridge, visitor, channel);
    return 0;
}

int ivs_iv_stop_recv_stream(uint32_t visitor, uint32_t channel, iv_avt_stream_type_e stream_type)
{
    (void)stream_type;
    ivs_bridge_talk_stopped(bridge, visitor, channel);
    return 0;
}

void ivs_iv_notify(iv_avt_event_e event, uint32_t visitor, uint32_t channel, iv_avt_video_res_type_e video_res_type)
{
    (void)video_res_type;
    if (event == IV_AVT_EVENT_P2P_PEER_ERROR || event == IV_AVT_EVENT_P2P_LINK_DISCONNECT)
        ivs_bridge_peer_lost(bridge, visitor, channel);
}
