"""The `vlclip` command: serve, promote, lookup (Feast online features for rankers), run."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vlclip.dag import stage_arg
from vlclip.params import load_params, section


def _serve(args) -> int:
    from serving.app import ServeParams, ServicePaths, run
    from serving.provenance import ProvenancePaths

    params, root = load_params(args.params), Path(args.root).resolve()
    serve = section(ServeParams, params, "serve")
    provenance = ProvenancePaths(*(stage_arg(root, "embed", flag) for flag in ("--products", "--boxes", "--queries")))
    paths = ServicePaths(embeddings=stage_arg(root, "embed", "--out"),
                         index=stage_arg(root, "index", "--index"),
                         feature_repo=stage_arg(root, "materialize", "--repo"), provenance=provenance)
    return run(params, paths, root, args.host or serve.host, args.port or serve.port)


def _lookup(args) -> int:
    from serving.features import FeastParams, ProductFeatures, unknown_ids

    feast = section(FeastParams, load_params(args.params), "feast")
    feats = ProductFeatures(stage_arg(args.root, "materialize", "--repo"), feast.config)
    df = feats.lookup(args.product_ids)
    print(json.dumps(df.to_dict(orient="records"), default=lambda v: list(map(float, v))))
    unknown = unknown_ids(df)
    if unknown:  # a ranker must not mistake "no such product" for a product with empty features
        print(f"lookup: not in the online store: {', '.join(unknown)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="vlclip", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the retrieval service (loads models:/vl-clip@champion)")
    s.add_argument("--params", default="params.yaml")
    s.add_argument("--root", default=".", help="the project directory (its dvc.yaml names the stage outputs)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    sub.add_parser("promote", help="move the champion alias, gated on the metric", add_help=False)
    sub.add_parser("run", help="dvc repro with timings and an artifact list", add_help=False)
    lk = sub.add_parser("lookup", help="Feast online features of products, as JSON")
    lk.add_argument("product_ids", nargs="+")
    lk.add_argument("--params", default="params.yaml")
    lk.add_argument("--root", default=".")
    if argv and argv[0] == "promote":
        from registry.promote import main as promote

        return promote(argv[1:])
    if argv and argv[0] == "run":
        from vlclip.run import main as run

        return run(argv[1:])
    args = ap.parse_args(argv)
    return {"serve": _serve, "lookup": _lookup}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
