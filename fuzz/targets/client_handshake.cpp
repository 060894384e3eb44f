// Target client_handshake: how our shim's client takes the response to its
// upgrade request (uws_client.cpp, Socket::handshake): the head gathered
// across reads up to its first blank line and handed to the crate once
// (src/client/handshake.rs checks status, Sec-WebSocket-Accept, protocol
// and extensions; its own randomized test covers that parser), the 16 KiB
// head limit, a connection closed before the head ends, a refused head,
// and the frames that arrive in the same read as the end of the head.
// Part of the uws crate's fuzzing (fuzz/README.md).
//
// Input: a flags byte, a seed byte for the cuts, then what the server
// sends. Flags: bits 0-1 how reads are cut, bit 2 the head is refused,
// bit 3 deflate negotiated (shared decompressor), bit 4 a payload limit
// of 64 bytes, bit 5 the head is padded past 16 KiB (a header of 16 KiB
// first), bit 6 FIN at the end instead of a reset.
#include "../client.hpp"

#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz::Config c(data, size);
    fuzz::client_run = fuzz::ClientRun();
    fuzz::ClientRun &r = fuzz::client_run;
    r.accept = !c.bit(2);
    r.deflate.enabled = c.bit(3);
    r.deflate.inflate_shared = 1;
    r.deflate.inflate_window = 15;
    r.deflate.deflate_window = 15;
    r.deflate.deflate_mem_level = 8;
    r.deflate.deflate_reset = 1;
    r.max_payload = c.bit(4) ? 64 : 1024;
    std::string stream;
    if (c.bit(5)) {
        // A long status line start, so that small inputs reach the limit.
        stream.assign("HTTP/1.1 101 ");
        stream.append(16 * 1024 - 8, 'x');
    }
    stream.append(reinterpret_cast<const char *>(c.data), c.size);
    r.stream = stream;
    {
        fuzz::ClientConnection connection;
        const uint8_t *start = reinterpret_cast<const uint8_t *>(stream.data());
        size_t padding = stream.size() - c.size;
        if (padding) {
            // The padding in one read (16 KiB of 1-byte reads would be slow).
            r.delivered = padding;
            connection.read(start, padding);
        }
        fuzz::Reads reads(start + padding, c.size, c.bits(0, 2), c.seed);
        connection.read_stream(reads);
        connection.end(c.bit(6));
    }
    fuzz::check_client_after_close();
    return 0;
}
