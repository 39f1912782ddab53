"""The training machinery behind `experiments/train.py`: configuration, data, optimizer,
objective, data-parallel placement, checkpoints, metrics, evaluation across lengths, the loop."""
