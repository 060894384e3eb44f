// Target ws_client: the WebSocket frame parser in client mode as our
// shim's client runs it (WebSocketProtocol<false> with our patches
// 0003-0005, and uws_client.cpp's fragment, UTF-8 and close handling),
// with permessage-deflate inflation (the loop's shared decompressor or a
// dedicated one of 9 to 15 window bits) under a small payload limit: a
// deflate bomb must stop at the limit (64 or 1024 bytes). The 101
// response is ours; the input is what the server sends after it. Part of
// the uws crate's fuzzing (fuzz/README.md).
//
// Input: a flags byte, a seed byte for the cuts, then frames. Flags:
// bits 0-1 how reads are cut, bit 2 deflate negotiated, bit 3 the shared
// decompressor, bits 4-5 the dedicated one's window (9, 10, 12, 15 bits),
// bit 6 a payload limit of 64 bytes instead of 1024, bit 7 messages are
// echoed (compressed when negotiated).
#include "../client.hpp"

#include <string>

static const char kResponse[] =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "\r\n";

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz::Config c(data, size);
    static const int windows[4] = {9, 10, 12, 15};
    fuzz::client_run = fuzz::ClientRun();
    fuzz::ClientRun &r = fuzz::client_run;
    r.deflate.enabled = c.bit(2);
    r.deflate.inflate_shared = c.bit(3);
    r.deflate.inflate_window = windows[c.bits(4, 2)];
    r.deflate.deflate_window = 15;
    r.deflate.deflate_mem_level = 8;
    r.deflate.deflate_reset = 1;
    r.max_payload = c.bit(6) ? 64 : 1024;
    r.echo = c.bit(7);
    std::string stream(kResponse);
    stream.append(reinterpret_cast<const char *>(c.data), c.size);
    r.stream = stream;
    {
        fuzz::ClientConnection connection;
        // The head alone, then the frames cut as the input says.
        r.delivered = sizeof(kResponse) - 1;
        connection.read(reinterpret_cast<const uint8_t *>(stream.data()), sizeof(kResponse) - 1);
        FUZZ_CHECK(r.opens == 1);
        fuzz::Reads reads(reinterpret_cast<const uint8_t *>(stream.data()) + sizeof(kResponse) - 1, c.size,
                          c.bits(0, 2), c.seed);
        connection.read_stream(reads);
        connection.end(true);
    }
    fuzz::check_client_after_close();
    return 0;
}
