"""The notebooks are committed with their outputs stripped (CI executes them with nbmake)."""
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


DOCS = Path(__file__).resolve().parents[1] / "docs" / "notebooks"


def test_the_notebooks_are_numbered_in_order():
    numbers = [p.stem.split("_", 1)[0] for p in NOTEBOOKS]
    assert len(numbers) >= 4 and numbers == [f"{i:02d}" for i in range(1, len(numbers) + 1)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_rendered_outputs_are_in_docs(path):
    """docs/notebooks/README.md (written by docs/render_notebooks.py) shows every notebook's figures."""
    index = (DOCS / "README.md").read_text()
    assert f"## [{path.stem}]" in index, f"run `python docs/render_notebooks.py {path}`"
    section = index.split(f"## [{path.stem}]", 1)[1].split("\n## ", 1)[0]
    figures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", section)
    assert figures and all((DOCS / f).is_file() for f in figures), (path.stem, figures)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_outputs_are_stripped(path):
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    assert cells, f"{path.name} has no code"
    dirty = [i for i, c in enumerate(cells) if c.get("outputs") or c.get("execution_count") is not None]
    assert dirty == [], (f"{path.name}: code cells {dirty} keep outputs; strip them "
                         "(e.g. `jupyter nbconvert --clear-output --inplace`) before committing")
