"""The time-distributed CNN + LSTM of the reference method, in PyTorch.

Each log-mel window goes through the same four Local Feature Learning Blocks (LFLB); the
per-window vectors feed an LSTM whose last state is classified. Initialisation and batch-norm
settings follow Keras' defaults, since the reference was written in Keras.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class LFLB(nn.Sequential):
    """Conv2d 3x3 'same' -> BatchNorm -> ELU -> MaxPool -> Dropout."""

    def __init__(self, c_in: int, c_out: int, kernel: int, pool: int, dropout: float,
                 bn_momentum: float, bn_eps: float, fast_dropout: bool = True) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, padding="same"),
            nn.BatchNorm2d(c_out, momentum=bn_momentum, eps=bn_eps),
            nn.ELU(),
            nn.MaxPool2d(pool, stride=pool, ceil_mode=True),
            FastDropout(dropout) if fast_dropout else nn.Dropout(dropout),
        )


class CNNLSTM(nn.Module):
    """Input (batch, windows, mels, frames) -> logits (batch, classes)."""

    def __init__(self, n_classes: int, *, filters: Sequence[int] = (64, 64, 128, 128),
                 pools: Sequence[int] = (2, 4, 4, 4), kernel: int = 3, dropout: float = 0.2,
                 lstm_units: int = 256, lstm_layers: int = 1, lstm_dropout: float = 0.2,
                 bn_momentum: float = 0.01, bn_eps: float = 1e-3, input_size: int = 128,
                 fast_dropout: bool = True) -> None:
        super().__init__()
        if len(filters) != len(pools):
            raise ValueError("filters and pools must have the same length")
        blocks, c_in, side = [], 1, input_size
        for c_out, pool in zip(filters, pools):
            blocks.append(LFLB(c_in, c_out, kernel, pool, dropout, bn_momentum, bn_eps,
                               fast_dropout))
            c_in, side = c_out, -(-side // pool)
        self.blocks = nn.Sequential(*blocks)
        self.window_features = c_in * side * side
        # Keras' LSTM(dropout=p) drops inputs with one mask shared by all time steps.
        self.input_dropout = nn.Dropout(lstm_dropout)
        self.lstm = nn.LSTM(self.window_features, lstm_units, num_layers=lstm_layers,
                            batch_first=True, dropout=lstm_dropout if lstm_layers > 1 else 0.0)
        self.head = nn.Linear(lstm_units, n_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras defaults: Glorot-uniform kernels, orthogonal recurrent weights, zero biases
        with the LSTM's forget-gate bias at 1."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for name, p in self.lstm.named_parameters():
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

    def embed_windows(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, windows, H, W) -> (batch, windows, features)."""
        b, t, h, w = x.shape
        z = x.reshape(b * t, 1, h, w)
        if self.blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last):
            z = z.contiguous(memory_format=torch.channels_last)
        z = self.blocks(z)
        return z.reshape(b, t, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embed_windows(x)
        if self.training and self.input_dropout.p > 0:
            keep = 1.0 - self.input_dropout.p
            mask = torch.bernoulli(torch.full((z.shape[0], 1, z.shape[2]), keep,
                                              device=z.device, dtype=z.dtype)) / keep
            z = z * mask
        out, _ = self.lstm(z.float())
        return self.head(out[:, -1])


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
        return _MaskedScale.apply(x, keep, 1.0 / (1.0 - self.p))


class _MaskedScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, keep, scale):
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.where(keep, x * scale, 0)

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return torch.where(keep, grad * ctx.scale, 0), None, None
