// Reference chat-room server written directly against the pinned uWebSockets
// (same protocol as benches/bun/chat.js and the uws example):
//  - the client name comes from the `?name=` query,
//  - every socket subscribes to the topic "room",
//  - once `--clients N` sockets are open, "ready" is published to the room,
//  - every message `msg` is published to the room as "NAME: msg" (text),
//    the sender included.
#include "common.h"

#include <string_view>

struct ChatUser {
    std::string name;
};

int main(int argc, char **argv) {
    bench::Args args = bench::parseArgs(argc, argv);
    int open = 0;
    std::string line; // reused for every outgoing message

    uWS::App app;
    app.ws<ChatUser>("/*", {
        .compression = uWS::DISABLED,
        .maxPayloadLength = 16 * 1024 * 1024,
        .idleTimeout = 120,
        .maxBackpressure = 1024 * 1024,
        .closeOnBackpressureLimit = false,
        .resetIdleTimeoutOnSend = false,
        .sendPingsAutomatically = true,
        .upgrade = [](auto *res, auto *req, auto *context) {
            std::string_view name = req->getQuery("name");
            ChatUser user{name.empty() ? std::string("anonymous") : std::string(name)};
            res->template upgrade<ChatUser>(std::move(user),
                req->getHeader("sec-websocket-key"),
                req->getHeader("sec-websocket-protocol"),
                req->getHeader("sec-websocket-extensions"),
                context);
        },
        .open = [&](auto *ws) {
            ws->subscribe("room");
            if (++open == args.clients) {
                app.publish("room", "ready", uWS::OpCode::TEXT);
            }
        },
        .message = [&](auto *ws, std::string_view message, uWS::OpCode) {
            const std::string &name = ws->getUserData()->name;
            line.clear();
            line.append(name).append(": ").append(message);
            app.publish("room", line, uWS::OpCode::TEXT);
        },
        .close = [&](auto *, int, std::string_view) {
            open--;
        },
    });
    app.listen("127.0.0.1", args.port, bench::reportListening);
    app.run();
    return 0;
}
