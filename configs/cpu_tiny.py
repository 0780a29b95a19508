"""A tiny config for tests and CPU runs: few channels, one stack, small images, few steps."""

import ml_collections

from configs import nasbench101


def get_config() -> ml_collections.ConfigDict:
    c = nasbench101.get_config()
    c.stem_filter_size = 8
    c.num_stacks = 1
    c.num_modules_per_stack = 1
    c.dataset = "synthetic"
    c.image_size = 16
    c.train_size = 2_048
    c.eval_size = 512
    c.batch_size = 64
    c.train_epochs = 4
    c.checkpoint_every_steps = 16
    c.log_every_steps = 8
    c.compilation_cache_dir = ""  # tests and quick CPU runs leave no files behind
    return c
