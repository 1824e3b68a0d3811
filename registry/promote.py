"""`vlclip promote`: move the champion alias to a version (default: the challenger) when it passes
the metric gate; --force skips the gate (a rollback, say)."""
from __future__ import annotations

import argparse

from registry.register import CATALOG_TAG, catalog_alias, champion_metric, gate, tag_key
from vlclip.params import load_params, section
from vlclip.tracking import MlflowParams, setup


def promote(client, name: str, version: str, metric: str, force: bool = False) -> tuple[bool, str]:
    """Move `champion` (and the champion alias of the version's catalog) to `version` when it beats that
    catalog's champion on `metric`: a version is only ever compared with one judged on the same catalog."""
    mv, key = client.get_model_version(name, version), tag_key(metric)
    current, _ = champion_metric(client, name, metric)
    if current == str(version):
        return True, f"version {version} is already champion"
    if key not in mv.tags and not force:
        return False, f"version {version} has no {metric} tag; evaluate it or use --force"
    catalog = mv.tags.get(CATALOG_TAG)
    own = catalog_alias(catalog) if catalog else "champion"
    old_version, old_value = champion_metric(client, name, metric, own)
    value = float(mv.tags[key]) if key in mv.tags else float("nan")
    if not force and not gate(value, old_value):
        return False, (f"version {version} {metric} {value:.4f} does not beat champion "
                       f"version {old_version} ({old_value:.4f}) of its catalog")
    if catalog:
        client.set_registered_model_alias(name, own, version)
    client.set_registered_model_alias(name, "champion", version)
    return True, f"champion: version {current} -> {version} ({metric} {value:.4f})"


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
