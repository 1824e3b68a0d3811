"""dvc.yaml, params.yaml, the stage modules and the Feast sources agree with each other."""
import ast
import importlib
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def _module(cmd: str) -> str:
    return re.search(r"python -m ([\w.]+)", cmd).group(1)


def _stages():
    for name, stage in DVC.items():
        yield name, stage.get("do", stage)


def test_stage_name_equals_module_name_and_module_has_main():
    for name, stage in _stages():
        module = _module(stage["cmd"])
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


def test_code_deps_exist():
    for name, stage in _stages():
        for dep in stage.get("deps", []):
            if re.match(r"^(curation|training|registry|serving|validation|feature_repo)/", str(dep)):
                assert (ROOT / dep).exists(), f"stage {name}: missing dependency {dep}"


def test_stage_modules_read_params_sections_that_exist():
    """Every section(Cls, params, 'x') call in a stage module names a params.yaml section."""
    for name, stage in _stages():
        path = ROOT / (_module(stage["cmd"]).replace(".", "/") + ".py")
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
    from training.embed import embed_products  # noqa: F401  (columns asserted in the stage tests)
    fields = {f.name for fv in (defs.product_embeddings, defs.product_attributes) for f in fv.schema}
    assert fields == {"image_embedding", "text_embedding", "fused_embedding", "model_version",
                      "product_type", "title"}
