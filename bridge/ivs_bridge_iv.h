/*
 * ivs_bridge_iv.h - the IoT Video device SDK's iv_avt_* callbacks, implemented with ivs_bridge.
 *
 * Compiled only where the vendor has the SDK's headers (iv_av.h, which includes iv_cm.h). Each
 * function below has exactly the signature of one member of the SDK's iv_avt_init_parm_s, so it
 * can be stored there directly; a vendor whose callbacks must also start encoders, speakers and so
 * on calls these from its own callbacks instead (before or after its own work: they never block,
 * except ivs_iv_recv_command, see below).
 *
 *   iv_avt_init_parm_s p = {0};
 *   ivs_iv_use(ivs_bridge_open(NULL));   before iv_avt_init, once
 *   p.iv_avt_recv_command_cb = ivs_iv_recv_command;
 *   p.iv_avt_start_real_play_cb = ivs_iv_start_real_play;   ... and so on
 *   iv_avt_init(&p);
 */
#ifndef IVS_BRIDGE_IV_H
#define IVS_BRIDGE_IV_H

#include "iv_av.h"
#include "ivs_bridge.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Whether the dst.size of a USR_DATA reply counts the terminating NUL. The SDK's own sample sets
 * size = strlen + 1; the reply is JSON text, so the default (0) hands over the text alone, the NUL
 * still being there after it. Define IVS_REPLY_SIZE_COUNTS_NUL=1 if your SDK version wants it.
 */
#ifndef IVS_REPLY_SIZE_COUNTS_NUL
#define IVS_REPLY_SIZE_COUNTS_NUL 0
#endif

/* The bridge the callbacks use. Call once before iv_avt_init (the SDK's threads read it without a
   lock); while it is NULL every command gets the static error reply and every stream request is
   refused. */
void ivs_iv_use(ivs_bridge *b);

/*
 * iv_avt_recv_command_cb.
 *   IV_AVT_COMMAND_USR_DATA: args is an iv_avt_usr_data_parm_s; its dst receives the reply of
 *     ivs_bridge_command (never empty; buf_free_fn = ivs_bridge_free). Blocks the SDK thread for
 *     at most the bridge's reply_timeout_ms.
 *   IV_AVT_COMMAND_REQ_STREAM: args is an iv_avt_req_stream_param_s; request_result becomes the
 *     daemon's admission (IV_AVT_DEV_ACCEPT / IV_AVT_DEV_REFUSE), refuse when the daemon cannot
 *     answer (see ivs_bridge_request_stream). Same bound.
 *   Anything else (channel names, I frames, playback, file lists, calls): not the signaling
 *     daemon's business; args is left untouched.
 * Returns 0.
 */
int ivs_iv_recv_command(iv_avt_command_type_e command, uint32_t visitor, uint32_t channel,
                        iv_avt_video_res_type_e video_res_type, void *args);

/* iv_avt_start_real_play_cb / iv_avt_stop_real_play_cb: a viewer starts or stops a stream of one
   video_res_type (ivs_bridge_viewer_started / _stopped). args is not used. */
void ivs_iv_start_real_play(uint32_t visitor, uint32_t channel, iv_avt_video_res_type_e video_res_type, void *args);
void ivs_iv_stop_real_play(uint32_t visitor, uint32_t channel, iv_avt_video_res_type_e video_res_type);

/* iv_avt_start_recv_stream_cb / iv_avt_stop_recv_stream_cb: the peer starts or stops sending a
   stream, i.e. talk-back (ivs_bridge_talk_started / _stopped), whatever its stream_type. Return 0. */
int ivs_iv_start_recv_stream(uint32_t visitor, uint32_t channel, iv_avt_stream_type_e stream_type,
                             iv_cm_av_data_info_s *p_av_data_info);
int ivs_iv_stop_recv_stream(uint32_t visitor, uint32_t channel, iv_avt_stream_type_e stream_type);

/* iv_avt_notify_cb: IV_AVT_EVENT_P2P_PEER_ERROR and IV_AVT_EVENT_P2P_LINK_DISCONNECT mean the peer
   is gone (ivs_bridge_peer_lost); every other event is ignored. */
void ivs_iv_notify(iv_avt_event_e event, uint32_t visitor, uint32_t channel, iv_avt_video_res_type_e video_res_type);

#ifdef __cplusplus
}
#endif

#endif /* IVS_BRIDGE_IV_H */
