"""docker-compose.yml's ``metrics`` profile (cannot run here): every file it mounts exists and
parses, Prometheus scrapes the port the stream service serves, and every metric the Grafana
dashboard queries is one ``/metrics`` really exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from loadgen.stream.metrics import StreamMetrics, _Collector
from loadgen.stream.stats import IntervalStats

yaml = pytest.importorskip("yaml")
REPO = Path(__file__).resolve().parents[2]


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _exposed_names() -> set[str]:
    pytest.importorskip("prometheus_client")
    from prometheus_client.exposition import generate_latest
    from prometheus_client.registry import CollectorRegistry

    m = StreamMetrics(0)
    stats = IntervalStats()
    stats.record_commit(["insert_consulta"], [], [0], 1, 2)
    stats.record_error("40", 1)
    stats.rows_by_table[("consultas", "c")] += 1
    m.add(stats)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(m))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return set(re.findall(r"^(loadgen_\w+?)(?:\{| )", text, flags=re.MULTILINE))


def test_the_metrics_profile_mounts_files_that_exist_and_parse() -> None:
    services = _compose()["services"]
    metrics = {n for n, s in services.items() if "metrics" in s.get("profiles", [])}
    assert metrics == {"stream", "prometheus", "grafana"}
    for name in metrics:
        for volume in services[name].get("volumes", []):
            source = volume.split(":")[0]
            path = REPO / source
            assert path.exists(), (name, source)
            for f in [path] if path.is_file() else sorted(path.rglob("*")):
                if f.suffix in (".yml", ".yaml"):
                    assert isinstance(yaml.safe_load(f.read_text()), dict), f
                elif f.suffix == ".json":
                    json.loads(f.read_text())
    command = services["stream"]["command"]
    port = command[command.index("--metrics-port") + 1]
    prom = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = [t for job in prom["scrape_configs"] for c in job["static_configs"]
               for t in c["targets"]]  # fmt: skip
    assert targets == [f"stream:{port}"]
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
