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
  // What a plot shows: its data marks (role "mark", not groups, not the template's layers
  // named reference_*, which draw no data; items at a finite position) and the distinct
  // positions they are drawn at.
  // Axes, legends and titles draw even without data.
  function inspect(root) {
    var found = { marks: 0, positions: {} };
    function walk(mark) {
      var reference = /^reference/.test(mark.name || "");
      (mark.items || []).forEach(function (item) {
        var drawn = isFinite(item.x) && isFinite(item.y) && item.defined !== false;
        if (mark.marktype !== "group" && mark.role === "mark" && !reference && drawn) {
          found.marks += 1;
          found.positions[Math.round(item.x || 0) + "," + Math.round(item.y || 0)] = true;
        }
        (item.items || []).forEach(function (child) { walk(child); });
      });
    }
    walk(root);
    return found;
  }
  var embed = window.vegaEmbed;
  window.vegaEmbed = function (el, spec, opts) {
    var options = Object.assign({ renderer: "svg", actions: false }, opts || {});
    var done = embed(el, spec, options);
    done.then(function (result) {
      var item = log("plots", el);
      var found = inspect(result.view.scenegraph().root);
      item.setAttribute("data-marks", String(found.marks));
      item.setAttribute("data-positions", String(Object.keys(found.positions).length));
      // x and y scales whose domain is one value: the axis has one tick, the data collapse.
      var flat = (result.vgSpec.scales || []).filter(function (s) {
        if (s.name !== "x" && s.name !== "y") { return false; }
        if (["linear", "log", "pow", "sqrt", "symlog", "time", "utc"].indexOf(s.type) < 0) {
          return false;
        }
        var domain = result.view.scale(s.name).domain();
        return domain.length < 2 || domain[0] === domain[domain.length - 1];
      });
      item.setAttribute("data-flat", flat.map(function (s) { return s.name; }).join(" "));
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


@pytest.fixture
def project(reproduced_project: Path) -> Path:
    """The tiny project, reproduced and committed (the baseline of experiments)."""
    return reproduced_project


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


def render_plots(
    repo: Path, scripts: Path, tmp_path: Path, targets: list[str] | None = None, *args: str
) -> list[tuple[str, str]]:
    """``(attributes, plot id)`` of each plot that `dvc plots show` drew in Chromium.

    Fails on a script error on the page or a script tag left to fetch."""
    template = tmp_path / "offline.html"
    template.write_text(offline_template(scripts), encoding="utf-8")
    out = tmp_path / "plots"
    cmd = ["dvc", "plots", "show", *(targets or []), *args]
    run([*cmd, "--html-template", str(template), "-o", str(out)], repo)
    page = out / "index.html"
    assert "<script src=" not in page.read_text(encoding="utf-8")  # nothing to fetch
    dom = render_dom(page, tmp_path / "profile")
    errors = [t for _, t in list_items(dom, "nlpflow-errors")]
    assert errors == [], f"script errors on the plots page: {errors}"
    # Each plot's container holds the SVG Vega drew.
    plots = list_items(dom, "nlpflow-plots")
    assert dom.count('class="marks"') >= len(plots)
    return plots


def problems(attrs: str) -> list[str]:
    """Why a drawn plot shows nothing a reader can use (empty when it is fine): an error,
    no data marks, every data mark at one point, or an x or y axis whose data collapse to
    one value (one tick). Reference layers (perfect calibration) do not count."""
    if "data-error" in attrs:
        return [f"error {attrs}"]
    found = dict(re.findall(r'data-([a-z]+)="([^"]*)"', attrs))
    out = []
    if int(found["marks"]) == 0:
        out.append("no data marks")
    elif int(found["positions"]) < 2:
        out.append("a single point")
    if found["flat"]:
        out.append(f"one tick on the {found['flat']} axis (every value the same)")
    return out


def test_every_declared_plot_draws_in_headless_chromium(
    project: Path, browser: Path, tmp_path: Path
) -> None:
    declared = yaml.safe_load((project / "dvc.yaml").read_text())["plots"]
    titles = [next(iter(p)) if isinstance(p, dict) else str(p) for p in declared]
    plots = render_plots(project, browser, tmp_path)
    assert len(plots) == len(titles), (
        f"{len(plots)} plots rendered, {len(titles)} declared: {titles}"
    )
    bad = {target: problems(attrs) for attrs, target in plots if problems(attrs)}
    assert bad == {}, f"plots that show nothing: {bad}"
    for title in ("Confusion matrix (test)", "ROC (test)", "Calibration (test)"):
        assert title in titles


def test_the_render_check_fails_an_empty_or_single_point_plot(
    browser: Path, tmp_path: Path
) -> None:
    # The test above must be able to fail: before the calibration template, a model whose
    # every prediction had about the same confidence drew one bin as a one-point line on
    # axes with one tick. That plot is flagged; the same bin in the project's template shows
    # the diagonal on [0, 1] axes and passes.
    from tests.conftest import ROOT

    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots")
    one_bin = [
        {"bin_lower": 0.8, "bin_upper": 0.9, "confidence": 0.886, "accuracy": 0.852, "n": 399}
    ]
    (repo / "one_bin.json").write_text(json.dumps(one_bin))
    # Rows whose values are missing: Vega drops them and draws axes around nothing.
    blank = [{"confidence": None, "accuracy": None}] * 2
    (repo / "blank.json").write_text(json.dumps(blank))
    (repo / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "plots": [
                    {"old": {"template": "simple", "x": "confidence", "y": {"one_bin.json": "accuracy"}}},
                    {"new": {"template": "calibration", "x": "confidence", "y": {"one_bin.json": "accuracy"}}},
                    {"blank": {"template": "simple", "x": "confidence", "y": {"blank.json": "accuracy"}}},
                ]
            }
        )
    )  # fmt: skip
    plots = dict(
        (target, problems(attrs)) for attrs, target in render_plots(repo, browser, tmp_path)
    )
    assert len(plots) == 3
    old, new, blank = (
        next(v for k, v in plots.items() if name in k) for name in ("old", "new", "blank")
    )
    assert old == ["a single point", "one tick on the x y axis (every value the same)"]
    assert new == []
    assert blank[0] == "no data marks"


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
