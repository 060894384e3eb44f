// Bun echo server: every message goes back to its sender with its opcode
// (strings as text, binary as binary).
import { wsOptions, port, announce } from "./common.js";

const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  fetch(req, server) {
    if (server.upgrade(req, { data: {} })) return undefined;
    return new Response("expected a WebSocket upgrade", { status: 400 });
  },
  websocket: {
    ...wsOptions,
    message(ws, message) {
      ws.send(message);
    },
  },
});

announce(server);
