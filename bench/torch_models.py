"""The PyTorch twins of mnist_half's models, the yardstick of bench.step.

Written as a PyTorch user would write them: eager modules, one nn.LSTMCell per decoder
layer, float32, torch.optim.Adam. `tinynet_layout` maps every tinynet parameter onto a view
of the twin's parameter, so the twin can start from tinynet's weights and its gradients can
be compared with tinynet's (tests/test_bench.py proves both models compute the same thing).
"""

from collections import OrderedDict

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ModuleNotFoundError as error:  # re-raised as the same kind, so pytest.importorskip skips
    raise ModuleNotFoundError(f"--compare-torch needs PyTorch ({error}): pip install -e '.[bench]'",
                              name=error.name) from error

from mnist_half.models import IMAGE_SIZE


def _same(t):
    return t


def _transposed(t):
    return t.T


def conv_encoder():
    """Table 1 up to MaxPool 2, named like tinynet's conv_encoder."""
    return [
        ("conv1", nn.Conv2d(1, 32, 5, padding=2)),
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(32, 64, 5, padding=2)),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
    ]


def _layer_layout(module, prefix, names, W_view):
    """{'prefix/name/W': (weight, W_view), 'prefix/name/b': (bias, same)} for each named sub-layer."""
    layout = {}
    for name in names:
        layer = getattr(module, name)
        layout[f"{prefix}{name}/W"] = (layer.weight, W_view)
        layout[f"{prefix}{name}/b"] = (layer.bias, _same)
    return layout


class TorchCNNLSTM(nn.Module):
    """mnist_half.models.CNNLSTM: conv encoder, v = tanh(fc), then `layers` LSTM cells over the
    28 rows. The bottom cell reads cat[x_t, v, y_{t-1}], the others the h below; dropout acts
    on each layer's h on its way up (output layer included); y_t = sigmoid(out(h)) is fed back.

    nn.LSTMCell has two biases (b_ih + b_hh) where tinynet has one: b_hh stays 0 and is not
    trained, so the trainable parameters match tinynet's one for one.
    """

    def __init__(self, hidden=128, layers=5, thought=100, dropout=0.25):
        super().__init__()
        self.hidden, self.thought, self.dropout = hidden, thought, dropout
        self.encoder = nn.Sequential(OrderedDict(conv_encoder() + [
            ("flatten", nn.Flatten()),
            ("fc", nn.Linear(64 * 7 * 7, thought)),
            ("tanh", nn.Tanh()),
        ]))
        bottom_inputs = IMAGE_SIZE + thought + IMAGE_SIZE
        self.cells = nn.ModuleList(nn.LSTMCell(bottom_inputs if l == 0 else hidden, hidden)
                                   for l in range(layers))
        for cell in self.cells:
            nn.init.zeros_(cell.bias_hh)
            cell.bias_hh.requires_grad_(False)
        self.out = nn.Linear(hidden, IMAGE_SIZE)

    def forward(self, x):
        """x: (N, 28, 28) -> (N, 28, 28)."""
        N, T, D = x.shape
        v = self.encoder(x[:, None])
        h = [x.new_zeros(N, self.hidden) for _ in self.cells]
        c = [x.new_zeros(N, self.hidden) for _ in self.cells]
        y_prev = x.new_zeros(N, D)
        rows = []
        for t in range(T):
            up = torch.cat([x[:, t], v, y_prev], dim=1)
            for l, cell in enumerate(self.cells):
                h[l], c[l] = cell(up, (h[l], c[l]))
                up = F.dropout(h[l], self.dropout, self.training)
            y_prev = torch.sigmoid(self.out(up))
            rows.append(y_prev)
        return torch.stack(rows, dim=1)

    def tinynet_layout(self):
        """{tinynet name: (torch parameter, view)}: view(tensor shaped like the parameter,
        its data or its grad) is that tensor in tinynet's layout (a view, not a copy)."""
        layout = _layer_layout(self.encoder, "encoder/", ("conv1", "conv2"), _same)
        layout.update(_layer_layout(self.encoder, "encoder/", ("fc",), _transposed))
        D, V = IMAGE_SIZE, self.thought
        for l, cell in enumerate(self.cells):
            prefix = f"decoder/layer{l}/"
            if l == 0:  # weight_ih's columns follow the input cat[x_t, v, y_{t-1}]
                for key, columns in (("Wx", slice(0, D)), ("Wv", slice(D, D + V)), ("Wy", slice(D + V, None))):
                    layout[prefix + key] = (cell.weight_ih, lambda t, columns=columns: t[:, columns].T)
            else:
                layout[prefix + "Wx"] = (cell.weight_ih, _transposed)
            layout[prefix + "Wh"] = (cell.weight_hh, _transposed)
            layout[prefix + "b"] = (cell.bias_ih, _same)
        layout.update(_layer_layout(self, "decoder/", ("out",), _transposed))
        return layout


class TorchCNNCNN(nn.Module):
    """mnist_half.models.CNNCNN: the conv encoder, dropout, two transposed convolutions
    64@7x7 -> 32@14x14 -> 1@28x28 and a sigmoid."""

    def __init__(self, dropout=0.25):
        super().__init__()
        self.layers = nn.Sequential(OrderedDict(conv_encoder() + [
            ("dropout", nn.Dropout(dropout)),
            ("deconv1", nn.ConvTranspose2d(64, 32, 5, stride=2, padding=2, output_padding=1)),
            ("relu3", nn.ReLU()),
            ("deconv2", nn.ConvTranspose2d(32, 1, 5, stride=2, padding=2, output_padding=1)),
            ("sigmoid", nn.Sigmoid()),
        ]))

    def forward(self, x):
        return self.layers(x[:, None])[:, 0]

    def tinynet_layout(self):
        return _layer_layout(self.layers, "", ("conv1", "conv2", "deconv1", "deconv2"), _same)


def build_torch_twin(name, hidden, layers, dropout):
    """The twin of mnist_half.models.build_model(name, ...), float32, in training mode."""
    if name == "cnn-lstm":
        return TorchCNNLSTM(hidden=hidden, layers=layers, dropout=dropout)
    if name == "cnn-cnn":
        return TorchCNNCNN(dropout=dropout)
    raise ValueError(f"no PyTorch twin for model {name!r}")


def trainable(model):
    return [p for p in model.parameters() if p.requires_grad]


def l2_weights(model):
    """The parameters that take the L2 penalty (eq. 17): weights, not biases (tinynet's weight_keys)."""
    return [p for name, p in model.named_parameters() if p.requires_grad and "bias" not in name]


def load_tinynet_params(model, flat):
    """Copy tinynet's parameters (a flat {name: NumPy array} from named_params()) into the twin."""
    layout = model.tinynet_layout()
    if set(layout) != set(flat):
        raise KeyError(f"parameters differ: {sorted(set(layout) ^ set(flat))}")
    with torch.no_grad():
        for name, (param, view) in layout.items():
            view(param).copy_(torch.from_numpy(np.ascontiguousarray(flat[name])))


def tinynet_grads(model):
    """The twin's gradients as a flat {tinynet name: NumPy array} in tinynet's layout."""
    return {name: view(param.grad).detach().cpu().numpy() for name, (param, view) in model.tinynet_layout().items()}


def torch_step(model, optimizer, x, y, l2, clip):
    """One training iteration, as mnist_half.training.training_update: forward, RMSE (eq. 15) + L2 (eq. 17),
    backward, gradient clipping to norm `clip`, Adam. Returns the RMSE (no host sync)."""
    optimizer.zero_grad(set_to_none=True)
    rmse = torch.sqrt(torch.mean((model(x) - y) ** 2))
    penalty = l2 * sum(w.pow(2).sum() for w in l2_weights(model))
    (rmse + penalty).backward()
    nn.utils.clip_grad_norm_(trainable(model), clip)
    optimizer.step()
    return rmse.detach()
