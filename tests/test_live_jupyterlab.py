"""A reader's live session, in a real browser: JupyterLab from the project's environment, one chapter run top to bottom.

Starts ``jupyter lab`` (from the interpreter running the tests, with the same
``book/_jupyter`` configuration as ``make lab``) on 127.0.0.1, on a free port,
with a random token, no browser, and its own temporary config, runtime, data,
settings and workspace folders. Headless Chromium (Debian's, through
playwright) then does what the README tells a reader to do:

1. open JupyterLab, double-click ``book`` and then the chapter's ``.md`` in
   the file browser: it opens as a notebook (jupytext's viewer is the
   default for Markdown);
2. **Run > Run All Cells** from the menu bar;
3. wait for the explorer to draw its plotly figure, then move the explorer's
   K slider with the keyboard and check that the drawn bars (the SVG path
   data of the plotly trace) changed.

Every request that leaves 127.0.0.1 is blocked and recorded; the list must
be empty. Autosave is on (every 5 s): after Run All and an autosave the chapter file must be
byte-identical (book/_jupyter's contents manager writes only what a reader edited).
The server and its kernels are shut down even when the test fails.
Screenshots before and after the slider move are saved under the test's
temporary folder (printed with ``-s``), as is the test's wall time.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jupytext
import pytest
from traitlets.config import Config

from conftest import REPO, local_only_page

#: The chapter the reader opens, and the explorer's figure inside the widget Output.
CHAPTER = "baselines.md"
EXPLORER_PLOT = ".widget-output .js-plotly-plot"
#: Settings for this test only: autosave on (as for a reader) but every 5 s instead of every 2 min, so the
#: test can wait for an autosave after Run All; the news and update checks are off in book/_jupyter itself.
#: Windowing off: every cell of the notebook stays in the page, so the test can read every Markdown cell.
TEST_LAB_SETTINGS = {"@jupyterlab/docmanager-extension:plugin": {"autosave": True, "autosaveInterval": 5},
                     "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"}}
SERVER_CONFIG: dict[str, object] = {}
#: The notebook's tab while it has unsaved changes.
DIRTY_TAB = ".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-dirty"
STARTUP_S = 120
RUN_ALL_MS = 600_000
STEP_MS = 60_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, token: str, path: str, method: str = "GET") -> object:
    req = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
    return json.loads(body) if body else None


class LabServer:
    """A running ``jupyter lab``: base URL, token, process and log file."""

    def __init__(self, root: Path, glue_build: Path | None = None) -> None:
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        dirs = {name: root / name for name in ("config", "runtime", "data", "settings", "workspaces", "overrides")}
        for d in dirs.values():
            d.mkdir(parents=True)
        (dirs["overrides"] / "labconfig").mkdir()
        (dirs["overrides"] / "labconfig" / "default_setting_overrides.json").write_text(json.dumps(TEST_LAB_SETTINGS))
        (dirs["config"] / "jupyter_server_config.json").write_text(json.dumps(SERVER_CONFIG))
        env = {k: v for k, v in os.environ.items() if k not in ("MAXPO_BOOK_BUILD", "JUPYTER_PLATFORM_DIRS")}
        env.update(
            JUPYTER_CONFIG_DIR=str(dirs["config"]),
            JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
            JUPYTER_DATA_DIR=str(dirs["data"]),
            # the repository's lab configuration (what `make lab` uses), then this test's settings
            JUPYTER_CONFIG_PATH=os.pathsep.join([str(REPO / "book" / "_jupyter"), str(dirs["overrides"])]),
            PYTHONPATH=os.pathsep.join(p for p in [str(REPO), env.get("PYTHONPATH", "")] if p),
            MAXPO_QUICK="1",
        )
        if glue_build is not None:  # the build whose glued numbers the chapters' prose shows
            env["MAXPO_GLUE_BUILD"] = str(glue_build)
        self.log_path = root / "jupyterlab.log"
        self._log = self.log_path.open("w")
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={REPO}",
               f"--LabApp.user_settings_dir={dirs['settings']}", f"--LabApp.workspaces_dir={dirs['workspaces']}"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")  # the CI and development machines run as root
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                _api(self.base, self.token, "/api/status")
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"jupyter lab did not answer within {STARTUP_S} s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        """Shut down every kernel and the server through the API, then make sure the process group is gone."""
        try:
            for kernel in _api(self.base, self.token, "/api/kernels") or []:
                _api(self.base, self.token, f"/api/kernels/{kernel['id']}", method="DELETE")
            _api(self.base, self.token, "/api/shutdown", method="POST")
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=15)
            self._log.close()


@pytest.fixture
def lab_server(tmp_path: Path, built_book: Any) -> Iterator[LabServer]:
    assert built_book.returncode in (0, None), "the book build failed"
    server = LabServer(tmp_path / "lab", glue_build=built_book.html.parent)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def chromium_page(browser: object) -> Iterator[tuple[object, list[str], list[str]]]:
    """A Chromium page that may talk to 127.0.0.1 only; yields (page, blocked requests, JS errors)."""
    with local_only_page(browser, 1400, 1300) as (page, blocked, errors):
        yield page, blocked, errors


def _plot_paths(page: object) -> str:
    """The SVG path data of every trace the explorer's figure draws."""
    return page.evaluate(
        f"""() => Array.from(document.querySelectorAll('{EXPLORER_PLOT} g.trace path'))
                 .map(p => p.getAttribute('d')).join('|')""")


def _accept_dialogs(page: object) -> None:
    """Accept JupyterLab's dialogs as a reader would (its "Select Kernel" dialog offers Python 3)."""
    buttons = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
    while buttons.count():
        buttons.first.click()
        page.wait_for_timeout(300)


def _wait_until(page: object, condition_js: str, timeout_ms: int, what: str) -> None:
    """Poll ``condition_js`` in the page (accepting dialogs meanwhile) until it holds."""
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        _accept_dialogs(page)
        if page.evaluate(condition_js):
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"timed out after {timeout_ms / 1000:.0f} s waiting for {what}")


def _slider_value(page: object) -> str:
    return page.locator(".widget-slider .widget-readout").first.inner_text()


@pytest.mark.browser
@pytest.mark.jupyterlab
@pytest.mark.timeout(900)
def test_reader_runs_a_chapter_and_moves_an_explorer_slider(lab_server: LabServer, chromium_page, tmp_path: Path):
    page, blocked, errors = chromium_page
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        _run_chapter_and_move_slider(lab_server, page, blocked, errors, shots)
    except BaseException:
        page.screenshot(path=str(shots / "failure.png"))
        print(f"\nscreenshot of the failure: {shots / 'failure.png'}; server log: {lab_server.log_path}")
        raise


def _run_chapter_and_move_slider(lab_server: LabServer, page: object, blocked: list[str], errors: list[str],
                                 shots: Path) -> None:
    start = time.perf_counter()
    chapter = REPO / "book" / CHAPTER
    digest = hashlib.sha256(chapter.read_bytes()).hexdigest()

    page.goto(f"{lab_server.base}/lab?token={lab_server.token}", wait_until="load")
    listing = page.locator(".jp-DirListing-content")
    listing.locator(".jp-DirListing-itemText", has_text=re.compile(r"^book$")).dblclick(timeout=STEP_MS)
    listing.locator(".jp-DirListing-itemText", has_text=re.compile(rf"^{re.escape(CHAPTER)}$")).dblclick(
        timeout=STEP_MS)
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-CodeCell", timeout=STEP_MS)  # a notebook, not text
    assert page.locator(".jp-FileEditor").count() == 0, "the chapter opened as a text file, not as a notebook"

    _wait_until(page, "() => (document.getElementById('jp-main-statusbar') || document.body).textContent"
                      ".includes('Idle')", STEP_MS, "the kernel to start")

    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    _wait_until(page, f"() => document.querySelectorAll('{EXPLORER_PLOT} g.trace path').length > 0",
                RUN_ALL_MS, "the explorer's figure")
    _wait_until(page, "() => !Array.from(document.querySelectorAll('.jp-InputPrompt'))"
                      ".some(p => p.textContent.includes('*'))", RUN_ALL_MS, "every cell to run")
    ran_s = time.perf_counter() - start
    tracebacks = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                              has_text="Traceback").count()
    assert tracebacks == 0, "a cell of the chapter failed"
    raw, texts = _raw_myst_in_rendered_markdown(page)
    # every Markdown cell of the chapter was read (none left out of the page by windowing)
    n_markdown = sum(c.cell_type == "markdown" for c in jupytext.read(chapter).cells)
    assert len(texts) == n_markdown, f"read {len(texts)} of the chapter's {n_markdown} Markdown cells"
    assert not raw, f"MyST markup shows raw in the live notebook: {raw}"
    # the prose keeps its glued numbers: r = (0.1, 0.3, 0.5, 0.7, 0.9), K = 2; the mean of the maxima of its
    # 10 pairs is (1*0.3 + 2*0.5 + 3*0.7 + 4*0.9) / 10 = 0.70, and the signals sum to K * 0.70 = 1.40
    prose = " ".join(texts)
    assert re.search(r"sum to\s+1\.40\b", prose) and re.search(r"=\s*0\.70\b", prose), \
        "the glued numbers of the worked example are missing from the live prose"

    page.locator(".widget-slider").first.scroll_into_view_if_needed()  # the explorer's controls, figure below
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "before.png"))
    before_value, before_paths = _slider_value(page), _plot_paths(page)
    assert before_paths, "the explorer drew no trace"

    handle = page.locator(".widget-slider .noUi-handle").first
    handle.focus()
    page.keyboard.press("ArrowRight")
    _wait_until(page, f"""() => Array.from(document.querySelectorAll('{EXPLORER_PLOT} g.trace path'))
                              .map(p => p.getAttribute('d')).join('|') !== {json.dumps(before_paths)}""",
                STEP_MS, "the figure to change after the slider moved")
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "after.png"))
    after_value, after_paths = _slider_value(page), _plot_paths(page)

    # Run All and the slider made the notebook dirty; wait for autosave to save it (the tab's dirty mark
    # goes), then the chapter must still be byte-identical: nothing the reader edited, nothing written.
    _wait_until(page, f"() => document.querySelectorAll('.jp-NotebookPanel').length > 0 && "
                      f"document.querySelectorAll('{DIRTY_TAB}').length === 0", STEP_MS, "an autosave")
    assert page.locator(".jp-Dialog").count() == 0, "a dialog is open (a news pop-up or a save conflict?)"
    assert page.get_by_text(re.compile("Jupyter news", re.I)).count() == 0, "the news pop-up is shown"
    wall = time.perf_counter() - start
    print(f"\nlive JupyterLab test: chapter ran in {ran_s:.1f} s, whole test {wall:.1f} s; "
          f"K {before_value} -> {after_value}; screenshots in {shots}")
    assert int(after_value) == int(before_value) + 1
    assert after_paths != before_paths
    assert not blocked, f"requests beyond 127.0.0.1: {blocked}"
    assert not errors, f"JavaScript errors: {errors}"
    assert hashlib.sha256(chapter.read_bytes()).hexdigest() == digest, f"{CHAPTER} was modified"


#: MyST markup a reader must never see as text: directives and roles the renderer did not turn into their output.
RAW_MYST = re.compile(r":::\{|```\{|\{(?:glue:text|glue|doc|eq|ref|numref|cite:p|cite|admonition|math|figure|"
                      r"code-cell|note|warning|tip|dropdown|exercise|solution)\}")


def _raw_myst_in_rendered_markdown(page: Any) -> tuple[list[str], list[str]]:
    """Every Markdown cell of the open notebook rendered (scrolled through, since JupyterLab renders lazily),
    then each one's text searched for :data:`RAW_MYST`; returns "cell N: ...context..." for each hit, and the
    cells' rendered texts."""
    texts: list[str] = page.evaluate("""async () => {
        const cells = Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-MarkdownCell'));
        for (const cell of cells) { cell.scrollIntoView(); await new Promise(r => setTimeout(r, 30)); }
        await new Promise(r => setTimeout(r, 500));
        return cells.map(c => {
            // jupyterlab-myst renders into a .myst widget beside the (hidden) editor
            const out = c.querySelector('.jp-InputArea > .myst, .jp-RenderedMarkdown');
            return out ? out.innerText : '<not rendered>';
        });
    }""")
    assert texts, "the notebook has no Markdown cells"
    assert sum(map(len, texts)) > 2000, "the Markdown cells rendered almost no text"
    problems = [f"cell {i}: not rendered" for i, t in enumerate(texts) if t == "<not rendered>"]
    for i, text in enumerate(texts):
        for m in RAW_MYST.finditer(text):
            problems.append(f"cell {i}: ...{text[max(0, m.start() - 40):m.end() + 40]!r}...")
    return problems, texts


def test_the_raw_myst_pattern_sees_what_it_is_for() -> None:
    """The pattern the live test uses finds each kind of raw markup and leaves rendered prose alone."""
    for raw in (":::{admonition} Note", "```{code-cell} ipython3", "see {doc}`baselines`", "{glue:text}`x`",
                "eq. {eq}`zero-sum`", "{cite}`key`"):
        assert RAW_MYST.search(raw), raw
    assert not RAW_MYST.search("The advantages sum to {0}; a set {x} and f(x) = {a, b}: see Baselines (eq. 3).")


def _lab_contents_manager(root: Path) -> Any:
    """The contents manager ``make lab`` configures (book/_jupyter/jupyter_server_config.py), rooted at ``root``."""
    config_file = REPO / "book" / "_jupyter" / "jupyter_server_config.py"
    namespace: dict[str, Any] = {"get_config": Config}
    exec(compile(config_file.read_text(), str(config_file), "exec"), namespace)  # noqa: S102  (the repo's config)
    manager_class = namespace["c"].ServerApp.contents_manager_class
    return manager_class(root_dir=str(root))


def _run_async(coro: Any) -> Any:
    """``asyncio.run`` in a thread of its own: the session's Playwright driver keeps a loop running in this one."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.mark.parametrize("chapter", ["baselines.md", "objective.md"])
def test_saving_an_unedited_chapter_leaves_it_byte_identical(tmp_path: Path, chapter: str) -> None:
    """What autosave does after Run All: the notebook comes back with outputs and the kernel's metadata."""
    (tmp_path / chapter).write_bytes((REPO / "book" / chapter).read_bytes())
    original = (tmp_path / chapter).read_bytes()
    manager = _lab_contents_manager(tmp_path)
    model = _run_async(manager.get(chapter))
    assert model["type"] == "notebook"  # jupytext opens the chapter as a notebook
    nb = model["content"]
    nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb["metadata"]["language_info"] = {"name": "python", "version": "3.11.2"}
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        cell["execution_count"] = i + 1
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ran\n"}]
        cell["metadata"]["execution"] = {"iopub.status.idle": "2026-01-01T00:00:00Z"}
    _run_async(manager.save({"type": "notebook", "format": "json", "content": nb}, chapter))
    assert (tmp_path / chapter).read_bytes() == original, f"saving the unedited {chapter} rewrote it"

    # an edit by the reader is saved (jupytext writes the whole file)
    markdown = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    markdown["source"] += "\n\nA note of the reader."
    _run_async(manager.save({"type": "notebook", "format": "json", "content": nb}, chapter))
    assert "A note of the reader." in (tmp_path / chapter).read_text()


def test_make_lab_reuses_an_existing_venv(tmp_path: Path) -> None:
    """A fresh clone (its files newer than the venv's stamp) with VENV=<a venv made elsewhere>: no rebuild."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".installed").write_text("")
    os.utime(venv / ".installed", (0, 0))  # older than everything in the clone
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("Makefile", "requirements.txt", "pyproject.toml"):
        (clone / name).write_bytes((REPO / name).read_bytes())
    out = subprocess.run(["make", "-n", "lab", f"VENV={venv}"], cwd=clone, capture_output=True, text=True,
                         check=True).stdout
    assert "-m venv" not in out and "pip install" not in out, out
    assert f"{venv}/bin/jupyter lab" in out and f'PYTHONPATH="{clone}' in out, out
    # a machine without the venv still gets it made first
    fresh = subprocess.run(["make", "-n", "lab", f"VENV={tmp_path / 'none'}"], cwd=clone, capture_output=True,
                           text=True, check=True).stdout
    assert "-m venv" in fresh
