"""The lab's command line as a user meets it: real subprocesses, exit status, one-line messages, no tracebacks.

Bad input ends with exit status 2 and one line ``error: ...`` that names the file
or the flag at fault; an interrupted run (SIGTERM, as ``timeout`` and schedulers
send) ends with status 130, a checkpoint, and a message saying how to continue.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

pytestmark = pytest.mark.training  # real `python -m maxpo.lab` runs, several of which train: left out of make check

ROOT = Path(__file__).resolve().parents[1]
#: A run of a few seconds without a warm start: the RL starts from the untrained GPT.
FAST = ["--preset", "smoke", "--warmstart-steps", "0", "--eval-prompts", "8", "--eval-samples", "8",
        "--eval-every", "2",
        "--prompts-per-step", "2", "--samples-per-prompt", "4", "--k", "2", "--no-progress"]


def lab(args: Sequence[str], cache: Path, extra_path: Path | None = None, **kw) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAXPO_LAB_CACHE": str(cache),
           "PYTHONPATH": os.pathsep.join(str(p) for p in (extra_path, ROOT) if p)}
    return subprocess.run([sys.executable, "-m", "maxpo.lab", *args], capture_output=True, text=True, env=env,
                          timeout=600, **kw)


def assert_refused(res: subprocess.CompletedProcess[str], *must_name: str) -> None:
    """Exit status 2, a single ``error:`` line naming every string in ``must_name``, no traceback."""
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for name in must_name:
        assert name in lines[0], (name, lines[0])


@pytest.fixture(scope="module")
def done_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-step run (no warm start), copied by the tests that damage it."""
    base = tmp_path_factory.mktemp("cli")
    res = lab(["train", *FAST, "--steps", "2", "--out", str(base / "run")], base / "cache")
    assert res.returncode == 0, res.stderr
    return base / "run"


def _copy(run: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run, dest)
    return dest


@pytest.mark.parametrize("flags, names", [
    (["--k", "0"], ["--k", "0"]),
    (["--threads", "-1"], ["--threads", "-1"]),
    (["--eval-prompts", "5000"], ["5000", "held-out"]),
    (["--max-new-tokens", "60"], ["--max-new-tokens", "context"]),
])
def test_bad_numbers_are_refused(flags: list[str], names: list[str], tmp_path: Path) -> None:
    assert_refused(lab(["train", *FAST, *flags, "--out", str(tmp_path / "run")], tmp_path / "cache"), *names)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_typo_in_the_second_method_stops_compare_before_any_run(tmp_path: Path) -> None:
    res = lab(["compare", *FAST, "--methods", "grpo,maxpo_typo", "--seeds", "0", "--work-dir", str(tmp_path / "w"),
               "--out", str(tmp_path / "c.json")], tmp_path / "cache")
    assert_refused(res, "maxpo_typo")
    assert not (tmp_path / "w" / "grpo-s0").exists()


def test_unusable_directories_are_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert_refused(lab(["train", *FAST, "--out", str(blocker / "run")], tmp_path / "cache"), "--out", str(blocker))
    assert_refused(lab(["compare", *FAST, "--methods", "grpo", "--seeds", "0", "--work-dir", str(blocker / "w"),
                        "--out", str(tmp_path / "c.json")], tmp_path / "cache"), "--work-dir", str(blocker))
    assert_refused(lab(["compare", *FAST, "--methods", "grpo", "--seeds", "0", "--work-dir", str(tmp_path / "w"),
                        "--out", str(blocker / "c.json")], tmp_path / "cache"), "--out", str(blocker))
    res = lab(["train", *FAST, "--warmstart-steps", "5", "--out", str(tmp_path / "run")], blocker / "cache")
    assert_refused(res, "MAXPO_LAB_CACHE", str(blocker))


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_a_damaged_checkpoint_is_named(damage: str, done_run: Path, tmp_path: Path) -> None:
    run = _copy(done_run, tmp_path / "run")
    ckpt = run / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "garbage": b"not a checkpoint" * 10}[damage])
    assert_refused(lab(["train", "--out", str(run), "--resume", "--steps", "4"], tmp_path / "cache"), str(ckpt))
    assert_refused(lab(["eval", "--run", str(run), "--no-progress"], tmp_path / "cache"), str(ckpt))


def test_a_truncated_config_is_named(done_run: Path, tmp_path: Path) -> None:
    run = _copy(done_run, tmp_path / "run")
    cfg = run / "config.json"
    cfg.write_text(cfg.read_text()[:40])
    assert_refused(lab(["train", "--out", str(run), "--resume"], tmp_path / "cache"), str(cfg))
    assert_refused(lab(["eval", "--run", str(run)], tmp_path / "cache"), str(cfg))
    assert_refused(lab(["train", "--config", str(cfg), "--out", str(tmp_path / "new")], tmp_path / "cache"), str(cfg))


def test_a_truncated_warm_start_cache_is_named(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env_args = ["--preset", "smoke", "--warmstart-steps", "7", "--no-progress"]
    code = ("from maxpo.lab.cli import build_parser, config_from_args; from maxpo.lab.warmstart import cache_path; "
            f"print(cache_path(config_from_args(build_parser().parse_args(['train', '--out', 'x', *{env_args!r}]))))")
    path = Path(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                               env={**os.environ, "MAXPO_LAB_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
                               ).stdout.strip())
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 truncated")
    assert_refused(lab(["train", *env_args, "--out", str(tmp_path / "run")], cache), str(path))


def test_a_truncated_last_metrics_line_is_dropped_and_the_run_resumes(done_run: Path, tmp_path: Path) -> None:
    """What SIGKILL leaves: half a record at the end.

    The record is of a step after the checkpoint: resume re-runs it.
    """
    run = _copy(done_run, tmp_path / "run")
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "train", "step": 3, "rew')
    res = lab(["train", "--out", str(run), "--resume", "--steps", "3"], tmp_path / "cache")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert "truncated last line" in res.stderr and "metrics.jsonl" in res.stderr
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    assert steps == [1, 2, 3]


def test_a_damaged_metrics_line_inside_the_file_is_named(done_run: Path, tmp_path: Path) -> None:
    run = _copy(done_run, tmp_path / "run")
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[1] = lines[1][:10]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (run / "summary.json").unlink()
    assert_refused(lab(["train", "--out", str(run), "--resume"], tmp_path / "cache"), str(run / "metrics.jsonl"),
                   "line 2")


def test_resume_reads_the_saved_config_and_refuses_to_shorten(done_run: Path, tmp_path: Path) -> None:
    run = _copy(done_run, tmp_path / "run")
    assert_refused(lab(["train", "--out", str(run), "--resume", "--steps", "1"], tmp_path / "cache"), "--steps 1", "2")
    (run / "summary.json").unlink()  # as if stopped after the step-2 checkpoint
    assert_refused(lab(["train", "--out", str(run), "--resume", "--steps", "1"], tmp_path / "cache"), "--steps 1",
                   "checkpoint's step 2")
    assert json.loads((run / "config.json").read_text())["rl"]["steps"] == 2  # the refused call changed nothing
    res = lab(["train", "--out", str(run), "--resume", "--steps", "4", "--no-progress"], tmp_path / "cache")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["final_eval"]["step"] == 4
    # the saved flags, not smoke's
    assert json.loads((run / "config.json").read_text())["rl"]["samples_per_prompt"] == 4
    assert_refused(lab(["train", "--out", str(run), "--resume", "--lr", "0.5"], tmp_path / "cache"), "rl.lr")


def test_eval_of_a_run_needs_no_warm_start(tmp_path: Path) -> None:
    """A run trained with a warm start is evaluated from its own weights: the (deleted) cache is not rebuilt."""
    cache = tmp_path / "cache"
    res = lab(["train", *FAST, "--warmstart-steps", "3", "--steps", "1", "--out", str(tmp_path / "run")], cache)
    assert res.returncode == 0, res.stderr
    for f in cache.iterdir():
        f.unlink()
    res = lab(["eval", "--run", str(tmp_path / "run"), "--no-progress", "--ks", "1,2"], cache)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["step"] == 1 and set(out) >= {"pass@1", "pass@2"} and not list(cache.iterdir())


def test_sigterm_checkpoints_and_says_how_to_continue(tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "MAXPO_LAB_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "maxpo.lab", "train", *FAST, "--steps", "100000", "--eval-every",
                             "1000", "--checkpoint-every", "1000", "--out", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not metrics.exists() or metrics.read_text().count('"train"') < 2):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "checkpoint of step" in err and "--resume" in err
    import torch

    step = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    assert step >= 2 and f"step {step}" in err


def test_model_path_without_transformers(tmp_path: Path) -> None:
    blocker = tmp_path / "no-transformers" / "transformers"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('transformers is not installed here')\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    res = lab(["train", *FAST, "--model-path", str(model), "--out", str(tmp_path / "run")], tmp_path / "cache",
              extra_path=blocker.parent)
    assert_refused(res, "transformers", str(model))


@pytest.mark.parametrize("junk", ["config", "tokenizer"])
def test_a_junk_model_directory_is_named(junk: str, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from maxpo.lab.hf import save_tiny_random_model

    model = save_tiny_random_model(tmp_path / "model")
    if junk == "config":
        (model / "config.json").write_text('{"model_type": "no-such-architecture"}')
        names = [str(model / "config.json")]
    else:
        (model / "tokenizer.json").write_text("{ this is not json")
        names = ["tokenizer", "tokenizer.json"]
    assert_refused(lab(["train", *FAST, "--model-path", str(model), "--out", str(tmp_path / "run")],
                       tmp_path / "cache"),
                   *names)


def test_help_shows_defaults_and_eval_lists_only_its_flags(tmp_path: Path) -> None:
    res = lab(["train", "--help"], tmp_path / "cache")
    assert res.returncode == 0 and "smoke 80, cpu 300, gpu 150" in " ".join(res.stdout.split())
    res = lab(["eval", "--help"], tmp_path / "cache")
    assert res.returncode == 0
    for flag in ("--run", "--ks", "--eval-prompts", "--eval-samples", "--device"):
        assert flag in res.stdout
    for flag in ("--lr", "--method", "--steps", "--kl-coef", "--updates-per-batch", "--warmstart-steps"):
        assert flag not in res.stdout, flag
    res = lab(["--help"], tmp_path / "cache")
    assert "MAXPO_LAB_CACHE" in res.stdout and "~/.cache/maxpo/lab" in res.stdout


def test_gpu_session_without_git_needs_the_commit(tmp_path: Path) -> None:
    """The device machine gets a copy without git: the script asks for the commit instead of recording none."""
    import shutil

    (tmp_path / "benchmarks").mkdir()
    shutil.copy(ROOT / "benchmarks" / "gpu_session.sh", tmp_path / "benchmarks")
    res = subprocess.run(["bash", "benchmarks/gpu_session.sh"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "GIT_DIR": str(tmp_path / "no-git"), "MAXPO_GIT_COMMIT": ""}, timeout=60)
    assert res.returncode == 2 and "usage" in res.stderr and "commit" in res.stderr


# --- what a user hit (issue 18 §2): each as a CLI call ------------------------------------------


def _interrupt_when(proc: subprocess.Popen[str], metrics: Path, records: int) -> str:
    """SIGTERM ``proc`` once ``metrics`` holds ``records`` training records; return its stderr."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not metrics.exists() or metrics.read_text().count('"train"') < records):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "Traceback" not in err, err
    return err


def test_an_interrupted_compare_says_how_to_continue_the_comparison(tmp_path: Path) -> None:
    work, out = tmp_path / "w", tmp_path / "c.json"
    env = {**os.environ, "MAXPO_LAB_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    args = ["compare", *FAST, "--steps", "100000", "--eval-every", "1000", "--checkpoint-every", "1000",
            "--methods", "grpo", "--seeds", "0", "--work-dir", str(work), "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "maxpo.lab", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    err = _interrupt_when(proc, work / "grpo-s0" / "metrics.jsonl", 2)
    hint = err.strip().splitlines()[-1]
    assert "checkpoint of step" in hint and str(work / "grpo-s0") in hint
    # the whole comparison's command, not the single run's
    assert "continue with: python -m maxpo.lab compare " in hint and hint.endswith("--resume"), hint
    assert "maxpo.lab train" not in hint and f"--work-dir {work}" in hint


def test_an_interrupt_before_training_still_says_what_to_do(tmp_path: Path) -> None:
    """Ctrl-C while the command is still checking its input: no bare 'interrupted'."""
    code = ("import sys, maxpo.lab.train as t\n"
            "def stop(cfg): raise KeyboardInterrupt\n"
            "t.validate = stop\n"
            "from maxpo.lab.cli import main\n"
            f"sys.exit(main(['train', *{FAST!r}, '--out', {str(tmp_path / 'run')!r}]))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "MAXPO_LAB_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)})
    assert res.returncode == 130 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip() == "interrupted before anything was written; run the same command again"
    assert not (tmp_path / "run").exists()


def test_an_interrupted_run_names_the_whole_resume_command(tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "MAXPO_LAB_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "maxpo.lab", "train", *FAST, "--steps", "100000", "--eval-every",
                             "1000", "--checkpoint-every", "1000", "--out", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    err = _interrupt_when(proc, run / "metrics.jsonl", 2)
    assert err.strip().splitlines()[-1].endswith(f"continue with: python -m maxpo.lab train --out {run} --resume")


@pytest.mark.parametrize("damage", ["empty", "first line cut", "training records gone"])
def test_resume_refuses_to_drop_a_lost_history(damage: str, done_run: Path, tmp_path: Path) -> None:
    """A checkpoint at step 2 but a metrics file without steps 0-2: refused, and the file is left as it was."""
    run = _copy(done_run, tmp_path / "run")
    (run / "summary.json").unlink()  # as if stopped at the step-2 checkpoint
    metrics = run / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    text = {"empty": "", "first line cut": lines[0][:15],
            "training records gone": "\n".join(x for x in lines if '"train"' not in x) + "\n"}[damage]
    metrics.write_text(text)
    assert_refused(lab(["train", "--out", str(run), "--resume", "--steps", "4"], tmp_path / "cache"), str(metrics),
                   "history")
    assert metrics.read_text() == text and not (run / "summary.json").exists()


def test_compare_refuses_seed_and_eval_run_refuses_a_preset(done_run: Path, tmp_path: Path) -> None:
    res = lab(["compare", *FAST, "--seed", "3", "--work-dir", str(tmp_path / "w"), "--out", str(tmp_path / "c.json")],
              tmp_path / "cache")
    assert_refused(res, "--seed")
    assert not (tmp_path / "w").exists()
    assert_refused(lab(["eval", "--run", str(done_run), "--preset", "cpu"], tmp_path / "cache"), "--preset",
                   "saved configuration")
    assert_refused(lab(["eval", "--run", str(done_run), "--config", str(done_run / "config.json")],
                       tmp_path / "cache"), "--config")


def test_eval_of_a_run_uses_its_saved_configuration(done_run: Path, tmp_path: Path) -> None:
    """The run was trained with 8 held-out puzzles x 8 answers (not smoke's defaults): eval --run keeps them."""
    res = lab(["eval", "--run", str(done_run), "--no-progress"], tmp_path / "cache")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert (out["n_prompts"], out["n_samples"]) == (8, 8), out


@pytest.mark.parametrize("args, names", [
    (["train", "--preset", "foo", "--out", "x"], ["--preset", "foo"]),
    (["train", "--out", "x", "--stepz", "3"], ["--stepz"]),
    (["train", "--ste", "3", "--out", "x"], ["--ste"]),  # no abbreviations: --ste is not --steps
    (["compare", "--work-dir", "w"], ["--out"]),
    (["flyaway"], ["flyaway"]),
])
def test_usage_errors_are_one_line(args: list[str], names: list[str], tmp_path: Path) -> None:
    assert_refused(lab(args, tmp_path / "cache", cwd=tmp_path), *names)
    assert not (tmp_path / "x").exists()


def test_refused_commands_leave_no_directory_behind(tmp_path: Path) -> None:
    new = tmp_path / "deep" / "run"
    assert_refused(lab(["train", *FAST, "--k", "0", "--out", str(new)], tmp_path / "cache"), "--k")
    assert not (tmp_path / "deep").exists()
    res = lab(["compare", *FAST, "--methods", "grpo,nope", "--seeds", "0", "--work-dir", str(tmp_path / "w"),
               "--out", str(tmp_path / "out" / "c.json")], tmp_path / "cache")
    assert_refused(res, "nope")
    assert not (tmp_path / "w").exists() and not (tmp_path / "out").exists()
    # a model directory that fails to load after the run's config.json was written: the directory goes too
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    blocker = tmp_path / "no-transformers" / "transformers"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('transformers is not installed here')\n")
    assert_refused(lab(["train", *FAST, "--model-path", str(model), "--out", str(tmp_path / "r")], tmp_path / "cache",
                       extra_path=blocker.parent), str(model))
    assert not (tmp_path / "r").exists()
    # an existing directory is never removed
    kept = tmp_path / "kept"
    kept.mkdir()
    assert_refused(lab(["train", *FAST, "--k", "0", "--out", str(kept)], tmp_path / "cache"), "--k")
    assert kept.is_dir()


def test_checkpoint_messages_are_whole_sentences(done_run: Path, tmp_path: Path) -> None:
    run = _copy(done_run, tmp_path / "run")
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    res = lab(["eval", "--run", str(run), "--no-progress"], tmp_path / "cache")
    assert_refused(res, str(ckpt), "truncated")
    line = res.stderr.strip()
    assert line.endswith(")") and line.count("(") == line.count(")"), line


def test_help_of_a_flag_no_preset_sets_says_none(tmp_path: Path) -> None:
    res = lab(["train", "--help"], tmp_path / "cache")
    text = " ".join(res.stdout.split())
    i = text.index("--model-path MODEL_PATH a local")  # the option's entry, not the usage line
    model_path_help = text[i:text.index(" --", i + 20)]
    assert model_path_help.endswith("the pretrained preset needs it (default: none)"), model_path_help


def test_a_comparison_file_describes_its_runs(tmp_path: Path) -> None:
    """Top-level provenance: the runs' commit, machine and times; the gathering call inside ``gathered``."""
    out = tmp_path / "c.json"
    args = ["compare", *FAST, "--steps", "2", "--methods", "grpo,maxpo", "--seeds", "0", "--work-dir",
            str(tmp_path / "w"), "--out", str(out)]
    res = lab(args, tmp_path / "cache")
    assert res.returncode == 0, res.stderr
    first = json.loads(out.read_text())
    res = lab([*args, "--resume"], tmp_path / "cache")  # gathered again later, runs untouched
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    prov = data["provenance"]
    summaries = [json.loads((tmp_path / "w" / f"{m}-s0" / "summary.json").read_text()) for m in ("grpo", "maxpo")]
    assert prov["git_commits"] == sorted({s["provenance"]["git_commit"] for s in summaries if
                                          s["provenance"]["git_commit"]})
    assert prov["device"] == summaries[0]["provenance"]["device"]
    assert prov["started"] == min(s["started"] for s in summaries)
    assert prov["finished"] == max(s["finished"] for s in summaries)
    # the second call only gathered: the runs' times are unchanged, the gathering call's are new
    assert (prov["started"], prov["finished"]) == (first["provenance"]["started"], first["provenance"]["finished"])
    assert prov["gathered"]["command"].endswith("--resume") and prov["gathered"]["started"] >= prov["finished"]


@pytest.mark.parametrize("budget, passes", [("100", []), ("100000", ["0,1", "0,1,2,3,4"])])
def test_gpu_session_never_starts_a_pass_without_time(budget: str, passes: list[str], tmp_path: Path) -> None:
    """The script's budget arithmetic, with a stand-in interpreter that records what it was asked to run.

    With less than a minute left (budget 100 s less the 90 s reserve) no comparison starts: ``timeout 0``
    would mean no limit and a negative limit makes ``timeout`` fail. With time, the 2-seed pass runs
    first, then the 5-seed pass resumes the same work directory.
    """
    import shutil

    (tmp_path / "benchmarks").mkdir()
    shutil.copy(ROOT / "benchmarks" / "gpu_session.sh", tmp_path / "benchmarks")
    log = tmp_path / "calls.txt"
    stub = tmp_path / "fake-python"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    stub.chmod(0o755)
    res = subprocess.run(["bash", "benchmarks/gpu_session.sh", "abc123"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHON": str(stub), "MAXPO_GPU_BUDGET": budget,
                                                     "OUT": str(tmp_path / "out")})
    assert res.returncode == 0, res.stderr
    calls = [line for line in log.read_text().splitlines() if "maxpo.lab compare" in line]
    assert [c.split("--seeds ")[1].split()[0] for c in calls] == passes, calls
    assert all("--resume" in c for c in calls)
    if not passes:
        assert res.stderr.count("skipped the comparison") == 2
