"""Training objectives, one module per model family (lm, textgan, music, dcgan, vae), plus what they share
(common). Each family's `build_task(config, workdir)` gives the zoo.train.task.Task the training loop runs."""
