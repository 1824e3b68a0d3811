"""refine: guards, the rules backend, the agent loop, and the openai backend over real HTTP (fake_llm)."""
from __future__ import annotations

import json
import pickle
import re
import socket
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml

from curation.refine import (
    OpenAIParams,
    RefineParams,
    main,
    make_backend,
    refine_one,
    refine_products,
    refine_stream,
)
from curation.refinement import ChatClient, OpenAIBackend, Product, RulesBackend, Window, check_guards, run_agents
from curation.refinement.guards import UNGROUNDED, non_visual_hits, passes
from curation.refinement.lexicon import words
from fake_llm import FakeLLM

WINDOW = Window(10, 20)
OPENAI = OpenAIParams(model="fake-model", temperature=0.0, timeout_s=5)
PARAMS = RefineParams(backend="rules", max_rounds=5, min_words=10, max_words=20, openai=OPENAI)

PRODUCTS = pd.DataFrame([
    {"product_id": "p1", "product_type": "dress",
     "title": "Long Red Sleeveless Dress with White Striped Pattern and Round Neck Detail",
     "description": "<p>Our <b>best</b> long red dress.</p><ul><li>Free shipping!</li><li>SKU: AB-12345</li>"
                    "<li>Soft, breathable &amp; machine-washable.</li><li>Pair it with black shoes.</li></ul>",
     "colour": "red", "brand": "Nordvik"},
    {"product_id": "p2", "product_type": "lamp", "title": "Kestrel Desk Lamp", "description": "Bulb not included.",
     "colour": float("nan"), "pattern": "dotted", "accent_colour": "yellow", "material": "brass"},
    {"product_id": "p3", "product_type": "chair", "title": "Oakline lounge armchair - navy",
     "description": "Solid oak frame | grey linen cushion with checked pattern in beige | 1-year warranty",
     "colour": None, "brand": None},
])


def product(pid: str) -> Product:
    return Product.from_row(PRODUCTS.set_index("product_id").loc[pid].to_dict() | {"product_id": pid})


# --- guards -------------------------------------------------------------------------------------

def test_guards_pass_a_grounded_visual_query():
    p = product("p1")
    assert check_guards("long red sleeveless dress with white striped pattern, round neck detail", p.product_type,
                        p.index, WINDOW) == []


@pytest.mark.parametrize("query, problem", [
    ("long red dress", "too short"),
    ("long red dress " + "with white stripes " * 6, "too long"),
    ("long red sleeveless dress with white stripes and free shipping on it", "non-visual term: 'free'"),
    ("long red sleeveless dress with white stripes, soft and breathable look", "non-visual term: 'soft'"),
    ("long red sleeveless dress with white stripes, round neck, sku AB-12345", "non-visual term: 'AB-12345'"),
    ("long red sleeveless dress with white stripes and elegant golden sparkle", "metadata: 'elegant'"),
    ("long red sleeveless garment with white striped pattern and round neck detail", "product type missing"),
])
def test_each_guard_can_fail(query, problem):
    p = product("p1")
    problems = check_guards(query, p.product_type, p.index, WINDOW)
    assert any(problem in str(x) for x in problems), problems


def test_guard_problems_are_structured():
    p = product("p1")
    problems = check_guards("long red sleeveless dress with white stripes and elegant golden sparkle", p.product_type,
                            p.index, WINDOW)
    assert [(x.kind, x.detail) for x in problems if x.kind == UNGROUNDED] == [
        (UNGROUNDED, "elegant"), (UNGROUNDED, "golden"), (UNGROUNDED, "sparkle")]


def test_stems_ground_word_variants():
    p = product("p1")  # metadata says "striped"; "stripes" and "stripe" are the same word to the guard
    assert check_guards("long red sleeveless dress with white stripes, round neck stripe detail", p.product_type,
                        p.index, WINDOW) == []


def test_no_listed_visual_or_template_word_trips_the_non_visual_guard():
    visual = set().union(*(words(n) for n in ("colours", "patterns", "materials", "shapes", "template_words")))
    assert len(visual) > 300
    assert [w for w in sorted(visual) if non_visual_hits(w)] == []


# --- rules backend --------------------------------------------------------------------------------

def test_rules_queries_are_visual_grounded_and_never_padded():
    queries, audit = refine_products(PRODUCTS, PARAMS, RulesBackend(WINDOW))
    assert list(queries.columns) == ["product_id", "query", "rounds", "guard_ok", "in_window", "backend", "fell_back"]
    assert queries["guard_ok"].all() and not queries["fell_back"].any()
    for pid, query in zip(queries["product_id"], queries["query"]):
        p = product(pid)
        assert 1 <= len(query.split()) <= 20, query
        assert non_visual_hits(query) == [], query
        assert passes(check_guards(query, p.product_type, p.index, WINDOW))
        assert not re.search(r"\d", query)
        assert not re.search(r"\b(colour|style|look|silhouette|details)\b", query), f"padded: {query}"
    q = dict(zip(queries["product_id"], queries["query"]))
    assert q["p1"].startswith("long red") and "white striped" in q["p1"] and "black" not in q["p1"]
    assert "yellow dotted" in q["p2"] and "brass" in q["p2"] and "desk lamp" in q["p2"]
    assert "navy" in q["p3"] and "beige checked pattern" in q["p3"] and "warranty" not in q["p3"]
    assert [a["product_id"] for a in audit] == ["p1", "p2", "p3"]


def test_a_short_summary_stays_short_the_window_is_reported_not_filled():
    run = run_agents(product("p2"), RulesBackend(WINDOW), WINDOW, max_rounds=5)
    assert run.steps[1]["verdict"] == "REVISE" and "too short" in run.steps[1]["problems"][0]
    assert run.steps[-1]["verdict"] == "STALLED" and run.guard_ok
    assert run.query == run.steps[0]["text"]  # nothing was added to reach the window


@pytest.mark.parametrize("title, description, brand, keep, drop", [
    ("[BEST SELLER] Daily Piñata fetsive", "", "Yolo", {"piñata", "toy", "game"}, {"best", "seller", "daily", "ata"}),
    ("Kiioqua Violin (RC-2090)", "Beautiful maple violin with a dark brown varnish. Free shipping!", "Kiioqua",
     {"violin", "dark", "brown"}, {"kiioqua", "rc-2090", "beautiful", "free", "shipping"}),
    ("KETTLE 1.7L", "This crimson beauty ships free and feels soft all day.", "",
     {"kettle", "crimson"}, {"beauty", "ships", "free", "soft", "1.7l"}),
    ("Lantern", "Loved by 2,000 customers, the brass lantern never goes out of style!", "",
     {"lantern", "brass"}, {"loved", "customers", "style"}),
])
def test_rules_keep_unlisted_object_names_and_drop_what_no_image_shows(title, description, brand, keep, drop):
    ptype = "toy_game" if "Piñata" in title else "home"
    row = {"product_id": "x", "product_type": ptype, "title": title, "description": description, "brand": brand}
    queries, _ = refine_products(pd.DataFrame([row]), PARAMS, RulesBackend(WINDOW))
    words = set(queries["query"].iloc[0].replace(",", " ").split())
    assert keep <= words and not drop & words, queries["query"].iloc[0]
    assert queries["guard_ok"].iloc[0]


def test_title_words_common_across_product_types_are_filler():
    rows = [{"product_id": f"p{i}", "product_type": t, "title": f"Zesty {t} {n}", "description": ""}
            for i, (t, n) in enumerate([("mug", "kettle"), ("lamp", "lantern"), ("vase", "urn"), ("bag", "tote")])]
    queries, _ = refine_products(pd.DataFrame(rows), PARAMS, RulesBackend(WINDOW))
    assert queries["query"].tolist() == ["kettle mug", "lantern lamp", "urn vase", "tote bag"]


def test_rules_refiner_trims_a_long_query():
    p, rules = product("p1"), RulesBackend(WINDOW)
    long_query = ", ".join(["long red sleeveless dress with white striped pattern"] + ["round neck detail"] * 6)
    fixed = rules.refine(p, long_query, check_guards(long_query, p.product_type, p.index, WINDOW))
    assert 10 <= len(fixed.split()) <= 20 and fixed.startswith("long red sleeveless dress")


def test_metadata_without_visual_words_gives_a_short_honest_query():
    bare = pd.DataFrame([{"product_id": "m1", "product_type": "mug", "title": "Mug", "description": np.nan}])
    queries, _ = refine_products(bare, PARAMS, RulesBackend(WINDOW))
    assert queries["query"].iloc[0] == "mug" and queries["guard_ok"].iloc[0]  # the window is soft
    assert not queries["in_window"].iloc[0] and not queries["fell_back"].iloc[0]


class Hopeless:
    """Every agent answers with marketing: the hard guards never pass."""

    name, deterministic = "hopeless", True

    def summarize(self, product):
        return "free shipping best seller"

    def evaluate(self, product, query):
        return []

    def refine(self, product, query, problems):
        return query


def test_a_query_that_keeps_breaking_a_hard_guard_falls_back_to_the_type_and_is_flagged():
    row, audit = refine_one(product("p2"), PARAMS, Hopeless(), Hopeless())
    assert row["query"] == "lamp" and row["guard_ok"] and row["fell_back"] and not row["in_window"]
    assert audit["steps"][-1]["guard_ok"] is False
    assert any("non-visual term" in p for p in audit["steps"][-1]["problems"])


def test_guard_problems_split_hard_from_soft():
    p = product("p1")
    problems = check_guards("red dress with free shipping", p.product_type, p.index, WINDOW)
    assert {(x.kind, x.hard) for x in problems} == {("too_short", False), ("non_visual", True)}


# --- the loop -----------------------------------------------------------------------------------

class Scripted:
    """A backend whose Evaluator complains `complaints` times, then says STOP."""

    name, deterministic = "scripted", False

    def __init__(self, complaints: int):
        self.complaints, self.refines = complaints, 0

    def summarize(self, product):
        return "long red sleeveless dress with white striped pattern, round neck detail"

    def evaluate(self, product, query):
        return ["make it better"] if self.refines < self.complaints else []

    def refine(self, product, query, problems):
        self.refines += 1
        return query


def test_loop_stops_at_stop():
    backend = Scripted(complaints=2)
    run = run_agents(product("p1"), backend, WINDOW, max_rounds=5)
    assert run.rounds == 3 and backend.refines == 2 and run.steps[-1]["verdict"] == "STOP"


class ShortFirst(Scripted):
    """An Evaluator that always says STOP, over a Summarizer whose query is too short."""

    def summarize(self, product):
        return "red dress"

    def refine(self, product, query, problems):
        self.refines += 1
        return "long red sleeveless dress with white striped pattern, round neck detail"


def test_loop_guards_overrule_an_evaluator_stop():
    backend = ShortFirst(complaints=0)
    run = run_agents(product("p1"), backend, WINDOW, max_rounds=5)
    assert run.steps[1]["verdict"] == "REVISE" and "too short: 2 words" in run.steps[1]["problems"][0]
    assert backend.refines == 1 and run.rounds == 2 and run.guard_ok


def test_loop_respects_max_rounds():
    backend = Scripted(complaints=99)
    run = run_agents(product("p1"), backend, WINDOW, max_rounds=4)
    assert run.rounds == 4 and backend.refines == 3
    assert sum(s["agent"] == "evaluator" for s in run.steps) == 4 and run.steps[-1]["verdict"] == "REVISE"


# --- openai backend over HTTP -----------------------------------------------------------------------

def openai_backend(llm: FakeLLM, **client_kw) -> OpenAIBackend:
    return OpenAIBackend(ChatClient(llm.base_url, "test-key", OPENAI, **client_kw), WINDOW)


def test_openai_loop_runs_over_http():
    with FakeLLM() as llm, openai_backend(llm) as backend:
        queries, audit = refine_products(PRODUCTS.iloc[:1], PARAMS, backend)
    row = queries.iloc[0]
    assert row["query"] == "long red sleeveless dress with white striped pattern and round neck detail"
    assert row["guard_ok"] and not row["fell_back"] and row["backend"] == "openai" and row["rounds"] == 2
    steps = audit[0]["steps"]
    assert "free shipping" in steps[0]["text"]
    assert steps[1]["verdict"] == "REVISE" and any("'free'" in p for p in steps[1]["problems"])
    assert steps[2]["agent"] == "refiner" and steps[3]["verdict"] == "STOP"
    assert len(llm.requests) == 4  # summarize, evaluate, refine, evaluate, and nothing else
    assert {r["headers"]["Authorization"] for r in llm.requests} == {"Bearer test-key"}
    body = llm.requests[0]["body"]
    assert body["model"] == "fake-model" and body["temperature"] == 0.0 and body["messages"][0]["role"] == "system"
    assert all(r["path"] == "/v1/chat/completions" for r in llm.requests)


def test_openai_falls_back_to_rules_when_the_llm_keeps_failing():
    with FakeLLM(mode="stubborn") as llm:
        backend = openai_backend(llm)
        queries, audit = refine_products(PRODUCTS.iloc[:1], PARAMS, backend)
    rules_query = refine_products(PRODUCTS.iloc[:1], PARAMS, RulesBackend(WINDOW))[0]["query"].iloc[0]
    row = queries.iloc[0]
    assert row["fell_back"] and row["guard_ok"] and row["query"] == rules_query and row["rounds"] == 5
    assert audit[0]["fell_back"] and audit[0]["fallback_steps"][0]["agent"] == "summarizer"
    assert audit[0]["steps"][-1]["guard_ok"] is False


def test_chat_client_retries_rate_limits():
    with FakeLLM(fail_first=2) as llm:
        client = ChatClient(llm.base_url, "", OPENAI, retries=3, backoff_s=0.01)
        assert client.complete("You are the Evaluator.", "query: red dress") == "STOP"
        assert len(llm.requests) == 3 and "Authorization" not in llm.requests[0]["headers"]


def test_chat_client_names_an_unreachable_endpoint():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ChatClient(f"http://127.0.0.1:{port}/v1", "k", OPENAI, retries=1, backoff_s=0.01)
    with pytest.raises(RuntimeError, match=rf"127\.0\.0\.1:{port}/v1/chat/completions is unreachable"):
        client.complete("You are the Summarizer.", "title: x")


def test_make_backend_needs_the_endpoint_env():
    with pytest.raises(ValueError, match="VLCLIP_LLM_BASE_URL"):
        make_backend(replace(PARAMS, backend="openai"), env={})
    with pytest.raises(ValueError, match=r"one of \['openai', 'rules'\]"):
        make_backend(replace(PARAMS, backend="gpt"), env={})


def test_a_backend_closes_its_client_when_the_block_ends():
    with FakeLLM() as llm:
        with make_backend(replace(PARAMS, backend="openai"), env={"VLCLIP_LLM_BASE_URL": llm.base_url}) as backend:
            assert isinstance(backend, OpenAIBackend)
        assert backend.client._http.is_closed


# --- stage main -------------------------------------------------------------------------------------

def write_params(tmp_path, backend: str):
    params = {"refine": {"backend": backend, "max_rounds": 5, "min_words": 10, "max_words": 20,
                         "openai": {"model": "fake-model", "temperature": 0.0, "timeout_s": 5}},
              "compute": {"engine": "local"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    PRODUCTS.assign(image_path="/img.png", split="train", phash="ff00").to_parquet(tmp_path / "products.parquet")
    return ["--params", str(tmp_path / "params.yaml"), "--products", str(tmp_path / "products.parquet"),
            "--out", str(tmp_path / "refine")]


def test_main_rules_writes_queries_and_audit(tmp_path, capsys):
    assert main(write_params(tmp_path, "rules")) == 0
    queries = pd.read_parquet(tmp_path / "refine" / "queries.parquet")
    audit = [json.loads(line) for line in (tmp_path / "refine" / "audit.jsonl").read_text().splitlines()]
    assert queries["product_id"].tolist() == ["p1", "p2", "p3"] and queries["guard_ok"].all()
    assert queries["rounds"].dtype == np.int64 and [a["product_id"] for a in audit] == ["p1", "p2", "p3"]
    assert all(a["steps"][0]["agent"] == "summarizer" for a in audit)
    assert "hard-guard pass rate 1.000" in capsys.readouterr().out


def test_main_openai_reads_endpoint_from_env(tmp_path, monkeypatch):
    with FakeLLM() as llm:
        monkeypatch.setenv("VLCLIP_LLM_BASE_URL", llm.base_url)
        monkeypatch.setenv("VLCLIP_LLM_API_KEY", "env-key")
        assert main(write_params(tmp_path, "openai")) == 0
    queries = pd.read_parquet(tmp_path / "refine" / "queries.parquet")
    assert (queries["backend"] == "openai").all() and queries["guard_ok"].all()
    # p2's query is short (soft: kept); p3's lacks the type word (hard), which the fake LLM never
    # fixes -> rules fallback
    assert queries["fell_back"].tolist() == [False, False, True]
    assert {r["headers"]["Authorization"] for r in llm.requests} == {"Bearer env-key"}


def test_rules_refiner_removes_flagged_words_from_any_query():
    p, rules = product("p1"), RulesBackend(WINDOW)
    bad = "long red sleeveless dress with women's free shipping, elegant white striped pattern"
    fixed = rules.refine(p, bad, check_guards(bad, p.product_type, p.index, WINDOW))
    assert passes(check_guards(fixed, p.product_type, p.index, WINDOW))
    assert not {"free", "shipping", "elegant", "women's"} & set(fixed.replace(",", " ").split())


def test_streamed_chunks_give_the_in_memory_queries_and_audit():
    queries, audit = refine_products(PRODUCTS, PARAMS, RulesBackend(WINDOW))
    frames = lambda: [PRODUCTS.iloc[i:i + 2] for i in range(0, len(PRODUCTS), 2)]  # noqa: E731
    parts = list(refine_stream(frames, PARAMS, RulesBackend(WINDOW), chunk=2))
    assert [len(f) for f, _ in parts] == [2, 1]
    pd.testing.assert_frame_equal(pd.concat([f for f, _ in parts], ignore_index=True), queries)
    assert [a for _, chunk in parts for a in chunk] == audit


def test_an_llm_backend_travels_to_another_process_and_connects_there():
    """What a Ray actor receives: the pickled backend, whose client opens its own connection."""
    with FakeLLM() as llm, openai_backend(llm) as backend:
        copy = pickle.loads(pickle.dumps(backend))
        try:
            assert copy.client._http is not backend.client._http
            row, _ = refine_one(Product.from_row(PRODUCTS.iloc[0].to_dict()), PARAMS, copy, RulesBackend(WINDOW))
        finally:
            copy.close()
        assert row["backend"] == "openai" and row["guard_ok"] and len(llm.requests) >= 2


def test_a_tally_over_chunks_equals_one_over_the_whole_run():
    from curation.refine import Tally

    rows = pd.DataFrame({"query": ["red dress", "a blue striped mug", "hat"], "rounds": [1, 3, 2],
                         "guard_ok": [True, False, True], "in_window": [True, True, False],
                         "fell_back": [False, True, False]})
    whole, chunked = Tally(), Tally()
    whole.add(rows)
    for part in (rows.iloc[:1], rows.iloc[1:1], rows.iloc[1:]):  # an empty chunk adds nothing
        chunked.add(part)
    assert chunked.summary() == whole.summary() == {"products": 3, "pass_rate": 2 / 3, "in_window": 2 / 3,
                                                    "mean_rounds": 2.0, "mean_words": 7 / 3, "fell_back": 1}
    assert Tally().summary()["products"] == 0
