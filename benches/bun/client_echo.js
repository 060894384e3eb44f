// Bun's built-in WebSocket client as an echo load generator: N clients,
// each keeping K messages in flight; prints the RESULT line of
// benches/loadgen.
function flag(name, fallback) {
  const i = process.argv.indexOf(name);
  return i !== -1 && i + 1 < process.argv.length ? Number(process.argv[i + 1]) : fallback;
}

const port = flag("--port", 3000);
const clients = flag("--clients", 64);
const inflight = flag("--inflight", 128);
const size = flag("--size", 32);
const seconds = flag("--seconds", 10);
const payload = new Uint8Array(size).fill(120);

let count = 0;
let done = false;
const marks = [];
const start = performance.now();
const cpu0 = process.cpuUsage();

function tick() {
  const elapsed = (performance.now() - start) / 1000;
  while (elapsed >= marks.length + 1) marks.push(count);
  if (marks.length >= seconds && !done) {
    done = true;
    report();
  }
}

function report() {
  const elapsed = (performance.now() - start) / 1000;
  const per = marks.map((m, i) => m - (i ? marks[i - 1] : 0)).sort((a, b) => a - b);
  const med = per[Math.floor(per.length / 2)] ?? 0;
  const cpu = process.cpuUsage(cpu0);
  console.log(
    `RESULT mode=echo clients=${clients} inflight=${inflight} size=${size} messages=${count} ` +
      `seconds=${elapsed.toFixed(3)} rate=${Math.round(count / elapsed)} rate_median=${med} ` +
      `rate_min=${per[0] ?? 0} rate_max=${per[per.length - 1] ?? 0} ` +
      `cpu_s=${((cpu.user + cpu.system) / 1e6).toFixed(3)}`,
  );
  process.exit(0);
}

for (let c = 0; c < clients; c++) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    for (let i = 0; i < inflight; i++) ws.send(payload);
  };
  ws.onmessage = (event) => {
    count++;
    if ((count & 4095) === 0) tick();
    if (!done) ws.send(event.data);
  };
  ws.onerror = (e) => {
    console.error("client_echo: connection error", e.message ?? e);
    process.exit(1);
  };
}
