// uws_kind.hpp: what every file of the shim shares: the dispatch on plain
// or TLS, and string views from the C ABI. Part of the uws crate, not
// upstream code.
#ifndef UWS_KIND_HPP
#define UWS_KIND_HPP

#include <string_view>
#include <type_traits>

namespace {

#ifdef LIBUS_NO_SSL
constexpr bool kHaveTls = false;
#else
constexpr bool kHaveTls = true;
#endif

// Calls f(std::true_type) for a TLS socket and f(std::false_type) for a
// plain one. Without TLS support only the plain instantiations exist, which
// keeps the translation units small enough for GCC to inline what matters.
template <typename F>
decltype(auto) with_kind(int ssl, F &&f) {
    if constexpr (kHaveTls) {
        if (ssl) {
            return f(std::true_type{});
        }
    }
    return f(std::false_type{});
}

// Callers pass a valid pointer for every non-zero length (and maybe null
// with length 0, which string_view accepts).
inline std::string_view sv(const char *data, size_t length) { return std::string_view(data, length); }

}  // namespace

#endif  // UWS_KIND_HPP
