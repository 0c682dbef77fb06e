"""`dvc plots show` in headless Chromium: every plot declared in dvc.yaml must draw.

DVC's plots page loads Vega from a CDN, and nothing here reaches the network. The page is
therefore rendered with an HTML template (`dvc plots show --html-template`) that inlines the
same Vega, Vega-Lite and Vega-Embed versions, fetched beforehand from the npm registry by
``tests/browser/fetch_vega.sh`` (CI runs it from .ci/run). The template also wraps
``vegaEmbed`` so that, for each plot, the page records how many data marks Vega drew, or the
error it hit, and records every script error; Chromium's ``--dump-dom`` hands that back.

Skipped, with the reason, when Chromium or the Vega scripts are absent.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import run

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
VEGA_FILES = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Runs before DVC's plot divs: records script errors and each plot's outcome in the page.
HARNESS = """
<script>
(function () {
  function log(kind, text) {
    var list = document.getElementById("nlpflow-" + kind);
    if (!list) {
      list = document.createElement("ul");
      list.id = "nlpflow-" + kind;
      (document.body || document.documentElement).appendChild(list);
    }
    var item = document.createElement("li");
    item.textContent = text;
    list.appendChild(item);
    return item;
  }
  window.addEventListener("error", function (e) { log("errors", "error: " + e.message); });
  window.addEventListener("unhandledrejection", function (e) {
    log("errors", "unhandled rejection: " + e.reason);
  });
  // Data marks only (role "mark"): axes, legends and titles draw even without data.
  function countMarks(mark) {
    var n = 0;
    (mark.items || []).forEach(function (item) {
      if (mark.marktype !== "group" && mark.role === "mark") { n += 1; }
      (item.items || []).forEach(function (child) { n += countMarks(child); });
    });
    return n;
  }
  var embed = window.vegaEmbed;
  window.vegaEmbed = function (el, spec, opts) {
    var options = Object.assign({ renderer: "svg", actions: false }, opts || {});
    var done = embed(el, spec, options);
    done.then(function (result) {
      var item = log("plots", el);
      item.setAttribute("data-marks", String(countMarks(result.view.scenegraph().root)));
    }, function (err) {
      log("plots", el).setAttribute("data-error", String(err));
    });
    return done;
  };
})();
</script>
"""


def chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def vega_dir() -> Path:
    default = Path.home() / ".cache" / "nlpflow" / "vega"
    return Path(os.environ.get("NLPFLOW_VEGA_DIR", default))


def offline_template(scripts: Path) -> str:
    """DVC's page with the Vega scripts inlined and no ``{scripts}`` (the CDN tags)."""
    inline = "\n".join(
        f"<script>\n{(scripts / name).read_text(encoding='utf-8')}\n</script>"
        for name in VEGA_FILES
    )
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n<title>DVC Plot</title>\n'
        f"{inline}\n{HARNESS}\n</head>\n<body>\n{{plot_divs}}\n</body>\n</html>\n"
    )


def render_dom(page: Path, profile: Path) -> str:
    """The page's DOM after its scripts ran, from headless Chromium with no network."""
    binary = chromium()
    assert binary is not None
    cmd = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--metrics-recording-only",
        "--mute-audio",
        # Any host name resolves to nothing: a script that tried the network would fail.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=30000",
        "--dump-dom",
        page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc.stdout


def list_items(dom: str, list_id: str) -> list[tuple[str, str]]:
    """``(attributes, text)`` of each ``<li>`` in the ``<ul id=list_id>`` of the dumped DOM."""
    block = re.search(rf'<ul id="{list_id}">(.*?)</ul>', dom, re.S)
    if block is None:
        return []
    return [
        (attrs, html.unescape(text))
        for attrs, text in re.findall(r"<li([^>]*)>(.*?)</li>", block.group(1), re.S)
    ]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny copy of the project, reproduced and committed (the baseline of experiments)."""
    from tests.conftest import make_project

    repo = make_project(tmp_path_factory.mktemp("reproduced"))
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "baseline run"], repo)
    return repo


@pytest.fixture
def browser() -> Path:
    """The Vega scripts' directory; skips when Chromium or the scripts are absent."""
    if chromium() is None:
        pytest.skip(
            "Chromium not found: install Debian's chromium package "
            "(apt-get install -y chromium) to render the plots page"
        )
    scripts = vega_dir()
    missing = [name for name in VEGA_FILES if not (scripts / name).is_file()]
    if missing:
        pytest.skip(
            f"Vega scripts {missing} not in {scripts}: run `bash tests/browser/fetch_vega.sh` "
            "(DVC's page loads them from a CDN, and the test renders offline)"
        )
    return scripts


def test_dvc_default_page_loads_vega_from_a_cdn(project: Path, tmp_path: Path) -> None:
    # Why the test needs its own template: DVC's page fetches Vega from the network.
    run(["dvc", "plots", "show", "-o", str(tmp_path / "default")], project)
    page = (tmp_path / "default" / "index.html").read_text(encoding="utf-8")
    sources = re.findall(r'<script src="([^"]+)"', page)
    assert sources and all(s.startswith("https://cdn.jsdelivr.net/npm/vega") for s in sources)


def test_every_declared_plot_draws_in_headless_chromium(
    project: Path, browser: Path, tmp_path: Path
) -> None:
    template = tmp_path / "offline.html"
    template.write_text(offline_template(browser), encoding="utf-8")
    out = tmp_path / "plots"
    run(["dvc", "plots", "show", "--html-template", str(template), "-o", str(out)], project)
    page = out / "index.html"
    text = page.read_text(encoding="utf-8")
    assert "<script src=" not in text  # everything inline: nothing to fetch

    dom = render_dom(page, tmp_path / "profile")
    errors = [t for _, t in list_items(dom, "nlpflow-errors")]
    assert errors == [], f"script errors on the plots page: {errors}"

    declared = yaml.safe_load((project / "dvc.yaml").read_text())["plots"]
    titles = [next(iter(p)) if isinstance(p, dict) else str(p) for p in declared]
    plots = list_items(dom, "nlpflow-plots")
    assert len(plots) == len(titles), (
        f"{len(plots)} plots rendered, {len(titles)} declared: {titles}"
    )
    for attrs, target in plots:
        assert "data-error" not in attrs, f"{target}: {attrs}"
        marks = int(re.search(r'data-marks="(\d+)"', attrs).group(1))  # type: ignore[union-attr]
        assert marks > 0, f"plot {target} drew no data marks"
    # Each plot's container holds the SVG Vega drew.
    assert dom.count('class="marks"') >= len(titles)
    for title in ("Confusion matrix (test)", "ROC (test)", "Calibration (test)"):
        assert title in titles


def test_metrics_diff_lists_the_new_metrics_and_compare_reads_experiments(project: Path) -> None:
    # A tuned decision threshold reruns evaluate and error_analysis only, and moves predictions.
    run(["dvc", "exp", "run", "-n", "tuned", "-S", "evaluate.tune_threshold=true"], project)
    diff = json.loads(
        run(["dvc", "metrics", "diff", "main", "tuned", "--all", "--json"], project).stdout
    )
    evaluate = diff["metrics/evaluate.json"]
    for key in (
        "test.accuracy", "test.balanced_accuracy", "test.f1_macro", "test.mcc", "test.pr_auc",
        "test.roc_auc", "test.ece", "test.ci.accuracy.low", "test.ci.f1_macro.high",
        "test.baselines.tfidf_logreg.accuracy", "test.baselines.majority.margin.accuracy",
        "test.at_threshold.tuned.f1", "threshold.tuned",
    ):  # fmt: skip
        assert key in evaluate, key
    behaviour = [k for k in diff["metrics/error_analysis.json"] if ".behaviour." in k]
    assert any(k.endswith("failure_rate") for k in behaviour)

    # The experiment comparison reads both predictions files from the DVC cache by name.
    out = run(["nlpflow", "compare", "main", "tuned", "--json", "--resamples", "200"], project)
    result = json.loads(out.stdout)
    test_n = json.loads((project / "metrics" / "evaluate.json").read_text())["test"]["n"]
    assert result["n"] == test_n and result["b"]["name"] == "tuned"
    assert {"accuracy", "f1_macro"} <= set(result["metrics"])
    assert result["mcnemar"]["b"] == result["right_to_wrong"]
    text = run(["nlpflow", "compare", "main", "tuned", "--resamples", "200"], project).stdout
    assert text.startswith("# tuned vs main") and "McNemar" in text
