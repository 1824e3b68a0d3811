"""dvc.yaml, params.yaml, the stage modules and the Feast sources agree with each other."""
import ast
import importlib
from pathlib import Path

import yaml

from project_imports import reached, stage_module, stages
from vlclip.dag import stage_arg
from vlclip.sandbox import code_dirs

ROOT = Path(__file__).resolve().parents[2]
DVC_FILE = yaml.safe_load((ROOT / "dvc.yaml").read_text())
DVC = DVC_FILE["stages"]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
CODE = code_dirs(ROOT)


def _stages():
    return ((name, stage) for _, name, stage in stages())


def test_stage_name_equals_module_name_and_module_has_main():
    for name, stage in _stages():
        module = stage_module(stage["cmd"])
        assert module.rsplit(".", 1)[1] == name, f"stage {name} runs {module}"
        assert callable(importlib.import_module(module).main)


def test_params_referenced_by_stages_exist():
    for name, stage in _stages():
        for key in stage.get("params", []):
            node = PARAMS
            for part in str(key).split("."):
                assert part in node, f"stage {name}: params.yaml has no {key}"
                node = node[part]


def test_every_params_section_is_read_by_some_stage_or_the_service():
    used = {str(k).split(".")[0] for _, s in _stages() for k in s.get("params", [])}
    assert set(PARAMS) - used <= {"serve"}, set(PARAMS) - used


def _code_deps(stage: dict) -> set[Path]:
    return {ROOT / d for d in stage.get("deps", []) if str(d).split("/")[0] in CODE}


def _covered(path: Path, deps: set[Path]) -> bool:
    return any(path == d or d in path.parents for d in deps)


def test_code_deps_exist():
    for name, stage in _stages():
        for dep in _code_deps(stage):
            assert dep.exists(), f"stage {name}: missing dependency {dep.relative_to(ROOT)}"


def test_every_stage_depends_on_all_the_code_it_runs():
    """Each file the stage's module reaches through imports (or reads beside itself) is a dep, so a
    code change reruns the stage; and no listed module is one it never reaches (a needless rerun)."""
    for name, stage in _stages():
        runs, deps = reached(stage_module(stage["cmd"])), _code_deps(stage)
        missing = sorted(str(p.relative_to(ROOT)) for p in runs if not _covered(p, deps))
        assert missing == [], f"stage {name}: dvc.yaml deps lack {missing}"
        stale = sorted(str(d.relative_to(ROOT)) for d in deps if d.suffix == ".py" and d.parts[len(ROOT.parts)]
                       != "feature_repo" and d not in runs)
        assert stale == [], f"stage {name}: dvc.yaml lists modules it never runs: {stale}"


def test_variant_inputs_in_dvc_yaml_match_their_kinds_in_params():
    """params.yaml says what each variant trains on; dvc.yaml says which stage outputs that is."""
    paths = next(v["variants"] for v in DVC_FILE["vars"] if "variants" in v)
    assert list(paths) == list(PARAMS["variants"])
    for name, kinds in PARAMS["variants"].items():
        crops = kinds["images"] == "crops"
        assert paths[name]["image_dir"] == ("data/ground" if crops else "data/dedup"), name
        assert paths[name]["text_file"] == ("data/refine/queries.parquet" if kinds["text"] == "refined"
                                            else "data/dedup/products.parquet"), name
        if crops:  # crops are trained on only after validation passed
            assert paths[name]["after"] == DVC["validate"]["cmd"].split("--out ")[1] + "/report.json", name


def test_service_paths_come_from_the_stages_that_write_them():
    assert stage_arg(ROOT, "embed", "--out") == ROOT / DVC["embed"]["outs"][0]
    assert stage_arg(ROOT, "materialize", "--repo") == ROOT / "feature_repo"
    assert stage_arg(ROOT, "index", "--index").parent == ROOT / "data"


def test_stage_modules_read_params_sections_that_exist():
    """Every section(Cls, params, 'x') call in a stage module names a params.yaml section."""
    for _, stage in _stages():
        path = ROOT / (stage_module(stage["cmd"]).replace(".", "/") + ".py")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "section":
                assert node.args[2].value in PARAMS, f"{path.name} reads missing section {node.args[2].value}"


def test_feast_source_reads_what_embed_writes():
    spec = importlib.util.spec_from_file_location("defs", ROOT / "feature_repo" / "definitions.py")
    defs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(defs)
    embed_out = DVC["embed"]["outs"][0]
    assert (ROOT / "feature_repo" / defs.EMBEDDINGS_PATH).resolve() == (ROOT / embed_out).resolve()
    assert embed_out in DVC["materialize"]["deps"]
    from serving.embed import embed_products  # noqa: F401  (columns asserted in the stage tests)
    fields = {f.name for fv in (defs.product_embeddings, defs.product_attributes) for f in fv.schema}
    assert fields == {"image_embedding", "text_embedding", "fused_embedding", "model_version",
                      "product_type", "title"}
