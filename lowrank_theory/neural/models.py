"""The networks of the paper's experiments, each with a linear ``head`` last layer.

Every model exposes its last layer as the attribute named by ``HEAD`` so that last-layer
meta-learning and last-layer fine-tuning find it the same way for all three.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = [
    "HEAD",
    "seeded",
    "ShallowNet",
    "MixerBlock",
    "MLPMixer",
    "CandidateScorer",
]

#: Attribute name of every model's last linear layer.
HEAD = "head"


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded, restoring its state afterwards.

    Modules draw their initial weights from torch's global generator; forking it keeps model
    construction deterministic for a seed without leaking state to the caller.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


class ShallowNet(nn.Module):
    """The shallow network f(x) = c^T sigmoid(A x) of the paper's nonlinear experiment.

    With LoRA-ML the first layer becomes A + U_t U_t^T (a symmetric bank on ``hidden``), so the
    model matches the teacher f_t(x) = c*^T sigmoid((A* + U*_t U*_t^T) x).

    Parameters
    ----------
    d : int
        Input dimension (the hidden layer is d x d, as A is).

    Notes
    -----
    Input ``x`` of shape (batch, d); output of shape (batch,).
    """

    def __init__(self, d: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(d, d, bias=False)
        self.head = nn.Linear(d, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return c^T sigmoid(A x), shape (batch,)."""
        return self.head(torch.sigmoid(self.hidden(x))).squeeze(-1)


class MixerBlock(nn.Module):
    """One MLP-Mixer block: token mixing across patches, then channel mixing (pre-norm)."""

    def __init__(self, num_patches: int, width: int, token_hidden: int, channel_hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.token_fc1 = nn.Linear(num_patches, token_hidden)
        self.token_fc2 = nn.Linear(token_hidden, num_patches)
        self.norm2 = nn.LayerNorm(width)
        self.channel_fc1 = nn.Linear(width, channel_hidden)
        self.channel_fc2 = nn.Linear(channel_hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (batch, patches, width) to the same shape."""
        y = self.norm1(x).transpose(-1, -2)
        y = self.token_fc2(nn.functional.gelu(self.token_fc1(y))).transpose(-1, -2)
        x = x + y
        y = self.channel_fc2(nn.functional.gelu(self.channel_fc1(self.norm2(x))))
        return x + y


class MLPMixer(nn.Module):
    """A small MLP-Mixer for binary image classification (one logit).

    Parameters
    ----------
    image_size : int
        Side of the square input image.
    channels : int
        Input channels (1 for digits, 3 for CIFAR-10).
    patch : int
        Patch side; ``image_size`` must be a multiple of it.
    width : int
        Channel width of the token embeddings (512 in the paper).
    depth : int, default 1
        Number of mixer blocks (the paper uses 1).
    token_hidden, channel_hidden : int, optional
        MLP widths; default width/2 and 4 width (the Mixer paper's ratios).

    Notes
    -----
    The patch embedding is an ``nn.Linear`` on flattened patches (equivalent to the usual
    stride-``patch`` convolution) so that LoRA adapts it like every other linear layer.
    Input (batch, channels, image_size, image_size); output (batch,) logits.
    """

    def __init__(
        self,
        image_size: int,
        channels: int,
        patch: int,
        width: int,
        depth: int = 1,
        token_hidden: int | None = None,
        channel_hidden: int | None = None,
    ) -> None:
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size={image_size} must be a multiple of patch={patch}")
        self.patch = patch
        num_patches = (image_size // patch) ** 2
        self.embed = nn.Linear(channels * patch * patch, width)
        self.blocks = nn.ModuleList(
            MixerBlock(
                num_patches, width, token_hidden or max(width // 2, 1), channel_hidden or 4 * width
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return one logit per image, shape (batch,)."""
        b, c, h, w = images.shape
        p = self.patch
        patches = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        x = self.embed(patches.reshape(b, (h // p) * (w // p), c * p * p))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(dim=1)).squeeze(-1)


class CandidateScorer(nn.Module):
    """Next-utterance selection: a RoBERTa encoder scores each (context, candidate) pair.

    Parameters
    ----------
    encoder : transformers.RobertaModel
        The (pretrained or tiny random) encoder.

    Notes
    -----
    Input ids and attention mask of shape (batch, candidates, length); output scores of shape
    (batch, candidates), trained with cross-entropy over the candidates (the correct one's
    index is the label). The score is ``head`` applied to the first (<s>) token's state, the
    same pooling as RoBERTa's sequence classifier.
    """

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, 1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Return candidate scores of shape (batch, candidates)."""
        b, c, length = input_ids.shape
        states = self.encoder(
            input_ids=input_ids.reshape(b * c, length),
            attention_mask=attention_mask.reshape(b * c, length),
        ).last_hidden_state
        return self.head(states[:, 0]).reshape(b, c)
