"""Execute the notebooks and write what they show into ``docs/notebooks/``.

The notebooks are committed without outputs (``tests/test_notebooks.py``); this script runs each
one top to bottom as CI does (nbclient, the notebook's folder as working directory) and writes:

- ``docs/notebooks/<notebook>-<k>.png``: the k-th figure the notebook displays;
- ``docs/notebooks/README.md``: per notebook, its printed output and its figures, with the
  seconds each code cell took (so a reader sees what the run measured).

Usage (from the repository root)::

    OMP_NUM_THREADS=2 python docs/render_notebooks.py            # every notebook
    OMP_NUM_THREADS=2 python docs/render_notebooks.py notebooks/03_compressed_sensing_digits.ipynb
"""
from __future__ import annotations

import argparse
import base64
import datetime
import os
import re
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "notebooks"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def execute(path: Path, timeout: int = 1200) -> tuple:
    """``(executed notebook, seconds per code cell)``: run in the notebook's own folder."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    seconds = []
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                t0 = time.perf_counter()
                client.execute_cell(cell, i)
                seconds.append(time.perf_counter() - t0)
    return nb, seconds


def _text(output) -> str:
    if output.output_type == "stream":  # stdout only: library warnings on stderr are not results
        return output.text if output.name == "stdout" else ""
    if output.output_type in ("execute_result", "display_data") and "image/png" not in output.data:
        return output.data.get("text/plain", "") + "\n"
    if output.output_type == "error":
        return _ANSI.sub("", "\n".join(output.traceback)) + "\n"
    return ""


def write_outputs(path: Path, nb, seconds: list) -> list:
    """Write the figures of executed ``nb``; the markdown lines describing them."""
    lines = [f"## [{path.stem}](../../notebooks/{path.name})", ""]
    k, code_i = 0, 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        text = "".join(_text(o) for o in cell.outputs).strip()
        lines.append(f"Cell {code_i + 1} ({seconds[code_i]:.1f} s):")
        lines.append("")
        if text:
            lines += ["```", text, "```", ""]
        for o in cell.outputs:
            if o.output_type in ("display_data", "execute_result") and "image/png" in o.data:
                k += 1
                png = OUT / f"{path.stem}-{k}.png"
                png.write_bytes(base64.b64decode(o.data["image/png"]))
                lines += [f"![{path.stem} figure {k}]({png.name})", ""]
        code_i += 1
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    lines.append(f"Total: {sum(seconds):.0f} s of code cells (run {datetime.date.today().isoformat()}, "
                 f"CPU, OMP_NUM_THREADS={threads}).")
    lines.append("")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    OUT.mkdir(parents=True, exist_ok=True)
    sections = {}
    index = OUT / "README.md"
    if index.exists():  # keep the sections of notebooks not rerun this time
        for part in index.read_text().split("\n## ")[1:]:
            sections[part.split("]", 1)[0].lstrip("[")] = "## " + part.rstrip() + "\n"
    for path in paths:
        for old in OUT.glob(f"{path.stem}-*.png"):
            old.unlink()
        nb, seconds = execute(path)
        sections[path.stem] = "\n".join(write_outputs(path, nb, seconds))
        print(f"{path.name}: {sum(seconds):.0f} s, cells " + " ".join(f"{s:.1f}" for s in seconds), flush=True)
    head = ["# The notebooks, executed", "",
            "Written by `docs/render_notebooks.py` (the notebooks themselves are stored without "
            "outputs): each notebook's printed output and figures, and the seconds each code cell took.", ""]
    index.write_text("\n".join(head) + "\n" + "\n".join(sections[k] for k in sorted(sections)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
