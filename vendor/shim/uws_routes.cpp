// uws_routes.cpp: Bun's `routes` on uWebSockets' own router (see the
// routes part of uws_shim.h). Part of the uws crate, not upstream code.
// Included by unity.cpp after uws_shim.cpp, whose helpers it uses.

#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

// What one method of a route gets.
struct Action {
    std::string method;  // empty: every method without an entry of its own
    bool prebuilt = false;
    std::string head;  // prebuilt: status line and header lines
    std::string body;  // prebuilt
    uint32_t handler = 0;
};

struct Route {
    std::vector<Action> actions;

    const Action *find(std::string_view method) const {
        const Action *get = nullptr, *any = nullptr;
        for (const Action &a : actions) {
            if (a.method == method) {
                return &a;
            }
            if (a.method.empty()) {
                any = &a;
            } else if (a.method == "GET") {
                get = &a;
            }
        }
        // GET answers HEAD (without its body).
        return method == "HEAD" && get ? get : any;
    }
};

// The router's user data: the method asked for, and what answers it.
struct Match {
    std::string_view method;
    const Action *action = nullptr;
};

}  // namespace

struct uws_routes_s {
    uWS::HttpRouter<Match> router;
    std::vector<Route> routes;
    // Patterns without `:param` or `*`, by path: a path equal to one is
    // that route's before any other (exact segments come first all the way
    // down), so it skips the walk through the tree. The views point into
    // `patterns`, whose strings never move.
    std::deque<std::string> patterns;
    std::unordered_map<std::string_view, int> exact;
    void *user = nullptr;
    bool has_fallback = false;
    uint32_t fallback = 0;
    // Requests it routed whose handler runs now.
    int busy = 0;
    // Replaced while busy: freed when the last of them returns.
    bool retired = false;
};

struct uws_router_s : std::enable_shared_from_this<uws_router_s> {
    uws_http_handler_t fetch = nullptr;
    uws_route_handler_t route = nullptr;
    void *ctx = nullptr;
    uws_routes_t *table = nullptr;
    bool closing = false;

    ~uws_router_s() { delete table; }

    template <bool SSL>
    void dispatch(Res<SSL> *res, uWS::HttpRequest *req, void *ws_context) {
        auto *r = reinterpret_cast<uws_res_t *>(res);
        auto *q = reinterpret_cast<uws_req_t *>(req);
        uws_routes_t *t = table;
        if (!t) {
            fetch(ctx, r, q, ws_context);
            return;
        }
        std::string_view method = req->getCaseSensitiveMethod();
        Match &match = t->router.getUserData();
        match.method = method;
        match.action = nullptr;
        // A route without an answer for this method lets the router go on
        // to the next one that matches (a wildcard, say), as Bun's does.
        const Action *action = nullptr;
        std::string_view url = req->getUrl();
        if (auto it = t->exact.find(url); it != t->exact.end()) {
            action = t->routes[it->second].find(method);
        }
        if (action) {
            req->setParameters({-1, nullptr});
        } else if (t->router.route(method, url)) {
            // The parameters stay in the table's router until it routes
            // again, which it cannot do before this request's handler returns.
            req->setParameters(t->router.getParameters());
            action = match.action;
        }
        if (action && action->prebuilt) {
            res->writeStatus(action->head);
            if (method == "HEAD") {
                res->writeHeader("Content-Length", (uint64_t) action->body.length());
                res->endWithoutBody(std::nullopt, closing);
            } else {
                res->end(action->body, closing);
            }
            return;
        }
        t->busy++;
        if (action) {
            route(ctx, t->user, r, q, ws_context, action->handler);
        } else if (t->has_fallback) {
            route(ctx, t->user, r, q, ws_context, t->fallback);
        } else {
            fetch(ctx, r, q, ws_context);
        }
        if (--t->busy == 0 && t->retired) {
            delete t;
        }
    }

    void install(uws_routes_t *routes) {
        uws_routes_t *old = table;
        table = routes;
        if (old) {
            if (old->busy) {
                old->retired = true;
            } else {
                delete old;
            }
        }
    }
};

namespace {

Action &action_of(uws_routes_t *t, int route, const char *method, size_t method_length) {
    std::vector<Action> &actions = t->routes[route].actions;
    std::string m(method, method_length);
    for (Action &a : actions) {
        if (a.method == m) {
            return a;
        }
    }
    actions.push_back(Action{});
    actions.back().method = std::move(m);
    return actions.back();
}

}  // namespace

extern "C" {

uws_routes_t *uws_routes_create(void *user) noexcept {
    auto *t = new uws_routes_t;
    t->user = user;
    return t;
}

void uws_routes_free(uws_routes_t *routes) noexcept { delete routes; }

int uws_routes_add(uws_routes_t *t, const char *pattern, size_t pattern_length) noexcept {
    int index = (int) t->routes.size();
    t->routes.emplace_back();
    std::string_view p = t->patterns.emplace_back(pattern, pattern_length);
    bool fixed = p.find("/:") == std::string_view::npos && p.substr(p.length() - std::min<size_t>(p.length(), 2)) != "/*";
    if (fixed) {
        t->exact.emplace(p, index);
    }
    t->router.add({std::string(uWS::HttpRouter<Match>::ANY_METHOD_TOKEN)}, std::string(pattern, pattern_length),
                  [t, index](uWS::HttpRouter<Match> *r) {
                      Match &m = r->getUserData();
                      m.action = t->routes[index].find(m.method);
                      return m.action != nullptr;
                  });
    return index;
}

void uws_routes_set_static(uws_routes_t *t, int route, const char *method, size_t method_length, const char *head,
                           size_t head_length, const char *body, size_t body_length) noexcept {
    Action &a = action_of(t, route, method, method_length);
    a.prebuilt = true;
    a.head.assign(head, head_length);
    a.body.assign(body, body_length);
}

void uws_routes_set_handler(uws_routes_t *t, int route, const char *method, size_t method_length,
                            uint32_t handler) noexcept {
    Action &a = action_of(t, route, method, method_length);
    a.prebuilt = false;
    a.handler = handler;
}

void uws_routes_set_fallback(uws_routes_t *t, uint32_t handler) noexcept {
    t->has_fallback = true;
    t->fallback = handler;
}

uws_router_t *uws_app_router(int ssl, uws_app_t *a, const char *pattern, uws_http_handler_t fetch,
                             uws_route_handler_t route, void *ctx) noexcept {
    auto router = std::make_shared<uws_router_t>();
    router->fetch = fetch;
    router->route = route;
    router->ctx = ctx;
    uws_router_t *raw = router.get();
    with_kind(ssl, [&](auto kind) {
        app<decltype(kind)>(a)->any(pattern, [router](auto *r, uWS::HttpRequest *q) { router->dispatch(r, q, nullptr); });
    });
    return raw;
}

void uws_router_set(uws_router_t *router, uws_routes_t *routes) noexcept { router->install(routes); }

void uws_router_set_closing(uws_router_t *router, int closing) noexcept { router->closing = closing != 0; }

int uws_app_ws_routed(int ssl, uws_app_t *a, const char *pattern, const uws_ws_behavior_t *b,
                      uws_router_t *router) noexcept {
    if (!router) {
        return uws_app_ws(ssl, a, pattern, b);
    }
    // Handshakes go to the router, which hands the WebSocket context to
    // whichever handler takes the request.
    std::shared_ptr<uws_router_t> owner = router->shared_from_this();
    uws_ws_behavior_t routed = *b;
    routed.upgrade = nullptr;
    if ((b->idle_timeout > 0 && b->idle_timeout < 8) || b->idle_timeout > 960 || b->max_lifetime > 240) {
        return 0;
    }
    with_kind(ssl, [&](auto kind) {
        constexpr bool SSL = decltype(kind)::value;
        register_ws(app<decltype(kind)>(a), pattern, &routed, [owner](Res<SSL> *r, uWS::HttpRequest *q, us_socket_context_t *c) {
            owner->dispatch(r, q, c);
        });
    });
    return 1;
}

const char *uws_req_parameter(uws_req_t *r, unsigned int index, size_t *length) noexcept {
    if (index > 0xffff) {
        *length = 0;
        return nullptr;
    }
    std::string_view p = req(r)->getParameter((unsigned short) index);
    *length = p.length();
    return p.data();
}

int uws_res_remote_port(int ssl, uws_res_t *r) noexcept {
    return us_socket_remote_port(ssl, reinterpret_cast<us_socket_t *>(r));
}

void uws_res_timeout(int ssl, uws_res_t *r, unsigned int seconds) noexcept {
    us_socket_timeout(ssl, reinterpret_cast<us_socket_t *>(r), seconds);
}

}  // extern "C"
