// Reference HTTP server written directly against uWebSockets (the same tree
// as ours, see build.sh): every request is answered at once with 200 and
// "Hello, World!", like `echo --reply "Hello, World!"` (ours) and
// benches/bun/http.js.
#include "common.h"

int main(int argc, char **argv) {
    bench::Args args = bench::parseArgs(argc, argv);
    uWS::App app;
    app.any("/*", [](auto *res, auto *) { res->end("Hello, World!"); });
    app.listen("127.0.0.1", args.port, bench::reportListening);
    app.run();
    return 0;
}
