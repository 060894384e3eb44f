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
/* Callbacks of a response answered later: `token` is the value given when
 * the callback was attached. */
typedef void (*uws_res_aborted_cb_t)(void *ctx, uint64_t token);
typedef void (*uws_res_data_cb_t)(void *ctx, uint64_t token, const char *data, size_t length, int last);
/* Returns 1 when the handler is done with this writable event. */
typedef int (*uws_res_writable_cb_t)(void *ctx, uint64_t token, uint64_t offset);

/* Everything uWebSockets' WebSocketBehavior holds. uWebSockets calls
 * std::terminate on idle_timeout in 1..7 or over 960 and on max_lifetime
 * over 240: uws_app_ws refuses those values instead (returns 0).
 * subscription_enabled, when set, is read before every subscription event:
 * 0 skips the callback (uWebSockets then walks a closing socket's topics
 * without leaving C++). It must outlive the app. */
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
    const int *subscription_enabled;
    void *ctx;
} uws_ws_behavior_t;

/* Listen options. */
typedef enum uws_listen_option_e {
    /* Share the port with other sockets that set SO_REUSEPORT. */
    UWS_LISTEN_REUSE_PORT = 0,
    /* Own the port alone (no SO_REUSEPORT). */
    UWS_LISTEN_EXCLUSIVE_PORT = 1
} uws_listen_option_t;

/* ---- loop (one per thread) ---- */

/* This thread's loop, created on first use. The caller owns it: uWebSockets
 * does not free it at thread exit, uws_loop_free does. NULL (errno set) when
 * the process has no file descriptors left for a new loop. */
uws_loop_t *uws_loop_get(void) UWS_NOEXCEPT;
/* Frees a loop of uws_loop_get once no app uses it. Callbacks still queued
 * by uws_loop_defer are dropped (their drop function runs). Touches no
 * thread-local state of uWebSockets, so it may run during thread exit. */
void uws_loop_free(uws_loop_t *loop) UWS_NOEXCEPT;
/* Runs this thread's loop until nothing keeps it alive. */
void uws_loop_run(uws_loop_t *loop) UWS_NOEXCEPT;
/* Thread-safe: queues cb(arg) to run on the loop's thread and wakes it.
 * If the loop is freed first, drop(arg) runs instead (drop may be NULL). */
void uws_loop_defer(uws_loop_t *loop, uws_callback_t cb, uws_callback_t drop, void *arg) UWS_NOEXCEPT;

/* Runs cb(arg) at the end of every iteration of the loop, until removed by
 * `key` (not from inside a post callback). */
void uws_loop_add_post_handler(uws_loop_t *loop, void *key, uws_callback_t cb, void *arg) UWS_NOEXCEPT;
void uws_loop_remove_post_handler(uws_loop_t *loop, void *key) UWS_NOEXCEPT;

/* Timers. A fallthrough timer does not keep the loop running. cb(arg) runs
 * on the loop thread after ms, then every repeat_ms (0 = once). Closing is
 * allowed inside the timer's own callback. uws_timer_create returns NULL
 * (errno set) when the process has no file descriptor left for it. */
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
/* host NULL or "" = all interfaces; port 0 = ephemeral; options is a
 * uws_listen_option_t. NULL on failure, with *error set to the errno of the
 * failing system call (0 when none was recorded, e.g. a name that did not
 * resolve). */
uws_listen_t *uws_app_listen(int ssl, uws_app_t *app, const char *host, int port, int options,
                             int *error) UWS_NOEXCEPT;
uws_listen_t *uws_app_listen_unix(int ssl, uws_app_t *app, const char *path, int options,
                                  int *error) UWS_NOEXCEPT;
int uws_listen_port(int ssl, uws_listen_t *listen) UWS_NOEXCEPT;
void uws_listen_close(int ssl, uws_listen_t *listen) UWS_NOEXCEPT;
/* The socket context of a listen socket (the app's HTTP context). Valid as
 * long as the app. */
void *uws_listen_context(int ssl, uws_listen_t *listen) UWS_NOEXCEPT;
/* The app's HTTP socket context (valid as long as the app). */
void *uws_app_http_context(int ssl, uws_app_t *app) UWS_NOEXCEPT;
/* Serves a connection accepted elsewhere (a non-blocking socket) on the
 * app's HTTP context; the fd belongs to the app from then on. */
void uws_app_adopt(int ssl, uws_app_t *app, int fd) UWS_NOEXCEPT;
/* TLS: serves hostname_pattern (SNI) with its own certificate on an HTTP
 * context, routed like every other request. */
void uws_context_add_server_name(int ssl, void *context, const char *hostname_pattern,
                                 const uws_tls_options_t *options) UWS_NOEXCEPT;
/* The graceful part of a stop, on an HTTP context: closes its listen
 * sockets and every HTTP connection that waits between requests with
 * nothing left to write. Connections with a request in progress, or a
 * response still being written, are left alone. Returns how many are
 * left. Runs no callback of ours. */
int uws_context_stop_http(int ssl, void *context) UWS_NOEXCEPT;
/* Closes every listen socket and every connection of a socket context
 * (HTTP or WebSocket), also those that close callbacks open or close
 * meanwhile. WebSockets not yet closing get their close handler (1006). */
void uws_context_close_all(int ssl, void *context) UWS_NOEXCEPT;
/* The app's SSL_CTX (NULL for a plain app). */
void *uws_app_native_handle(int ssl, uws_app_t *app) UWS_NOEXCEPT;
/* Closes listen sockets, HTTP sockets and WebSockets (without close frames). */
void uws_app_close(int ssl, uws_app_t *app) UWS_NOEXCEPT;
/* Returns 1 when the topic had subscribers (the message is queued for them). */
int uws_app_publish(int ssl, uws_app_t *app, const char *topic, size_t topic_length,
                    const char *message, size_t length, uws_opcode_t opcode, int compress) UWS_NOEXCEPT;
unsigned int uws_app_num_subscribers(int ssl, uws_app_t *app, const char *topic, size_t topic_length) UWS_NOEXCEPT;

/* ---- routes: Bun's `routes` on uWebSockets' own router ---- */

/* A route table: patterns matched by a uWS::HttpRouter of its own
 * (static segments, then `:param` segments, then a trailing `*`, with
 * backtracking), each with what every method gets: a prebuilt response
 * written without leaving C++, a handler of the Rust side, or fetch. */
typedef struct uws_routes_s uws_routes_t;
/* What an app's requests go through: the installed route table, then
 * fetch. Lives as long as its app. */
typedef struct uws_router_s uws_router_t;
/* A route's handler: `user` is the table's pointer (uws_routes_create),
 * `handler` the id given to uws_routes_set_handler. */
typedef void (*uws_route_handler_t)(void *ctx, void *user, uws_res_t *res, uws_req_t *req,
                                    void *ws_context, uint32_t handler);

uws_routes_t *uws_routes_create(void *user) UWS_NOEXCEPT;
/* Frees a table that was never installed. */
void uws_routes_free(uws_routes_t *routes) UWS_NOEXCEPT;
/* Adds a pattern (`/users/:id`, `/api/*`); returns its index. */
int uws_routes_add(uws_routes_t *routes, const char *pattern, size_t pattern_length) UWS_NOEXCEPT;
/* Route `route` answers `method` (length 0: every method without its own
 * entry) with a prebuilt response: `head` is the status line without
 * "HTTP/1.1 " followed by the header lines, CRLF between them and none at
 * the end ("200 OK\r\nContent-Type: text/plain"); uWebSockets adds Date,
 * Content-Length and the body. HEAD gets the head and the Content-Length
 * of the body. */
void uws_routes_set_static(uws_routes_t *routes, int route, const char *method, size_t method_length,
                           const char *head, size_t head_length, const char *body,
                           size_t body_length) UWS_NOEXCEPT;
/* Route `route` answers `method` (length 0: every method) by calling the
 * router's route handler with `handler`. For a method with no entry of its
 * own (HEAD: nor GET's) and no entry for every method, the router goes on
 * to the next route that matches, and fetch when none does. */
void uws_routes_set_handler(uws_routes_t *routes, int route, const char *method, size_t method_length,
                            uint32_t handler) UWS_NOEXCEPT;
/* Requests no route takes go to the route handler with `handler` instead
 * of fetch. */
void uws_routes_set_fallback(uws_routes_t *routes, uint32_t handler) UWS_NOEXCEPT;

/* Every request on `pattern` (and, through uws_app_ws_routed, every
 * WebSocket handshake) goes through the router: its route table if one is
 * installed, otherwise `fetch`. */
uws_router_t *uws_app_router(int ssl, uws_app_t *app, const char *pattern, uws_http_handler_t fetch,
                             uws_route_handler_t route, void *ctx) UWS_NOEXCEPT;
/* Installs `routes` (NULL: none) for the requests that come from now on;
 * the router owns it. The table it replaces is freed once no request it
 * routed is in a handler. */
void uws_router_set(uws_router_t *router, uws_routes_t *routes) UWS_NOEXCEPT;
/* Prebuilt responses end their connection (Connection: close) while set. */
void uws_router_set_closing(uws_router_t *router, int closing) UWS_NOEXCEPT;
/* As uws_app_ws, with handshakes routed by `router` (their ws_context set)
 * instead of going to behavior->upgrade. */
int uws_app_ws_routed(int ssl, uws_app_t *app, const char *pattern, const uws_ws_behavior_t *behavior,
                      uws_router_t *router) UWS_NOEXCEPT;

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

/* The raw value of the route's index-th `:param` (in pattern order);
 * NULL past the last. */
const char *uws_req_parameter(uws_req_t *req, unsigned int index, size_t *length) UWS_NOEXCEPT;

/* ---- HTTP response ---- */

void uws_res_write_status(int ssl, uws_res_t *res, const char *status, size_t length) UWS_NOEXCEPT;
void uws_res_write_header(int ssl, uws_res_t *res, const char *key, size_t key_length,
                          const char *value, size_t value_length) UWS_NOEXCEPT;
/* Whether the connection of this response has been closed (its memory stays
 * valid until the current loop iteration ends). */
int uws_res_closed(int ssl, uws_res_t *res) UWS_NOEXCEPT;
/* Ends the response with body; close_connection adds Connection: close. */
void uws_res_end(int ssl, uws_res_t *res, const char *body, size_t length, int close_connection) UWS_NOEXCEPT;
/* Raw remote IP of the HTTP connection, as uws_ws_remote_address. */
void uws_res_remote_address(int ssl, uws_res_t *res, char *buf, int *length) UWS_NOEXCEPT;
/* The remote port of the HTTP connection (0 when there is none). */
int uws_res_remote_port(int ssl, uws_res_t *res) UWS_NOEXCEPT;
/* The connection's idle timeout from now on, in seconds (0: none);
 * uWebSockets sets its own again when the response ends or a body arrives. */
void uws_res_timeout(int ssl, uws_res_t *res, unsigned int seconds) UWS_NOEXCEPT;
/* A response answered after the request handler returned. Attach the
 * abort handler inside the request handler (uWebSockets requires it); it
 * runs when the connection goes away before the response has ended, and is
 * dropped once the response ends. A NULL callback detaches. */
void uws_res_on_aborted(int ssl, uws_res_t *res, uws_res_aborted_cb_t cb, void *ctx, uint64_t token) UWS_NOEXCEPT;
/* The request body, chunk by chunk (`last` on the final, maybe empty,
 * chunk). Attach inside the request handler. NULL detaches. */
void uws_res_on_data(int ssl, uws_res_t *res, uws_res_data_cb_t cb, void *ctx, uint64_t token) UWS_NOEXCEPT;
/* Called when a response that could not be written at once can take more.
 * NULL detaches. */
void uws_res_on_writable(int ssl, uws_res_t *res, uws_res_writable_cb_t cb, void *ctx, uint64_t token) UWS_NOEXCEPT;
/* Runs cb(arg) with the response corked (responses written outside the
 * request handler must be). */
void uws_res_cork(int ssl, uws_res_t *res, uws_callback_t cb, void *arg) UWS_NOEXCEPT;
/* Writes a chunk of a chunked response (status and headers first, if not
 * written yet). Returns 1 when the socket took it all, 0 when some of it is
 * buffered (wait for the writable callback before writing more). */
int uws_res_write(int ssl, uws_res_t *res, const char *data, size_t length) UWS_NOEXCEPT;
/* Bytes of this response buffered in user space. */
size_t uws_res_buffered_amount(int ssl, uws_res_t *res) UWS_NOEXCEPT;
/* Ends a response without a body (HEAD): with has_length, Content-Length
 * says `length`, the size the body would have. */
void uws_res_end_without_body(int ssl, uws_res_t *res, int has_length, size_t length, int close_connection) UWS_NOEXCEPT;
/* Closes the connection of this response at once. */
void uws_res_close(int ssl, uws_res_t *res) UWS_NOEXCEPT;
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

/* Client connections. */
#include "uws_client.h"

#endif /* UWS_SHIM_H */
