"""Summarises the reports scripts/bench.sh wrote: medians over runs."""
import glob
import json
import os
import statistics
import sys

out = sys.argv[1]


def load(path):
    with open(path) as f:
        return json.load(f)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


print(f"\nreports in {out}\n")
print("| ingest | runs | sent/s | stored/s (server) | ack p50 / p99 ms | refused | dropped | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|")
def series(path):
    """ingest-otlp-grpc-max-2.json -> ingest-otlp-grpc-max"""
    name = os.path.basename(path)[: -len(".json")]
    head, _, tail = name.rpartition("-")
    return head if tail.isdigit() and len(tail) == 1 else name


names = sorted({series(p) for p in glob.glob(f"{out}/ingest-*.json")})
for name in names:
    paths = sorted(glob.glob(f"{out}/{name}-[0-9].json")) or [f"{out}/{name}.json"]
    rs = [load(p) for p in paths]
    sent = median([r["sentPerSecond"] for r in rs])
    written = median([(r["server"]["written"] or 0) / r["seconds"] for r in rs])
    lat = [r["ackLatency"] for r in rs if r.get("ackLatency")]
    lat_s = f"{median([l['p50Ms'] for l in lat]):.0f} / {median([l['p99Ms'] for l in lat]):.0f}" if lat else "-"
    refused = sum(r["refused"] for r in rs)
    dropped = sum(r["server"]["dropped"] or 0 for r in rs)
    rss = max(r["server"]["peakResidentBytes"] or 0 for r in rs) / 2**20
    print(f"| {name[len('ingest-'):]} | {len(rs)} | {sent:,.0f} | {written:,.0f} | {lat_s} | {refused} | {dropped} | {rss:.0f} |")

sinks = sorted(glob.glob(f"{out}/sink-[0-9].json"))
if sinks:
    got = [load(p) for p in sinks]
    sent = [load(p.replace("sink-", "sink-sent-")) for p in sinks]
    per = [s["sent"] / max(s["requests"], 1) for s in sent]
    print(f"\nUDP reference (plain recv loop): {median([g['datagramsPerSecond'] for g in got]):,.0f} datagrams/s, "
          f"{median([g['datagramsPerSecond'] * p for g, p in zip(got, per)]):,.0f} annotations/s "
          f"(median of {len(got)}; {median(per):.1f} annotations a datagram)")

q = f"{out}/query.json"
if os.path.exists(q):
    r = load(q)
    if r.get("fill"):
        f = r["fill"]
        print(f"\nfill: {f['acked']:,} spans in {f['seconds']:.0f}s ({f['ackedPerSecond']:,.0f}/s)")
    print("\n| query | p50 ms | p99 ms |")
    print("|---|---|---|")
    for t in r["traceById"]:
        l = t.get("latency") or {}
        print(f"| trace by ID, {t['spans']:,} spans | {l.get('p50Ms', float('nan')):.2f} | {l.get('p99Ms', float('nan')):.2f} |")
    for s in r["search"]:
        l = s.get("latency") or {}
        print(f"| search: {s['filter']} ({s['hits']} hits) | {l.get('p50Ms', float('nan')):.2f} | {l.get('p99Ms', float('nan')):.2f} |")
    for p in r["tracePage"]:
        l = p.get("latency") or {}
        print(f"| trace page, {p['spans']:,} spans ({p['bytes']:,} bytes) | {l.get('p50Ms', float('nan')):.2f} | {l.get('p99Ms', float('nan')):.2f} |")

s = f"{out}/size.json"
if os.path.exists(s):
    r = load(s)
    print(f"\nstore: {r['stored']:,} spans, {r.get('diskBytesPerSpan') or float('nan'):.1f} bytes/span on disk after compaction "
          f"({r.get('sstBytesPerSpan') or float('nan'):.1f} in SST files); server peak RSS {(r.get('peakResidentBytes') or 0) / 2**20:.0f} MiB")
