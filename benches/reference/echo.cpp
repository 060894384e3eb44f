// Reference echo server written directly against the pinned uWebSockets:
// every message goes back to its sender with the same opcode.
#include "common.h"

struct EchoUser {};

int main(int argc, char **argv) {
    bench::Args args = bench::parseArgs(argc, argv);

    uWS::App app;
    app.ws<EchoUser>("/*", {
        .compression = uWS::DISABLED,
        .maxPayloadLength = 16 * 1024 * 1024,
        .idleTimeout = 120,
        .maxBackpressure = 1024 * 1024,
        .closeOnBackpressureLimit = false,
        .resetIdleTimeoutOnSend = false,
        .sendPingsAutomatically = true,
        .message = [](auto *ws, std::string_view message, uWS::OpCode opCode) {
            ws->send(message, opCode);
        },
    });
    app.listen("127.0.0.1", args.port, bench::reportListening);
    app.run();
    return 0;
}
