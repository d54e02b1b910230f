"""The report of a real (tiny) run, opened in a real headless Chromium: every image decodes, no
script error, the topic map answers the mouse, the slides answer the keyboard and print one
slide a page. A missing Chromium fails these tests with the install command (never a skip)."""

import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from ycng_jax import experiments
from ycng_jax.report import build_report

from headless_chromium import Browser, chromium_binary
from report_workdirs import bench_result, make_workdir, topic_map

TINY = {"num_epochs": "1", "train_examples": "320", "test_examples": "128", "batch_size": "64",
        "verbose": "0", "tensorboard": "False", "log_every_steps": "1"}
IMAGES_OK = "Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
  root = tmp_path_factory.mktemp("report")
  run = root / "quickstart"
  experiments.run("quickstart/mlp_digits", run, TINY)
  record = json.loads((run / "run.json").read_text())
  assert record["finished"] is True and record["ended"] >= record["started"]
  assert record["command"].startswith(f"ycng run quickstart/mlp_digits --workdir {run} "
                                      "--config.num_epochs=1 ")
  topics = make_workdir(root / "topics", records=[{"step": 0, "final": True, "documents": 600}])
  (topics / "topic_map.json").write_text(json.dumps(topic_map(600)))
  (root / "bench").mkdir()
  (root / "bench" / "bench.json").write_text(json.dumps(bench_result()))
  written = build_report([run, topics, root / "bench"], root / "out", slides=True)
  return {"out": root / "out", **written}


def _pixel_std(png: bytes) -> float:
  return float(np.asarray(Image.open(io.BytesIO(png)).convert("L"), np.float32).std())


def test_pages_load_every_image_without_script_errors(report):
  pages = sorted(p.name for p in report["out"].glob("*.html") if p.name != "slides.html")
  assert pages == ["bench-quick.html", "index.html", "quickstart_mlp_digits-quickstart.html",
                   "topics.html"]
  index = report["index"].read_text()
  assert all(f"href='{p}'" in index for p in pages if p != "index.html")
  assert not re.search(r"(src|href)=['\"]?(https?:)?//", "".join(
      (report["out"] / p).read_text() for p in pages))  # nothing from the network
  with Browser() as browser:
    for name in pages:
      browser.open((report["out"] / name).as_uri())
      loaded = browser.evaluate(IMAGES_OK)
      assert all(loaded), (name, loaded)
      assert browser.errors() == [], name
      if name.startswith("quickstart"):
        # the curves from metrics.jsonl and the run's curves.png
        assert len(loaded) == 2
        title = browser.evaluate("document.querySelector('h1').textContent")
        assert title.startswith("quickstart/mlp_digits")
        assert _pixel_std(browser.screenshot()) > 20  # a rendered page, not a blank one


def test_topic_map_shows_a_points_text_on_hover(report):
  with Browser() as browser:
    browser.open((report["out"] / "topics.html").as_uri())
    assert browser.evaluate("document.querySelector('.tm-tip').hidden") is True
    point = browser.evaluate("""(() => {
      const c = document.querySelectorAll('.tm-points circle')[7];
      c.scrollIntoView({block: 'center'});
      const r = c.getBoundingClientRect();
      return {x: r.left + r.width / 2, y: r.top + r.height / 2, text: c.dataset.text};
    })()""")
    browser.move_mouse(point["x"], point["y"])
    tip = browser.evaluate("(() => { const t = document.querySelector('.tm-tip');"
                           " return {hidden: t.hidden, text: t.textContent}; })()")
    assert tip["hidden"] is False and tip["text"].endswith(point["text"])
    assert tip["text"].startswith(("film, movie, plot: ", "python, library: ", "game, player: "))
    assert browser.errors() == []


def test_slides_follow_the_keyboard_and_print_one_slide_a_page(report):
  with Browser(1280, 720) as browser:
    browser.open(report["slides"].as_uri())
    count = browser.evaluate("document.querySelectorAll('.slide').length")
    current = lambda: int(browser.evaluate("document.body.dataset.slide"))  # noqa: E731
    visible = "Array.from(document.querySelectorAll('.slide')).filter(s => s.offsetParent).length"
    assert current() == 0 and browser.evaluate(visible) == 1
    browser.press("ArrowRight", "ArrowRight", 39)
    assert current() == 1 and browser.evaluate("location.hash") == "#2"
    browser.press(" ", "Space", 32, text=" ")
    assert current() == 2
    browser.press("PageUp", "PageUp", 33)
    assert current() == 1
    browser.press("End", "End", 35)
    assert current() == count - 1
    browser.press("ArrowRight", "ArrowRight", 39)
    assert current() == count - 1  # stays on the last slide
    browser.press("Home", "Home", 36)
    assert current() == 0 and browser.evaluate(visible) == 1
    assert all(browser.evaluate(IMAGES_OK)) and browser.errors() == []
    pdf = browser.print_pdf()
  assert pdf.startswith(b"%PDF") and count > 8
  assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == count


def test_a_missing_chromium_fails_with_the_install_command(monkeypatch, tmp_path):
  monkeypatch.setenv("PATH", str(tmp_path))
  monkeypatch.delenv("YCNG_CHROMIUM", raising=False)
  with pytest.raises(pytest.fail.Exception, match=r"bash scripts/install.sh --test"):
    chromium_binary()
