"""index.html in a real headless browser (Debian's chromium): tables in the DOM, every image loaded."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from benchmark.reporting import write_report
from test_report import write_eval, write_per_slice, write_profile, write_run

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--virtual-time-budget=10000",
]
# Marks each <img> with whether it decoded (naturalWidth > 0) once the page has loaded.
CHECK_SCRIPT = """<script>
window.addEventListener("load", function () {
  for (const img of document.images) {
    img.setAttribute("data-loaded", img.complete && img.naturalWidth > 0 ? "yes" : "no");
  }
  document.body.setAttribute("data-checked", "yes");
});
</script>
"""


def chromium() -> str:
    """The chromium binary, or skip with the reason."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium not installed (apt-get install -y chromium); the browser check of index.html is skipped")
    return path


def run_chromium(binary: str, profile_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", *args],
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    results = tmp_path_factory.mktemp("results")
    for fold, dsc in enumerate((74.0, 76.0, 78.0)):
        write_run(results, "CT100", "miniseg", fold, dsc)
    for model, shift in (("enet", -0.2), ("espnet", -0.1), ("edanet", 0.0)):  # three complete models: CD + ranks
        for fold in range(5):
            write_run(results, "CT100", model, fold, 60.0)
            write_per_slice(results, "CT100", model, fold, shift)
    write_eval(results)
    write_profile(results, "cpu-test-2t", "miniseg", 82912, 0.5123,
                  [{"mode": "eager", "method": "events", "batch_size": 1, "throughput_img_s": 10.0}])
    out = tmp_path_factory.mktemp("reports")
    write_report(results, out)
    return out


def test_page_renders_tables_and_loads_every_image(report: Path, tmp_path: Path):
    binary = chromium()
    page = (report / "index.html").read_text(encoding="utf-8")
    checked = report / "index.checked.html"  # beside index.html, so relative image paths resolve the same way
    checked.write_text(page.replace("</body>", CHECK_SCRIPT + "</body>"), encoding="utf-8")
    proc = run_chromium(binary, tmp_path / "profile", "--dump-dom", checked.as_uri())
    dom = proc.stdout
    assert proc.returncode == 0 and 'data-checked="yes"' in dom, proc.stderr[-2000:]
    n_figures = len(list((report / "figures").glob("*.png")))
    assert n_figures >= 4
    assert len(re.findall(r"<img\b", dom)) == n_figures
    assert dom.count('data-loaded="yes"') == n_figures and 'data-loaded="no"' not in dom
    for table_id in ("efficiency", "CT100", "P9", "P20", "P1110"):
        assert f'<table id="{table_id}">' in dom
    for figure in ("cd_CT100", "rank_stability_CT100"):  # the statistics' figures, drawn and loaded
        assert (report / "figures" / f"{figure}.png").is_file() and f'id="fig-{figure}"' in dom
    assert "reference" in dom and "(p=" in dom  # the significance column of Table 5
    assert "<strong>75.91</strong>" in dom  # the paper's best DSC on CT100 (MiniSeg), marked


def test_page_screenshot_is_drawn(report: Path, tmp_path: Path):
    binary = chromium()
    shot = tmp_path / "index.png"
    proc = run_chromium(binary, tmp_path / "profile", "--window-size=1400,2400", f"--screenshot={shot}",
                        (report / "index.html").as_uri())
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    with Image.open(shot) as img:
        assert img.size == (1400, 2400)
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20) or []
        assert len(colours) > 50  # text, table shading and figures, not a blank page
