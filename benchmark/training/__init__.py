"""Training: device-side augmentation, one (model, dataset, fold) job, the grid runner and the executors that
run the grid (in process, worker pool, Ray). What a job trains with is configuration one layer down:
benchmark.protocol (the presets) and benchmark.recipes (each model's recipe)."""
