// Bun HTTP server: every request is answered with 200 and "Hello, World!"
// (`fetch` returning a Response), like benches/reference/http.cpp and our
// `echo --reply "Hello, World!"`.
import { port, announce } from "./common.js";

const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  fetch() {
    return new Response("Hello, World!");
  },
});

announce(server);
