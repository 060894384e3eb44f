#!/usr/bin/env python3
"""fuzz/seeds.py: writes the hand-made seed inputs of every target into
fuzz/corpus/TARGET/seed-*. Each input is a flags byte, a seed byte for the
cuts, then the target's bytes (see the comment atop each target). Run it,
then `fuzz/run.sh --merge` to keep what adds coverage. Part of the uws
crate's fuzzing (fuzz/README.md)."""
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, flags, seed, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(bytes([flags, seed]) + data)


def frame(opcode, payload, fin=True, mask=None, rsv1=False):
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    bit = 0x80 if mask is not None else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def deflated(payload):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


M = b"\x12\x34\x56\x78"

# ---- http_request ----
requests = {
    "get": b"GET /hello?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "post-length": b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    "post-chunked": b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
    "pipelined": b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
    b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
    b"POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    b"GET /4 HTTP/1.1\r\nHost: a\r\n\r\n",
    "http10": b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "absolute": b"GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "expect": b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "cl-and-te": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two-lengths": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "bad-byte": b"GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n",
    "bare-lf": b"GET / HTTP/1.1\nHost: a\n\n",
    "no-version": b"GET / \r\n\r\n",
    "upgrade": b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    + frame(1, b"hi", mask=M),
    "big-chunk": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"ffffffffffffffff\r\nabc",
    "folded": b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  continued\r\n\r\n",
}
for i, (name, data) in enumerate(sorted(requests.items())):
    write("http_request", name, (i * 0x25) & 0x7F, i * 37 & 0xFF, data)
write("http_request", "long-head", 0x04 | 0x01, 9, b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + b"v" * 300 + b"\r\n\r\n")
write("http_request", "many-headers", 0x0C | 0x02, 3, b"GET / HTTP/1.1\r\n" + b"".join(b"H%d: %d\r\n" % (i, i) for i in range(80)) + b"\r\n")
write("http_request", "body-limit", 0x20 | 0x03, 5, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + b"b" * 100)

# ---- ws_server (after our upgrade request; masked client frames) ----
ws = {
    "text": frame(1, "héllo".encode(), mask=M),
    "binary": frame(2, bytes(range(200)), mask=M),
    "fragments": frame(1, b"frag", fin=False, mask=M) + frame(9, b"ping", mask=M)
    + frame(0, "ménts".encode(), mask=M),
    "utf8-split": frame(1, "€".encode()[:2], fin=False, mask=M) + frame(0, "€".encode()[2:], mask=M),
    "bad-utf8": frame(1, b"ok\xc3\x28", mask=M),
    "close-reason": frame(8, struct.pack(">H", 1000) + b"bye", mask=M),
    "close-bad-code": frame(8, struct.pack(">H", 999), mask=M),
    "close-one-byte": frame(8, b"\x03", mask=M),
    "unmasked": frame(1, b"plain"),
    "pong-long": frame(10, b"p" * 126, mask=M),
    "too-big": frame(2, b"z" * 2000, mask=M),
    "length-64": b"\x82\xff" + struct.pack(">Q", 1 << 62) + M,
    "rsv-bits": bytes([0xF1, 0x80]) + M,
    "continuation-first": frame(0, b"x", mask=M),
}
for i, (name, data) in enumerate(sorted(ws.items())):
    write("ws_server", name, (i * 0x25) & 0x7F, i * 29 & 0xFF, data)
for app in (1, 2, 3):
    write("ws_server", "deflate-%d" % app, (app << 2) | 0x10, app,
          frame(1, deflated(b"hello " * 20), mask=M, rsv1=True)
          + frame(2, deflated(b"a" * 4000), mask=M, rsv1=True))
write("ws_server", "same-read", 0x80 | 0x10, 7, frame(1, b"early", mask=M) + frame(8, b"\x03\xe8", mask=M))

# ---- ws_client (after our 101; server frames, unmasked) ----
wc = {
    "text": frame(1, "héllo".encode()),
    "fragments": frame(1, b"frag", fin=False) + frame(9, b"ping") + frame(0, b"ments"),
    "close": frame(8, struct.pack(">H", 1001) + b"going"),
    "masked": frame(1, b"masked", mask=M),
    "bad-utf8": frame(1, b"\xed\xa0\x80"),
    "too-big": frame(2, b"z" * 1500),
}
for i, (name, data) in enumerate(sorted(wc.items())):
    write("ws_client", name, (i * 0x25) & 0x7F, i * 31 & 0xFF, data)
bomb = deflated(b"\x00" * 1000000)
for bits, name in ((0x04 | 0x08 | 0x40, "bomb-shared"), (0x04 | 0x30 | 0x40, "bomb-dedicated")):
    write("ws_client", name, bits, 1, frame(2, bomb, rsv1=True))
write("ws_client", "deflate-text", 0x04 | 0x10 | 0x80, 2, frame(1, deflated(b"text " * 30), rsv1=True)
      + frame(1, deflated(b"more"), fin=False, rsv1=True) + frame(0, b""))

# ---- client_handshake (the response, then frames) ----
ok = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")
hs = {
    "ok": ok + b"\r\n",
    "ok-frames": ok + b"\r\n" + frame(1, b"early") + frame(8, b"\x03\xe8"),
    "deflate": ok + b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n" + frame(1, deflated(b"x" * 100), rsv1=True),
    "refused": b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
    "no-end": ok,
    "lf-only": b"HTTP/1.1 101 OK\n\n",
}
for i, (name, data) in enumerate(sorted(hs.items())):
    write("client_handshake", name, (i * 0x25) & 0x5B, i * 23 & 0xFF, data)
write("client_handshake", "too-large", 0x20 | 0x40, 4, b"xxxxxxxxxxxxxxxxxx")
write("client_handshake", "just-fits", 0x20 | 0x01, 4, b"\r\n\r\n")

# ---- shim_request (names to look up, a 0 byte, then requests) ----
names = b"Host\ncookie\nX-Forwarded-For\nsec-websocket-key\n\x00"
sr = {
    "query": b"GET /a/b?x=1&y=%20z&&w HTTP/1.1\r\nHost: h\r\n\r\n",
    "cookies": b"GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1; b=\"2\"\r\nCookie: c=3\r\n\r\n",
    "repeats": b"GET /? HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\nX-B:\r\n\r\n",
    "upgrade": b"GET /ws?room=1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    "many": b"GET / HTTP/1.1\r\n" + b"".join(b"h%d: v\r\n" % i for i in range(40)) + b"\r\n",
}
for i, (name, data) in enumerate(sorted(sr.items())):
    write("shim_request", name, (i * 0x25) & 0x0F, i * 19 & 0xFF, names + data)
