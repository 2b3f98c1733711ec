#!/usr/bin/env python3
"""Point-to-point queues under load: stompede's broker (examples/broker --point-to-point /queue)
side by side with RabbitMQ Web-STOMP on the same load, in one run.

    python3 examples/loadgen/queue_bench.py [--rounds 3] [--messages 50000] [--out target/bench]

What it does:
  1. builds the release binaries of examples/broker and examples/loadgen;
  2. prepares RabbitMQ as compare.py does (STOMP plugins, open-files limit);
  3. starts the broker example with --point-to-point /queue on 127.0.0.1:61614; every server is
     pinned to CPU 0, the load generator to CPU 1 (RabbitMQ, whose idle schedulers spin, is
     paused with SIGSTOP while ours runs, and ours while RabbitMQ runs);
  4. alternates, for N rounds: the loadgen `queue` scenario (P producers, C competing consumers
     with ack:client-individual, prefetch-count 100, an ACK per message) against ours, then
     against RabbitMQ (ws://127.0.0.1:15674/ws, a fresh queue name per run);
  5. prints medians of deliveries/s, p99 latency and server CPU per delivery, with the ratios
     ours / RabbitMQ, and writes queue.md and queue.jsonl under --out.
A run with a lost, duplicated or reordered message is reported as such.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (the shared helpers: RabbitMQ preparation, pinning, ports)

ROOT = compare.ROOT
RELEASE = compare.RELEASE


def run_queue(label, url, pid, args, queue, extra):
    cmd = ["taskset", "-c", "1", str(RELEASE / "loadgen"), "queue", *args, "--queue", queue,
           "--url", url, "--server-pid", str(pid), "--label", label, *compare.IDLE_TIMEOUT, *extra]
    return compare.run_loadgen(cmd, label, timeout=900)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--messages", type=int, default=50_000, help="per producer")
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--consumers", type=int, default=4)
    ap.add_argument("--prefetch", type=int, default=100)
    ap.add_argument("--out", default=str(ROOT / "target" / "bench"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "--example", "broker", "--example", "loadgen"],
                   cwd=ROOT, check=True)
    rabbit = compare.prepare_rabbitmq()
    ours = subprocess.Popen([str(RELEASE / "broker"), "--addr", "127.0.0.1:61614", "--point-to-point", "/queue"],
                            stdout=subprocess.DEVNULL)
    compare.wait_port(61614)
    for pid in (ours.pid, rabbit):
        compare.pin(pid, 0)
    args = ["--publishers", str(a.producers), "--consumers", str(a.consumers), "--prefetch", str(a.prefetch),
            "--messages", str(a.messages), "--size", "100", "--receipt-every", "100"]
    rabbit_extra = ["--login", "guest", "--passcode", "guest", "--host", "/"]
    results = {"ours": [], "rabbitmq": []}
    try:
        for round_ in range(a.rounds):
            for label in ("ours", "rabbitmq"):
                running, paused = (ours.pid, rabbit) if label == "ours" else (rabbit, ours.pid)
                os.kill(paused, signal.SIGSTOP)
                os.kill(running, signal.SIGCONT)
                url = "ws://127.0.0.1:61614/ws" if label == "ours" else "ws://127.0.0.1:15674/ws"
                extra = [] if label == "ours" else rabbit_extra
                result = run_queue(label, url, running, args, f"/queue/qbench-{round_}", extra)
                results[label].append(result)
                with open(out / "queue.jsonl", "a") as f:
                    f.write(json.dumps(result) + "\n")
                if "error" in result:
                    print(f"round {round_ + 1} {label}: ERROR {result['error']}", flush=True)
                else:
                    print(f"round {round_ + 1} {label}: {result['deliveries_per_sec']:.0f}/s, "
                          f"p99 {result['latency_us']['p99']} µs, "
                          f"CPU {result['server_cpu_us_per_delivery'] or 0:.2f} µs/delivery, "
                          f"lost {result['lost']} dup {result['duplicated']} ooo {result['out_of_order']}",
                          flush=True)
    finally:
        os.kill(rabbit, signal.SIGCONT)
        os.kill(ours.pid, signal.SIGCONT)  # a stopped process would not act on SIGTERM
        ours.terminate()
        ours.wait()

    def med(label, key):
        values = [key(r) for r in results[label] if "error" not in r and key(r) is not None]
        return statistics.median(values) if values else None

    rows = []
    for name, key in [("deliveries/s", lambda r: r["deliveries_per_sec"]),
                      ("p99 latency µs", lambda r: r["latency_us"]["p99"]),
                      ("server CPU µs per delivery", lambda r: r["server_cpu_us_per_delivery"])]:
        o, r = med("ours", key), med("rabbitmq", key)
        ratio = f"{o / r:.2f}x" if o and r else "n/a"
        rows.append(f"| {name} | {o:.2f} | {r:.2f} | {ratio} |" if o and r else f"| {name} | {o} | {r} | n/a |")
    clean = all("error" not in r and r["lost"] == 0 and r["duplicated"] == 0 and r["out_of_order"] == 0
                for rs in results.values() for r in rs)
    table = "\n".join([
        f"Queue scenario: {a.producers} producers, {a.consumers} competing consumers, client-individual acks, "
        f"prefetch {a.prefetch}, {a.messages} messages of 100 B per producer; medians of {a.rounds} rounds",
        "", "| | stompede | RabbitMQ Web-STOMP | ratio |", "|---|---|---|---|", *rows, "",
        f"every run clean (no loss, duplicate or reordering): {clean}"])
    print(table)
    (out / "queue.md").write_text(table + "\n")
    sys.exit(0 if clean else 1)


if __name__ == "__main__":
    main()
