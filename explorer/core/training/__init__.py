"""Training a stack as a classifier, without Qt.

- ``datasets``: ``load_dataset(spec, input_spec, seed) -> Dataset`` for ``"xo"``, a CIFAR-10 folder or
  tarball, or an image folder; ``make_xo`` draws X-versus-O glyphs.
- ``trainer``: ``train(stack, dataset, TrainSettings, control, on_step, on_epoch) -> TrainResult``,
  ``plan_training`` (refuses a stack that cannot classify, naming the fix) and ``apply_states``
  (trained weights into the layers' ``state``).
- ``report``: history.json, confusion.json and kernel pictures for ``feature-map-explorer train``."""
