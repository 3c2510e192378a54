"""The walkthrough of a real network (VGG-16, LeNet, other torchvision classifiers): one forward
pass with hooks captures every stage's output, and each stage carries what the classic text says
about it: a title, one sentence, its shape, parameters (and the running total), multiply-adds and
the receptive field of one output pixel on the input. No Qt here; the window only displays this.

A stage is what the classic explanation calls one step: a convolution with its BatchNorm and ReLU,
a pooling, the flatten, a fully connected layer with its ReLU (and Dropout, which does nothing in
evaluation), the softmax. Blocks that are not plain layers (a ResNet BasicBlock, an adaptive pool)
are one "opaque" stage. torchvision's VGG flattens with ``torch.flatten`` in its forward and has no
softmax: both stages are synthesized from the tensors the hooks see (the flatten is a view, no copy).

The modules, in the order the data goes through them:

* ``records``     the typed results: ``Stage`` (one step, as torchinfo's ``LayerInfo`` is one layer),
                  ``Walkthrough`` (all steps, their outputs and the probabilities), ``WalkthroughError``;
* ``preprocess``  the input as the model expects it (torchvision's preset transforms of the weights);
* ``trace``       the hooked forward pass, which yields one ``TraceRecord`` per stage;
* ``measure``     parameters, multiply-adds and receptive fields of a record (``core.receptive_field``);
* ``describe``    the title and the sentence of each stage;
* ``capture``     the entry points: ``capture``, ``capture_prepared``, ``plan`` (shapes only);
* ``to_stack``    'Send to stack': stages as LayerSpecs with their weights;
* ``export``      summary.json and one PNG grid per stage (the ``walkthrough`` command).

What is imported from this package is its public interface."""

from explorer.core.walkthrough.records import KINDS, RANDOM_NOTICE, Stage, Walkthrough, WalkthroughError
from explorer.core.walkthrough.preprocess import (denormalize, eight_bit_picture, imagenet_preset, prepare_input,
                                                  resize_size)
from explorer.core.walkthrough.capture import capture, capture_prepared, plan
from explorer.core.walkthrough.to_stack import to_stack
from explorer.core.walkthrough.export import export_walkthrough, partial_walkthrough, stage_image_name, summary

__all__ = ["KINDS", "RANDOM_NOTICE", "Stage", "Walkthrough", "WalkthroughError", "capture", "capture_prepared",
           "denormalize", "eight_bit_picture", "export_walkthrough", "imagenet_preset", "partial_walkthrough", "plan",
           "prepare_input", "resize_size", "stage_image_name", "summary", "to_stack"]
