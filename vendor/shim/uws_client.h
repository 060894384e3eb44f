/*
 * uws_client.h: the client side of the uws crate's C ABI (WebSocket
 * connections this process opens). Included by uws_shim.h, whose types it
 * uses; part of the uws crate (not upstream code).
 *
 * A client connection is a uSockets socket with our own handshake and
 * uWebSockets' frame parser and formatter in client mode (masked frames).
 * Its handle is a uws_ws_t like a server socket's: uws_ws_cork,
 * uws_ws_buffered_amount and uws_ws_remote_address work on both; sending
 * and closing differ and have uws_client_* functions.
 */
#ifndef UWS_CLIENT_H
#define UWS_CLIENT_H

#ifndef UWS_SHIM_H
#error "include uws_shim.h, not uws_client.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* A uSockets socket context for client connections: one per thread's loop
 * and TLS setting. */
typedef struct uws_client_context_s uws_client_context_t;

/* Why a connection failed before it opened. */
typedef enum uws_client_failure_e {
    /* The TCP connection failed; error is the errno (e.g. ECONNREFUSED). */
    UWS_CLIENT_CONNECT = 0,
    /* The TLS handshake failed; detail says why when OpenSSL told. */
    UWS_CLIENT_TLS = 1,
    /* The connection closed before the complete response head arrived. */
    UWS_CLIENT_CLOSED = 2,
    /* The upgrade callback refused the response. */
    UWS_CLIENT_REFUSED = 3,
    /* The response head grew past 16 KiB without ending. */
    UWS_CLIENT_HEAD_TOO_LARGE = 4
} uws_client_failure_t;

/* permessage-deflate as negotiated, filled in by the upgrade callback. */
typedef struct uws_client_deflate_s {
    int enabled;
    /* Window bits of what we send (9-15); 0 sends nothing compressed. */
    int deflate_window;
    /* zlib memLevel of our compressor (1-9). */
    int deflate_mem_level;
    /* Reset our compressor after every message (no context takeover). */
    int deflate_reset;
    /* Window bits of what the server sends (8-15), for a dedicated
     * decompressor ... */
    int inflate_window;
    /* ... or 1: the loop's shared decompressor, reset after every message
     * (the server promised no context takeover). */
    int inflate_shared;
} uws_client_deflate_t;

/* A connection's handlers. `ctx` and `user` are the pointers given to
 * uws_client_connect. open, message, drain, ping, pong and close run as for
 * a server socket (close only for a connection that opened). upgrade gets
 * the response head (status line and headers, up to and with the empty
 * line) and returns 1 to open the connection, with *deflate filled in, or
 * 0 to refuse it (failed then follows with UWS_CLIENT_REFUSED). failed
 * runs once for a connection that never opened; nothing runs after it. */
typedef struct uws_client_behavior_s {
    uws_ws_handler_t open;
    uws_ws_message_handler_t message;
    uws_ws_handler_t drain;
    uws_ws_data_handler_t ping;
    uws_ws_data_handler_t pong;
    uws_ws_close_handler_t close;
    int (*upgrade)(void *ctx, const char *head, size_t length, uws_client_deflate_t *deflate);
    void (*failed)(void *ctx, uws_client_failure_t failure, int error, const char *detail,
                   size_t detail_length);
} uws_client_behavior_t;

/* A connection's settings, as uws_ws_behavior_t's for a server. */
typedef struct uws_client_options_s {
    uint32_t max_payload_length;
    uint16_t idle_timeout;             /* seconds, 0 = off, else 8-960 */
    uint32_t max_backpressure;         /* bytes, 0 = unlimited */
    int close_on_backpressure_limit;
    int reset_idle_timeout_on_send;
    int send_pings_automatically;
    uint16_t max_lifetime;             /* minutes, 0 = off */
} uws_client_options_t;

/* TLS settings of a client context (ignored for plain ones). */
typedef struct uws_client_tls_s {
    /* Extra trusted CA certificates (PEM text), or NULL. */
    const char *ca_pem;
    size_t ca_pem_length;
    /* 1: verify the server's certificate against the system's roots (and
     * ca_file_name) and its name against the host; 0: accept any. */
    int verify;
} uws_client_tls_t;

/* A context on `loop`; NULL when it cannot be made (TLS: CA certificates
 * that do not load; OpenSSL's error queue says why). */
uws_client_context_t *uws_client_context_create(int ssl, uws_loop_t *loop,
                                                const uws_client_tls_t *tls) UWS_NOEXCEPT;
/* Frees a context after closing what is left on it (uws_context_close_all
 * does that without freeing; no client callback runs for connections that
 * are closing or not open). */
void uws_client_context_free(int ssl, uws_client_context_t *context) UWS_NOEXCEPT;

/* Connects to ip:port (a numeric address) and, once connected, sends the
 * `request` bytes (the handshake request). `host` is the server's name for
 * TLS (SNI and certificate check). behavior and options must outlive the
 * connection (options are copied). Returns the connection, or NULL with
 * *error set to the errno when the socket cannot even be made; then no
 * callback runs. */
uws_ws_t *uws_client_connect(int ssl, uws_client_context_t *context, const char *ip, int port,
                             const char *host, const char *request, size_t request_length,
                             const uws_client_options_t *options,
                             const uws_client_behavior_t *behavior, void *ctx, void *user,
                             int *error) UWS_NOEXCEPT;
/* Abandons a connection that has not opened yet: no callback runs. */
void uws_client_cancel(int ssl, uws_ws_t *ws) UWS_NOEXCEPT;
/* Sends a masked message on an open connection. */
uws_send_status_t uws_client_send(int ssl, uws_ws_t *ws, const char *data, size_t length,
                                  uws_opcode_t opcode, int compress) UWS_NOEXCEPT;
/* Sends a close frame and runs the close handler now; the server closes
 * the TCP connection (or a timeout does). */
void uws_client_end(int ssl, uws_ws_t *ws, int code, const char *message, size_t length) UWS_NOEXCEPT;
/* Closes the TCP connection at once; the close handler sees 1006. */
void uws_client_close(int ssl, uws_ws_t *ws) UWS_NOEXCEPT;

/* The Sec-WebSocket-Accept value (28 characters) for a 24-character key. */
void uws_websocket_accept(const char *key, char *accept) UWS_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* UWS_CLIENT_H */
