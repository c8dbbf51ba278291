"""The explorer's API (``web``): what it returns, what it refuses, and that it never fails."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ganscope import training, web
from ganscope.config import ModelConfig, RunConfig, TrainConfig
from ganscope.data import to_uint8
from ganscope.sampling import generate, latent

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory, small_split):
    folder = tmp_path_factory.mktemp("web")
    paths = []
    for name, model in (("mlp", "mlp"), ("cnn", "cnn")):
        config = RunConfig(model=ModelConfig(model), train=TrainConfig(epochs=2, device="cpu"))
        paths.append(
            str(training.train(config, folder / name, split=small_split, progress=False).path)
        )
    from ganscope.analysis import analyze_run
    from ganscope.runs import load_run

    analyze_run(load_run(paths[0]), dims=("3", "20"), n=4, sefa=2, bootstrap=10, progress=False)
    explorer = web.Explorer(paths)
    return explorer, TestClient(web.create_app(explorer))


def _pixels(uri: str) -> np.ndarray:
    data = base64.b64decode(uri.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)))


def test_page_and_runs(served):
    explorer, client = served
    page = client.get("/")
    assert page.status_code == 200 and "ganscope explorer" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
    runs = client.get("/api/runs").json()
    assert [r["model"] for r in runs] == ["MLP GAN", "CNN GAN"] and runs[0]["epochs"] == [1, 2]
    assert runs[0]["dims"][0]["dim"] in (3, 20) and "label" in runs[0]["dims"][0]  # analysed first
    assert len(runs[0]["sefa"]) == 2 and runs[1]["sefa"] == []
    assert all("/" not in r["name"] for r in runs)  # no paths reach the client


@pytest.mark.parametrize("run, epoch", [(0, None), (0, 1), (1, 2)])
def test_generate_matches_the_python_api_bit_for_bit(served, run, epoch):
    explorer, client = served
    z = latent(1, 100, 7)
    z[0, 20] += 4.5
    body = client.post("/api/generate", json={"run": run, "epoch": epoch, "z": z[0].tolist()})
    assert body.status_code == 200
    generator = explorer.runs[run].run.generator(epoch=epoch)
    expected = to_uint8(generate(generator, z))[0].numpy()
    assert np.array_equal(_pixels(body.json()["image"]), expected)
    probs = body.json()["probs"]
    assert len(probs) == 10 and abs(sum(probs) - 1) < 1e-3


def test_latent_is_the_python_api_latent(served):
    _, client = served
    z = client.post("/api/latent", json={"run": 0, "seed": 11}).json()["z"]
    assert torch.equal(torch.tensor(z), latent(1, 100, 11)[0])


def test_sefa_shift_and_figures(served):
    _, client = served
    z = latent(1, 100, 0)[0].tolist()
    plain = client.post("/api/generate", json={"run": 0, "z": z}).json()["image"]
    moved = client.post("/api/generate", json={"run": 0, "z": z, "directions": {"0": 8}})
    assert moved.status_code == 200 and moved.json()["image"] != plain
    strip = client.post("/api/interpolate", json={"run": 1, "seeds": [0, 1], "steps": 5})
    assert strip.status_code == 200 and _pixels(strip.json()["image"]).shape[1] > 5 * 28
    figure = client.post("/api/traverse", json={"run": 0, "z": z, "dim": 20, "delta": 10})
    assert figure.status_code == 200 and _pixels(figure.json()["image"]).shape[0] > 3 * 28


@pytest.mark.parametrize(
    "path, body, status, message",
    [
        ("/api/generate", {"run": 9, "z": [0.0] * 100}, 404, "unknown run 9"),
        ("/api/generate", {"run": -1, "z": [0.0] * 100}, 422, "run"),
        ("/api/generate", {"run": 0, "z": [0.0] * 99}, 422, "z has 99 values"),
        ("/api/generate", {"run": 0, "z": [1e9] * 100}, 422, "within"),
        ("/api/generate", {"run": 0, "z": "zeros"}, 422, "z"),
        (
            "/api/generate",
            {"run": 0, "epoch": 7, "z": [0.0] * 100},
            404,
            "no generator for epoch 7",
        ),
        ("/api/generate", {"run": 0, "z": [0.0] * 100, "directions": {"5": 1}}, 422, "direction 5"),
        ("/api/generate", {"run": 1, "z": [0.0] * 100, "directions": {"0": 1}}, 422, "direction 0"),
        ("/api/latent", {"run": 0, "seed": -1}, 422, "seed"),
        ("/api/latent", {"run": 0, "seed": 2**70}, 422, "seed"),
        ("/api/interpolate", {"run": 0, "seeds": [0, 1], "steps": 1000}, 422, "steps"),
        ("/api/interpolate", {"run": 0, "seeds": [0, 1], "method": "cubic"}, 422, "unknown method"),
        (
            "/api/traverse",
            {"run": 0, "z": [0.0] * 100, "dim": 100, "delta": 10},
            422,
            "out of range",
        ),
        ("/api/traverse", {"run": 0, "z": [0.0] * 100, "dim": 3, "delta": 0}, 422, "delta"),
    ],
)
def test_bad_requests_get_a_json_4xx(served, path, body, status, message):
    _, client = served
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_nan_and_oversized_bodies(served):
    _, client = served
    nan = '{"run": 0, "z": [NaN' + ", 0" * 99 + "]}"
    response = client.post(
        "/api/generate", content=nan, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    huge = json.dumps({"run": 0, "z": [0.0] * 100, "pad": "x" * 100_000})
    response = client.post(
        "/api/generate", content=huge, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


FUZZ = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=20,
)
NEAR = st.fixed_dictionaries(
    {"run": st.integers(-2, 3), "z": st.lists(st.floats(), min_size=98, max_size=101)},
    optional={
        "epoch": st.integers(-1, 4) | st.none(),
        "directions": st.dictionaries(st.integers(-1, 3).map(str), st.floats(), max_size=2),
    },
)


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(path=st.sampled_from(["/api/generate", "/api/latent", "/api/interpolate", "/api/traverse"]),
       body=FUZZ | NEAR)  # fmt: skip
def test_no_request_body_makes_a_server_error(served, path, body):
    _, client = served
    payload = json.dumps(body, allow_nan=True)
    response = client.post(path, content=payload, headers={"content-type": "application/json"})
    assert response.status_code < 500, response.text
    assert "detail" in response.json() or response.status_code == 200
