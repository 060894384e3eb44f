// Shared bits of the C++ reference servers (ours, not upstream code):
// command line parsing and the "listening on" line.
#pragma once

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "App.h"

namespace bench {

struct Args {
    int port = 3000;
    int clients = 16;
};

inline int parseNumber(const char *flag, const char *text) {
    char *end = nullptr;
    long v = std::strtol(text, &end, 10);
    if (!text[0] || *end || v < 0 || v > 1000000) {
        std::fprintf(stderr, "bad value for %s: %s\n", flag, text);
        std::exit(2);
    }
    return (int) v;
}

inline Args parseArgs(int argc, char **argv) {
    // uSockets writes large messages with writev(), which (unlike its send()
    // calls) does not pass MSG_NOSIGNAL: a peer that resets mid-write would
    // kill the process with SIGPIPE. Rust binaries and Bun ignore it too.
    std::signal(SIGPIPE, SIG_IGN);
    Args a;
    if (const char *env = std::getenv("PORT")) {
        a.port = parseNumber("PORT", env);
    }
    for (int i = 1; i < argc; i++) {
        bool hasValue = i + 1 < argc;
        if (!std::strcmp(argv[i], "--port") && hasValue) {
            a.port = parseNumber("--port", argv[++i]);
        } else if (!std::strcmp(argv[i], "--clients") && hasValue) {
            a.clients = parseNumber("--clients", argv[++i]);
        } else {
            std::fprintf(stderr, "usage: %s [--port N] [--clients N]\n", argv[0]);
            std::exit(2);
        }
    }
    return a;
}

// Called by App::listen: reports the bound port (port 0 = ephemeral) or exits.
inline void reportListening(us_listen_socket_t *listenSocket) {
    if (!listenSocket) {
        std::fprintf(stderr, "failed to listen\n");
        std::exit(1);
    }
    int bound = us_socket_local_port(0, (us_socket_t *) listenSocket);
    std::printf("listening on 127.0.0.1:%d\n", bound);
    std::fflush(stdout);
}

} // namespace bench
