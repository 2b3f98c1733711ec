#!/usr/bin/env python3
"""Side-by-side benchmark: stompede's broker, the bare tokio-tungstenite baseline and RabbitMQ
Web-STOMP, run in alternation (A B C A B C ...) under the same load generator.

    python3 examples/loadgen/compare.py [--rounds 3] [--subscribers 10,100,1000] [--out target/bench]
                                        [--before path/to/an/older/broker]

What it does, in order:
  1. builds the release binaries of examples/broker, examples/baseline and examples/loadgen;
  2. enables RabbitMQ's STOMP plugins and, when its open-files limit is under 4096, restarts it
     with the shell's hard limit, as the rabbitmq user through setpriv (`su` would reset the
     limit; it drops connections past ~900 otherwise), and checks the limit took;
  3. splits the two cores: every server is started pinned to CPU 0 (so its runtime starts one
     worker thread; --pin-after-start pins it once running, as before 2026-12-03, leaving it the
     machine's two workers on one core), the load generator to CPU 1 (taskset), so the load
     generator never competes with the server it measures (RabbitMQ,
     whose idle Erlang schedulers spin, is paused with SIGSTOP while the others run); with
     --server-cpu F each server also gets its own cgroup capped at F of a core (CFS quota,
     10 ms periods, longer under a tenth of a core, where the quota would be under the
     kernel's 1 ms minimum), so that full-speed runs are bound by the server, not by the
     generator (one generator core consumes about 1.3 M deliveries/s, which the baseline
     serves with a seventh of a core on this machine in December 2026); each capped run
     records the share of its periods in which the cap held the server back
     (`throttled_share` in results.jsonl), and the summary warns where that is under half;
  4. for each subscriber count, runs the fan-out scenario against the three servers in
     alternation for N rounds, each round starting with the next server (total deliveries
     kept near 200,000 per run), then fixed-rate runs at 10,000 and 30,000 deliveries/s with
     100 subscribers;
  5. prints medians and ratios to ours, and writes compare.md, results.jsonl and compare.svg
     (deliveries/s and p99 latency against subscriber count) under --out.
A run with a lost, duplicated or reordered message is reported as such.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "target" / "release" / "examples"
SERVERS = {
    "ours": {"url": "ws://127.0.0.1:61614/ws", "extra": []},
    "baseline": {"url": "ws://127.0.0.1:61615/ws", "extra": []},
    "rabbitmq": {"url": "ws://127.0.0.1:15674/ws",
                 "extra": ["--login", "guest", "--passcode", "guest", "--host", "/"]},
}


def sh(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, text=True, capture_output=True, **kw)


def wait_port(port, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if f":{port} " in sh("ss", "-ltn", check=False).stdout:
            return
        time.sleep(0.2)
    sys.exit(f"nothing listens on port {port} after {seconds} s")


def rabbit_pid():
    out = sh("pgrep", "-f", "beam.smp", check=False).stdout.split()
    return int(out[0]) if out else None


def open_files_limit(pid):
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])  # the soft limit, the one that applies
    return 0


def prepare_rabbitmq():
    if not shutil.which("rabbitmq-plugins"):
        sys.exit("RabbitMQ is not installed: the comparison needs it (rabbitmq-server with the STOMP plugins)")
    sh("rabbitmq-plugins", "enable", "rabbitmq_stomp", "rabbitmq_web_stomp")
    pid = rabbit_pid()
    limit = open_files_limit(pid) if pid else 0
    if limit < 4096:
        # Started as root, rabbitmq-server switches user through `su`, whose PAM limits put the
        # soft limit back to 1,024 whatever the caller set, and Erlang sizes its port table at
        # start-up. So start it as the rabbitmq user with setpriv, which keeps our limit.
        print(f"restarting RabbitMQ with the hard open-files limit (it had {limit})", flush=True)
        sh("rabbitmqctl", "shutdown", check=False)
        subprocess.run(["bash", "-c", "ulimit -n $(ulimit -Hn) && cd /var/lib/rabbitmq && "
                        "HOME=/var/lib/rabbitmq setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "
                        "/usr/lib/rabbitmq/bin/rabbitmq-server -detached"], check=True)
        wait_port(15674)
        pid = rabbit_pid()
        limit = open_files_limit(pid)
        if limit < 4096:
            sys.exit(f"RabbitMQ still runs with {limit} open files: it would drop connections past ~900")
    wait_port(15674)
    print(f"RabbitMQ pid {pid}, open-files limit {limit}", flush=True)
    return pid


def pin(pid, cpu):
    sh("taskset", "-a", "-p", "-c", str(cpu), str(pid), check=False)


CGROUP_CPU = Path("/sys/fs/cgroup/cpu")


def cap_period_us(share):
    """The CFS period for a cap of `share`: 10 ms, or longer where the quota would be under the
    kernel's 1 ms minimum (a cap under a tenth of a core)."""
    return max(10000, -(-1000 * 10000 // int(share * 10000)))


def cap_cpu(name, pid, share):
    """Moves `pid` (all its threads) into its own cpu cgroup allowed `share` of a core."""
    group = CGROUP_CPU / f"stompede-bench-{name}"
    group.mkdir(exist_ok=True)
    period = cap_period_us(share)
    # Quota first set to "no limit": a period shorter than the group's current quota would
    # otherwise be refused.
    (group / "cpu.cfs_quota_us").write_text("-1")
    (group / "cpu.cfs_period_us").write_text(str(period))
    (group / "cpu.cfs_quota_us").write_text(str(round(period * share)))
    (group / "cgroup.procs").write_text(str(pid))


def throttling(name):
    """The capped group's CFS periods so far, and how many of them throttled it."""
    stat = dict(line.split() for line in (CGROUP_CPU / f"stompede-bench-{name}" / "cpu.stat").read_text().splitlines())
    return int(stat["nr_periods"]), int(stat["nr_throttled"])


def uncap_cpu(pid):
    """Moves `pid` back to the root cpu cgroup (RabbitMQ outlives the run)."""
    try:
        (CGROUP_CPU / "cgroup.procs").write_text(str(pid))
    except OSError:
        pass


IDLE_TIMEOUT = ["--idle-timeout", "10"]


def run_loadgen(cmd, label, timeout=600):
    """Runs a load generator command; returns its RESULT line's JSON, or an error for `label`."""
    run = subprocess.run(cmd, text=True, capture_output=True, timeout=timeout)
    for line in run.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"label": label, "error": (run.stderr or run.stdout).strip()[-400:]}


def loadgen(server, pid, args):
    cmd = ["taskset", "-c", "1", str(RELEASE / "loadgen"), *args, *IDLE_TIMEOUT, "--url", SERVERS[server]["url"],
           "--server-pid", str(pid), "--label", server, *SERVERS[server]["extra"]]
    result = run_loadgen(cmd, server)
    result["args"] = args
    return result


def median(results, key):
    values = [key(r) for r in results if "error" not in r and key(r) is not None]
    return statistics.median(values) if values else None


def svg_plot(rows, path):
    """Three line charts side by side: deliveries/s, p99 latency and server CPU per delivery
    against subscribers."""
    colors = {"ours": "#d62728", "baseline": "#1f77b4", "rabbitmq": "#ff7f0e", "before": "#7f7f7f"}
    counts = sorted({r["subscribers"] for r in rows})
    width, height, pad = 420, 300, 50
    panels = [("deliveries/s (median)", "rate"), ("p99 latency, ms (median)", "p99_ms"),
              ("server CPU µs per delivery (median)", "cpu")]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{len(panels) * width}" height="{height + 40}" font-family="sans-serif" font-size="11">']
    for panel, (title, key) in enumerate(panels):
        x0 = panel * width
        values = [r[key] for r in rows if r.get(key) is not None]
        top = max(values) * 1.1 if values else 1
        parts.append(f'<text x="{x0 + width / 2}" y="16" text-anchor="middle" font-weight="bold">{title}</text>')
        parts.append(f'<line x1="{x0 + pad}" y1="{height}" x2="{x0 + width - 10}" y2="{height}" stroke="black"/>')
        parts.append(f'<line x1="{x0 + pad}" y1="30" x2="{x0 + pad}" y2="{height}" stroke="black"/>')
        def px(i):
            return x0 + pad + (i + 0.5) * (width - pad - 10) / len(counts)
        def py(v):
            return height - (v / top) * (height - 40)
        for i, c in enumerate(counts):
            parts.append(f'<text x="{px(i)}" y="{height + 15}" text-anchor="middle">{c} subs</text>')
        for t in range(5):
            v = top * t / 4
            label = f"{v:,.0f}" if key == "rate" else f"{v:.2f}" if key == "cpu" else f"{v:.1f}"
            parts.append(f'<text x="{x0 + pad - 4}" y="{py(v) + 4}" text-anchor="end">{label}</text>')
        for server, color in colors.items():
            pts = [(px(i), py(r[key])) for i, c in enumerate(counts)
                   for r in rows if r["server"] == server and r["subscribers"] == c and r.get(key) is not None]
            if pts:
                parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in pts)}"/>')
                parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>' for x, y in pts)
    for i, (server, color) in enumerate(colors.items()):
        parts.append(f'<rect x="{60 + i * 110}" y="{height + 24}" width="10" height="10" fill="{color}"/><text x="{74 + i * 110}" y="{height + 33}">{server}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--subscribers", default="10,100,1000")
    ap.add_argument("--deliveries", type=int, default=200_000, help="per fan-out run")
    ap.add_argument("--out", default=str(ROOT / "target" / "bench"))
    ap.add_argument("--servers", default="ours,baseline,rabbitmq", help="which servers to run")
    ap.add_argument("--no-fixed-rate", action="store_true", help="skip the fixed-rate runs")
    ap.add_argument("--only-fixed-rate", action="store_true", help="skip the full-speed runs")
    ap.add_argument("--before", default=None, metavar="BINARY",
                    help="also run this broker binary (examples/broker built from an earlier commit) as "
                         "server 'before', on port 61616: a before/after comparison in one run")
    ap.add_argument("--pin-after-start", action="store_true",
                    help="pin the servers once they run (their runtimes then keep one worker thread per "
                         "core of the machine, all on CPU 0), as this script did before 2026-12-03")
    ap.add_argument("--server-cpu", type=float, default=None,
                    help="cap each server at this fraction of a core (cgroup v1 CFS quota)")
    o = ap.parse_args()
    for name in list(SERVERS):
        if name not in o.servers.split(","):
            del SERVERS[name]
    if o.before:
        SERVERS["before"] = {"url": "ws://127.0.0.1:61616/ws", "extra": []}
    out = Path(o.out)
    out.mkdir(parents=True, exist_ok=True)
    counts = [int(c) for c in o.subscribers.split(",")]

    print("building release binaries", flush=True)
    subprocess.run(["cargo", "build", "--release", "--example", "broker", "--example", "baseline",
                    "--example", "loadgen"], cwd=ROOT, check=True)
    pids = {"rabbitmq": prepare_rabbitmq()} if "rabbitmq" in SERVERS else {}
    # Started pinned, so that each runtime sizes itself to the one core it has (one worker
    # thread); pinned after start, a runtime keeps two workers taking turns on one core.
    launch = [] if o.pin_after_start else ["taskset", "-c", "0"]
    procs = [subprocess.Popen([*launch, str(RELEASE / "broker"), "--addr", "127.0.0.1:61614"], stdout=subprocess.DEVNULL),
             subprocess.Popen([*launch, str(RELEASE / "baseline"), "--addr", "127.0.0.1:61615"], stdout=subprocess.DEVNULL)]
    pids["ours"], pids["baseline"] = procs[0].pid, procs[1].pid
    wait_port(61614)
    wait_port(61615)
    if o.before:
        procs.append(subprocess.Popen([*launch, o.before, "--addr", "127.0.0.1:61616"], stdout=subprocess.DEVNULL))
        pids["before"] = procs[-1].pid
        wait_port(61616)
    for pid in pids.values():
        pin(pid, 0)
    pids = {name: pid for name, pid in pids.items() if name in SERVERS}
    print(f"servers pinned to CPU 0 ({pids}), load generator to CPU 1", flush=True)
    if o.server_cpu and not 0.01 <= o.server_cpu <= 1:
        for p in procs:
            p.terminate()
        sys.exit(f"--server-cpu {o.server_cpu}: a cap is a fraction of one core, from 0.01 to 1")

    plan = []
    for subs in [] if o.only_fixed_rate else counts:
        messages = max(o.deliveries // subs, 50)
        plan.append((f"fanout {subs} subs, full speed",
                     ["fanout", "--subscribers", str(subs), "--messages", str(messages)], subs))
    for rate in () if o.no_fixed_rate else (100, 300):
        plan.append((f"fanout 100 subs at {rate * 100:,} deliveries/s",
                     ["fanout", "--subscribers", "100", "--messages", str(rate * 5), "--rate", str(rate)], 100))
    results = []
    try:
        if o.server_cpu:
            # A throttled RabbitMQ can leave a subscriber waiting longer than the default 10 s.
            IDLE_TIMEOUT[1] = "120"
            for name, pid in pids.items():
                cap_cpu(name, pid, o.server_cpu)
            print(f"each server capped at {o.server_cpu} of a core ({cap_period_us(o.server_cpu) / 1000:g} ms periods)", flush=True)
        for title, args, subs in plan:
            for round_no in range(o.rounds):
                # Each round starts with the next server: whatever the first run of a round
                # pays for (the load generator's first start after a pause, the machine's
                # other work) is not always the same server's.
                names = list(SERVERS)
                shift = round_no % len(names)
                for server in names[shift:] + names[:shift]:
                    # RabbitMQ's Erlang schedulers spin when idle, on the measured server's
                    # core: it is paused (SIGSTOP) while the others run.
                    if "rabbitmq" in pids:
                        signal = "CONT" if server == "rabbitmq" else "STOP"
                        sh("kill", f"-{signal}", str(pids["rabbitmq"]), check=False)
                    before = throttling(server) if o.server_cpu else None
                    r = loadgen(server, pids[server], args)
                    if before:
                        # The share of the run's CFS periods in which the cap held the server
                        # back: near none, and the run was bound by something else (the load
                        # generator), not by the capped server.
                        periods, throttled = (b - a for a, b in zip(before, throttling(server)))
                        r["throttled_share"] = throttled / periods if periods else 0.0
                    r.update({"title": title, "round": round_no, "server": server, "subs": subs})
                    results.append(r)
                    status = r.get("error") or f'{r["deliveries_per_sec"]:,.0f}/s p99 {r["latency_us"]["p99"] / 1000:.2f} ms lost {r["lost"]} dup {r["duplicated"]} ooo {r["out_of_order"]}'
                    print(f"  {title} | round {round_no + 1} | {server}: {status}", flush=True)
    finally:
        if "rabbitmq" in pids:
            sh("kill", "-CONT", str(pids["rabbitmq"]), check=False)
        for p in procs:
            p.terminate()
        if o.server_cpu and "rabbitmq" in pids:
            uncap_cpu(pids["rabbitmq"])
    with open(out / "results.jsonl", "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")

    lines = ["| run | server | deliveries/s | ratio to ours | p99 ms | server CPU µs/delivery | CPU ratio | lost/dup/reordered |",
             "|---|---|---|---|---|---|---|---|"]
    rows = []
    for title, _, subs in plan:
        group = [r for r in results if r["title"] == title]
        ours = {k: median([r for r in group if r["server"] == "ours"], f) for k, f in
                [("rate", lambda r: r["deliveries_per_sec"]), ("cpu", lambda r: r.get("server_cpu_us_per_delivery"))]}
        for server in SERVERS:
            mine = [r for r in group if r["server"] == server]
            rate = median(mine, lambda r: r["deliveries_per_sec"])
            p99 = median(mine, lambda r: r["latency_us"]["p99"] / 1000)
            cpu = median(mine, lambda r: r.get("server_cpu_us_per_delivery"))
            bad = sum(r.get("lost", 0) + r.get("duplicated", 0) + r.get("out_of_order", 0) for r in mine if "error" not in r)
            errors = sum(1 for r in mine if "error" in r)
            fmt = lambda v, spec: "n/a" if v is None else format(v, spec)
            ratio = "1.00" if server == "ours" else fmt(ours["rate"] / rate if rate and ours["rate"] else None, ".2f")
            cpu_ratio = "1.00" if server == "ours" else fmt(ours["cpu"] / cpu if cpu and ours["cpu"] else None, ".2f")
            lines.append(f"| {title} | {server} | {fmt(rate, ',.0f')} | {ratio} | {fmt(p99, '.2f')} | {fmt(cpu, '.2f')} | {cpu_ratio} | {bad}{f' ({errors} failed runs)' if errors else ''} |")
            if "full speed" in title:
                rows.append({"server": server, "subscribers": subs, "rate": rate, "p99_ms": p99, "cpu": cpu})
    table = "\n".join(lines)
    cap = f" Each server capped at {o.server_cpu} of a core." if o.server_cpu else ""
    if o.server_cpu:
        for title, _, _ in plan:
            for server in SERVERS:
                shares = [r["throttled_share"] for r in results
                          if r["title"] == title and r["server"] == server and "throttled_share" in r]
                if shares and statistics.median(shares) < 0.5:
                    warning = (f"{title}, {server}: the cap held the server back in only {statistics.median(shares):.0%} "
                               f"of the periods (median of the rounds): the runs were bound by something else, "
                               f"most likely the load generator; a lower --server-cpu makes them server-bound")
                    print(f"warning: {warning}", flush=True)
                    cap += f" Warning: {warning}."
    (out / "compare.md").write_text(
        f"Rounds: {o.rounds}; medians; ratios are ours ÷ theirs (deliveries/s) and ours ÷ theirs (CPU per delivery).{cap}\n\n{table}\n")
    svg_plot(rows, out / "compare.svg")
    print("\n" + table)
    print(f"\nwritten: {out / 'compare.md'}, {out / 'results.jsonl'}, {out / 'compare.svg'}")


if __name__ == "__main__":
    main()
