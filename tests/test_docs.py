"""The docs say what the code does: the generated pages equal what the code gives today, every method page cites a
known paper and tests that exist, every link resolves, the README stays a short guide, and the architecture map names
every module. `python scripts/generate_docs.py` rewrites the generated pages."""
import importlib.util
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from engine.references import REFERENCES
from engine.scoring.registry import SCORERS
from engine.selection.registry import STRATEGIES

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SCRIPT = REPO / "scripts" / "generate_docs.py"


def load_generator():
    spec = importlib.util.spec_from_file_location("generate_docs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gen = load_generator()


def test_generated_pages_match_the_code():
    """Regenerated in memory from the click commands, the pydantic models, the bindings and the registries."""
    rendered = gen.pages()
    assert "methods/scores/el2n.md" in rendered and "methods/dynamic/infobatch.md" in rendered
    stale = gen.stale(DOCS, rendered)
    assert not stale, f"stale docs pages {stale}: run `python scripts/generate_docs.py`"


def test_check_names_each_stale_page_and_writing_restores_them(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    edited = docs / "methods" / "strategies" / "herding.md"
    edited.write_text(edited.read_text().replace("argmin", "argmax"))  # the docs now say what DeepCore does
    (docs / "guide" / "cli-reference.md").unlink()
    (docs / "methods" / "scores" / "no_such_scorer.md").write_text("a method that was removed\n")
    check = [sys.executable, str(SCRIPT), "--check", "--docs", str(docs)]
    proc = subprocess.run(check, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    named = set(re.findall(r"stale: docs/(\S+);", proc.stderr))
    assert named == {"methods/strategies/herding.md", "guide/cli-reference.md", "methods/scores/no_such_scorer.md"}
    write = subprocess.run([sys.executable, str(SCRIPT), "--docs", str(docs)], check=False, capture_output=True,
                           text=True, timeout=120)
    assert write.returncode == 0, write.stderr
    assert "removed docs/methods/scores/no_such_scorer.md" in write.stdout
    assert subprocess.run(check, check=False, capture_output=True, text=True, timeout=120).returncode == 0
    assert edited.read_text() == (DOCS / "methods" / "strategies" / "herding.md").read_text()


class Inner(BaseModel):
    """A section a kind might register."""

    window: int = Field(10, ge=2, description="epochs per window")
    mode: str | None = Field(None, description="unset: the run's")


class Outer(BaseModel):
    name: str = Field("x", min_length=1, description="a name")
    inner: Inner = Inner(window=5)
    later: Inner | None = None


def test_the_config_reference_walks_any_pydantic_model_and_its_sections():
    """Generic, so config sections added or moved (sections registered by kinds) are documented without code here."""
    found = {name: gen.field_rows(model, instance) for name, model, instance in gen.sections(Outer, Outer())}
    assert list(found) == ["", "inner"]
    assert found[""] == [["`name`", "str (non-empty)", '`"x"`', "a name"],
                         ["`later`", "section or unset", "`(unset)`", ""]]
    assert found["inner"] == [["`window`", "int (≥ 2)", "`5`", "epochs per window"],  # the parent's default
                              ["`mode`", "str or unset", "`(unset)`", "unset: the run's"]]


BUILTIN_SCORERS = [n for n, s in SCORERS.items() if gen.builtin(s.observer if s.kind == "training" else s.fn)]
BUILTIN_STRATEGIES = [n for n, s in STRATEGIES.items() if gen.builtin(s.fn)]


def test_every_builtin_method_is_documented_with_known_references():
    docs = [SCORERS[n].doc for n in BUILTIN_SCORERS] + [STRATEGIES[n].doc for n in BUILTIN_STRATEGIES]
    docs += [m.doc for m in gen.DYNAMIC]
    # no built-in left out: a fresh process holds the built-ins alone (tests in this one register plugins)
    fresh = subprocess.run([sys.executable, "-c", ("from engine.scoring.registry import SCORERS; from "
                            "engine.selection.registry import STRATEGIES; print(len(SCORERS) + len(STRATEGIES))")],
                           capture_output=True, text=True, check=True, cwd=REPO)
    assert len(docs) == int(fresh.stdout) + len(gen.DYNAMIC)
    for doc in docs:
        assert doc.formula and doc.tests, doc
        assert not doc.paper or doc.paper in REFERENCES, doc.paper
        assert not doc.code or re.fullmatch(r"[\w.-]+/[\w.-]+: [\w./-]+(, [\w./-]+)*", doc.code), doc.code
        for key in re.findall(r"\[([a-z]+\d{4}[a-z]*)\]", " ".join((doc.formula, *doc.differences))):
            assert key in REFERENCES, key


def test_every_test_a_methods_page_names_exists():
    named = {t for n in BUILTIN_SCORERS for t in SCORERS[n].doc.tests}
    named |= {t for n in BUILTIN_STRATEGIES for t in STRATEGIES[n].doc.tests}
    named |= {t for m in gen.DYNAMIC for t in m.doc.tests}
    files = sorted({t.split("::")[0] for t in named})
    assert all((REPO / f).is_file() for f in files), files
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    collected = set(proc.stdout.split())
    missing = [t for t in named if t not in collected and not any(c.startswith(t + "[") for c in collected)]
    assert not missing, f"methods pages name tests that do not exist: {sorted(missing)}"


def slug(heading: str) -> str:
    """GitHub's anchor for a markdown heading."""
    text = heading.strip().lower().replace("`", "")
    text = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE)
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}


MARKDOWN = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


@pytest.mark.parametrize("page", MARKDOWN, ids=[p.relative_to(REPO).as_posix() for p in MARKDOWN])
def test_every_relative_link_resolves(page):
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in anchors(file)):
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)} links to {broken}"


def test_the_readme_is_a_short_guide_whose_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")][-1]
    assert f"\n{ci}\n" in readme, ci


def test_every_module_is_on_the_architecture_map_and_nothing_else():
    """Each `### dir/` section's table rows name the modules of that folder (paths relative to it)."""
    page = (DOCS / "dev" / "architecture.md").read_text(encoding="utf-8")
    mapped = set()
    for folder, body in re.findall(r"^### (\S+/)\n(.*?)(?=^### |^## |\Z)", page, flags=re.DOTALL | re.MULTILINE):
        mapped |= {folder + name for name in re.findall(r"^\| `([^`]+\.py)` \|", body, flags=re.MULTILINE)}
    modules = {p.relative_to(REPO).as_posix() for top in ("engine", "tui") for p in (REPO / top).rglob("*.py")}
    assert not modules - mapped, f"missing from docs/dev/architecture.md: {sorted(modules - mapped)}"
    assert not mapped - modules, f"on the map but not in the code: {sorted(mapped - modules)}"
