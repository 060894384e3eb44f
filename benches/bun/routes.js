// Bun `routes` server: the same routes as examples/routes.rs (the HTTP
// routes benchmark asks /api/status, a static route, and /users/42, a
// param route; anything unmatched goes to fetch).
import { port, announce } from "./common.js";

function routes(home) {
  return {
    "/": new Response(home),
    "/api/status": new Response("OK"),
    "/users/:id": req => new Response(`Hello User ${req.params.id}!`),
    "/api/posts": {
      GET: () => new Response("List posts"),
      POST: async req => new Response(`created: ${await req.text()}`, { status: 201 }),
    },
    "/api/*": new Response("Not found", { status: 404 }),
    "/blog/hello": Response.redirect("/blog/hello/world"),
    "/ip": (req, server) => new Response(server.requestIP(req)?.address ?? "unix socket"),
    "/reload": (req, server) => {
      server.reload({ routes: routes("Home 2"), fetch });
      return new Response("reloaded");
    },
    "/ws": (req, server) =>
      server.upgrade(req) ? undefined : new Response("Upgrade failed", { status: 400 }),
  };
}

function fetch() {
  return new Response("Unmatched route", { status: 404 });
}

const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  routes: routes("Home"),
  fetch,
  websocket: {
    message(ws, message) {
      ws.send(message);
    },
  },
});

announce(server);
