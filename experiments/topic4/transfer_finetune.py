"""Topic 4: transfer learning on Fashion-MNIST: from scratch vs frozen ImageNet base vs fine-tuning.

  ycng run topic4/transfer_finetune [--workdir DIR]
  ycng run topic4/transfer_finetune --config.regimes="('frozen','finetune')"   # the cheap part
  ycng run topic4/transfer_finetune --config.regimes="('scratch',)" --config.seeds="(0,)"

EfficientNet-Lite0 on 64x64 RGB (upsampled grey) images with 1k and 10k seeded, class-balanced
labelled examples, 3 seeds: (a) the same network from random init, (b) the frozen ImageNet
backbone with a new head (blueprint 1), (c) then the top stages' conv kernels fine-tuned at a 10x
lower learning rate with batch norm kept in inference mode. Frozen parameters are checked
bit-identical after training. Finished runs are kept in <workdir>/runs and skipped on a rerun.
64x64: the smallest size at which the 32x-downsampling backbone keeps a 2x2 final map; 96x96
costs 2x the CPU time. Runner: ycng_jax.vision.transfer_experiment.
"""

from ycng_jax.vision.transfer_experiment import base_config


def get_config():
  config = base_config()
  config.image_size = 64
  config.train_sizes = (1000, 10000)
  config.seeds = (0, 1, 2)
  # scratch: about 30k examples seen per run at both sizes (equal compute), the costly part
  config.scratch.epochs = (30, 3)
  config.frozen.epochs = (20,)
  # fine-tuning: 10k examples seen at 1k labels, 30k at 10k (3 epochs) to bound the CPU time
  config.finetune.epochs = (10, 3)
  return config
