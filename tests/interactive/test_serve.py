"""``elliot-visual serve``: the refinement page in headless Chromium, and the app's input checks.

The lists the page shows after "more like this" (eq. 6) and "boost feature" (eq. 7) must be the
lists the Python API returns for the same steps; unknown names are 404s with a JSON message,
malformed numbers 422s, images come only from the run's image folder, and nothing is written.
"""
from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from attribute_project import ATTRIBUTES, item_attribute
from browser import chromium, free_port, screenshot, served

from elliot_visual.interactive.affinity import AffinityExplorer, Step
from elliot_visual.interactive.trained_run import load_trained_run


@pytest.fixture(scope="module")
def server(attribute_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served(["--run", str(attribute_run)], tmp_path_factory.mktemp("serve"), free_port()) as base:
        yield base


@pytest.fixture(scope="module")
def explorer(attribute_run: Path) -> AffinityExplorer:
    return load_trained_run(attribute_run).explorer()  # the defaults serve uses (sample 1000, seed 42)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.parent.parent.rglob("*"))
            if p.is_file() and "serve-" not in p.name}


def _listed(driver) -> list[str]:  # noqa: ANN001
    return [li.get_attribute("data-item") for li in driver.find_elements("css selector", "#recs li.rec")]


def _wait_for_change(driver, before: list[str]) -> list[str]:  # noqa: ANN001
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(lambda d: d.find_element("tag name", "body").get_attribute("data-loading") == "0"
                                    and _listed(d) and _listed(d) != before)
    return _listed(driver)


def _api(explorer: AffinityExplorer, user: str, steps: list[Step]) -> list[str]:
    return [r.item_id for r in explorer.recommend(explorer.refined(user, steps), 10, user=user)]


def test_page_refines_the_list_as_eqs_6_and_7_predict(server: str, explorer: AffinityExplorer,
                                                      attribute_run: Path) -> None:
    before_files = _tree(attribute_run)
    with chromium(1300, 900) as driver:
        from selenium.webdriver.support.ui import WebDriverWait

        driver.get(server + "/")
        WebDriverWait(driver, 30).until(lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "1")
        driver.find_element("id", "user").send_keys("u0")
        driver.find_element("id", "show").click()
        initial = _wait_for_change(driver, [])
        assert initial == _api(explorer, "u0", [])
        shown = [row.get_attribute("data-feature") for row in driver.find_elements("css selector", ".feature-row")]
        assert shown[0] == explorer.top_features(explorer.affinity("u0"), 1)[0][0] == "floral"
        assert len(driver.find_elements("css selector", "#recs img")) == 10     # item images from the run
        screenshot(driver, "serve_initial")

        # "more like this" on an item of another attribute (eq. 6): the list follows that item.
        target = next((i for i in initial if item_attribute(i) != list(ATTRIBUTES).index("floral")), initial[-1])
        driver.find_element("css selector", f'button.more[data-item="{target}"]').click()
        refined = _wait_for_change(driver, initial)
        assert refined == _api(explorer, "u0", [Step("item", target, 0.5)])

        # "boost" plaid (eq. 7): the list is the API's, and holds more plaid than before.
        driver.find_element("css selector", 'button.boost[data-feature="plaid"]').click()
        boosted = _wait_for_change(driver, refined)
        steps = [Step("item", target, 0.5), Step("feature", "plaid", 0.5)]
        assert boosted == _api(explorer, "u0", steps)
        plaid = list(ATTRIBUTES).index("plaid")
        assert sum(item_attribute(i) == plaid for i in boosted) > sum(item_attribute(i) == plaid for i in refined)
        assert "more plaid" in driver.find_element("id", "steps").text
        screenshot(driver, "serve_refined")

        driver.find_element("id", "user").clear()
        driver.find_element("id", "user").send_keys("ghost")
        driver.find_element("id", "show").click()
        WebDriverWait(driver, 30).until(lambda d: d.find_element("id", "error").is_displayed())
        assert "unknown user 'ghost'" in driver.find_element("id", "error").text
        assert _listed(driver) == []                         # u0's list is not left under ghost's name
        screenshot(driver, "serve_unknown_user", full_page=False)
    assert _tree(attribute_run) == before_files                         # nothing written by any request


@pytest.mark.parametrize("query,status,message", [
    ({"user": "ghost"}, 404, "unknown user 'ghost'"),
    ({"user": "u0", "step": "item:i999"}, 404, "unknown item 'i999'"),
    ({"user": "u0", "step": "feature:velvet"}, 404, "unknown feature 'velvet'"),
    ({"user": "u0", "phi": "abc"}, 422, "phi"),
    ({"user": "u0", "k": "0"}, 422, "k"),
    ({"user": "u0", "phi_feature": "nan", "step": "feature:silk"}, 422, "finite"),
    ({"user": "u0", "step": "colour:red"}, 422, "must read 'item:<item id>'"),
])
def test_bad_input_is_a_json_error_naming_it(server: str, query: dict, status: int, message: str) -> None:
    code, body = _get(server + "/api/recommend?" + urllib.parse.urlencode(query))
    assert code == status
    assert message in json.dumps(json.loads(body))


def test_images_come_only_from_the_runs_image_folder(server: str, attribute_run: Path) -> None:
    image = attribute_run.parent.parent / "data" / "demo_attributes" / "images" / "i3.png"
    assert _get(server + "/images/i3") == (200, image.read_bytes())
    host, port = server.removeprefix("http://").split(":")
    for path in ("/images/../../config_files/demo_attributes.yml", "/images/..%2F..%2Fconfig_files%2Fdemo_attributes.yml",
                 "/images/%2e%2e/%2e%2e/data/demo_attributes/dataset.tsv", "/images//etc/passwd", "/images/i3.png"):
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", path)                 # sent verbatim: no client-side normalisation
        response = connection.getresponse()
        body = response.read()
        assert response.status == 404, path
        assert b"experiment" not in body and b"root:" not in body


def test_every_endpoint_only_reads(attribute_run: Path, explorer: AffinityExplorer) -> None:
    from elliot_visual.interactive.server import create_app

    app = create_app(load_trained_run(attribute_run), explorer)
    methods = {m for route in app.routes for m in getattr(route, "methods", set())}
    assert methods <= {"GET", "HEAD"}


def test_serve_binds_to_this_machine_by_default() -> None:
    from elliot_visual.interactive.commands import serve_parser

    assert serve_parser().parse_args(["--run", "results/x"]).host == "127.0.0.1"
