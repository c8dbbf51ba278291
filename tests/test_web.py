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

from conftest import serve_explorer
from ganscope import trainer, web
from ganscope.config import ModelConfig, RunConfig, TrainConfig
from ganscope.data import to_uint8
from ganscope.sampling import generate, latent
from ganscope.web_requests import GenerateRequest

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory, small_split):
    folder = tmp_path_factory.mktemp("web")
    paths = []
    for name, model in (("mlp", "mlp"), ("cnn", "cnn")):
        config = RunConfig(model=ModelConfig(model), train=TrainConfig(epochs=2, device="cpu"))
        paths.append(
            str(trainer.train(config, folder / name, split=small_split, progress=False).path)
        )
    from ganscope.analysis import analyze_run
    from ganscope.runs import load_run

    analyze_run(
        load_run(paths[0]), dims=("3", "20"), n=4, sefa=2, pca=2, bootstrap=10, progress=False
    )
    explorer = web.Explorer(paths)
    # A browser on this machine names the server 127.0.0.1 (TestClient's own default,
    # "testserver", is what a rebinding page would send: refused, see below).
    return explorer, TestClient(web.create_app(explorer), base_url="http://127.0.0.1:8000")


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
    assert [d["name"] for d in runs[0]["directions"]] == ["SeFa 1", "SeFa 2", "PCA 1", "PCA 2"]
    assert runs[1]["directions"] == []
    assert all("/" not in r["name"] for r in runs)  # no paths reach the client


@pytest.fixture(scope="module")
def with_boundaries(tmp_path_factory, small_split):
    """A run whose analysis holds two fitted boundaries with known normals: Trouser along
    dimension 4, Sneaker between dimensions 4 and 9 (so each is the other's nearest class)."""
    from ganscope.analysis import analyze_run

    config = RunConfig(model=ModelConfig("mlp"), train=TrainConfig(epochs=1, device="cpu"))
    folder = tmp_path_factory.mktemp("boundaries") / "run"
    run = trainer.train(config, folder, split=small_split, progress=False)
    analyze_run(run, dims=("3",), n=4, sefa=1, pca=0, bootstrap=10, progress=False)
    record = json.loads(run.analysis.record.read_text())
    eye = torch.eye(100)
    normals = {1: eye[4], 7: (eye[4] + eye[9]) / 2**0.5}
    for entry in record["boundaries"]:
        normal = normals.get(entry["class_index"])
        entry["normal"] = None if normal is None else normal.tolist()
    run.analysis.record.write_text(json.dumps(record))
    return run, record


def test_boundaries_are_sliders_towards_a_class(with_boundaries):
    """The analysis's fitted boundaries become "towards C" and "towards C, keeping K"
    sliders, and a slider moves z along exactly that normal."""
    from ganscope.boundaries import Boundary, towards
    from ganscope.runs import load_run

    run, record = with_boundaries
    client = TestClient(web.create_app(web.Explorer([str(run.path)])), base_url="http://127.0.0.1")
    listed = [d["name"] for d in client.get("/api/runs").json()[0]["directions"]]
    assert listed == ["SeFa 1", "towards Trouser", "towards Trouser, keeping Sneaker",
                      "towards Sneaker", "towards Sneaker, keeping Trouser"]  # fmt: skip
    z = latent(1, 100, 3)
    moved = client.post(
        "/api/generate", json={"run": 0, "z": z[0].tolist(), "directions": {"4": 6}}
    )
    boundaries = [Boundary.from_record(b) for b in record["boundaries"]]
    vector = towards(boundaries, 7, [1]).vector  # Sneaker keeping Trouser: along dim 9 only
    assert torch.allclose(vector, torch.eye(100)[9], atol=1e-6)
    expected = to_uint8(generate(load_run(run.path).generator(), z + 6 * vector))[0].numpy()
    assert np.array_equal(_pixels(moved.json()["image"]), expected)


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
        ("/api/generate", {"run": 0, "z": [0.0] * 100, "directions": {"0": 1e9}}, 422, "within"),
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


@settings(max_examples=1000, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(path=st.sampled_from(["/api/generate", "/api/latent", "/api/interpolate", "/api/traverse"]),
       body=FUZZ | NEAR)  # fmt: skip
def test_no_request_body_makes_a_server_error(served, path, body):
    _, client = served
    payload = json.dumps(body, allow_nan=True)
    response = client.post(path, content=payload, headers={"content-type": "application/json"})
    assert response.status_code < 500, response.text
    assert "detail" in response.json() or response.status_code == 200


@pytest.fixture(scope="module")
def server_url(served):
    """The explorer served by uvicorn on a free port of 127.0.0.1, for the browser test."""
    explorer, _ = served
    yield from serve_explorer(explorer)


@pytest.mark.skipif(not __import__("os").path.exists("/usr/bin/chromium"), reason="no chromium")
def test_the_page_in_a_browser(server_url, tmp_path):
    from conftest import keep_artefact

    playwright = pytest.importorskip("playwright.sync_api")
    errors = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--headless"]
        )
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server_url)
        page.wait_for_function("document.getElementById('image').src.startsWith('data:')")

        def image():
            return page.eval_on_selector("#image", "el => el.src")

        def settle(previous):  # the latest render has landed and changed the image
            page.wait_for_function(
                "prev => document.getElementById('image').src !== prev", arg=previous
            )
            return image()

        first, probs = image(), page.inner_text("#probs")
        move = "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }"
        page.eval_on_selector("input[data-key='dim20']", move, 6)
        moved = settle(first)
        assert page.inner_text("#probs") != probs  # the classifier's bars follow the image
        assert "d=20:6" in page.url
        page.eval_on_selector("#epoch", move, 0)  # the first epoch's generator, same z
        early = settle(moved)
        assert "epoch=1" in page.url
        shared = page.url
        page.select_option("#compare", "1")
        page.wait_for_function("!document.getElementById('pane-b').hidden")
        page.screenshot(path=str(tmp_path / "explorer.png"))
        page.select_option("#run", "1")  # switch runs
        page.wait_for_function("document.getElementById('title-a').textContent.includes('CNN')")
        # The shared URL reopens the same view: same run, epoch, shifts, the same image.
        page.goto("about:blank")
        page.goto(shared)
        page.wait_for_function("document.getElementById('image').src.startsWith('data:')")
        page.wait_for_function("src => document.getElementById('image').src === src", arg=early)
        assert page.eval_on_selector("input[data-key='dim20']", "el => el.value") == "6"
        browser.close()
    assert errors == []
    assert (tmp_path / "explorer.png").stat().st_size > 10_000
    keep_artefact(tmp_path / "explorer.png")


@pytest.mark.skipif(not __import__("os").path.exists("/usr/bin/chromium"), reason="no chromium")
def test_a_boundary_slider_in_a_browser(with_boundaries):
    playwright = pytest.importorskip("playwright.sync_api")
    run, _ = with_boundaries
    errors = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--headless"]
        )
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        for url in serve_explorer(web.Explorer([str(run.path)])):
            page.goto(url)
            page.wait_for_function("document.getElementById('image').src.startsWith('data:')")
            assert "towards Sneaker, keeping Trouser (classifier boundary)" in page.inner_text(
                "#sefa"
            )
            first = page.eval_on_selector("#image", "el => el.src")
            move = "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }"
            page.eval_on_selector("input[data-key='sefa4']", move, 8)
            page.wait_for_function(
                "prev => document.getElementById('image').src !== prev", arg=first
            )
            assert "s=4:8" in page.url
        browser.close()
    assert errors == []


@pytest.mark.parametrize(
    "host, allowed",
    [
        ("127.0.0.1:8000", True),
        ("localhost:8000", True),
        ("LOCALHOST", True),
        ("[::1]:8000", True),
        ("evil.example:8000", False),  # a page from elsewhere, its name rebound to 127.0.0.1
        ("127.0.0.1.evil.example", False),
        ("", False),
    ],
)
def test_only_loopback_host_names_are_served(served, host, allowed):
    """DNS rebinding: a page from another site whose name now points at 127.0.0.1 sends its
    own name as Host; the explorer answers only to loopback names."""
    _, client = served
    response = client.get("/api/runs", headers={"host": host})
    assert response.status_code == (200 if allowed else 421), host
    if not allowed:
        assert "is not served here" in response.json()["detail"]


def test_another_host_serves_any_name(served):
    explorer, _ = served
    client = TestClient(web.create_app(explorer, allowed_hosts=None))
    assert client.get("/api/runs", headers={"host": "workstation.lan"}).status_code == 200


def test_a_port_in_use_is_one_line_before_anything_is_announced(served, capsys):
    """`serve --port P` with P taken: no address announced, one line, exit status 2."""
    import socket

    from ganscope import cli

    explorer, _ = served
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        code = cli.main(["serve", str(explorer.runs[0].run.path), "--port", str(port)])
    finally:
        taken.close()
    out, err = capsys.readouterr()
    assert code == 2 and "http://" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganscope: error: cannot serve on 127.0.0.1")
    assert "choose another --port" in lines[0]


# -- a conditional run: the class picker ------------------------------------------------------
@pytest.fixture(scope="module")
def served_conditional(tmp_path_factory, small_split):
    folder = tmp_path_factory.mktemp("web-conditional")
    paths = []
    for name, conditioning in (("cond", "projection"), ("plain", "none")):
        config = RunConfig(
            model=ModelConfig("mlp", conditioning=conditioning),
            train=TrainConfig(epochs=1, device="cpu"),
        )
        run = trainer.train(config, folder / name, split=small_split, progress=False)
        paths.append(str(run.path))
    explorer = web.Explorer(paths)
    return explorer, TestClient(web.create_app(explorer), base_url="http://127.0.0.1:8000")


def test_a_conditional_run_takes_a_class_and_shows_every_class(served_conditional):
    explorer, client = served_conditional
    runs = client.get("/api/runs").json()
    assert runs[0]["labels"][7] == "Sneaker" and runs[1]["labels"] == []
    z = latent(1, 100, 4)
    answer = client.post("/api/generate", json={"run": 0, "z": z[0].tolist(), "label": 7}).json()
    G = explorer.generator(0, None)
    expected = to_uint8(generate(G, z, labels=torch.tensor([7])))[0].numpy()
    assert np.array_equal(_pixels(answer["image"]), expected)
    row = _pixels(answer["row"])  # 10 classes side by side, scale 2
    every = to_uint8(generate(G, z.expand(10, -1), labels=torch.arange(10)))
    assert row.shape[1] > 9 * 56 and np.array_equal(row[2:58, 2:58][::2, ::2], every[0].numpy())
    other = client.post("/api/generate", json={"run": 0, "z": z[0].tolist(), "label": 1}).json()
    assert other["image"] != answer["image"] and other["row"] == answer["row"]
    strip = client.post(
        "/api/interpolate", json={"run": 0, "seeds": [0, 1], "steps": 4, "labels": [1, 8]}
    )
    assert strip.status_code == 200
    figure = client.post(
        "/api/traverse", json={"run": 0, "z": z[0].tolist(), "dim": 3, "delta": 5, "label": 2}
    )
    assert figure.status_code == 200


@pytest.mark.parametrize(
    "body, message",
    [
        ({"run": 1, "label": 3}, "run 1 is unconditional: it takes no class"),
        ({"run": 0}, "run 0 is conditional: give the class"),
        ({"run": 0, "label": 10}, "classes must be in 0..9"),
    ],
)
def test_bad_classes_get_a_json_422(served_conditional, body, message):
    _, client = served_conditional
    response = client.post("/api/generate", json={"z": [0.0] * 100, **body})
    assert response.status_code == 422 and message in response.json()["detail"]


@pytest.mark.skipif(not __import__("os").path.exists("/usr/bin/chromium"), reason="no chromium")
def test_the_class_picker_in_a_browser(served_conditional):
    import socket
    import threading
    import time

    import uvicorn

    playwright = pytest.importorskip("playwright.sync_api")
    explorer, _ = served_conditional
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(web.create_app(explorer), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    errors = []
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                headless=True,
                args=["--no-sandbox", "--headless"],
            )
            page = browser.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("document.getElementById('row').src.startsWith('data:')")
            assert page.is_visible("#class") and page.is_visible("#row")
            first = page.eval_on_selector("#image", "el => el.src")
            page.select_option("#class", "7")
            page.wait_for_function(
                "prev => document.getElementById('image').src !== prev", arg=first
            )
            assert "class=7" in page.url
            page.select_option("#run", "1")  # the unconditional run: no picker
            page.wait_for_function("document.getElementById('class-row').hidden")
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert errors == []


# -- concurrent requests share forward passes ---------------------------------------------------
def _close(image: torch.Tensor, pixels: np.ndarray) -> bool:
    """Within one grey level: a batch's convolutions may sum in another order than one's."""
    return np.abs(to_uint8(image)[0].numpy().astype(int) - pixels.astype(int)).max() <= 1


def test_a_batch_answers_each_request_as_it_would_alone(served):
    """Twelve generate requests computed as one forward pass (what concurrent requests get)
    against each asked alone, and the same through the batcher from six threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    explorer, client = served
    zs = [latent(1, 100, seed)[0].tolist() for seed in range(12)]
    alone = [client.post("/api/generate", json={"run": 1, "z": z}).json() for z in zs]
    together = explorer._forward((1, None), [(torch.tensor([z]), None) for z in zs])
    for (image, probs, row), answer in zip(together, alone):
        assert _close(image, _pixels(answer["image"])) and row is None
        assert max(abs(float(p) - q) for p, q in zip(probs, answer["probs"])) < 1e-3

    def served_items() -> int:
        return sum(size * count for size, count in explorer.batcher.sizes.items())

    before = served_items()
    with ThreadPoolExecutor(6) as pool:
        asked = [GenerateRequest(run=1, z=z) for z in zs]
        answers = list(pool.map(explorer.generate, asked))
    for answer, single in zip(answers, alone):
        assert np.abs(_pixels(answer["image"]).astype(int) - _pixels(single["image"])).max() <= 1
    assert served_items() - before == len(zs)  # every request went through the batcher


def test_a_conditional_batch_keeps_each_request_s_class_and_row(served_conditional):
    explorer, _ = served_conditional
    G = explorer.generator(0, None)
    items = [(latent(1, 100, seed), torch.tensor([label])) for seed, label in ((1, 7), (2, 0))]
    for (z, label), (image, _, row) in zip(items, explorer._forward((0, None), items)):
        assert _close(image, to_uint8(generate(G, z, labels=label))[0].numpy())
        every = generate(G, z.expand(10, -1), labels=torch.arange(10))
        assert (
            row.shape == every.shape
            and (to_uint8(row).int() - to_uint8(every).int()).abs().max() <= 1
        )
