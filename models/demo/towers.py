"""A two-tower retrieval model trained with numpy: linear user and ad towers whose dot product is a click logit.

Model: ``u = x_user @ Wu + bu`` and ``a = x_ad @ Wa + ba`` (both [D]), ``P(click) = sigmoid(<u, a>)``. The last two
embedding dimensions carry the biases so that a plain dot product (what retrieval computes over all ads) is the full
logit: the user tower's dimension ``D-1`` is the constant 1 and dimension ``D-2`` its user bias; the ad tower's
dimension ``D-2`` is the constant 1 and dimension ``D-1`` its ad bias. The constants are frozen during training.

Training minimises the logistic loss with Adam on minibatches (a few epochs, fixed seed): a second or so on 2 cores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class TwoTower:
    """Trained tower weights (float32): ``user_weights`` [Fu, D], ``user_bias`` [D], ``ad_weights`` [Fa, D]..."""

    user_weights: F32
    user_bias: F32
    ad_weights: F32
    ad_bias: F32

    def user_embedding(self, x: F32) -> F32:
        out: F32 = x @ self.user_weights + self.user_bias
        return out

    def ad_embedding(self, x: F32) -> F32:
        out: F32 = x @ self.ad_weights + self.ad_bias
        return out


class _Adam:
    def __init__(self, params: list[F64], lr: float) -> None:
        self.params, self.lr, self.t = params, lr, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads: list[F64]) -> None:
        self.t += 1
        b1, b2 = 0.9, 0.999
        for i, g in enumerate(grads):  # in place: self.params are the caller's arrays
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.v[i] = b2 * self.v[i] + (1 - b2) * g * g
            step = (self.m[i] / (1 - b1**self.t)) / (np.sqrt(self.v[i] / (1 - b2**self.t)) + 1e-8)
            self.params[i] -= self.lr * step


def train_two_tower(
    x_user: F32,
    x_ad: F32,
    y: npt.NDArray[np.integer],
    *,
    seed: int,
    dim: int = 16,
    epochs: int = 3,
    batch: int = 2048,
    lr: float = 0.01,
    l2: float = 1e-5,
) -> TwoTower:
    """Fit the towers on impressions (row i: user features, ad features, click label)."""
    if not (x_user.shape[0] == x_ad.shape[0] == y.shape[0]):
        raise ValueError("x_user, x_ad and y must have the same number of rows")
    if dim < 3:
        raise ValueError("dim must leave room for the two bias dimensions")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7077]))
    fu, fa = x_user.shape[1], x_ad.shape[1]
    wu = rng.normal(0.0, 0.3 / np.sqrt(fu), size=(fu, dim))
    wa = rng.normal(0.0, 0.3 / np.sqrt(fa), size=(fa, dim))
    bu, ba = np.zeros(dim), np.zeros(dim)
    # Frozen constant dimensions (see the module docstring); the masks keep them frozen.
    wu[:, dim - 1], bu[dim - 1] = 0.0, 1.0
    wa[:, dim - 2], ba[dim - 2] = 0.0, 1.0
    prior = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    ba[dim - 1] = np.log(prior / (1 - prior))
    mask_u, mask_a = np.ones(dim), np.ones(dim)
    mask_u[dim - 1], mask_a[dim - 2] = 0.0, 0.0
    opt = _Adam([wu, bu, wa, ba], lr)
    xu64, xa64, yy = x_user.astype(np.float64), x_ad.astype(np.float64), y.astype(np.float64)
    n = yy.shape[0]
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            xu, xa = xu64[idx], xa64[idx]
            eu, ea = xu @ wu + bu, xa @ wa + ba
            logit = np.einsum("ij,ij->i", eu, ea)
            g = (0.5 * (1.0 + np.tanh(0.5 * logit)) - yy[idx]) / idx.shape[0]
            d_eu, d_ea = g[:, None] * ea * mask_u, g[:, None] * eu * mask_a
            opt.step([xu.T @ d_eu + l2 * wu, d_eu.sum(0), xa.T @ d_ea + l2 * wa, d_ea.sum(0)])
    return TwoTower(
        user_weights=wu.astype(np.float32),
        user_bias=bu.astype(np.float32),
        ad_weights=wa.astype(np.float32),
        ad_bias=ba.astype(np.float32),
    )
