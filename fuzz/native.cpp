// fuzz/native.cpp: the server side of the native core for the fuzz
// targets: our shim (vendor/shim/uws_shim.cpp and uws_routes.cpp, as
// unity.cpp has them) over the patched
// uWebSockets headers. build.rs compiles uSockets' C files into the same
// unit as C++ (GCC's -fpermissive); clang has no such switch, so here they
// are compiled as C and only their internal header is shared.
// Part of the uws crate's fuzzing (fuzz/README.md).
extern "C" {
#include "internal/internal.h"
}
#include "uws_shim.cpp"
#include "uws_routes.cpp"
