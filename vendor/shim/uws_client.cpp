// uws_client.cpp: WebSocket client connections for the uws crate (see
// uws_client.h). Part of the uws crate, not upstream code.
//
// Masks: RFC 6455 asks for masks an intermediary cannot predict, so the
// client writes its frames itself (`frame` below) with masks from the
// kernel's random generator, fetched 64 at a time per thread. uWebSockets'
// formatMessage<false> would draw them from rand().
//
// A translation unit of its own, next to unity.cpp (the server side and
// uSockets): in one unit, the client's code changed GCC's inlining of the
// server's message paths (chat: 245 instead of 237 instructions per
// delivery). It calls uSockets through its C functions.
//
// uWebSockets v20.58.0 has no working client (ClientApp.h is a stub, and
// its WebSocket templates only compile for servers), but its frame parser
// (WebSocketProtocol<false, ...>), frame formatter (formatMessage<false>),
// deflate streams and AsyncSocket's corking and buffering all work in
// client mode. This file puts them together on a uSockets socket context:
// the handshake is ours (the Rust side writes the request and checks the
// response head), and so are the few rules a client follows differently
// (masked frames out, unmasked frames in, the server closes TCP first).

#include "uws_shim.h"

#include "App.h"
#include "WebSocketHandshake.h"
#include "uws_kind.hpp"

#include <arpa/inet.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <cerrno>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <unistd.h>

#ifndef LIBUS_NO_SSL
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#endif

namespace {
namespace client {

// Longest response head we wait for.
constexpr size_t MAX_HEAD = 16 * 1024;

enum class Phase : uint8_t {
    Connecting,  // TCP (and TLS) not established yet
    Handshake,   // request sent, waiting for the response head
    Open,        // WebSocket frames
    Closing,     // we sent a close frame; the close handler has run
    Done         // failed or cancelled; no callback any more
};

// A connection's state, in its socket's extension. AsyncSocketData comes
// first, as uWebSockets' own sockets have it, so that AsyncSocket (corking,
// buffering) and the shim's uws_ws_cork / uws_ws_buffered_amount work on
// client sockets too.
template <bool SSL>
struct Data : uWS::AsyncSocketData<SSL> {
    uWS::WebSocketState<false> state;
    // Fragments of a message (and of a control frame split across reads).
    std::string fragments;
    unsigned int controlTipLength = 0;
    // How much of a fragmented text message is known to be valid UTF-8.
    size_t utf8Checked = 0;
    Phase phase = Phase::Connecting;
    // Inside a frame whose header has been checked.
    bool inFrame = false;
    bool hasTimedOut = false;
    // Shut down (TCP FIN) once everything buffered is written.
    bool finAfterFlush = false;
    // TLS handshake done (always true without TLS).
    bool secured = !SSL;
    enum Compression : uint8_t { DISABLED, ENABLED, COMPRESSED_FRAME } compression = DISABLED;
    bool compressSends = false;
    bool deflateReset = false;
    uWS::DeflationStream *deflation = nullptr;  // null: the loop's shared one
    uWS::InflationStream *inflation = nullptr;  // null: the loop's shared one

    uws_client_options_t options;
    uint16_t idle = 0;        // idle timeout before a ping (seconds)
    uint16_t margin = 4;      // wait for the pong, and for the server's close
    const uws_client_behavior_t *behavior;
    void *ctx;
    void *user;
    // The request until it is sent, then the response head so far.
    std::string buffer;
    // The server's name (SNI, certificate check) and why TLS failed.
    std::string host;
    std::string tlsError;

    ~Data() {
        delete deflation;
        delete inflation;
    }
};

template <bool SSL>
struct Socket;

// The hooks WebSocketProtocol<false, Impl> calls while it parses frames.
template <bool SSL>
struct Impl {
    static bool setCompressed(uWS::WebSocketState<false> *, void *s);
    // Called by v20.58.0's parser (UWS_UNPATCHED=1).
    static void forceClose(uWS::WebSocketState<false> *, void *s, std::string_view reason = {});
    // Called by the patched parser (vendor/patches/0003), with the code.
    static void failConnection(uWS::WebSocketState<false> *, void *s, int code, std::string_view reason);
    static bool handleFragment(char *data, size_t length, unsigned int remainingBytes, int opCode, bool fin,
                               uWS::WebSocketState<false> *, void *s);
    static bool refusePayloadLength(uint64_t length, uWS::WebSocketState<false> *, void *s);
};

// A client connection, seen as uWebSockets' AsyncSocket (whose protected
// corking and buffering we use).
// The next frame mask, from the kernel's random generator (one call per 64
// masks). getrandom only fails on bad arguments or before the kernel's pool
// is seeded at boot, when it blocks; an interrupted call is repeated.
static uint32_t next_mask() {
    thread_local uint32_t pool[64];
    thread_local unsigned left = 0;
    if (!left) {
        char *p = reinterpret_cast<char *>(pool);
        size_t want = sizeof(pool);
        while (want) {
            ssize_t got = getrandom(p, want, 0);
            if (got < 0) {
                if (errno == EINTR) continue;
                break;
            }
            p += got;
            want -= (size_t) got;
        }
        left = 64;
    }
    return pool[--left];
}

// A client's frame (final, masked) of `payload` into `out`, which has room
// for messageFrameSize(payload.length()) + 4 bytes; returns its length.
static size_t frame(char *out, std::string_view payload, uWS::OpCode opCode, bool compressed) {
    size_t n = payload.length();
    unsigned char *p = reinterpret_cast<unsigned char *>(out);
    *p++ = (unsigned char) (0x80 | (compressed ? 0x40 : 0) | (opCode & 0x0f));
    if (n < 126) {
        *p++ = (unsigned char) (0x80 | n);
    } else if (n <= 0xffff) {
        *p++ = 0x80 | 126;
        *p++ = (unsigned char) (n >> 8);
        *p++ = (unsigned char) n;
    } else {
        *p++ = 0x80 | 127;
        for (int shift = 56; shift >= 0; shift -= 8) *p++ = (unsigned char) ((uint64_t) n >> shift);
    }
    uint32_t m = next_mask();
    unsigned char mask[4];
    std::memcpy(mask, &m, 4);
    std::memcpy(p, mask, 4);
    p += 4;
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char) payload[i] ^ mask[i & 3];
    return (size_t) (reinterpret_cast<char *>(p) - out) + n;
}

template <bool SSL>
struct Socket : uWS::AsyncSocket<SSL> {
    using Super = uWS::AsyncSocket<SSL>;

    static Socket *of(void *s) { return static_cast<Socket *>(s); }
    us_socket_t *us() { return reinterpret_cast<us_socket_t *>(this); }
    Data<SSL> *ext() { return static_cast<Data<SSL> *>(us_socket_ext(SSL, us())); }
    bool closed() { return us_socket_is_closed(SSL, us()); }
    uWS::LoopData *loop() { return Super::getLoopData(); }

    // The payload of a masked frame (opcode and payload as given).
    uws_send_status_t send(std::string_view message, uWS::OpCode opCode, bool compress) {
        Data<SSL> *d = ext();
        if (d->options.max_backpressure && d->options.max_backpressure < Super::getBufferedAmount()) {
            if (d->options.close_on_backpressure_limit) {
                us_socket_shutdown_read(SSL, us());
            }
            return UWS_SEND_DROPPED;
        }
        if (compress) {
            // Never compress an empty message or a control frame.
            if (message.length() && opCode < 3 && d->compression == Data<SSL>::ENABLED && d->compressSends) {
                uWS::LoopData *loopData = Super::getLoopData();
                message = d->deflation ? d->deflation->deflate(loopData->zlibContext, message, d->deflateReset)
                                       : loopData->deflationStream->deflate(loopData->zlibContext, message, true);
            } else {
                compress = false;
            }
        }
        // The 4-byte mask follows the header; messageFrameSize does not
        // count it.
        size_t frameSize = uWS::protocol::messageFrameSize(message.length()) + 4;
        auto [buffer, attribute] = Super::getSendBuffer(frameSize);
        frame(buffer, message, opCode, compress);
        if (attribute == uWS::SendBufferAttribute::NEEDS_DRAIN) {
            if (Super::write(nullptr, 0).second) {
                return UWS_SEND_BACKPRESSURE;
            }
        } else if (attribute == uWS::SendBufferAttribute::NEEDS_UNCORK) {
            if (Super::uncork().second) {
                return UWS_SEND_BACKPRESSURE;
            }
        }
        if (d->options.reset_idle_timeout_on_send) {
            Super::timeout(d->idle);
            d->hasTimedOut = false;
        }
        return UWS_SEND_SUCCESS;
    }

    // Sends a close frame and runs the close handler; the server is
    // expected to close the TCP connection (after `margin` seconds we do).
    void end(int code, std::string_view message) {
        Data<SSL> *d = ext();
        if (d->phase != Phase::Open) {
            return;
        }
        d->phase = Phase::Closing;
        char payload[125];
        size_t length = uWS::protocol::formatClosePayload(payload, (uint16_t) code, message.data(),
                                                          std::min<size_t>(123, message.length()));
        send(std::string_view(payload, length), uWS::OpCode::CLOSE, false);
        Super::timeout(d->margin);
        d->behavior->close(d->ctx, reinterpret_cast<uws_ws_t *>(this), d->user, code, message.data(),
                           message.length());
    }

    // Fails the connection (RFC 6455 7.1.7): a close frame with `code`,
    // then TCP FIN; nothing the server sends is processed any more.
    void fail(int code, std::string_view reason) {
        Data<SSL> *d = ext();
        if (d->phase != Phase::Open) {
            us_socket_close(SSL, us(), 0, nullptr);
            return;
        }
        d->finAfterFlush = true;
        end(code, reason);
        if (!closed() && !Super::isCorked() && Super::getBufferedAmount() == 0) {
            Super::shutdown();
        }
    }

    // WebSocket frames: the parser, corked, as uWebSockets' server does.
    void consume(char *data, unsigned int length) {
        Data<SSL> *d = ext();
        Super::timeout(d->idle);
        d->hasTimedOut = false;
        bool corked = Super::canCork();
        if (corked) {
            Super::cork();
        }
        uWS::WebSocketProtocol<false, Impl<SSL>>::consume(data, length, &d->state, us());
        if (corked) {
            Super::uncork();
        }
        if (!closed() && d->finAfterFlush && Super::getBufferedAmount() == 0) {
            Super::shutdown();
        }
    }

    // Ends a connection that has not opened: closes it without callbacks,
    // then reports `failure`.
    void failConnect(uws_client_failure_t failure, int error, std::string_view detail) {
        Data<SSL> *d = ext();
        const uws_client_behavior_t *behavior = d->behavior;
        void *ctx = d->ctx;
        std::string text(detail);
        d->phase = Phase::Done;
        us_socket_close(SSL, us(), 0, nullptr);
        behavior->failed(ctx, failure, error, text.data(), text.length());
    }

    // The response head has arrived and was accepted.
    void open(const uws_client_deflate_t &deflate) {
        Data<SSL> *d = ext();
        d->buffer = std::string();
        if (deflate.enabled) {
            uWS::LoopData *loopData = Super::getLoopData();
            if (!loopData->zlibContext) {
                // As App::ws does for a server with compression.
                loopData->zlibContext = new uWS::ZlibContext;
                loopData->inflationStream = new uWS::InflationStream(uWS::CompressOptions::DEDICATED_DECOMPRESSOR);
                loopData->deflationStream = new uWS::DeflationStream(uWS::CompressOptions::DEDICATED_COMPRESSOR);
            }
            d->compression = Data<SSL>::ENABLED;
            d->compressSends = deflate.deflate_window != 0;
            d->deflateReset = deflate.deflate_reset != 0;
            // The loop's shared compressor has a 15-bit window and resets;
            // anything else needs a compressor of our own.
            if (d->compressSends && (deflate.deflate_window != 15 || !d->deflateReset)) {
                d->deflation = new uWS::DeflationStream(
                    (uWS::CompressOptions) ((deflate.deflate_window << 4) | deflate.deflate_mem_level));
            }
            if (!deflate.inflate_shared) {
                d->inflation = new uWS::InflationStream((uWS::CompressOptions) (deflate.inflate_window << 8));
            }
        }
        d->phase = Phase::Open;
        Super::timeout(d->idle);
        us_socket_long_timeout(SSL, us(), d->options.max_lifetime);
        d->behavior->open(d->ctx, reinterpret_cast<uws_ws_t *>(this), d->user);
    }

    // Bytes while waiting for the response head.
    void handshake(char *data, unsigned int length) {
        Data<SSL> *d = ext();
        d->secured = true;
        size_t before = d->buffer.length();
        d->buffer.append(data, length);
        size_t end = d->buffer.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
        if (end == std::string::npos) {
            if (d->buffer.length() > MAX_HEAD) {
                failConnect(UWS_CLIENT_HEAD_TOO_LARGE, 0, {});
            }
            return;
        }
        size_t headLength = end + 4;
        uws_client_deflate_t deflate = {};
        if (!d->behavior->upgrade(d->ctx, d->buffer.data(), headLength, &deflate)) {
            failConnect(UWS_CLIENT_REFUSED, 0, {});
            return;
        }
        // What followed the head in this read is already WebSocket frames
        // (it sits in uSockets' receive buffer, with the padding the
        // parser needs around it).
        size_t used = headLength - before;
        open(deflate);
        if (!closed() && d->phase == Phase::Open && length > used) {
            consume(data + used, length - (unsigned int) used);
        }
    }

    // ---- uSockets callbacks ----

    static us_socket_t *onOpen(us_socket_t *s, int, char *, int) {
        Socket *socket = of(s);
        Data<SSL> *d = socket->ext();
        d->phase = Phase::Handshake;
#ifndef LIBUS_NO_SSL
        if constexpr (SSL) {
            secure(s, d);
        }
#endif
        std::string request = std::move(d->buffer);
        d->buffer = std::string();
        socket->write(request.data(), (int) request.length());
        return s;
    }

    static us_socket_t *onData(us_socket_t *s, char *data, int length) {
        Socket *socket = of(s);
        switch (socket->ext()->phase) {
        case Phase::Handshake:
            socket->handshake(data, (unsigned int) length);
            break;
        case Phase::Open:
            socket->consume(data, (unsigned int) length);
            break;
        default:
            // Closing: nothing more is processed, we only wait for the FIN.
            break;
        }
        return s;
    }

    static us_socket_t *onWritable(us_socket_t *s) {
        if (us_socket_is_shut_down(SSL, s)) {
            return s;
        }
        Socket *socket = of(s);
        Data<SSL> *d = socket->ext();
        unsigned int backpressure = socket->getBufferedAmount();
        socket->write(nullptr, 0);
        bool drained = !backpressure || backpressure > socket->getBufferedAmount();
        if (d->phase == Phase::Handshake) {
#ifndef LIBUS_NO_SSL
            if constexpr (SSL) {
                d->secured = d->secured || SSL_is_init_finished((::SSL *) us_socket_get_native_handle(SSL, s));
            }
#endif
            return s;
        }
        if (d->finAfterFlush && socket->getBufferedAmount() == 0) {
            socket->shutdown();
        } else if (d->phase == Phase::Open && drained) {
            socket->timeout(d->idle);
            d->hasTimedOut = false;
            d->behavior->drain(d->ctx, reinterpret_cast<uws_ws_t *>(s), d->user);
        }
        return s;
    }

    static us_socket_t *onEnd(us_socket_t *s) {
        // No half-closed connections: the server is done.
        return us_socket_close(SSL, s, 0, nullptr);
    }

    static us_socket_t *onTimeout(us_socket_t *s) {
        Socket *socket = of(s);
        Data<SSL> *d = socket->ext();
        if (d->phase == Phase::Open && d->options.send_pings_automatically && !d->hasTimedOut) {
            d->hasTimedOut = true;
            socket->timeout(d->margin);
            // An empty masked ping (mask 0), written at once.
            socket->write("\x89\x80\x00\x00\x00\x00", 6);
            return s;
        }
        if (d->phase == Phase::Open) {
            return us_socket_close(SSL, s, (int) uWS::ERR_WEBSOCKET_TIMEOUT.length(),
                                   (void *) uWS::ERR_WEBSOCKET_TIMEOUT.data());
        }
        if (d->phase == Phase::Closing) {
            return us_socket_close(SSL, s, 0, nullptr);
        }
        return s;
    }

    static us_socket_t *onLongTimeout(us_socket_t *s) {
        of(s)->end(1000, "please reconnect");
        return s;
    }

    static us_socket_t *onClose(us_socket_t *s, int code, void *reason) {
        Data<SSL> *d = of(s)->ext();
        Phase phase = d->phase;
        d->phase = Phase::Done;
        if (phase == Phase::Open) {
            d->behavior->close(d->ctx, reinterpret_cast<uws_ws_t *>(s), d->user, 1006, (const char *) reason,
                               (size_t) code);
        }
        const uws_client_behavior_t *behavior = d->behavior;
        void *ctx = d->ctx;
        bool secured = d->secured;
        std::string detail = std::move(d->tlsError);
        d->~Data();
        if (phase == Phase::Handshake) {
            behavior->failed(ctx, secured ? UWS_CLIENT_CLOSED : UWS_CLIENT_TLS, 0, detail.data(), detail.length());
        }
        return s;
    }

    static us_socket_t *onConnectError(us_socket_t *s, int) {
        Data<SSL> *d = of(s)->ext();
        int error = 0;
        socklen_t length = sizeof(error);
        getsockopt(us_poll_fd(reinterpret_cast<us_poll_t *>(s)), SOL_SOCKET, SO_ERROR, &error, &length);
        const uws_client_behavior_t *behavior = d->behavior;
        void *ctx = d->ctx;
        d->phase = Phase::Done;
        d->~Data();
        // uSockets closes the socket (without on_close) when we return.
        behavior->failed(ctx, UWS_CLIENT_CONNECT, error ? error : ECONNREFUSED, nullptr, 0);
        return s;
    }

#ifndef LIBUS_NO_SSL
    // Server name and certificate checks of a new TLS connection.
    static void secure(us_socket_t *s, Data<SSL> *d);
#endif

    static us_socket_context_t *create(us_loop_t *loop, const uws_client_tls_t *tls);
};

template <bool SSL>
bool Impl<SSL>::setCompressed(uWS::WebSocketState<false> *, void *s) {
    Data<SSL> *d = Socket<SSL>::of(s)->ext();
    if (d->compression == Data<SSL>::ENABLED) {
        d->compression = Data<SSL>::COMPRESSED_FRAME;
        return true;
    }
    return false;
}

template <bool SSL>
void Impl<SSL>::forceClose(uWS::WebSocketState<false> *, void *s, std::string_view reason) {
    if (reason == uWS::ERR_TOO_BIG_MESSAGE) {
        Socket<SSL>::of(s)->fail(1009, reason);
    } else {
        Socket<SSL>::of(s)->fail(1002, "Received invalid frame");
    }
}

template <bool SSL>
void Impl<SSL>::failConnection(uWS::WebSocketState<false> *, void *s, int code, std::string_view reason) {
    Socket<SSL>::of(s)->fail(code, reason);
}

template <bool SSL>
bool Impl<SSL>::refusePayloadLength(uint64_t length, uWS::WebSocketState<false> *, void *s) {
    return Socket<SSL>::of(s)->ext()->options.max_payload_length < length;
}

// Whether a close frame's code may be received (RFC 6455 7.4).
inline bool validCloseCode(unsigned int code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

// How many bytes of s[0, length) are whole, valid UTF-8 code points
// (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF). Sets
// `invalid` when what follows them cannot start a valid code point, not
// even with more bytes to come.
inline size_t utf8Prefix(const unsigned char *s, size_t length, bool &invalid) {
    size_t i = 0;
    invalid = false;
    while (i < length) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned char low = 0x80, high = 0xbf;  // allowed range of the second byte
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            low = c == 0xe0 ? 0xa0 : 0x80;
            high = c == 0xed ? 0x9f : 0xbf;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            low = c == 0xf0 ? 0x90 : 0x80;
            high = c == 0xf4 ? 0x8f : 0xbf;
        } else {
            invalid = true;
            return i;
        }
        for (size_t k = 1; k <= need; k++) {
            if (i + k == length) {
                return i;  // incomplete: more may come
            }
            unsigned char b = s[i + k];
            if (k == 1 ? (b < low || b > high) : (b & 0xc0) != 0x80) {
                invalid = true;
                return i;
            }
        }
        i += need + 1;
    }
    return i;
}

// Whether the header in front of a frame's payload is one a server may
// send: no mask, and the shortest length encoding. The parser only gives
// us the payload; the header sits right before it.
inline bool serverHeader(const char *payload, uint64_t payloadLength) {
    const unsigned char *p = (const unsigned char *) payload;
    if (payloadLength < 126) {
        return p[-1] == payloadLength;
    }
    if (payloadLength <= UINT16_MAX) {
        return p[-3] == 126;
    }
    return p[-9] == 127;
}

template <bool SSL>
bool Impl<SSL>::handleFragment(char *data, size_t length, unsigned int remainingBytes, int opCode, bool fin,
                               uWS::WebSocketState<false> *, void *s) {
    Socket<SSL> *socket = Socket<SSL>::of(s);
    Data<SSL> *d = socket->ext();
    // Every frame reaches us first from the parser's header path, with
    // its header in front of the payload.
    if (!d->inFrame && !serverHeader(data, (uint64_t) length + remainingBytes)) {
        socket->fail(1002, "Received a masked frame");
        return true;
    }
    d->inFrame = remainingBytes != 0;
    auto stopped = [&] { return socket->closed() || d->phase != Phase::Open; };

    if (opCode < 3) {
        if (!remainingBytes && fin && !d->fragments.length()) {
            // A whole message in one frame.
            if (d->compression == Data<SSL>::COMPRESSED_FRAME) {
                d->compression = Data<SSL>::ENABLED;
                uWS::LoopData *loopData = socket->loop();
                std::optional<std::string_view> inflated =
                    d->inflation ? d->inflation->inflate(loopData->zlibContext, {data, length},
                                                         d->options.max_payload_length, false)
                                 : loopData->inflationStream->inflate(loopData->zlibContext, {data, length},
                                                                      d->options.max_payload_length, true);
                if (!inflated.has_value()) {
                    socket->fail(1009, uWS::ERR_TOO_BIG_MESSAGE_INFLATION);
                    return true;
                }
                data = (char *) inflated->data();
                length = inflated->length();
            }
            if (opCode == 1 && !uWS::protocol::isValidUtf8((unsigned char *) data, length)) {
                socket->fail(1007, uWS::ERR_INVALID_TEXT);
                return true;
            }
            d->behavior->message(d->ctx, reinterpret_cast<uws_ws_t *>(s), d->user, data, length,
                                 (uws_opcode_t) opCode);
            return stopped();
        }
        if (!d->fragments.length()) {
            d->fragments.reserve(length + remainingBytes);
        }
        if (refusePayloadLength(length + d->fragments.length(), nullptr, s)) {
            socket->fail(1009, uWS::ERR_TOO_BIG_MESSAGE);
            return true;
        }
        d->fragments.append(data, length);
        // Fail fast on invalid text: check what arrived, not only the
        // whole message (compressed text is checked once inflated).
        if (opCode == 1 && d->compression != Data<SSL>::COMPRESSED_FRAME) {
            bool invalid;
            d->utf8Checked += utf8Prefix((const unsigned char *) d->fragments.data() + d->utf8Checked,
                                         d->fragments.length() - d->utf8Checked, invalid);
            if (invalid) {
                socket->fail(1007, uWS::ERR_INVALID_TEXT);
                return true;
            }
        }
        if (remainingBytes || !fin) {
            return false;
        }
        // The last fragment: the whole message is in `fragments`.
        if (d->compression == Data<SSL>::COMPRESSED_FRAME) {
            d->compression = Data<SSL>::ENABLED;
            // Room for the bytes the inflater writes past the end.
            d->fragments.append("123456789");
            uWS::LoopData *loopData = socket->loop();
            std::string_view compressed(d->fragments.data(), d->fragments.length() - 9);
            std::optional<std::string_view> inflated =
                d->inflation ? d->inflation->inflate(loopData->zlibContext, compressed, d->options.max_payload_length,
                                                     false)
                             : loopData->inflationStream->inflate(loopData->zlibContext, compressed,
                                                                  d->options.max_payload_length, true);
            if (!inflated.has_value()) {
                socket->fail(1009, uWS::ERR_TOO_BIG_MESSAGE_INFLATION);
                return true;
            }
            data = (char *) inflated->data();
            length = inflated->length();
        } else {
            data = d->fragments.data();
            length = d->fragments.length();
        }
        if (opCode == 1 && !uWS::protocol::isValidUtf8((unsigned char *) data, length)) {
            socket->fail(1007, uWS::ERR_INVALID_TEXT);
            return true;
        }
        d->behavior->message(d->ctx, reinterpret_cast<uws_ws_t *>(s), d->user, data, length, (uws_opcode_t) opCode);
        if (stopped()) {
            return true;
        }
        d->fragments.clear();
        d->utf8Checked = 0;
        return false;
    }

    // Control frames (at most 125 bytes, never fragmented, but possibly
    // split across reads: collected behind any message fragments).
    char *payload = data;
    if (remainingBytes || d->controlTipLength) {
        d->fragments.append(data, length);
        d->controlTipLength += (unsigned int) length;
        if (remainingBytes) {
            return false;
        }
        payload = d->fragments.data() + d->fragments.length() - d->controlTipLength;
        length = d->controlTipLength;
    }
    bool done = false;
    if (opCode == uWS::OpCode::CLOSE) {
        if (length == 1) {
            socket->fail(1002, uWS::ERR_INVALID_CLOSE_PAYLOAD);
            return true;
        }
        if (length == 0) {
            socket->end(1005, {});
            return true;
        }
        unsigned int code = ((unsigned char) payload[0] << 8) | (unsigned char) payload[1];
        if (!validCloseCode(code)) {
            socket->fail(1002, uWS::ERR_INVALID_CLOSE_PAYLOAD);
            return true;
        }
        if (!uWS::protocol::isValidUtf8((unsigned char *) payload + 2, length - 2)) {
            socket->fail(1007, uWS::ERR_INVALID_CLOSE_PAYLOAD);
            return true;
        }
        // Answer with the same code, as RFC 6455 5.5.1 suggests.
        socket->end((int) code, std::string_view(payload + 2, length - 2));
        return true;
    } else if (opCode == uWS::OpCode::PING) {
        socket->send(std::string_view(payload, length), uWS::OpCode::PONG, false);
        d->behavior->ping(d->ctx, reinterpret_cast<uws_ws_t *>(s), d->user, payload, length);
        done = stopped();
    } else {
        d->behavior->pong(d->ctx, reinterpret_cast<uws_ws_t *>(s), d->user, payload, length);
        done = stopped();
    }
    if (done) {
        return true;
    }
    if (d->controlTipLength) {
        d->fragments.resize(d->fragments.length() - d->controlTipLength);
        d->controlTipLength = 0;
    }
    return false;
}

#ifndef LIBUS_NO_SSL
// Why certificate verification failed, kept for the error message.
int onVerify(int ok, X509_STORE_CTX *store) {
    if (!ok) {
        SSL *ssl = (SSL *) X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
        us_socket_t *s = ssl ? (us_socket_t *) SSL_get_app_data(ssl) : nullptr;
        if (s) {
            Data<true> *d = Socket<true>::of(s)->ext();
            if (d->tlsError.empty()) {
                d->tlsError = std::string("certificate verify failed: ") +
                              X509_verify_cert_error_string(X509_STORE_CTX_get_error(store));
            }
        }
    }
    return ok;
}

// TLS alerts, kept for the error message (the first reason wins).
void onInfo(const SSL *ssl, int where, int value) {
    if (!(where & SSL_CB_ALERT)) {
        return;
    }
    us_socket_t *s = (us_socket_t *) SSL_get_app_data(ssl);
    if (!s) {
        return;
    }
    Data<true> *d = Socket<true>::of(s)->ext();
    if (d->tlsError.empty() && (where & SSL_CB_READ)) {
        d->tlsError = std::string("the server sent the alert \"") + SSL_alert_desc_string_long(value) + "\"";
    }
}

template <bool SSL>
void Socket<SSL>::secure(us_socket_t *s, Data<SSL> *d) {
    ::SSL *ssl = (::SSL *) us_socket_get_native_handle(1, s);
    SSL_set_app_data(ssl, s);
    SSL_set_info_callback(ssl, onInfo);
    unsigned char address[16];
    bool ip = inet_pton(AF_INET, d->host.c_str(), address) == 1 || inet_pton(AF_INET6, d->host.c_str(), address) == 1;
    if (!ip) {
        SSL_set_tlsext_host_name(ssl, d->host.c_str());
    }
    if (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) {
        if (ip) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), d->host.c_str());
        } else {
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            SSL_set1_host(ssl, d->host.c_str());
        }
    }
}

// The system's trusted roots: OpenSSL's default locations (which honour
// SSL_CERT_FILE and SSL_CERT_DIR), and the usual bundle of the
// distribution, for an OpenSSL built with other defaults (vendored).
void loadSystemRoots(SSL_CTX *ctx) {
    SSL_CTX_set_default_verify_paths(ctx);
    static const char *const bundles[] = {
        "/etc/ssl/certs/ca-certificates.crt",                 // Debian, Ubuntu, Alpine, Arch
        "/etc/pki/tls/certs/ca-bundle.crt",                   // Fedora, RHEL
        "/etc/ssl/ca-bundle.pem",                             // openSUSE
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  // CentOS
        "/etc/ssl/cert.pem",                                  // macOS, BSDs
    };
    for (const char *bundle : bundles) {
        if (access(bundle, R_OK) == 0) {
            SSL_CTX_load_verify_locations(ctx, bundle, nullptr);
            break;
        }
    }
    ERR_clear_error();
}

// Trusts every certificate in `pem`; false when there is none or one does
// not parse.
bool addCertificates(SSL_CTX *ctx, const char *pem, size_t length) {
    BIO *bio = BIO_new_mem_buf(pem, (int) length);
    if (!bio) {
        return false;
    }
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int added = 0;
    bool ok = true;
    while (X509 *cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
        ok = ok && X509_STORE_add_cert(store, cert) == 1;
        X509_free(cert);
        added++;
    }
    // The loop ends on "no start line" at the end of the text: expected.
    unsigned long last = ERR_peek_last_error();
    if (added && ERR_GET_REASON(last) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
    } else {
        ok = false;
    }
    BIO_free(bio);
    return ok && added > 0;
}
#endif

template <bool SSL>
us_socket_context_t *Socket<SSL>::create(us_loop_t *loop, const uws_client_tls_t *tls) {
    us_socket_context_options_t options = {};
    us_socket_context_t *context = us_create_socket_context(SSL, loop, 0, options);
    if (!context) {
        return nullptr;
    }
#ifndef LIBUS_NO_SSL
    if constexpr (SSL) {
        SSL_CTX *ctx = (SSL_CTX *) us_socket_context_get_native_handle(SSL, context);
        if (tls && tls->verify) {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, onVerify);
            loadSystemRoots(ctx);
            if (tls->ca_pem && !addCertificates(ctx, tls->ca_pem, tls->ca_pem_length)) {
                us_socket_context_free(SSL, context);
                return nullptr;
            }
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
        }
    }
#endif
    us_socket_context_on_open(SSL, context, onOpen);
    us_socket_context_on_data(SSL, context, onData);
    us_socket_context_on_writable(SSL, context, onWritable);
    us_socket_context_on_end(SSL, context, onEnd);
    us_socket_context_on_timeout(SSL, context, onTimeout);
    us_socket_context_on_long_timeout(SSL, context, onLongTimeout);
    us_socket_context_on_close(SSL, context, onClose);
    us_socket_context_on_connect_error(SSL, context, onConnectError);
    return context;
}

// The idle timeout before a ping and the time left for its answer, as
// uWebSockets computes them for servers.
inline std::pair<uint16_t, uint16_t> idleTimeouts(const uws_client_options_t *o) {
    if (!o->idle_timeout) {
        return {0, 4};
    }
    uWS::WebSocketContextData<false, int> settings(nullptr);
    settings.sendPingsAutomatically = o->send_pings_automatically != 0;
    settings.calculateIdleTimeoutCompnents(o->idle_timeout);
    return settings.idleTimeoutComponents;
}

}  // namespace client
}  // namespace

extern "C" {

uws_client_context_t *uws_client_context_create(int ssl, uws_loop_t *loop, const uws_client_tls_t *tls) noexcept {
    if (ssl && !kHaveTls) {
        return nullptr;
    }
    return with_kind(ssl, [&](auto kind) {
        return reinterpret_cast<uws_client_context_t *>(
            client::Socket<decltype(kind)::value>::create(reinterpret_cast<us_loop_t *>(loop), tls));
    });
}

void uws_client_context_free(int ssl, uws_client_context_t *context) noexcept {
    auto *c = reinterpret_cast<us_socket_context_t *>(context);
    // Connections that are closing (we wait for the server's FIN) are
    // still linked: close them, which calls nothing of ours.
    us_socket_context_close(ssl, c);
    us_socket_context_free(ssl, c);
}

uws_ws_t *uws_client_connect(int ssl, uws_client_context_t *c, const char *ip, int port, const char *host,
                             const char *request, size_t request_length, const uws_client_options_t *options,
                             const uws_client_behavior_t *behavior, void *ctx, void *user, int *error) noexcept {
    return with_kind(ssl, [&](auto kind) -> uws_ws_t * {
        constexpr bool SSL = decltype(kind)::value;
        errno = 0;
        us_socket_t *s = us_socket_context_connect(SSL, reinterpret_cast<us_socket_context_t *>(c), ip, port,
                                                   nullptr, 0, (int) sizeof(client::Data<SSL>));
        if (!s) {
            *error = errno ? errno : EINVAL;
            return nullptr;
        }
        auto *d = new (us_socket_ext(SSL, s)) client::Data<SSL>();
        d->options = *options;
        std::tie(d->idle, d->margin) = client::idleTimeouts(options);
        d->behavior = behavior;
        d->ctx = ctx;
        d->user = user;
        d->buffer.assign(request, request_length);
        d->host = host ? host : "";
        *error = 0;
        return reinterpret_cast<uws_ws_t *>(s);
    });
}

void uws_client_cancel(int ssl, uws_ws_t *w) noexcept {
    with_kind(ssl, [&](auto kind) {
        constexpr bool SSL = decltype(kind)::value;
        auto *socket = client::Socket<SSL>::of(w);
        client::Data<SSL> *d = socket->ext();
        if (d->phase == client::Phase::Connecting) {
            d->phase = client::Phase::Done;
            d->~Data();
            us_socket_close_connecting(SSL, socket->us());
        } else if (d->phase == client::Phase::Handshake) {
            // onClose frees the data and, in this phase, calls nothing.
            d->phase = client::Phase::Done;
            us_socket_close(SSL, socket->us(), 0, nullptr);
        }
    });
}

uws_send_status_t uws_client_send(int ssl, uws_ws_t *w, const char *data, size_t length, uws_opcode_t opcode,
                                  int compress) noexcept {
    return with_kind(ssl, [&](auto kind) {
        return client::Socket<decltype(kind)::value>::of(w)->send(sv(data, length), (uWS::OpCode) opcode,
                                                                   compress != 0);
    });
}

void uws_client_end(int ssl, uws_ws_t *w, int code, const char *message, size_t length) noexcept {
    with_kind(ssl, [&](auto kind) { client::Socket<decltype(kind)::value>::of(w)->end(code, sv(message, length)); });
}

void uws_client_close(int ssl, uws_ws_t *w) noexcept {
    with_kind(ssl, [&](auto kind) {
        auto *socket = client::Socket<decltype(kind)::value>::of(w);
        if (!socket->closed()) {
            us_socket_close(decltype(kind)::value, socket->us(), 0, nullptr);
        }
    });
}

void uws_websocket_accept(const char *key, char *accept) noexcept {
    char out[29];
    uWS::WebSocketHandshake::generate(key, out);
    memcpy(accept, out, 28);
}

}  // extern "C"
