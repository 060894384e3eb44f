// Target http_request: the HTTP/1.1 request parser as the server runs it
// (uWebSockets' HttpParser and HttpContext with our patches 0006-0010,
// behind our shim's handlers): request heads, Content-Length and chunked
// bodies, pipelined requests, upgrades, the header size limit (16 KiB,
// 1 KiB or 256 bytes) and a request body limit, with the input cut into
// reads wherever the input says. Part of the uws crate's fuzzing
// (fuzz/README.md).
//
// Input: a flags byte, a seed byte for the cuts, then the bytes a client
// sends. Flags: bits 0-1 how reads are cut (harness.hpp), bits 2-3 which
// app (header limit), bit 4 answer at once instead of after the body,
// bit 5 a body limit of 64 bytes, bit 6 the client half-closes (FIN) at
// the end instead of resetting.
#include "../server.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz::Config c(data, size);
    unsigned app = c.bits(2, 2);
    fuzz::reset_run(app);
    fuzz::run.answer_after_body = !c.bit(4);
    fuzz::run.body_limit = c.bit(5) ? 64 : 1 << 20;
    {
        fuzz::ServerConnection connection(app);
        fuzz::Reads reads(c.data, c.size, c.bits(0, 2), c.seed);
        connection.read_all(reads);
        connection.end(c.bit(6));
    }
    fuzz::check_after_close();
    return 0;
}
