// Target shim_request: our shim's request glue where it parses or looks
// up (uws_req_method, _url, _full_url, _query, _header,
// _for_each_header: what src/http/request.rs builds path, query, query
// parameters, cookies, headers and the upgrade check on), over requests
// the fuzzer writes, with header names the fuzzer picks. Checks: the path
// is the target before '?', the query what follows it, every header the
// walk shows is found by lookup with its first value, header names are
// lower-case, a lookup finds only what the walk shows. Part of the uws
// crate's fuzzing (fuzz/README.md).
//
// Input: a flags byte, a seed byte for the cuts, header names to look up
// (separated by '\n', ended by a 0 byte), then the bytes a client sends.
// Flags: bits 0-1 how reads are cut, bits 2-3 which app.
#include "../server.hpp"

#include <string>
#include <vector>

namespace {

std::vector<std::string> names;

struct Walk {
    std::vector<std::pair<std::string_view, std::string_view>> headers;
};

void collect(void *arg, const char *k, size_t kl, const char *v, size_t vl) {
    static_cast<Walk *>(arg)->headers.emplace_back(fuzz::view(k, kl), fuzz::view(v, vl));
}

// What the walk says a lookup of `name` must give (the first value), or
// nothing.
const std::string_view *first(const Walk &w, std::string_view name) {
    for (auto &[k, v] : w.headers) {
        if (k == name) {
            return &v;
        }
    }
    return nullptr;
}

unsigned touch(std::string_view s) {
    // Every byte is read, so that ASan sees any view past its buffer.
    unsigned sum = 0;
    for (char ch : s) {
        sum += (unsigned char) ch;
    }
    return sum;
}

volatile unsigned sink;

void inspect(uws_req_t *req) {
    size_t n = 0;
    const char *p = uws_req_method(req, &n);
    std::string_view method = fuzz::view(p, n);
    p = uws_req_url(req, &n);
    std::string_view url = fuzz::view(p, n);
    p = uws_req_full_url(req, &n);
    std::string_view full = fuzz::view(p, n);
    p = uws_req_query(req, &n);
    bool has_query = p != nullptr;
    std::string_view query = fuzz::view(p, n);
    sink = touch(method) + touch(url) + touch(full) + touch(query);

    FUZZ_CHECK(!method.empty());
    FUZZ_CHECK(full.substr(0, url.size()) == url);
    if (has_query) {
        FUZZ_CHECK(full.size() == url.size() + 1 + query.size());
        FUZZ_CHECK(full[url.size()] == '?');
        FUZZ_CHECK(full.substr(url.size() + 1) == query);
        FUZZ_CHECK(url.find('?') == std::string_view::npos);
    } else {
        FUZZ_CHECK(full == url);
    }

    Walk walk;
    uws_req_for_each_header(req, collect, &walk);
    for (auto &[k, v] : walk.headers) {
        sink = touch(k) + touch(v);
        FUZZ_CHECK(!k.empty());
        for (char ch : k) {
            FUZZ_CHECK(!(ch >= 'A' && ch <= 'Z'));
        }
        std::string_view found = fuzz::header(req, k);
        FUZZ_CHECK(found.data() != nullptr);
        FUZZ_CHECK(found == *first(walk, k));
    }
    for (const std::string &name : names) {
        // The crate lower-cases ASCII before it looks up.
        std::string lower = name;
        for (char &ch : lower) {
            if (ch >= 'A' && ch <= 'Z') {
                ch += 32;
            }
        }
        size_t length = 0;
        const char *value = uws_req_header(req, lower.data(), lower.size(), &length);
        const std::string_view *expected = first(walk, lower);
        if (expected) {
            FUZZ_CHECK(value && fuzz::view(value, length) == *expected);
        } else {
            FUZZ_CHECK(!value);
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz::Config c(data, size);
    const uint8_t *end = static_cast<const uint8_t *>(memchr(c.data, 0, c.size));
    names.clear();
    if (end) {
        std::string_view list(reinterpret_cast<const char *>(c.data), end - c.data);
        size_t at = 0;
        while (at <= list.size() && names.size() < 16) {
            size_t nl = list.find('\n', at);
            if (nl == std::string_view::npos) {
                nl = list.size();
            }
            names.emplace_back(list.substr(at, nl - at));
            at = nl + 1;
        }
        c.size -= end + 1 - c.data;
        c.data = end + 1;
    }
    unsigned app = c.bits(2, 2);
    fuzz::reset_run(app);
    fuzz::run.inspect = inspect;
    fuzz::run.answer_after_body = false;
    {
        fuzz::ServerConnection connection(app);
        fuzz::Reads reads(c.data, c.size, c.bits(0, 2), c.seed);
        connection.read_all(reads);
        connection.end(true);
    }
    fuzz::check_after_close();
    return 0;
}
