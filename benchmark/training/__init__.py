"""Training: the protocol presets, device-side augmentation, one (model, dataset, fold) job, the grid runner
and the executors that run the grid (in process, worker pool, Ray)."""
