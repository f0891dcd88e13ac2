"""docker-compose.yml's ``metrics`` profile (cannot run here): every file it mounts exists and
parses, Prometheus scrapes the ports the stream and watch services serve, and every metric the
Grafana dashboard queries is one ``/metrics`` of ``stream`` or ``cdc watch`` really exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from loadgen.cdc.ledger_index import TableCodes
from loadgen.cdc.watch_match import Matcher
from loadgen.cdc.watch_metrics import WatchMetrics, snapshot
from loadgen.cdc.watch_metrics import _Collector as _WatchCollector
from loadgen.stream.metrics import StreamMetrics, _Collector
from loadgen.stream.stats import IntervalStats

yaml = pytest.importorskip("yaml")
REPO = Path(__file__).resolve().parents[2]


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _names(collector: object) -> set[str]:
    from prometheus_client.exposition import generate_latest
    from prometheus_client.registry import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return set(re.findall(r"^(loadgen_\w+?)(?:\{| )", text, flags=re.MULTILINE))


def _exposed_names() -> set[str]:
    pytest.importorskip("prometheus_client")
    m = StreamMetrics(0)
    stats = IntervalStats()
    stats.record_commit(["insert_consulta"], [], [0], 1, 2)
    stats.record_error("40", 1)
    stats.rows_by_table[("consultas", "c")] += 1
    m.add(stats)
    return _names(_Collector(m)) | _watch_names()


def _watch_names() -> set[str]:
    """What a slot watch that matched one change exposes."""
    w = WatchMetrics(0)
    matcher = Matcher(TableCodes(["consultas"]))
    matcher.tally.matched = 1
    matcher.lag.add("consultas", 12.5)
    matcher.lag.take_interval()
    w.publish(snapshot(matcher, 0, reconnects=0))
    return _names(_WatchCollector(w))


def test_the_metrics_profile_mounts_files_that_exist_and_parse() -> None:
    services = _compose()["services"]
    metrics = {n for n, s in services.items() if "metrics" in s.get("profiles", [])}
    assert metrics == {"stream", "watch", "prometheus", "grafana"}
    for name in metrics:
        for volume in services[name].get("volumes", []):
            source = volume.split(":")[0]
            if source in _compose().get("volumes", {}):
                continue  # a named volume, not a file of the repository
            path = REPO / source
            assert path.exists(), (name, source)
            for f in [path] if path.is_file() else sorted(path.rglob("*")):
                if f.suffix in (".yml", ".yaml"):
                    assert isinstance(yaml.safe_load(f.read_text()), dict), f
                elif f.suffix == ".json":
                    json.loads(f.read_text())
    command = services["stream"]["command"]
    port = command[command.index("--metrics-port") + 1]
    watch = services["watch"]["command"][0].split()
    watch_port = watch[watch.index("--metrics-port") + 1]
    # the watch follows the ledger the stream writes, in the volume both mount
    ledger = command[command.index("--ledger") + 1]
    assert watch[watch.index("--ledger") + 1] == ledger
    assert services["stream"]["volumes"] == services["watch"]["volumes"] == ["ledger:/ledger"]
    assert ledger.startswith("/ledger/") and "ledger" in _compose()["volumes"]
    assert services["stream"]["depends_on"]["watch"]["condition"] == "service_healthy"
    assert watch_port in " ".join(services["watch"]["healthcheck"]["test"])
    prom = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = [t for job in prom["scrape_configs"] for c in job["static_configs"]
               for t in c["targets"]]  # fmt: skip
    assert targets == [f"stream:{port}", f"watch:{watch_port}"]
    datasource = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and datasource["type"] == "prometheus"


def test_the_dashboard_queries_only_metrics_that_exist() -> None:
    dash = json.loads((REPO / "deploy/grafana/dashboards/loadgen.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {
        re.sub(r"_(bucket|count|sum)$", "", n) for e in exprs for n in re.findall(r"loadgen_\w+", e)
    }
    exposed = {re.sub(r"_(bucket|count|sum|created)$", "", n) for n in _exposed_names()}
    assert used and used <= exposed, used - exposed
    uids = {t["datasource"]["uid"] for p in dash["panels"] for t in p["targets"]}
    provisioned = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]["uid"]
    assert uids == {provisioned}


def test_the_dashboard_has_the_watch_panels() -> None:
    """The brief's CDC metrics are each on a panel (a missing one would go unnoticed)."""
    dash = json.loads((REPO / "deploy/grafana/dashboards/loadgen.json").read_text())
    text = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    for name in ("matched_total", "pending", "missing_total", "lag_seconds_bucket",
                 "check_failures_total", "reconnects_total", "redelivered_total"):  # fmt: skip
        assert f"loadgen_cdc_{name}" in text, name
    names = _watch_names()
    assert {"loadgen_cdc_lag_seconds_bucket", "loadgen_cdc_reconnects_total"} <= names
