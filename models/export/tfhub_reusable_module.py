"""A ``tf.Module`` whose SavedModel carries TF Hub's REUSABLE SavedModel attributes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from models import contract


class TfHubReusableModule(tf.Module):
    """Saves ``variables``, ``trainable_variables`` and ``regularization_losses`` as attributes.

    tf.Module computes these as properties, which ``tf.saved_model.save`` does not write; TF Hub
    consumers (``hub.KerasLayer(trainable=True)``, fine-tuning code) read them from the loaded
    object (tensorflow.org/hub/reusable_saved_models). The class attributes below shadow the
    properties so that :meth:`set_reusable_weights` can store plain tracked lists.

    Example::

        module = MyModule()  # a subclass
        module.set_reusable_weights(trainable=encoder.weights)
        loaded = tf.saved_model.load(path)
        len(loaded.trainable_variables)
    """

    variables: Any = ()
    trainable_variables: Any = ()
    regularization_losses: Any = ()

    def set_reusable_weights(
        self, *, trainable: Sequence[Any], non_trainable: Sequence[Any] = ()
    ) -> None:
        """Record the weights the callables read (Keras weights or tf.Variables)."""
        # The tf.Variable behind each Keras weight: the loaded attribute is then a list of
        # tf.Variables, the type TF Hub consumers expect.
        trainable_vars = [_tf_variable(w) for w in trainable]
        all_vars = trainable_vars + [_tf_variable(w) for w in non_trainable]
        setattr(self, contract.ATTR_VARIABLES, all_vars)
        setattr(self, contract.ATTR_TRAINABLE_VARIABLES, trainable_vars)
        # No weight decay or activity losses are part of these models.
        setattr(self, contract.ATTR_REGULARIZATION_LOSSES, [])


def _tf_variable(weight: Any) -> tf.Variable:
    if isinstance(weight, tf.Variable):
        return weight
    value = weight.value  # keras.Variable on the TensorFlow backend holds a tf.Variable
    if not isinstance(value, tf.Variable):
        raise TypeError(f"{weight!r} is not backed by a tf.Variable")
    return value
