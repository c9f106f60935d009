"""Bad input of every kind ends in a clear error (exit code 2, no traceback), never in a wrong result.

Each case of :data:`CASES` runs through the real command line in a subprocess, from a folder
holding small broken data sets (:func:`write_data_sets`). docs/reliability.md is the table of these
cases; refresh it after changing a case or a message with

    RELIABILITY_TABLE=1 python -m pytest -q tests/test_reliability.py

which writes the table from the messages the commands print (test_the_table_lists_every_case keeps
the two from drifting apart otherwise).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
TABLE = REPO_ROOT / "docs" / "reliability.md"
HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


@dataclass
class Case:
    bad_input: str
    args: list[str]
    expect: list[str]  # fragments the message must contain
    code: int = 2
    module: str | None = None  # ``python -m MODULE`` instead of run_recbole_dis.py
    needs_checkpoint: bool = False
    absent: list[str] = field(default_factory=list)  # fragments the message must not contain
    # A run that must finish (exit 0): the test metrics it must report (--result_json), shown as its message.
    test_metrics: list[str] = field(default_factory=list)
    # A library call (``python -c CODE``) instead of a command: it raises, and Python prints the
    # exception under its traceback; the message is the exception's line.
    python_code: str | None = None

    @property
    def command(self) -> str:
        if self.python_code:
            return f"python -c {shlex.quote(self.python_code)}"
        head = f"python -m {self.module}" if self.module else "python run_recbole_dis.py"
        return " ".join([head, *(shlex.quote(a) for a in self.args)])


TINY = ["--data_path=data"]
# The good data set: 20 users, 30 items (RecBole ranks the top 20 by default), 400 rows on lines 2-401.
ROWS = [f"{u}\t{i}\t{(u * i) % 5 + 1}\t{u * 100 + i}\n" for u in range(1, 21) for i in range(1, 31) if (u + i) % 3]
CASES = [
    # --- silently wrong before: data from elsewhere, bogus rows, untrained results, ignored keys
    Case("--data_path names a folder with the files directly in it (no ml-100k/ sub-folder)",
         ["--data_path=flat"], ["flat/ml-100k.inter exists", "move them into flat/ml-100k/", "bundled copy"]),
    Case("--data_path names a folder that does not exist",
         ["--data_path=nowhere"], ["nowhere/ml-100k/ml-100k.inter does not exist", "nowhere itself does not exist"]),
    Case(".inter whose last line is truncated (12<TAB>20)",
         ["--dataset=trunc", *TINY], [f"data/trunc/trunc.inter, line {len(ROWS) + 2}", "2 field(s), but the header has 4", "'12\\t20'"]),
    Case(".inter with a row of fewer fields than the header",
         ["--dataset=short", *TINY], ["data/short/short.inter, line 12", "3 field(s)"]),
    Case(".inter header column without a type (item_id instead of item_id:token)",
         ["--dataset=badhead", *TINY], ["line 1 (header), column 2", "'item_id' is not name:type"]),
    Case(".inter header naming a field twice",
         ["--dataset=duphead", *TINY], ["the field 'user_id' appears twice (columns 1 and 4)"]),
    Case("--epochs=-3", ["--epochs=-3"], ["'epochs' = -3", "integer >= 1"]),
    Case("every user has one interaction (the split leaves no test part)",
         ["--dataset=single", *TINY], ["valid and test part(s) of the split are empty", "at most 1 per user",
                                       "user_inter_num_interval"]),
    Case("paper protocol: more held-out users than the data set has (20 users, 10 + 10 held out)",
         ["--dataset=good", *TINY, "--eval_protocol=paper", "--paper_heldout_users=10"],
         ["holds out 10 user(s) for validation and 10 for test", "a count between 1 and"]),
    Case("paper protocol: held-out users too small for a target (test result None, exit 0 before)",
         ["--dataset=good", *TINY, "--eval_protocol=paper", "--paper_heldout_users=1",
          "--paper_min_user_interactions=1", "--paper_target_fraction=0.1"],
         ["paper protocol: no validation and no test user is left to score", "needs m >= 10"]),
    Case("misspelt key on the command line, --strict",
         ["--kfacc=3", "--strict"], ["'kfacc'", "Did you mean kfac?"]),
    Case("misspelt key in a YAML file, --strict",
         ["--config_files", "typo.yaml", "--strict"], ["'kfacc' (config file typo.yaml)", "Did you mean kfac?"]),
    Case("misspelt key without --strict: a warning, the run goes on (exit 0)",
         ["--dataset=good", *TINY, "--kfacc=3", "--epochs=1", "--show_progress=false"],
         ["'kfacc'", "Did you mean kfac?", "ignored"], code=0),
    # --- tracebacks before
    Case("learning_rate: abc in a YAML file",
         ["--config_files", "lr.yaml"], ["'learning_rate' = 'abc' (config file lr.yaml)", "a number > 0"]),
    Case("--learning_rate=-1", ["--learning_rate=-1"], ["'learning_rate' = -1", "a number > 0"]),
    Case("--train_batch_size=0", ["--train_batch_size=0"], ["'train_batch_size' = 0", "integer >= 1"]),
    Case("--eval_batch_size=0", ["--eval_batch_size=0"], ["'eval_batch_size' = 0", "integer >= 1"]),
    Case("--stopping_step=-1", ["--stopping_step=-1"], ["'stopping_step' = -1", "integer >= 0"]),
    Case("non-integer epochs", ["--epochs=2.5"], ["'epochs' = 2.5", "integer >= 1"]),
    Case("--load_col=None (a string, not ~)", ["--load_col=None"], ["'load_col' = 'None'", "~ (load every column)"]),
    Case("non-numeric rating (a loaded float field)", ["--dataset=nonnum", *TINY, "--load_col=~"],
         ["data/nonnum/nonnum.inter, line 12, field 'rating' (float): 'five' is not a number"]),
    Case("header-only .inter", ["--dataset=empty", *TINY], ["data/empty/empty.inter has a header but no interactions"]),
    Case("a data set with one item", ["--dataset=oneitem", *TINY], ["29 user(s) and 1 item(s)", "at least 2 of each"]),
    Case("a data set with one user", ["--dataset=oneuser", *TINY], ["1 user(s) and 29 item(s)", "at least 2 of each"]),
    Case("--resume with --kfac=5 on a K=7 checkpoint",
         ["--dataset=good", *TINY, "--embedding_size=8", "--kfac=5", "--resume=k7.pth"],
         ["Cannot resume from k7.pth", "prototypes: checkpoint (7, 8), this run (5, 8)",
          "kfac = 7 in the checkpoint, 5 now (--kfac on the command line)"], needs_checkpoint=True),
    Case("topk larger than the number of items", ["--dataset=good", *TINY, "--topk=[50]"],
         ["asks for the top 50", "which has 30 items"]),
    Case("an unknown model name", ["--model=MacridVAEE"],
         ["Unknown model 'MacridVAEE'", "RecBoleMacridVAE", "MultiVAE"],
         absent=["RecBoleVBPR", "RecBoleAD-DRL", "RecBoleSEM-MacridVAE"]),  # RecBole has no such models
    # --- RecBole's other model types run through the same command (1 epoch, small sizes for CI)
    Case("RecBole's context-aware FM on ml-100k (a TypeError in evaluation before: the plugin's ranking "
         "metrics overrode RecBole's AUC/LogLoss)", ["--model=FM", "--epochs=1", "--embedding_size=8"],
         [], code=0, test_metrics=["auc", "logloss"]),
    Case("RecBole's sequential GRU4Rec on ml-100k (RecBole's own quick start refuses its cross-entropy loss "
         "with negative sampling)", ["--model=GRU4Rec", "--epochs=1", "--embedding_size=16", "--hidden_size=16",
                                     "--MAX_ITEM_LIST_LENGTH=10", "--train_batch_size=4096"],
         [], code=0, test_metrics=["ndcg@10", "recall@10"]),
    Case("RecBole's knowledge-aware CKE on ml-100k (reads the .kg and .link files)",
         ["--model=CKE", "--epochs=1", "--embedding_size=8", "--kg_embedding_size=8"],
         [], code=0, test_metrics=["ndcg@10", "recall@10"]),
    Case("RecBole's own load_data_and_model on this package's checkpoint (an AttributeError in RecBole's logger before)",
         [], ["was written by recbole-disentangle", "recbole_disentangle.quick_start.load_data_and_model"], code=1,
         needs_checkpoint=True, python_code="import recbole_disentangle.quick_start; "
                                            "from recbole.quick_start import load_data_and_model; load_data_and_model('k7.pth')"),
    Case("--control_concept 9 on a 7-concept model (analysis command)",
         ["--model_file", "k7.pth", "--out", "analysis", "--no_plots", "--control_concept", "9"],
         ["control_concept", "9"], module="recbole_disentangle.analysis", needs_checkpoint=True),
]


def write_data_sets(root: Path) -> None:
    """Small atomic data sets under root/data, each broken in one way, and the YAML files the cases name."""

    def dataset(name: str, text: str) -> None:
        folder = root / "data" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.inter").write_text(text, encoding="utf-8")

    rows = ROWS
    good = "".join(rows)
    dataset("good", HEADER + good)
    dataset("trunc", HEADER + good + "12\t20\n")
    dataset("short", HEADER + "".join(rows[:10]) + "7\t3\t4\n" + "".join(rows[10:]))
    dataset("nonnum", HEADER + "".join(rows[:10]) + "7\t3\tfive\t123\n" + "".join(rows[10:]))
    dataset("badhead", "user_id:token\titem_id\trating:float\ttimestamp:float\n" + good)
    dataset("duphead", "user_id:token\titem_id:token\trating:float\tuser_id:float\n" + good)
    dataset("empty", HEADER)
    dataset("oneitem", HEADER + "".join(f"{u}\t1\t3\t{u}\n" for u in range(1, 30)))
    dataset("oneuser", HEADER + "".join(f"1\t{i}\t3\t{i}\n" for i in range(1, 30)))
    dataset("single", HEADER + "".join(f"{u}\t{u % 30 + 1}\t3\t{u}\n" for u in range(1, 60)))
    (root / "flat").mkdir()
    (root / "flat" / "ml-100k.inter").write_text(HEADER + good, encoding="utf-8")
    (root / "typo.yaml").write_text("kfacc: 3\n", encoding="utf-8")
    (root / "lr.yaml").write_text("learning_rate: abc\n", encoding="utf-8")


@pytest.fixture(scope="module")
def case_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("reliability")
    write_data_sets(root)
    return root


@pytest.fixture(scope="module")
def env():
    environ = dict(os.environ, OMP_NUM_THREADS="1")
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), environ.get("PYTHONPATH")]))
    return environ


@pytest.fixture(scope="module")
def k7_checkpoint(case_root):
    """A MacridVAE checkpoint with K = 7 (one epoch on the tiny data set), as case_root/k7.pth."""
    from model_contract import FAST

    from recbole_disentangle.quick_start import run

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(case_root)
        result = run("MacridVAE", "good", config_dict={**FAST, "data_path": "data", "epochs": 1, "kfac": 7,
                                                        "embedding_size": 8, "checkpoint_dir": "ck"})
    shutil.copy(case_root / result["model_file"], case_root / "k7.pth")
    return case_root / "k7.pth"


MESSAGES: dict[str, tuple[int, str]] = {}  # bad input -> (exit code, message), for the table


def message_of(stderr: str) -> str:
    """The line a person reads: the error (or, for a run that goes on, the warning)."""
    lines = [line for line in stderr.splitlines() if "error:" in line or "Did you mean" in line]
    return lines[-1].strip() if lines else stderr.strip().splitlines()[-1] if stderr.strip() else ""


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.bad_input for c in CASES])
def test_bad_input_is_a_clear_error(case, case_root, env, request):
    if case.needs_checkpoint:
        request.getfixturevalue("k7_checkpoint")
    head = [sys.executable, "-m", case.module] if case.module else [sys.executable, str(REPO_ROOT / "run_recbole_dis.py")]
    extra = [] if case.module else ["--state=WARNING"]
    if case.python_code:
        head, extra = [sys.executable, "-c", case.python_code], []
    result_file = case_root / f"result-{CASES.index(case)}.json"
    if case.test_metrics:
        extra += ["--show_progress=false", f"--result_json={result_file}"]
    done = subprocess.run([*head, *case.args, *extra], cwd=case_root, capture_output=True, text=True, env=env,
                          timeout=600)
    assert case.python_code or "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == case.code, done.stderr[-3000:]
    message = message_of(done.stderr)
    if case.test_metrics:
        test_result = json.loads(result_file.read_text())["test_result"]
        for metric in case.test_metrics:
            assert 0 < test_result.get(metric, -1) < 1, f"{metric} missing or out of range in {test_result}"
        message = "test result: " + ", ".join(f"{k} = {v:.4f}" for k, v in test_result.items() if k in case.test_metrics)
    for fragment in case.expect:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    for fragment in case.absent:
        assert fragment not in message, f"{fragment!r} in {message!r}"
    MESSAGES[case.bad_input] = (done.returncode, message)


def render_table() -> str:
    rows = [
        "# Reliability: what bad input does",
        "",
        "Every row is a case of `tests/test_reliability.py`, run through the real command line from a folder",
        "holding small broken data sets (`data/<name>/<name>.inter`, written by the test), `k7.pth` (a MacridVAE",
        "checkpoint with K = 7) and the YAML files named. Run-command cases also pass `--state=WARNING`.",
        "None ends in a traceback; exit code 2 means the run stopped before training. Rows with exit code 0",
        "are runs that must finish (a warning, or RecBole's other model types, whose message is their test result).",
        "The `python -c` row is a library call: it raises (exit code 1) and its message is the exception's line.",
        "Refresh: `RELIABILITY_TABLE=1 python -m pytest -q tests/test_reliability.py`.",
        "",
        "| bad input | command | exit code | message |",
        "|---|---|---|---|",
    ]
    for case in CASES:
        code, message = MESSAGES.get(case.bad_input, (case.code, "(not run)"))
        cells = [case.bad_input, f"`{case.command}`", str(code), message]
        rows.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def test_the_table_lists_every_case():
    """docs/reliability.md has a row for every case, with its command (refresh it as the module docstring says)."""
    if os.environ.get("RELIABILITY_TABLE") and len(MESSAGES) == len(CASES):
        TABLE.write_text(render_table(), encoding="utf-8")
    text = TABLE.read_text(encoding="utf-8")
    for case in CASES:
        assert f"`{case.command}`".replace("|", "\\|") in text, f"docs/reliability.md lacks: {case.command}"
