"""Benchmark: 200 concurrent scrapers against the exporter's HTTP server on loopback.

The server (the real ExporterApp and HttpServer, over a MetricsView with no units, so the
figures are the HTTP stack's and not the rendering's) runs in a child process, so the
scrapers' threads do not share its interpreter lock. Each scraper opens a connection per
scrape (wsgiref serves one request per connection), asks for gzip like Prometheus, and
reads the whole answer. Per run it prints p50 and p99 latency, errors (connection closed,
reset or refused, non-200) and the server's drwatch_http_connections_rejected_total.

Runs, each plain and TLS: the default connection limit (64) and one above the burst. Fast
clients free their thread within milliseconds, so the burst queues in the listen backlog;
the limit refuses connections only while 64 are held open (tests/test_http_hardening.py).

Not part of `make test`. Example: .venv/bin/python bench/http_load.py --scrapers 200 --scrapes 20
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import ipaddress
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import percentile
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from drwatch.config import TierConfig
from drwatch.exporter.aws import ApiStats
from drwatch.exporter.metrics.view import MetricsView
from drwatch.exporter.server import ExporterApp, HttpLimits, HttpServer
from drwatch.exporter.webconfig import TlsServerConfig, WebConfig

REJECTED = re.compile(rb"^drwatch_http_connections_rejected_total (\S+)$", re.MULTILINE)


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, seconds: float | None, error: str | None) -> None:
        with self.lock:
            if error is None and seconds is not None:
                self.latencies.append(seconds)
            else:
                self.errors[error or "?"] = self.errors.get(error or "?", 0) + 1


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1; the scrapers skip verification (not what is measured)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "drwatch-bench")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "bench.crt", directory / "bench.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def serve_child(tls_dir: str | None, max_connections: int) -> None:
    """The server side: prints its port, serves until its stdin closes."""
    web = WebConfig()
    if tls_dir is not None:
        cert, key = self_signed(Path(tls_dir))
        web = WebConfig(TlsServerConfig(cert_file=cert, key_file=key))
    app = ExporterApp(MetricsView(lambda: (), ApiStats(), TierConfig()), lambda: True, lambda: ())
    server = HttpServer(app, "127.0.0.1", 0, web, HttpLimits(max_connections=max_connections))
    server.start()
    print(server.port, flush=True)
    sys.stdin.read()
    server.stop()


def scrape(port: int, context: ssl.SSLContext | None) -> bytes:
    connection: http.client.HTTPConnection
    if context is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=context)
    try:
        connection.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        return gzip.decompress(body)
    finally:
        connection.close()


def scraper(port: int, context: ssl.SSLContext | None, scrapes: int, start: threading.Barrier,
            tally: Tally) -> None:  # fmt: skip
    start.wait()
    for _ in range(scrapes):
        began = time.perf_counter()
        try:
            scrape(port, context)
        except (OSError, http.client.HTTPException, RuntimeError) as error:
            tally.record(None, type(error).__name__)
            continue
        tally.record(time.perf_counter() - began, None)


def run(tls: bool, max_connections: int, scrapers: int, scrapes: int) -> str:
    with tempfile.TemporaryDirectory() as directory:
        command = [sys.executable, __file__, "--child", "--max-connections", str(max_connections)]
        child = subprocess.Popen(
            [*command, *(["--tls-dir", directory] if tls else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            port = int(child.stdout.readline())
            context = None
            if tls:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            tally = Tally()
            start = threading.Barrier(scrapers)
            threads = [
                threading.Thread(target=scraper, args=(port, context, scrapes, start, tally))
                for _ in range(scrapers)
            ]
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - began
            found = REJECTED.search(scrape(port, context))
            rejected = found.group(1).decode() if found else "?"
        finally:
            child.stdin.close()
            child.wait(timeout=30)
    return report(tls, max_connections, tally, elapsed, rejected)


def report(tls: bool, limit: int, tally: Tally, elapsed: float, rejected: str) -> str:
    ok = tally.latencies
    p50 = f"{percentile(ok, 0.5) * 1000:.1f}" if ok else "-"
    p99 = f"{percentile(ok, 0.99) * 1000:.1f}" if ok else "-"
    errors = sum(tally.errors.values())
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(tally.errors.items())) or "none"
    return (
        f"{'TLS  ' if tls else 'plain'} limit {limit:>3}: {len(ok):5} ok, p50 {p50} ms, "
        f"p99 {p99} ms, {errors} errors ({kinds}), rejected_total {rejected}, "
        f"{(len(ok) + errors) / elapsed:.0f} scrapes/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scrapers", type=int, default=200)
    parser.add_argument("--scrapes", type=int, default=20, help="per scraper")
    parser.add_argument("--max-connections", type=int, default=0, help="only this limit")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tls-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        serve_child(args.tls_dir, args.max_connections)
        return
    limits = [args.max_connections] if args.max_connections else [64, 4 * args.scrapers]
    print(f"{args.scrapers} scrapers x {args.scrapes} scrapes, loopback, gzip", flush=True)
    for limit in limits:
        for tls in (False, True):
            print(run(tls, limit, args.scrapers, args.scrapes), flush=True)


if __name__ == "__main__":
    main()
