"""`vlclip promote`: move the champion alias to a version (default: the challenger) when it passes
the metric gate; --force skips the gate (a rollback, say)."""
from __future__ import annotations

import argparse

from registry.register import champion_metric, gate, tag_key
from vlclip.params import load_params, section
from vlclip.tracking import MlflowParams, setup


def promote(client, name: str, version: str, metric: str, force: bool = False) -> tuple[bool, str]:
    mv, key = client.get_model_version(name, version), tag_key(metric)
    if key not in mv.tags and not force:
        return False, f"version {version} has no {metric} tag; evaluate it or use --force"
    old_version, old_value = champion_metric(client, name, metric)
    value = float(mv.tags[key]) if key in mv.tags else float("nan")
    if not force and not gate(value, old_value):
        return False, (f"version {version} {metric} {value:.4f} does not beat champion "
                       f"version {old_version} ({old_value:.4f})")
    client.set_registered_model_alias(name, "champion", version)
    return True, f"champion: version {old_version} -> {version} ({metric} {value:.4f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vlclip promote", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--version", help="model version (default: the challenger alias)")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    p = section(MlflowParams, load_params(args.params), "mlflow")
    setup(p)
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    version = args.version or client.get_model_version_by_alias(p.model_name, "challenger").version
    ok, message = promote(client, p.model_name, str(version), p.gate_metric, args.force)
    print(f"promote: {message}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
