"""Metrics, JSON logs and the offline docs page."""

from __future__ import annotations

import json
import logging

from service.http.observability import JsonFormatter

from .conftest import bearer


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_by_route_and_status_and_time_engine_calls(client, as_reader):
    before = client.get("/metrics").get_data(as_text=True)
    for _ in range(3):
        client.get("/api/v1/volumes", headers=as_reader)
    client.get("/api/v1/volumes")
    after = client.get("/metrics")
    assert after.content_type.startswith("text/plain")
    text = after.get_data(as_text=True)
    ok = dict(name="dockvol_http_requests_total", method="GET", route="/api/v1/volumes")
    assert metric(text, **ok, status="200") - metric(before, **ok, status="200") == 3
    assert metric(text, **ok, status="401") - metric(before, **ok, status="401") == 1
    assert metric(text, "dockvol_engine_call_duration_seconds_count", operation="list_volumes") >= 3
    assert "dockvol_http_request_duration_seconds_bucket" in text


def test_engine_failures_are_counted(client, as_reader, engine):
    engine.down = True
    client.get("/api/v1/volumes", headers=as_reader)
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "dockvol_engine_call_errors_total", operation="list_volumes", error="EngineUnavailable") >= 1


def test_one_json_log_line_per_request_with_its_id_and_token_name(client, as_reader, caplog):
    with caplog.at_level(logging.INFO, logger="dockvol.access"):
        client.get("/api/v1/volumes", headers={**as_reader, "X-Request-ID": "trace-42"})
    (record,) = [r for r in caplog.records if r.name == "dockvol.access"]
    with client.application.test_request_context():
        line = json.loads(JsonFormatter().format(record))
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/v1/volumes", 200)
    assert line["token"].startswith("token-") and "reader" not in json.dumps(line)
    assert line["duration_ms"] >= 0


def test_the_formatter_adds_the_request_id(app):
    with app.test_request_context(headers={"X-Request-ID": "abc"}):
        app.preprocess_request()
        record = logging.LogRecord("x", logging.WARNING, __file__, 1, "engine call %s failed", ("list",), None)
        line = json.loads(JsonFormatter().format(record))
    assert (line["request_id"], line["message"], line["level"]) == ("abc", "engine call list failed", "warning")


def test_the_docs_page_needs_no_internet(client):
    page = client.get("/api/docs").get_data(as_text=True)
    assert "/api/docs/assets/swagger-ui-bundle.js" in page and "/api/openapi.json" in page
    assert "http://" not in page and "https://" not in page
    asset = client.get("/api/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.data) > 100_000
    asset.close()


def test_log_times_are_utc_whatever_the_hosts_zone(monkeypatch):
    import logging
    import time

    from service.http.observability import JsonFormatter

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        record = logging.LogRecord("dockvol", logging.INFO, "x.py", 1, "hello", None, None)
        record.created, record.msecs = 1_800_000_000.25, 250.0  # 2027-01-15T08:00:00.250Z
        assert json.loads(JsonFormatter().format(record))["time"] == "2027-01-15T08:00:00.250Z"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def _timed(method, route):
    from prometheus_client import REGISTRY

    labels = {"method": method, "route": route}
    return (
        REGISTRY.get_sample_value(f"dockvol_http_request_duration_seconds_{name}", labels) or 0.0
        for name in ("count", "sum")
    )


def _access_lines(caplog, app):
    records = [r for r in caplog.records if r.name == "dockvol.access"]
    with app.test_request_context():
        return [json.loads(JsonFormatter().format(r)) for r in records]


def test_a_request_refused_before_its_view_is_timed_and_names_its_token(client, as_writer, caplog):
    count, total = _timed("POST", "/api/v1/volumes")
    with caplog.at_level(logging.INFO, logger="dockvol.access"):
        r = client.post("/api/v1/volumes", data="name=v", content_type="text/plain", headers=as_writer)
    assert r.status_code == 415
    (line,) = _access_lines(caplog, client.application)
    assert line["status"] == 415 and line["duration_ms"] > 0
    assert line["token"].startswith("token-")
    after_count, after_total = _timed("POST", "/api/v1/volumes")
    assert after_count == count + 1 and after_total > total


def test_a_request_the_fleet_router_answers_is_timed_and_names_its_token(fleet, caplog):
    count, total = _timed("GET", "/api/v1/nodes")
    with caplog.at_level(logging.INFO, logger="dockvol.access"):
        r = fleet.client["n2"].get("/api/v1/nodes", headers=bearer("reader"))
    assert r.status_code == 200
    (line,) = [x for x in _access_lines(caplog, fleet.wsgi.apps[fleet.address["n2"]]) if x["path"] == "/api/v1/nodes"]
    assert line["duration_ms"] > 0 and line["token"].startswith("token-")
    after_count, after_total = _timed("GET", "/api/v1/nodes")
    assert after_count == count + 1 and after_total > total
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dockvol.access"):
        r = fleet.client["n2"].get("/api/v1/volumes", headers=bearer("reader"))
    assert r.status_code == 200
    front = _access_lines(caplog, fleet.wsgi.apps[fleet.address["n2"]])[-1]  # logged after the nodes it asked
    assert front["path"] == "/api/v1/volumes" and front["duration_ms"] > 0 and front["token"].startswith("token-")
