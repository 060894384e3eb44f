// fuzz/server.hpp: a server as the crate sets it up, through our shim's C
// API: apps with an HTTP route and a WebSocket route, handlers that answer
// the way src/http and src/server do (a response at once, or once the body
// is in, 413 past a body limit, upgrade only with a well-formed key), and
// checks of what uWebSockets promises the crate on the way: bodies end
// once, nothing arrives for an answered or aborted request, every open
// socket closes once, messages stay within the limit, text is UTF-8.
// Part of the uws crate's fuzzing (fuzz/README.md), not upstream code.
#ifndef UWS_FUZZ_SERVER_HPP
#define UWS_FUZZ_SERVER_HPP

#include "harness.hpp"

namespace fuzz {

// Whether s[0, n) is UTF-8 (RFC 3629), written for the checks here.
inline bool utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t extra;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            extra = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        if (n - i <= extra) {
            return false;
        }
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return false;
            }
            c = (c << 6) | (s[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            return false;
        }
        i += extra + 1;
    }
    return true;
}

// The apps a run may pick (2 bits): header limit, compression, payload limit.
struct AppKind {
    unsigned max_header;
    uint32_t compression;
    uint32_t max_payload;
};
constexpr AppKind kApps[4] = {
    {16 * 1024, 0, 1024},
    {256, 1 | (1 << 8), 256},                    // shared compressor and decompressor
    {16 * 1024, (9 << 4 | 2) | (10 << 8), 64},  // dedicated 4 KB compressor, 1 KB window
    {1024, (9 << 4 | 1) | (15 << 8), 16},       // dedicated 3 KB compressor, 32 KB window, tiny messages
};

// What one input may do, and what it saw.
struct Run {
    // Set by the target before the connection.
    bool answer_after_body = true;  // wait for the body, as the crate's fetch does
    size_t body_limit = 1 << 20;    // 413 and close past this (max_request_body_size)
    bool echo = false;              // WebSocket messages are sent back
    bool end_on_message = false;    // the first message ends the socket (1000)
    void (*inspect)(uws_req_t *) = nullptr;  // extra checks of each request
    uint32_t max_payload = 0;

    // Seen during the run.
    struct Pending {
        uws_res_t *res;
        size_t body;
        bool live;
    } pending[64];
    unsigned requests = 0;
    unsigned opens = 0;
    unsigned closes = 0;
    unsigned messages = 0;
};

inline Run run;

inline void on_aborted(void *, uint64_t token) {
    FUZZ_CHECK(token < 64 && run.pending[token].live);
    run.pending[token].live = false;
}

inline void detach(uws_res_t *res) {
    uws_res_on_data(0, res, nullptr, nullptr, 0);
    uws_res_on_aborted(0, res, nullptr, nullptr, 0);
}

inline void on_body(void *, uint64_t token, const char *, size_t length, int last) {
    // Nothing comes for a request that was answered or aborted.
    FUZZ_CHECK(token < 64 && run.pending[token].live);
    Run::Pending &p = run.pending[token];
    p.body += length;
    if (p.body > run.body_limit) {
        p.live = false;
        detach(p.res);
        uws_res_write_status(0, p.res, "413 Payload Too Large", 21);
        uws_res_end(0, p.res, "request body too large", 22, 1);
        return;
    }
    if (last) {
        p.live = false;
        detach(p.res);
        uws_res_end(0, p.res, "body", 4, 0);
    }
}

inline std::string_view header(uws_req_t *req, std::string_view lower_name) {
    size_t n = 0;
    const char *v = uws_req_header(req, lower_name.data(), lower_name.size(), &n);
    return view(v, n);
}

inline void on_request(void *, uws_res_t *res, uws_req_t *req, void *) {
    run.requests++;
    if (run.inspect) {
        run.inspect(req);
    }
    size_t n = 0;
    bool has_body = uws_req_header(req, "content-length", 14, &n) || uws_req_header(req, "transfer-encoding", 17, &n);
    if (!run.answer_after_body || !has_body) {
        uws_res_write_header(0, res, "x-fuzz", 6, "1", 1);
        uws_res_end(0, res, "ok", 2, 0);
        return;
    }
    // Answered later: the crate attaches both callbacks in the handler.
    uint64_t token = run.requests - 1;
    if (token >= 64) {
        uws_res_close(0, res);
        return;
    }
    run.pending[token] = {res, 0, true};
    uws_res_on_aborted(0, res, on_aborted, nullptr, token);
    uws_res_on_data(0, res, on_body, nullptr, token);
}

inline int user_marker;

inline void on_upgrade(void *, uws_res_t *res, uws_req_t *req, void *ws_context) {
    run.requests++;
    if (run.inspect) {
        run.inspect(req);
    }
    std::string_view key = header(req, "sec-websocket-key");
    // The crate upgrades only with a key of 16 bytes in base64.
    if (key.size() != 24) {
        uws_res_write_status(0, res, "400 Bad Request", 15);
        uws_res_end(0, res, "", 0, 0);
        return;
    }
    std::string_view extensions = header(req, "sec-websocket-extensions");
    std::string_view protocol = header(req, "sec-websocket-protocol");
    protocol = protocol.substr(0, protocol.find(','));
    uws_res_write_status(0, res, "101 Switching Protocols", 23);
    uws_res_upgrade(0, res, &user_marker, key.data(), key.size(), protocol.data(), protocol.size(),
                    extensions.data(), extensions.size(), ws_context);
}

inline void on_open(void *, uws_ws_t *, void *user) {
    FUZZ_CHECK(user == &user_marker);
    run.opens++;
}

inline void on_message(void *, uws_ws_t *ws, void *user, const char *data, size_t length, uws_opcode_t opcode) {
    FUZZ_CHECK(user == &user_marker && run.opens > run.closes);
    FUZZ_CHECK(length <= run.max_payload);
    FUZZ_CHECK(opcode == UWS_OPCODE_TEXT || opcode == UWS_OPCODE_BINARY);
    FUZZ_CHECK(opcode != UWS_OPCODE_TEXT || utf8(reinterpret_cast<const unsigned char *>(data), length));
    run.messages++;
    if (run.echo) {
        uws_ws_send(0, ws, data, length, opcode, 1);
    }
    if (run.end_on_message) {
        uws_ws_end(0, ws, 1000, "bye", 3);
    }
}

inline void on_control(void *, uws_ws_t *, void *user, const char *, size_t length) {
    FUZZ_CHECK(user == &user_marker && run.opens > run.closes);
    FUZZ_CHECK(length <= 125);
}

inline void on_close(void *, uws_ws_t *, void *user, int code, const char *message, size_t length) {
    FUZZ_CHECK(user == &user_marker);
    run.closes++;
    FUZZ_CHECK(run.closes == run.opens);
    FUZZ_CHECK(code >= 0 && code <= 4999);
    if (code != 1006) {
        // A close frame's reason: at most 123 bytes of UTF-8.
        FUZZ_CHECK(length <= 123);
        FUZZ_CHECK(utf8(reinterpret_cast<const unsigned char *>(message), length));
    }
}

inline void on_subscription(void *, uws_ws_t *, void *, const char *, size_t, int, int) {}

struct ServerApp {
    uws_app_t *app;
    us_socket_context_t *http;
};

inline ServerApp make_app(const AppKind &kind) {
    ServerApp a;
    a.app = uws_app_create(0, nullptr);
    FUZZ_CHECK(a.app);
    uws_app_set_max_header_size(0, a.app, kind.max_header);
    uws_ws_behavior_t b = {};
    b.compression = kind.compression;
    b.max_payload_length = kind.max_payload;
    b.idle_timeout = 0;
    b.max_backpressure = 1 << 20;
    b.upgrade = on_upgrade;
    b.open = on_open;
    b.message = on_message;
    b.ping = on_control;
    b.pong = on_control;
    b.subscription = on_subscription;
    b.close = on_close;
    FUZZ_CHECK(uws_app_ws(0, a.app, "/*", &b));
    uws_app_any(0, a.app, "/*", on_request, nullptr);
    a.http = static_cast<us_socket_context_t *>(uws_app_http_context(0, a.app));
    return a;
}

inline ServerApp &server_app(unsigned i) {
    static ServerApp apps[4] = {make_app(kApps[0]), make_app(kApps[1]), make_app(kApps[2]), make_app(kApps[3])};
    return apps[i & 3];
}

// A fresh run on app `i` (its payload limit is checked in on_message).
inline void reset_run(unsigned i) {
    run = Run();
    run.max_payload = kApps[i & 3].max_payload;
}

// After the connection is gone: every request waiting for its body was
// answered or aborted, and every socket that opened closed once.
inline void check_after_close() {
    for (unsigned i = 0; i < 64 && i < run.requests; i++) {
        FUZZ_CHECK(!run.pending[i].live);
    }
    FUZZ_CHECK(run.opens == run.closes);
}

// A connection to app `i`, served as if accepted by its listen socket.
struct ServerConnection : Connection {
    explicit ServerConnection(unsigned i)
        : Connection(server_app(i).http, [i](int fd) { uws_app_adopt(0, server_app(i).app, fd); }) {}
};

}  // namespace fuzz

#endif  // UWS_FUZZ_SERVER_HPP
