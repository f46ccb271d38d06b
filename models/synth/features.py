"""Feature matrices: the N x 64 float32 rows a model scores, built from a world with array operations only.

Both builders write the user block, the ad block and the context block of :data:`~models.synth.schema.FEATURE_NAMES`
into one C-contiguous, native-order float32 array. No per-row Python objects are created.

Buffer contract: when ``out`` is given it must be float32, C-contiguous and exactly [N, 64]; it is filled and
returned, and the caller keeps ownership. Without ``out`` a new array is returned. A subset of columns for a model
is ``matrix[:, feature_indices(names)]`` (a copy), or build the full matrix once and take views per block.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from models.synth import schema
from models.synth.contexts import Context, ContextBatch
from models.synth.world import World

F32 = npt.NDArray[np.float32]


def _checked_out(out: F32 | None, n: int) -> F32:
    if out is None:
        return np.empty((n, schema.N_FEATURES), dtype=np.float32)
    if out.shape != (n, schema.N_FEATURES) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous float32 [{n}, {schema.N_FEATURES}], got {out.dtype} {out.shape}")
    return out


def candidate_matrix(
    world: World,
    user_id: int,
    context: Context | F32,
    ad_ids: npt.NDArray[np.integer],
    out: F32 | None = None,
) -> F32:
    """Features of one request: one user, one context, N candidate ads -> float32 [N, 64].

    Args:
        world: the marketplace.
        user_id: the requesting user.
        context: the request context, or its 16 context features already computed (float32 [16]).
        ad_ids: the N candidate ad ids.
        out: optional destination buffer (see the module's buffer contract).
    """
    n = int(ad_ids.shape[0])
    out = _checked_out(out, n)
    ctx = context.features() if isinstance(context, Context) else context
    out[:, schema.USER_SLICE] = world.user_features[user_id]
    out[:, schema.AD_SLICE] = world.ad_features[ad_ids]
    out[:, schema.CONTEXT_SLICE] = ctx
    return out


def impression_matrix(
    world: World,
    user_ids: npt.NDArray[np.integer],
    ad_ids: npt.NDArray[np.integer],
    contexts: ContextBatch | F32,
    out: F32 | None = None,
) -> F32:
    """Features of M impressions (a user, an ad and a context each) -> float32 [M, 64].

    ``contexts`` is a :class:`ContextBatch` of length M or its context block (float32 [M, 16]).
    """
    m = int(user_ids.shape[0])
    if ad_ids.shape[0] != m or len(contexts) != m:
        raise ValueError("user_ids, ad_ids and contexts must have the same length")
    out = _checked_out(out, m)
    out[:, schema.USER_SLICE] = world.user_features[user_ids]
    out[:, schema.AD_SLICE] = world.ad_features[ad_ids]
    if isinstance(contexts, ContextBatch):
        contexts.features(out=out[:, schema.CONTEXT_SLICE])
    else:
        out[:, schema.CONTEXT_SLICE] = contexts
    return out
