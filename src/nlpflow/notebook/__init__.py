"""``nlpflow notebook [REV]``: an executed Jupyter notebook of one experiment.

The notebook follows the course's checklist: introduction, setup, preprocessing, model,
training, evaluation, error analysis, interpretation, tools used (``SECTIONS``). Its cells
read the pipeline's own outputs (metrics, plot data and images, reports) of the workspace or
of a git revision or DVC experiment, relative to the project root, through
:class:`nlpflow.notebook.views.ProjectFiles`; nothing is retrained. It is executed top to
bottom with nbclient on an IPython kernel that runs this interpreter (``sys.executable``,
through a kernel spec in a temporary directory: nothing is registered with Jupyter) and
written with its outputs to ``reports/notebook.ipynb``. The cells are the same for the same
arguments (fixed cell ids, no timestamps); only their outputs change with the results.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nlpflow.errors import UserError

SECTIONS = (
    "Introduction",
    "Setup",
    "Preprocessing",
    "Model",
    "Training",
    "Evaluation",
    "Error analysis",
    "Interpretation",
    "Tools used",
)
# What every notebook reads: without these the pipeline has not run at that revision.
REQUIRED = (
    "params.yaml",
    "metrics/preprocess.json",
    "metrics/train.json",
    "metrics/evaluate.json",
    "metrics/error_analysis.json",
)
DEFAULT_OUT = "reports/notebook.ipynb"


def heading(number: int) -> str:
    return f"## {number}. {SECTIONS[number - 1]}"


def anchor(number: int) -> str:
    """Jupyter's anchor of a section heading: its text with spaces as hyphens."""
    return f"#{number}.-{SECTIONS[number - 1].replace(' ', '-')}"


def _cells(label: str, rev: str | None, compare: str | None, command: str) -> list[tuple[str, str]]:
    """``(kind, source)`` of every cell, in order. ``rev`` is a commit sha or None."""
    toc = "\n".join(f"{i}. [{name}]({anchor(i)})" for i, name in enumerate(SECTIONS, 1))
    if rev is None:
        reproduce = "dvc repro"
        where = "the workspace"
    else:
        where = f"`{label}` (commit `{rev[:12]}`)"
        reproduce = f"git checkout {rev}\ndvc repro"
        if label != rev:
            reproduce = f"dvc exp apply {label}  # or: git checkout {rev}\ndvc repro"
    return [
        (
            "markdown",
            f"# Experiment notebook: {label}\n\n"
            f"The experiment in {where}, read from the pipeline's outputs (metrics, plot "
            "data, reports) without retraining, in the order of the course's checklist. "
            f"Written by `{command}`; run it again to refresh.\n\n{toc}",
        ),
        # ------------------------------------------------------------------ setup code
        (
            "code",
            "import importlib.metadata as metadata\n"
            "import platform\n\n"
            "import matplotlib.pyplot as plt\n"
            "import yaml\n"
            "from IPython.display import Image, Markdown, display\n\n"
            "from nlpflow.notebook import views\n\n"
            f"REV = {rev!r}  # None: the workspace; else the commit whose outputs are read\n"
            f"LABEL = {label!r}  # what the command was given: the workspace, a name, a revision\n"
            f"COMPARE = {compare!r}  # an experiment to test this one against, or None\n"
            "files = views.ProjectFiles(REV)  # paths below are relative to the project root\n"
            'params = yaml.safe_load(files.text("params.yaml"))\n'
            'data = files.json("metrics/preprocess.json")\n'
            'train = files.json("metrics/train.json")\n'
            'evaluate = files.json("metrics/evaluate.json")\n'
            'errors = files.json("metrics/error_analysis.json")\n'
            'LEVEL = params.get("evaluate", {}).get("confidence_level", 0.95)\n\n\n'
            "def show(text):\n"
            "    display(Markdown(text))\n\n\n"
            "def show_png(path):\n"
            "    if files.exists(path):\n"
            "        display(Image(data=files.bytes(path)))\n"
            "    else:\n"
            '        show(f"*{path}: not written at {files.where}*")',
        ),
        # ------------------------------------------------------------------ 1 introduction
        (
            "markdown",
            f"{heading(1)}\n\nThe task, the data, the method and the results in a few lines.",
        ),
        (
            "code",
            'test = evaluate["test"]\n'
            "metric = views.primary_metric(test)\n"
            'ci = test.get("ci", {}).get(metric)\n'
            'sizes = ", ".join(f"{split} {s[\'rows\']}" for split, s in data["splits"].items())\n'
            'model = params["model"].get("name_or_path") or (\n'
            "    f\"a BERT built from its config ({params['model'].get('num_layers')} layers, \"\n"
            "    f\"hidden size {params['model'].get('hidden_size')})\"\n"
            ")\n"
            "show(\n"
            '    "\\n".join(\n'
            "        [\n"
            "            f\"- **Task:** {data['task']} classification into {len(data['label_names'])} labels: \"\n"
            "            f\"{', '.join(map(str, data['label_names']))}\",\n"
            "            f\"- **Data:** `{data['source']}`, rows per split: {sizes}\",\n"
            "            f\"- **Method:** {model}, trained {train['epochs_run']} epochs \"\n"
            "            f\"({train['steps']} steps); stopped: {train['stop_reason']}\",\n"
            '            f"- **Result:** test {metric} {views.fmt(test[metric])}"\n'
            "            + (f\" ({views.fmt(ci['low'])} – {views.fmt(ci['high'])})\" if ci else \"\"),\n"
            '            views.margin_summary(evaluate, "test"),\n'
            '            views.weakest_slice(errors, "test", LEVEL),\n'
            "        ]\n"
            "    )\n"
            ")",
        ),
        # ------------------------------------------------------------------ 2 setup
        (
            "markdown",
            f"{heading(2)}\n\nTo reproduce these results from a clone of the project:\n\n"
            f"```bash\n{reproduce}\n```\n\nThe parameters and the versions of the main "
            "libraries (those of the environment that ran this notebook) follow.",
        ),
        (
            "code",
            'packages = ["nlpflow", "torch", "transformers", "tokenizers", "datasets", "dvc",\n'
            '            "scikit-learn", "scipy", "numpy", "matplotlib", "optuna"]\n'
            'rows = [["python", platform.python_version()]]\n'
            "for name in packages:\n"
            "    try:\n"
            "        rows.append([name, metadata.version(name)])\n"
            "    except metadata.PackageNotFoundError:\n"
            '        rows.append([name, "not installed"])\n'
            'show(views.md_table(["package", "version"], rows))\n'
            'setup = train.get("setup", {})\n'
            'show(views.md_table(["training ran with", ""], list(setup.items())))',
        ),
        ("code", 'show("```yaml\\n" + files.text("params.yaml") + "```")'),
        # ------------------------------------------------------------------ 3 preprocessing
        (
            "markdown",
            f"{heading(3)}\n\nThe data card written by the preprocess stage "
            "(`reports/data.md`), then its plots.",
        ),
        ("code", 'show(views.demote(files.text("reports/data.md"), 2))'),
        (
            "code",
            'show_png("plots/data/lengths.png")\n'
            'if files.exists("plots/data/labels.json"):\n'
            '    labels = files.json("plots/data/labels.json")\n'
            "    fig, ax = plt.subplots(figsize=(6, 2.5))\n"
            "    names = [f\"{r['split']}: {r['label']}\" for r in labels]\n"
            '    ax.barh(names, [r["count"] for r in labels])\n'
            '    ax.invert_yaxis(); ax.set_xlabel("examples"); ax.set_title("Labels per split")\n'
            "    plt.show()",
        ),
        # ------------------------------------------------------------------ 4 model
        (
            "markdown",
            f"{heading(4)}\n\nThe model and tokenizer parameters, what tokenization did to "
            "the texts, and the batch size the probe chose.",
        ),
        (
            "code",
            'show("```yaml\\n" + views.params_subset(params, ["model", "tokenizer"]) + "```")\n'
            'if files.exists("metrics/tokenize.json"):\n'
            '    tok = files.json("metrics/tokenize.json")\n'
            "    rows = [\n"
            '        [split, s.get("truncated_fraction"), s.get("unknown_token_rate"),\n'
            '         s.get("length_p50"), s.get("length_p95"), s.get("length_max")]\n'
            '        for split, s in tok.get("splits", {}).items()\n'
            "    ]\n"
            "    show(f\"Vocabulary {tok.get('vocab_size')}, max length {tok.get('max_length')}\")\n"
            '    show(views.md_table(["split", "truncated", "unknown tokens", "p50", "p95", "max"], rows))\n'
            'if files.exists("metrics/probe.json"):\n'
            '    probe = files.json("metrics/probe.json")\n'
            "    show(f\"Probe on {probe.get('device')}: batch size {probe.get('batch_size')} x \"\n"
            "         f\"{probe.get('accumulation_steps')} accumulation steps = effective batch \"\n"
            "         f\"{probe.get('effective_batch_size')} (largest that fits: \"\n"
            "         f\"{probe.get('max_fitting_batch_size')})\")",
        ),
        # ------------------------------------------------------------------ 5 training
        (
            "markdown",
            f"{heading(5)}\n\nWhy training stopped, the best epoch, the learning curves and "
            "the diagnosis of the loss curves.",
        ),
        (
            "code",
            'monitor = train.get("monitor", {})\n'
            "show(\n"
            "    f\"- **Stopped:** {train['stop_reason']}: {train.get('stop_detail', '')}\\n\"\n"
            "    f\"- **Epochs run:** {train['epochs_run']}, steps {train['steps']}\\n\"\n"
            "    f\"- **Best:** epoch {train.get('best_epoch')} by validation \"\n"
            "    f\"{monitor.get('metric')} ({monitor.get('mode')}) = {views.fmt(monitor.get('best'))}\"\n"
            ")",
        ),
        (
            "code",
            'epochs = files.tsv("plots/train/epochs.tsv")\n'
            'steps = files.tsv("plots/train/steps.tsv")\n'
            "fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))\n"
            'x = [r["epoch"] for r in epochs]\n'
            'for key in ("train_loss", "val_loss"):\n'
            "    if epochs and key in epochs[0]:\n"
            '        axes[0].plot(x, [r[key] for r in epochs], marker="o", label=key)\n'
            'for key in [k for k in (epochs[0] if epochs else {}) if k.startswith("val_") and k != "val_loss"]:\n'
            '    axes[1].plot(x, [r[key] for r in epochs], marker="o", label=key)\n'
            'axes[2].plot([r["step"] for r in steps], [r["loss"] for r in steps], lw=0.8, label="loss per step")\n'
            'for ax, title in zip(axes, ("loss per epoch", "validation metrics per epoch", "training loss per step")):\n'
            "    ax.set_title(title); ax.legend(); ax.grid(alpha=0.3)\n"
            'axes[0].set_xlabel("epoch"); axes[1].set_xlabel("epoch"); axes[2].set_xlabel("step")\n'
            "plt.show()",
        ),
        (
            "code",
            'health = train.get("health", {})\n'
            "rows = [\n"
            '    [rule, f.get("severity"), f.get("message"), f.get("try", "")]\n'
            '    for rule, f in health.get("rules", {}).items()\n'
            "]\n"
            "show(f\"Health: **{health.get('status', 'not diagnosed')}**, {health.get('findings', 0)} finding(s)\")\n"
            "if rows:\n"
            '    show(views.md_table(["rule", "severity", "finding", "what to try"], rows))',
        ),
        # ------------------------------------------------------------------ 6 evaluation
        (
            "markdown",
            f"{heading(6)}\n\nEvery metric of the model with its bootstrap interval, beside "
            "the baselines (fitted on train, scored on the same split); then the confusion "
            "matrix and the calibration of the test split.",
        ),
        (
            "code",
            'for split in [s for s in ("test", "validation") if s in evaluate]:\n'
            "    show(views.evaluation_table(evaluate, split, LEVEL))\n"
            'if "threshold" in evaluate:\n'
            "    show(f\"Decision threshold: {evaluate['threshold']}\")",
        ),
        (
            "code",
            'show_png("plots/evaluate/confusion_test.png")\n'
            'show_png("plots/evaluate/confusion_normalized_test.png")',
        ),
        (
            "code",
            "show(f\"Expected calibration error (test): {views.fmt(evaluate['test'].get('ece'))}\")\n"
            'show_png("plots/evaluate/calibration_test.png")',
        ),
        # ------------------------------------------------------------------ 7 error analysis
        (
            "markdown",
            f"{heading(7)}\n\nWhat the model gets wrong: the misclassified examples, accuracy "
            "per slice and the behavioural tests (from `reports/errors.md` and "
            "`metrics/error_analysis.json`).",
        ),
        (
            "code",
            'report = files.text("reports/errors.md")\n'
            'for section in ("Confusion pairs", "Misclassified examples"):\n'
            "    body = views.markdown_section(report, section)\n"
            "    if body:\n"
            '        show(f"#### {section}\\n\\n" + views.demote(body, 2))',
        ),
        (
            "code",
            'show(views.slices_table(errors, "test"))\n'
            'show_png("plots/error_analysis/slices_test.png")',
        ),
        ("code", 'show(views.behaviour_table(errors, "test"))'),
        # ------------------------------------------------------------------ 8 interpretation
        (
            "markdown",
            f"{heading(8)}\n\nThe facts to reason from: the margin over the best baseline, "
            "the weakest slice, the failing behavioural tests and, when an experiment to "
            "compare with was given, whether the difference is significant on the same "
            "test examples (`nlpflow compare`: paired bootstrap and McNemar's test).",
        ),
        (
            "code",
            'lines = [views.margin_summary(evaluate, split) for split in ("test", "validation") if split in evaluate]\n'
            'lines.append(views.weakest_slice(errors, "test", LEVEL))\n'
            'failing = [name.replace("_", " ") for name, t in errors.get("test", {}).get("behaviour", {}).items() if t.get("failed")]\n'
            'lines.append("- failing behavioural tests: " + ("; ".join(failing) if failing else "none"))\n'
            'show("\\n".join(lines))',
        ),
        (
            "code",
            "if COMPARE is None:\n"
            '    show("No experiment to compare with: `nlpflow notebook REV --compare OTHER` adds "\n'
            '         "the paired comparison here.")\n'
            "else:\n"
            "    from nlpflow.evaluation.compare import compare, read_side, render\n\n"
            '    here = read_side("workspace" if REV is None else REV, "test", files.root)\n'
            "    here.name = LABEL\n"
            '    other = read_side(COMPARE, "test", files.root)\n'
            "    show(views.demote(render(compare(other, here), max_flips=5), 2))",
        ),
        # ------------------------------------------------------------------ 9 tools
        (
            "markdown",
            f"{heading(9)}\n\n"
            "| tool | used for |\n|---|---|\n"
            "| DVC | the pipeline (`dvc repro`), experiments, metrics and plots |\n"
            "| PyTorch, transformers, tokenizers | the model, its tokenizer, training |\n"
            "| datasets, pyarrow | the processed and tokenized splits |\n"
            "| scikit-learn, scipy | metrics, baselines, statistical tests |\n"
            "| matplotlib | the figures |\n"
            "| Optuna | hyperparameter search (`nlpflow tune`) |\n"
            "| nbformat, nbclient, ipykernel | this notebook, executed top to bottom |\n\n"
            "Versions are in the Setup section.",
        ),
    ]


def build(label: str, rev: str | None, compare: str | None, command: str) -> Any:
    """The unexecuted notebook (an ``nbformat`` NotebookNode) with fixed cell ids."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "nlpflow": {"rev": rev, "label": label, "compare": compare},
    }
    for i, (kind, source) in enumerate(_cells(label, rev, compare, command)):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(make(source, id=f"cell-{i:02d}"))
    return nb


def execute(nb: Any, root: Path, timeout: int) -> None:
    """Run every cell in ``root`` on this interpreter's IPython kernel; UserError on failure.

    The kernel spec lives in a temporary directory (nothing is installed for Jupyter), so the
    kernel is ``sys.executable`` whatever kernels the machine has registered."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    with tempfile.TemporaryDirectory(prefix="nlpflow-kernel-") as tmp:
        spec = Path(tmp) / "nlpflow"
        spec.mkdir()
        # Kernel log at ERROR: its TCP-without-encryption warning is for remote kernels; this
        # one listens on localhost only, and cell errors come back as outputs, not logs.
        argv = [
            sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
            "--IPKernelApp.log_level=ERROR",
        ]  # fmt: skip
        (spec / "kernel.json").write_text(
            json.dumps({"argv": argv, "display_name": "nlpflow", "language": "python"})
        )
        specs = KernelSpecManager(kernel_dirs=[tmp], ensure_native_kernel=False)
        km = KernelManager(kernel_name="nlpflow", kernel_spec_manager=specs)
        client = NotebookClient(
            nb,
            km=km,
            timeout=timeout,
            record_timing=False,
            resources={"metadata": {"path": str(root)}},
        )
        try:
            client.execute(cwd=str(root))
        except CellExecutionError as err:
            last = [line for line in str(err).splitlines() if line.strip()][-1:]
            raise UserError(
                f"a notebook cell failed ({_section_of(nb, err)}): {' '.join(last)}"
            ) from None
        except (CellTimeoutError, DeadKernelError) as err:
            raise UserError(
                f"the notebook did not finish: {str(err).splitlines()[0]} (--timeout {timeout})"
            ) from None


def _section_of(nb: Any, err: Exception) -> str:
    """The section of the first cell whose output holds an error."""
    section = "before the first section"
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            section = cell.source.splitlines()[0][3:]
        if cell.cell_type == "code" and any(
            o.get("output_type") == "error" for o in cell.get("outputs", [])
        ):
            return section
    return section


def resolve(rev: str | None, root: Path) -> str | None:
    """The commit sha of a git revision or DVC experiment name; None for the workspace."""
    if rev is None or rev == "workspace":
        return None
    from nlpflow.revisions import resolve as resolve_spec

    try:
        return resolve_spec(root, rev).sha
    except UserError:
        raise UserError(f"'{rev}' is neither a git revision nor a DVC experiment name") from None


def write(
    rev: str | None = None,
    compare: str | None = None,
    out: str | Path = DEFAULT_OUT,
    root: str | Path | None = None,
    timeout: int = 600,
) -> Path:
    """Build, execute and atomically write the notebook; returns its path.

    ``out`` is relative to the project root unless absolute. Raises UserError when a
    required output is missing at that revision or a cell fails (nothing is written)."""
    import nbformat

    from nlpflow.io import write_text
    from nlpflow.notebook.views import ProjectFiles, find_project

    project = find_project(root)
    sha = resolve(rev, project)
    files = ProjectFiles(sha, project)
    missing = [path for path in REQUIRED if not files.exists(path)]
    if missing:
        raise UserError(f"{', '.join(missing)} not found at {files.where}: run `dvc repro` first")
    label = "workspace" if sha is None else str(rev)
    command = " ".join(
        [
            "nlpflow notebook",
            *([str(rev)] if sha else []),
            *(["--compare", compare] if compare else []),
        ]
    )
    nb = build(label, sha, compare, command)
    execute(nb, project, timeout)
    path = Path(out) if Path(out).is_absolute() else project / out
    write_text(path, nbformat.writes(nb) + "\n")
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "rev",
        nargs="?",
        default=None,
        help="a git revision or DVC experiment name whose outputs to read (default: the workspace)",
    )
    parser.add_argument(
        "--compare",
        default=None,
        metavar="REV",
        help="an experiment or revision to test this one against (paired bootstrap, McNemar)",
    )
    parser.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help="where to write it, relative to the project root (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=int, default=600, help="seconds a cell may run (default: %(default)s)"
    )


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    path = write(args.rev, args.compare, args.out, timeout=args.timeout)
    print(f"notebook: {path} ({time.perf_counter() - start:.1f} s)")
    return 0
