// Bun chat-room server, same protocol as benches/reference/chat.cpp:
// name from `?name=`, everyone subscribes to "room", "ready" is published
// once `--clients N` sockets are open, each message `msg` is published to
// the room as "NAME: msg" (text, sender included).
import { wsOptions, port, clients, announce } from "./common.js";

let open = 0;

const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  fetch(req, server) {
    const name = new URL(req.url).searchParams.get("name") || "anonymous";
    if (server.upgrade(req, { data: { name } })) return undefined;
    return new Response("expected a WebSocket upgrade", { status: 400 });
  },
  websocket: {
    ...wsOptions,
    open(ws) {
      ws.subscribe("room");
      open += 1;
      if (open === clients) server.publish("room", "ready");
    },
    message(ws, message) {
      server.publish("room", `${ws.data.name}: ${message}`);
    },
    close() {
      open -= 1;
    },
  },
});

announce(server);
