"""deploy/k8s/: every manifest is valid against the Kubernetes schemas (kubernetes-validate,
strict: no unknown fields), and the pieces fit together — names, keys, mounts, the Indexed
Job's completions = parallelism = LOADGEN_SHARDS, and the ConfigMap's settings.toml is
settings loadgen accepts, giving each pod its shard's share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loadgen import config
from loadgen.shards import Shard
from loadgen.stream.run_spec import RunSpec

kubernetes_validate = pytest.importorskip("kubernetes_validate")
yaml = pytest.importorskip("yaml")

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")  # backoffLimitPerIndex: beta in 1.29, GA in 1.33


def _docs() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        (doc,) = list(yaml.safe_load_all(path.read_text()))
        out[path.name] = doc
    return out


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_kubernetes(version: str) -> None:
    docs = _docs()
    assert {d["kind"] for d in docs.values()} == {
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "Job",
    }
    for name, doc in docs.items():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} (Kubernetes {version}): {exc.message} at {list(exc.path)}")


def test_an_invalid_manifest_is_caught() -> None:  # the validator is not a no-op
    job = _docs()["stream-job.yaml"]
    job["spec"]["completions"] = "three"  # not an integer
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSIONS[-1], strict=True)
    job = _docs()["stream-job.yaml"]
    job["spec"]["parallelsm"] = 3  # a typo: strict mode refuses unknown fields
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSIONS[-1], strict=True)


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def test_the_pieces_fit_together(tmp_path: Path) -> None:
    docs = _docs()
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) == set(docs) - {"verify-job.yaml"}
    secret, settings = docs["secret.yaml"], docs["configmap.yaml"]
    claim = docs["pvc.yaml"]["metadata"]["name"]
    assert "ReadWriteMany" in docs["pvc.yaml"]["spec"]["accessModes"]  # pods on many nodes
    jobs = {n: d for n, d in docs.items() if d["kind"] == "Job"}
    assert set(jobs) == {"setup-job.yaml", "stream-job.yaml", "verify-job.yaml"}
    for name, job in jobs.items():
        pod = job["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            env = _env(container)
            ref = env["LOADGEN_DSN"]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            config_dir = str(Path(env["LOADGEN_CONFIG"]["value"]).parent)
            assert volumes[mounts[config_dir]]["configMap"]["name"] == settings["metadata"]["name"]
            assert Path(env["LOADGEN_CONFIG"]["value"]).name in settings["data"]
            assert volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"] == claim, name

    stream = jobs["stream-job.yaml"]["spec"]
    assert stream["completionMode"] == "Indexed"
    container = stream["template"]["spec"]["containers"][0]
    env = _env(container)
    shards = int(env["LOADGEN_SHARDS"]["value"])
    assert stream["completions"] == stream["parallelism"] == shards
    index_ref = env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert index_ref == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert container["args"][0] == "stream"
    assert any("$(JOB_COMPLETION_INDEX)" in a for a in container["args"])  # a ledger per shard
    verify_script = jobs["verify-job.yaml"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--ledger /data/ledgers " in verify_script[0]  # all the shards' ledgers as one run

    # the ConfigMap's settings as pod I of the Indexed Job sees them
    path = tmp_path / "settings.toml"
    path.write_text(settings["data"]["settings.toml"])
    whole = config.load(config_path=path, env={})
    assert whole.stream.rate is not None and whole.stream.rate.per_s
    for i in range(shards):
        pod = config.load(
            config_path=path, env={"JOB_COMPLETION_INDEX": str(i), "LOADGEN_SHARDS": str(shards)}
        )
        assert pod.shard.shard == Shard(i, shards)
        plan = RunSpec.from_settings(pod.stream, "", shard=pod.shard.shard)
        assert plan.rate_per_s == pytest.approx(whole.stream.rate.per_s / shards)
