// uws_shim.cpp: the uws crate's C ABI over uWebSockets (see uws_shim.h).
// Part of the uws crate, not upstream code.

#include "uws_shim.h"

#include "App.h"
#include "uws_kind.hpp"

#include <cerrno>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <type_traits>

namespace {

// The per-socket user data: one pointer owned by the Rust side.
struct UserData {
    void *user = nullptr;
};

template <bool SSL>
using App = uWS::TemplatedApp<SSL>;
template <bool SSL>
using Ws = uWS::WebSocket<SSL, true, UserData>;
template <bool SSL>
using Res = uWS::HttpResponse<SSL>;


template <typename K>
App<K::value> *app(uws_app_t *a) { return reinterpret_cast<App<K::value> *>(a); }
template <typename K>
Ws<K::value> *ws(uws_ws_t *w) { return reinterpret_cast<Ws<K::value> *>(w); }
template <typename K>
Res<K::value> *res(uws_res_t *r) { return reinterpret_cast<Res<K::value> *>(r); }
uWS::HttpRequest *req(uws_req_t *r) { return reinterpret_cast<uWS::HttpRequest *>(r); }

template <bool SSL>
uws_ws_t *handle(Ws<SSL> *w) { return reinterpret_cast<uws_ws_t *>(w); }


const char *out(std::string_view s, size_t *length) {
    *length = s.length();
    return s.data();
}

uWS::SocketContextOptions context_options(const uws_tls_options_t *options) {
    uWS::SocketContextOptions o;
    if (options) {
        o.key_file_name = options->key_file_name;
        o.cert_file_name = options->cert_file_name;
        o.passphrase = options->passphrase;
        o.dh_params_file_name = options->dh_params_file_name;
        o.ca_file_name = options->ca_file_name;
        o.ssl_ciphers = options->ssl_ciphers;
        o.ssl_prefer_low_memory_usage = options->ssl_prefer_low_memory_usage;
    }
    return o;
}

// A WebSocket handshake (Upgrade: websocket) for a protocol version other
// than 13, the only one there is (uWebSockets routes any request with a
// key of the right length here). Without a version it is no handshake:
// `fetch` sees it, and refuses it if it tries to upgrade.
bool unsupported_version(uWS::HttpRequest *q) {
    std::string_view upgrade = q->getHeader("upgrade");
    bool websocket = upgrade.length() == 9;
    for (size_t i = 0; websocket && i < 9; i++) {
        websocket = (upgrade[i] | 0x20) == "websocket"[i];
    }
    std::string_view version = q->getHeader("sec-websocket-version");
    return websocket && version.length() && version != "13";
}

// RFC 6455 4.2.2 (and Bun): a handshake of another version is refused
// with the version we speak, before `fetch` or a route sees it.
template <bool SSL>
void refuse_version(Res<SSL> *r) {
    r->writeStatus("426 Upgrade Required")->writeHeader("Sec-WebSocket-Version", "13")->end();
}

// `routed`, when given, takes the handshakes instead of b->upgrade.
template <bool SSL, typename Routed = std::nullptr_t>
void register_ws(App<SSL> *a, const char *pattern, const uws_ws_behavior_t *b, Routed routed = nullptr) {
    typename App<SSL>::template WebSocketBehavior<UserData> behavior;
    behavior.compression = (uWS::CompressOptions) b->compression;
    behavior.maxPayloadLength = b->max_payload_length;
    behavior.idleTimeout = b->idle_timeout;
    behavior.maxBackpressure = b->max_backpressure;
    behavior.closeOnBackpressureLimit = b->close_on_backpressure_limit != 0;
    behavior.resetIdleTimeoutOnSend = b->reset_idle_timeout_on_send != 0;
    behavior.sendPingsAutomatically = b->send_pings_automatically != 0;
    behavior.maxLifetime = b->max_lifetime;
    void *ctx = b->ctx;
    if constexpr (!std::is_same_v<Routed, std::nullptr_t>) {
        behavior.upgrade = [routed = std::move(routed)](Res<SSL> *r, uWS::HttpRequest *q,
                                                        us_socket_context_t *c) mutable {
            if (unsupported_version(q)) {
                refuse_version(r);
                return;
            }
            routed(r, q, c);
        };
    } else if (auto cb = b->upgrade) {
        behavior.upgrade = [cb, ctx](Res<SSL> *r, uWS::HttpRequest *q, us_socket_context_t *c) {
            if (unsupported_version(q)) {
                refuse_version(r);
                return;
            }
            cb(ctx, reinterpret_cast<uws_res_t *>(r), reinterpret_cast<uws_req_t *>(q), c);
        };
    }
    if (auto cb = b->open) {
        behavior.open = [cb, ctx](Ws<SSL> *w) { cb(ctx, handle(w), w->getUserData()->user); };
    }
    if (auto cb = b->message) {
        behavior.message = [cb, ctx](Ws<SSL> *w, std::string_view m, uWS::OpCode op) {
            cb(ctx, handle(w), w->getUserData()->user, m.data(), m.length(), (uws_opcode_t) op);
        };
    }
    if (auto cb = b->dropped) {
        behavior.dropped = [cb, ctx](Ws<SSL> *w, std::string_view m, uWS::OpCode op) {
            cb(ctx, handle(w), w->getUserData()->user, m.data(), m.length(), (uws_opcode_t) op);
        };
    }
    if (auto cb = b->drain) {
        behavior.drain = [cb, ctx](Ws<SSL> *w) { cb(ctx, handle(w), w->getUserData()->user); };
    }
    if (auto cb = b->ping) {
        behavior.ping = [cb, ctx](Ws<SSL> *w, std::string_view m) {
            cb(ctx, handle(w), w->getUserData()->user, m.data(), m.length());
        };
    }
    if (auto cb = b->pong) {
        behavior.pong = [cb, ctx](Ws<SSL> *w, std::string_view m) {
            cb(ctx, handle(w), w->getUserData()->user, m.data(), m.length());
        };
    }
    if (auto cb = b->subscription) {
        const int *enabled = b->subscription_enabled;
        behavior.subscription = [cb, ctx, enabled](Ws<SSL> *w, std::string_view t, int now, int before) {
            if (!enabled || *enabled) {
                cb(ctx, handle(w), w->getUserData()->user, t.data(), t.length(), now, before);
            }
        };
    }
    if (auto cb = b->close) {
        behavior.close = [cb, ctx](Ws<SSL> *w, int code, std::string_view m) {
            cb(ctx, handle(w), w->getUserData()->user, code, m.data(), m.length());
        };
    }
    a->template ws<UserData>(pattern, std::move(behavior));
}

// Reads a private member of upstream's types without touching their code:
// an explicit template instantiation may name a private member (C++
// [temp.spec.general]); `Tag` says which member and its type.
template <typename Tag, typename Tag::type M>
struct Expose {
    friend typename Tag::type member(Tag) { return M; }
};

// WebSocketData keeps its subscriber node private, with no accessor.
struct SubscriberOf {
    using type = uWS::Subscriber *uWS::WebSocketData::*;
    friend type member(SubscriberOf);
};

template struct Expose<SubscriberOf, &uWS::WebSocketData::subscriber>;

// The socket's node in the topic tree (null while it is subscribed to nothing).
template <bool SSL>
uWS::Subscriber *sender_of(Ws<SSL> *w) {
    auto *data = static_cast<uWS::WebSocketData *>(us_socket_ext(SSL, reinterpret_cast<us_socket_t *>(w)));
    return data->*member(SubscriberOf{});
}

template <bool SSL>
int ws_publish(Ws<SSL> *w, std::string_view topic, std::string_view message, uWS::OpCode op, bool compress) {
    // Bun's ws.publish: every subscriber of the topic but the sender. A
    // socket subscribed to nothing has no subscriber node and cannot be
    // among the receivers; uWebSockets' own WebSocket::publish refuses to
    // publish from it, so we go to the topic tree directly, with the
    // sender's node (or none) excluded. The result says whether anybody
    // other than the sender gets the message.
    auto *context = us_socket_context(SSL, reinterpret_cast<us_socket_t *>(w));
    auto *data = static_cast<uWS::WebSocketContextData<SSL, UserData> *>(us_socket_context_ext(SSL, context));
    uWS::Subscriber *sender = sender_of(w);
    if (message.length() >= uWS::LoopData::CORK_BUFFER_SIZE) {
        bool someone = false;
        data->topicTree->publishBig(sender, topic, {message, op, compress},
                                    [&someone](uWS::Subscriber *s, uWS::TopicTreeBigMessage &big) {
                                        someone = true;
                                        auto *target = static_cast<Ws<SSL> *>(s->user);
                                        target->send(big.message, (uWS::OpCode) big.opCode, big.compress);
                                    });
        return someone;
    }
#ifdef UWS_HAS_QUEUED_FRAMES
    return data->topicTree->publish(sender, topic, [&](std::string &bytes) {
        return uWS::TopicTreeMessage::queue(bytes, message, op, compress);
    });
#else
    /* Built without our patches (UWS_UNPATCHED=1) */
    return data->topicTree->publish(sender, topic, {std::string(message), op, compress});
#endif
}

void remote_address(int ssl, us_socket_t *s, char *buf, int *length) {
    us_socket_remote_address(ssl, s, buf, length);
    if (*length != 4 && *length != 16) {
        *length = 0;
    }
}

// The pinned TemplatedApp keeps its HTTP context private and offers no
// accessor; an explicit template instantiation may name a private member
// (C++ [temp.spec.general]), which lets us read it without touching
// upstream's code.
template <bool SSL>
struct HttpContextOf {
    using type = uWS::HttpContext<SSL> *uWS::TemplatedApp<SSL>::*;
    friend type member(HttpContextOf);
};

template struct Expose<HttpContextOf<false>, &uWS::TemplatedApp<false>::httpContext>;
#ifndef LIBUS_NO_SSL
template struct Expose<HttpContextOf<true>, &uWS::TemplatedApp<true>::httpContext>;
#endif

template <bool SSL>
us_socket_context_t *http_context(App<SSL> *a) {
    return reinterpret_cast<us_socket_context_t *>(a->*member(HttpContextOf<SSL>{}));
}

struct TimerData {
    uws_callback_t cb;
    void *arg;
    bool fallthrough;
};

// A callback queued on a loop: runs once, or is dropped with the loop.
class Deferred {
public:
    Deferred(uws_callback_t cb, uws_callback_t drop, void *arg) : cb_(cb), drop_(drop), arg_(arg) {}
    Deferred(Deferred &&other) noexcept : cb_(other.cb_), drop_(other.drop_), arg_(other.arg_) { other.arg_ = nullptr; }
    Deferred(const Deferred &) = delete;
    ~Deferred() {
        if (arg_ && drop_) {
            drop_(arg_);
        }
    }
    void operator()() {
        void *arg = arg_;
        arg_ = nullptr;
        cb_(arg);
    }

private:
    uws_callback_t cb_;
    uws_callback_t drop_;
    void *arg_;
};

template <bool SSL>
uws_listen_t *listen_with(App<SSL> *a, int *error, auto &&listen) {
    us_listen_socket_t *ls = nullptr;
    errno = 0;
    listen(a, [&ls](us_listen_socket_t *s) { ls = s; });
    *error = ls ? 0 : errno;
    return reinterpret_cast<uws_listen_t *>(ls);
}

// Closes the context's TLS sockets that wait in the loop's low-priority
// queue (handshakes past uSockets' per-iteration budget): they are in no
// context's list, and have no request in progress.
void close_low_priority(int ssl, us_socket_context_t *context) {
    for (;;) {
        us_socket_t *s = context->loop->data.low_prio_head;
        while (s && s->context != context) {
            s = s->next;
        }
        if (!s) {
            return;
        }
        us_socket_close(ssl, s, 0, nullptr);
    }
}

// Whether an HTTP connection waits between requests with nothing to write.
template <bool SSL>
bool http_idle(us_socket_t *s) {
    auto *data = static_cast<uWS::HttpResponseData<SSL> *>(us_socket_ext(SSL, s));
    auto *res = reinterpret_cast<Res<SSL> *>(s);
    return res->hasResponded() && static_cast<uWS::AsyncSocketData<SSL> *>(data)->buffer.length() == 0;
}

}  // namespace

extern "C" {

void uws_loop_run(uws_loop_t *loop) noexcept { reinterpret_cast<uWS::Loop *>(loop)->run(); }

// Whether a new loop can get its descriptors: uSockets' loop (an epoll
// instance, a timer and a wakeup) and uWebSockets' date timer. Creating a
// loop does not check them and writes through what failed, so we ask first
// (the caller makes a thread's loop once, before anything else of it).
static bool descriptors_for_a_loop() {
    int fds[4] = {
        epoll_create1(EPOLL_CLOEXEC),
        timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC),
        timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC),
        eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC),
    };
    bool all = true;
    int error = 0;
    for (int fd : fds) {
        if (fd < 0) {
            all = false;
            error = errno;
        }
    }
    for (int fd : fds) {
        if (fd >= 0) close(fd);
    }
    if (!all) errno = error;
    return all;
}

uws_loop_t *uws_loop_get(void) noexcept {
    if (!descriptors_for_a_loop()) return nullptr;
    // A non-null hint makes uWebSockets leave freeing the loop to us (the
    // epoll backend ignores the hint itself).
    static char hint;
    return reinterpret_cast<uws_loop_t *>(uWS::Loop::get(&hint));
}

void uws_loop_free(uws_loop_t *loop) noexcept {
    auto *l = reinterpret_cast<us_loop_t *>(loop);
    auto *data = static_cast<uWS::LoopData *>(us_loop_ext(l));
    // Sockets closed since the loop last ran are freed at the end of an
    // iteration; there will be none.
    us_internal_free_closed_sockets(l);
    us_timer_close(data->dateTimer);
    data->~LoopData();
    us_loop_free(l);
}

void uws_loop_defer(uws_loop_t *loop, uws_callback_t cb, uws_callback_t drop, void *arg) noexcept {
    reinterpret_cast<uWS::Loop *>(loop)->defer(Deferred(cb, drop, arg));
}

void uws_loop_add_post_handler(uws_loop_t *loop, void *key, uws_callback_t cb, void *arg) noexcept {
    reinterpret_cast<uWS::Loop *>(loop)->addPostHandler(key, [cb, arg](uWS::Loop *) { cb(arg); });
}

void uws_loop_remove_post_handler(uws_loop_t *loop, void *key) noexcept {
    reinterpret_cast<uWS::Loop *>(loop)->removePostHandler(key);
}

uws_timer_t *uws_timer_create(uws_loop_t *loop, int fallthrough) noexcept {
    auto *l = reinterpret_cast<us_loop_t *>(loop);
    us_timer_t *t = us_create_timer(l, fallthrough, sizeof(TimerData));
    // NULL: no descriptor for it (errno says why); with patch 0012 nothing
    // was made or counted.
    if (!t) return nullptr;
    *static_cast<TimerData *>(us_timer_ext(t)) = TimerData{nullptr, nullptr, fallthrough != 0};
    return reinterpret_cast<uws_timer_t *>(t);
}

void uws_timer_set(uws_timer_t *timer, uws_callback_t cb, void *arg, int ms, int repeat_ms) noexcept {
    us_timer_t *t = reinterpret_cast<us_timer_t *>(timer);
    auto *data = static_cast<TimerData *>(us_timer_ext(t));
    data->cb = cb;
    data->arg = arg;
    us_timer_set(t, [](us_timer_t *t) {
        TimerData *d = static_cast<TimerData *>(us_timer_ext(t));
        d->cb(d->arg);
    }, ms, repeat_ms);
}

void uws_timer_close(uws_timer_t *timer) noexcept {
    us_timer_t *t = reinterpret_cast<us_timer_t *>(timer);
    // uSockets counts every closed timer out of the polls that keep the loop
    // running, fallthrough ones too, which never counted in: count it in first.
    if (static_cast<TimerData *>(us_timer_ext(t))->fallthrough) {
        us_timer_loop(t)->num_polls++;
    }
    us_timer_close(t);
}

uws_app_t *uws_app_create(int ssl, const uws_tls_options_t *options) noexcept {
    if (ssl && !kHaveTls) {
        return nullptr;
    }
    uWS::SocketContextOptions o = context_options(options);
    return with_kind(ssl, [&](auto kind) -> uws_app_t * {
        auto *a = new App<decltype(kind)::value>(o);
        if (a->constructorFailed()) {
            delete a;
            return nullptr;
        }
        return reinterpret_cast<uws_app_t *>(a);
    });
}

void uws_app_destroy(int ssl, uws_app_t *a) noexcept {
    with_kind(ssl, [&](auto kind) { delete app<decltype(kind)>(a); });
}

void uws_app_set_max_header_size(int ssl, uws_app_t *a, unsigned int bytes) noexcept {
#ifdef UWS_HAS_SET_MAX_HEADER_SIZE
    with_kind(ssl, [&](auto kind) { app<decltype(kind)>(a)->setMaxHeaderSize(bytes); });
#else
    /* Built without our patches (UWS_UNPATCHED=1): upstream's own limits apply */
    (void) ssl, (void) a, (void) bytes;
#endif
}

void uws_app_any(int ssl, uws_app_t *a, const char *pattern, uws_http_handler_t handler, void *ctx) noexcept {
    with_kind(ssl, [&](auto kind) {
        app<decltype(kind)>(a)->any(pattern, [handler, ctx](auto *r, uWS::HttpRequest *q) {
            handler(ctx, reinterpret_cast<uws_res_t *>(r), reinterpret_cast<uws_req_t *>(q), nullptr);
        });
    });
}

int uws_app_ws(int ssl, uws_app_t *a, const char *pattern, const uws_ws_behavior_t *b) noexcept {
    if ((b->idle_timeout > 0 && b->idle_timeout < 8) || b->idle_timeout > 960 || b->max_lifetime > 240) {
        return 0;
    }
    with_kind(ssl, [&](auto kind) { register_ws(app<decltype(kind)>(a), pattern, b); });
    return 1;
}

uws_listen_t *uws_app_listen(int ssl, uws_app_t *a, const char *host, int port, int options, int *error) noexcept {
    std::string h = host ? host : "";
    return with_kind(ssl, [&](auto kind) {
        return listen_with(app<decltype(kind)>(a), error,
                           [&](auto *ap, auto &&done) { ap->listen(h, port, options, std::move(done)); });
    });
}

uws_listen_t *uws_app_listen_unix(int ssl, uws_app_t *a, const char *path, int options, int *error) noexcept {
    return with_kind(ssl, [&](auto kind) {
        return listen_with(app<decltype(kind)>(a), error,
                           [&](auto *ap, auto &&done) { ap->listen(options, std::move(done), path); });
    });
}

int uws_listen_port(int ssl, uws_listen_t *listen) noexcept {
    return us_socket_local_port(ssl, reinterpret_cast<us_socket_t *>(listen));
}

void uws_listen_close(int ssl, uws_listen_t *listen) noexcept {
    us_listen_socket_close(ssl, reinterpret_cast<us_listen_socket_t *>(listen));
}

void *uws_app_native_handle(int ssl, uws_app_t *a) noexcept {
    return ssl ? with_kind(ssl, [&](auto kind) { return app<decltype(kind)>(a)->getNativeHandle(); }) : nullptr;
}

void *uws_app_http_context(int ssl, uws_app_t *a) noexcept {
    return with_kind(ssl, [&](auto kind) -> void * { return http_context(app<decltype(kind)>(a)); });
}

void uws_app_adopt(int ssl, uws_app_t *a, int fd) noexcept {
    with_kind(ssl, [&](auto kind) { app<decltype(kind)>(a)->adoptSocket(fd); });
}

void uws_context_add_server_name(int ssl, void *context, const char *hostname_pattern,
                                 const uws_tls_options_t *options) noexcept {
    us_socket_context_options_t o = context_options(options);
    us_socket_context_add_server_name(ssl, static_cast<us_socket_context_t *>(context), hostname_pattern, o, nullptr);
}

void *uws_listen_context(int ssl, uws_listen_t *listen) noexcept {
    return us_socket_context(ssl, reinterpret_cast<us_socket_t *>(listen));
}

int uws_context_stop_http(int ssl, void *c) noexcept {
    auto *context = static_cast<us_socket_context_t *>(c);
    while (context->head_listen_sockets) {
        us_listen_socket_close(ssl, context->head_listen_sockets);
    }
    close_low_priority(ssl, context);
    return with_kind(ssl, [&](auto kind) {
        constexpr bool SSL = decltype(kind)::value;
        int left = 0;
        for (us_socket_t *s = context->head_sockets, *next; s; s = next) {
            next = s->next;
            if (http_idle<SSL>(s)) {
                us_socket_close(SSL, s, 0, nullptr);
            } else {
                left++;
            }
        }
        return left;
    });
}

void uws_context_close_all(int ssl, void *c) noexcept {
    auto *context = static_cast<us_socket_context_t *>(c);
    while (context->head_listen_sockets) {
        us_listen_socket_close(ssl, context->head_listen_sockets);
    }
    // Always close the first one left: a close callback may close others,
    // which unlinks them, so a saved `next` could point into the loop's
    // list of closed sockets.
    while (context->head_sockets) {
        us_socket_close(ssl, context->head_sockets, 0, nullptr);
    }
    close_low_priority(ssl, context);
}

void uws_app_close(int ssl, uws_app_t *a) noexcept {
    with_kind(ssl, [&](auto kind) { app<decltype(kind)>(a)->close(); });
}

int uws_app_publish(int ssl, uws_app_t *a, const char *topic, size_t topic_length, const char *message,
                    size_t length, uws_opcode_t opcode, int compress) noexcept {
    return with_kind(ssl, [&](auto kind) {
        return app<decltype(kind)>(a)->publish(sv(topic, topic_length), sv(message, length), (uWS::OpCode) opcode,
                                               compress != 0);
    });
}

unsigned int uws_app_num_subscribers(int ssl, uws_app_t *a, const char *topic, size_t topic_length) noexcept {
    return with_kind(ssl, [&](auto kind) { return app<decltype(kind)>(a)->numSubscribers(sv(topic, topic_length)); });
}

uws_send_status_t uws_ws_send(int ssl, uws_ws_t *w, const char *data, size_t length, uws_opcode_t opcode,
                              int compress) noexcept {
    return with_kind(ssl, [&](auto kind) {
        return (uws_send_status_t) ws<decltype(kind)>(w)->send(sv(data, length), (uWS::OpCode) opcode, compress != 0);
    });
}

void uws_ws_end(int ssl, uws_ws_t *w, int code, const char *message, size_t length) noexcept {
    with_kind(ssl, [&](auto kind) { ws<decltype(kind)>(w)->end(code, sv(message, length)); });
}

void uws_ws_close(int ssl, uws_ws_t *w) noexcept {
    with_kind(ssl, [&](auto kind) { ws<decltype(kind)>(w)->close(); });
}

void uws_ws_cork(int ssl, uws_ws_t *w, uws_callback_t cb, void *arg) noexcept {
    with_kind(ssl, [&](auto kind) { ws<decltype(kind)>(w)->cork([cb, arg]() { cb(arg); }); });
}

int uws_ws_subscribe(int ssl, uws_ws_t *w, const char *topic, size_t length) noexcept {
    return with_kind(ssl, [&](auto kind) { return ws<decltype(kind)>(w)->subscribe(sv(topic, length)); });
}

int uws_ws_unsubscribe(int ssl, uws_ws_t *w, const char *topic, size_t length) noexcept {
    return with_kind(ssl, [&](auto kind) { return ws<decltype(kind)>(w)->unsubscribe(sv(topic, length)); });
}

int uws_ws_is_subscribed(int ssl, uws_ws_t *w, const char *topic, size_t length) noexcept {
    return with_kind(ssl, [&](auto kind) { return ws<decltype(kind)>(w)->isSubscribed(sv(topic, length)); });
}

void uws_ws_iterate_topics(int ssl, uws_ws_t *w, uws_topic_cb_t cb, void *arg) noexcept {
    with_kind(ssl, [&](auto kind) {
        ws<decltype(kind)>(w)->iterateTopics([cb, arg](std::string_view t) { cb(arg, t.data(), t.length()); });
    });
}

int uws_ws_publish(int ssl, uws_ws_t *w, const char *topic, size_t topic_length, const char *message,
                   size_t length, uws_opcode_t opcode, int compress) noexcept {
    return with_kind(ssl, [&](auto kind) {
        return ws_publish(ws<decltype(kind)>(w), sv(topic, topic_length), sv(message, length), (uWS::OpCode) opcode,
                          compress != 0);
    });
}

unsigned int uws_ws_buffered_amount(int ssl, uws_ws_t *w) noexcept {
    return with_kind(ssl, [&](auto kind) { return ws<decltype(kind)>(w)->getBufferedAmount(); });
}

void uws_ws_remote_address(int ssl, uws_ws_t *w, char *buf, int *length) noexcept {
    remote_address(ssl, reinterpret_cast<us_socket_t *>(w), buf, length);
}

const char *uws_req_method(uws_req_t *r, size_t *length) noexcept { return out(req(r)->getCaseSensitiveMethod(), length); }

const char *uws_req_url(uws_req_t *r, size_t *length) noexcept { return out(req(r)->getUrl(), length); }

const char *uws_req_full_url(uws_req_t *r, size_t *length) noexcept { return out(req(r)->getFullUrl(), length); }

const char *uws_req_query(uws_req_t *r, size_t *length) noexcept { return out(req(r)->getQuery(), length); }

const char *uws_req_header(uws_req_t *r, const char *lower_name, size_t name_length, size_t *length) noexcept {
    return out(req(r)->getHeader(sv(lower_name, name_length)), length);
}

void uws_req_for_each_header(uws_req_t *r, uws_header_cb_t cb, void *arg) noexcept {
    for (auto [key, value] : *req(r)) {
        cb(arg, key.data(), key.length(), value.data(), value.length());
    }
}

void uws_res_write_status(int ssl, uws_res_t *r, const char *status, size_t length) noexcept {
    with_kind(ssl, [&](auto kind) { res<decltype(kind)>(r)->writeStatus(sv(status, length)); });
}

void uws_res_write_header(int ssl, uws_res_t *r, const char *key, size_t key_length, const char *value,
                          size_t value_length) noexcept {
    with_kind(ssl, [&](auto kind) { res<decltype(kind)>(r)->writeHeader(sv(key, key_length), sv(value, value_length)); });
}

int uws_res_closed(int ssl, uws_res_t *r) noexcept {
    return us_socket_is_closed(ssl, reinterpret_cast<us_socket_t *>(r));
}

void uws_res_end(int ssl, uws_res_t *r, const char *body, size_t length, int close_connection) noexcept {
    with_kind(ssl, [&](auto kind) { res<decltype(kind)>(r)->end(sv(body, length), close_connection != 0); });
}

void uws_res_remote_address(int ssl, uws_res_t *r, char *buf, int *length) noexcept {
    remote_address(ssl, reinterpret_cast<us_socket_t *>(r), buf, length);
}

void uws_res_on_aborted(int ssl, uws_res_t *r, uws_res_aborted_cb_t cb, void *ctx, uint64_t token) noexcept {
    with_kind(ssl, [&](auto kind) {
        if (cb) {
            res<decltype(kind)>(r)->onAborted([cb, ctx, token]() { cb(ctx, token); });
        } else {
            res<decltype(kind)>(r)->onAborted(nullptr);
        }
    });
}

void uws_res_on_data(int ssl, uws_res_t *r, uws_res_data_cb_t cb, void *ctx, uint64_t token) noexcept {
    with_kind(ssl, [&](auto kind) {
        if (cb) {
            res<decltype(kind)>(r)->onData([cb, ctx, token](std::string_view chunk, bool last) {
                cb(ctx, token, chunk.data(), chunk.length(), last);
            });
        } else {
            res<decltype(kind)>(r)->onData(nullptr);
        }
    });
}

void uws_res_on_writable(int ssl, uws_res_t *r, uws_res_writable_cb_t cb, void *ctx, uint64_t token) noexcept {
    with_kind(ssl, [&](auto kind) {
        if (cb) {
            res<decltype(kind)>(r)->onWritable(
                [cb, ctx, token](uintmax_t offset) { return cb(ctx, token, offset) != 0; });
        } else {
            res<decltype(kind)>(r)->onWritable(nullptr);
        }
    });
}

void uws_res_cork(int ssl, uws_res_t *r, uws_callback_t cb, void *arg) noexcept {
    with_kind(ssl, [&](auto kind) { res<decltype(kind)>(r)->cork([cb, arg]() { cb(arg); }); });
}

int uws_res_write(int ssl, uws_res_t *r, const char *data, size_t length) noexcept {
    return with_kind(ssl, [&](auto kind) { return res<decltype(kind)>(r)->write(sv(data, length)) ? 1 : 0; });
}

size_t uws_res_buffered_amount(int ssl, uws_res_t *r) noexcept {
    return with_kind(ssl, [&](auto kind) {
        constexpr bool SSL = decltype(kind)::value;
        auto *data = static_cast<uWS::HttpResponseData<SSL> *>(us_socket_ext(SSL, reinterpret_cast<us_socket_t *>(r)));
        return static_cast<uWS::AsyncSocketData<SSL> *>(data)->buffer.length();
    });
}

void uws_res_end_without_body(int ssl, uws_res_t *r, int has_length, size_t length, int close_connection) noexcept {
    with_kind(ssl, [&](auto kind) {
        auto *response = res<decltype(kind)>(r);
        // uWebSockets' own reported length leaves the response waiting for
        // a body that never comes: write the header ourselves instead.
        if (has_length) {
            response->writeHeader("Content-Length", (uint64_t) length);
        }
        response->endWithoutBody(std::nullopt, close_connection != 0);
    });
}

void uws_res_close(int ssl, uws_res_t *r) noexcept {
    us_socket_close(ssl, reinterpret_cast<us_socket_t *>(r), 0, nullptr);
}

void uws_res_upgrade(int ssl, uws_res_t *r, void *user, const char *key, size_t key_length, const char *protocol,
                     size_t protocol_length, const char *extensions, size_t extensions_length,
                     void *ws_context) noexcept {
    with_kind(ssl, [&](auto kind) {
        res<decltype(kind)>(r)->template upgrade<UserData>(UserData{user}, sv(key, key_length),
                                                            sv(protocol, protocol_length),
                                                            sv(extensions, extensions_length),
                                                            static_cast<us_socket_context_t *>(ws_context));
    });
}

}  // extern "C"
