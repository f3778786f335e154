"""Training, distillation and evaluation of the pose models (the paper's sec. 1.5 and 2.2).

Public API (imported lazily, so ``import stagepose.train`` stays light for the CLI)::

    ExperimentConfig, load_experiment(path, overrides)           experiment YAML -> frozen dataclasses
    train(config, resume=, overwrite=, progress=) -> TrainResult  the loop (also under torchrun)
    run_training(config_path, overrides, resume=, ...)            what `stagepose train` calls
    DistillTask(student, teacher, total_steps=, sigma=), SupervisedTask(model), kd_weights(step, total, sigma)
    heatmap_loss(pred, target, joint_weight, sample_weight), per_sample_loss(...)
    evaluate_checkpoint(checkpoint, data, ...) -> EvalReport, predict(...), score(...), flip_back(...)
    save_checkpoint / load_checkpoint / save_best_weights          crash-safe, weights-only
    benchmark_training(preset, ...) -> TrainBench                  images/s of a training step
    TimeBudget(seconds, needs_plan=)                               a run's wall-clock budget and step plan
    run_gpu_recipe(RecipeSettings(...)) -> RecipeSummary           `stagepose recipe gpu`
"""

from __future__ import annotations

from stagepose.lazy import lazy_getattr

_EXPORTS = {
    "ExperimentConfig": "stagepose.train.config",
    "load_experiment": "stagepose.train.config",
    "train": "stagepose.train.loop",
    "run_training": "stagepose.train.loop",
    "TrainResult": "stagepose.train.loop",
    "DistillTask": "stagepose.train.distill",
    "SupervisedTask": "stagepose.train.distill",
    "kd_weights": "stagepose.train.distill",
    "heatmap_loss": "stagepose.train.losses",
    "per_sample_loss": "stagepose.train.losses",
    "evaluate_checkpoint": "stagepose.train.evaluate",
    "EvalReport": "stagepose.train.evaluate",
    "predict": "stagepose.train.evaluate",
    "score": "stagepose.train.evaluate",
    "flip_back": "stagepose.train.evaluate",
    "save_checkpoint": "stagepose.train.checkpoints",
    "load_checkpoint": "stagepose.train.checkpoints",
    "save_best_weights": "stagepose.train.checkpoints",
    "benchmark_training": "stagepose.train.bench",
    "TrainBench": "stagepose.train.bench",
    "TimeBudget": "stagepose.train.budget",
    "run_gpu_recipe": "stagepose.train.recipe",
    "RecipeSettings": "stagepose.train.recipe",
    "RecipeSummary": "stagepose.train.recipe_report",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
