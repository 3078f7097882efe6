"""nnU-Net v2 as a training backend: a job of an nnU-Net model under a paper-based preset is trained by nnU-Net.

The flow of one job (`job.run`, called by the runner like our own `run_training`):
1. `workspace`: the dataset laid out in nnU-Net's raw format at the protocol's `base_size` (2D PNG slices
   read by nnU-Net's NaturalImage2DIO), then nnU-Net's fingerprint, plan and preprocessing, once per
   dataset, split and size (cached under `<results>/nnunet/`, rebuilt when the slices change), and
   `splits_final.json` holding our five folds, so that nnU-Net's fold k is our fold k;
2. `child`: a subprocess (nnU-Net's folder variables, worker counts and threads set for it alone) trains
   fold k with nnU-Net's trainer (`trainer.BenchTrainer`, nnU-Net's `nnUNetTrainer` with our schedule
   and checkpoints), resuming from its last checkpoint, then runs nnU-Net's own validation of the fold,
   which predicts our test slices and saves their probabilities;
3. back in the job: the probabilities are scored by our metrics on the ground truth's grid into the same
   `record.json` / `per_slice.csv` every job writes, plus the test fold's maps for `evaluate --maps`.
"""
