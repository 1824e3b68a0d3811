"""`vlclip promote`: move the champion alias to a version (default: the challenger) when it passes
the gate (a significant validation gain, registry.gate); --force skips the gate (a rollback, say)."""
from __future__ import annotations

import argparse

from registry.gate import decide, load_ranks
from registry.register import CATALOG_TAG, catalog_alias, champion_metric, gate_key
from vlclip.params import load_params, section
from vlclip.tracking import MlflowParams, setup

PROMOTE_TAG = "vlclip.promote"  # on a model version: what `vlclip promote` decided and why


def promote(client, name: str, version: str, metric: str, force: bool = False) -> tuple[bool, str]:
    """Move `champion` (and the champion alias of the version's catalog) to `version` when its validation
    gain over that catalog's champion is significant (registry.gate); --force skips the gate. The
    decision and its reason are recorded on the version (tag vlclip.promote)."""
    mv, key = client.get_model_version(name, version), gate_key(metric)
    current, _ = champion_metric(client, name, metric)
    if current == str(version):
        return True, f"version {version} is already champion"
    if key not in mv.tags and not force:
        return False, f"version {version} has no validation {metric} tag ({key}); evaluate it or use --force"
    catalog = mv.tags.get(CATALOG_TAG)
    own = catalog_alias(catalog) if catalog else "champion"
    old_version, old_value = champion_metric(client, name, metric, own)
    why = "forced"
    if not force:
        ok, why = decide(metric, load_ranks(client, name, version) or {},
                         old_version and load_ranks(client, name, old_version),
                         float(mv.tags[key]), old_value)
        if not ok:
            client.set_model_version_tag(name, version, PROMOTE_TAG, f"refused against version {old_version}: {why}")
            return False, f"version {version} stays challenger against champion version {old_version}: {why}"
    if catalog:
        client.set_registered_model_alias(name, own, version)
    client.set_registered_model_alias(name, "champion", version)
    client.set_model_version_tag(name, version, PROMOTE_TAG, f"promoted by hand over version {current}: {why}")
    return True, f"champion: version {current} -> {version} ({why})"


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
