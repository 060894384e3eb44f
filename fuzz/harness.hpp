// fuzz/harness.hpp: what the libFuzzer targets share. Part of the uws
// crate's fuzzing (fuzz/README.md), not upstream code.
//
// A target does what uSockets' event loop does for one connection, without
// the network: it makes a socket of a socket context from one end of a
// socketpair (the other end takes what the server writes, unread: an
// input writes far less than the socket buffer holds, and more would only
// be buffered by uWebSockets), then hands the
// input to the context's data callback read by read, each read in a buffer
// with LIBUS_RECV_BUFFER_PADDING bytes before and after it (as the loop's
// receive buffer has), each inside one loop iteration (pre and post
// callbacks, closed sockets freed). How the input is cut into reads is
// chosen by the input itself (Reads).
#ifndef UWS_FUZZ_HARNESS_HPP
#define UWS_FUZZ_HARNESS_HPP

#include "uws_shim.h"

extern "C" {
#include "libusockets.h"
#include "internal/internal.h"
}

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string_view>
#include <sys/socket.h>
#include <unistd.h>
#include <utility>

// A property of the code under test that must hold: when it does not,
// abort (libFuzzer reports it as a crash and keeps the input).
#define FUZZ_CHECK(cond)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

namespace fuzz {

// The input cut into reads. `mode` (2 bits): 0 one read; 1 reads of 1-4
// bytes; 2 reads of 1-64 bytes; 3 reads of 1 to 512 bytes, mostly short.
// Past the first 512 bytes, reads are at least 1-64 bytes (a loop
// iteration per byte of a long input makes a slow run, and the cuts that
// matter are near each other anyway). The sizes come from a small
// generator seeded with `seed`, so a byte of the input moves every cut.
class Reads {
public:
    Reads(const uint8_t *data, size_t size, unsigned mode, uint8_t seed)
        : data_(data), size_(size), mode_(mode & 3), state_(0x9e3779b9u ^ (seed * 0x01000193u)) {}

    bool done() const { return pos_ >= size_; }

    // The next read (never empty; only while !done()).
    std::pair<const uint8_t *, size_t> next() {
        size_t left = size_ - pos_;
        size_t n = left;
        switch (mode_) {
        case 1: n = 1 + rand() % (pos_ < 512 ? 4 : 64); break;
        case 2: n = 1 + rand() % 64; break;
        case 3: n = 1 + rand() % (1u << (rand() % 10)); break;
        default: break;
        }
        n = n < left ? n : left;
        const uint8_t *p = data_ + pos_;
        pos_ += n;
        return {p, n};
    }

private:
    uint32_t rand() {
        // xorshift32
        state_ ^= state_ << 13;
        state_ ^= state_ >> 17;
        state_ ^= state_ << 5;
        return state_;
    }

    const uint8_t *data_;
    size_t size_;
    size_t pos_ = 0;
    unsigned mode_;
    uint32_t state_;
};

// This thread's loop, asked for once (uws_loop_get checks that the
// descriptors of a new loop are there, with four system calls).
inline us_loop_t *loop() {
    static us_loop_t *const l = reinterpret_cast<us_loop_t *>(uws_loop_get());
    return l;
}

// One connection of a socket context, as the loop would drive it.
class Connection {
public:
    // A socket made by `adopt(fd)`, which must link a new socket into
    // `context` (uSockets puts it at the head of the context's list).
    template <typename Adopt>
    Connection(us_socket_context_t *context, Adopt &&adopt) {
        int fds[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) {
            perror("socketpair");
            abort();
        }
        fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
        fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
        peer_ = fds[1];
        us_internal_loop_pre(loop());
        adopt(fds[0]);
        s_ = context->head_sockets;
        FUZZ_CHECK(s_ && us_poll_fd(&s_->p) == fds[0]);
        finish_iteration();
    }

    ~Connection() {
        if (!closed_) {
            us_internal_loop_pre(loop());
            us_socket_close(0, s_, 0, nullptr);
            finish_iteration();
        }
        close(peer_);
    }

    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;

    us_socket_t *socket() const { return s_; }
    bool closed() const { return closed_; }

    // One read of `n` (> 0) bytes; false once the socket is closed.
    bool read(const uint8_t *p, size_t n) {
        if (closed_) {
            return false;
        }
        us_internal_loop_pre(loop());
        char *buffer = static_cast<char *>(malloc(n + 2 * LIBUS_RECV_BUFFER_PADDING));
        memset(buffer, 0, LIBUS_RECV_BUFFER_PADDING);
        memcpy(buffer + LIBUS_RECV_BUFFER_PADDING, p, n);
        memset(buffer + LIBUS_RECV_BUFFER_PADDING + n, 0, LIBUS_RECV_BUFFER_PADDING);
        s_ = s_->context->on_data(s_, buffer + LIBUS_RECV_BUFFER_PADDING, (int) n);
        free(buffer);
        finish_iteration();
        return !closed_;
    }

    // Every read of `reads`, until the socket closes.
    void read_all(Reads &reads) {
        while (!reads.done()) {
            auto [p, n] = reads.next();
            if (!read(p, n)) {
                return;
            }
        }
    }

    // The peer's FIN, as the loop reports it (or, with fin false, the
    // connection reset: closed without the end callback).
    void end(bool fin) {
        if (closed_) {
            return;
        }
        us_internal_loop_pre(loop());
        if (fin && !us_socket_is_shut_down(0, s_)) {
            s_ = s_->context->on_end(s_);
        } else {
            s_ = us_socket_close(0, s_, 0, nullptr);
        }
        finish_iteration();
    }


private:
    void finish_iteration() {
        closed_ = closed_ || us_socket_is_closed(0, s_);
        us_internal_loop_post(loop());
    }

    us_socket_t *s_ = nullptr;
    int peer_ = -1;
    bool closed_ = false;
};

// The input's first two bytes (when there are) configure the run.
struct Config {
    uint8_t flags = 0;
    uint8_t seed = 0;
    const uint8_t *data;
    size_t size;

    Config(const uint8_t *d, size_t n) : data(d), size(n) {
        if (size >= 2) {
            flags = data[0];
            seed = data[1];
            data += 2;
            size -= 2;
        } else {
            size = 0;
        }
    }
    bool bit(unsigned i) const { return (flags >> i) & 1; }
    unsigned bits(unsigned at, unsigned count) const { return (flags >> at) & ((1u << count) - 1); }
};

inline std::string_view view(const char *p, size_t n) { return std::string_view(p ? p : "", p ? n : 0); }

}  // namespace fuzz

#endif  // UWS_FUZZ_HARNESS_HPP
