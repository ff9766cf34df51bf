"""Small shared pieces for the tests."""

from __future__ import annotations

QUICK = {"trainer.max_steps": "6", "trainer.val_every_steps": "3", "task.train_size": "64",
         "task.eval_size": "32", "arch.hidden_size": "8", "trainer.batch_size": "16",
         "task.length": "6"}
