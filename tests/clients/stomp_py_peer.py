"""A stomp.py peer for stompede's compatibility tests (driven by tests/tests/stomp_py.rs).

usage: stomp_py_peer.py tcp|ws HOST PORT COUNT

Connects with the real stomp.py client, subscribes to /topic/py (with a receipt), prints
READY, then sends COUNT messages of its own (one with a header that needs escaping) while the
test publishes COUNT messages from Rust. Checks that every message arrives once, in order per
sender, with its headers intact; then provokes an ERROR by sending to an uncovered
destination and checks its message. Prints OK and exits 0, or prints the problem and exits 1.
"""
import sys
import threading

import stomp

transport, host, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
DEADLINE = 20.0


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.messages = []
        self.receipts = set()
        self.errors = []
        self.changed = threading.Condition()

    def on_message(self, frame):
        with self.changed:
            self.messages.append(frame)
            self.changed.notify_all()

    def on_receipt(self, frame):
        with self.changed:
            self.receipts.add(frame.headers.get("receipt-id"))
            self.changed.notify_all()

    def on_error(self, frame):
        with self.changed:
            self.errors.append(frame)
            self.changed.notify_all()

    def wait(self, predicate, what):
        with self.changed:
            if not self.changed.wait_for(predicate, timeout=DEADLINE):
                fail(f"timed out waiting for {what}")


def fail(why):
    print(f"FAIL: {why}", flush=True)
    sys.exit(1)


if transport == "tcp":
    conn = stomp.Connection12([(host, port)])
else:
    conn = stomp.WSStompConnection([(host, port)], ws_path="/ws")
listener = Listener()
conn.set_listener("peer", listener)
conn.connect(wait=True, headers={"host": "stompede-test"})

conn.subscribe(destination="/topic/py", id="py-sub", ack="auto", headers={"receipt": "subscribed"})
listener.wait(lambda: "subscribed" in listener.receipts, "the SUBSCRIBE receipt")
print("READY", flush=True)

for i in range(count):
    conn.send(destination="/topic/py", body=f"py-{i}", headers={"x-from": "python", "x-note": "a:b\nc"})
listener.wait(lambda: len(listener.messages) >= 2 * count, f"{2 * count} messages")

mine = [m for m in listener.messages if m.headers.get("x-from") == "python"]
theirs = [m for m in listener.messages if m.headers.get("x-from") == "rust"]
if [m.body for m in mine] != [f"py-{i}" for i in range(count)]:
    fail(f"python's messages out of order or missing: {[m.body for m in mine]}")
if [m.body for m in theirs] != [f"rust-{i}" for i in range(count)]:
    fail(f"rust's messages out of order or missing: {[m.body for m in theirs]}")
if len(listener.messages) != 2 * count:
    fail(f"expected {2 * count} messages, got {len(listener.messages)}")
if mine[0].headers.get("x-note") != "a:b\nc":
    fail(f"escaped header came back as {mine[0].headers.get('x-note')!r}")
if mine[0].headers.get("subscription") != "py-sub" or not mine[0].headers.get("message-id"):
    fail(f"MESSAGE headers incomplete: {mine[0].headers}")

conn.send(destination="/nowhere", body="x", headers={"receipt": "bad-send"})
listener.wait(lambda: listener.errors, "an ERROR frame")
error = listener.errors[0]
if not error.headers.get("message", "").startswith("destination /nowhere is not covered"):
    fail(f"unexpected ERROR message {error.headers.get('message')!r}")
if error.headers.get("receipt-id") != "bad-send":
    fail(f"ERROR lacks the receipt-id: {error.headers}")
print(f"OK {transport}: {len(mine)} own and {len(theirs)} rust messages, ERROR understood", flush=True)
try:
    conn.disconnect()
except Exception:
    pass  # the server already closed the connection after ERROR, as the spec requires
