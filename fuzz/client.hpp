// fuzz/client.hpp: a client connection of our shim (vendor/shim/
// uws_client.cpp) made without the network: the socket is adopted from a
// socketpair and given the same state uws_client_connect gives a new
// connection, then opened as on connect. Its callbacks check what the
// crate relies on: a head is handed over once, exactly up to its blank
// line; a connection either opens or fails, once; what opened closes
// once; messages stay within the limit, text is UTF-8, control payloads
// fit 125 bytes. Part of the uws crate's fuzzing (fuzz/README.md).
#ifndef UWS_FUZZ_CLIENT_HPP
#define UWS_FUZZ_CLIENT_HPP

// The client's internals (Data, Socket) live in that file's anonymous
// namespace: this translation unit is the client.
#include "uws_client.cpp"

#include "server.hpp"

#include <new>
#include <string_view>

namespace fuzz {

struct ClientRun {
    // Set by the target.
    bool accept = true;
    uws_client_deflate_t deflate = {};
    uint32_t max_payload = 1024;
    bool echo = false;
    std::string_view stream;  // everything the server sends, in order
    size_t delivered = 0;     // how much of it was read so far

    // Seen.
    unsigned heads = 0;
    unsigned opens = 0;
    unsigned closes = 0;
    unsigned failures = 0;
    uws_client_failure_t failure = UWS_CLIENT_CONNECT;
};

inline ClientRun client_run;

inline int client_user;

inline int on_client_upgrade(void *, const char *head, size_t length, uws_client_deflate_t *deflate) {
    ClientRun &r = client_run;
    r.heads++;
    FUZZ_CHECK(r.heads == 1);
    // The head is the start of what was received, up to and including
    // its first blank line.
    FUZZ_CHECK(length >= 4 && length <= r.delivered);
    FUZZ_CHECK(std::string_view(head, length) == r.stream.substr(0, length));
    FUZZ_CHECK(r.stream.find("\r\n\r\n") == length - 4);
    *deflate = r.deflate;
    return r.accept;
}

inline void on_client_failed(void *, uws_client_failure_t failure, int, const char *, size_t) {
    ClientRun &r = client_run;
    r.failures++;
    r.failure = failure;
    FUZZ_CHECK(r.failures == 1 && r.opens == 0);
    std::string_view received = r.stream.substr(0, r.delivered);
    switch (failure) {
    case UWS_CLIENT_REFUSED:
        FUZZ_CHECK(r.heads == 1 && !r.accept);
        break;
    case UWS_CLIENT_HEAD_TOO_LARGE:
        // Over 16 KiB received and still no blank line.
        FUZZ_CHECK(r.heads == 0 && received.size() > 16 * 1024);
        FUZZ_CHECK(received.find("\r\n\r\n") == std::string_view::npos);
        break;
    case UWS_CLIENT_CLOSED:
        FUZZ_CHECK(r.heads == 0 && received.find("\r\n\r\n") == std::string_view::npos);
        break;
    default:
        FUZZ_CHECK(!"no such failure without the network");
    }
}

inline void on_client_open(void *, uws_ws_t *, void *user) {
    FUZZ_CHECK(user == &client_user);
    client_run.opens++;
    FUZZ_CHECK(client_run.opens == 1 && client_run.failures == 0 && client_run.heads == 1);
}

inline void on_client_message(void *, uws_ws_t *ws, void *user, const char *data, size_t length,
                              uws_opcode_t opcode) {
    FUZZ_CHECK(user == &client_user && client_run.opens == 1 && client_run.closes == 0);
    FUZZ_CHECK(length <= client_run.max_payload);
    FUZZ_CHECK(opcode == UWS_OPCODE_TEXT || opcode == UWS_OPCODE_BINARY);
    FUZZ_CHECK(opcode != UWS_OPCODE_TEXT || utf8(reinterpret_cast<const unsigned char *>(data), length));
    if (client_run.echo) {
        uws_client_send(0, ws, data, length, opcode, 1);
    }
}

inline void on_client_control(void *, uws_ws_t *, void *user, const char *, size_t length) {
    FUZZ_CHECK(user == &client_user && client_run.opens == 1 && client_run.closes == 0);
    FUZZ_CHECK(length <= 125);
}

inline void on_client_close(void *, uws_ws_t *, void *user, int code, const char *message, size_t length) {
    FUZZ_CHECK(user == &client_user);
    client_run.closes++;
    FUZZ_CHECK(client_run.closes == 1 && client_run.opens == 1);
    FUZZ_CHECK(code >= 0 && code <= 4999);
    if (code != 1006) {
        FUZZ_CHECK(length <= 123);
        FUZZ_CHECK(utf8(reinterpret_cast<const unsigned char *>(message), length));
    }
}

inline const uws_client_behavior_t kClientBehavior = {
    on_client_open,    on_client_message, nullptr /* drain */, on_client_control,
    on_client_control, on_client_close,   on_client_upgrade,    on_client_failed,
};

inline us_socket_context_t *client_context() {
    static auto *c = reinterpret_cast<us_socket_context_t *>(uws_client_context_create(0, uws_loop_get(), nullptr));
    return c;
}

inline us_socket_t *no_open(us_socket_t *s, int, char *, int) { return s; }

// A client connection whose request has just been written, as after
// uws_client_connect and the TCP connect.
struct ClientConnection : Connection {
    ClientConnection()
        : Connection(client_context(), [](int fd) {
              us_socket_context_t *c = client_context();
              using Socket = client::Socket<false>;
              using Data = client::Data<false>;
              // Adopted without the open callback: the state comes first.
              us_socket_context_on_open(0, c, no_open);
              us_socket_t *s = us_adopt_accepted_socket(0, c, fd, (int) sizeof(Data), nullptr, 0);
              us_socket_context_on_open(0, c, Socket::onOpen);
              // What uws_client_connect sets.
              uws_client_options_t options = {};
              options.max_payload_length = client_run.max_payload;
              options.max_backpressure = 1 << 20;
              auto *d = new (us_socket_ext(0, s)) Data();
              d->options = options;
              std::tie(d->idle, d->margin) = client::idleTimeouts(&options);
              d->behavior = &kClientBehavior;
              d->ctx = nullptr;
              d->user = &client_user;
              d->buffer.assign("GET / HTTP/1.1\r\nHost: fuzz\r\n\r\n");
              d->host = "fuzz";
              Socket::onOpen(s, 1, nullptr, 0);
          }) {}

    // Reads `reads` of client_run.stream, counting what was delivered.
    void read_stream(Reads &reads) {
        while (!reads.done()) {
            auto [p, n] = reads.next();
            client_run.delivered = (size_t) (p - reinterpret_cast<const uint8_t *>(client_run.stream.data())) + n;
            if (!read(p, n)) {
                return;
            }
        }
    }
};

// After the connection is gone: it opened or failed, once; what opened closed.
inline void check_client_after_close() {
    FUZZ_CHECK(client_run.opens + client_run.failures == 1);
    FUZZ_CHECK(client_run.opens == client_run.closes);
}

}  // namespace fuzz

#endif  // UWS_FUZZ_CLIENT_HPP
