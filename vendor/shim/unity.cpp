// unity.cpp: the whole native core as one translation unit.
//
// Part of the uws crate. uSockets' C files are compiled as C++ together with
// uWebSockets and our shim, so the compiler can inline the small uSockets
// calls into uWebSockets' hot paths (what -flto gives a C/C++ program)
// while the result is still a plain object that any linker takes.
// build.rs passes the upstream include paths.

extern "C" {
#include "bsd.c"
#include "context.c"
#include "loop.c"
#include "socket.c"
#include "udp.c"
#include "eventing/epoll_kqueue.c"
#include "crypto/openssl.c"
}
#include "crypto/sni_tree.cpp"

#include "uws_shim.cpp"
#include "uws_routes.cpp"
