"""The text encoder shared by every model (AttnGAN's DAMSM text encoder / MirrorGAN's STEM).

As AttnGAN's ``RNN_ENCODER`` (taoxugit/AttnGAN ``code/model.py``): embedding 300, bidirectional LSTM
with 128 hidden units per direction, dropout 0.5. Word features ``e`` are the concatenated hidden
states (256 x T); the sentence feature ``e_bar`` is the concatenation of the last hidden state of each
direction (256) [AttnGAN, Sec. 3.2].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence



@dataclass
class TextFeatures:
    word_embs: torch.Tensor  # (B, D, T) one feature per word
    sent_emb: torch.Tensor  # (B, D) whole-caption feature
    mask: torch.Tensor  # (B, T) bool, True at padding

    def detach(self) -> "TextFeatures":
        return TextFeatures(self.word_embs.detach(), self.sent_emb.detach(), self.mask)


def padding_mask(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Bool mask ``(B, T)``, True at padded positions (never to be attended)."""
    return torch.arange(tokens.shape[1], device=tokens.device)[None, :] >= lengths[:, None]


class RNNTextEncoder(nn.Module):
    def __init__(
        self,
        vocab_size: int,  # number of words, padding (0) included
        emb_dim: int = 300,  # word embedding size
        hidden_dim: int = 128,  # LSTM units per direction; features are 2 * hidden_dim
        dropout: float = 0.5,  # on the embeddings (and between layers if num_layers > 1)
        num_layers: int = 1,
        bidirectional: bool = True,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.LSTM(
            emb_dim,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
        )
        self.out_dim = hidden_dim * (2 if bidirectional else 1)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> TextFeatures:
        B, T = tokens.shape
        emb = self.dropout(self.embedding(tokens))  # (B, T, E)
        packed = pack_padded_sequence(emb, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, (h_n, _) = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, D)
        word_embs = out.transpose(1, 2).contiguous()  # (B, D, T)
        # last layer's final hidden state of each direction: (num_layers * dirs, B, H) -> (B, D)
        dirs = 2 if self.rnn.bidirectional else 1
        sent_emb = h_n[-dirs:].transpose(0, 1).reshape(B, -1)
        return TextFeatures(word_embs, sent_emb, padding_mask(tokens, lengths))
