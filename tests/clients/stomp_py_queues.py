"""stomp.py against the broker's point-to-point queues, acknowledgements and retained messages.

usage: stomp_py_queues.py tcp|ws HOST PORT

Needs a broker started with `--point-to-point /queue --retain /topic/retained` (such as the
`broker` example: `broker --addr 127.0.0.1:PORT --tcp 127.0.0.1:PORT2 --point-to-point /queue
--retain /topic/retained`); `tcp` talks plain STOMP to HOST:PORT, `ws` STOMP over the WebSocket
endpoint ws://HOST:PORT/ws. Uses the real stomp.py, STOMP 1.2 (Connection12 /
WSStompConnection) except for the 1.1 check. Every destination has a random suffix, so runs
do not meet, and every wait has a deadline: the checks wait on conditions (message counts,
RECEIPTs), never on sleeps. A "barrier" is a SEND with a receipt on a connection: its RECEIPT
comes after whatever the broker had queued for that connection, so a count checked after it
is final.

Checks:
  (a) competing consumers: two `client-individual` subscriptions with `prefetch-count` share
      /queue/py-work-*; 100 messages are each delivered and ACKed exactly once overall, both
      consumers get some, and the queue is empty afterwards;
  (b) a consumer that disconnects without acknowledging: another consumer gets its messages,
      in order, with `redelivered:true`;
  (c) a NACKed message goes to the other consumer, with `redelivered:true`;
  (d) `prefetch-count:2`: two messages until an ACK, then a third; with `ack:client` an ACK
      is cumulative;
  (e) a retained message: a subscriber to /topic/retained/py-* first gets the last message
      sent there, with `retained:true` (and a SEND with `retain:true` retains on any topic);
  (f) STOMP 1.1 acknowledgements (ACK and NACK with message-id + subscription);
  (g) a message NACKed too often (6 deliveries) goes to /queue/dead-letter with
      `original-destination`.

Prints `ok (x) ...` per check and `OK <transport>` at the end and exits 0, or prints
`FAIL (x) ...: why` for each failed check and exits 1.
"""
import os
import sys
import threading
import traceback
import uuid

import stomp
from stomp.adapter.ws import WSTransport

if len(sys.argv) != 4 or sys.argv[1] not in ("tcp", "ws"):
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    sys.exit(2)
transport, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
DEADLINE = 20.0
RUN = uuid.uuid4().hex[:8]
# One condition for every connection, so a wait can span several of them.
CHANGED = threading.Condition()


class CheckFailed(Exception):
    pass


def fail(why):
    raise CheckFailed(why)


def expect(condition, why):
    if not condition:
        fail(why)


def wait(predicate, what, peers=()):
    """Waits until `predicate()` holds, failing after DEADLINE or on an ERROR to `peers`."""
    with CHANGED:
        def done():
            return predicate() or any(p.errors or p.lost for p in peers)
        if not CHANGED.wait_for(done, timeout=DEADLINE):
            fail(f"timed out after {DEADLINE}s waiting for {what}")
    for p in peers:
        p.check_healthy()


class WSStompConnection11(stomp.Connection11):
    """stomp.py has no STOMP 1.1 WebSocket connection class: its 1.1 connection over its
    WebSocket transport, put together the way WSStompConnection does it for 1.2."""

    def __init__(self, host_and_ports, ws_path):
        transport = WSTransport(host_and_ports, ws_path=ws_path)
        stomp.connect.BaseConnection.__init__(self, transport)
        stomp.protocol.Protocol11.__init__(self, transport)


class Peer(stomp.ConnectionListener):
    """One connection and what it received. `on_message(peer, frame)`, if given, runs on
    stomp.py's receiver thread for every MESSAGE (to ACK or NACK as it arrives)."""

    def __init__(self, name, version="1.2", on_message=None):
        self.name, self.version, self.handler = name, version, on_message
        self.messages, self.receipts, self.errors = [], set(), []
        self.lost = False
        self.closing = False
        if transport == "tcp":
            connection = stomp.Connection12 if version == "1.2" else stomp.Connection11
            self.conn = connection([(host, port)])
        elif version == "1.2":
            self.conn = stomp.WSStompConnection([(host, port)], ws_path="/ws")
        else:
            self.conn = WSStompConnection11([(host, port)], ws_path="/ws")
        self.conn.set_listener(name, self)
        self.conn.connect(wait=True, headers={"host": "stompede-test"})
        self.check_healthy()
        expect(self.connected_version == version,
               f"{name}: asked for STOMP {version}, CONNECTED says {self.connected_version}")

    # stomp.py's listener callbacks (its receiver thread).
    def on_connected(self, frame):
        self.connected_version = frame.headers.get("version")

    def on_message(self, frame):
        with CHANGED:
            self.messages.append(frame)
            CHANGED.notify_all()
        if self.handler:
            self.handler(self, frame)

    def on_receipt(self, frame):
        with CHANGED:
            self.receipts.add(frame.headers.get("receipt-id"))
            CHANGED.notify_all()

    def on_error(self, frame):
        with CHANGED:
            self.errors.append(frame)
            CHANGED.notify_all()

    def on_disconnected(self):
        with CHANGED:
            self.lost = not self.closing
            CHANGED.notify_all()

    # Helpers for the checks (main thread).
    def check_healthy(self):
        if self.errors:
            e = self.errors[0]
            fail(f"{self.name} got ERROR {e.headers.get('message')!r}: {e.body!r}")
        if self.lost:
            fail(f"{self.name}: the connection closed unexpectedly")

    def await_receipt(self, receipt):
        wait(lambda: receipt in self.receipts, f"{self.name}'s RECEIPT {receipt}", [self])

    def subscribe(self, destination, sub_id, ack="auto", headers=None):
        receipt = f"{sub_id}-subscribed"
        self.conn.subscribe(destination=destination, id=sub_id, ack=ack,
                            headers={**(headers or {}), "receipt": receipt})
        self.await_receipt(receipt)

    def unsubscribe(self, sub_id):
        receipt = f"{sub_id}-unsubscribed-{uuid.uuid4().hex[:6]}"
        self.conn.unsubscribe(id=sub_id, headers={"receipt": receipt})
        self.await_receipt(receipt)

    def send(self, destination, body, headers=None):
        """A SEND whose RECEIPT is awaited: the broker has routed the message."""
        receipt = f"send-{uuid.uuid4().hex[:10]}"
        self.conn.send(destination=destination, body=body,
                       headers={**(headers or {}), "receipt": receipt})
        self.await_receipt(receipt)

    def barrier(self):
        """A round trip: once its RECEIPT is in, everything queued for us before it is too."""
        self.send(f"/topic/py-barrier-{RUN}", "")

    def ack(self, frame, receipt=None):
        if self.version == "1.2":
            self.conn.ack(frame.headers["ack"], receipt=receipt)
        else:
            self.conn.ack(frame.headers["message-id"], frame.headers["subscription"], receipt=receipt)
        if receipt:
            self.await_receipt(receipt)

    def nack(self, frame, receipt=None):
        if self.version == "1.2":
            self.conn.nack(frame.headers["ack"], receipt=receipt)
        else:
            self.conn.nack(frame.headers["message-id"], frame.headers["subscription"], receipt=receipt)
        if receipt:
            self.await_receipt(receipt)

    def bodies(self, sub_id=None):
        with CHANGED:
            return [m.body for m in self.messages
                    if sub_id is None or m.headers.get("subscription") == sub_id]

    def close(self):
        self.closing = True
        try:
            self.conn.disconnect()
        except Exception:
            pass


def queue(kind):
    return f"/queue/py-{kind}-{RUN}"


def redelivered(frame):
    return frame.headers.get("redelivered") == "true"


def assert_queue_empty(destination, producer):
    """Nothing is left in `destination` (delivered and unacknowledged messages come back to
    the queue when their consumer leaves, ahead of what was sent after): a sentinel sent now
    is the first thing a new consumer gets."""
    producer.send(destination, "sentinel")
    checker = Peer("checker")
    try:
        checker.subscribe(destination, "check", ack="client-individual")
        wait(lambda: checker.messages, f"the sentinel from {destination}", [checker])
        first = checker.messages[0]
        expect(first.body == "sentinel" and not redelivered(first),
               f"{destination} still held {first.body!r} (headers {first.headers}) before the sentinel")
        checker.ack(first, receipt="sentinel-acked")
        checker.barrier()
        expect(checker.bodies() == ["sentinel"], f"after the sentinel came {checker.bodies()[1:]}")
    finally:
        checker.close()


def check_competing_consumers(peers):
    """(a) Two client-individual consumers with prefetch-count share one queue."""
    destination, n = queue("work"), 100
    acked, acked_lock = [], threading.Lock()

    def ack_at_once(peer, frame):
        # The ACK names `{subscription}-{message-id}`, as the broker documents.
        with acked_lock:
            acked.append((peer.name, frame.headers.get("ack"), frame.body))
        peer.conn.ack(frame.headers["ack"])

    consumers = [Peer(f"worker-{i}", on_message=ack_at_once) for i in (1, 2)]
    producer = Peer("producer")
    peers.extend(consumers + [producer])
    for i, c in enumerate(consumers):
        c.subscribe(destination, f"work-{i + 1}", ack="client-individual", headers={"prefetch-count": "10"})
    for i in range(n):
        producer.conn.send(destination=destination, body=f"job-{i}", headers={"x-job": str(i)})
    producer.barrier()
    wait(lambda: sum(len(c.messages) for c in consumers) >= n, f"{n} messages over both consumers",
         consumers + [producer])
    for c in consumers:
        c.barrier()  # its ACKs (sent before) are settled, and nothing more was on its way
    got = [m for c in consumers for m in c.messages]
    bodies = sorted(m.body for m in got)
    expect(len(got) == n, f"{len(got)} deliveries for {n} messages")
    expect(bodies == sorted(f"job-{i}" for i in range(n)),
           f"not each message once: {len(set(bodies))} distinct of {len(bodies)}")
    for m in got:
        expect(m.headers.get("ack") == f"{m.headers.get('subscription')}-{m.headers.get('message-id')}",
               f"ack header {m.headers.get('ack')!r} is not subscription-message-id ({m.headers})")
        expect(not redelivered(m), f"{m.body} came redelivered though nobody NACKed: {m.headers}")
    expect(len({m.headers["ack"] for m in got}) == n, "ack ids repeat")
    expect(len(acked) == n and len({a[1] for a in acked}) == n, f"{len(acked)} ACKs sent for {n}")
    split = [len(c.messages) for c in consumers]
    expect(all(split), f"one consumer got nothing: split {split}")
    for i, c in enumerate(consumers):
        c.unsubscribe(f"work-{i + 1}")
    for c in consumers:
        c.barrier()
    expect(sum(len(c.messages) for c in consumers) == n, "deliveries after every message was acked")
    assert_queue_empty(destination, producer)
    return f"{n} messages split {split[0]}/{split[1]}, each acked once, queue empty after"


def check_disconnect_redelivers(peers):
    """(b) Unacknowledged messages of a consumer that disconnects go to another one."""
    destination = queue("leave")
    first, second, producer = Peer("leaver"), Peer("stayer"), Peer("producer")
    peers.extend([first, second, producer])
    first.subscribe(destination, "leaver", ack="client-individual")
    sent = [f"held-{i}" for i in range(3)]
    for body in sent:
        producer.send(destination, body)
    wait(lambda: len(first.messages) == 3, "3 messages to the first consumer", [first])
    expect(not any(redelivered(m) for m in first.messages), f"first delivery marked redelivered")
    second.subscribe(destination, "stayer", ack="client-individual")
    second.barrier()
    expect(second.messages == [], f"the second consumer got {second.bodies()} while the first held them all")
    first.close()  # a DISCONNECT (stomp.py awaits its RECEIPT); nothing was acknowledged
    wait(lambda: len(second.messages) >= 3, "the 3 messages redelivered to the second consumer", [second])
    second.barrier()
    expect(second.bodies() == sent, f"the second consumer got {second.bodies()}, expected {sent}")
    expect(all(redelivered(m) for m in second.messages),
           f"not marked redelivered: {[m.headers for m in second.messages if not redelivered(m)]}")
    for i, m in enumerate(second.messages):
        second.ack(m, receipt=f"leave-ack-{i}")
    second.unsubscribe("stayer")
    assert_queue_empty(destination, producer)
    return "3 unacked messages of a disconnected consumer redelivered (redelivered:true) in order"


def check_nack_redelivers(peers):
    """(c) A NACKed message goes to the other consumer, marked redelivered."""
    destination = queue("nack")
    a, b, producer = Peer("nacker-a"), Peer("nacker-b"), Peer("producer")
    peers.extend([a, b, producer])
    a.subscribe(destination, "a", ack="client-individual")
    b.subscribe(destination, "b", ack="client-individual")
    producer.send(destination, "m-0")
    producer.send(destination, "m-1")
    wait(lambda: len(a.messages) + len(b.messages) >= 2, "2 messages", [a, b])
    a.barrier()
    b.barrier()
    expect(len(a.messages) == 1 and len(b.messages) == 1,
           f"round robin gave a {a.bodies()} and b {b.bodies()}")
    mine = {a.name: a.messages[0], b.name: b.messages[0]}
    for peer in (a, b):
        peer.nack(mine[peer.name], receipt=f"nack-{peer.name}")
    wait(lambda: len(a.messages) >= 2 and len(b.messages) >= 2, "each NACKed message at the other consumer", [a, b])
    a.barrier()
    b.barrier()
    for peer, other in ((a, b), (b, a)):
        expect(len(peer.messages) == 2, f"{peer.name} got {peer.bodies()}")
        again = peer.messages[1]
        expect(again.body == mine[other.name].body,
               f"{peer.name} got {again.body!r} after the NACKs, expected {other.name}'s {mine[other.name].body!r}")
        expect(redelivered(again), f"redelivery not marked: {again.headers}")
        expect(again.headers.get("ack") != mine[other.name].headers.get("ack"), "the redelivery reuses the old ack id")
    for peer in (a, b):
        peer.ack(peer.messages[1], receipt=f"nack-done-{peer.name}")
        peer.unsubscribe(peer.name[-1])
    assert_queue_empty(destination, producer)
    return "each consumer's NACKed message redelivered to the other with redelivered:true"


def check_prefetch(peers):
    """(d) prefetch-count bounds the unacknowledged messages; ack:client is cumulative."""
    destination = queue("prefetch")
    consumer, producer = Peer("prefetcher"), Peer("producer")
    peers.extend([consumer, producer])
    consumer.subscribe(destination, "pf", ack="client-individual", headers={"prefetch-count": "2"})
    for i in range(5):
        producer.send(destination, f"p-{i}")
    wait(lambda: len(consumer.messages) >= 2, "2 messages", [consumer])
    consumer.barrier()
    expect(consumer.bodies() == ["p-0", "p-1"], f"prefetch-count:2 without ACK delivered {consumer.bodies()}")
    consumer.ack(consumer.messages[0], receipt="pf-ack-0")
    wait(lambda: len(consumer.messages) >= 3, "a third message after one ACK", [consumer])
    consumer.barrier()
    expect(consumer.bodies() == ["p-0", "p-1", "p-2"], f"after one ACK: {consumer.bodies()}")
    consumer.unsubscribe("pf")  # p-1 and p-2 go back to the queue, p-3 and p-4 still wait

    # ack:client: an ACK settles the message and every one delivered before it.
    consumer.subscribe(destination, "cumulative", ack="client", headers={"prefetch-count": "2"})
    wait(lambda: len(consumer.bodies("cumulative")) >= 2, "2 messages with ack:client", [consumer])
    consumer.barrier()
    got = [m for m in consumer.messages if m.headers.get("subscription") == "cumulative"]
    expect([m.body for m in got] == ["p-1", "p-2"], f"ack:client prefetch 2 delivered {[m.body for m in got]}")
    expect(all(redelivered(m) for m in got), "p-1 and p-2 came back without redelivered:true")
    consumer.ack(got[1], receipt="cumulative-ack")  # settles p-1 too
    wait(lambda: len(consumer.bodies("cumulative")) >= 4, "2 more after one cumulative ACK", [consumer])
    consumer.barrier()
    expect(consumer.bodies("cumulative") == ["p-1", "p-2", "p-3", "p-4"],
           f"after a cumulative ACK: {consumer.bodies('cumulative')}")
    got = [m for m in consumer.messages if m.headers.get("subscription") == "cumulative"]
    consumer.ack(got[3], receipt="cumulative-ack-2")
    consumer.unsubscribe("cumulative")
    assert_queue_empty(destination, producer)
    return "prefetch-count:2 held 2, one ACK let a 3rd in; a cumulative ACK freed 2"


def check_retained(peers):
    """(e) A new subscriber first gets the retained message, marked retained."""
    destination = f"/topic/retained/py-{RUN}"
    plain = f"/topic/py-plain-{RUN}"
    producer, subscriber = Peer("producer"), Peer("retained-sub")
    peers.extend([producer, subscriber])
    producer.send(destination, "old", headers={"x-kind": "state"})
    producer.send(destination, "latest", headers={"x-kind": "state"})
    producer.send(plain, "kept", headers={"retain": "true"})
    subscriber.subscribe(destination, "r")
    wait(lambda: subscriber.messages, "the retained message", [subscriber])
    subscriber.barrier()
    expect(subscriber.bodies() == ["latest"], f"subscribing got {subscriber.bodies()}, expected only the last message")
    m = subscriber.messages[0]
    expect(m.headers.get("retained") == "true", f"no retained:true: {m.headers}")
    expect(m.headers.get("x-kind") == "state", f"the retained message lost its headers: {m.headers}")
    producer.send(destination, "live")
    wait(lambda: len(subscriber.messages) >= 2, "a live message", [subscriber])
    expect(subscriber.messages[1].headers.get("retained") is None,
           f"a live message marked retained: {subscriber.messages[1].headers}")
    subscriber.subscribe(plain, "plain")
    wait(lambda: subscriber.bodies("plain"), "the message sent with retain:true", [subscriber])
    kept = [m for m in subscriber.messages if m.headers.get("subscription") == "plain"][0]
    expect(kept.body == "kept" and kept.headers.get("retained") == "true",
           f"retain:true on {plain}: got {kept.body!r} {kept.headers}")
    return "last message of /topic/retained/* and a retain:true SEND delivered first, with retained:true"


def check_stomp11_acks(peers):
    """(f) STOMP 1.1 clients ACK and NACK with message-id + subscription."""
    destination = queue("v11")
    consumer, producer = Peer("consumer-1.1", version="1.1"), Peer("producer")
    peers.extend([consumer, producer])
    consumer.subscribe(destination, "v11", ack="client-individual")
    producer.send(destination, "v11-0")
    producer.send(destination, "v11-1")
    wait(lambda: len(consumer.messages) >= 2, "2 messages over STOMP 1.1", [consumer])
    consumer.ack(consumer.messages[0], receipt="v11-ack")
    consumer.nack(consumer.messages[1], receipt="v11-nack")  # the only consumer: back to it
    wait(lambda: len(consumer.messages) >= 3, "the NACKed message again", [consumer])
    consumer.barrier()
    again = consumer.messages[2]
    expect(consumer.bodies() == ["v11-0", "v11-1", "v11-1"] and redelivered(again),
           f"1.1 ACK/NACK: got {consumer.bodies()}, last headers {again.headers}")
    consumer.ack(again, receipt="v11-ack-2")
    consumer.unsubscribe("v11")
    assert_queue_empty(destination, producer)
    return "1.1 ACK settled, 1.1 NACK redelivered with redelivered:true"


def check_dead_letter(peers):
    """(g) A message NACKed on every delivery ends in /queue/dead-letter."""
    destination = queue("poison")
    dead = Peer("dead-letters")
    worker = Peer("nack-all", on_message=lambda peer, frame: peer.conn.nack(frame.headers["ack"]))
    producer = Peer("producer")
    peers.extend([dead, worker, producer])
    dead.subscribe("/queue/dead-letter", "dlq", ack="client-individual")
    worker.subscribe(destination, "poison", ack="client-individual")
    producer.send(destination, "poison", headers={"x-note": "bad"})

    def mine():  # other runs may dead-letter too: ignore theirs (they go back when we leave)
        return [m for m in dead.messages if m.headers.get("original-destination") == destination]
    wait(lambda: mine(), "the message at /queue/dead-letter", [dead, worker])
    worker.barrier()
    dead.barrier()
    tries = worker.messages
    expect([m.body for m in tries] == ["poison"] * 6,
           f"expected 6 deliveries (1 + 5 redeliveries) before dead-lettering, got {[m.body for m in tries]}")
    expect(not redelivered(tries[0]) and all(redelivered(m) for m in tries[1:]), "redelivered marks wrong")
    letters = mine()
    expect(len(letters) == 1, f"dead-lettered {len(letters)} times")
    expect(letters[0].body == "poison" and letters[0].headers.get("x-note") == "bad",
           f"dead letter {letters[0].body!r} {letters[0].headers}")
    dead.ack(letters[0], receipt="dlq-ack")
    return "NACKed 6 times, then in /queue/dead-letter with original-destination"


CHECKS = [
    ("a", check_competing_consumers),
    ("b", check_disconnect_redelivers),
    ("c", check_nack_redelivers),
    ("d", check_prefetch),
    ("e", check_retained),
    ("f", check_stomp11_acks),
    ("g", check_dead_letter),
]

failures = 0
for letter, check in CHECKS:
    peers = []
    try:
        print(f"ok ({letter}) {check(peers)}", flush=True)
    except CheckFailed as e:
        failures += 1
        print(f"FAIL {check.__doc__.strip()} {e}", flush=True)
    except Exception:
        failures += 1
        print(f"FAIL {check.__doc__.strip()} {traceback.format_exc()}", flush=True)
    finally:
        for p in peers:
            p.close()
if failures:
    print(f"FAIL {transport}: {failures} of {len(CHECKS)} checks failed", flush=True)
else:
    print(f"OK {transport}", flush=True)
sys.stdout.flush()
os._exit(1 if failures else 0)  # stomp.py threads of a failed check must not keep us alive
