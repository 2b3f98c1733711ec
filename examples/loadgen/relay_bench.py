#!/usr/bin/env python3
"""The broker relay under load, side by side with RabbitMQ Web-STOMP on the same load, in one run.

    python3 examples/loadgen/relay_bench.py [--rounds 3] [--messages 2000] [--out target/bench]

What it does:
  1. builds the release binaries of examples/broker and examples/loadgen;
  2. prepares RabbitMQ as compare.py does (STOMP plugins, open-files limit);
  3. starts two stompede nodes (examples/broker --relay 127.0.0.1:61613) on ports 62001 and
     62002; the nodes and RabbitMQ are pinned to CPU 0, the load generator to CPU 1;
  4. alternates, for N rounds: the fan-out scenario through the relay (100 subscribers spread
     over the two nodes, the publisher on the first, 100 messages/s = 10,000 deliveries/s),
     then the same load straight to RabbitMQ Web-STOMP (ws://127.0.0.1:15674/ws);
  5. prints medians (deliveries/s, p99 latency, CPU per delivery of each process and of the
     whole system) and the ratio of the relay's p99 to RabbitMQ's, and writes relay.md and
     relay.jsonl under --out.
A run with a lost, duplicated or reordered message is reported as such.
"""
import argparse
import json
import statistics
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (the shared helpers: RabbitMQ preparation, pinning, ports)

ROOT = compare.ROOT
RELEASE = compare.RELEASE
NODES = [62001, 62002]
SUBSCRIBERS = 100
RATE = 100  # messages/s from the one publisher: 10,000 deliveries/s to 100 subscribers


def wait_for_line(process, text, seconds=30):
    """Waits until `process` prints a line containing `text`, then keeps draining its output
    (so a full pipe never blocks it)."""
    seen = threading.Event()

    def read():
        for line in process.stdout:
            if text in line:
                seen.set()

    threading.Thread(target=read, daemon=True).start()
    if not seen.wait(seconds):
        sys.exit(f"the node did not log {text!r} within {seconds} s")


def loadgen(label, urls, pids, messages, extra, cpus):
    cmd = ["taskset", "-c", cpus, str(RELEASE / "loadgen"), "fanout",
           "--subscribers", str(SUBSCRIBERS), "--publishers", "1", "--messages", str(messages),
           "--size", "100", "--rate", str(RATE), "--receipt-every", "100",
           "--destination-prefix", f"/topic/relaybench-{label}", "--label", label, *compare.IDLE_TIMEOUT]
    for url in urls:
        cmd += ["--url", url]
    for pid in pids:
        cmd += ["--server-pid", str(pid)]
    return compare.run_loadgen([*cmd, *extra], label)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--messages", type=int, default=2000, help="per run (at 100/s: 20 s)")
    ap.add_argument("--out", default=str(ROOT / "target" / "bench"))
    ap.add_argument("--no-pin", action="store_true",
                    help="let the scheduler place every process on either core (the default pins "
                         "the nodes and RabbitMQ to CPU 0 and the load generator to CPU 1)")
    o = ap.parse_args()
    out = Path(o.out)
    out.mkdir(parents=True, exist_ok=True)

    print("building release binaries", flush=True)
    subprocess.run(["cargo", "build", "--release", "--example", "broker", "--example", "loadgen"],
                   cwd=ROOT, check=True)
    rabbit = compare.prepare_rabbitmq()
    compare.wait_port(61613)
    servers_cpu = "0,1" if o.no_pin else "0"
    compare.sh("taskset", "-a", "-p", "-c", servers_cpu, str(rabbit), check=False)
    nodes = []
    try:
        for port in NODES:
            node = subprocess.Popen([str(RELEASE / "broker"), "--addr", f"127.0.0.1:{port}",
                                     "--relay", "127.0.0.1:61613"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            nodes.append(node)
            wait_for_line(node, "system connection established")
            compare.sh("taskset", "-a", "-p", "-c", servers_cpu, str(node.pid), check=False)
        urls = [f"ws://127.0.0.1:{port}/ws" for port in NODES]
        results = []
        with open(out / "relay.jsonl", "w") as log:
            for round_ in range(1, o.rounds + 1):
                for label, run_urls, pids, extra in [
                    ("relay", urls, [nodes[0].pid, nodes[1].pid, rabbit], []),
                    ("rabbitmq", ["ws://127.0.0.1:15674/ws"], [rabbit],
                     ["--login", "guest", "--passcode", "guest", "--host", "/"]),
                ]:
                    print(f"round {round_}: {label}", flush=True)
                    result = loadgen(label, run_urls, pids, o.messages, extra, "0,1" if o.no_pin else "1")
                    result["round"] = round_
                    results.append(result)
                    log.write(json.dumps(result) + "\n")
                    if "error" in result:
                        print(f"  failed: {result['error']}", flush=True)
                    else:
                        print(f"  {result['deliveries_per_sec']:.0f} deliveries/s, p99 "
                              f"{result['latency_us']['p99'] / 1000:.2f} ms, lost {result['lost']}", flush=True)
    finally:
        for node in nodes:
            node.terminate()
        for node in nodes:
            node.wait(timeout=10)
        compare.sh("taskset", "-a", "-p", "-c", "0,1", str(rabbit), check=False)

    def med(label, key):
        values = [key(r) for r in results if r["label"] == label and "error" not in r and key(r) is not None]
        return statistics.median(values) if values else None

    rows = ["| path | deliveries/s | p99 ms | CPU µs per delivery (system) | of which node A, node B, RabbitMQ | lost, duplicated, reordered |",
            "|---|---|---|---|---|---|"]
    for label in ["relay", "rabbitmq"]:
        rate = med(label, lambda r: r["deliveries_per_sec"])
        p99 = med(label, lambda r: r["latency_us"]["p99"] / 1000)
        cpu = med(label, lambda r: r.get("server_cpu_us_per_delivery"))
        parts = []
        by_pid = [r.get("server_cpu_us_per_delivery_by_pid") for r in results if r["label"] == label and "error" not in r]
        if by_pid and all(by_pid):
            parts = [statistics.median(p[i] for p in by_pid) for i in range(len(by_pid[0]))]
        bad = sum(r.get("lost", 0) + r.get("duplicated", 0) + r.get("out_of_order", 0)
                  for r in results if r["label"] == label and "error" not in r)
        errors = sum(1 for r in results if r["label"] == label and "error" in r)
        fmt = lambda v, spec: "n/a" if v is None else format(v, spec)
        rows.append(f"| {label} | {fmt(rate, ',.0f')} | {fmt(p99, '.2f')} | {fmt(cpu, '.2f')} | "
                    f"{', '.join(format(p, '.2f') for p in parts) or 'n/a'} | {bad}{f' ({errors} failed runs)' if errors else ''} |")
    relay_p99 = med("relay", lambda r: r["latency_us"]["p99"])
    rabbit_p99 = med("rabbitmq", lambda r: r["latency_us"]["p99"])
    ratio = f"{relay_p99 / rabbit_p99:.2f}" if relay_p99 and rabbit_p99 else "n/a"
    table = "\n".join(rows)
    placement = ("every process on either core (--no-pin)" if o.no_pin else
                 "the nodes and RabbitMQ pinned to CPU 0, the load generator to CPU 1")
    text = (f"Rounds: {o.rounds}, medians; {placement}; {SUBSCRIBERS} subscribers (spread over two relaying nodes, or all on "
            f"RabbitMQ Web-STOMP), one publisher at {RATE} messages/s of 100 B (10,000 deliveries/s), "
            f"{o.messages} messages per run.\n\n{table}\n\np99 through the relay ÷ p99 straight to RabbitMQ: {ratio}\n")
    (out / "relay.md").write_text(text)
    print("\n" + text)
    print(f"written: {out / 'relay.md'}, {out / 'relay.jsonl'}")


if __name__ == "__main__":
    main()
