"""Embeddings have the expected size and mean something, asked directly, through llama-swap (which forwards
the embedding names to the embedding server) and through LiteLLM by each public name."""

from __future__ import annotations

import json

from tests.smoke.checks import EMBED_TEXTS, check_litellm_route, cosine, embeddings_of
from tests.smoke.conftest import Deployment, Route
from tests.smoke.targets import LITELLM


def test_embedding(embedding_route: Route, deployment: Deployment, expected_dimension: int) -> None:
    svc = deployment.service(embedding_route.service)
    what = f"embeddings of {embedding_route.model!r}"
    r = svc.ok("POST", "/v1/embeddings", {"model": embedding_route.model, "input": EMBED_TEXTS,
                                          "encoding_format": "float"})
    vecs = embeddings_of(svc, json.loads(r.body), what)
    svc.check(len(vecs) == len(EMBED_TEXTS), f"{what}: {len(vecs)} vectors for {len(EMBED_TEXTS)} inputs")
    sizes = sorted({len(v) for v in vecs})
    svc.check(sizes == [expected_dimension], f"{what}: vector size {sizes}, expected {expected_dimension}")
    near, far = cosine(vecs[0], vecs[1]), cosine(vecs[0], vecs[2])
    svc.check(near > far, f"{what}: a paraphrase is no closer than unrelated text (cosine {near:.3f} <= {far:.3f})")
    if embedding_route.service == LITELLM:
        check_litellm_route(svc, r, embedding_route.model)
