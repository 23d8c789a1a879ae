/*
 * STAND-IN for the IoT Video device SDK's iv_cm.h, for the tests only.
 *
 * Written from the declarations Tencent publishes for the SDK (iv_cm.h / iv_av.h of the device
 * SDK), keeping only the types bridge/ivs_bridge_iv.c uses, with the same names, member order and
 * types. A vendor build uses the SDK's real headers instead (put their directory first on the
 * include path); nothing here is shipped.
 */
#ifndef IV_CM_H_STAND_IN
#define IV_CM_H_STAND_IN

#include <stddef.h>
#include <stdint.h>

/* A buffer handed to the SDK, released by the SDK with buf_free_fn(buf, size). */
typedef struct {
    uint8_t *buf;
    size_t size;
    void (*buf_free_fn)(uint8_t *, size_t);
} iv_cm_memory_s;

/* The SDK's audio/video format description; the glue only passes pointers to it along. */
typedef struct iv_cm_av_data_info_s iv_cm_av_data_info_s;

#endif
