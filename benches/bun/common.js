// Shared bits of the Bun benchmark servers: options and command line.

export const wsOptions = {
  perMessageDeflate: false,
  maxPayloadLength: 16 * 1024 * 1024,
  idleTimeout: 120,
  backpressureLimit: 1024 * 1024,
  closeOnBackpressureLimit: false,
  sendPings: true,
  // The chat server publishes with server.publish, which reaches every
  // subscriber (the sender included) whatever this flag says.
  publishToSelf: false,
};

function flag(name, fallback) {
  const i = process.argv.indexOf(name);
  if (i !== -1 && i + 1 < process.argv.length) return process.argv[i + 1];
  return fallback;
}

function asNumber(name, text) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`bad value for ${name}: ${text}`);
    process.exit(2);
  }
  return n;
}

export const port = asNumber("--port", flag("--port", process.env.PORT ?? "3000"));
export const clients = asNumber("--clients", flag("--clients", "16"));

export function announce(server) {
  process.stdout.write(`listening on 127.0.0.1:${server.port}\n`);
}
