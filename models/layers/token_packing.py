"""Where a batch's real tokens sit, so the per-token layers can skip the padding.

A batch of texts is padded to ``[batch, seq]``; with texts of mixed lengths most of the slots
can be padding (stsb-en-test in file order, batches of 32: ~2.5 padded slots per real token).
The projections and the FFN (nearly all of an encoder's FLOPs) act on each token alone, so the
encoder runs them on ``[tokens, width]`` 2-D tensors and goes back to ``[batch, seq, width]``
only for attention (which mixes the tokens of one text) and for its outputs. With
``skip_padding`` the tokens are the real ones only (the "unpadded" layout of TEI and
FasterTransformer; in TensorFlow two gathers); without it they are every slot, reshaped.
"""

from __future__ import annotations

from typing import Any

from keras import ops


class TokenPacking:
    """Flattens ``[batch, seq, ...]`` tensors to ``[tokens, ...]`` and back.

    ``mask`` is the ``[batch, seq]`` input mask (1 = real token, at any position). With
    ``skip_padding`` only the real tokens are kept and :meth:`unpack` puts zeros at the padded
    positions; without it every position is a token, so padded positions are computed as the
    reference computes them (what a TF Hub encoder's ``sequence_output`` promises).

    Example::

        packing = TokenPacking(input_mask, skip_padding=True)
        tokens = packing.pack(hidden)          # [real tokens, hidden]
        hidden = packing.unpack(tokens)        # [batch, seq, hidden], zeros at padding
    """

    def __init__(self, mask: Any, *, skip_padding: bool) -> None:
        shape = ops.shape(mask)
        self.batch_size, self.seq_length = shape[0], shape[1]
        self.skip_padding = skip_padding
        if not skip_padding:
            return
        real = ops.reshape(ops.not_equal(mask, 0), (-1,))
        #: [tokens] int32: each real token's position in the flattened [batch * seq].
        self._token_index = ops.cast(ops.nonzero(real)[0], "int32")
        num_tokens = ops.shape(self._token_index)[0]
        #: [batch, seq] int32: each slot's packed row, or ``num_tokens`` (a zero row) at padding.
        packed_row = ops.cumsum(ops.cast(real, "int32")) - 1
        shape = (self.batch_size, self.seq_length)
        self._padded_index = ops.reshape(ops.where(real, packed_row, num_tokens), shape)
        #: the same with row 0 (any real token) at padding: no zero row to append.
        self._padded_index_any = ops.reshape(ops.where(real, packed_row, 0), shape)

    def pack(self, padded: Any) -> Any:
        """``[batch, seq, ...]`` -> ``[tokens, ...]``."""
        flat = ops.reshape(padded, (self.batch_size * self.seq_length, *ops.shape(padded)[2:]))
        return ops.take(flat, self._token_index, axis=0) if self.skip_padding else flat

    def unpack(self, packed: Any, *, zeros_at_padding: bool = True) -> Any:
        """``[tokens, ...]`` -> ``[batch, seq, ...]``, zeros at the skipped padded positions.

        ``zeros_at_padding=False`` leaves a copy of some real token there instead, one copy
        less: for attention's keys and values, which the attention bias masks at padding, and
        its queries, whose padded rows :meth:`pack` drops.
        """
        if not self.skip_padding:
            return ops.reshape(packed, (self.batch_size, self.seq_length, *ops.shape(packed)[1:]))
        if not zeros_at_padding:
            return ops.take(packed, self._padded_index_any, axis=0)
        with_zero_row = ops.concatenate([packed, ops.zeros_like(packed[:1])], axis=0)
        return ops.take(with_zero_row, self._padded_index, axis=0)
