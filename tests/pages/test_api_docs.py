"""Swagger UI and ReDoc pages reference only this server's static files (pinned by
drf-spectacular-sidecar). The browser test (test_browser.py) checks they render."""

import re

import pytest

ASSETS = re.compile(r'(?:src|href)="([^"]+)"')


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/docs/", "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"),
        ("/api/redoc/", "/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"),
    ],
)
def test_the_docs_pages_load_their_assets_from_this_server(client, path, expected):
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assets = ASSETS.findall(html)
    assert expected in assets
    assert [a for a in assets if not a.startswith("/")] == []
    assert "googleapis" not in html
    assert "cdn." not in html
    # What the bundles would fetch by themselves, the browser refuses (test_browser.py).
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "img-src 'self' data:" in policy


def test_swagger_ui_sends_the_schema_to_no_online_validator(client):
    script = client.get("/api/docs/").content.decode()
    assert '"validatorUrl": null' in script
