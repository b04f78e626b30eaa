"""The maths of every layer, plain: NumPy code that also runs on CuPy arrays (`xp_of`).

Contract, as in CS231n: `*_forward(inputs..., params...)` returns its outputs, then the
cache: `(out, cache)` for a layer, `(h, c, cache)` for an LSTM cell or step (the state it
carries is two arrays); `*_backward(dout, cache)` returns the gradients w.r.t. the inputs
(one array, or one per input) and a dict of parameter gradients keyed like the layer's
`params` ({} when there are none); each function's docstring gives its exact tuple.
No function here overwrites its inputs (except those documented as in place: the L2
gradient and the optimizers' updates). Functions marked @accelerated may be served by a
faster twin of tinynet.accel (see tinynet.dispatch); the code here is what they compute.

Where each equation of the paper lives:
    (1), (2)        rnn.rnn_step_forward / rnn_forward, rnn_output_forward
    (5)             conv.conv2d_forward (and its adjoint, conv.conv_transpose2d_forward)
    (6)             pool.maxpool2d_forward
    (7)             dense.dense_forward, activations.tanh_forward
    (8)-(13)        lstm.lstm_cell_forward, lstm_step_forward, lstm_forward
    (8)-(14)        decoder.decoder_forward / decoder_backward (direct attention, BPTT)
    (15)            losses.rmse_loss
    (16)            activations.relu_forward
    (17)            losses.l2_penalty, losses.add_l2_gradients
    dropout         dropout.dropout_forward (masks: dropout.dropout_mask, dropout.MaskSource)
"""
