import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from ser.cnn_lstm import (LFLB, CNNLSTM, BatchNormELUPool, FastDropout, KerasLSTM, prepare,
                          recalibrate_batchnorm)
from conftest import section
from ser.stages.train_cnn_lstm import fit, make_step, network_args, summary_info

TINY = dict(filters=[4, 4, 8, 8], lstm_units=16)
WINDOW = {"n_mels": 128, "win_size": 128}


def net(n_classes: int, **kw) -> CNNLSTM:
    """The network params.yaml defines (train_cnn_lstm), with some values changed."""
    return CNNLSTM(n_classes, **network_args(section("train_cnn_lstm", **kw), WINDOW))


def test_shapes_through_every_block():
    m = net(7).eval()
    x = torch.randn(2, 5, 128, 128)
    z = x.reshape(10, 1, 128, 128)
    sizes = []
    for block in m.blocks:
        z = block(z)
        sizes.append(tuple(z.shape[1:]))
    assert sizes == [(64, 64, 64), (64, 16, 16), (128, 4, 4), (128, 1, 1)]
    assert m(x).shape == (2, 7) and m.window_features == 128


def test_keras_style_initialisation():
    m = net(7, lstm="torch")
    assert m.blocks[0][1].momentum == 0.01 and m.blocks[0][1].eps == 1e-3
    f_bias = m.lstm.rnn.bias_ih_l0.chunk(4)[1]
    assert torch.all(f_bias == 1) and torch.all(m.lstm.rnn.bias_hh_l0 == 0)


def test_keras_lstm_initialisation():
    """Keras initialises the whole (inputs, 4 x units) kernel at once: a smaller Glorot limit
    than per gate, and recurrent rows orthonormal across the four gates."""
    m = net(7)
    assert isinstance(m.lstm, KerasLSTM)
    k, r, b = m.lstm.kernel[0], m.lstm.recurrent[0], m.lstm.bias[0]
    assert k.shape == (128, 1024) and r.shape == (256, 1024)
    limit = (6 / (128 + 1024)) ** 0.5
    assert k.abs().max() <= limit and k.abs().max() > 0.95 * limit
    assert torch.allclose(r @ r.T, torch.eye(256), atol=1e-5)
    assert torch.all(b[256:512] == 1) and torch.all(b[:256] == 0) and torch.all(b[512:] == 0)
    with pytest.raises(ValueError, match="lstm must be"):
        CNNLSTM(7, **{**network_args(section("train_cnn_lstm"), WINDOW), "lstm": "gru"})


def _keras_lstm_numpy(x, kernel, recurrent, bias, masks=None):
    """Keras 2.2.4's LSTMCell (implementation 1), written out gate by gate."""
    u = recurrent.shape[0]
    hs = lambda v: np.clip(0.2 * v + 0.5, 0.0, 1.0)
    gate = {g: slice(j * u, (j + 1) * u) for j, g in enumerate("ifco")}
    h = np.zeros((x.shape[0], u))
    c = np.zeros((x.shape[0], u))
    for t in range(x.shape[1]):
        xs = {g: x[:, t] * (1.0 if masks is None else masks[:, j]) for j, g in enumerate("ifco")}
        pre = {g: xs[g] @ kernel[:, gate[g]] + bias[gate[g]] + h @ recurrent[:, gate[g]]
               for g in "ifco"}
        c = hs(pre["f"]) * c + hs(pre["i"]) * np.tanh(pre["c"])
        h = hs(pre["o"]) * np.tanh(c)
    return h


@pytest.mark.parametrize("training", [False, True])
def test_keras_lstm_follows_keras_equations(training):
    """Hard-sigmoid gates (clipping reached: large inputs) and, in training, one input-dropout
    mask per gate, drawn once and kept for every time step."""
    torch.manual_seed(0)
    m = KerasLSTM(6, 5, dropout=0.3).double().train(training)
    with torch.no_grad():
        m.bias[0].normal_()
    x = torch.randn(4, 3, 6, dtype=torch.double) * 3
    torch.manual_seed(1)
    y = m(x).detach().numpy()
    masks = None
    if training:
        torch.manual_seed(1)
        masks = (torch.bernoulli(torch.full((4, 4, 6), 0.7)).double() / 0.7).numpy()
        assert len({masks[:, j].tobytes() for j in range(4)}) == 4  # the gates' masks differ
    ref = _keras_lstm_numpy(x.numpy(), *(p.detach().numpy() for p in
                                         (m.kernel[0], m.recurrent[0], m.bias[0])), masks)
    assert np.allclose(y, ref, atol=1e-12)
    pre = x.reshape(-1, 6) @ m.kernel[0].detach()
    assert (pre.abs() > 2.5).float().mean() > 0.1  # the clipped part of hard_sigmoid is exercised


def test_keras_lstm_stacks_and_runs_in_float32_under_autocast():
    torch.manual_seed(0)
    m = KerasLSTM(8, 6, layers=2, dropout=0.2).eval()
    x = torch.randn(3, 4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x.bfloat16())
    assert y.shape == (3, 6) and y.dtype == torch.float32
    assert torch.equal(y, m(x.bfloat16().float()))
    m.train()
    m(x).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_fast_dropout_distribution_and_gradient():
    torch.manual_seed(0)
    d = FastDropout(0.2).train()
    x = torch.ones(64, 8, 32, 32).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = d(x)
    kept = (y != 0).float().mean().item()
    assert kept == pytest.approx(0.8, abs=0.01)
    assert torch.allclose(y[y != 0], torch.tensor(1.25))
    y.sum().backward()
    assert torch.equal(x.grad != 0, y != 0)
    assert d.eval()(x) is x


@pytest.mark.parametrize("pool", [2, 4])
def test_pool_first_block_is_the_same_function(pool):
    """BatchNormELUPool must equal BatchNorm -> ELU -> MaxPool in values, gradients and running
    statistics, in training and eval mode, with negative BN scales too (float64: exact maths)."""
    torch.manual_seed(0)
    ref = LFLB(3, 8, 3, pool, 0.0, 0.1, 1e-3, fast_dropout=True, pool_first=False).double()
    fused = LFLB(3, 8, 3, pool, 0.0, 0.1, 1e-3, fast_dropout=True, pool_first=True).double()
    assert isinstance(fused[1], BatchNormELUPool) and len(fused) == 3
    with torch.no_grad():
        ref[1].weight.copy_(torch.tensor([1.5, -0.7, 0.3, -2.0, 1.0, 0.05, -0.1, 0.8]))
        ref[1].bias.copy_(torch.randn(8))
    fused.load_state_dict(ref.state_dict())  # same keys: checkpoints work either way
    x = torch.randn(6, 3, 16, 16, dtype=torch.double) * 3 + 1
    for training in (True, True, False):
        ref.train(training), fused.train(training)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = ref(xa), fused(xb)
        g = torch.randn_like(ya)
        (ya * g).sum().backward()
        (yb * g).sum().backward()
        torch.testing.assert_close(yb, ya)
        torch.testing.assert_close(xb.grad, xa.grad)
        for (name, pa), pb in zip(ref.named_parameters(), fused.parameters()):
            torch.testing.assert_close(pb.grad, pa.grad, msg=name)
        for key, va in ref.state_dict().items():
            torch.testing.assert_close(fused.state_dict()[key], va, msg=key)
        ref.zero_grad(), fused.zero_grad()
        x = x.flip(0)


def test_pool_first_bf16_channels_last_matches_reference():
    """The fast path (bf16 autocast, channels-last) stays within bf16 rounding of the reference."""
    torch.manual_seed(0)
    ref = LFLB(1, 16, 3, 2, 0.0, 0.01, 1e-3, fast_dropout=True, pool_first=False)
    fused = LFLB(1, 16, 3, 2, 0.0, 0.01, 1e-3, fast_dropout=True, pool_first=True)
    fused.load_state_dict(ref.state_dict())
    x = (torch.randn(8, 1, 64, 64) * 20 - 40).contiguous(memory_format=torch.channels_last)
    ref, fused = (m.to(memory_format=torch.channels_last) for m in (ref, fused))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ya, yb = ref(x), fused(x)
    assert yb.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(yb.float(), ya.float(), atol=0.05, rtol=0.02)
    torch.testing.assert_close(fused[1].running_var, ref[1].running_var, rtol=1e-2, atol=1e-3)


def _batch(n=16, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, 5, 128, 128, generator=g) * 5 - 40
    x += y[:, None, None, None].float() * 3  # a learnable signal
    return x, y


def test_one_step_lowers_loss():
    torch.manual_seed(0)
    x, y = _batch()
    m = net(4, **TINY)
    m, ac = prepare(m, device="cpu", channels_last=True, bf16=False)
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.8)
    step = make_step(m, opt, ac)
    m.eval()
    with torch.no_grad():
        before = F.cross_entropy(m(x), y).item()
    step(x, y)
    m.eval()
    with torch.no_grad():
        after = F.cross_entropy(m(x), y).item()
    assert after < before


def test_overfits_a_handful_and_eval_spreads_over_classes():
    """Proof that it learns; and eval-mode predictions (after BN recalibration) are not one class."""
    torch.manual_seed(0)
    x, y = _batch(12, 4)
    m = net(4, **TINY)
    m, ac = prepare(m, device="cpu", channels_last=True, bf16="auto")
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.8)
    step = make_step(m, opt, ac)
    acc = 0.0
    for _ in range(20):  # at most 200 steps; tiny-batch SGD wobbles, so check every 10
        for _ in range(10):
            step(x, y)
        with ac():
            recalibrate_batchnorm(m, [x], 1)
        m.eval()
        with torch.no_grad(), ac():
            pred = m(x).argmax(1)
        acc = (pred == y).float().mean().item()
        if acc == 1.0:
            break
    assert acc == 1.0
    assert pred.unique().numel() == 4


def _toy_data(n_per_split=(24, 8, 8), classes=("sad", "happy", "angry")):
    rows, xs = [], []
    g = np.random.default_rng(0)
    k = 0
    for split, n in zip(("train", "val", "test"), n_per_split):
        for i in range(n):
            c = i % len(classes)
            rows.append((k, f"{split}{i}", split, classes[c], 0))
            xs.append(g.normal(size=(5, 128, 128)) * 5 - 40 + 3 * c)
            k += 1
    index = pd.DataFrame(rows, columns=["row", "clip_id", "split", "label", "copy"])
    return np.stack(xs).astype(np.float16), index, list(classes)


def _params(**kw):
    base = dict(TINY, batch_size=8, epochs=4, patience=10, bn_recalibration_batches=2, lr=0.05,
                seed=3)
    base.update(kw)
    return section("train_cnn_lstm", **base)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _fit(p, x, index, classes, ck, fp):
    """fit, as the stage calls it: (the trained network, summary_info)."""
    rt = section("runtime")
    t, st, rows = fit(p, x, index, classes, network_args(p, WINDOW), checkpoint=ck, fp=fp, rt=rt)
    return t.raw, summary_info(t, p, st, len(rows["train"]), rt)


def test_resume_gives_the_same_model(tmp_path):
    x, index, classes = _toy_data()
    full, _ = _fit(_params(), x, index, classes, tmp_path / "a.ckpt", "a")
    # the same run, stopped after 2 epochs, then resumed from its checkpoint
    _fit(_params(epochs=2), x, index, classes, tmp_path / "b.ckpt", "b")
    assert torch.load(tmp_path / "b.ckpt", weights_only=True)["state"]["epoch"] == 2
    resumed, info = _fit(_params(), x, index, classes, tmp_path / "b.ckpt", "b")
    assert info["epochs_run"] == 4
    a, b = _state(full), _state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_of_other_params_is_not_resumed(tmp_path):
    x, index, classes = _toy_data()
    _fit(_params(epochs=2), x, index, classes, tmp_path / "c.ckpt", "old")
    _, info = _fit(_params(epochs=1), x, index, classes, tmp_path / "c.ckpt", "new")
    assert info["epochs_run"] == 1


def test_early_stopping_keeps_the_best_epoch(tmp_path):
    x, index, classes = _toy_data()
    _, info = _fit(_params(epochs=30, patience=2, lr=1e-5), x, index, classes, tmp_path / "d.ckpt", "d")
    hist = torch.load(tmp_path / "d.ckpt", weights_only=True)["state"]["history"]
    accs = [h["val_acc"] for h in hist]
    assert info["epochs_run"] < 30  # stopped early
    assert info["best_epoch"] == int(np.argmax(accs)) + 1
    assert info["epochs_run"] - info["best_epoch"] == 2  # patience


def test_same_params_same_result_on_cpu(tmp_path):
    x, index, classes = _toy_data()
    a, _ = _fit(_params(epochs=2), x, index, classes, tmp_path / "e.ckpt", "e")
    b, _ = _fit(_params(epochs=2), x, index, classes, tmp_path / "f.ckpt", "f")
    sa, sb = _state(a), _state(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
