// Target ws_server: the WebSocket frame parser in server mode as the
// server runs it (WebSocketProtocol<true> and WebSocketContext with our
// patches 0003-0005, behind our shim's handlers): masked and unmasked
// frames, fragments, control frames between fragments, close payloads,
// UTF-8 of text (whole and per fragment), permessage-deflate inflation
// (shared and dedicated decompressors) and the payload limit (1024, 256,
// 64 or 16 bytes). The upgrade request is ours; the input is what the
// client sends after it. Part of the uws crate's fuzzing (fuzz/README.md).
//
// Input: a flags byte, a seed byte for the cuts, then frames. Flags:
// bits 0-1 how reads are cut, bits 2-3 which app (compression, payload
// limit), bit 4 messages are echoed back (compressed when negotiated),
// bit 5 the first message ends the socket, bit 6 FIN at the end instead
// of a reset, bit 7 the first frames arrive in the same read as the
// upgrade request.
#include "../server.hpp"

#include <string>

static const char kUpgrade[] =
    "GET /chat HTTP/1.1\r\n"
    "Host: fuzz\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "\r\n";

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz::Config c(data, size);
    unsigned app = c.bits(2, 2);
    fuzz::reset_run(app);
    fuzz::run.echo = c.bit(4);
    fuzz::run.end_on_message = c.bit(5);
    {
        fuzz::ServerConnection connection(app);
        const uint8_t *frames = c.data;
        size_t length = c.size;
        if (c.bit(7) && length) {
            // The upgrade request and the first bytes after it in one read.
            size_t first = 1 + c.seed % length;
            std::string read(kUpgrade);
            read.append(reinterpret_cast<const char *>(frames), first);
            connection.read(reinterpret_cast<const uint8_t *>(read.data()), read.size());
            frames += first;
            length -= first;
        } else {
            connection.read(reinterpret_cast<const uint8_t *>(kUpgrade), sizeof(kUpgrade) - 1);
        }
        FUZZ_CHECK(fuzz::run.opens == 1 || connection.closed());
        fuzz::Reads reads(frames, length, c.bits(0, 2), c.seed);
        connection.read_all(reads);
        connection.end(c.bit(6));
    }
    fuzz::check_after_close();
    return 0;
}
