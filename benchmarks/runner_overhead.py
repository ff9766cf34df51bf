"""What the runner costs: the same model, data, optimiser and clipping trained three ways.

- bare loop: a plain PyTorch loop (`for batch in train: forward, loss, backward, clip, step`);
- plain Lightning: a minimal LightningModule around the same model, a Trainer with no callbacks,
  no logger, no checkpointing and no validation;
- runner: `rnnbench.training.runner.run` exactly as the CLI calls it (conformance check, store, callbacks,
  checkpoints, the validation and test at the end).

Each side builds the model as a run with the same seed does (`rnnbench.training.model.initial_model`), for
three cases (no per-step learning-rate schedule: the bare and Lightning sides have none, and one
costs Lightning and the runner alike): the smallest probe model, a mid-size probe model and the 2x200 LSTM language model
(Zaremba et al.'s small model on a random 10k-token stream with PTB's shapes; the real PTB
comparison is `python -m benchmarks ptb_reference`). Figures, per case and side:

- steady-state step time: the three sides trained together, taking turns window by window
  (`benchmarks.turns`: each a greenlet in this thread, one running at a time, the turn handed on
  after the warm-up and after every window), so that round k's windows of the three sides ran
  back to back; per side, the median over windows of the mean seconds per step; the ratios are
  the median over rounds of the ratio of the two sides' windows in that round (paired), printed
  with a 95% confidence interval of that median (`benchmarks.turns.median_interval`). A step ends
  at the end of each training batch (the runner: a subclass of its own `RecordProgress`, which
  marks it on top of what it does; Lightning: the module's own `on_train_batch_end` hook; the
  bare loop: the end of its loop body);
- the figures below come from a separate pass, the sides one after the other:
- whole run: wall time from the call (or model build) to the end, set-up included; the runner's
  also includes its final validation and test (tiny evaluation splits here) and the conformance
  check, and its recorded breakdown is printed (set-up, fit, evaluation);
- data loading's share of step time: the seconds spent in `next()` on the task's training
  iterable over the timed steps, divided by those steps' time;
- peak memory of the run: the peak resident set of the process during the run (VmHWM, reset at
  the start of each side; the runner records the same figure itself, `peak_memory_mb`).

All in this process, with the thread count the runner's policy gives a run alone
(`rnnbench.sweeps.workers.threads_per_worker(1)`: $OMP_NUM_THREADS, else the CPUs).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from benchmarks.timing import (Table, TimedIterable, TimedIterator, Windows, data_share, intervals,
                               median_of_windows, ratio, recorded, runner_threads, size, torch_threads)
from benchmarks.turns import median_interval, paired_ratios, step_done, take_turns
from rnnbench.core import registry
from rnnbench.training import runner
from rnnbench.core.contracts import Batch, InputSpec, Requirements, SequenceBatch, Splits, Task
from rnnbench.toolkit.heads import PerStepClassifier
from rnnbench.core.state import detach_state
from rnnbench.training.environment import PeakMemory
from rnnbench.training.model import initial_model
from rnnbench.training.prepare import prepare

LM_VOCAB, LM_BATCH, LM_STEPS = 10_000, 20, 20


class TokenStream:
    """Contiguous language-model batches over a random token stream: batch row b reads its own
    slice of the stream, step after step, so the carried state is meaningful."""

    def __init__(self, batches: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        tokens = torch.randint(0, LM_VOCAB, (LM_BATCH, batches * LM_STEPS + 1), generator=generator)
        self.inputs, self.targets = tokens[:, :-1], tokens[:, 1:]
        self.batches = batches

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        lengths = torch.full((LM_BATCH,), LM_STEPS)
        for index in range(self.batches):
            window = slice(index * LM_STEPS, (index + 1) * LM_STEPS)
            yield Batch(SequenceBatch(self.inputs[:, window], lengths), self.targets[:, window])


@registry.register_task("bench-lm")
class SyntheticLanguageModel(Task):
    """Next-token prediction on random tokens (10k vocabulary): a stand-in with PTB's shapes."""

    requirements = Requirements(structure="sequence", causal=True, carries_state=True)
    head_kind = "generation"
    primary_metric = "accuracy"
    direction = "max"

    @dataclass
    class Options:
        batches: int = 200

    def input_spec(self) -> InputSpec:
        return InputSpec(vocab_size=LM_VOCAB)

    def splits(self, batch_size: int, seed: int) -> Splits:
        return Splits(train=TokenStream(self.options.batches, seed), val=TokenStream(2, seed + 1),
                      test=TokenStream(2, seed + 2))

    def build_head(self, encoder_output_size, embedding):
        return PerStepClassifier(encoder_output_size, LM_VOCAB)

    def metrics(self) -> MetricCollection:
        return MetricCollection({"accuracy": MulticlassAccuracy(LM_VOCAB, average="micro")})


@dataclass
class Case:
    key: str
    name: str
    architecture: str
    task: str
    settings: dict[str, Any]
    windows: Windows

    def run_settings(self) -> dict[str, Any]:
        """The case's settings with a budget of exactly the steps the timer needs, validation
        only at the end, no early stopping."""
        steps = self.windows.total
        extra: dict[str, Any] = {"trainer.max_steps": steps, "trainer.val_every_steps": steps,
                                 "trainer.early_stopping": False}
        if self.task == "bench-lm":
            extra["task.batches"] = steps
        return {**self.settings, **extra}


CASES = [
    Case("smallest_probe", "smallest probe: 16-unit RNN, adding T=20, batch 32", "rnn", "adding",
         {"arch.hidden_size": 16, "task.length": 20, "task.train_size": 3_200, "task.eval_size": 64,
          "optim.optimizer": "sgd", "optim.lr": 0.01, "optim.clip_norm": 1.0, "optim.schedule": "constant",
          "trainer.batch_size": 32},
         size(Windows(50, 150, 5), Windows(2, 2, 3))),
    Case("mid_probe", "mid-size probe: 128-unit LSTM, copy T=50, batch 32", "lstm", "copy",
         {"arch.hidden_size": 128, "task.length": 50, "task.train_size": 3_200, "task.eval_size": 64,
          "optim.optimizer": "adam", "optim.lr": 0.001, "optim.clip_norm": 1.0, "optim.schedule": "constant",
          "trainer.batch_size": 32},
         size(Windows(20, 150, 2), Windows(2, 2, 3))),
    Case("lm_2x200", "2x200 LSTM LM (vocab 10k, batch 20, 20 steps)", "lstm", "bench-lm",
         {"arch.hidden_size": 200, "arch.num_layers": 2, "optim.optimizer": "sgd", "optim.lr": 1.0,
          "optim.clip_norm": 5.0, "optim.init_scale": 0.1, "optim.loss_reduction": "sequence_sum",
          "trainer.batch_size": LM_BATCH},
         size(Windows(5, 150, 2), Windows(2, 2, 3))),
]


@dataclass
class Side:
    """One way of training a case: its step timestamps, data fetch times, wall time and peak."""

    step_intervals: list[float]
    fetch_seconds: list[float]
    wall_s: float
    peak_mb: float
    extra: dict[str, Any] = field(default_factory=dict)

    def figures(self, windows: Windows) -> dict[str, Any]:
        return {"step_s": median_of_windows(self.step_intervals, windows),
                "steps": len(self.step_intervals), "whole_run_s": self.wall_s,
                "data_share": data_share(self.fetch_seconds, self.step_intervals, windows),
                "peak_memory_mb": self.peak_mb, **self.extra}


# --------------------------------------------------------------------------- shared by the sides


def loss_of(output: Any, batch: Batch, reduction: str) -> torch.Tensor:
    """The runner's loss reduction (`TrainingModule._reduce`)."""
    if reduction == "sequence_sum":
        return output.loss_sum / batch.batch_size
    return output.loss_sum / output.count.clamp(min=1)


def optimizer_for(parameters: Any, optim: Any) -> torch.optim.Optimizer:
    """The runner's optimiser for `optim.optimizer` (`TrainingModule.configure_optimizers`)."""
    if optim.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
    if optim.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=optim.lr, weight_decay=optim.weight_decay)
    return torch.optim.AdamW(parameters, lr=optim.lr, weight_decay=optim.weight_decay)


def build(architecture: str, task: str, settings: dict[str, Any], seed: int = 0, preset: str | None = None):
    """(model, task object, config, training iterable) exactly as a run with `seed` starts."""
    prepared = prepare(architecture, task, settings, preset, seed)
    config = prepared.config
    task_obj = prepared.task(config.task_options)
    model, _ = initial_model(prepared.architecture(), task_obj, config, seed)
    return model, task_obj, config, task_obj.splits(config.trainer.batch_size, seed).train


def bare_loop(architecture: str, task: str, settings: dict[str, Any], steps: int, seed: int = 0,
              preset: str | None = None) -> Side:
    """A plain PyTorch loop over the task's training batches (passes repeated until `steps`)."""
    memory = PeakMemory()
    memory.start()
    began = time.perf_counter()
    model, task_obj, config, train = build(architecture, task, settings, seed, preset)
    optimizer = optimizer_for(model.parameters(), config.optim)
    carries = task_obj.requirements.carries_state
    data = TimedIterable(train)
    stamps, done, state = [time.perf_counter()], 0, None
    model.train()
    while done < steps:
        state = None  # a new pass starts a new stream, as the runner's epoch does
        for batch in data:
            output, encoded = model(batch, state)
            if carries:
                state = detach_state(encoded.state)
            loss = loss_of(output, batch, config.optim.loss_reduction)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.optim.clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.clip_norm)
            optimizer.step()
            stamps.append(time.perf_counter())
            step_done()
            done += 1
            if done == steps:
                break
    return Side(intervals(stamps), data.fetch_seconds, time.perf_counter() - began, memory.peak_mb())


class PlainModule(pl.LightningModule):
    """The minimal LightningModule: the model, the loss, the optimiser, the carried state. It
    stamps the end of each training batch in its own hook (no callback)."""

    def __init__(self, model: Any, config: Any, carries_state: bool) -> None:
        super().__init__()
        self.model, self.config, self.carries_state = model, config, carries_state
        self.state: Any = None
        self.stamps: list[float] = []

    def on_train_epoch_start(self) -> None:
        self.state = None
        if not self.stamps:
            self.stamps.append(time.perf_counter())

    def training_step(self, batch: Batch, batch_index: int) -> torch.Tensor:
        output, encoded = self.model(batch, self.state if self.carries_state else None)
        if self.carries_state:
            self.state = detach_state(encoded.state)
        return loss_of(output, batch, self.config.optim.loss_reduction)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_index: int) -> None:
        self.stamps.append(time.perf_counter())
        step_done()

    def configure_optimizers(self):
        return optimizer_for(self.model.parameters(), self.config.optim)


def plain_lightning(architecture: str, task: str, settings: dict[str, Any], steps: int, seed: int = 0) -> Side:
    memory = PeakMemory()
    memory.start()
    began = time.perf_counter()
    model, task_obj, config, train = build(architecture, task, settings, seed)
    module = PlainModule(model, config, task_obj.requirements.carries_state)
    data = TimedIterable(train)
    with tempfile.TemporaryDirectory() as folder:
        trainer = pl.Trainer(max_steps=steps, max_epochs=-1, accelerator="auto", devices=1,
                             gradient_clip_val=config.optim.clip_norm, gradient_clip_algorithm="norm",
                             logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                             default_root_dir=folder)
        trainer.fit(module, train_dataloaders=data)
    return Side(intervals(module.stamps), data.fetch_seconds, time.perf_counter() - began, memory.peak_mb())


# --------------------------------------------------------------------------- the runner, instrumented


class _StampedProgress(runner.RecordProgress):
    """The runner's own progress callback, also stamping the end of every training batch."""

    last: _StampedProgress | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stamps: list[float] = []
        _StampedProgress.last = self

    def on_train_epoch_start(self, trainer, module) -> None:
        super().on_train_epoch_start(trainer, module)
        if not self.stamps:
            self.stamps.append(time.perf_counter())

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_index) -> None:
        super().on_train_batch_end(trainer, module, outputs, batch, batch_index)
        self.stamps.append(time.perf_counter())
        step_done()


class _TimedBatches(runner.ResumableBatches):
    """The runner's resumable training iterable, timing each `next()`."""

    last: _TimedBatches | None = None

    def __init__(self, batches: Any) -> None:
        super().__init__(batches)
        self.fetch_seconds: list[float] = []
        _TimedBatches.last = self

    def __iter__(self):
        return TimedIterator(super().__iter__(), self.fetch_seconds)


def with_runner(architecture: str, task: str, settings: dict[str, Any], seed: int = 0,
                preset: str | None = None) -> Side:
    """`rnnbench.training.runner.run` as the CLI calls it, its progress callback and training iterable
    swapped for the stamping subclasses above for the duration of the call."""
    saved = runner.RecordProgress, runner.ResumableBatches
    runner.RecordProgress, runner.ResumableBatches = _StampedProgress, _TimedBatches
    try:
        with tempfile.TemporaryDirectory() as folder:
            began = time.perf_counter()
            result = runner.run(architecture, task, settings, seed=seed, preset=preset,
                                store=f"{folder}/bench.sqlite", progress=False)
            wall = time.perf_counter() - began
            record = recorded(f"{folder}/bench.sqlite", result.run_id)
    finally:
        runner.RecordProgress, runner.ResumableBatches = saved
    progress, batches = _StampedProgress.last, _TimedBatches.last
    return Side(intervals(progress.stamps), batches.fetch_seconds, wall, record["peak_memory_mb"],
                {"timings": result.timings, "recorded_items_per_second": result.items_per_second,
                 "recorded_threads": record["environment"].get("threads"),
                 "recorded_peak_memory": record["environment"].get("peak_memory")})


def measure(case: Case) -> dict[str, Any]:
    """The three sides of a case: steady-state step times from the sides taking turns window by
    window (`benchmarks.turns`), the rest (whole run, data share, peak memory) from one run of
    each side after the other. `paired` holds the round-by-round ratios."""
    settings = case.run_settings()
    steps = case.windows.total
    trained = {"bare": lambda: bare_loop(case.architecture, case.task, settings, steps),
               "lightning": lambda: plain_lightning(case.architecture, case.task, settings, steps),
               "runner": lambda: with_runner(case.architecture, case.task, settings)}
    figures: dict[str, Any] = {name: train().figures(case.windows) for name, train in trained.items()}
    timed = take_turns(trained, case.windows)
    for name, side in timed.items():
        figures[name]["step_s"] = side.step_s
        figures[name]["window_step_s"] = side.window_means
    figures["paired"] = {"runner/lightning": paired_ratios(timed["runner"], timed["lightning"]),
                         "runner/bare": paired_ratios(timed["runner"], timed["bare"]),
                         "lightning/bare": paired_ratios(timed["lightning"], timed["bare"])}
    return figures


def main() -> dict[str, Any]:
    threads = runner_threads(1)
    with torch_threads(threads):
        print(f"the same model, data, optimiser and clipping three ways, in this process: step times "
              f"with the sides taking turns window by window, the rest one side after the other; "
              f"{threads} thread(s) (the runner's policy for a run alone)")
        warm = CASES[0]   # one-time costs (first Trainer, first run) land on no measured side
        warm_case = Case(warm.key, warm.name, warm.architecture, warm.task, warm.settings, Windows(1, 1, 2))
        measure(warm_case)
        results: dict[str, Any] = {"threads": threads, "cases": {}}
        for case in CASES:
            started = time.perf_counter()
            figures = measure(case)
            results["cases"][case.key] = {"name": case.name, "architecture": case.architecture,
                                          "task": case.task, "settings": case.settings,
                                          "windows": case.windows.as_dict(), **figures}
            print(f"  {case.name}: {case.windows.describe()}, {time.perf_counter() - started:.1f} s", flush=True)
    report(results)
    return results


def interval_text(ratios: list[float]) -> str:
    """'median [low, high]' of paired ratios, the bracket a 95% confidence interval of the median."""
    if len(ratios) < 2:
        return f"{ratios[0]:.3f}" if ratios else "-"
    middle, low, high = median_interval(ratios)
    return f"{middle:.3f} [{low:.3f}, {high:.3f}]"


def report(results: dict[str, Any]) -> None:
    cases = results["cases"]
    steady = Table("\nsteady-state step time (ms, median of windows; ratios: median over rounds of the paired "
                   "windows' ratio [its 95% confidence interval]; > 1: slower than the side it is compared with)",
                   [("case", ""), ("bare", ".2f"), ("Lightning", ".2f"), ("runner", ".2f"),
                    ("Lightning/bare", ""), ("runner/Lightning", ""), ("runner/bare", "")])
    whole = Table("\nwhole run, set-up included (s; the runner's includes its conformance check, final "
                  "validation and test)",
                  [("case", ""), ("bare", ".2f"), ("Lightning", ".2f"), ("runner", ".2f"),
                   ("runner/bare", ".2f"), ("runner set-up", ".2f"), ("fit", ".2f"), ("evaluate", ".2f")])
    data = Table("\ndata loading's share of step time (next() on the training iterable, timed steps)",
                 [("case", ""), ("bare", ".1%"), ("Lightning", ".1%"), ("runner", ".1%")])
    memory = Table("\npeak memory per run (MB, peak resident set of the process during the run; "
                   "the runner's as it records it)",
                   [("case", ""), ("bare", ",.0f"), ("Lightning", ",.0f"), ("runner", ",.0f"),
                    ("runner/bare", ".2f"), ("threads recorded", "d")])
    for figures in cases.values():
        bare, plain, ours = figures["bare"], figures["lightning"], figures["runner"]
        name = figures["name"]
        paired = figures["paired"]
        steady.add(name, bare["step_s"] * 1e3, plain["step_s"] * 1e3, ours["step_s"] * 1e3,
                   *(interval_text(paired[key]) for key in ("lightning/bare", "runner/lightning", "runner/bare")))
        timings = ours["timings"]
        whole.add(name, bare["whole_run_s"], plain["whole_run_s"], ours["whole_run_s"],
                  ratio(ours["whole_run_s"], bare["whole_run_s"]), timings.get("setup_s"),
                  timings.get("fit_s"), timings.get("evaluate_s"))
        data.add(name, bare["data_share"], plain["data_share"], ours["data_share"])
        memory.add(name, bare["peak_memory_mb"], plain["peak_memory_mb"], ours["peak_memory_mb"],
                   ratio(ours["peak_memory_mb"], bare["peak_memory_mb"]), ours["recorded_threads"])
    for table in (steady, whole, data, memory):
        table.print()
