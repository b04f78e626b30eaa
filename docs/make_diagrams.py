"""The teaching diagrams of docs/walkthrough.md and docs/equations.md:
`python -m docs.make_diagrams [--out docs/img]`.

decoder_unrolled.png  the 5-layer LSTM decoder unrolled over the 28 rows: x_t, v and y_{t-1}
                      into the bottom layer, h and c to the right, dropout going up only,
                      y_t fed back (eqs. 8-14)
bptt_flow.png         its backward sweep: dh_next[l] and dc_next[l] to the left, the
                      gradient from above going down, dy_fed_back to the output of step t-1,
                      the loop order (t outer, l inner, both reversed)
lstm_cell.png         one LSTM cell (eqs. 8-13) with its forward values (green) and gradients
                      (red) on the wires, computed by tinynet for H = 1
im2col_col2im.png     a convolution's windows as columns (im2col) and back (col2im adds: the
                      overlap count per pixel), eq. 5
maxpool_routing.png   max pooling's forward and its gradient routed to each window's arg-max
                      (eq. 6)

The numbers in the last three come from tinynet's own functions on a tiny example.

Run as a command it sets TINYNET_NUMPY=1 first, so the plain NumPy functions draw them.
"""

import argparse
import os
from pathlib import Path

os.environ.setdefault("TINYNET_NUMPY", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

from tinynet.functional.conv import col2im, im2col  # noqa: E402
from tinynet.functional.lstm import lstm_step_backward, lstm_step_forward  # noqa: E402
from tinynet.functional.pool import maxpool2d_backward, maxpool2d_forward  # noqa: E402

FORWARD, BACKWARD, DROP, GREY = "#1a7f37", "#cf222e", "#8250df", "#57606a"
LAYERS, STEPS_SHOWN = 5, (0, 1, 2, None, 27)  # None: the elided steps 3 .. 26


def _box(ax, x, y, text, width=0.8, height=0.5, colour="#ddf4ff", fontsize=9):
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.03",
                                facecolor=colour, edgecolor="black", linewidth=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax, start, end, colour="black", style="-|>", linestyle="-", text=None, text_offset=(0, 0),
           fontsize=8, connection="arc3"):
    ax.annotate("", xy=end, xytext=start,
                arrowprops=dict(arrowstyle=style, color=colour, linestyle=linestyle, linewidth=1.1,
                                connectionstyle=connection, shrinkA=2, shrinkB=2))
    if text:
        ax.text((start[0] + end[0]) / 2 + text_offset[0], (start[1] + end[1]) / 2 + text_offset[1], text,
                color=colour, fontsize=fontsize, ha="center", va="center")


def _grid_axes(title, width=13, height=7.5):
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(-1.2, 2.2 * len(STEPS_SHOWN) - 0.3)
    ax.set_ylim(-2.2, LAYERS + 1.6)
    ax.axis("off")
    ax.set_title(title, fontsize=12)
    return fig, ax


def _column_x(k):
    return 2.2 * k + 0.6


def decoder_unrolled(path):
    fig, ax = _grid_axes("The decoder unrolled: 5 LSTM layers x 28 rows (eqs. 8-14); dropout only on the way up")
    for k, t in enumerate(STEPS_SHOWN):
        x = _column_x(k)
        if t is None:
            for l in range(LAYERS + 1):
                ax.text(x, l, "...", ha="center", va="center", fontsize=14)
            ax.text(x, -1.5, "steps 3 .. 26", ha="center", fontsize=8, color=GREY)
            continue
        for l in range(LAYERS):
            _box(ax, x, l, f"LSTM\nlayer {l}, t={t}", fontsize=7)
            if l + 1 < LAYERS:
                _arrow(ax, (x, l + 0.25), (x, l + 0.75), DROP, linestyle="--", text="drop", text_offset=(0.3, 0))
        _box(ax, x, LAYERS, f"y_{t} = σ(h⁴ W_out + b)", colour="#fff8c5", fontsize=7, width=1.7)
        _arrow(ax, (x, LAYERS - 0.75), (x, LAYERS - 0.25), DROP, linestyle="--", text="drop", text_offset=(0.3, 0))
        prev = "0" if t == 0 else f"y_{t - 1}"
        for dx, label in ((-0.3, f"x_{t}"), (0, "v"), (0.3, prev)):
            ax.text(x + dx, -1.0, label, ha="center", va="center", fontsize=8)
            _arrow(ax, (x + dx, -0.85), (x + dx * 0.5, -0.25))
        # h and c to the next step, in every layer
        next_k = k + 1
        if next_k < len(STEPS_SHOWN):
            for l in range(LAYERS):
                _arrow(ax, (x + 0.4, l), (_column_x(next_k) - 0.4, l), FORWARD, text="h, c", text_offset=(0, 0.15))
            if STEPS_SHOWN[next_k] is not None:  # y_t is the next step's y_{t-1}
                _arrow(ax, (x + 0.85, LAYERS), (_column_x(next_k) + 0.3, -0.85), "#9a6700",
                       linestyle=":", connection="arc3,rad=-0.25")
                ax.text(x + 1.1, LAYERS - 0.45, f"y_{t} fed back", color="#9a6700", fontsize=7, ha="center")
    ax.text(-1.1, -2.0, "Bottom layer: reads the corrupted row x_t, the thought vector v and its previous "
            "output row y_{t-1} (direct attention: no attention weights). h, c, y start at 0.\n"
            "Layers 1-4 read drop(h of the layer below) and their own h_{t-1}. Dropout (25 %, a fresh mask "
            "every step) sits on the upward arrows only, never on the recurrent h, c arrows.",
            fontsize=8, color=GREY, va="bottom")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def bptt_flow(path):
    fig, ax = _grid_axes("Backward through time: t outer (27 down to 0), l inner (4 down to 0)")
    last = STEPS_SHOWN[-1]
    for k, t in reversed(list(enumerate(STEPS_SHOWN))):
        x = _column_x(k)
        if t is None:
            for l in range(LAYERS + 1):
                ax.text(x, l, "...", ha="center", va="center", fontsize=14)
            continue
        _box(ax, x, LAYERS, f"output row t={t}\ndz = (dŷ_t + dy_fed_back) ⊙ y(1-y)", colour="#fff8c5",
             fontsize=6.5, width=1.6)
        _arrow(ax, (x, LAYERS - 0.25), (x, LAYERS - 0.75), BACKWARD, text="d_up ⊙ mask", text_offset=(0.45, 0))
        for l in reversed(range(LAYERS)):
            order = (last - t) * LAYERS + (LAYERS - 1 - l) + 1
            _box(ax, x, l, f"#{order}\ncell backward\nl={l}, t={t}", colour="#ffebe9", fontsize=6.5)
            if l > 0:
                _arrow(ax, (x, l - 0.25), (x, l - 0.75), BACKWARD, text="d_up ⊙ mask", text_offset=(0.45, 0))
        if k > 0:
            prev_x = _column_x(k - 1)
            for l in range(LAYERS):
                _arrow(ax, (x - 0.4, l), (prev_x + 0.4, l), BACKWARD, text=f"dh_next[{l}], dc_next[{l}]",
                       text_offset=(0, 0.17), fontsize=6.5)
            if STEPS_SHOWN[k - 1] is not None:
                _arrow(ax, (x - 0.3, -0.25), (prev_x + 0.3, LAYERS - 0.3), "#9a6700", linestyle=":",
                       connection="arc3,rad=0.3")
                ax.text(prev_x + 1.1, LAYERS - 0.45, f"dy_fed_back = d y_{STEPS_SHOWN[k - 1]}", color="#9a6700",
                        fontsize=7, ha="center")
        ax.text(x, -1.0, f"dx_{t}, dv (after the sweep)", ha="center", fontsize=7, color=GREY)
    ax.text(-1.1, -2.0, "#n: the order in which the 140 cells are visited. At each cell: dh = d_up (times the layer's "
            "dropout mask) + dh_next[l]; the cell's backward gives da and dc_next[l];\n"
            "da [W^h; W^x]^T splits into dh_next[l] and the gradient for the layer below (layer 0: dy_fed_back "
            "for the output row of step t-1). Weight gradients: one product over all steps afterwards.",
            fontsize=8, color=GREY, va="bottom")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def cell_values(seed=7):
    """Forward values and gradients of one H = 1 LSTM cell (tinynet.functional.lstm), with
    the gradients of every gate recovered from the chain rule and checked against tinynet."""
    rng = np.random.default_rng(seed)
    x, h_prev, c_prev = rng.standard_normal((1, 1)), rng.standard_normal((1, 1)), rng.standard_normal((1, 1))
    Wx, Wh, b = (0.5 * rng.standard_normal(shape) for shape in ((1, 4), (1, 4), (4,)))
    h, c, cache = lstm_step_forward((x, h_prev), c_prev.copy(), (Wx, Wh), b)
    dh, dc = np.array([[0.5]]), np.array([[-0.3]])
    (_, dh_prev), dc_prev, _, da = lstm_step_backward(dh, dc, cache)
    a = x @ Wx + h_prev @ Wh + b
    sig = 1 / (1 + np.exp(-a))
    i, f, g, o = sig[0, 0], sig[0, 1], np.tanh(a[0, 2]), sig[0, 3]
    tanh_c = np.tanh(c[0, 0])
    dc_total = dc[0, 0] + dh[0, 0] * o * (1 - tanh_c**2)
    grads = {"di": dc_total * g, "df": dc_total * c_prev[0, 0], "dg": dc_total * i, "do": dh[0, 0] * tanh_c,
             "dc_total": dc_total, "dc_prev": dc_total * f}
    slopes = np.array([i * (1 - i), f * (1 - f), 1 - g * g, o * (1 - o)])
    expected_da = np.array([grads["di"], grads["df"], grads["dg"], grads["do"]]) * slopes
    assert np.allclose(da, expected_da) and np.isclose(dc_prev[0, 0], grads["dc_prev"]), "cell gradients"
    values = {"c_prev": c_prev[0, 0], "i": i, "f": f, "g": g, "o": o, "c": c[0, 0], "tanh_c": tanh_c, "h": h[0, 0],
              "dh": dh[0, 0], "dc": dc[0, 0]}
    return values, grads


def lstm_cell(path):
    v, d = cell_values()
    fig, ax = plt.subplots(figsize=(12, 6.5))
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 7)
    ax.axis("off")
    ax.set_title("One LSTM cell (eqs. 8-13), H = 1: forward values in green, gradients in red", fontsize=12)
    _box(ax, 1.2, 1.2, "a = x W^x + h_{t-1} W^h + b", width=2.2, fontsize=8)
    gates = (("i = σ(a_i)", 3.2, "i", "di"), ("f = σ(a_f)", 5.0, "f", "df"), ("g = tanh(a_g)", 6.8, "g", "dg"),
             ("o = σ(a_o)", 8.6, "o", "do"))
    for label, x, key, dkey in gates:
        _box(ax, x, 2.6, label, width=1.5, colour="#fff8c5", fontsize=8)
        _arrow(ax, (1.9, 1.5), (x, 2.33), GREY)
        ax.text(x + 0.1, 3.15, f"{v[key]:.3f}", color=FORWARD, fontsize=8, ha="left")
        ax.text(x + 0.1, 2.0, f"{dkey} {d[dkey]:+.3f}", color=BACKWARD, fontsize=8, ha="left")
    # the cell path: c_prev -> x f -> + -> c
    _box(ax, 5.0, 5.4, "×", width=0.5, colour="white")
    _box(ax, 6.8, 5.4, "+", width=0.5, colour="white")
    _box(ax, 6.8, 4.2, "×", width=0.5, colour="white")
    _box(ax, 9.4, 5.4, "tanh", width=0.7, colour="white")
    _box(ax, 9.4, 4.2, "×", width=0.5, colour="white")
    _arrow(ax, (0.6, 5.4), (4.75, 5.4), text=f"c_{{t-1}} = {v['c_prev']:.3f}", text_offset=(0, 0.25), colour=FORWARD)
    ax.text(2.6, 5.0, f"dc_{{t-1}} = dc_t ⊙ f = {d['dc_prev']:+.3f}", color=BACKWARD, fontsize=8, ha="center")
    _arrow(ax, (5.0, 2.87), (5.0, 5.15), GREY)
    _arrow(ax, (5.25, 5.4), (6.55, 5.4), FORWARD)
    _arrow(ax, (3.2, 2.87), (6.55, 4.2), GREY)
    _arrow(ax, (6.8, 2.87), (6.8, 3.95), GREY)
    _arrow(ax, (6.8, 4.45), (6.8, 5.15), FORWARD)
    _arrow(ax, (7.05, 5.4), (9.05, 5.4), text=f"c_t = {v['c']:.3f}", text_offset=(0, 0.25), colour=FORWARD)
    ax.text(8.0, 5.0, f"dc_t = {d['dc_total']:+.3f}", color=BACKWARD, fontsize=8, ha="center")
    _arrow(ax, (7.9, 5.4), (11.6, 6.4), text="c_t to step t+1", text_offset=(0.3, 0.2), colour=FORWARD)
    ax.text(10.6, 6.6, f"dc from t+1 = {v['dc']:+.3f}", color=BACKWARD, fontsize=8)
    _arrow(ax, (9.4, 5.15), (9.4, 4.45), text=f"tanh c = {v['tanh_c']:.3f}", text_offset=(0.75, 0), colour=FORWARD)
    _arrow(ax, (8.6, 2.87), (9.15, 4.2), GREY)
    _arrow(ax, (9.65, 4.2), (11.6, 4.2), text=f"h_t = {v['h']:.3f}", text_offset=(0, 0.25), colour=FORWARD)
    ax.text(10.6, 3.7, f"dh = {v['dh']:+.3f}\n(from above + from t+1)", color=BACKWARD, fontsize=8, ha="center")
    ax.text(0.3, 0.15, "c_t = f c_{t-1} + i g (12);  h_t = o tanh(c_t) (13).  "
            "Backward: dc_t = dc + dh ⊙ o (1 - tanh² c_t); di = dc_t g, df = dc_t c_{t-1}, dg = dc_t i, "
            "do = dh tanh c_t;\nthen each times its slope (σ' = s(1-s), tanh' = 1 - g²) gives da. "
            "The cell path multiplies the gradient by f only: the 'gradient highway'.",
            fontsize=8, color=GREY)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _matrix(ax, values, title, highlight=None, fmt="{:.0f}", cmap="Blues"):
    ax.imshow(values, cmap=cmap, vmin=min(0, values.min()), vmax=max(values.max(), 1e-9) * 1.6)
    for (r, c), value in np.ndenumerate(values):
        ax.text(c, r, fmt.format(value), ha="center", va="center", fontsize=8)
    if highlight is not None:
        for (r0, c0, h, w, colour) in highlight:
            ax.add_patch(plt.Rectangle((c0 - 0.5, r0 - 0.5), w, h, fill=False, edgecolor=colour, linewidth=2.2))
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def im2col_col2im(path):
    H = W = 4
    k = 3
    x = np.arange(1, H * W + 1, dtype=np.float64).reshape(1, 1, H, W)
    cols = im2col(x, k, k, 1, 0)  # (9, 4): one column per window
    overlap = col2im(np.ones_like(cols), x.shape, k, k, 1, 0)[0, 0]  # how many windows read each pixel
    colours = ("#cf222e", None, "#0969da")
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1, 1.1, 1]})
    _matrix(axes[0], x[0, 0], "input x (4x4): windows 0 (red) and 3 (blue)\nof the four 3x3 windows overlap",
            [(0, 0, k, k, colours[0]), (1, 1, k, k, colours[2])])
    _matrix(axes[1], cols, "im2col: cols (C·kh·kw, N·Ho·Wo) = (9, 4),\none column per window; y = W_rows @ cols",
            [(0, 0, 9, 1, colours[0]), (0, 3, 9, 1, colours[2])])
    _matrix(axes[2], overlap, "col2im(ones): windows per pixel\ndx gets the SUM of their gradients (+=)",
            cmap="Oranges")
    fig.suptitle("Eq. (5) as one matrix product: backward dcols = W_rows^T dy_rows, then col2im adds every "
                 "column back where its window was read", fontsize=10, y=1.06)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def maxpool_routing(path):
    rng = np.random.default_rng(5)
    x = rng.permutation(16).astype(np.float64).reshape(1, 1, 4, 4)
    y, cache = maxpool2d_forward(x, size=2, stride=2)
    dy = np.array([[[[0.1, -0.2], [0.3, 0.4]]]])
    dx, _ = maxpool2d_backward(dy, cache)
    winners = [(r, c, 1, 1, "#cf222e") for r, c in zip(*np.nonzero(dx[0, 0]))]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    _matrix(axes[0], x[0, 0], "x (4x4), winners framed", winners + [(r, c, 2, 2, GREY) for r in (0, 2) for c in (0, 2)])
    _matrix(axes[1], y[0, 0], "y = max over each 2x2 window")
    _matrix(axes[2], dy[0, 0], "dy (from above)", fmt="{:+.1f}", cmap="Reds")
    _matrix(axes[3], dx[0, 0], "dx: dy routed to the arg-max,\n0 elsewhere (+= where windows overlap)",
            winners, fmt="{:+.1f}", cmap="Reds")
    fig.suptitle("Eq. (6): max pooling's gradient goes to each window's winner only", fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


DIAGRAMS = {
    "decoder_unrolled.png": decoder_unrolled,
    "bptt_flow.png": bptt_flow,
    "lstm_cell.png": lstm_cell,
    "im2col_col2im.png": im2col_col2im,
    "maxpool_routing.png": maxpool_routing,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "img"), help="folder for the PNG files")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, draw in DIAGRAMS.items():
        draw(out / name)
        print(out / name)


if __name__ == "__main__":
    main()
