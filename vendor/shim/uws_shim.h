/*
 * uws_shim.h: the C ABI of the uws crate over uWebSockets' C++ templates.
 *
 * Part of the uws crate (not upstream code). src/sys.rs is generated from
 * this header by bindgen (cargo feature `bindgen`).
 *
 * Every function that takes `int ssl` dispatches to the plain (0) or TLS (1)
 * instantiation; the pointer must come from an app of the same kind.
 * Pointers handed to callbacks are valid only during the callback unless
 * stated otherwise. No function throws; a C++ exception inside one aborts.
 */
#ifndef UWS_SHIM_H
#define UWS_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define UWS_NOEXCEPT noexcept
extern "C" {
#else
#define UWS_NOEXCEPT
#endif

/* Opaque handles. */
typedef struct uws_app_s uws_app_t;
typedef struct uws_ws_s uws_ws_t;
typedef struct uws_res_s uws_res_t;
typedef struct uws_req_s uws_req_t;
typedef struct uws_loop_s uws_loop_t;
typedef struct uws_listen_s uws_listen_t;
typedef struct uws_timer_s uws_timer_t;

/* Result of a WebSocket send, as uWebSockets reports it. */
typedef enum uws_send_status_e {
    UWS_SEND_BACKPRESSURE = 0,
    UWS_SEND_SUCCESS = 1,
    UWS_SEND_DROPPED = 2
} uws_send_status_t;

/* WebSocket opcodes. */
typedef enum uws_opcode_e {
    UWS_OPCODE_CONTINUATION = 0,
    UWS_OPCODE_TEXT = 1,
    UWS_OPCODE_BINARY = 2,
    UWS_OPCODE_CLOSE = 8,
    UWS_OPCODE_PING = 9,
    UWS_OPCODE_PONG = 10
} uws_opcode_t;

/* TLS options (used by SSL apps only). NULL fields are unset. */
typedef struct uws_tls_options_s {
    const char *key_file_name;
    const char *cert_file_name;
    const char *passphrase;
    const char *dh_params_file_name;
    const char *ca_file_name;
    const char *ssl_ciphers;
    int ssl_prefer_low_memory_usage;
} uws_tls_options_t;

/* Callbacks. `ctx` is the pointer given at registration, `user` the
 * per-socket pointer given to uws_res_upgrade. */
typedef void (*uws_http_handler_t)(void *ctx, uws_res_t *res, uws_req_t *req, void *ws_context);
typedef void (*uws_ws_handler_t)(void *ctx, uws_ws_t *ws, void *user);
typedef void (*uws_ws_message_handler_t)(void *ctx, uws_ws_t *ws, void *user, const char *data,
                                         size_t length, uws_opcode_t opcode);
typedef void (*uws_ws_data_handler_t)(void *ctx, uws_ws_t *ws, void *user, const char *data,
                                      size_t length);
typedef void (*uws_ws_subscription_handler_t)(void *ctx, uws_ws_t *ws, void *user, const char *topic,
                                              size_t topic_length, int new_count, int old_count);
typedef void (*uws_ws_close_handler_t)(void *ctx, uws_ws_t *ws, void *user, int code,
                                       const char *message, size_t length);
typedef void (*uws_callback_t)(void *arg);
typedef void (*uws_topic_cb_t)(void *arg, const char *topic, size_t length);
typedef void (*uws_header_cb_t)(void *arg, const char *key, size_t key_length, const char *value,
                                size_t value_length);

/* Everything uWebSockets' WebSocketBehavior holds. uWebSockets calls
 * std::terminate on idle_timeout in 1..7 or over 960 and on max_lifetime
 * over 240: uws_app_ws refuses those values instead (returns 0). */
typedef struct uws_ws_behavior_s {
    uint32_t compression;              /* uWS::CompressOptions bits */
    uint32_t max_payload_length;
    uint16_t idle_timeout;             /* seconds, 0 = off */
    uint32_t max_backpressure;         /* bytes, 0 = unlimited */
    int close_on_backpressure_limit;
    int reset_idle_timeout_on_send;
    int send_pings_automatically;
    uint16_t max_lifetime;             /* minutes, 0 = off */
    uws_http_handler_t upgrade;        /* GET with a Sec-WebSocket-Key; ws_context is set */
    uws_ws_handler_t open;
    uws_ws_message_handler_t message;
    uws_ws_message_handler_t dropped;
    uws_ws_handler_t drain;
    uws_ws_data_handler_t ping;
    uws_ws_data_handler_t pong;
    uws_ws_subscription_handler_t subscription;
    uws_ws_close_handler_t close;
    void *ctx;
} uws_ws_behavior_t;

/* ---- loop (one per thread) ---- */

/* This thread's loop, created on first use. */
uws_loop_t *uws_loop_get(void) UWS_NOEXCEPT;
/* Runs this thread's loop until nothing keeps it alive. */
void uws_loop_run(uws_loop_t *loop) UWS_NOEXCEPT;
/* Thread-safe: queues cb(arg) to run on the loop's thread and wakes it. */
void uws_loop_defer(uws_loop_t *loop, uws_callback_t cb, void *arg) UWS_NOEXCEPT;

/* Timers. A fallthrough timer does not keep the loop running. cb(arg) runs
 * on the loop thread after ms, then every repeat_ms (0 = once). */
uws_timer_t *uws_timer_create(uws_loop_t *loop, int fallthrough) UWS_NOEXCEPT;
void uws_timer_set(uws_timer_t *timer, uws_callback_t cb, void *arg, int ms, int repeat_ms) UWS_NOEXCEPT;
void uws_timer_close(uws_timer_t *timer) UWS_NOEXCEPT;

/* ---- app ---- */

/* NULL when the app cannot be created (for TLS: bad certificate or key). */
uws_app_t *uws_app_create(int ssl, const uws_tls_options_t *options) UWS_NOEXCEPT;
void uws_app_destroy(int ssl, uws_app_t *app) UWS_NOEXCEPT;
/* The most a request head (request line and header lines) may take, in bytes; a bigger one
 * is answered 431 however its bytes arrive. Our patch 0007 (vendor/patches) makes this
 * possible; built without the patches it does nothing. */
void uws_app_set_max_header_size(int ssl, uws_app_t *app, unsigned int bytes) UWS_NOEXCEPT;
/* Every request on every method and path not taken by the upgrade route. */
void uws_app_any(int ssl, uws_app_t *app, const char *pattern, uws_http_handler_t handler, void *ctx) UWS_NOEXCEPT;
/* Registers a WebSocket route; returns 0 for options uWebSockets rejects. */
int uws_app_ws(int ssl, uws_app_t *app, const char *pattern, const uws_ws_behavior_t *behavior) UWS_NOEXCEPT;
/* host NULL or "" = all interfaces; port 0 = ephemeral. NULL on failure. */
uws_listen_t *uws_app_listen(int ssl, uws_app_t *app, const char *host, int port, int options) UWS_NOEXCEPT;
uws_listen_t *uws_app_listen_unix(int ssl, uws_app_t *app, const char *path, int options) UWS_NOEXCEPT;
int uws_listen_port(int ssl, uws_listen_t *listen) UWS_NOEXCEPT;
void uws_listen_close(int ssl, uws_listen_t *listen) UWS_NOEXCEPT;
/* Closes the listen socket's whole HTTP context: every listen socket of
 * the app and every HTTP connection (not the WebSockets). */
void uws_listen_close_http(int ssl, uws_listen_t *listen) UWS_NOEXCEPT;
/* The app's SSL_CTX (NULL for a plain app). */
void *uws_app_native_handle(int ssl, uws_app_t *app) UWS_NOEXCEPT;
/* TLS: serves hostname_pattern (SNI) with its own certificate on the
 * listen socket's context, routed like every other request. */
void uws_listen_add_server_name(int ssl, uws_listen_t *listen, const char *hostname_pattern,
                                const uws_tls_options_t *options) UWS_NOEXCEPT;
/* Closes listen sockets, HTTP sockets and WebSockets (without close frames). */
void uws_app_close(int ssl, uws_app_t *app) UWS_NOEXCEPT;
/* Returns 1 when the topic had subscribers (the message is queued for them). */
int uws_app_publish(int ssl, uws_app_t *app, const char *topic, size_t topic_length,
                    const char *message, size_t length, uws_opcode_t opcode, int compress) UWS_NOEXCEPT;
unsigned int uws_app_num_subscribers(int ssl, uws_app_t *app, const char *topic, size_t topic_length) UWS_NOEXCEPT;

/* ---- WebSocket ---- */

uws_send_status_t uws_ws_send(int ssl, uws_ws_t *ws, const char *data, size_t length,
                              uws_opcode_t opcode, int compress) UWS_NOEXCEPT;
/* Sends a close frame, runs the close handler now, then shuts down. */
void uws_ws_end(int ssl, uws_ws_t *ws, int code, const char *message, size_t length) UWS_NOEXCEPT;
/* Closes the TCP connection at once; the close handler sees 1006. */
void uws_ws_close(int ssl, uws_ws_t *ws) UWS_NOEXCEPT;
/* Runs cb(arg) with the socket corked, then flushes. */
void uws_ws_cork(int ssl, uws_ws_t *ws, uws_callback_t cb, void *arg) UWS_NOEXCEPT;
int uws_ws_subscribe(int ssl, uws_ws_t *ws, const char *topic, size_t length) UWS_NOEXCEPT;
int uws_ws_unsubscribe(int ssl, uws_ws_t *ws, const char *topic, size_t length) UWS_NOEXCEPT;
int uws_ws_is_subscribed(int ssl, uws_ws_t *ws, const char *topic, size_t length) UWS_NOEXCEPT;
void uws_ws_iterate_topics(int ssl, uws_ws_t *ws, uws_topic_cb_t cb, void *arg) UWS_NOEXCEPT;
/* Publishes to everyone subscribed except this socket. 0 when this socket
 * subscribes to nothing (nothing was published). */
int uws_ws_publish(int ssl, uws_ws_t *ws, const char *topic, size_t topic_length,
                   const char *message, size_t length, uws_opcode_t opcode, int compress) UWS_NOEXCEPT;
unsigned int uws_ws_buffered_amount(int ssl, uws_ws_t *ws) UWS_NOEXCEPT;
/* Writes the raw remote IP (4 or 16 bytes) into buf; *length is set to the
 * count (0 when there is none, e.g. on a unix socket). */
void uws_ws_remote_address(int ssl, uws_ws_t *ws, char *buf, int *length) UWS_NOEXCEPT;

/* ---- HTTP request (valid during the handler only) ---- */

/* The method as sent by the client. */
const char *uws_req_method(uws_req_t *req, size_t *length) UWS_NOEXCEPT;
/* Path without the query string. */
const char *uws_req_url(uws_req_t *req, size_t *length) UWS_NOEXCEPT;
/* Path with the query string. */
const char *uws_req_full_url(uws_req_t *req, size_t *length) UWS_NOEXCEPT;
/* Raw query string without '?'. */
const char *uws_req_query(uws_req_t *req, size_t *length) UWS_NOEXCEPT;
/* Header by lower-case name; NULL when absent. */
const char *uws_req_header(uws_req_t *req, const char *lower_name, size_t name_length, size_t *length) UWS_NOEXCEPT;
void uws_req_for_each_header(uws_req_t *req, uws_header_cb_t cb, void *arg) UWS_NOEXCEPT;

/* ---- HTTP response ---- */

void uws_res_write_status(int ssl, uws_res_t *res, const char *status, size_t length) UWS_NOEXCEPT;
void uws_res_write_header(int ssl, uws_res_t *res, const char *key, size_t key_length,
                          const char *value, size_t value_length) UWS_NOEXCEPT;
/* Ends the response with body; close_connection adds Connection: close. */
void uws_res_end(int ssl, uws_res_t *res, const char *body, size_t length, int close_connection) UWS_NOEXCEPT;
/* Raw remote IP of the HTTP connection, as uws_ws_remote_address. */
void uws_res_remote_address(int ssl, uws_res_t *res, char *buf, int *length) UWS_NOEXCEPT;
/* Writes 101 and the given extra headers (already written by the caller
 * with uws_res_write_header after uws_res_write_status), then upgrades.
 * protocol is the one subprotocol to answer with (length 0: none). Calls
 * the open handler before returning. */
void uws_res_upgrade(int ssl, uws_res_t *res, void *user, const char *key, size_t key_length,
                     const char *protocol, size_t protocol_length, const char *extensions,
                     size_t extensions_length, void *ws_context) UWS_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* UWS_SHIM_H */
