"""Realistic inputs for a model from the marketplace: what the demo traffic driver and the benchmarks feed it.

A manifest's ``feature_names`` select columns of the marketplace's 64-feature matrix; these helpers build that
matrix for a request (or for a random request-like batch) and take the manifest's columns, as float32 C-contiguous
native-order arrays ready for ``InferenceSession.run``.

* A ranking or scoring model, or the ad tower, gets one row per candidate ad: [N, F].
* The user tower gets one row for the requesting user: [1, F] (:func:`random_inputs` gives ``batch`` users).

The ``demo_*`` functions take a built demo directory instead of a world: they regenerate its marketplace from the
seed in its manifests (cached per seed, about half a second the first time).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import numpy.typing as npt

from models.demo.layout import load_demo_manifests
from models.manifest import Manifest, Task
from models.synth import schema
from models.synth.features import candidate_matrix
from models.synth.streams import Request, RequestStream, StreamConfig
from models.synth.world import World, WorldConfig, make_world

F32 = npt.NDArray[np.float32]


def feature_columns(manifest: Manifest) -> npt.NDArray[np.intp]:
    """Indices of the manifest's input columns in the global feature list (``KeyError`` on an unknown name)."""
    return schema.feature_indices(manifest.feature_names)


def request_inputs(manifest: Manifest, world: World, request: Request, stream: RequestStream | None = None) -> F32:
    """The model input for one request (see the module docstring for its rows).

    With ``stream``, features are as observed at the request's send time, so the stream's drifts apply.
    """
    columns = feature_columns(manifest)
    if manifest.task is Task.RETRIEVAL_USER:
        full = candidate_matrix(world, request.user_id, request.context, request.candidate_ad_ids[:1])
        if stream is not None:
            stream.apply_feature_drifts(full, request.request_id, request.send_time_s)
    elif stream is not None:
        full = stream.features(request)
    else:
        full = candidate_matrix(world, request.user_id, request.context, request.candidate_ad_ids)
    return np.ascontiguousarray(np.take(full, columns, axis=1))


def random_request(world: World, n_candidates: int, seed: int = 0) -> Request:
    """The first request of a seeded stream with ``n_candidates`` candidates (fewer only for a CTV pod whose
    pool of video ads is smaller)."""
    return next(iter(RequestStream(world, StreamConfig(n_candidates=n_candidates, seed=seed))))


def random_inputs(manifest: Manifest, world: World, batch: int, seed: int = 0) -> F32:
    """A realistic [batch, F] input: the candidates of one random request (for the user tower, ``batch`` users
    drawn by activity). Deterministic under ``seed``."""
    if manifest.task is Task.RETRIEVAL_USER:
        rng = np.random.default_rng(seed)
        cdf = np.cumsum(world.user_activity)
        users = np.minimum(np.searchsorted(cdf, rng.random(batch) * cdf[-1]), world.n_users - 1)
        return np.ascontiguousarray(np.take(world.user_features[users], feature_columns(manifest), axis=1))
    return _exactly(request_inputs(manifest, world, random_request(world, batch, seed)), batch)


def _exactly(x: F32, rows: int) -> F32:
    if x.shape[0] < rows:  # a CTV pod drew from the smaller video pool: repeat rows to the asked size
        x = np.ascontiguousarray(np.resize(x, (rows, x.shape[1])))
    return x


@functools.lru_cache(maxsize=4)
def world_for_seed(seed: int) -> World:
    """The demo marketplace of ``seed`` (``WorldConfig(seed=seed)``), cached: worlds are immutable."""
    return make_world(WorldConfig(seed=seed))


def demo_seed(demo_dir: str | os.PathLike[str]) -> int:
    """The seed a demo directory was built with (``FileNotFoundError`` if it holds no manifest)."""
    manifests = load_demo_manifests(demo_dir)
    if not manifests:
        raise FileNotFoundError(f"no demo manifests under {demo_dir}/models")
    return manifests[0].seed


def demo_request_features(demo_dir: str | os.PathLike[str], candidates: int = 200, seed: int = 0) -> F32:
    """The full [candidates, 64] float32 feature matrix of one random request of the demo's marketplace.

    Take a model's columns with ``np.take(x, feature_indices(manifest.feature_names), axis=1)``. Deterministic
    under ``seed`` (the request seed; the marketplace comes from the demo's own seed).
    """
    world = world_for_seed(demo_seed(demo_dir))
    request = random_request(world, candidates, seed)
    full = candidate_matrix(world, request.user_id, request.context, request.candidate_ad_ids)
    return _exactly(full, candidates)


def demo_features(demo_dir: str | os.PathLike[str], manifest: Manifest, rows: int = 256, seed: int = 0) -> F32:
    """A realistic [rows, F] input for ``manifest`` from the demo's marketplace (see :func:`random_inputs`)."""
    return random_inputs(manifest, world_for_seed(manifest.seed), rows, seed)
