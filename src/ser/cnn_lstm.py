"""The time-distributed CNN + LSTM network of the reference method, in PyTorch.

Each log-mel window goes through the same four Local Feature Learning Blocks (LFLB); the
per-window vectors feed an LSTM whose last state is classified. Initialisation and batch-norm
settings follow Keras' defaults, since the reference was written in Keras. The constructor's
arguments come from params.yaml's train_cnn_lstm section (ser.stages.train_cnn_lstm) and travel
in every model file (ser.modelfile), from which ser.inference rebuilds the network. Training and
inference share this module; neither's own code is here.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ser.errors import SerError


class LFLB(nn.Sequential):
    """Conv2d 3x3 'same' -> BatchNorm -> ELU -> MaxPool -> Dropout.

    With pool_first the middle three are one BatchNormELUPool: the same function, computed on
    the pooled tensor.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, pool: int, dropout: float,
                 bn_momentum: float, bn_eps: float, fast_dropout: bool, pool_first: bool) -> None:
        conv = nn.Conv2d(c_in, c_out, kernel, padding="same")
        drop = FastDropout(dropout) if fast_dropout else nn.Dropout(dropout)
        if pool_first:
            super().__init__(conv, BatchNormELUPool(c_out, pool, momentum=bn_momentum,
                                                    eps=bn_eps), drop)
        else:
            super().__init__(conv, nn.BatchNorm2d(c_out, momentum=bn_momentum, eps=bn_eps),
                             nn.ELU(), nn.MaxPool2d(pool, stride=pool, ceil_mode=True), drop)


class BatchNormELUPool(nn.BatchNorm2d):
    """MaxPool(ELU(BatchNorm(x))) computed as ELU(BatchNorm'(MaxPool(s * x))).

    Batch norm is a per-channel affine map a * x + b and ELU is increasing, so both commute with
    max-pooling once channels with a < 0 are pooled on -x (their max is a * min(x) + b). The
    normalisation and the ELU then touch a pooled tensor (4x or 16x smaller) instead of the conv
    output, which is what dominated a CPU training step (memory-bound passes over 670 MB per
    batch in the first block). Values and gradients equal the unfused block's up to rounding;
    the batch statistics, running averages and state_dict keys are BatchNorm2d's own, so
    recalibrate_batchnorm and checkpoints work unchanged.
    """

    def __init__(self, num_features: int, pool: int, *, momentum: float | None,
                 eps: float) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
            factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                      else self.momentum)
            mean, var = _ChannelStats.apply(x, self.running_mean, self.running_var, factor)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.weight * torch.rsqrt(var + self.eps)
        shift = self.bias - mean * scale
        shape = (1, -1, 1, 1)
        sign = torch.where(scale >= 0, 1.0, -1.0).detach()
        if bool((sign < 0).any()):
            x = x * sign.to(x.dtype).view(shape)
        pooled = F.max_pool2d(x, self.pool, self.pool, ceil_mode=True)
        z = torch.addcmul(shift.view(shape), pooled, (scale * sign).view(shape))  # fp32
        return F.elu(z.to(x.dtype))


class _ChannelStats(torch.autograd.Function):
    """Per-channel batch mean and biased variance of an (N, C, H, W) tensor; updates the running
    averages in place as BatchNorm does (unbiased variance, given factor).

    The forward is ATen's batch_norm_update_stats (fp32 statistics for bf16 input, fast on
    channels-last; torch.var_mean over (0, 2, 3) was 20x slower); the backward is one fused
    pass, d mean/dx = 1/n and d var/dx = 2 (x - mean) / n.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor,
                factor: float):
        mean, var = torch.batch_norm_update_stats(x, running_mean, running_var, factor)
        ctx.save_for_backward(x, mean)
        ctx.n = x.numel() // x.shape[1]
        return mean, var

    @staticmethod
    def backward(ctx, g_mean: torch.Tensor, g_var: torch.Tensor):  # zeros when unused
        x, mean = ctx.saved_tensors
        coef = 2.0 * g_var / ctx.n
        const = g_mean / ctx.n - coef * mean
        shape = (1, -1, 1, 1)
        return torch.addcmul(const.to(x.dtype).view(shape), x, coef.to(x.dtype).view(shape),
                             out=torch.empty_like(x)), None, None, None


class CNNLSTM(nn.Module):
    """Input (batch, windows, mels, frames) -> logits (batch, classes); input_shape is one
    window's (mels, frames)."""

    def __init__(self, n_classes: int, *, filters: Sequence[int], pools: Sequence[int],
                 kernel: int, dropout: float, lstm_units: int, lstm_layers: int,
                 lstm_dropout: float, bn_momentum: float, bn_eps: float,
                 input_shape: Sequence[int], fast_dropout: bool, pool_first: bool,
                 lstm: str) -> None:
        super().__init__()
        if len(filters) != len(pools):
            raise ValueError("filters and pools must have the same length")
        blocks, c_in, (h, w) = [], 1, input_shape  # a window: mels x frames
        for c_out, pool in zip(filters, pools):
            blocks.append(LFLB(c_in, c_out, kernel, pool, dropout, bn_momentum, bn_eps,
                               fast_dropout, pool_first))
            c_in, h, w = c_out, -(-h // pool), -(-w // pool)  # ceil_mode pooling
        self.blocks = nn.Sequential(*blocks)
        self.window_features = c_in * h * w
        lstms = {"keras": KerasLSTM, "torch": TorchLSTM}
        if lstm not in lstms:
            raise ValueError(f"lstm must be 'keras' or 'torch', got {lstm!r}")
        self.lstm = lstms[lstm](self.window_features, lstm_units, lstm_layers, lstm_dropout)
        self.head = nn.Linear(lstm_units, n_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras defaults: Glorot-uniform kernels, orthogonal recurrent weights, zero biases
        with the LSTM's forget-gate bias at 1."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        self.lstm.reset_parameters()

    def embed_windows(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, windows, H, W) -> (batch, windows, features)."""
        b, t, h, w = x.shape
        z = x.reshape(b * t, 1, h, w)
        if self.blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last):
            z = z.contiguous(memory_format=torch.channels_last)
        z = self.blocks(z)
        return z.reshape(b, t, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed_windows(x)))


class TorchLSTM(nn.Module):
    """nn.LSTM with Keras' initialisers applied gate by gate and LSTM(dropout=p) approximated
    by one input mask shared by all gates and time steps; last state only (`lstm: torch`).
    Keras' initialisation comes from reset_parameters, which CNNLSTM calls; __init__ does not,
    so a seeded `lstm: torch` run still reproduces the earlier runs made with it."""

    def __init__(self, input_size: int, units: int, layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = dropout
        self.rnn = nn.LSTM(input_size, units, num_layers=layers, batch_first=True,
                           dropout=dropout if layers > 1 else 0.0)

    def reset_parameters(self) -> None:
        for name, p in self.rnn.named_parameters():
            if name.startswith("weight_ih"):
                for gate in p.data.chunk(4, 0):
                    nn.init.xavier_uniform_(gate)
            elif name.startswith("weight_hh"):
                for gate in p.data.chunk(4, 0):
                    nn.init.orthogonal_(gate)
            else:
                nn.init.zeros_(p)
                if name.startswith("bias_ih"):
                    p.data.chunk(4, 0)[1].fill_(1.0)  # gate order i, f, g, o

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, time, features) -> (batch, units)."""
        if self.training and self.dropout > 0:
            keep = 1.0 - self.dropout
            mask = torch.bernoulli(torch.full((x.shape[0], 1, x.shape[2]), keep,
                                              device=x.device, dtype=x.dtype)) / keep
            x = x * mask
        out, _ = self.rnn(x.float())
        return out[:, -1]


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras' hard_sigmoid, 0.2 x + 0.5 clipped to [0, 1] (torch's hardsigmoid has slope 1/6)."""
    return torch.clamp(x * 0.2 + 0.5, 0.0, 1.0)


class KerasLSTM(nn.Module):
    """Keras 2.2.4's LSTM (the reference's Keras and TF 1.12's tf.keras), last state only.

    What differs from nn.LSTM, each a Keras default the reference kept: the gates use
    hard_sigmoid; LSTM(dropout=p) draws one input mask per gate (i, f, c, o), each kept for all
    time steps; one bias, zero but for the forget gate's 1; Glorot-uniform over the whole
    (inputs, 4 x units) kernel and an orthogonal (units, 4 x units) recurrent kernel, so each
    gate's weights are smaller than per-gate initialisation gives. Runs in float32 even under
    autocast: it costs under 1% of a training step.
    """

    def __init__(self, input_size: int, units: int, layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.units, self.dropout = units, dropout
        sizes = [input_size] + [units] * (layers - 1)
        self.kernel = nn.ParameterList(nn.Parameter(torch.empty(n, 4 * units)) for n in sizes)
        self.recurrent = nn.ParameterList(nn.Parameter(torch.empty(units, 4 * units))
                                          for _ in sizes)
        self.bias = nn.ParameterList(nn.Parameter(torch.empty(4 * units)) for _ in sizes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for k, r, b in zip(self.kernel, self.recurrent, self.bias):
            nn.init.xavier_uniform_(k)
            nn.init.orthogonal_(r)
            nn.init.zeros_(b)
            b.data[self.units:2 * self.units] = 1.0  # Keras' gate order i, f, c, o

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, time, features) -> (batch, units): the last hidden state of the last layer."""
        with torch.autocast(x.device.type, enabled=False):
            seq = x.to(self.kernel[0].dtype)  # float32 (float64 in tests)
            for k, r, b in zip(self.kernel, self.recurrent, self.bias):
                seq = self._layer(seq, k, r, b)
        return seq[:, -1]

    def _layer(self, x: torch.Tensor, kernel: torch.Tensor, recurrent: torch.Tensor,
               bias: torch.Tensor) -> torch.Tensor:
        """(batch, time, features) -> (batch, time, units): every step's hidden state."""
        n, steps, f = x.shape
        u = self.units
        w = kernel.view(f, 4, u)
        if self.training and self.dropout > 0:
            keep = 1.0 - self.dropout
            masks = torch.bernoulli(torch.full((n, 4, f), keep, device=x.device))
            masks = masks.to(x.dtype) / keep
            # gate g sees x * mask_g: (n, t, f) x (n, 4, f) -> (n, t, 4, u)
            proj = torch.einsum("ntf,ngf,fgu->ntgu", x, masks, w)
        else:
            proj = torch.einsum("ntf,fgu->ntgu", x, w)
        proj = proj.reshape(n, steps, 4 * u) + bias
        h = x.new_zeros(n, u)
        c = x.new_zeros(n, u)
        out = []
        for t in range(steps):
            z = proj[:, t] + h @ recurrent
            i, fg, g, o = z.split(u, dim=1)
            c = hard_sigmoid(fg) * c + hard_sigmoid(i) * torch.tanh(g)
            h = hard_sigmoid(o) * torch.tanh(c)
            out.append(h)
        return torch.stack(out, dim=1)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches, max_batches: int) -> None:
    """Re-estimate BN running statistics with dropout off.

    The dropout at the end of each block feeds the next conv + BN in training, so the running
    variance learns dropout-inflated activations and eval-mode features go flat (measured: the
    model then predicts one class). A cumulative average over a few dropout-free passes fixes it.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or max_batches <= 0:
        return
    was_training = model.training
    saved = [m.momentum for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
        m.train()
    for i, x in enumerate(batches):
        if i >= max_batches:
            break
        model(x)
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.train(was_training)


class FastDropout(nn.Module):
    """Inverted dropout whose mask comes from 16 random bits per element.

    torch's bernoulli_ draws one random number per element and cost more than the rest of the
    block on a CPU; slicing 64-bit random words into 16-bit lanes is ~4x cheaper. The drop
    probability is quantised to 1/65536. The mask follows the input's memory layout.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.threshold = round(p * 65536) - 32768  # int16 lanes below it are dropped

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
            x = x.contiguous()  # the mask below takes x's strides over a dense buffer
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device)
        words.random_(-2**63, 2**63 - 1)  # all 64 bits random (the default leaves the top one 0)
        lanes = words.view(torch.int16)[:n]
        keep = lanes.as_strided(x.shape, x.stride()) >= self.threshold
        # one multiplier tensor (0 or 1/(1-p)) serves the forward and the backward pass
        scale = keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))  # 2.5x faster than torch.where
        return x * scale  # autograd keeps scale (no grad) and multiplies the gradient by it


# ---------------------------------------------------------------- devices and precision

def resolve_device(name: str) -> str:
    """'auto': cuda when available, else cpu; 'cuda' without a CUDA device is an error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SerError("device 'cuda' was asked for but no CUDA device is available")
    return name


def bf16_supported(device: str) -> bool:
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def prepare(model: nn.Module, *, device: str, channels_last: bool, bf16: bool | str,
            compile: bool = False) -> tuple[nn.Module, Callable[[], contextlib.AbstractContextManager]]:
    """Move the model, set its memory format; return the (possibly compiled) model and autocast.
    bf16 "auto": where the processor supports it."""
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    use_bf16 = bf16_supported(device) if bf16 == "auto" else bool(bf16)
    if use_bf16 and not bf16_supported(device):
        raise SerError(f"bf16 was asked for but this {device} has no bf16 support")
    autocast = functools.partial(torch.autocast, device_type=device, dtype=torch.bfloat16,
                                 enabled=use_bf16)
    if compile:
        model = torch.compile(model)
    return model, autocast
